//===- kiln-bench.cpp - Prefill and decode speed of a .kiln artifact ------===//
//
//   kiln-bench m.kiln [--batch 1,8,32] [--prompt-len 128] [--gen-len 256]
//              [--device auto] [--repeats 3] [--warmup 3] [--seed 0]
//              [--bandwidth-gbs G] [--matmul-tflops 790]
//              [--speculate 2,4 --prompts ids.txt]
//
// For each batch size B: B random prompts of --prompt-len tokens are
// prefilled in one step, then --gen-len greedy decode steps run for all B
// sequences (EOS ignored), through the same Engine that serves requests
// (continuous batching, paged KV cache, host sampling included). Each step
// is timed on the host clock; the runtime synchronizes once per step when
// it copies the logits back, so a step's time is its whole cost. Reported:
// prefill ms (median over repeats), decode ms/step (median over every
// step of every repeat) after --warmup untimed rounds (3: the CUDA device
// runs a prompt split eagerly the first two times and captures its graph
// the third, so a timed round with fewer warm-ups counts the capture and
// instantiation on the host clock as prefill time) and tok/s = B / ms-per-step,
// each against its floor (PERFORMANCE.md): decode >= weight bytes read a step
// (an embedding table: one row a sequence) / copy bandwidth (measured on the
// device, read + write counted, unless --bandwidth-gbs is given), prefill >= 2
// * matmul params * tokens / --matmul-tflops (Kiln has no vendor GEMM to
// measure the rate with; the bench script measures it with PyTorch on the same
// card and passes it).
//
// --speculate K[,K..] (a speculative artifact: kiln-compile --draft or
// --speculate-ngram) then generates the --prompts (token ids, one prompt a
// line) for --gen-len greedy tokens at each batch size, through the plain
// Engine and through the SpeculativeEngine with each K, and prints the
// speed with and without speculation, the mean tokens a sequence gains per
// target step and the acceptance rate per draft position. Acceptance
// depends on the text, hence real prompts rather than random ones. Links
// only KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/PromptIdsFile.h"
#include "../common/RuntimeToolArgs.h"
#include "../common/SpeculativeRuns.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

int fail(const Status &status) {
  std::fprintf(stderr, "kiln-bench: error: %s\n", status.toString().c_str());
  return 1;
}

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Elements of the weights that matrix products read (Linear, GatedMLP;
/// QuantLinear and SparseLinear as their dense N x K).
int64_t matmulParams(const Model &model) {
  const EntryPoint *decode = model.entry("decode");
  std::vector<bool> seen(model.weights().size(), false);
  int64_t n = 0;
  for (const Step &s : decode->steps) {
    // Packed weights (QuantLinear's codes, SparseLinear's kept values)
    // count as the dense N x K they stand for: the prefill floor is the
    // dense model's matmul work at the dense rate.
    if ((s.kind == OpKind::QuantLinear || s.kind == OpKind::SparseLinear) &&
        s.operands.size() > 1) {
      const Buffer &x = decode->buffers[s.operands[0]];
      const Buffer &w = decode->buffers[s.operands[1]];
      if (w.kind == BufferKind::Weight && !seen[w.weightIndex] &&
          !w.shape.empty() && w.shape[0].isConstant() && !x.shape.empty() &&
          x.shape.back().isConstant()) {
        seen[w.weightIndex] = true;
        n += w.shape[0].value * x.shape.back().value;
      }
      continue;
    }
    std::vector<uint32_t> ids;
    if (s.kind == OpKind::Linear)
      ids = {s.operands[1]};
    else if (s.kind == OpKind::GatedMLP)
      ids = {s.operands[1], s.operands[2], s.operands[3]};
    for (uint32_t id : ids) {
      const Buffer &b = decode->buffers[id];
      if (b.kind != BufferKind::Weight || seen[b.weightIndex])
        continue;
      seen[b.weightIndex] = true;
      n += model.weights()[b.weightIndex].numElements();
    }
  }
  return n;
}

/// Weight bytes one decode step of `batch` sequences reads: every weight
/// in full, except a table only Embedding steps read, of which each
/// sequence gathers one row (an untied 8B-shaped embedding is 1.05 GB of
/// 16.06; a tied one is also the lm_head's weight and counts in full).
int64_t decodeReadBytes(const Model &model, int64_t batch) {
  const EntryPoint *decode = model.entry("decode");
  const auto &weights = model.weights();
  std::vector<bool> full(weights.size(), false), gathered(weights.size());
  for (const Step &s : decode->steps)
    for (size_t i = 0; i < s.operands.size(); ++i) {
      // Absent optional operands (a QuantLinear's zero points, bias).
      if (s.operands[i] >= decode->buffers.size())
        continue;
      const Buffer &b = decode->buffers[s.operands[i]];
      if (b.kind != BufferKind::Weight)
        continue;
      bool embeddingTable = s.kind == OpKind::Embedding && i == 0;
      (embeddingTable ? gathered : full)[b.weightIndex] = true;
    }
  int64_t bytes = 0;
  for (size_t w = 0; w < weights.size(); ++w) {
    const WeightInfo &info = weights[w];
    if (full[w] || !gathered[w] || info.shape.empty() || info.shape[0] <= 0)
      bytes += info.numBytes();
    else
      bytes +=
          std::min(batch, info.shape[0]) * (info.numBytes() / info.shape[0]);
  }
  return bytes;
}

struct Result {
  double prefillMs = 0, stepMs = 0;
  int64_t steps = 0;
};

StatusOr<Result> bench(std::shared_ptr<const Model> model,
                       const std::string &device, int64_t batch,
                       int64_t promptLen, int64_t genLen, int64_t repeats,
                       int64_t warmup, uint64_t seed, std::string &deviceName,
                       double &bandwidth) {
  const ModelConfig &c = model->config();
  if (promptLen + genLen > c.contextLength)
    return makeError(StatusCode::InvalidArgument, "--prompt-len + --gen-len = ",
                     promptLen + genLen, " exceeds the context of ",
                     c.contextLength);
  EngineOptions options;
  options.device = device;
  options.maxSequences = static_cast<int32_t>(batch);
  options.maxPrefillTokens = static_cast<int32_t>(batch * promptLen);
  int64_t blocksPerSeq = (promptLen + genLen + c.blockSize) / c.blockSize;
  options.numBlocks = static_cast<int32_t>(batch * blocksPerSeq + 1);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                        Engine::create(model, options));
  deviceName = engine->device().name();
  if (bandwidth <= 0) {
    auto measured = const_cast<Device &>(engine->device())
                        .measureCopyBandwidth(int64_t(1) << 30);
    if (measured.isOk())
      bandwidth = *measured;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(3, c.vocabSize - 1);
  SamplingParams greedy;
  greedy.ignoreEos = true;
  std::vector<double> prefill, steps;
  // Untimed rounds first: module loads, allocations, caches, graph
  // captures.
  for (int64_t r = 0; r < warmup + repeats; ++r) {
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<int32_t> prompt(promptLen);
      for (int32_t &t : prompt)
        t = token(rng);
      KILN_RETURN_IF_ERROR(engine
                               ->addRequest(std::move(prompt), greedy,
                                            static_cast<int32_t>(genLen),
                                            nullptr)
                               .status());
    }
    int64_t before = engine->stats().prefillSteps;
    double t0 = now();
    while (engine->stats().prefillSteps == before ||
           engine->stats().prefillTokens % (batch * promptLen) != 0)
      KILN_RETURN_IF_ERROR(engine->step());
    double t1 = now();
    if (r >= warmup)
      prefill.push_back((t1 - t0) * 1e3);
    while (!engine->idle()) {
      double s0 = now();
      KILN_RETURN_IF_ERROR(engine->step());
      if (r >= warmup)
        steps.push_back((now() - s0) * 1e3);
    }
  }
  Result result;
  result.prefillMs = median(prefill);
  result.stepMs = median(steps);
  result.steps = static_cast<int64_t>(steps.size());
  return result;
}

/// The --speculate table: for each batch size and K, plain vs speculative
/// generation of the same prompts.
int benchSpeculation(const std::string &path,
                     std::shared_ptr<const Model> target,
                     const std::string &device,
                     const std::vector<int64_t> &batches,
                     const std::vector<int32_t> &ks,
                     const tools::Outputs &prompts, int32_t genLen) {
  auto draft = tools::loadCarriedDraft(path, *target);
  if (!draft.isOk())
    return fail(draft.status());
  SamplingParams greedy;
  greedy.ignoreEos = true;
  std::printf("speculative decoding (%s), %zu prompts, %d new tokens each, "
              "greedy:\n",
              *draft ? "the artifact's draft" : "n-gram lookup",
              prompts.size(), genLen);
  std::printf("%6s %3s %12s %11s %8s %12s %8s  %s\n", "batch", "K",
              "plain_tok/s", "spec_tok/s", "speedup", "tokens/step",
              "accept%", "accept% by draft position");
  for (int64_t b : batches) {
    auto plain = tools::runPlain(target, device, static_cast<int32_t>(b),
                                 prompts, greedy, genLen);
    if (!plain.isOk())
      return fail(plain.status());
    double plainRate = tools::countTokens(plain->outputs) / plain->seconds;
    for (int32_t k : ks) {
      SpeculativeOptions options;
      options.device = device;
      options.maxSequences = static_cast<int32_t>(b);
      options.k = k;
      options.maxK = std::max<int32_t>(k, 8);
      auto run = tools::runSpeculative(target, *draft, options, prompts,
                                       greedy, genLen);
      if (!run.isOk())
        return fail(run.status());
      double rate = tools::countTokens(run->outputs) / run->seconds;
      const SpeculativeStats &st = run->stats;
      std::printf("%6lld %3d %12.1f %11.1f %7.2fx %12.2f %7.1f%% ",
                  (long long)b, k, plainRate, rate, rate / plainRate,
                  st.tokensPerTargetStep(), 100.0 * st.acceptanceRate());
      for (size_t i = 0; i < st.draftedAt.size(); ++i)
        std::printf(" %.1f", 100.0 * st.acceptanceRateAt(i));
      std::printf("\n");
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"batch", "prompt-len", "gen-len", "device", "repeats",
                    "warmup", "seed", "bandwidth-gbs", "matmul-tflops", "speculate",
                    "prompts"},
                   {});
  if (!args.error.empty() || args.positionals.size() != 1) {
    std::fprintf(stderr,
                 "kiln-bench: %s\nusage: kiln-bench m.kiln [--batch 1,8,32] "
                 "[--prompt-len 128] [--gen-len 256] [--device auto] "
                 "[--repeats 3] [--warmup 3] [--bandwidth-gbs G] [--matmul-tflops 790] "
                 "[--speculate 2,4 --prompts ids.txt]\n",
                 args.error.empty() ? "give one artifact" : args.error.c_str());
    return 2;
  }
  int64_t promptLen = args.integer("prompt-len", 128);
  int64_t genLen = args.integer("gen-len", 256);
  int64_t repeats = args.integer("repeats", 3);
  int64_t warmup = args.integer("warmup", 3);
  int64_t seed = args.integer("seed", 0);
  double bandwidth = std::atof(args.str("bandwidth-gbs", "0").c_str()) * 1e9;
  double tflops = std::atof(args.str("matmul-tflops", "790").c_str());
  std::vector<int64_t> batches;
  std::stringstream ss(args.str("batch", "1,8,32"));
  for (std::string b; std::getline(ss, b, ',');)
    batches.push_back(std::atoll(b.c_str()));
  if (!args.error.empty() || promptLen < 1 || genLen < 1 || repeats < 1 ||
      warmup < 0 ||
      tflops <= 0 || batches.empty() ||
      *std::min_element(batches.begin(), batches.end()) < 1) {
    std::fprintf(stderr, "kiln-bench: %s\n",
                 args.error.empty() ? "lengths, repeats, batches and rates "
                                      "must be positive, --warmup at least 0"
                                    : args.error.c_str());
    return 2;
  }
  std::vector<int32_t> ks;
  if (args.has("speculate")) {
    std::stringstream list(args.str("speculate"));
    for (std::string k; std::getline(list, k, ',');) {
      char *end = nullptr;
      long v = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end || v < 1 || v > 16) {
        std::fprintf(stderr, "kiln-bench: --speculate expects K values in "
                             "[1, 16], got '%s'\n",
                     k.c_str());
        return 2;
      }
      ks.push_back(static_cast<int32_t>(v));
    }
    if (!args.has("prompts")) {
      std::fprintf(stderr, "kiln-bench: --speculate needs --prompts (token "
                           "ids; acceptance depends on real text)\n");
      return 2;
    }
  }
  auto model = Model::load(args.positionals[0]);
  if (!model.isOk())
    return fail(model.status());
  int64_t weightBytes = (*model)->totalWeightBytes();
  int64_t params = matmulParams(**model);

  std::string deviceName;
  std::vector<std::pair<int64_t, Result>> rows;
  for (int64_t b : batches) {
    auto r = bench(*model, args.str("device", "auto"), b, promptLen, genLen,
                   repeats, warmup, static_cast<uint64_t>(seed), deviceName,
                   bandwidth);
    if (!r.isOk())
      return fail(r.status());
    rows.emplace_back(b, *r);
  }
  std::printf(
      "kiln-bench: %s on %s: weights %.3f GB (%.3f GB read a "
      "batch-1 decode step, %.3f G matmul params), "
      "copy bandwidth %s, matmul rate %.0f TFLOP/s (given)\n",
      args.positionals[0].c_str(), deviceName.c_str(), weightBytes / 1e9,
      decodeReadBytes(**model, 1) / 1e9, params / 1e9,
      bandwidth > 0
          ? (std::to_string(bandwidth / 1e12).substr(0, 4) + " TB/s").c_str()
          : "unknown (host)",
      tflops);
  std::printf("%6s %7s %11s %8s %9s %10s %8s %7s\n", "batch", "prompt",
              "prefill_ms", "prefill%", "ms/step", "tok/s", "decode%",
              "steps");
  for (auto &[b, r] : rows) {
    double prefillFloor =
        2.0 * params * double(b * promptLen) / (tflops * 1e12) * 1e3;
    double decodeFloor =
        bandwidth > 0 ? decodeReadBytes(**model, b) / bandwidth * 1e3 : 0;
    if (r.steps == 0) { // --gen-len 1: the prefill's token only
      std::printf("%6lld %7lld %11.2f %7.1f%% %9s %10s %8s %7d\n",
                  (long long)b, (long long)promptLen, r.prefillMs,
                  100.0 * prefillFloor / r.prefillMs, "-", "-", "-", 0);
      continue;
    }
    std::printf("%6lld %7lld %11.2f %7.1f%% %9.3f %10.1f %7.1f%% %7lld\n",
                (long long)b, (long long)promptLen, r.prefillMs,
                100.0 * prefillFloor / r.prefillMs, r.stepMs,
                b * 1e3 / r.stepMs,
                decodeFloor > 0 ? 100.0 * decodeFloor / r.stepMs : 0.0,
                (long long)r.steps);
  }
  if (!ks.empty()) {
    auto prompts = tools::readPromptIdsFile(args.str("prompts"));
    if (!prompts.isOk())
      return fail(prompts.status());
    return benchSpeculation(args.positionals[0], *model,
                            args.str("device", "auto"), batches, ks, *prompts,
                            static_cast<int32_t>(genLen));
  }
  return 0;
}
