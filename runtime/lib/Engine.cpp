//===- Engine.cpp - Requests in, tokens out -------------------------------===//

#include "kiln/runtime/Engine.h"

#include <algorithm>
#include <chrono>

namespace kiln::runtime {

const char *finishReasonName(FinishReason reason) {
  switch (reason) {
  case FinishReason::None:
    return "none";
  case FinishReason::Eos:
    return "eos";
  case FinishReason::MaxTokens:
    return "max_tokens";
  case FinishReason::ContextFull:
    return "context_full";
  }
  return "unknown";
}

static double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

Engine::Engine(std::shared_ptr<const Model> model,
               std::unique_ptr<Device> device, PagedKVCache cache,
               uint64_t seed, const EngineOptions &options)
    : model_(std::move(model)), device_(std::move(device)),
      cache_(std::move(cache)), sampler_(seed), options_(options) {
  prefill_ = model_->entry("prefill");
  decode_ = model_->entry("decode");
}

StatusOr<std::unique_ptr<Engine>>
Engine::create(std::shared_ptr<const Model> model,
               const EngineOptions &options) {
  if (!model)
    return makeError(StatusCode::InvalidArgument, "no model");
  for (const char *name : {"prefill", "decode"})
    if (!model->entry(name))
      return makeError(StatusCode::FailedPrecondition,
                       "the artifact has no '", name, "' entry point");
  if (options.maxSequences < 1)
    return makeError(StatusCode::InvalidArgument,
                     "max sequences must be positive, got ",
                     options.maxSequences);
  if (options.numBlocks < 0)
    return makeError(StatusCode::InvalidArgument,
                     "KV cache blocks must not be negative, got ",
                     options.numBlocks);
  const ModelConfig &config = model->config();
  int64_t numBlocks = options.numBlocks;
  if (numBlocks == 0)
    numBlocks = blocksForTokens(config.contextLength, config.blockSize) *
                options.maxSequences;
  if (numBlocks > INT32_MAX)
    return makeError(StatusCode::InvalidArgument, "too many KV blocks");
  KVCacheConfig kv = kvCacheConfigFor(*model, static_cast<int32_t>(numBlocks));
  KILN_ASSIGN_OR_RETURN(PagedKVCache cache, PagedKVCache::create(kv));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Device> device,
                        createDevice(options.device));
  KILN_RETURN_IF_ERROR(device->prepare(model, kv));
  return std::unique_ptr<Engine>(new Engine(std::move(model),
                                            std::move(device),
                                            std::move(cache), options.seed,
                                            options));
}

static Status checkTokens(Span<const int32_t> tokens, const ModelConfig &c,
                          const char *what) {
  if (tokens.empty())
    return makeError(StatusCode::InvalidArgument, "empty ", what,
                     ": at least one token (e.g. BOS) is needed");
  if ((int64_t)tokens.size() > c.contextLength)
    return makeError(StatusCode::InvalidArgument, what, " of ", tokens.size(),
                     " tokens is longer than the model's context of ",
                     c.contextLength, " tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocabSize)
      return makeError(StatusCode::InvalidArgument, what, " token ", i,
                       " is ", tokens[i], ", outside the vocabulary [0, ",
                       c.vocabSize, ")");
  return Status::ok();
}

StatusOr<int64_t> Engine::addRequest(std::vector<int32_t> prompt,
                                     const SamplingParams &params,
                                     int32_t maxNewTokens,
                                     TokenCallback callback) {
  KILN_RETURN_IF_ERROR(checkTokens(prompt, model_->config(), "prompt"));
  KILN_RETURN_IF_ERROR(params.validate());
  if (maxNewTokens < 1)
    return makeError(StatusCode::InvalidArgument,
                     "max new tokens must be positive, got ", maxNewTokens);
  auto request = std::make_unique<Request>();
  request->id = nextId_++;
  request->prompt = std::move(prompt);
  request->params = params;
  request->maxNewTokens = maxNewTokens;
  request->callback = std::move(callback);
  int64_t id = request->id;
  waiting_.push_back(std::move(request));
  return id;
}

Status Engine::runEntry(const EntryPoint &entry, Span<const int32_t> tokens,
                        std::vector<float> &logits) {
  Status run = device_->run(entry, cache_->forwardBatch(), tokens, logits);
  Status end = cache_->endForward();
  KILN_RETURN_IF_ERROR(run);
  return end;
}

void Engine::drop(int64_t id) {
  if (cache_->hasSequence(id))
    cache_->removeSequence(id).ignoreError();
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [&](const std::unique_ptr<Request> &r) {
                                  return r->id == id;
                                }),
                 running_.end());
}

Status Engine::step() {
  if (!waiting_.empty()) {
    size_t before = running_.size();
    KILN_RETURN_IF_ERROR(prefillStep());
    if (running_.size() != before || waiting_.empty())
      return Status::ok();
    // Nothing could be admitted: let the running sequences advance (and
    // free their blocks when they finish).
  }
  if (!running_.empty())
    return decodeStep();
  return Status::ok();
}

Status Engine::runToCompletion() {
  while (!idle())
    KILN_RETURN_IF_ERROR(step());
  return Status::ok();
}

Status Engine::prefillStep() {
  const ModelConfig &config = model_->config();
  int64_t budget = options_.maxPrefillTokens > 0 ? options_.maxPrefillTokens
                                                 : config.contextLength;
  // Running sequences may each need a fresh block for their next token.
  int64_t free = cache_->numFreeBlocks() - (int64_t)running_.size();
  std::vector<std::unique_ptr<Request>> admitted;
  int64_t tokens = 0;
  while (!waiting_.empty() &&
         (int64_t)(running_.size() + admitted.size()) < options_.maxSequences) {
    Request &r = *waiting_.front();
    int64_t n = r.prompt.size();
    int64_t need = blocksForTokens(n, config.blockSize);
    if (!admitted.empty() && tokens + n > budget)
      break;
    if (need > free) {
      if (admitted.empty() && running_.empty()) {
        int64_t id = r.id;
        waiting_.pop_front();
        return makeError(StatusCode::ResourceExhausted,
                         "out of KV cache blocks: request ", id,
                         "'s prompt of ", n, " tokens needs ", need,
                         " blocks of ", config.blockSize, " tokens, the cache "
                         "has ",
                         cache_->numFreeBlocks(), " free of ",
                         cache_->config().numBlocks);
      }
      break;
    }
    free -= need;
    tokens += n;
    admitted.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  if (admitted.empty())
    return Status::ok();

  std::vector<int64_t> ids;
  std::vector<int32_t> lengths, batchTokens;
  for (const auto &r : admitted) {
    KILN_RETURN_IF_ERROR(cache_->addSequence(r->id));
    ids.push_back(r->id);
    lengths.push_back(static_cast<int32_t>(r->prompt.size()));
    batchTokens.insert(batchTokens.end(), r->prompt.begin(), r->prompt.end());
  }
  std::vector<Request *> batch;
  for (auto &r : admitted) {
    batch.push_back(r.get());
    running_.push_back(std::move(r));
  }
  auto start = std::chrono::steady_clock::now();
  Status begun = cache_->beginForward(ids, lengths);
  if (!begun.isOk()) {
    for (int64_t id : ids)
      drop(id);
    return begun;
  }
  std::vector<float> logits;
  Status ran = runEntry(*prefill_, batchTokens, logits);
  if (!ran.isOk()) {
    for (int64_t id : ids)
      drop(id);
    return ran;
  }
  stats_.prefillSeconds += secondsSince(start);
  stats_.prefillSteps += 1;
  stats_.prefillTokens += batchTokens.size();
  return emit(batch, logits);
}

Status Engine::decodeStep() {
  std::vector<int64_t> ids;
  std::vector<int32_t> lengths, tokens;
  std::vector<Request *> batch;
  for (auto &r : running_) {
    ids.push_back(r->id);
    lengths.push_back(1);
    tokens.push_back(r->next);
    batch.push_back(r.get());
  }
  auto start = std::chrono::steady_clock::now();
  Status begun = cache_->beginForward(ids, lengths);
  if (!begun.isOk()) {
    if (begun.code() != StatusCode::ResourceExhausted)
      return begun;
    // No block for some sequence's next token: drop the youngest request
    // (its blocks go back to the pool) and report it.
    int64_t victim = running_.back()->id;
    drop(victim);
    return makeError(StatusCode::ResourceExhausted,
                     "out of KV cache blocks during decode: ", ids.size(),
                     " running sequences need more than the ",
                     cache_->config().numBlocks,
                     " blocks of the cache; request ", victim,
                     " was stopped (" + begun.message() + ")");
  }
  std::vector<float> logits;
  Status ran = runEntry(*decode_, tokens, logits);
  if (!ran.isOk())
    return ran;
  stats_.decodeSeconds += secondsSince(start);
  stats_.decodeSteps += 1;
  stats_.decodeTokens += tokens.size();
  return emit(batch, logits);
}

Status Engine::emit(std::vector<Request *> &batch,
                    const std::vector<float> &logits) {
  const ModelConfig &config = model_->config();
  int64_t vocab = config.vocabSize;
  if ((int64_t)logits.size() != (int64_t)batch.size() * vocab)
    return makeError(StatusCode::Internal, "expected ", batch.size(),
                     " rows of logits, got ", logits.size(), " values");
  std::vector<int64_t> finished;
  for (size_t i = 0; i < batch.size(); ++i) {
    Request &r = *batch[i];
    Span<const float> row(logits.data() + i * vocab, vocab);
    StatusOr<int32_t> token = sampler_.sample(row, r.params);
    if (!token.isOk()) {
      int64_t id = r.id;
      drop(id);
      return Status(token.status().code(), "request " + std::to_string(id) +
                                               ": " +
                                               token.status().message());
    }
    r.generated += 1;
    KILN_ASSIGN_OR_RETURN(int32_t length, cache_->length(r.id));
    TokenEvent event;
    event.requestId = r.id;
    event.token = *token;
    event.index = r.generated;
    if (*token == config.eosTokenId)
      event.finish = FinishReason::Eos;
    else if (r.generated >= r.maxNewTokens)
      event.finish = FinishReason::MaxTokens;
    else if (length >= config.contextLength)
      event.finish = FinishReason::ContextFull;
    r.next = *token;
    if (r.callback)
      r.callback(event);
    if (event.finish != FinishReason::None)
      finished.push_back(r.id);
  }
  for (int64_t id : finished)
    drop(id);
  return Status::ok();
}

StatusOr<std::vector<float>> Engine::forwardAll(Span<const int32_t> tokens) {
  const EntryPoint *entry = model_->entry("prefill_all");
  if (!entry)
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact has no 'prefill_all' entry point (compile "
                     "it with kiln-compile)");
  KILN_RETURN_IF_ERROR(checkTokens(tokens, model_->config(), "sequence"));
  int64_t id = nextScratchId_--;
  KILN_RETURN_IF_ERROR(cache_->addSequence(id));
  Status begun =
      cache_->beginForward({id}, {static_cast<int32_t>(tokens.size())});
  if (!begun.isOk()) {
    cache_->removeSequence(id).ignoreError();
    if (begun.code() == StatusCode::ResourceExhausted)
      return makeError(StatusCode::ResourceExhausted,
                       "out of KV cache blocks: a sequence of ", tokens.size(),
                       " tokens does not fit the cache's ",
                       cache_->numFreeBlocks(), " free blocks of ",
                       cache_->config().blockSize, " tokens");
    return begun;
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits;
  Status ran = runEntry(*entry, tokens, logits);
  cache_->removeSequence(id).ignoreError();
  KILN_RETURN_IF_ERROR(ran);
  stats_.prefillSeconds += secondsSince(start);
  stats_.prefillSteps += 1;
  stats_.prefillTokens += tokens.size();
  return logits;
}

} // namespace kiln::runtime
