//===- kiln-serve-bench.cpp - Continuous batching under load --------------===//
//
//   kiln-serve-bench m.kiln [--requests 256] [--kv-blocks N] [--max-seqs 32]
//                    [--prompt-len-range 8,256] [--gen-len-range 8,128]
//                    [--arrival-rate R] [--max-prefill-tokens T]
//                    [--seed S] [--device auto] [--check-alone K]
//
// Serves --requests random-token prompts of mixed lengths (uniform in
// --prompt-len-range) with greedy decoding for a number of tokens uniform
// in --gen-len-range (EOS ignored, so every request has a known length),
// all through one Engine whose KV pool of --kv-blocks blocks is meant to
// be too small to hold them all at once: the scheduler must queue, admit
// and preempt. Requests arrive all at once, or as a Poisson process of
// --arrival-rate requests per second. Reported: requests completed,
// preemptions, generated tokens per second, time to first token,
// inter-token latency and queue time (p50/p99, from the engine's
// RequestMetrics; docs/Serving.md defines them), and the pool's free
// blocks at the end against its size.
//
// --check-alone K runs the first K requests again, each alone in a fresh
// engine, and compares their tokens with the served ones: preemption and
// batching must not change a greedy output. Exits 1 on a mismatch, a
// failed or incomplete request, or blocks missing from the pool at the
// end. Links only KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/RuntimeToolArgs.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

namespace {

int fail(const Status &status) {
  std::fprintf(stderr, "kiln-serve-bench: error: %s\n",
               status.toString().c_str());
  return 1;
}

using Clock = std::chrono::steady_clock;

struct Range {
  int64_t lo = 0, hi = 0;
};

/// "A,B" with 1 <= A <= B, or a single "A" (A,A).
bool parseRange(const std::string &text, Range &out) {
  size_t comma = text.find(',');
  char *end = nullptr;
  out.lo = std::strtoll(text.c_str(), &end, 10);
  if (comma == std::string::npos) {
    out.hi = out.lo;
    return *end == 0 && out.lo >= 1;
  }
  if (end != text.c_str() + comma)
    return false;
  out.hi = std::strtoll(text.c_str() + comma + 1, &end, 10);
  return *end == 0 && out.lo >= 1 && out.hi >= out.lo;
}

struct Options {
  std::string artifact, device = "auto";
  int64_t requests = 256, kvBlocks = 0, maxSeqs = 32, maxPrefill = 0;
  Range promptLen{8, 256}, genLen{8, 128};
  double arrivalRate = 0; // 0: all at once
  uint64_t seed = 0;
  int64_t checkAlone = 0;
};

struct Workload {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int32_t> genLens;
  /// Seconds after the start at which each request arrives.
  std::vector<double> arrivals;
};

StatusOr<Workload> makeWorkload(const Options &o, const ModelConfig &c) {
  if (o.promptLen.hi > c.contextLength)
    return makeError(StatusCode::InvalidArgument, "--prompt-len-range up to ",
                     o.promptLen.hi, " exceeds the context of ",
                     c.contextLength);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(3, c.vocabSize - 1);
  std::uniform_int_distribution<int64_t> promptLen(o.promptLen.lo,
                                                   o.promptLen.hi);
  std::uniform_int_distribution<int64_t> genLen(o.genLen.lo, o.genLen.hi);
  std::exponential_distribution<double> gap(o.arrivalRate > 0 ? o.arrivalRate
                                                              : 1.0);
  Workload w;
  double t = 0;
  for (int64_t i = 0; i < o.requests; ++i) {
    std::vector<int32_t> prompt(promptLen(rng));
    for (int32_t &id : prompt)
      id = token(rng);
    w.prompts.push_back(std::move(prompt));
    w.genLens.push_back(static_cast<int32_t>(genLen(rng)));
    if (o.arrivalRate > 0)
      t += gap(rng);
    w.arrivals.push_back(t);
  }
  return w;
}

StatusOr<std::unique_ptr<Engine>>
makeEngine(std::shared_ptr<const Model> model, const Options &o,
           int64_t numBlocks, int64_t maxSeqs) {
  EngineOptions options;
  options.device = o.device;
  options.numBlocks = static_cast<int32_t>(numBlocks);
  options.maxSequences = static_cast<int32_t>(maxSeqs);
  options.maxPrefillTokens = static_cast<int32_t>(o.maxPrefill);
  options.seed = o.seed;
  return Engine::create(std::move(model), options);
}

SamplingParams greedyParams() {
  SamplingParams p;
  p.ignoreEos = true;
  return p;
}

struct Served {
  std::vector<std::vector<int32_t>> outputs;
  std::vector<RequestMetrics> metrics;
  std::vector<bool> done;
  int64_t failed = 0;
  double wallSeconds = 0;
};

/// Adds requests as they arrive and steps the engine until all finished.
Status serve(Engine &engine, const Workload &w, Served &out) {
  size_t n = w.prompts.size(), next = 0, finished = 0;
  out.outputs.assign(n, {});
  out.metrics.assign(n, {});
  out.done.assign(n, false);
  auto start = Clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  while (finished + out.failed < n) {
    for (; next < n && w.arrivals[next] <= elapsed(); ++next) {
      size_t i = next;
      auto id = engine.addRequest(
          w.prompts[i], greedyParams(), w.genLens[i],
          [&out, &finished, i](const TokenEvent &e) {
            out.outputs[i].push_back(e.token);
            if (e.metrics) {
              out.metrics[i] = *e.metrics;
              out.done[i] = true;
              ++finished;
            }
          });
      if (!id.isOk()) {
        std::fprintf(stderr, "kiln-serve-bench: request %zu failed: %s\n",
                     i + 1, id.status().toString().c_str());
        ++out.failed;
      }
    }
    if (engine.idle()) {
      if (next < n)
        std::this_thread::sleep_for(std::chrono::duration<double>(
            std::max(0.0, w.arrivals[next] - elapsed())));
      else if (finished + out.failed < n)
        return makeError(StatusCode::Internal,
                         "the engine went idle with requests unfinished");
      continue;
    }
    KILN_RETURN_IF_ERROR(engine.step());
  }
  out.wallSeconds = elapsed();
  return Status::ok();
}

/// Nearest-rank percentile of `v` (0 when empty), in milliseconds.
double percentileMs(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::min(v.size() - 1, rank > 0 ? rank - 1 : 0)] * 1e3;
}

void printLatency(const char *what, const std::vector<double> &v) {
  std::printf("%s ms: p50 %.2f p99 %.2f (%zu samples)\n", what,
              percentileMs(v, 50), percentileMs(v, 99), v.size());
}

/// Re-runs the first `k` requests alone; returns the number that differ.
StatusOr<int64_t> checkAlone(std::shared_ptr<const Model> model,
                             const Options &o, const Workload &w,
                             const Served &served, int64_t k) {
  int64_t mismatches = 0;
  for (int64_t i = 0; i < k; ++i) {
    // The default pool: one full context.
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                          makeEngine(model, o, 0, 1));
    std::vector<int32_t> alone;
    KILN_RETURN_IF_ERROR(engine
                             ->addRequest(w.prompts[i], greedyParams(),
                                          w.genLens[i],
                                          [&](const TokenEvent &e) {
                                            alone.push_back(e.token);
                                          })
                             .status());
    KILN_RETURN_IF_ERROR(engine->runToCompletion());
    const std::vector<int32_t> &got = served.outputs[i];
    if (alone == got)
      continue;
    ++mismatches;
    size_t at = 0;
    while (at < alone.size() && at < got.size() && alone[at] == got[at])
      ++at;
    std::printf("mismatch: request %lld (prompt %zu tokens) differs at token "
                "%zu: served %d, alone %d\n",
                (long long)i + 1, w.prompts[i].size(), at + 1,
                at < got.size() ? got[at] : -1,
                at < alone.size() ? alone[at] : -1);
  }
  return mismatches;
}

int usage(const std::string &error) {
  std::fprintf(stderr,
               "kiln-serve-bench: %s\nusage: kiln-serve-bench m.kiln "
               "[--requests 256] [--kv-blocks N] [--max-seqs 32] "
               "[--prompt-len-range 8,256] [--gen-len-range 8,128] "
               "[--arrival-rate R] [--max-prefill-tokens T] [--seed S] "
               "[--device auto] [--check-alone K]\n",
               error.c_str());
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"requests", "kv-blocks", "max-seqs", "prompt-len-range",
                    "gen-len-range", "arrival-rate", "max-prefill-tokens",
                    "seed", "device", "check-alone"},
                   {});
  if (!args.error.empty() || args.positionals.size() != 1)
    return usage(args.error.empty() ? "give one artifact" : args.error);
  Options o;
  o.artifact = args.positionals[0];
  o.device = args.str("device", "auto");
  o.requests = args.integer("requests", 256);
  o.kvBlocks = args.integer("kv-blocks", 0);
  o.maxSeqs = args.integer("max-seqs", 32);
  o.maxPrefill = args.integer("max-prefill-tokens", 0);
  o.seed = static_cast<uint64_t>(args.integer("seed", 0));
  o.checkAlone = args.integer("check-alone", 0);
  o.arrivalRate = args.number("arrival-rate", 0);
  if (!args.error.empty())
    return usage(args.error);
  if (!parseRange(args.str("prompt-len-range", "8,256"), o.promptLen) ||
      !parseRange(args.str("gen-len-range", "8,128"), o.genLen))
    return usage("length ranges are MIN,MAX with 1 <= MIN <= MAX");
  if (o.requests < 1 || o.maxSeqs < 1 || o.kvBlocks < 0 || o.maxPrefill < 0 ||
      o.arrivalRate < 0 || o.checkAlone < 0 || o.checkAlone > o.requests)
    return usage("--requests and --max-seqs must be positive, --check-alone "
                 "at most --requests, the rest non-negative");

  auto model = Model::load(o.artifact);
  if (!model.isOk())
    return fail(model.status());
  auto workload = makeWorkload(o, (*model)->config());
  if (!workload.isOk())
    return fail(workload.status());
  auto engine = makeEngine(*model, o, o.kvBlocks, o.maxSeqs);
  if (!engine.isOk())
    return fail(engine.status());
  Engine &e = **engine;

  const ModelConfig &c = (*model)->config();
  char arrivals[64] = "all at once";
  if (o.arrivalRate > 0)
    std::snprintf(arrivals, sizeof arrivals, "%.2f/s (Poisson)",
                  o.arrivalRate);
  std::printf("kiln-serve-bench: %s on %s: %lld requests, prompts %lld..%lld "
              "tokens, generation %lld..%lld tokens (greedy), up to %lld "
              "sequences, KV pool %d blocks of %d tokens, arrivals %s\n",
              o.artifact.c_str(), e.device().name().c_str(),
              (long long)o.requests, (long long)o.promptLen.lo,
              (long long)o.promptLen.hi, (long long)o.genLen.lo,
              (long long)o.genLen.hi, (long long)o.maxSeqs, e.numBlocks(),
              c.blockSize, arrivals);
  std::fflush(stdout);

  Served served;
  Status ran = serve(e, *workload, served);
  if (!ran.isOk())
    return fail(ran);

  const EngineStats &s = e.stats();
  int64_t completed = std::count(served.done.begin(), served.done.end(), true);
  std::vector<double> ttft, itl, queue;
  int64_t generated = 0;
  for (size_t i = 0; i < served.metrics.size(); ++i) {
    if (!served.done[i])
      continue;
    const RequestMetrics &m = served.metrics[i];
    ttft.push_back(m.timeToFirstTokenSeconds);
    queue.push_back(m.queueSeconds);
    itl.insert(itl.end(), m.interTokenSeconds.begin(),
               m.interTokenSeconds.end());
    generated += m.generatedTokens;
  }
  std::printf("completed: %lld/%lld\n", (long long)completed,
              (long long)o.requests);
  std::printf("preemptions: %lld (%lld prefill tokens recomputed of %lld)\n",
              (long long)s.preemptions, (long long)s.recomputedTokens,
              (long long)s.prefillTokens);
  std::printf("throughput: %.1f generated tok/s (%lld tokens in %.2f s; "
              "%.1f tok/s of engine steps; %lld prefill and %lld decode "
              "steps)\n",
              served.wallSeconds > 0 ? generated / served.wallSeconds : 0.0,
              (long long)generated, served.wallSeconds,
              s.generatedTokensPerSecond(), (long long)s.prefillSteps,
              (long long)s.decodeSteps);
  printLatency("ttft", ttft);
  printLatency("inter-token", itl);
  printLatency("queue", queue);
  bool leaked = e.numFreeBlocks() != e.numBlocks();
  std::printf("blocks free at end: %d/%d%s\n", e.numFreeBlocks(),
              e.numBlocks(), leaked ? " (LEAKED)" : "");

  bool ok = completed == o.requests && served.failed == 0 && !leaked;
  if (o.checkAlone > 0) {
    auto mismatches = checkAlone(*model, o, *workload, served, o.checkAlone);
    if (!mismatches.isOk())
      return fail(mismatches.status());
    std::printf("check-alone: %lld requests, %lld mismatches\n",
                (long long)o.checkAlone, (long long)*mismatches);
    ok = ok && *mismatches == 0;
  }
  std::fflush(stdout);
  return ok ? 0 : 1;
}
