//===- Model.h - A loaded .kiln artifact: config, plan and weights --------===//
//
// Model::load opens an artifact, parses and validates its sections (Config,
// LaunchPlan, WeightRefs, optional Weights and Tokenizer) and makes every
// weight's bytes available in its stored dtype: embedded bytes are used in
// place from the mapped artifact, external ranges are mapped from their
// files (paths relative to the artifact's directory) and checked against
// their CRC-32, dummy weights are filled with seeded random values. Any
// inconsistency is a Status naming the section, weight or step; a Model
// that loaded is safe to hand to a Device.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MODEL_H
#define KILN_RUNTIME_MODEL_H

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/KernelTable.h"
#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/MappedFile.h"
#include "kiln/runtime/ModelConfig.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/SpeculationConfig.h"
#include "kiln/runtime/Status.h"
#include "kiln/runtime/WeightTable.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::runtime {

struct ModelLoadOptions {
  /// Check the CRC-32 of every external weight range (reads all of them).
  bool verifyChecksums = true;
  /// Which model of the artifact: "" the main one (the target), "draft" the
  /// draft model a speculative artifact carries in sections named
  /// "draft.config", "draft.launch_plan", ... (kiln-compile --draft); the
  /// tokenizer section is shared.
  std::string part;
};

class Model {
public:
  /// Opens and validates the artifact at `path`.
  static StatusOr<std::shared_ptr<const Model>>
  load(const std::string &path, const ModelLoadOptions &options = {});

  /// Whether the artifact at `path` carries the model `part` (see
  /// ModelLoadOptions::part).
  static StatusOr<bool> hasPart(const std::string &path, std::string_view part);

  /// A model from an artifact held in memory; relative external weight
  /// paths resolve against `baseDir`.
  static StatusOr<std::shared_ptr<const Model>>
  fromReader(ArtifactReader reader, const std::string &baseDir,
             const ModelLoadOptions &options = {});

  /// A model from its parts (tests, tools that build plans in memory):
  /// `weightData[i]` holds weight i's bytes for non-dummy weights (any
  /// storage is treated as embedded). Validates like load.
  static StatusOr<std::shared_ptr<const Model>>
  fromParts(ModelConfig config, LaunchPlan plan, WeightTable weights,
            std::vector<std::vector<uint8_t>> weightData);

  const ModelConfig &config() const { return config_; }
  const LaunchPlan &plan() const { return plan_; }
  const WeightTable &weights() const { return weights_; }
  /// The Kernels section (parsed and validated at load); nullptr when the
  /// artifact has none (kiln-compile --target none or host).
  const KernelTable *kernels() const {
    return kernels_ ? &*kernels_ : nullptr;
  }
  /// nullptr when the plan has no entry point of that name.
  const EntryPoint *entry(std::string_view name) const {
    return plan_.find(name);
  }

  /// Weight i's bytes in its dtype (numBytes() of them).
  Span<const uint8_t> weightBytes(size_t i) const { return weightBytes_[i]; }
  int64_t totalWeightBytes() const;
  /// The Speculation section (kiln-compile --draft or --speculate-ngram),
  /// parsed at load; nullptr when the artifact has none. Only the main
  /// model reads it.
  const SpeculationConfig *speculation() const {
    return speculation_ ? &*speculation_ : nullptr;
  }
  /// The serialized SentencePiece model, or empty.
  Span<const uint8_t> tokenizerBytes() const { return tokenizer_; }
  /// Whether any weight is dummy (random values).
  bool hasDummyWeights() const;

private:
  Model() = default;
  Status resolveWeights(const std::string &baseDir,
                        Span<const uint8_t> weightsSection,
                        const ModelLoadOptions &options);

  ModelConfig config_;
  LaunchPlan plan_;
  WeightTable weights_;
  std::optional<KernelTable> kernels_;
  std::optional<SpeculationConfig> speculation_;
  std::optional<ArtifactReader> reader_;
  std::vector<MappedFile> files_;
  std::vector<std::vector<uint8_t>> ownedBytes_;
  std::vector<Span<const uint8_t>> weightBytes_;
  Span<const uint8_t> tokenizer_;
};

/// Random bytes for a dummy weight of `info` (seeded by info.seed):
/// values uniform in +-0.05, around 1 for vectors (norm scales).
std::vector<uint8_t> dummyWeightBytes(const WeightInfo &info);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_MODEL_H
