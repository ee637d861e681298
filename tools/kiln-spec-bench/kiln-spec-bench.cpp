//===- kiln-spec-bench.cpp - What speculative decoding buys ---------------===//
//
//   kiln-spec-bench target.kiln [--draft draft.kiln | --ngram]
//                   [--k 2,3,4] [--adaptive] [--max-k 8]
//                   (--prompts ids.txt | --text file [--num-prompts 64]
//                    [--prompt-len 32])
//                   [-n 64] [--batch 8] [--device host|cuda|auto]
//                   [--temperature 0] [--top-k 0] [--top-p 1] [--seed 0]
//                   [--check]
//
// Generates the same prompts through the target alone (the continuous-
// batching Engine) and then, for each K, through the SpeculativeEngine
// (draft model: --draft, or the one a speculative artifact carries; n-gram
// prompt lookup: --ngram, or an artifact compiled with --speculate-ngram;
// K: --k, else the artifact's, else 2..6), and prints for each K the mean
// tokens a sequence gains per target step, the acceptance rate in all and per
// draft position, and generated tokens per second against the plain run. EOS is
// ignored so every run generates the same number of tokens. Prompts are
// token ids (one prompt a line, comma-separated) or windows of a text file
// tokenized with the artifact's tokenizer, BOS first. With --check (greedy
// only) every speculative output is compared with the plain one token for
// token; a difference exits 1. Links only KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/PromptIdsFile.h"
#include "../common/RuntimeToolArgs.h"
#include "../common/SpeculativeRuns.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/SpeculativeEngine.h"
#include "kiln/runtime/Tokenizer.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

using tools::countTokens;
using tools::Outputs;
using tools::runPlain;
using tools::runSpeculative;

int fail(const Status &status) {
  std::fprintf(stderr, "kiln-spec-bench: error: %s\n",
               status.toString().c_str());
  return 1;
}

/// `count` windows of `length` tokens spread evenly over the tokenized
/// text, each after a BOS.
StatusOr<Outputs> textPrompts(const Model &model, const std::string &path,
                              int64_t count, int64_t length) {
  std::ifstream in(path);
  if (!in)
    return makeError(StatusCode::NotFound, "cannot open '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  if (model.tokenizerBytes().empty())
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact carries no tokenizer (kiln-compile "
                     "--tokenizer) to tokenize --text with");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                        Tokenizer::loadFromBytes(model.tokenizerBytes()));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                        tokenizer->encode(text.str()));
  if ((int64_t)ids.size() < length)
    return makeError(StatusCode::InvalidArgument, path, " has ", ids.size(),
                     " tokens, fewer than one prompt of ", length);
  Outputs prompts;
  int64_t span = (int64_t)ids.size() - length;
  for (int64_t i = 0; i < count; ++i) {
    int64_t start = count > 1 ? span * i / (count - 1) : 0;
    std::vector<int32_t> prompt = {model.config().bosTokenId};
    prompt.insert(prompt.end(), ids.begin() + start,
                  ids.begin() + start + length);
    prompts.push_back(std::move(prompt));
  }
  return prompts;
}

} // namespace

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"draft", "k", "max-k", "prompts", "text", "num-prompts",
                    "prompt-len", "n", "batch", "device", "temperature",
                    "top-k", "top-p", "seed"},
                   {"ngram", "adaptive", "check"});
  auto usage = [&](const std::string &why) {
    std::fprintf(stderr,
                 "kiln-spec-bench: %s\nusage: kiln-spec-bench target.kiln "
                 "[--draft draft.kiln | --ngram] [--k 2,3,4] [--adaptive] "
                 "(--prompts ids.txt | --text FILE [--num-prompts 64] "
                 "[--prompt-len 32]) [-n 64] [--batch 8] [--device host] "
                 "[--temperature 0 --top-k 0 --top-p 1 --seed 0] [--check]\n",
                 why.c_str());
    return 2;
  };
  if (!args.error.empty())
    return usage(args.error);
  if (args.positionals.size() != 1)
    return usage("give one target artifact");
  if (args.has("prompts") == args.has("text"))
    return usage("give --prompts or --text");
  if (args.has("draft") && args.has("ngram"))
    return usage("--draft and --ngram exclude each other");
  int64_t n = args.integer("n", 64), batch = args.integer("batch", 8);
  int64_t numPrompts = args.integer("num-prompts", 64);
  int64_t promptLen = args.integer("prompt-len", 32);
  int64_t maxK = args.integer("max-k", 8);
  int64_t topK = args.integer("top-k", 0);
  int64_t seed = args.integer("seed", 0);
  if (!args.error.empty())
    return usage(args.error);
  if (n < 1 || batch < 1 || numPrompts < 1 || promptLen < 1 || maxK < 1)
    return usage("-n, --batch, --num-prompts, --prompt-len and --max-k must "
                 "be positive");
  SamplingParams params;
  params.ignoreEos = true;
  params.temperature = static_cast<float>(args.number("temperature", 0.0));
  params.topK = static_cast<int32_t>(topK);
  params.topP = static_cast<float>(args.number("top-p", 1.0));
  if (!args.error.empty())
    return usage(args.error);
  if (Status valid = params.validate(); !valid.isOk())
    return usage(valid.message());
  bool check = args.has("check");
  if (check && !params.isGreedy())
    return usage("--check compares greedy outputs: drop --temperature");

  const std::string path = args.positionals[0];
  auto target = Model::load(path);
  if (!target.isOk())
    return fail(target.status());
  // The artifact's Speculation section gives the default K and, for
  // kiln-compile --speculate-ngram, the draft kind.
  const SpeculationConfig *spec = (*target)->speculation();
  bool ngram =
      args.has("ngram") || (!args.has("draft") && spec && !spec->draftModel);
  std::vector<int32_t> ks;
  {
    std::string list =
        spec ? std::to_string(spec->k) : std::string("2,3,4,5,6");
    std::stringstream ss(args.str("k", list));
    for (std::string part; std::getline(ss, part, ',');) {
      char *end = nullptr;
      long v = std::strtol(part.c_str(), &end, 10);
      if (part.empty() || *end || v < 1 || v > maxK)
        return usage("--k expects comma-separated values in [1, --max-k], "
                     "got '" +
                     part + "'");
      ks.push_back(static_cast<int32_t>(v));
    }
  }
  std::shared_ptr<const Model> draft;
  std::string draftName = "n-gram lookup";
  if (!ngram) {
    StatusOr<std::shared_ptr<const Model>> loaded =
        makeError(StatusCode::NotFound, "no draft");
    if (args.has("draft")) {
      draftName = args.str("draft");
      loaded = Model::load(draftName);
    } else {
      draftName = "the artifact's draft";
      loaded = tools::loadCarriedDraft(path, **target);
      if ((loaded.isOk() && !*loaded) ||
          (!loaded.isOk() && loaded.status().code() == StatusCode::NotFound))
        return usage("the artifact carries no draft: give --draft or --ngram");
    }
    if (!loaded.isOk())
      return fail(loaded.status());
    draft = *loaded;
  }
  auto prompts =
      args.has("prompts")
          ? tools::readPromptIdsFile(args.str("prompts"))
          : textPrompts(**target, args.str("text"), numPrompts, promptLen);
  if (!prompts.isOk())
    return fail(prompts.status());

  std::string device = args.str("device", "auto");
  auto plain = runPlain(*target, device, static_cast<int32_t>(batch), *prompts,
                        params, static_cast<int32_t>(n));
  if (!plain.isOk())
    return fail(plain.status());
  if (!plain->note.empty())
    std::fprintf(stderr, "kiln-spec-bench: note: %s\n", plain->note.c_str());
  int64_t tokens = countTokens(plain->outputs);
  std::printf("kiln-spec-bench: %s, draft %s, on %s: %zu prompts, %lld new "
              "tokens each, %s, batch %lld\n",
              path.c_str(), draftName.c_str(), plain->device.c_str(),
              prompts->size(), (long long)n,
              params.isGreedy() ? "greedy" : "sampled", (long long)batch);
  double plainRate = tokens / plain->seconds;
  std::printf("plain: %lld tokens in %.2f s (%.1f tok/s)\n", (long long)tokens,
              plain->seconds, plainRate);

  int mismatches = 0;
  for (int32_t k : ks) {
    SpeculativeOptions options;
    options.device = device;
    options.maxSequences = static_cast<int32_t>(batch);
    options.k = k;
    options.maxK = static_cast<int32_t>(maxK);
    options.adaptiveK = args.has("adaptive");
    options.seed = static_cast<uint64_t>(seed);
    auto run = runSpeculative(*target, draft, options, *prompts, params,
                              static_cast<int32_t>(n));
    if (!run.isOk())
      return fail(run.status());
    const SpeculativeStats &stats = run->stats;
    int64_t generated = countTokens(run->outputs);
    double rate = generated / run->seconds;
    std::printf("K=%d%s: %.2f tokens/target step, acceptance %.1f%% (by "
                "position:",
                k, options.adaptiveK ? " adaptive" : "",
                stats.tokensPerTargetStep(), 100.0 * stats.acceptanceRate());
    for (size_t i = 0; i < stats.draftedAt.size(); ++i)
      std::printf(" %.1f%%", 100.0 * stats.acceptanceRateAt(i));
    std::printf("), %lld target steps, %lld draft steps, %lld tokens in "
                "%.2f s (%.1f tok/s, %.2fx plain)\n",
                (long long)stats.verifySteps, (long long)stats.draftSteps,
                (long long)generated, run->seconds, rate, rate / plainRate);
    std::printf("  time: prefill %.2f s, draft %.2f s, verify %.2f s\n",
                stats.prefillSeconds, stats.draftSeconds, stats.verifySeconds);
    if (check) {
      size_t same = 0;
      for (size_t i = 0; i < prompts->size(); ++i) {
        if (run->outputs[i] == plain->outputs[i]) {
          ++same;
          continue;
        }
        const auto &a = plain->outputs[i], &b = run->outputs[i];
        size_t j = 0;
        while (j < a.size() && j < b.size() && a[j] == b[j])
          ++j;
        std::printf("  prompt %zu: differs at new token %zu\n", i, j + 1);
        ++mismatches;
      }
      std::printf("  check: %zu of %zu outputs identical to plain greedy\n",
                  same, prompts->size());
    }
  }
  return mismatches ? 1 : 0;
}
