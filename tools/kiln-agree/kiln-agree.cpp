//===- kiln-agree.cpp - Do two devices generate the same greedy text? -----===//
//
//   kiln-agree m.kiln --prompts FILE [-n 64] [--devices host,cuda]
//              [--batch 8] [--min-match 95]
//
// Runs every prompt of FILE (one per line: comma-separated token ids, as
// kiln-run --prompt-ids takes them) greedily for -n new tokens on each
// device, all prompts through one continuously batched engine (--batch
// sequences at a time), and compares each device's continuation with the
// first device's token for token: the share of prompts whose continuations
// are identical, and for each one that is not, the first position that
// differs and the two tokens there, with each device's logit margin between
// the two tokens at that position (its logit of its own choice minus its
// logit of the other device's choice, from a prefill of the prompt and the
// common prefix): margins far below the logits' scale mean a near tie that
// rounding decides, not a wrong kernel. Also prints each device's wall
// time.
// Exits 1 when the share is below --min-match percent. Links only
// KilnRuntime, so it runs on a GPU machine without the compiler.
//
//===----------------------------------------------------------------------===//

#include "../common/PromptIdsFile.h"
#include "../common/RuntimeToolArgs.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

int fail(const Status &status) {
  std::fprintf(stderr, "kiln-agree: error: %s\n", status.toString().c_str());
  return 1;
}

struct DeviceRun {
  std::string name;
  std::vector<std::vector<int32_t>> outputs;
  double seconds = 0;
  std::unique_ptr<Engine> engine;
};

/// logit[mine] - logit[other] after `sequence` on `engine` (NaN on error).
double margin(Engine &engine, const std::vector<int32_t> &sequence,
              int32_t mine, int32_t other) {
  auto logits = engine.forwardAll(sequence);
  if (!logits.isOk() || mine < 0 || other < 0)
    return std::nan("");
  int64_t vocab = engine.model().config().vocabSize;
  const float *last = logits->data() + (sequence.size() - 1) * vocab;
  return double(last[mine]) - double(last[other]);
}

StatusOr<DeviceRun> generate(std::shared_ptr<const Model> model,
                             const std::string &device,
                             const std::vector<std::vector<int32_t>> &prompts,
                             int32_t newTokens, int32_t batch) {
  EngineOptions options;
  options.device = device;
  options.maxSequences = batch;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                        Engine::create(model, options));
  DeviceRun run;
  run.name = engine->device().name();
  run.outputs.resize(prompts.size());
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(
        int64_t id, engine->addRequest(prompts[i], greedy, newTokens,
                                       [&run, i](const TokenEvent &e) {
                                         run.outputs[i].push_back(e.token);
                                       }));
    (void)id;
  }
  KILN_RETURN_IF_ERROR(engine->runToCompletion());
  run.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  run.engine = std::move(engine);
  return run;
}

} // namespace

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"prompts", "n", "devices", "batch", "min-match"}, {});
  if (!args.error.empty() || args.positionals.size() != 1 ||
      !args.has("prompts")) {
    std::fprintf(stderr,
                 "kiln-agree: %s\nusage: kiln-agree m.kiln --prompts FILE "
                 "[-n 64] [--devices host,cuda] [--batch 8] [--min-match "
                 "95]\n",
                 args.error.empty() ? "give an artifact and --prompts"
                                    : args.error.c_str());
    return 2;
  }
  int64_t newTokens = args.integer("n", 64);
  int64_t batch = args.integer("batch", 8);
  int64_t minMatch = args.integer("min-match", 95);
  if (!args.error.empty() || newTokens < 1 || batch < 1) {
    std::fprintf(stderr, "kiln-agree: %s\n",
                 args.error.empty() ? "-n and --batch must be positive"
                                    : args.error.c_str());
    return 2;
  }
  std::vector<std::string> devices;
  std::stringstream ss(args.str("devices", "host,cuda"));
  for (std::string d; std::getline(ss, d, ',');)
    devices.push_back(d);
  if (devices.size() < 2) {
    std::fprintf(stderr, "kiln-agree: --devices needs two devices\n");
    return 2;
  }
  auto prompts = tools::readPromptIdsFile(args.str("prompts"));
  if (!prompts.isOk())
    return fail(prompts.status());
  auto model = Model::load(args.positionals[0]);
  if (!model.isOk())
    return fail(model.status());

  std::vector<DeviceRun> runs;
  for (const std::string &d : devices) {
    auto run = generate(*model, d, *prompts, static_cast<int32_t>(newTokens),
                        static_cast<int32_t>(batch));
    if (!run.isOk())
      return fail(run.status());
    std::printf("%s: %zu prompts x %lld tokens in %.2f s\n", run->name.c_str(),
                prompts->size(), (long long)newTokens, run->seconds);
    runs.push_back(std::move(run).value());
  }
  int worst = 100;
  for (size_t r = 1; r < runs.size(); ++r) {
    size_t same = 0;
    for (size_t i = 0; i < prompts->size(); ++i) {
      const std::vector<int32_t> &a = runs[0].outputs[i],
                                 &b = runs[r].outputs[i];
      if (a == b) {
        ++same;
        continue;
      }
      size_t k = 0;
      while (k < a.size() && k < b.size() && a[k] == b[k])
        ++k;
      int32_t ta = k < a.size() ? a[k] : -1, tb = k < b.size() ? b[k] : -1;
      std::vector<int32_t> sequence = (*prompts)[i];
      sequence.insert(sequence.end(), a.begin(), a.begin() + k);
      std::printf("  prompt %zu: first divergence at new token %zu: %s %d, "
                  "%s %d; margins %.4f and %.4f\n",
                  i, k + 1, devices[0].c_str(), ta, devices[r].c_str(), tb,
                  margin(*runs[0].engine, sequence, ta, tb),
                  margin(*runs[r].engine, sequence, tb, ta));
    }
    int pct = static_cast<int>(100.0 * same / prompts->size());
    worst = std::min(worst, pct);
    std::printf("%s vs %s: %zu of %zu greedy continuations identical "
                "(%.1f%%)\n",
                devices[r].c_str(), devices[0].c_str(), same, prompts->size(),
                100.0 * same / prompts->size());
  }
  return worst >= minMatch ? 0 : 1;
}
