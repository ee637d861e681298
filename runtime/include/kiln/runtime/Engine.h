//===- Engine.h - Requests in, tokens out: a continuous-batching loop -----===//
//
// The engine owns a Device, the PagedKVCache bookkeeping and a Sampler for
// one loaded Model. Requests (a prompt, sampling parameters, a token
// budget and a callback) queue up; each step() either prefills the
// requests it can admit (a ragged batch through @prefill) or, when none
// wait, runs one @decode step for every running sequence, samples their
// next tokens and streams them to the callbacks. A sequence finishes at
// EOS, at its token budget or when it fills the context; its blocks go
// back to the pool and waiting requests take them.
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

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::runtime {

enum class FinishReason {
  None,        ///< Still generating.
  Eos,         ///< Sampled the model's EOS token (reported, then stopped).
  MaxTokens,   ///< Generated the requested number of tokens.
  ContextFull, ///< The sequence reached the model's context length.
};
const char *finishReasonName(FinishReason reason);

/// One generated token of one request.
struct TokenEvent {
  int64_t requestId = 0;
  int32_t token = 0;
  /// 1 for the first generated token.
  int32_t index = 0;
  FinishReason finish = FinishReason::None;
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
  /// admitted while they fit); 0 means the context length.
  int32_t maxPrefillTokens = 0;
  /// Seed of the sampler.
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
};

class Engine {
public:
  /// Prepares `options.device` for the model with a cache of
  /// options.numBlocks blocks. The model needs @prefill and @decode.
  static StatusOr<std::unique_ptr<Engine>>
  create(std::shared_ptr<const Model> model, const EngineOptions &options);

  /// Queues a request; returns its id. InvalidArgument for an empty
  /// prompt, token ids outside the vocabulary, a prompt longer than the
  /// context length, invalid sampling parameters or maxNewTokens < 1.
  StatusOr<int64_t> addRequest(std::vector<int32_t> prompt,
                               const SamplingParams &params,
                               int32_t maxNewTokens, TokenCallback callback);

  /// One prefill or decode step (nothing when idle). ResourceExhausted
  /// when the KV cache cannot hold a waiting prompt even with nothing
  /// running, or a running sequence's next token (the request fails and
  /// is dropped).
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
  Sampler &sampler() { return sampler_; }

private:
  struct Request {
    int64_t id = 0;
    std::vector<int32_t> prompt;
    SamplingParams params;
    int32_t maxNewTokens = 0;
    TokenCallback callback;
    int32_t generated = 0;
    /// The last sampled token, to be fed by the next decode step.
    int32_t next = 0;
  };

  Engine(std::shared_ptr<const Model> model, std::unique_ptr<Device> device,
         PagedKVCache cache, uint64_t seed, const EngineOptions &options);

  Status prefillStep();
  Status decodeStep();
  /// Samples from each row, emits the tokens, retires finished requests.
  Status emit(std::vector<Request *> &batch, const std::vector<float> &logits);
  Status runEntry(const EntryPoint &entry, Span<const int32_t> tokens,
                  std::vector<float> &logits);
  void drop(int64_t id);

  std::shared_ptr<const Model> model_;
  std::unique_ptr<Device> device_;
  std::optional<PagedKVCache> cache_;
  Sampler sampler_;
  EngineOptions options_;
  const EntryPoint *prefill_ = nullptr;
  const EntryPoint *decode_ = nullptr;
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;
  int64_t nextId_ = 1;
  /// Sequence ids of forwardAll, kept apart from request ids.
  int64_t nextScratchId_ = -1;
  EngineStats stats_;
  std::string deviceNote_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ENGINE_H
