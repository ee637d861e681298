//===- SpeculativeEngine.h - Continuous batching with speculative decoding ===//
//
// A serving loop like Engine's whose generation steps emit up to K + 1
// tokens per sequence: every running sequence drafts K tokens (a small
// draft model run K times, or n-gram prompt lookup), the target scores all
// of them in one all-logits pass over its paged cache (the `verify` entry
// point, or `prefill_all`), and each sequence keeps the drafts it accepts
// (SpeculativeAcceptance.h: the greedy prefix, or rejection sampling) plus
// one token of the target's own. Rejected tokens are rolled back in both
// models' caches with PagedKVCache::popN. Outputs are those of the target
// alone: token for token under greedy decoding (on a device that computes
// a row the same way in every entry point, as the host device does), in
// distribution under sampling.
//
// The draft cache may lag the committed tokens by one or more (after a
// fully accepted step the last draft and the bonus token were never fed to
// the draft): the first draft round of a step feeds whatever it lacks
// through the draft's @prefill (ragged append lengths), later rounds one
// token each through its @decode.
//
// Scheduling: first come, first served like Engine, but a request is
// admitted only when the worst case of its whole generation fits both
// caches next to the running requests' worst cases, so no step ever runs
// out of blocks and nothing is preempted (speculation never needs more
// cache than plain decoding: K is capped by each request's remaining
// budget). docs/Speculative.md has the details.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPECULATIVEENGINE_H
#define KILN_RUNTIME_SPECULATIVEENGINE_H

#include "kiln/runtime/Device.h"
#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/NGramProposer.h"
#include "kiln/runtime/PagedKVCache.h"
#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Status.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::runtime {

struct SpeculativeOptions {
  /// "host", "cuda", "cuda:N" or "auto", for both models.
  std::string device = "host";
  /// Sequences running at once.
  int32_t maxSequences = 8;
  /// KV cache blocks of each model; 0 sizes each pool for maxSequences
  /// full contexts.
  int32_t numBlocks = 0;
  /// Tokens drafted per sequence and step (>= 1); setK changes it.
  int32_t k = 4;
  /// Adapt each sequence's K to its acceptance: one more after a step that
  /// accepted every draft, one fewer after a step that rejected one, within
  /// [1, maxK]. Starts at k.
  bool adaptiveK = false;
  int32_t maxK = 8;
  /// Without a draft model: n-gram prompt lookup.
  NGramOptions ngram;
  /// Seed of the requests' samplers (as EngineOptions::seed).
  uint64_t seed = 0;
};

struct SpeculativeStats {
  int64_t prefillSteps = 0, prefillTokens = 0;
  double prefillSeconds = 0;
  /// Target passes that verified drafts (one per generation step), and the
  /// (sequence, step) pairs they verified.
  int64_t verifySteps = 0, verifiedSequences = 0;
  /// Draft model passes (K per generation step; none in n-gram mode).
  int64_t draftSteps = 0;
  double draftSeconds = 0, verifySeconds = 0;
  /// Drafted and accepted tokens, in all and per draft position (index i:
  /// the (i+1)-th drafted token of a step).
  int64_t draftedTokens = 0, acceptedTokens = 0;
  std::vector<int64_t> draftedAt, acceptedAt;
  /// Tokens the verified sequences gained (accepted + 1 each, before a
  /// stop cut them short).
  int64_t stepTokens = 0;
  /// Tokens emitted to callbacks, requests finished.
  int64_t generatedTokens = 0, finishedRequests = 0;
  double busySeconds = 0;

  /// Mean tokens a sequence gains per target step (1 without speculation).
  double tokensPerTargetStep() const {
    return verifiedSequences ? double(stepTokens) / verifiedSequences : 0.0;
  }
  double acceptanceRate() const {
    return draftedTokens ? double(acceptedTokens) / draftedTokens : 0.0;
  }
  double acceptanceRateAt(size_t i) const {
    return i < draftedAt.size() && draftedAt[i]
               ? double(acceptedAt[i]) / draftedAt[i]
               : 0.0;
  }
  double generatedTokensPerSecond() const {
    return busySeconds > 0 ? generatedTokens / busySeconds : 0.0;
  }
};

class SpeculativeEngine {
public:
  /// A target and a draft model (nullptr: n-gram prompt lookup), each on
  /// its own device of `options.device`. The target needs @prefill and
  /// `verify` (or `prefill_all`), the draft @prefill and @decode; their
  /// vocabularies and BOS/EOS ids must agree (FailedPrecondition).
  static StatusOr<std::unique_ptr<SpeculativeEngine>>
  create(std::shared_ptr<const Model> target,
         std::shared_ptr<const Model> draft, const SpeculativeOptions &options);

  /// As Engine::addRequest; ResourceExhausted when the request could never
  /// fit either cache.
  StatusOr<int64_t> addRequest(std::vector<int32_t> prompt,
                               const SamplingParams &params,
                               int32_t maxNewTokens, TokenCallback callback);

  /// One prefill of the admissible waiting requests, or else one
  /// speculative step (draft, verify, accept, roll back) of every running
  /// sequence.
  Status step();
  Status runToCompletion();
  bool idle() const { return waiting_.empty() && running_.empty(); }

  /// Tokens drafted per step from now on (the starting K of adaptive mode);
  /// InvalidArgument unless 1 <= k <= maxK.
  Status setK(int32_t k);
  int32_t k() const { return options_.k; }
  bool usesDraftModel() const { return draft_.model != nullptr; }

  const SpeculativeStats &stats() const { return stats_; }
  /// Why "auto" chose the host device (empty otherwise).
  const std::string &deviceNote() const { return deviceNote_; }
  const Device &targetDevice() const { return *target_.device; }
  int32_t numFreeTargetBlocks() const { return target_.cache->numFreeBlocks(); }
  int32_t numFreeDraftBlocks() const {
    return draft_.cache ? draft_.cache->numFreeBlocks() : 0;
  }
  int32_t numTargetBlocks() const { return target_.cache->config().numBlocks; }
  int32_t numDraftBlocks() const {
    return draft_.cache ? draft_.cache->config().numBlocks : 0;
  }

private:
  using Clock = std::chrono::steady_clock;

  /// One model's device, cache bookkeeping and blocks promised to running
  /// requests.
  struct ModelState {
    std::shared_ptr<const Model> model;
    std::unique_ptr<Device> device;
    std::optional<PagedKVCache> cache;
    int64_t reservedBlocks = 0;
    int64_t worstCaseBlocks(int64_t promptTokens, int32_t maxNewTokens) const;
  };

  struct Request {
    Request(int64_t id, uint64_t seed) : id(id), sampler(seed) {}
    int64_t id = 0;
    std::vector<int32_t> prompt, output;
    SamplingParams params;
    int32_t maxNewTokens = 0;
    TokenCallback callback;
    Sampler sampler;
    RequestMetrics metrics;
    Clock::time_point addedAt, lastTokenAt;
    /// Blocks reserved in each cache (released when it finishes).
    int64_t targetBlocks = 0, draftBlocks = 0;
    /// Tokens in the draft cache (<= the committed tokens minus one).
    int32_t draftLength = 0;
    /// This sequence's K (adaptive mode changes it).
    int32_t k = 0;
    /// The step's drafts and the distributions they were drawn from
    /// ([drafts, vocab], sampled requests only).
    int32_t plannedK = 0;
    std::vector<int32_t> drafts;
    std::vector<double> q;

    /// Prompt then output: the committed tokens.
    int64_t contextSize() const {
      return static_cast<int64_t>(prompt.size() + output.size());
    }
    int32_t token(int64_t i) const {
      return i < (int64_t)prompt.size() ? prompt[i] : output[i - prompt.size()];
    }
  };

  SpeculativeEngine(ModelState target, ModelState draft,
                    const SpeculativeOptions &options);

  Status prefillStep();
  Status speculativeStep();
  /// Drafts plannedK tokens for every request of `batch` with the draft
  /// model (K rounds of one token each) or by n-gram lookup.
  Status draftWithModel(std::vector<Request *> &batch);
  /// Greedy draft rounds `first`..`last` of the `active` requests (sequence
  /// ids `ids`, one token each, round `first` feeding `tokens`) as one
  /// device chain.
  Status draftChain(const std::vector<Request *> &active,
                    const std::vector<int64_t> &ids,
                    const std::vector<int32_t> &tokens, int32_t first,
                    int32_t last);
  void draftWithNGrams(std::vector<Request *> &batch);
  /// Scores every request's last token and drafts in one target pass,
  /// accepts, rolls back and emits.
  Status verify(std::vector<Request *> &batch);
  /// Runs `entry` of `state` over the step begun on its cache; `ids` gets
  /// every row's greedy token, and `logits` the rows unless `greedyOnly`.
  Status runStep(ModelState &state, const EntryPoint &entry,
                 Span<const int32_t> tokens, bool greedyOnly,
                 std::vector<int32_t> &ids, std::vector<float> &logits);
  /// Appends `tokens` to the request's output and streams them, stopping
  /// at the first one that finishes it; returns whether it finished.
  bool emit(Request &r, Span<const int32_t> tokens);
  void retire(int64_t id);

  ModelState target_, draft_;
  const EntryPoint *targetPrefill_ = nullptr, *verify_ = nullptr;
  const EntryPoint *draftPrefill_ = nullptr, *draftDecode_ = nullptr;
  SpeculativeOptions options_;
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;
  int64_t nextId_ = 1;
  SpeculativeStats stats_;
  std::string deviceNote_;
  std::vector<float> logits_;
  std::vector<int32_t> ids_;
};

/// FailedPrecondition unless the draft can propose for the target: the
/// same vocabulary size and BOS/EOS ids, and identical tokenizers when
/// both artifacts carry one.
Status checkDraftMatchesTarget(const Model &target, const Model &draft);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SPECULATIVEENGINE_H
