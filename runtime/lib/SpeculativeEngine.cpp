//===- SpeculativeEngine.cpp - Draft, verify, accept, roll back -----------===//
//
// Invariants between steps, for every running request with committed
// tokens c (prompt, then output): the target cache holds c minus its last
// token (the token the next step feeds), and the draft cache holds a
// prefix of that, draftLength tokens. A speculative step with K drafts
// feeds the target [c.back(), d1..dK] (K + 1 rows of logits), keeps
// `accepted` drafts and one target token, and pops the K - accepted
// rejected rows from the target cache, so the invariant holds again; the
// draft cache pops what it holds beyond the new committed tokens minus one.
//

#include "kiln/runtime/SpeculativeEngine.h"
#include "kiln/runtime/SpeculativeAcceptance.h"

#include <algorithm>

namespace kiln::runtime {

static double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

Status checkDraftMatchesTarget(const Model &target, const Model &draft) {
  const ModelConfig &t = target.config(), &d = draft.config();
  if (t.vocabSize != d.vocabSize)
    return makeError(StatusCode::FailedPrecondition,
                     "the draft's vocabulary of ", d.vocabSize,
                     " tokens differs from the target's of ", t.vocabSize);
  if (t.bosTokenId != d.bosTokenId || t.eosTokenId != d.eosTokenId)
    return makeError(StatusCode::FailedPrecondition, "the draft's BOS/EOS ",
                     d.bosTokenId, "/", d.eosTokenId,
                     " differ from the target's ", t.bosTokenId, "/",
                     t.eosTokenId);
  Span<const uint8_t> tt = target.tokenizerBytes(), dt = draft.tokenizerBytes();
  if (!tt.empty() && !dt.empty() &&
      (tt.size() != dt.size() || !std::equal(tt.begin(), tt.end(), dt.begin())))
    return makeError(StatusCode::FailedPrecondition,
                     "the draft's tokenizer differs from the target's");
  return Status::ok();
}

int64_t
SpeculativeEngine::ModelState::worstCaseBlocks(int64_t promptTokens,
                                               int32_t maxNewTokens) const {
  // As Engine: the prompt and all but the last new token are fed, up to
  // the context. Drafting is capped by the remaining budget, so it never
  // feeds more.
  const ModelConfig &config = model->config();
  int64_t tokens =
      std::min<int64_t>(promptTokens + maxNewTokens - 1,
                        std::max<int64_t>(promptTokens, config.contextLength));
  return blocksForTokens(tokens, config.blockSize);
}

SpeculativeEngine::SpeculativeEngine(ModelState target, ModelState draft,
                                     const SpeculativeOptions &options)
    : target_(std::move(target)), draft_(std::move(draft)), options_(options) {
  targetPrefill_ = target_.model->entry("prefill");
  verify_ = target_.model->entry("verify");
  if (!verify_)
    verify_ = target_.model->entry("prefill_all");
  if (draft_.model) {
    draftPrefill_ = draft_.model->entry("prefill");
    draftDecode_ = draft_.model->entry("decode");
  }
}

static StatusOr<int32_t> poolBlocks(const Model &model,
                                    const SpeculativeOptions &options) {
  const ModelConfig &config = model.config();
  int64_t n = options.numBlocks;
  if (n == 0)
    n = blocksForTokens(config.contextLength, config.blockSize) *
        options.maxSequences;
  if (n > INT32_MAX)
    return makeError(StatusCode::InvalidArgument, "too many KV blocks");
  return static_cast<int32_t>(n);
}

StatusOr<std::unique_ptr<SpeculativeEngine>>
SpeculativeEngine::create(std::shared_ptr<const Model> target,
                          std::shared_ptr<const Model> draft,
                          const SpeculativeOptions &options) {
  if (!target)
    return makeError(StatusCode::InvalidArgument, "no target model");
  if (options.maxSequences < 1 || options.numBlocks < 0)
    return makeError(StatusCode::InvalidArgument,
                     "max sequences must be positive and KV blocks not "
                     "negative, got ",
                     options.maxSequences, " and ", options.numBlocks);
  if (options.maxK < 1 || options.k < 1 || options.k > options.maxK)
    return makeError(StatusCode::InvalidArgument, "K must lie in [1, ",
                     options.maxK, "], got ", options.k);
  if (options.ngram.minN < 1 || options.ngram.maxN < options.ngram.minN)
    return makeError(StatusCode::InvalidArgument,
                     "n-gram sizes must satisfy 1 <= min <= max, got ",
                     options.ngram.minN, " and ", options.ngram.maxN);
  if (!target->entry("prefill"))
    return makeError(StatusCode::FailedPrecondition,
                     "the target has no 'prefill' entry point");
  if (!target->entry("verify") && !target->entry("prefill_all"))
    return makeError(StatusCode::FailedPrecondition,
                     "the target has no 'verify' or 'prefill_all' entry "
                     "point to score drafts with (compile it with "
                     "kiln-compile)");
  if (draft) {
    for (const char *name : {"prefill", "decode"})
      if (!draft->entry(name))
        return makeError(StatusCode::FailedPrecondition, "the draft has no '",
                         name, "' entry point");
    KILN_RETURN_IF_ERROR(checkDraftMatchesTarget(*target, *draft));
  }

  std::string note;
  auto prepare = [&](std::shared_ptr<const Model> model,
                     ModelState &state) -> Status {
    KILN_ASSIGN_OR_RETURN(int32_t blocks, poolBlocks(*model, options));
    KVCacheConfig kv = kvCacheConfigFor(*model, blocks);
    KILN_ASSIGN_OR_RETURN(PagedKVCache cache, PagedKVCache::create(kv));
    state.cache.emplace(std::move(cache));
    KILN_ASSIGN_OR_RETURN(state.device,
                          openPreparedDevice(options.device, model, kv,
                                             note.empty() ? &note : nullptr));
    state.model = std::move(model);
    return Status::ok();
  };
  ModelState targetState, draftState;
  KILN_RETURN_IF_ERROR(prepare(std::move(target), targetState));
  if (draft)
    KILN_RETURN_IF_ERROR(prepare(std::move(draft), draftState));
  std::unique_ptr<SpeculativeEngine> engine(new SpeculativeEngine(
      std::move(targetState), std::move(draftState), options));
  engine->deviceNote_ = std::move(note);
  return engine;
}

Status SpeculativeEngine::setK(int32_t k) {
  if (k < 1 || k > options_.maxK)
    return makeError(StatusCode::InvalidArgument, "K must lie in [1, ",
                     options_.maxK, "], got ", k);
  options_.k = k;
  // Adaptive mode restarts from the new K; fixed mode uses it next step.
  for (auto &r : running_)
    r->k = k;
  return Status::ok();
}

StatusOr<int64_t> SpeculativeEngine::addRequest(std::vector<int32_t> prompt,
                                                const SamplingParams &params,
                                                int32_t maxNewTokens,
                                                TokenCallback callback) {
  const ModelConfig &config = target_.model->config();
  if (prompt.empty())
    return makeError(StatusCode::InvalidArgument,
                     "empty prompt: at least one token (e.g. BOS) is needed");
  int64_t context = config.contextLength;
  if (draft_.model)
    context = std::min<int64_t>(context, draft_.model->config().contextLength);
  if ((int64_t)prompt.size() > context)
    return makeError(StatusCode::InvalidArgument, "prompt of ", prompt.size(),
                     " tokens is longer than the context of ", context,
                     " tokens");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= config.vocabSize)
      return makeError(StatusCode::InvalidArgument, "prompt token ", i, " is ",
                       prompt[i], ", outside the vocabulary [0, ",
                       config.vocabSize, ")");
  KILN_RETURN_IF_ERROR(params.validate());
  if (maxNewTokens < 1)
    return makeError(StatusCode::InvalidArgument,
                     "max new tokens must be positive, got ", maxNewTokens);
  for (ModelState *state : {&target_, &draft_}) {
    if (!state->model)
      continue;
    int64_t need = state->worstCaseBlocks(prompt.size(), maxNewTokens);
    if (need > state->cache->config().numBlocks)
      return makeError(StatusCode::ResourceExhausted,
                       "out of KV cache blocks: a prompt of ", prompt.size(),
                       " tokens and up to ", maxNewTokens, " new tokens need ",
                       need, " blocks of the ",
                       state == &target_ ? "target" : "draft",
                       " cache, which has ", state->cache->config().numBlocks);
  }
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
  request->k = options_.k;
  waiting_.push_back(std::move(request));
  return id;
}

Status SpeculativeEngine::step() {
  if (idle())
    return Status::ok();
  auto start = Clock::now();
  int64_t before = stats_.prefillSteps;
  Status status = waiting_.empty() ? Status::ok() : prefillStep();
  if (status.isOk() && stats_.prefillSteps == before && !running_.empty())
    status = speculativeStep();
  stats_.busySeconds += secondsSince(start);
  return status;
}

Status SpeculativeEngine::runToCompletion() {
  while (!idle())
    KILN_RETURN_IF_ERROR(step());
  return Status::ok();
}

Status SpeculativeEngine::runStep(ModelState &state, const EntryPoint &entry,
                                  Span<const int32_t> tokens, bool greedyOnly,
                                  std::vector<int32_t> &ids,
                                  std::vector<float> &logits) {
  const ForwardBatch &batch = state.cache->forwardBatch();
  Status run = Status::ok();
  if (greedyOnly) {
    // The device picks the tokens (the CUDA device copies back one id per
    // row instead of the logits).
    run = state.device->runGreedy(entry, batch, tokens, ids);
  } else {
    run = state.device->run(entry, batch, tokens, logits);
    if (run.isOk()) {
      int64_t vocab = state.model->config().vocabSize;
      ids.resize(logits.size() / vocab);
      for (size_t i = 0; i < ids.size(); ++i) {
        StatusOr<int32_t> best = Sampler::greedy(
            Span<const float>(logits.data() + i * vocab, vocab));
        ids[i] = best.isOk() ? *best : -1;
      }
    }
  }
  Status end = state.cache->endForward();
  KILN_RETURN_IF_ERROR(run);
  KILN_RETURN_IF_ERROR(end);
  for (int32_t id : ids)
    if (id < 0)
      return makeError(StatusCode::InvalidArgument,
                       "a row of logits holds a NaN or +inf, or no finite "
                       "value: no token can be chosen");
  return Status::ok();
}

static bool allGreedy(const std::vector<SamplingParams *> &params) {
  return std::all_of(params.begin(), params.end(),
                     [](SamplingParams *p) { return p->isGreedy(); });
}

//===----------------------------------------------------------------------===//
// Prefill
//===----------------------------------------------------------------------===//

Status SpeculativeEngine::prefillStep() {
  std::vector<std::unique_ptr<Request>> admitted;
  while (!waiting_.empty() &&
         (int64_t)(running_.size() + admitted.size()) < options_.maxSequences) {
    Request &r = *waiting_.front();
    int64_t t = target_.worstCaseBlocks(r.prompt.size(), r.maxNewTokens);
    int64_t d = draft_.model
                    ? draft_.worstCaseBlocks(r.prompt.size(), r.maxNewTokens)
                    : 0;
    if (target_.reservedBlocks + t > target_.cache->config().numBlocks ||
        (draft_.model &&
         draft_.reservedBlocks + d > draft_.cache->config().numBlocks))
      break;
    target_.reservedBlocks += t;
    draft_.reservedBlocks += d;
    r.targetBlocks = t;
    r.draftBlocks = d;
    admitted.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  if (admitted.empty())
    return Status::ok();

  auto start = Clock::now();
  std::vector<int64_t> ids;
  std::vector<int32_t> lengths, tokens;
  std::vector<SamplingParams *> params;
  std::vector<Request *> batch;
  for (auto &r : admitted) {
    ids.push_back(r->id);
    lengths.push_back(static_cast<int32_t>(r->prompt.size()));
    tokens.insert(tokens.end(), r->prompt.begin(), r->prompt.end());
    params.push_back(&r->params);
    r->metrics.queueSeconds =
        std::chrono::duration<double>(start - r->addedAt).count();
    batch.push_back(r.get());
    running_.push_back(std::move(r));
  }
  auto fail = [&](Status status) {
    for (ModelState *state : {&target_, &draft_})
      if (state->model && state->cache->inForward())
        state->cache->endForward().ignoreError();
    for (int64_t id : ids)
      retire(id);
    return status;
  };
  for (ModelState *state : {&target_, &draft_}) {
    if (!state->model)
      continue;
    for (int64_t id : ids)
      if (Status added = state->cache->addSequence(id); !added.isOk())
        return fail(added);
    if (Status begun = state->cache->beginForward(ids, lengths); !begun.isOk())
      return fail(begun);
  }
  bool greedy = allGreedy(params);
  Status ran = runStep(target_, *targetPrefill_, tokens, greedy, ids_, logits_);
  if (!ran.isOk())
    return fail(ran);
  // The first token comes from the target's last-token logits.
  std::vector<int32_t> first(batch.size());
  int64_t vocab = target_.model->config().vocabSize;
  for (size_t i = 0; i < batch.size(); ++i) {
    Request &r = *batch[i];
    if (r.params.isGreedy()) {
      first[i] = ids_[i];
      continue;
    }
    StatusOr<int32_t> token = r.sampler.sample(
        Span<const float>(logits_.data() + i * vocab, vocab), r.params);
    if (!token.isOk())
      return fail(token.status());
    first[i] = *token;
  }
  if (draft_.model) {
    // The draft's logits are not needed: its proposals start after the
    // first generated token, which the next step feeds it.
    std::vector<int32_t> ignored;
    std::vector<float> none;
    Status drafted =
        runStep(draft_, *draftPrefill_, tokens, true, ignored, none);
    if (!drafted.isOk())
      return fail(drafted);
    for (Request *r : batch)
      r->draftLength = static_cast<int32_t>(r->prompt.size());
  }
  stats_.prefillSeconds += secondsSince(start);
  stats_.prefillSteps += 1;
  stats_.prefillTokens += tokens.size();
  std::vector<int64_t> finished;
  for (size_t i = 0; i < batch.size(); ++i)
    if (emit(*batch[i], Span<const int32_t>(&first[i], 1)))
      finished.push_back(batch[i]->id);
  for (int64_t id : finished)
    retire(id);
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Speculative step
//===----------------------------------------------------------------------===//

Status SpeculativeEngine::speculativeStep() {
  const ModelConfig &config = target_.model->config();
  std::vector<Request *> batch;
  for (auto &r : running_) {
    // Never draft past the token budget (the last verified row yields one
    // more token) or past the context (the target feeds K + 1 tokens
    // after the contextSize() - 1 it holds).
    int64_t remaining = r->maxNewTokens - (int64_t)r->output.size();
    int64_t room = config.contextLength - r->contextSize();
    if (draft_.model)
      room = std::min<int64_t>(room, draft_.model->config().contextLength -
                                         r->contextSize());
    int64_t k = options_.adaptiveK ? r->k : options_.k;
    r->plannedK = static_cast<int32_t>(
        std::max<int64_t>(0, std::min({k, remaining - 1, room})));
    r->drafts.clear();
    r->q.clear();
    batch.push_back(r.get());
  }
  auto start = Clock::now();
  if (draft_.model)
    KILN_RETURN_IF_ERROR(draftWithModel(batch));
  else
    draftWithNGrams(batch);
  stats_.draftSeconds += secondsSince(start);
  return verify(batch);
}

void SpeculativeEngine::draftWithNGrams(std::vector<Request *> &batch) {
  int64_t vocab = target_.model->config().vocabSize;
  for (Request *r : batch) {
    std::vector<int32_t> context(r->prompt);
    context.insert(context.end(), r->output.begin(), r->output.end());
    r->drafts = proposeByNGram(context, r->plannedK, options_.ngram);
    // A proposal is a fixed token: its q is one-hot.
    if (!r->params.isGreedy()) {
      r->q.assign(r->drafts.size() * vocab, 0.0);
      for (size_t i = 0; i < r->drafts.size(); ++i)
        r->q[i * vocab + r->drafts[i]] = 1.0;
    }
  }
}

Status SpeculativeEngine::draftWithModel(std::vector<Request *> &batch) {
  int64_t vocab = draft_.model->config().vocabSize;
  std::vector<double> qRow;
  for (int32_t round = 1;; ++round) {
    std::vector<Request *> active;
    std::vector<int64_t> ids;
    std::vector<int32_t> lengths, tokens;
    std::vector<SamplingParams *> params;
    for (Request *r : batch) {
      if (r->plannedK < round)
        continue;
      active.push_back(r);
      ids.push_back(r->id);
      params.push_back(&r->params);
      if (round == 1) {
        // What the draft lacks of the committed tokens: the last one, and
        // more when it fell behind (a fully accepted step).
        int64_t n = r->contextSize() - r->draftLength;
        lengths.push_back(static_cast<int32_t>(n));
        for (int64_t i = r->draftLength; i < r->contextSize(); ++i)
          tokens.push_back(r->token(i));
      } else {
        lengths.push_back(1);
        tokens.push_back(r->drafts.back());
      }
    }
    if (active.empty())
      return Status::ok();
    bool single = std::all_of(lengths.begin(), lengths.end(),
                              [](int32_t n) { return n == 1; });
    const EntryPoint &entry = single ? *draftDecode_ : *draftPrefill_;
    bool greedy = allGreedy(params);
    // Greedy one-token rounds with the same sequences (up to the smallest
    // planned K among them) run as one chain: the device feeds each round
    // the previous round's ids itself.
    int32_t last = active.front()->plannedK;
    for (Request *r : active)
      last = std::min(last, r->plannedK);
    if (single && greedy && last > round) {
      KILN_RETURN_IF_ERROR(draftChain(active, ids, tokens, round, last));
      round = last;
      continue;
    }
    KILN_RETURN_IF_ERROR(draft_.cache->beginForward(ids, lengths));
    KILN_RETURN_IF_ERROR(runStep(draft_, entry, tokens, greedy, ids_, logits_));
    stats_.draftSteps += 1;
    for (size_t i = 0; i < active.size(); ++i) {
      Request &r = *active[i];
      r.draftLength += lengths[i];
      if (r.params.isGreedy()) {
        r.drafts.push_back(ids_[i]);
        continue;
      }
      Span<const float> row(logits_.data() + i * vocab, vocab);
      KILN_RETURN_IF_ERROR(Sampler::distribution(row, r.params, qRow));
      KILN_ASSIGN_OR_RETURN(int32_t d, r.sampler.sampleFrom(qRow));
      r.drafts.push_back(d);
      r.q.insert(r.q.end(), qRow.begin(), qRow.end());
    }
  }
}

Status SpeculativeEngine::draftChain(const std::vector<Request *> &active,
                                     const std::vector<int64_t> &ids,
                                     const std::vector<int32_t> &tokens,
                                     int32_t first, int32_t last) {
  // The cache's bookkeeping of every round first (it needs no token
  // values), then the rounds on the device.
  std::vector<ForwardBatch> batches;
  std::vector<int32_t> lengths(active.size(), 1);
  for (int32_t round = first; round <= last; ++round) {
    KILN_RETURN_IF_ERROR(draft_.cache->beginForward(ids, lengths));
    batches.push_back(draft_.cache->forwardBatch());
    KILN_RETURN_IF_ERROR(draft_.cache->endForward());
  }
  KILN_RETURN_IF_ERROR(
      draft_.device->runGreedyChain(*draftDecode_, batches, tokens, ids_));
  if (ids_.size() != batches.size() * active.size() ||
      std::find(ids_.begin(), ids_.end(), -1) != ids_.end())
    return makeError(StatusCode::InvalidArgument,
                     "a row of logits holds a NaN or +inf, or no finite "
                     "value: no token can be chosen");
  stats_.draftSteps += batches.size();
  for (size_t step = 0; step < batches.size(); ++step)
    for (size_t i = 0; i < active.size(); ++i) {
      active[i]->draftLength += 1;
      active[i]->drafts.push_back(ids_[step * active.size() + i]);
    }
  return Status::ok();
}

Status SpeculativeEngine::verify(std::vector<Request *> &batch) {
  auto start = Clock::now();
  const ModelConfig &config = target_.model->config();
  int64_t vocab = config.vocabSize;
  std::vector<int64_t> ids;
  std::vector<int32_t> lengths, tokens;
  std::vector<SamplingParams *> params;
  for (Request *r : batch) {
    ids.push_back(r->id);
    lengths.push_back(static_cast<int32_t>(r->drafts.size() + 1));
    tokens.push_back(r->output.back());
    tokens.insert(tokens.end(), r->drafts.begin(), r->drafts.end());
    params.push_back(&r->params);
  }
  KILN_RETURN_IF_ERROR(target_.cache->beginForward(ids, lengths));
  bool greedy = allGreedy(params);
  KILN_RETURN_IF_ERROR(
      runStep(target_, *verify_, tokens, greedy, ids_, logits_));
  stats_.verifySeconds += secondsSince(start);
  stats_.verifySteps += 1;

  std::vector<int64_t> finished;
  std::vector<double> p, row;
  size_t offset = 0;
  for (Request *r : batch) {
    size_t k = r->drafts.size();
    Acceptance acceptance;
    if (r->params.isGreedy()) {
      KILN_ASSIGN_OR_RETURN(
          acceptance,
          acceptGreedy(r->drafts,
                       Span<const int32_t>(ids_.data() + offset, k + 1)));
    } else {
      p.clear();
      for (size_t j = 0; j <= k; ++j) {
        Span<const float> logits(logits_.data() + (offset + j) * vocab, vocab);
        KILN_RETURN_IF_ERROR(Sampler::distribution(logits, r->params, row));
        p.insert(p.end(), row.begin(), row.end());
      }
      KILN_ASSIGN_OR_RETURN(
          acceptance, acceptSampled(r->drafts, r->q, p, vocab, r->sampler));
    }
    offset += k + 1;

    // Roll back what the target and the draft hold beyond the new
    // committed tokens minus the last.
    int32_t rejected = static_cast<int32_t>(k) - acceptance.accepted;
    KILN_RETURN_IF_ERROR(target_.cache->popN(r->id, rejected));
    int64_t keep = r->contextSize() + acceptance.accepted;
    if (draft_.model && r->draftLength > keep) {
      KILN_RETURN_IF_ERROR(draft_.cache->popN(
          r->id, static_cast<int32_t>(r->draftLength - keep)));
      r->draftLength = static_cast<int32_t>(keep);
    }

    stats_.verifiedSequences += 1;
    stats_.draftedTokens += k;
    stats_.acceptedTokens += acceptance.accepted;
    stats_.stepTokens += acceptance.tokens.size();
    if (stats_.draftedAt.size() < k) {
      stats_.draftedAt.resize(k, 0);
      stats_.acceptedAt.resize(k, 0);
    }
    for (size_t i = 0; i < k; ++i) {
      stats_.draftedAt[i] += 1;
      stats_.acceptedAt[i] += (int32_t)i < acceptance.accepted;
    }
    if (options_.adaptiveK && k > 0) {
      if (acceptance.accepted == (int32_t)k)
        r->k = std::min(r->k + 1, options_.maxK);
      else
        r->k = std::max(r->k - 1, 1);
    }
    if (emit(*r, acceptance.tokens))
      finished.push_back(r->id);
  }
  for (int64_t id : finished)
    retire(id);
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Emission
//===----------------------------------------------------------------------===//

bool SpeculativeEngine::emit(Request &r, Span<const int32_t> tokens) {
  const ModelConfig &config = target_.model->config();
  for (int32_t token : tokens) {
    r.output.push_back(token);
    auto now = Clock::now();
    int32_t generated = static_cast<int32_t>(r.output.size());
    TokenEvent event;
    event.requestId = r.id;
    event.token = token;
    event.index = generated;
    // As Engine: the context is full when the tokens before this one fill it.
    if (token == config.eosTokenId && !r.params.ignoreEos)
      event.finish = FinishReason::Eos;
    else if (generated >= r.maxNewTokens)
      event.finish = FinishReason::MaxTokens;
    else if (r.contextSize() - 1 >= config.contextLength)
      event.finish = FinishReason::ContextFull;
    RequestMetrics &m = r.metrics;
    m.generatedTokens = generated;
    if (generated == 1)
      m.timeToFirstTokenSeconds =
          std::chrono::duration<double>(now - r.addedAt).count();
    else
      m.interTokenSeconds.push_back(
          std::chrono::duration<double>(now - r.lastTokenAt).count());
    r.lastTokenAt = now;
    m.totalSeconds = std::chrono::duration<double>(now - r.addedAt).count();
    m.finish = event.finish;
    stats_.generatedTokens += 1;
    if (event.finish != FinishReason::None) {
      stats_.finishedRequests += 1;
      event.metrics = &m;
    }
    if (r.callback)
      r.callback(event);
    if (event.finish != FinishReason::None)
      return true;
  }
  return false;
}

void SpeculativeEngine::retire(int64_t id) {
  auto it = std::find_if(
      running_.begin(), running_.end(),
      [&](const std::unique_ptr<Request> &r) { return r->id == id; });
  if (it == running_.end())
    return;
  for (ModelState *state : {&target_, &draft_})
    if (state->model && state->cache->hasSequence(id))
      state->cache->removeSequence(id).ignoreError();
  target_.reservedBlocks -= (*it)->targetBlocks;
  draft_.reservedBlocks -= (*it)->draftBlocks;
  running_.erase(it);
}

} // namespace kiln::runtime
