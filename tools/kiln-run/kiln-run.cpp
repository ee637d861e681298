//===- kiln-run.cpp - Run a .kiln artifact --------------------------------===//
//
//   kiln-run m.kiln --prompt "def fib(n):" [-n 64] [--device host|cuda]
//            [--temperature 0.8] [--top-k 0] [--top-p 0.95] [--seed 0]
//            [--greedy] [--prompt-ids 1,2,3] [--no-bos] [--kv-blocks N]
//            [--no-echo] [--quiet]
//   kiln-run m.kiln --check DIR [--tolerance 1e-3] [--min-agreement 99]
//   kiln-run m.kiln --info
//   kiln-run m.kiln --list-kernels
//
// Generation streams the text of the sampled tokens to stdout (after the
// prompt, unless --no-echo) and timings to stderr. --check runs the token
// ids of every DIR/test_data_set_*/input_0.pb through the all-logits
// prefill and compares the logits with output_0.pb: the largest error
// relative to max |ref| and the share of rows whose argmax agrees, then
// "N passed, N failed". --info lists the config, sections, weights and the
// steps of each entry point. --list-kernels prints the Kernels section
// (generated kernels with their shapes, launch rules and arguments, and
// the missing ones) without loading the weights. Links only KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/RuntimeToolArgs.h"
#include "TensorProto.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/Tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

int usage(const std::string &error) {
  std::fprintf(stderr, "kiln-run: %s\n", error.c_str());
  std::fprintf(stderr,
               "usage: kiln-run m.kiln --prompt TEXT [-n 64] [--device "
               "host|cuda] [--temperature T] [--top-k K] [--top-p P] [--seed "
               "S] [--greedy]\n"
               "       kiln-run m.kiln --check DIR [--tolerance 1e-3] "
               "[--min-agreement 99]\n"
               "       kiln-run m.kiln --info\n"
               "       kiln-run m.kiln --list-kernels\n");
  return 2;
}

int fail(const Status &status) {
  std::fprintf(stderr, "kiln-run: error: %s\n", status.toString().c_str());
  return 1;
}

std::vector<std::string> testDataSets(const std::string &dir) {
  std::vector<std::string> sets;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("test_data_set_", 0) == 0)
        sets.push_back(name);
    }
    closedir(d);
  }
  std::sort(sets.begin(), sets.end());
  return sets;
}

int runCheck(Engine &engine, const std::string &dir, double tolerance,
             double minAgreement) {
  std::vector<std::string> sets = testDataSets(dir);
  if (sets.empty()) {
    std::fprintf(stderr, "kiln-run: no test_data_set_* in '%s'\n",
                 dir.c_str());
    return 1;
  }
  int64_t vocab = engine.model().config().vocabSize;
  int passed = 0, failed = 0;
  for (const std::string &set : sets) {
    std::string base = dir + "/" + set + "/";
    auto input = tools::readTensorProto(base + "input_0.pb");
    auto output = tools::readTensorProto(base + "output_0.pb");
    if (!input.isOk() || !output.isOk()) {
      std::printf("%s: %s FAIL\n", set.c_str(),
                  (!input.isOk() ? input.status() : output.status())
                      .message()
                      .c_str());
      ++failed;
      continue;
    }
    if (input->isFloat() || input->dims.empty() ||
        input->numElements() != input->dims.back()) {
      std::printf("%s: input_0 must be one row of token ids FAIL\n",
                  set.c_str());
      ++failed;
      continue;
    }
    std::vector<int32_t> ids(input->ints.begin(), input->ints.end());
    int64_t n = ids.size();
    if (!output->isFloat() || output->numElements() != n * vocab) {
      std::printf("%s: output_0 holds %lld values, expected %lld tokens x "
                  "%lld logits FAIL\n",
                  set.c_str(), (long long)output->numElements(),
                  (long long)n, (long long)vocab);
      ++failed;
      continue;
    }
    StatusOr<std::vector<float>> logits = engine.forwardAll(ids);
    if (!logits.isOk()) {
      std::printf("%s: %s FAIL\n", set.c_str(),
                  logits.status().toString().c_str());
      ++failed;
      continue;
    }
    double maxAbs = 0, maxRef = 0;
    bool nan = false;
    int64_t agree = 0;
    for (int64_t r = 0; r < n; ++r) {
      const float *got = logits->data() + r * vocab;
      const float *ref = output->floats.data() + r * vocab;
      for (int64_t k = 0; k < vocab; ++k) {
        if (std::isnan(got[k]) || std::isnan(ref[k])) {
          nan |= std::isnan(got[k]) != std::isnan(ref[k]);
          continue;
        }
        maxAbs = std::max(maxAbs, (double)std::fabs(got[k] - ref[k]));
        maxRef = std::max(maxRef, (double)std::fabs(ref[k]));
      }
      agree += std::max_element(got, got + vocab) - got ==
               std::max_element(ref, ref + vocab) - ref;
    }
    double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
    double agreement = 100.0 * agree / n;
    bool ok = !nan && rel <= tolerance && agreement >= minAgreement;
    std::printf("%s: %lld tokens, max_abs %.3e rel %.3e, argmax agreement "
                "%.1f%% (%lld/%lld)%s %s\n",
                set.c_str(), (long long)n, maxAbs, rel, agreement,
                (long long)agree, (long long)n, nan ? ", NaN mismatch" : "",
                ok ? "PASS" : "FAIL");
    ok ? ++passed : ++failed;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

void printInfo(const std::string &path, const Model &model) {
  const ModelConfig &c = model.config();
  std::printf("artifact %s\n", path.c_str());
  std::printf("config: vocab %d, bos %d, eos %d, context %d, %d layers, %d "
              "heads, %d kv heads, head_dim %d, hidden %d, intermediate %d, "
              "rope_theta %g, dtype %s, block_size %d\n",
              c.vocabSize, c.bosTokenId, c.eosTokenId, c.contextLength,
              c.numLayers, c.numHeads, c.numKVHeads, c.headDim, c.hiddenSize,
              c.intermediateSize, c.ropeTheta, c.dtype.c_str(), c.blockSize);
  std::printf("target: %s\n", model.plan().target.c_str());
  int64_t counts[4] = {}, bytes[4] = {};
  for (const WeightInfo &w : model.weights().weights) {
    counts[(int)w.storage] += 1;
    bytes[(int)w.storage] += w.numBytes();
  }
  std::printf("weights: %zu (%lld bytes): %lld embedded, %lld external, "
              "%lld dummy\n",
              model.weights().size(), (long long)model.totalWeightBytes(),
              (long long)counts[1], (long long)counts[2],
              (long long)counts[3]);
  std::printf("tokenizer: %s\n",
              model.tokenizerBytes().empty() ? "none" : "embedded");
  if (const KernelTable *k = model.kernels())
    std::printf("kernels: %s, %zu generated (%zu with cubin), %zu missing "
                "(--list-kernels)\n",
                k->target.c_str(), k->numGenerated(), k->numCubins(),
                k->numMissing());
  else
    std::printf("kernels: none\n");
  for (const EntryPoint &e : model.plan().entries)
    std::printf("%s", describeEntryPoint(e).c_str());
}

/// "1,2,3" -> ids.
bool parseIds(const std::string &text, std::vector<int32_t> &ids) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string part =
        text.substr(pos, comma == std::string::npos ? std::string::npos
                                                    : comma - pos);
    char *end = nullptr;
    long v = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end)
      return false;
    ids.push_back(static_cast<int32_t>(v));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return !ids.empty();
}

} // namespace

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"prompt", "prompt-ids", "n", "device", "temperature",
                    "top-k", "top-p", "seed", "kv-blocks", "check",
                    "tolerance", "min-agreement"},
                   {"greedy", "info", "list-kernels", "no-bos", "no-echo", "quiet",
                    "no-verify"});
  if (!args.error.empty())
    return usage(args.error);
  if (args.positionals.size() != 1)
    return usage("expected one artifact");
  std::string path = args.positionals[0];
  int64_t maxNew = args.integer("n", 64);
  int64_t kvBlocks = args.integer("kv-blocks", 0);
  SamplingParams params;
  params.temperature = static_cast<float>(args.number("temperature", 0.8));
  params.topK = static_cast<int32_t>(args.integer("top-k", 0));
  params.topP = static_cast<float>(args.number("top-p", 0.95));
  if (args.has("greedy"))
    params.temperature = 0.0f;
  uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0));
  double tolerance = args.number("tolerance", 1e-3);
  double minAgreement = args.number("min-agreement", 99.0);
  if (!args.error.empty())
    return usage(args.error);
  if (maxNew < 1 || kvBlocks < 0 || kvBlocks > INT32_MAX)
    return usage("-n must be positive and --kv-blocks non-negative");
  Status validParams = params.validate();
  if (!validParams.isOk())
    return usage(validParams.message());

  if (args.has("list-kernels")) {
    auto reader = ArtifactReader::openFile(path);
    if (!reader.isOk())
      return fail(reader.status());
    auto bytes = reader->sectionData(SectionKind::Kernels);
    if (!bytes.isOk())
      return fail(makeError(StatusCode::NotFound, "'", path,
                            "': no Kernels section (compiled with --target "
                            "none or host?)"));
    auto table = KernelTable::deserialize(*bytes);
    if (!table.isOk())
      return fail(Status(table.status().code(),
                         "'" + path + "': " + table.status().message()));
    std::fputs(describeKernelTable(*table).c_str(), stdout);
    return 0;
  }

  ModelLoadOptions loadOptions;
  loadOptions.verifyChecksums = !args.has("no-verify");
  auto model = Model::load(path, loadOptions);
  if (!model.isOk())
    return fail(model.status());
  if (args.has("info")) {
    printInfo(path, **model);
    return 0;
  }

  EngineOptions engineOptions;
  engineOptions.device = args.str("device", "host");
  engineOptions.numBlocks = static_cast<int32_t>(kvBlocks);
  engineOptions.seed = seed;
  engineOptions.maxSequences = 1;
  auto engine = Engine::create(*model, engineOptions);
  if (!engine.isOk())
    return fail(engine.status());

  if (args.has("check"))
    return runCheck(**engine, args.str("check"), tolerance, minAgreement);

  // The prompt: text through the artifact's tokenizer, or raw ids.
  const ModelConfig &config = (*model)->config();
  std::unique_ptr<Tokenizer> tokenizer;
  if (!(*model)->tokenizerBytes().empty()) {
    auto loaded = Tokenizer::loadFromBytes((*model)->tokenizerBytes());
    if (!loaded.isOk())
      return fail(loaded.status());
    tokenizer = std::move(loaded).value();
  }
  // Text prompts start with BOS (unless --no-bos); ids are taken as given.
  std::vector<int32_t> prompt;
  if (args.has("prompt-ids")) {
    if (!parseIds(args.str("prompt-ids"), prompt))
      return usage("--prompt-ids expects comma-separated token ids");
  } else if (args.has("prompt")) {
    if (!args.has("no-bos"))
      prompt.push_back(config.bosTokenId);
    if (!tokenizer)
      return fail(makeError(StatusCode::FailedPrecondition,
                            "the artifact has no tokenizer (compile with "
                            "--tokenizer) - use --prompt-ids"));
    auto ids = tokenizer->encode(args.str("prompt"));
    if (!ids.isOk())
      return fail(ids.status());
    prompt.insert(prompt.end(), ids->begin(), ids->end());
  } else {
    return usage("give --prompt, --prompt-ids, --check or --info");
  }

  bool echo = !args.has("no-echo"), quiet = args.has("quiet");
  std::vector<int32_t> generated;
  std::string printed;
  FinishReason finish = FinishReason::None;
  Status streamError;
  if (echo) {
    if (args.has("prompt-ids"))
      for (int32_t id : prompt)
        std::printf("%d ", id);
    else
      std::fputs(args.str("prompt").c_str(), stdout);
    std::fflush(stdout);
  }
  auto added = (*engine)->addRequest(
      prompt, params, static_cast<int32_t>(maxNew),
      [&](const TokenEvent &event) {
        finish = event.finish;
        generated.push_back(event.token);
        if (!tokenizer || args.has("prompt-ids")) {
          std::printf("%d ", event.token);
          std::fflush(stdout);
          return;
        }
        // Decode everything so far and print what is new, so that pieces
        // that join (spaces, multi-byte characters) come out right.
        auto text = tokenizer->decode(generated);
        if (!text.isOk()) {
          streamError = text.status();
          return;
        }
        if (text->size() > printed.size() &&
            text->compare(0, printed.size(), printed) == 0) {
          std::fputs(text->c_str() + printed.size(), stdout);
          std::fflush(stdout);
          printed = *text;
        }
      });
  if (!added.isOk())
    return fail(added.status());
  Status ran = (*engine)->runToCompletion();
  // End the streamed text before any status line on stderr.
  std::printf("\n");
  std::fflush(stdout);
  if (!ran.isOk())
    return fail(ran);
  if (!streamError.isOk())
    return fail(streamError);
  if (!quiet) {
    const EngineStats &s = (*engine)->stats();
    std::fprintf(stderr,
                 "kiln-run: %s device: prefill %lld tokens in %.1f ms (%.0f "
                 "tok/s), decode %lld tokens in %.1f ms (%.2f ms/token), "
                 "stop: %s\n",
                 (*engine)->device().name().c_str(),
                 (long long)s.prefillTokens, s.prefillSeconds * 1e3,
                 s.prefillSeconds > 0 ? s.prefillTokens / s.prefillSeconds
                                      : 0.0,
                 (long long)s.decodeTokens, s.decodeSeconds * 1e3,
                 s.decodeTokens ? s.decodeSeconds * 1e3 / s.decodeTokens : 0.0,
                 finishReasonName(finish));
  }
  return 0;
}
