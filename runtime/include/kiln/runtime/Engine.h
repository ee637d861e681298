//===- Engine.h - Requests in, tokens out: a continuous-batching loop -----===//
//
// The engine owns a Device, the PagedKVCache bookkeeping and one Sampler
// per request for one loaded Model. Requests (a prompt, sampling
// parameters, a token budget and a callback) queue up; each step() either
// prefills the requests it can admit (a ragged batch through @prefill) or,
// when none can be admitted, runs one @decode step for every running
// sequence, samples their next tokens and streams them to the callbacks. A
// sequence finishes at EOS, at its token budget or when it fills the
// context; its blocks go back to the pool and waiting requests take them.
//
// When the pool runs dry in the middle of a decode step the engine
// preempts rather than fails (vLLM's recompute policy): the most recently
// admitted running request gives its blocks back and returns to the front
// of the queue with the tokens it has generated; once re-admitted, one
// prefill of its prompt and those tokens restores its cache and samples
// its next token. A request whose prompt and token budget could never fit
// the whole pool is refused when it is added, so that the oldest running
// request can always advance. docs/Serving.md has the policy and the
// metrics (RequestMetrics, EngineStats).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ENGINE_H
#define KILN_RUNTIME_ENGINE_H

#include "kiln/runtime/Device.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/PagedKVCache.h"
#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln::runtime {

enum class FinishReason {
  None,        ///< Still generating.
  Eos,         ///< Sampled the model's EOS token (reported, then stopped).
  MaxTokens,   ///< Generated the requested number of tokens.
  ContextFull, ///< The sequence reached the model's context length.
};
const char *finishReasonName(FinishReason reason);

/// Timings of one request, on the steady clock (docs/Serving.md).
struct RequestMetrics {
  int64_t requestId = 0;
  int32_t promptTokens = 0;
  int32_t generatedTokens = 0;
  FinishReason finish = FinishReason::None;
  /// Times the request was preempted (its cache dropped and recomputed).
  int32_t preemptions = 0;
  /// addRequest -> the first prefill step that took it.
  double queueSeconds = 0;
  /// addRequest -> its first token emitted (reaching the callback).
  double timeToFirstTokenSeconds = 0;
  /// Between consecutive tokens emitted: generatedTokens - 1 entries. A
  /// preemption shows up as one long gap.
  std::vector<double> interTokenSeconds;
  /// addRequest -> its last token emitted.
  double totalSeconds = 0;
};

/// One generated token of one request.
struct TokenEvent {
  int64_t requestId = 0;
  int32_t token = 0;
  /// 1 for the first generated token.
  int32_t index = 0;
  FinishReason finish = FinishReason::None;
  /// On the final event (finish != None) the request's metrics, valid
  /// during the callback; null on the others.
  const RequestMetrics *metrics = nullptr;
};
using TokenCallback = std::function<void(const TokenEvent &)>;

struct EngineOptions {
  /// "host", "cuda", "cuda:N" or "auto" (the GPU when there is one that
  /// can run the artifact, else the host).
  std::string device = "host";
  /// KV cache blocks; 0 sizes the pool for maxSequences full contexts.
  int32_t numBlocks = 0;
  /// Sequences running at once.
  int32_t maxSequences = 8;
  /// Prompt tokens one prefill step takes at most (whole prompts are
  /// admitted while they fit, and one longer than this is admitted alone);
  /// 0 means the context length. A resumed request counts its prompt and
  /// its generated tokens.
  int32_t maxPrefillTokens = 0;
  /// Seed of the requests' samplers (see SamplingParams::seed).
  uint64_t seed = 0;
};

/// One sequence of Engine::forwardAllWithPast: `pastLength` tokens of
/// context whose keys and values are given (an exporter's past_key_values),
/// then `tokens`, run on top of them at positions pastLength,
/// pastLength + 1, ...
struct SequenceWithPast {
  std::vector<int32_t> tokens;
  int32_t pastLength = 0;
  /// One entry per layer (or none when pastLength is 0): fp32
  /// [pastLength, kv_heads, head_dim], as the cache holds them (keys after
  /// the rotary embedding).
  std::vector<std::vector<float>> pastKeys, pastValues;
};

/// What Engine::forwardAllWithPast returns.
struct ForwardAllResult {
  /// [sum of the sequences' tokens, vocab], the sequences' rows in order.
  std::vector<float> logits;
  /// With `readBackCache`: per sequence, per layer, fp32
  /// [pastLength + tokens, kv_heads, head_dim] of the cache after the
  /// step (the exporter's present_key_values); else empty.
  std::vector<std::vector<std::vector<float>>> keys, values;
};

struct EngineStats {
  int64_t prefillSteps = 0, prefillTokens = 0;
  double prefillSeconds = 0;
  int64_t decodeSteps = 0, decodeTokens = 0;
  double decodeSeconds = 0;
  /// Running requests whose blocks were taken back for others (each
  /// preemption of the same request counts).
  int64_t preemptions = 0;
  /// Prefill tokens spent restoring preempted requests (prompt and
  /// generated tokens again); part of prefillTokens.
  int64_t recomputedTokens = 0;
  /// Tokens emitted to callbacks, and requests finished.
  int64_t generatedTokens = 0, finishedRequests = 0;
  /// Wall time of the step() calls that ran a prefill or a decode (idle
  /// time between arrivals is not counted).
  double busySeconds = 0;

  double generatedTokensPerSecond() const {
    return busySeconds > 0 ? generatedTokens / busySeconds : 0.0;
  }
};

class Engine {
public:
  /// Prepares `options.device` for the model with a cache of
  /// options.numBlocks blocks. The model needs @prefill and @decode.
  static StatusOr<std::unique_ptr<Engine>>
  create(std::shared_ptr<const Model> model, const EngineOptions &options);

  /// Queues a request; returns its id. InvalidArgument for an empty
  /// prompt, token ids outside the vocabulary, a prompt longer than the
  /// context length, invalid sampling parameters or maxNewTokens < 1;
  /// ResourceExhausted when the prompt and maxNewTokens tokens (up to the
  /// context length) need more blocks than the whole KV cache has.
  StatusOr<int64_t> addRequest(std::vector<int32_t> prompt,
                               const SamplingParams &params,
                               int32_t maxNewTokens, TokenCallback callback);

  /// One prefill or decode step (nothing when idle). A decode step that
  /// finds no block for some sequence's next token first preempts running
  /// requests, most recently admitted first, until the rest fit; no
  /// request is dropped for want of blocks.
  Status step();
  /// Steps until no request is left.
  Status runToCompletion();
  bool idle() const { return waiting_.empty() && running_.empty(); }

  /// Runs `tokens` as one fresh sequence through the all-logits prefill
  /// entry point (`prefill_all`) and returns its [n, vocab] logits; the
  /// sequence is dropped afterwards. For checks and perplexity.
  StatusOr<std::vector<float>> forwardAll(Span<const int32_t> tokens);

  /// Runs every row as its own fresh sequence, all in one step of
  /// `prefill_all`, and returns the [sum of the rows' lengths, vocab]
  /// logits, rows in order; the sequences are dropped afterwards.
  StatusOr<std::vector<float>>
  forwardAllBatch(const std::vector<std::vector<int32_t>> &rows);

  /// forwardAllBatch over cached context: each sequence's past keys and
  /// values are written into the cache (Device::writeCache) at positions
  /// [0, pastLength), then all sequences' tokens run in one step of
  /// `prefill_all`. With `readBackCache` the cache of every sequence
  /// (past and new tokens) is read back (Device::readCache) before the
  /// sequences are dropped. InvalidArgument for empty token lists, ids
  /// outside the vocabulary, contexts longer than the model's, or past
  /// arrays of the wrong size.
  StatusOr<ForwardAllResult>
  forwardAllWithPast(const std::vector<SequenceWithPast> &sequences,
                     bool readBackCache);

  const Model &model() const { return *model_; }
  const Device &device() const { return *device_; }
  /// Why "auto" chose the host device (empty otherwise).
  const std::string &deviceNote() const { return deviceNote_; }
  const PagedKVCache &kvCache() const { return *cache_; }
  const EngineStats &stats() const { return stats_; }
  int32_t numFreeBlocks() const { return cache_->numFreeBlocks(); }
  int32_t numBlocks() const { return cache_->config().numBlocks; }
  size_t numWaiting() const { return waiting_.size(); }
  size_t numRunning() const { return running_.size(); }

  /// Metrics of a finished request (kept until clearFinishedMetrics), or
  /// the metrics so far of a waiting or running one; NotFound otherwise.
  StatusOr<RequestMetrics> requestMetrics(int64_t id) const;
  void clearFinishedMetrics() { finishedMetrics_.clear(); }

private:
  using Clock = std::chrono::steady_clock;

  struct Request {
    Request(int64_t id, uint64_t seed) : id(id), sampler(seed) {}
    int64_t id = 0;
    std::vector<int32_t> prompt;
    SamplingParams params;
    int32_t maxNewTokens = 0;
    TokenCallback callback;
    /// Every token emitted so far; the last one is fed by the next decode
    /// step, and all of them are prefilled again after a preemption.
    std::vector<int32_t> output;
    /// The request's own random stream: a preempted request resumes it.
    Sampler sampler;
    RequestMetrics metrics;
    Clock::time_point addedAt, lastTokenAt;
    bool scheduled = false;
    /// Tokens the next prefill of this request runs: the prompt, then the
    /// generated tokens of a preempted request.
    int64_t prefillLength() const {
      return static_cast<int64_t>(prompt.size() + output.size());
    }
  };

  Engine(std::shared_ptr<const Model> model, std::unique_ptr<Device> device,
         PagedKVCache cache, const EngineOptions &options);

  /// Blocks a request may hold at its longest: its prompt and all but the
  /// last of maxNewTokens (which is never fed), up to the context length.
  int64_t worstCaseBlocks(int64_t promptTokens, int32_t maxNewTokens) const;
  /// Moves requests from the front of the queue into `admitted` while
  /// sequences, blocks and the prefill budget allow.
  Status admit(std::vector<std::unique_ptr<Request>> &admitted);
  Status prefillStep();
  Status decodeStep();
  /// Begins a decode step over every running sequence, preempting the
  /// most recently admitted ones while the rest do not fit the free
  /// blocks. Fills `batch` with the requests of the step.
  Status beginDecode(std::vector<Request *> &batch,
                     std::vector<int32_t> &tokens);
  /// Frees the blocks of the most recently admitted running request and
  /// puts it back at the front of the queue.
  Status preemptNewest();
  /// Updates a request's metrics for the token just appended to its
  /// output, emitted at `now`.
  void recordToken(Request &r, FinishReason finish, Clock::time_point now);
  /// Emits each request's sampled token, retires finished requests.
  Status emit(std::vector<Request *> &batch,
              const std::vector<int32_t> &sampled);
  /// Runs `entry` for the step begun on the cache and samples one token per
  /// sequence of `batch`: on the device when every request is greedy
  /// (Device::runGreedy), else from the logits with each request's sampler.
  Status runAndSample(const EntryPoint &entry, Span<const int32_t> tokens,
                      std::vector<Request *> &batch,
                      std::vector<int32_t> &sampled);
  Status runEntry(const EntryPoint &entry, Span<const int32_t> tokens,
                  std::vector<float> &logits);
  void drop(int64_t id);

  std::shared_ptr<const Model> model_;
  std::unique_ptr<Device> device_;
  std::optional<PagedKVCache> cache_;
  EngineOptions options_;
  const EntryPoint *prefill_ = nullptr;
  const EntryPoint *decode_ = nullptr;
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;
  int64_t nextId_ = 1;
  /// Sequence ids of forwardAll, kept apart from request ids.
  int64_t nextScratchId_ = -1;
  EngineStats stats_;
  std::unordered_map<int64_t, RequestMetrics> finishedMetrics_;
  std::string deviceNote_;
  /// The last step's logits (kept: a batch's rows are megabytes).
  std::vector<float> logits_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ENGINE_H
