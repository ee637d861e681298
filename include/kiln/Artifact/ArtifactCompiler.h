//===- ArtifactCompiler.h - From laid-out modules to .kiln artifacts -*- C++
//-*-===//
//
// The compiler half of the artifact: a module whose functions have been
// laid out over the paged KV cache (@prefill, @decode, and an all-logits
// @prefill_all; -llm-kv-cache-layout) becomes the runtime's LaunchPlan (one
// entry point per function, a flat list of typed steps over a buffer table
// with symbolic shapes), its WeightTable (every llm.weight once: referenced
// by path and CRC-32, embedded, or dummy), and a ModelConfig, written as a
// .kiln file with kiln::runtime::ArtifactWriter. An op the plan has no step
// for is a diagnostic at that op. kiln-compile drives these stages.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_ARTIFACT_ARTIFACTCOMPILER_H
#define KILN_ARTIFACT_ARTIFACTCOMPILER_H

#include "kiln/Artifact/KernelTuning.h"
#include "kiln/runtime/KernelTable.h"
#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/ModelConfig.h"
#include "kiln/runtime/WeightTable.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::func {
class FuncOp;
}

namespace kiln {

/// Where the bytes of the artifact's weights go.
enum class WeightMode {
  Reference, ///< External data by path + CRC-32; initializers embedded.
  Embed,     ///< Every weight copied into the Weights section.
  Dummy,     ///< Only dtype and shape; random values at load.
};

/// The llm.weight behind a weight-table entry.
struct WeightSource {
  /// #llm.external_data or #llm.initializer (or, for a dequantized weight,
  /// the dense elements of an llm.constant).
  mlir::Attribute source;
  mlir::Type type;

  /// A weight dequantized at compile time from the operands of an
  /// llm.matmul_nbits (ONNX MatMulNBits): `source`/`type` are its packed
  /// integers [N, blocks, block_size * bits / 8], these its scales and
  /// (optional, packed or float) zero points; the table entry is the
  /// dense [N, K] matrix, element (n, k) = (q - zero point) * scale.
  struct Quantized {
    mlir::Attribute scales, zeroPoints;
    mlir::Type scalesType, zeroPointsType;
    int64_t k = 0, n = 0, bits = 0, blockSize = 0;
  };
  std::optional<Quantized> quantized;
  /// When non-zero, `source` holds `unpackBits`-bit integers packed low
  /// bits first, rows of ceil(cols * bits / 8) bytes (MatMulNBits zero
  /// points); the table entry holds them one a byte (u8 [rows, cols]).
  int64_t unpackBits = 0;
};

/// Everything the artifact holds, before it is written.
struct CompiledModel {
  /// Plan every llm.matmul_nbits as a Linear over its weight dequantized
  /// at compile time, even those QuantLinear serves (for devices without
  /// QuantLinear kernels). Set before buildLaunchPlan.
  bool dequantizeMatMulNBits = false;
  kiln::runtime::ModelConfig config;
  kiln::runtime::LaunchPlan plan;
  kiln::runtime::WeightTable weights;
  /// Parallel to weights.weights.
  std::vector<WeightSource> sources;
  /// The Weights section (embedded bytes), possibly empty.
  std::vector<uint8_t> weightsSection;
  /// The serialized SentencePiece model, possibly empty.
  std::vector<uint8_t> tokenizer;
  /// The Kernels section; written only when `hasKernels`.
  kiln::runtime::KernelTable kernels;
  bool hasKernels = false;
  /// The Speculation section text (SpeculationConfig); empty: none.
  std::string speculation;
};

/// Builds one entry point from a laid-out function and adds its weights to
/// `model.weights`/`model.sources` (shared by all entry points).
mlir::FailureOr<kiln::runtime::EntryPoint>
buildEntryPoint(mlir::func::FuncOp func, llvm::StringRef name,
                CompiledModel &model);

/// Builds the plan of every laid-out function of `module` present among
/// prefill, decode, prefill_all, verify (prefill and decode are required).
mlir::LogicalResult buildLaunchPlan(mlir::ModuleOp module,
                                    llvm::StringRef target,
                                    CompiledModel &model);

struct ConfigOptions {
  /// The model's directory: config.json (or meta.json's "config") there
  /// supplies BOS/EOS, the context length and what the graph lacks.
  std::string modelDir;
  /// A SentencePiece model whose BOS/EOS win over the config's.
  std::string tokenizerPath;
  /// Overrides the context length (0: from the config).
  int32_t contextLength = 0;
};

/// Fills model.config from the laid-out module (cache geometry, heads,
/// vocabulary, hidden size, dtype, rope theta) and the model's config
/// files; loads the tokenizer bytes when a path is given. Notes about
/// fallbacks go to `notes`.
mlir::LogicalResult buildModelConfig(mlir::ModuleOp module,
                                     const ConfigOptions &options,
                                     CompiledModel &model,
                                     std::vector<std::string> &notes);

struct PrecisionStats {
  int64_t weights = 0; ///< Weight-table entries converted.
  int64_t buffers = 0; ///< Buffers converted, all entry points.
  int64_t views = 0;   ///< Casts that became views.
};

/// Stores the plan's f32 floats as `dtype` (f16 or bf16; f32 changes
/// nothing): every f32 weight-table entry and every f32 buffer of every
/// entry point (constants' data converted), casts that became identities
/// turned into views, and the config's dtype. Integer buffers stay.
/// Runs after buildLaunchPlan and buildModelConfig, before packWeights
/// (which converts the weights whose source type no longer matches) and
/// buildKernels. Errors at `loc`.
mlir::LogicalResult convertPlanPrecision(CompiledModel &model,
                                         kiln::runtime::DType dtype,
                                         mlir::Location loc,
                                         PrecisionStats &stats);

/// Makes each entry point's logits fp32 when a Linear or QuantLinear step
/// writes them in f16/bf16 (the lm_head's matrix product accumulates in fp32
/// anyway): a 16-bit logit has a resolution of 1/128 to 1/64 at typical
/// magnitudes, so distinct logits round to ties that decide greedy and sampled
/// tokens by rounding. Returns the entry points changed. Runs after
/// convertPlanPrecision.
int64_t keepLogitsInF32(kiln::runtime::LaunchPlan &plan);

struct WeightStats {
  int64_t referenced = 0, referencedBytes = 0;
  int64_t embedded = 0, embeddedBytes = 0;
  int64_t dummy = 0, dummyBytes = 0;
  std::vector<std::string> files; ///< referenced files, as stored
};

/// Decides where each weight's bytes live and computes their checksums:
/// fills storage/path/offset/length/crc32 of every entry and the Weights
/// section. `modelDir` resolves the sources' relative paths;
/// `artifactPath` is where the artifact will be written (referenced paths
/// are stored relative to its directory).
mlir::LogicalResult packWeights(mlir::ModuleOp module, WeightMode mode,
                                const std::string &modelDir,
                                const std::string &artifactPath,
                                CompiledModel &model, WeightStats &stats);

struct KernelOptions {
  /// The SM the PTX and cubins are for (ptxas -arch).
  std::string chip = "sm_90a";
  /// Assemble cubins with ptxas when one is found (findPtxas).
  bool assemble = true;
  /// Overrides of the kernels' measured default shapes (sweeps).
  KernelTuning tuning;
};

struct KernelStats {
  int64_t generated = 0, missing = 0, cubins = 0;
  int64_t ptxBytes = 0, cubinBytes = 0;
  std::string ptxas; ///< The ptxas used; empty: PTX only.
};

/// Generates the GPU kernels the decode entry point of `model.plan` needs,
/// one per distinct (family, shape), with lib/Codegen's generators: PTX,
/// and a cubin when ptxas is found. Steps without a generator (and
/// prefill's matmuls) become missing entries. Generator, lowering and ptxas
/// failures are errors at `loc` naming the kernel and the step.
mlir::LogicalResult buildKernels(const CompiledModel &model,
                                 const KernelOptions &options,
                                 mlir::Location loc,
                                 kiln::runtime::KernelTable &table,
                                 KernelStats &stats);

/// Writes the artifact: Config, LaunchPlan, WeightRefs, Weights (if any
/// weight is embedded), Tokenizer (if any), Kernels (if generated),
/// Speculation (if any), then, with a `draft` model, its Config,
/// LaunchPlan, WeightRefs, Weights and Kernels as sections named
/// "draft.config", ... (the runtime's ModelLoadOptions::part; the draft's
/// tokenizer is the target's and is not written twice). Returns the file
/// size.
mlir::FailureOr<uint64_t> writeArtifact(const CompiledModel &model,
                                        const std::string &path,
                                        mlir::Location loc,
                                        const CompiledModel *draft = nullptr);

/// `path` relative to directory `base` (both made absolute first).
std::string relativePath(const std::string &path, const std::string &base);

} // namespace kiln

#endif // KILN_ARTIFACT_ARTIFACTCOMPILER_H
