//===- kiln-run.cpp - Run a .kiln artifact --------------------------------===//
//
//   kiln-run m.kiln --prompt "def fib(n):" [-n 64]
//            [--device auto|host|cuda[:N]]
//            [--temperature 0.8] [--top-k 0] [--top-p 0.95] [--seed 0]
//            [--greedy] [--prompt-ids 1,2,3] [--no-bos] [--kv-blocks N]
//            [--no-echo] [--quiet]
//   kiln-run m.kiln --prompt ... --speculate [--k K] [--ngram]
//   kiln-run m.kiln --check DIR [--tolerance 1e-3] [--min-agreement 99]
//   kiln-run m.kiln --info [--memory-gb 80 [--reserve-gb 4]]
//   kiln-run m.kiln --list-kernels
//
// Generation streams the text of the sampled tokens to stdout (after the
// prompt, unless --no-echo) and timings to stderr. --check runs every
// DIR/test_data_set_*: each row of its input_ids [B, S] is a sequence, all
// in one step of the all-logits prefill; with past_key_values.N.key/value
// inputs (a with-past export) the past is written into the KV cache first
// and the rows run on top of it (attention_mask must be all ones,
// position_ids the positions after the past). It compares the logits with
// the reference (the largest error relative to max |ref| and the share of
// rows whose argmax agrees) and, for present.N.key/value outputs, the
// cache read back afterwards (relative to each tensor's max |ref|), then
// "N passed, N failed". Test data are matched by their TensorProto names.
// --info lists the config, sections, weights and the steps of each entry point;
// with --memory-gb, also how many tokens of KV cache (and sequences of the
// context, and of 2048 tokens) fit on a card of that many GB (10^9 bytes)
// beside the weights and --reserve-gb for the runtime (4).
// --speculate generates through the SpeculativeEngine (docs/Speculative.md)
// with the draft the artifact carries (kiln-compile --draft), or n-gram prompt
// lookup (--ngram, or an artifact compiled with --speculate-ngram); K from --k,
// else the artifact's. --list-kernels prints the Kernels section (generated
// kernels with their shapes, launch rules and arguments, and the missing ones)
// without loading the weights. Links only KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/RuntimeToolArgs.h"
#include "TensorProto.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/SpeculativeEngine.h"
#include "kiln/runtime/Tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <memory>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

int usage(const std::string &error) {
  std::fprintf(stderr, "kiln-run: %s\n", error.c_str());
  std::fprintf(
      stderr,
      "usage: kiln-run m.kiln --prompt TEXT [-n 64] [--device "
      "auto|host|cuda] [--temperature T] [--top-k K] [--top-p P] [--seed "
      "S] [--greedy] [--speculate [--k K] [--ngram]]\n"
      "       kiln-run m.kiln --check DIR [--tolerance 1e-3] "
      "[--min-agreement 99]\n"
      "       kiln-run m.kiln --info [--memory-gb 80 [--reserve-gb 4]]\n"
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

/// One test_data_set of --check, read and matched to the engine's inputs.
struct CheckCase {
  std::string name;
  /// Set when the data cannot be checked (the FAIL line's reason).
  std::string error;
  int64_t rows = 0, length = 0;
  std::vector<SequenceWithPast> sequences;
  tools::Tensor logits;
  /// present.N.key / present.N.value by layer (absent: dims empty).
  std::vector<tools::Tensor> presentKeys, presentValues;
  bool hasPresent = false;
};

bool fileExists(const std::string &path) {
  if (FILE *f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
    return true;
  }
  return false;
}

/// "past_key_values.3.key" -> (3, true); "present.0.value" -> (0, false).
bool parseLayerName(const std::string &name, const std::string &prefix,
                    int64_t &layer, bool &isKey) {
  if (name.compare(0, prefix.size(), prefix) != 0)
    return false;
  std::string rest = name.substr(prefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string::npos || dot == 0)
    return false;
  std::string index = rest.substr(0, dot), kind = rest.substr(dot + 1);
  if (index.find_first_not_of("0123456789") != std::string::npos ||
      (kind != "key" && kind != "value"))
    return false;
  layer = std::strtoll(index.c_str(), nullptr, 10);
  isKey = kind == "key";
  return true;
}

/// Reads DIR/SET/input_K.pb and output_K.pb and matches them by name:
/// input_ids [B, S] (or [S]), optional attention_mask [B, past + S] (all
/// ones), position_ids [B, S] (past .. past + S - 1) and
/// past_key_values.N.key/value [B, kv_heads, past, head_dim]; outputs
/// logits [B, S, vocab] and optional present.N.key/value. Unnamed
/// tensors are taken by position (input_0: ids, output_0: logits).
CheckCase readCheckCase(const std::string &dir, const std::string &set,
                        const ModelConfig &config) {
  CheckCase c;
  c.name = set;
  std::string base = dir + "/" + set + "/";
  auto readAll = [&](const char *prefix, std::vector<tools::Tensor> &out) {
    for (int k = 0;; ++k) {
      std::string path = base + prefix + std::to_string(k) + ".pb";
      if (!fileExists(path)) {
        if (k == 0)
          c.error = std::string("no ") + prefix + "0.pb";
        return k > 0;
      }
      auto t = tools::readTensorProto(path);
      if (!t.isOk()) {
        c.error = t.status().message();
        return false;
      }
      if (t->name.empty())
        t->name = k == 0 ? (std::string(prefix) == "input_" ? "input_ids"
                                                             : "logits")
                         : prefix + std::to_string(k);
      out.push_back(std::move(t).value());
    }
  };
  std::vector<tools::Tensor> inputs, outputs;
  if (!readAll("input_", inputs) || !readAll("output_", outputs))
    return c;

  const tools::Tensor *ids = nullptr, *mask = nullptr, *positions = nullptr;
  int64_t L = config.numLayers, H = config.numKVHeads, D = config.headDim;
  std::vector<const tools::Tensor *> pastK(L), pastV(L);
  bool anyPast = false;
  for (const tools::Tensor &t : inputs) {
    int64_t layer;
    bool isKey;
    if (t.name == "input_ids")
      ids = &t;
    else if (t.name == "attention_mask")
      mask = &t;
    else if (t.name == "position_ids")
      positions = &t;
    else if (parseLayerName(t.name, "past_key_values.", layer, isKey)) {
      if (layer >= L) {
        c.error = t.name + " names a layer the model (" + std::to_string(L) +
                  " layers) does not have";
        return c;
      }
      (isKey ? pastK : pastV)[layer] = &t;
      anyPast = true;
    } else {
      c.error = "unknown input '" + t.name + "'";
      return c;
    }
  }
  if (!ids || ids->isFloat() || ids->dims.empty() || ids->dims.size() > 2 ||
      ids->numElements() == 0) {
    c.error = "input_ids must be [batch, tokens] or [tokens] integers";
    return c;
  }
  c.rows = ids->dims.size() == 2 ? ids->dims[0] : 1;
  c.length = ids->dims.back();
  int64_t B = c.rows, S = c.length, past = 0;
  if (anyPast) {
    for (int64_t l = 0; l < L; ++l) {
      for (const tools::Tensor *t : {pastK[l], pastV[l]}) {
        if (!t) {
          c.error = "past_key_values of layer " + std::to_string(l) +
                    " are missing (the model has " + std::to_string(L) +
                    " layers)";
          return c;
        }
        if (!t->isFloat() || t->dims.size() != 4 || t->dims[0] != B ||
            t->dims[1] != H || t->dims[3] != D ||
            t->dims[2] != pastK[0]->dims[2]) {
          c.error = t->name + " must be [" + std::to_string(B) + ", " +
                    std::to_string(H) + ", past, " + std::to_string(D) + "]";
          return c;
        }
      }
    }
    past = pastK[0]->dims[2];
  }
  if (mask) {
    if (mask->isFloat() || mask->numElements() != B * (past + S)) {
      c.error = "attention_mask must be [" + std::to_string(B) + ", " +
                std::to_string(past + S) + "] integers";
      return c;
    }
    for (int64_t k = 0; k < B * (past + S); ++k)
      if (mask->ints[k] != 1) {
        c.error = "attention_mask of row " + std::to_string(k / (past + S)) +
                  " is not all ones: padded or masked rows are not "
                  "supported (each row must be one unpadded sequence)";
        return c;
      }
  }
  if (positions) {
    if (positions->isFloat() || positions->numElements() != B * S) {
      c.error = "position_ids must be [" + std::to_string(B) + ", " +
                std::to_string(S) + "] integers";
      return c;
    }
    for (int64_t k = 0; k < B * S; ++k)
      if (positions->ints[k] != past + k % S) {
        c.error = "position_ids of row " + std::to_string(k / S) +
                  " are not " + std::to_string(past) + ".." +
                  std::to_string(past + S - 1) +
                  " (the tokens after the past)";
        return c;
      }
  }
  c.sequences.resize(B);
  for (int64_t r = 0; r < B; ++r) {
    SequenceWithPast &seq = c.sequences[r];
    for (int64_t k = 0; k < S; ++k)
      seq.tokens.push_back(static_cast<int32_t>(ids->ints[r * S + k]));
    seq.pastLength = static_cast<int32_t>(past);
    if (!past)
      continue;
    // [B, H, past, D] -> per row [past, H, D].
    for (int64_t l = 0; l < L; ++l)
      for (int kv = 0; kv < 2; ++kv) {
        const std::vector<float> &src = (kv ? pastV : pastK)[l]->floats;
        std::vector<float> dst(past * H * D);
        for (int64_t h = 0; h < H; ++h)
          for (int64_t p = 0; p < past; ++p)
            std::copy_n(src.data() + ((r * H + h) * past + p) * D, D,
                        dst.data() + (p * H + h) * D);
        (kv ? seq.pastValues : seq.pastKeys).push_back(std::move(dst));
      }
  }

  c.presentKeys.resize(L);
  c.presentValues.resize(L);
  bool haveLogits = false;
  for (tools::Tensor &t : outputs) {
    int64_t layer;
    bool isKey;
    if (t.name == "logits") {
      c.logits = std::move(t);
      haveLogits = true;
    } else if (parseLayerName(t.name, "present.", layer, isKey)) {
      if (layer >= L || !t.isFloat() || t.dims.size() != 4 ||
          t.dims[0] != B || t.dims[1] != H || t.dims[2] != past + S ||
          t.dims[3] != D) {
        c.error = t.name + " must be [" + std::to_string(B) + ", " +
                  std::to_string(H) + ", " + std::to_string(past + S) +
                  ", " + std::to_string(D) + "] of one of the " +
                  std::to_string(L) + " layers";
        return c;
      }
      (isKey ? c.presentKeys : c.presentValues)[layer] = std::move(t);
      c.hasPresent = true;
    } else {
      c.error = "unknown output '" + t.name + "'";
      return c;
    }
  }
  if (!haveLogits || !c.logits.isFloat() ||
      c.logits.numElements() != B * S * config.vocabSize)
    c.error = "logits hold " +
              std::to_string(haveLogits ? c.logits.numElements() : 0) +
              " values, expected " + std::to_string(B * S) + " tokens x " +
              std::to_string(config.vocabSize) + " logits";
  return c;
}

/// Largest |got - ref| and |ref| over n values; a NaN on one side only
/// sets `nan`.
void accumulate(const float *got, const float *ref, int64_t n, double &maxAbs,
                double &maxRef, bool &nan) {
  for (int64_t k = 0; k < n; ++k) {
    if (std::isnan(got[k]) || std::isnan(ref[k])) {
      nan |= std::isnan(got[k]) != std::isnan(ref[k]);
      continue;
    }
    maxAbs = std::max(maxAbs, (double)std::fabs(got[k] - ref[k]));
    maxRef = std::max(maxRef, (double)std::fabs(ref[k]));
  }
}

int runCheck(std::shared_ptr<const Model> model, EngineOptions options,
             const std::string &dir, double tolerance, double minAgreement) {
  std::vector<std::string> sets = testDataSets(dir);
  if (sets.empty()) {
    std::fprintf(stderr, "kiln-run: no test_data_set_* in '%s'\n",
                 dir.c_str());
    return 1;
  }
  const ModelConfig &config = model->config();
  std::vector<CheckCase> cases;
  int64_t maxRows = 1;
  for (const std::string &set : sets) {
    cases.push_back(readCheckCase(dir, set, config));
    maxRows = std::max(maxRows, cases.back().rows);
  }
  // Every row of a set runs as its own sequence, all in one step.
  options.maxSequences = static_cast<int32_t>(std::min<int64_t>(maxRows, 1024));
  auto engine = Engine::create(model, options);
  if (!engine.isOk())
    return fail(engine.status());

  int64_t vocab = config.vocabSize;
  int64_t H = config.numKVHeads, D = config.headDim;
  int passed = 0, failed = 0;
  for (CheckCase &c : cases) {
    if (!c.error.empty()) {
      std::printf("%s: %s FAIL\n", c.name.c_str(), c.error.c_str());
      ++failed;
      continue;
    }
    StatusOr<ForwardAllResult> result =
        (*engine)->forwardAllWithPast(c.sequences, c.hasPresent);
    if (!result.isOk()) {
      std::printf("%s: %s FAIL\n", c.name.c_str(),
                  result.status().toString().c_str());
      ++failed;
      continue;
    }
    int64_t n = c.rows * c.length;
    double maxAbs = 0, maxRef = 0;
    bool nan = false;
    int64_t agree = 0;
    for (int64_t r = 0; r < n; ++r) {
      const float *got = result->logits.data() + r * vocab;
      const float *ref = c.logits.floats.data() + r * vocab;
      accumulate(got, ref, vocab, maxAbs, maxRef, nan);
      agree += std::max_element(got, got + vocab) - got ==
               std::max_element(ref, ref + vocab) - ref;
    }
    double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
    double agreement = 100.0 * agree / n;
    bool ok = !nan && rel <= tolerance && agreement >= minAgreement;
    std::string rows =
        c.rows > 1 ? " in " + std::to_string(c.rows) + " sequences" : "";
    std::string past;
    if (c.sequences[0].pastLength)
      past = " after " + std::to_string(c.sequences[0].pastLength) +
             " past tokens";
    std::string present;
    if (c.hasPresent) {
      // Each present tensor against the cache read back, relative to its
      // own largest value; the worst of them.
      double worstRel = 0, worstAbs = 0;
      int64_t compared = 0;
      for (size_t l = 0; l < c.presentKeys.size(); ++l)
        for (int kv = 0; kv < 2; ++kv) {
          const tools::Tensor &ref =
              (kv ? c.presentValues : c.presentKeys)[l];
          if (ref.dims.empty())
            continue;
          int64_t total = ref.dims[2];
          double pAbs = 0, pRef = 0;
          std::vector<float> got(total * H * D);
          for (int64_t r = 0; r < c.rows; ++r) {
            // The cache's [total, H, D] as the exporter's [H, total, D].
            const std::vector<float> &cache =
                (kv ? result->values : result->keys)[r][l];
            for (int64_t h = 0; h < H; ++h)
              for (int64_t p = 0; p < total; ++p)
                std::copy_n(cache.data() + (p * H + h) * D, D,
                            got.data() + (h * total + p) * D);
            accumulate(got.data(), ref.floats.data() + r * total * H * D,
                       total * H * D, pAbs, pRef, nan);
          }
          double pRel = pRef > 0 ? pAbs / pRef : pAbs;
          worstRel = std::max(worstRel, pRel);
          worstAbs = std::max(worstAbs, pAbs);
          ++compared;
        }
      ok &= !nan && worstRel <= tolerance;
      char buffer[160];
      std::snprintf(buffer, sizeof(buffer),
                    "; %lld present K/V: max_abs %.3e rel %.3e",
                    (long long)compared, worstAbs, worstRel);
      present = buffer;
    }
    std::printf("%s: %lld tokens%s%s, max_abs %.3e rel %.3e, argmax "
                "agreement %.1f%% (%lld/%lld)%s%s %s\n",
                c.name.c_str(), (long long)n, rows.c_str(), past.c_str(),
                maxAbs, rel, agreement, (long long)agree, (long long)n,
                present.c_str(), nan ? ", NaN mismatch" : "",
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
  if (const SpeculationConfig *spec = model.speculation())
    std::printf("speculation: K=%d, %s (kiln-spec-bench)\n", spec->k,
                spec->draftModel ? "draft model in sections draft.*"
                                 : "n-gram prompt lookup");
  for (const EntryPoint &e : model.plan().entries)
    std::printf("%s", describeEntryPoint(e).c_str());
}

/// What fits beside the weights on a card of `memoryGB` (10^9 bytes) with
/// `reserveGB` kept for the runtime: the KV cache's tokens and sequences.
void printCapacity(const Model &model, double memoryGB, double reserveGB) {
  int64_t perToken = kvCacheConfigFor(model, 1).kvBytesPerToken();
  int64_t weights = model.totalWeightBytes();
  double room = memoryGB * 1e9 - reserveGB * 1e9 - double(weights);
  int64_t tokens = room > 0 ? int64_t(room / double(perToken)) : 0;
  int64_t context = model.config().contextLength;
  std::printf("memory: %.3g GB card, %.3g GB reserved, weights %lld bytes, "
              "KV %lld bytes a token: %lld tokens, %lld sequences of %lld "
              "(the context), %lld of 2048\n",
              memoryGB, reserveGB, (long long)weights, (long long)perToken,
              (long long)tokens, (long long)(tokens / context),
              (long long)context, (long long)(tokens / 2048));
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
                    "top-k", "top-p", "seed", "kv-blocks", "check", "tolerance",
                    "min-agreement", "k", "memory-gb", "reserve-gb"},
                   {"greedy", "info", "list-kernels", "no-bos", "no-echo",
                    "quiet", "no-verify", "speculate", "ngram"});
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
    double memoryGB = args.number("memory-gb", 0.0);
    double reserveGB = args.number("reserve-gb", 4.0);
    if (!args.error.empty() ||
        (args.has("memory-gb") && !(memoryGB > 0)) || !(reserveGB >= 0))
      return usage(args.error.empty()
                       ? "--memory-gb must be positive, --reserve-gb not "
                         "negative"
                       : args.error);
    printInfo(path, **model);
    if (args.has("memory-gb"))
      printCapacity(**model, memoryGB, reserveGB);
    return 0;
  }

  EngineOptions engineOptions;
  engineOptions.device = args.str("device", "auto");
  engineOptions.numBlocks = static_cast<int32_t>(kvBlocks);
  engineOptions.seed = seed;
  engineOptions.maxSequences = 1;
  if (args.has("check"))
    return runCheck(*model, engineOptions, args.str("check"), tolerance,
                    minAgreement);
  // Plain or speculative generation: one of the two engines.
  std::unique_ptr<Engine> plainEngine;
  std::unique_ptr<SpeculativeEngine> specEngine;
  if (args.has("speculate")) {
    const SpeculationConfig *spec = (*model)->speculation();
    SpeculativeOptions options;
    options.device = engineOptions.device;
    options.numBlocks = engineOptions.numBlocks;
    options.seed = seed;
    options.maxSequences = 1;
    int64_t k = args.integer("k", spec ? spec->k : 4);
    if (!args.error.empty() || k < 1 || k > 1024)
      return usage(args.error.empty() ? "--k must lie in [1, 1024]"
                                      : args.error);
    options.k = static_cast<int32_t>(k);
    options.maxK = std::max(options.k, options.maxK);
    std::shared_ptr<const Model> draft;
    if (!args.has("ngram") && !(spec && !spec->draftModel)) {
      ModelLoadOptions draftOptions = loadOptions;
      draftOptions.part = "draft";
      auto loaded = Model::load(path, draftOptions);
      if (!loaded.isOk())
        return fail(loaded.status());
      draft = *loaded;
    }
    auto engine = SpeculativeEngine::create(*model, draft, options);
    if (!engine.isOk())
      return fail(engine.status());
    specEngine = std::move(engine).value();
  } else {
    if (args.has("k") || args.has("ngram"))
      return usage("--k and --ngram need --speculate");
    auto engine = Engine::create(*model, engineOptions);
    if (!engine.isOk())
      return fail(engine.status());
    plainEngine = std::move(engine).value();
  }

  // The prompt: text through the artifact's tokenizer, or raw ids.
  const ModelConfig &config = (*model)->config();
  std::unique_ptr<Tokenizer> tokenizer;
  if (!(*model)->tokenizerBytes().empty()) {
    auto loaded = Tokenizer::loadFromBytes((*model)->tokenizerBytes());
    // A runtime built without SentencePiece still runs token ids.
    if (loaded.isOk())
      tokenizer = std::move(loaded).value();
    else if (!args.has("prompt-ids"))
      return fail(loaded.status());
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
  TokenCallback stream = [&](const TokenEvent &event) {
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
  };
  auto added = plainEngine
                   ? plainEngine->addRequest(
                         prompt, params, static_cast<int32_t>(maxNew), stream)
                   : specEngine->addRequest(
                         prompt, params, static_cast<int32_t>(maxNew), stream);
  if (!added.isOk())
    return fail(added.status());
  Status ran = plainEngine ? plainEngine->runToCompletion()
                           : specEngine->runToCompletion();
  // End the streamed text before any status line on stderr.
  std::printf("\n");
  std::fflush(stdout);
  if (!ran.isOk())
    return fail(ran);
  if (!streamError.isOk())
    return fail(streamError);
  if (!quiet && specEngine) {
    if (!specEngine->deviceNote().empty())
      std::fprintf(stderr, "kiln-run: running on %s\n",
                   specEngine->deviceNote().c_str());
    const SpeculativeStats &s = specEngine->stats();
    std::fprintf(stderr,
                 "kiln-run: %s device, speculative (K=%d, %s): %lld tokens "
                 "in %.1f ms, %.2f tokens per target step, acceptance "
                 "%.1f%%, stop: %s\n",
                 specEngine->targetDevice().name().c_str(), specEngine->k(),
                 specEngine->usesDraftModel() ? "draft model" : "n-gram lookup",
                 (long long)s.generatedTokens, s.busySeconds * 1e3,
                 s.tokensPerTargetStep(), 100.0 * s.acceptanceRate(),
                 finishReasonName(finish));
  }
  if (!quiet && plainEngine) {
    std::unique_ptr<Engine> &engine = plainEngine;
    if (!engine->deviceNote().empty())
      std::fprintf(stderr, "kiln-run: running on %s\n",
                   engine->deviceNote().c_str());
    const EngineStats &s = engine->stats();
    std::fprintf(stderr,
                 "kiln-run: %s device: prefill %lld tokens in %.1f ms (%.0f "
                 "tok/s), decode %lld tokens in %.1f ms (%.2f ms/token), "
                 "stop: %s\n",
                 engine->device().name().c_str(), (long long)s.prefillTokens,
                 s.prefillSeconds * 1e3,
                 s.prefillSeconds > 0 ? s.prefillTokens / s.prefillSeconds
                                      : 0.0,
                 (long long)s.decodeTokens, s.decodeSeconds * 1e3,
                 s.decodeTokens ? s.decodeSeconds * 1e3 / s.decodeTokens : 0.0,
                 finishReasonName(finish));
  }
  return 0;
}
