//===- SpeculativeRuns.h - Plain vs speculative generation runs -----------===//
//
// What kiln-spec-bench and kiln-bench --speculate share: the same prompts
// generated through the plain continuous-batching Engine and through the
// SpeculativeEngine (the outputs, the wall time, the acceptance stats), and
// finding the draft a speculative artifact carries.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_COMMON_SPECULATIVERUNS_H
#define KILN_TOOLS_COMMON_SPECULATIVERUNS_H

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/SpeculativeEngine.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace kiln::tools {

using Outputs = std::vector<std::vector<int32_t>>;

struct GenerationRun {
  Outputs outputs;
  double seconds = 0;
  std::string device, note;
  /// Speculative runs only.
  runtime::SpeculativeStats stats;
};

namespace detail {
template <typename EngineT>
runtime::Status generate(EngineT &engine, const Outputs &prompts,
                         const runtime::SamplingParams &params, int32_t n,
                         GenerationRun &run) {
  run.outputs.assign(prompts.size(), {});
  for (size_t i = 0; i < prompts.size(); ++i)
    KILN_RETURN_IF_ERROR(
        engine
            .addRequest(prompts[i], params, n,
                        [&run, i](const runtime::TokenEvent &e) {
                          run.outputs[i].push_back(e.token);
                        })
            .status());
  auto start = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(engine.runToCompletion());
  run.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return runtime::Status::ok();
}
} // namespace detail

/// `prompts` through the target alone, `batch` sequences at a time.
inline runtime::StatusOr<GenerationRun>
runPlain(std::shared_ptr<const runtime::Model> target,
         const std::string &device, int32_t batch, const Outputs &prompts,
         const runtime::SamplingParams &params, int32_t n) {
  runtime::EngineOptions options;
  options.device = device;
  options.maxSequences = batch;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Engine> engine,
                        runtime::Engine::create(target, options));
  GenerationRun run;
  run.device = engine->device().name();
  run.note = engine->deviceNote();
  KILN_RETURN_IF_ERROR(detail::generate(*engine, prompts, params, n, run));
  return run;
}

/// `prompts` through the SpeculativeEngine (draft null: n-gram lookup).
inline runtime::StatusOr<GenerationRun>
runSpeculative(std::shared_ptr<const runtime::Model> target,
               std::shared_ptr<const runtime::Model> draft,
               const runtime::SpeculativeOptions &options,
               const Outputs &prompts, const runtime::SamplingParams &params,
               int32_t n) {
  KILN_ASSIGN_OR_RETURN(
      std::unique_ptr<runtime::SpeculativeEngine> engine,
      runtime::SpeculativeEngine::create(target, draft, options));
  GenerationRun run;
  run.device = engine->targetDevice().name();
  KILN_RETURN_IF_ERROR(detail::generate(*engine, prompts, params, n, run));
  run.stats = engine->stats();
  return run;
}

inline int64_t countTokens(const Outputs &outputs) {
  int64_t n = 0;
  for (const auto &o : outputs)
    n += static_cast<int64_t>(o.size());
  return n;
}

/// The draft model of the speculative artifact at `path`; null when it was
/// compiled for n-gram lookup (--speculate-ngram). NotFound when it carries
/// no speculation at all.
inline runtime::StatusOr<std::shared_ptr<const runtime::Model>>
loadCarriedDraft(const std::string &path, const runtime::Model &target) {
  using namespace runtime;
  const SpeculationConfig *spec = target.speculation();
  if (spec && !spec->draftModel)
    return std::shared_ptr<const Model>();
  KILN_ASSIGN_OR_RETURN(bool carried, Model::hasPart(path, "draft"));
  if (!carried)
    return makeError(StatusCode::NotFound, "'", path,
                     "' carries no draft model (kiln-compile --draft) and "
                     "was not compiled for n-gram lookup");
  ModelLoadOptions options;
  options.part = "draft";
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> draft,
                        Model::load(path, options));
  return draft;
}

} // namespace kiln::tools

#endif // KILN_TOOLS_COMMON_SPECULATIVERUNS_H
