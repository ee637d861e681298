//===- Engine.cpp - Requests in, tokens out -------------------------------===//
//
// The scheduler (docs/Serving.md): a prefill step admits waiting requests
// first come, first served while sequences, free blocks (one kept per
// running sequence for its next token) and the prefill token budget allow;
// otherwise a decode step advances every running sequence by one token,
// preempting the most recently admitted ones when the free blocks do not
// cover the step. Preemption recomputes: the victim's blocks go back to
// the pool and it waits at the front of the queue with its generated
// tokens, which its next prefill runs again after its prompt. The host
// device computes every row the same way in a prefill and in a decode
// step, so a resumed request continues exactly as if it had never
// stopped; its sampler (one per request) keeps its random stream.
//

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

static double secondsBetween(std::chrono::steady_clock::time_point from,
                             std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Engine::Engine(std::shared_ptr<const Model> model,
               std::unique_ptr<Device> device, PagedKVCache cache,
               const EngineOptions &options)
    : model_(std::move(model)), device_(std::move(device)),
      cache_(std::move(cache)), options_(options) {
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
  std::string note;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Device> device,
                        openPreparedDevice(options.device, model, kv, &note));
  std::unique_ptr<Engine> engine(new Engine(std::move(model),
                                            std::move(device),
                                            std::move(cache), options));
  engine->deviceNote_ = std::move(note);
  return engine;
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

int64_t Engine::worstCaseBlocks(int64_t promptTokens,
                                int32_t maxNewTokens) const {
  const ModelConfig &config = model_->config();
  int64_t tokens = std::min<int64_t>(promptTokens + maxNewTokens - 1,
                                     std::max<int64_t>(promptTokens,
                                                       config.contextLength));
  return blocksForTokens(tokens, config.blockSize);
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
  // Preemption lets the oldest running request advance alone; one that
  // cannot finish even then would stall the queue forever.
  int64_t need = worstCaseBlocks(prompt.size(), maxNewTokens);
  if (need > numBlocks())
    return makeError(StatusCode::ResourceExhausted,
                     "out of KV cache blocks: a prompt of ", prompt.size(),
                     " tokens and up to ", maxNewTokens,
                     " new tokens need ", need, " blocks of ",
                     model_->config().blockSize,
                     " tokens, the whole cache has ", numBlocks());
  int64_t id = nextId_++;
  auto request =
      std::make_unique<Request>(id, params.seedFor(options_.seed, id));
  request->prompt = std::move(prompt);
  request->params = params;
  request->maxNewTokens = maxNewTokens;
  request->callback = std::move(callback);
  request->addedAt = Clock::now();
  request->metrics.requestId = id;
  request->metrics.promptTokens = static_cast<int32_t>(request->prompt.size());
  waiting_.push_back(std::move(request));
  return id;
}

StatusOr<RequestMetrics> Engine::requestMetrics(int64_t id) const {
  auto done = finishedMetrics_.find(id);
  if (done != finishedMetrics_.end())
    return done->second;
  for (const auto &r : running_)
    if (r->id == id)
      return r->metrics;
  for (const auto &r : waiting_)
    if (r->id == id)
      return r->metrics;
  return makeError(StatusCode::NotFound, "no request ", id);
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
  if (idle())
    return Status::ok();
  auto start = Clock::now();
  Status status = Status::ok();
  bool prefilled = false;
  if (!waiting_.empty()) {
    int64_t before = stats_.prefillSteps;
    status = prefillStep();
    prefilled = !status.isOk() || stats_.prefillSteps != before;
  }
  // Nothing could be admitted: let the running sequences advance (and free
  // their blocks when they finish, or give them up to older ones).
  if (!prefilled && !running_.empty())
    status = decodeStep();
  stats_.busySeconds += secondsSince(start);
  return status;
}

Status Engine::runToCompletion() {
  while (!idle())
    KILN_RETURN_IF_ERROR(step());
  return Status::ok();
}

Status Engine::admit(std::vector<std::unique_ptr<Request>> &admitted) {
  const ModelConfig &config = model_->config();
  int64_t budget = options_.maxPrefillTokens > 0 ? options_.maxPrefillTokens
                                                 : config.contextLength;
  // Running sequences may each need a fresh block for their next token.
  int64_t free = cache_->numFreeBlocks() - (int64_t)running_.size();
  int64_t tokens = 0;
  while (!waiting_.empty() &&
         (int64_t)(running_.size() + admitted.size()) < options_.maxSequences) {
    Request &r = *waiting_.front();
    int64_t n = r.prefillLength();
    int64_t need = blocksForTokens(n, config.blockSize);
    if (!admitted.empty() && tokens + n > budget)
      break;
    if (need > free) {
      // addRequest keeps every request within the whole pool, which is
      // free when nothing runs: this is a broken invariant.
      if (admitted.empty() && running_.empty()) {
        int64_t id = r.id;
        waiting_.pop_front();
        return makeError(StatusCode::ResourceExhausted,
                         "out of KV cache blocks: request ", id, "'s ", n,
                         " tokens need ", need, " blocks of ",
                         config.blockSize, " tokens, the cache has ",
                         cache_->numFreeBlocks(), " free of ", numBlocks(),
                         "; the request was dropped");
      }
      break;
    }
    free -= need;
    tokens += n;
    admitted.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return Status::ok();
}

Status Engine::prefillStep() {
  std::vector<std::unique_ptr<Request>> admitted;
  KILN_RETURN_IF_ERROR(admit(admitted));
  if (admitted.empty())
    return Status::ok();

  auto start = Clock::now();
  std::vector<int64_t> ids;
  std::vector<int32_t> lengths, batchTokens;
  int64_t recomputed = 0;
  for (const auto &r : admitted) {
    KILN_RETURN_IF_ERROR(cache_->addSequence(r->id));
    ids.push_back(r->id);
    lengths.push_back(static_cast<int32_t>(r->prefillLength()));
    batchTokens.insert(batchTokens.end(), r->prompt.begin(), r->prompt.end());
    batchTokens.insert(batchTokens.end(), r->output.begin(), r->output.end());
    if (!r->output.empty())
      recomputed += r->prefillLength();
    if (!r->scheduled) {
      r->scheduled = true;
      r->metrics.queueSeconds = secondsBetween(r->addedAt, start);
    }
  }
  std::vector<Request *> batch;
  for (auto &r : admitted) {
    batch.push_back(r.get());
    running_.push_back(std::move(r));
  }
  Status begun = cache_->beginForward(ids, lengths);
  if (!begun.isOk()) {
    for (int64_t id : ids)
      drop(id);
    return begun;
  }
  std::vector<int32_t> sampled;
  Status ran = runAndSample(*prefill_, batchTokens, batch, sampled);
  if (!ran.isOk()) {
    for (int64_t id : ids)
      drop(id);
    return ran;
  }
  stats_.prefillSeconds += secondsSince(start);
  stats_.prefillSteps += 1;
  stats_.prefillTokens += batchTokens.size();
  stats_.recomputedTokens += recomputed;
  return emit(batch, sampled);
}

Status Engine::preemptNewest() {
  std::unique_ptr<Request> victim = std::move(running_.back());
  running_.pop_back();
  Status removed = cache_->removeSequence(victim->id);
  victim->metrics.preemptions += 1;
  stats_.preemptions += 1;
  // In front of requests that never ran; several victims of one step keep
  // their admission order (the older one was preempted later).
  waiting_.push_front(std::move(victim));
  return removed;
}

Status Engine::beginDecode(std::vector<Request *> &batch,
                           std::vector<int32_t> &tokens) {
  while (true) {
    std::vector<int64_t> ids;
    std::vector<int32_t> lengths;
    batch.clear();
    tokens.clear();
    for (auto &r : running_) {
      ids.push_back(r->id);
      lengths.push_back(1);
      tokens.push_back(r->output.back());
      batch.push_back(r.get());
    }
    Status begun = cache_->beginForward(ids, lengths);
    if (begun.isOk() || begun.code() != StatusCode::ResourceExhausted)
      return begun;
    // addRequest keeps every request within the whole pool, so the oldest
    // request alone always fits.
    if (running_.size() == 1)
      return makeError(StatusCode::Internal, "request ", ids[0],
                       " alone does not fit the KV cache of ", numBlocks(),
                       " blocks: ", begun.message());
    KILN_RETURN_IF_ERROR(preemptNewest());
  }
}

Status Engine::decodeStep() {
  std::vector<Request *> batch;
  std::vector<int32_t> tokens;
  auto start = Clock::now();
  KILN_RETURN_IF_ERROR(beginDecode(batch, tokens));
  std::vector<int32_t> sampled;
  Status ran = runAndSample(*decode_, tokens, batch, sampled);
  if (!ran.isOk())
    return ran;
  stats_.decodeSeconds += secondsSince(start);
  stats_.decodeSteps += 1;
  stats_.decodeTokens += tokens.size();
  return emit(batch, sampled);
}

Status Engine::runAndSample(const EntryPoint &entry,
                            Span<const int32_t> tokens,
                            std::vector<Request *> &batch,
                            std::vector<int32_t> &sampled) {
  // An all-greedy batch lets the device pick the tokens (the CUDA device
  // copies back one id per sequence instead of the logits).
  bool greedy = std::all_of(batch.begin(), batch.end(), [](Request *r) {
    return r->params.isGreedy();
  });
  if (greedy) {
    Status run =
        device_->runGreedy(entry, cache_->forwardBatch(), tokens, sampled);
    Status end = cache_->endForward();
    KILN_RETURN_IF_ERROR(run);
    KILN_RETURN_IF_ERROR(end);
    if (sampled.size() != batch.size())
      return makeError(StatusCode::Internal, "expected ", batch.size(),
                       " greedy tokens, got ", sampled.size());
    for (size_t i = 0; i < batch.size(); ++i)
      if (sampled[i] < 0) {
        int64_t id = batch[i]->id;
        drop(id);
        return makeError(StatusCode::InvalidArgument, "request ", id,
                         ": its logits hold a NaN or +inf, or no finite "
                         "value: no token can be chosen");
      }
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(runEntry(entry, tokens, logits_));
  int64_t vocab = model_->config().vocabSize;
  if ((int64_t)logits_.size() != (int64_t)batch.size() * vocab)
    return makeError(StatusCode::Internal, "expected ", batch.size(),
                     " rows of logits, got ", logits_.size(), " values");
  sampled.resize(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Request &r = *batch[i];
    Span<const float> row(logits_.data() + i * vocab, vocab);
    StatusOr<int32_t> token = r.sampler.sample(row, r.params);
    if (!token.isOk()) {
      int64_t id = r.id;
      drop(id);
      return Status(token.status().code(), "request " + std::to_string(id) +
                                               ": " +
                                               token.status().message());
    }
    sampled[i] = *token;
  }
  return Status::ok();
}

Status Engine::emit(std::vector<Request *> &batch,
                    const std::vector<int32_t> &sampled) {
  const ModelConfig &config = model_->config();
  std::vector<int64_t> finished;
  auto now = Clock::now();
  for (size_t i = 0; i < batch.size(); ++i) {
    Request &r = *batch[i];
    const int32_t *token = &sampled[i];
    r.output.push_back(*token);
    int32_t generated = static_cast<int32_t>(r.output.size());
    KILN_ASSIGN_OR_RETURN(int32_t length, cache_->length(r.id));
    TokenEvent event;
    event.requestId = r.id;
    event.token = *token;
    event.index = generated;
    if (*token == config.eosTokenId && !r.params.ignoreEos)
      event.finish = FinishReason::Eos;
    else if (generated >= r.maxNewTokens)
      event.finish = FinishReason::MaxTokens;
    else if (length >= config.contextLength)
      event.finish = FinishReason::ContextFull;
    recordToken(r, event.finish, now);
    stats_.generatedTokens += 1;
    if (event.finish != FinishReason::None) {
      stats_.finishedRequests += 1;
      event.metrics = &r.metrics;
      finished.push_back(r.id);
    }
    if (r.callback)
      r.callback(event);
    if (event.finish != FinishReason::None)
      finishedMetrics_[r.id] = std::move(r.metrics);
  }
  for (int64_t id : finished)
    drop(id);
  return Status::ok();
}

void Engine::recordToken(Request &r, FinishReason finish,
                         Clock::time_point now) {
  RequestMetrics &m = r.metrics;
  m.generatedTokens = static_cast<int32_t>(r.output.size());
  if (m.generatedTokens == 1)
    m.timeToFirstTokenSeconds = secondsBetween(r.addedAt, now);
  else
    m.interTokenSeconds.push_back(secondsBetween(r.lastTokenAt, now));
  r.lastTokenAt = now;
  m.totalSeconds = secondsBetween(r.addedAt, now);
  m.finish = finish;
}

StatusOr<std::vector<float>> Engine::forwardAll(Span<const int32_t> tokens) {
  std::vector<std::vector<int32_t>> rows(1);
  rows[0].assign(tokens.begin(), tokens.end());
  return forwardAllBatch(rows);
}

StatusOr<std::vector<float>>
Engine::forwardAllBatch(const std::vector<std::vector<int32_t>> &rows) {
  std::vector<SequenceWithPast> sequences(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    sequences[i].tokens = rows[i];
  KILN_ASSIGN_OR_RETURN(ForwardAllResult result,
                        forwardAllWithPast(sequences, false));
  return std::move(result.logits);
}

StatusOr<ForwardAllResult>
Engine::forwardAllWithPast(const std::vector<SequenceWithPast> &sequences,
                           bool readBackCache) {
  const EntryPoint *entry = model_->entry("prefill_all");
  if (!entry)
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact has no 'prefill_all' entry point (compile "
                     "it with kiln-compile)");
  const ModelConfig &config = model_->config();
  if (sequences.empty())
    return makeError(StatusCode::InvalidArgument, "no sequences to run");
  size_t row = static_cast<size_t>(config.numKVHeads) * config.headDim;
  std::vector<int32_t> lengths, batchTokens;
  int64_t totalTokens = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const SequenceWithPast &seq = sequences[i];
    std::string what = sequences.size() == 1
                           ? std::string("sequence")
                           : "sequence " + std::to_string(i);
    KILN_RETURN_IF_ERROR(checkTokens(seq.tokens, config, what.c_str()));
    if (seq.pastLength < 0 ||
        seq.pastLength + (int64_t)seq.tokens.size() > config.contextLength)
      return makeError(StatusCode::InvalidArgument, what, ": ",
                       seq.pastLength, " past and ", seq.tokens.size(),
                       " new tokens do not fit the model's context of ",
                       config.contextLength, " tokens");
    size_t layers = seq.pastLength ? static_cast<size_t>(config.numLayers) : 0;
    bool sized = seq.pastKeys.size() == layers &&
                 seq.pastValues.size() == layers;
    for (size_t l = 0; sized && l < layers; ++l)
      sized = seq.pastKeys[l].size() == seq.pastLength * row &&
              seq.pastValues[l].size() == seq.pastLength * row;
    if (!sized)
      return makeError(StatusCode::InvalidArgument, what, ": expected ",
                       layers, " layers of past keys and values of ",
                       seq.pastLength, " x ", config.numKVHeads, " x ",
                       config.headDim, " values");
    lengths.push_back(static_cast<int32_t>(seq.tokens.size()));
    batchTokens.insert(batchTokens.end(), seq.tokens.begin(),
                       seq.tokens.end());
    totalTokens += seq.pastLength + (int64_t)seq.tokens.size();
  }

  // Scratch sequences, removed on every path out.
  std::vector<int64_t> ids;
  struct Cleanup {
    PagedKVCache &cache;
    std::vector<int64_t> &ids;
    ~Cleanup() {
      for (int64_t id : ids)
        cache.removeSequence(id).ignoreError();
    }
  } cleanup{*cache_, ids};
  for (size_t i = 0; i < sequences.size(); ++i) {
    int64_t id = nextScratchId_--;
    KILN_RETURN_IF_ERROR(cache_->addSequence(id));
    ids.push_back(id);
  }
  auto outOfBlocks = [&](const Status &begun) -> Status {
    if (begun.code() != StatusCode::ResourceExhausted)
      return begun;
    return makeError(StatusCode::ResourceExhausted,
                     "out of KV cache blocks: ", sequences.size(),
                     " sequences of ", totalTokens,
                     " tokens in all do not fit the cache's ",
                     cache_->numFreeBlocks(), " free blocks of ",
                     cache_->config().blockSize, " tokens");
  };

  // The past: slots for it (no step runs), then its keys and values.
  std::vector<int64_t> pastIds;
  std::vector<int32_t> pastLengths;
  for (size_t i = 0; i < sequences.size(); ++i)
    if (sequences[i].pastLength > 0) {
      pastIds.push_back(ids[i]);
      pastLengths.push_back(sequences[i].pastLength);
    }
  if (!pastIds.empty()) {
    Status begun = cache_->beginForward(pastIds, pastLengths);
    if (!begun.isOk())
      return outOfBlocks(begun);
    const ForwardBatch &batch = cache_->forwardBatch();
    Status written = Status::ok();
    // Fresh sequences share no blocks, and the engine never forks: no
    // copy is due before these writes.
    if (!batch.copies.empty())
      written = makeError(StatusCode::Internal,
                          "block copies pending before a cache write");
    std::vector<float> keys, values;
    for (int32_t l = 0; written.isOk() && l < config.numLayers; ++l) {
      keys.clear();
      values.clear();
      for (const SequenceWithPast &seq : sequences) {
        if (seq.pastLength == 0)
          continue;
        keys.insert(keys.end(), seq.pastKeys[l].begin(),
                    seq.pastKeys[l].end());
        values.insert(values.end(), seq.pastValues[l].begin(),
                      seq.pastValues[l].end());
      }
      written = device_->writeCache(l, batch.slotMapping, keys, values);
    }
    Status end = cache_->endForward();
    KILN_RETURN_IF_ERROR(written);
    KILN_RETURN_IF_ERROR(end);
  }

  Status begun = cache_->beginForward(ids, lengths);
  if (!begun.isOk())
    return outOfBlocks(begun);
  auto start = std::chrono::steady_clock::now();
  ForwardAllResult result;
  KILN_RETURN_IF_ERROR(runEntry(*entry, batchTokens, result.logits));
  stats_.prefillSeconds += secondsSince(start);
  stats_.prefillSteps += 1;
  stats_.prefillTokens += batchTokens.size();

  if (readBackCache) {
    int32_t blockSize = cache_->config().blockSize;
    result.keys.resize(sequences.size());
    result.values.resize(sequences.size());
    for (size_t i = 0; i < sequences.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::vector<BlockId> table,
                            cache_->blockTable(ids[i]));
      KILN_ASSIGN_OR_RETURN(int32_t length, cache_->length(ids[i]));
      std::vector<int64_t> slots(length);
      for (int32_t p = 0; p < length; ++p)
        slots[p] = static_cast<int64_t>(table[p / blockSize]) * blockSize +
                   p % blockSize;
      result.keys[i].resize(config.numLayers);
      result.values[i].resize(config.numLayers);
      for (int32_t l = 0; l < config.numLayers; ++l)
        KILN_RETURN_IF_ERROR(device_->readCache(l, slots, result.keys[i][l],
                                                result.values[i][l]));
    }
  }
  return result;
}

} // namespace kiln::runtime
