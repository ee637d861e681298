//===- EngineTest.cpp - Host device and engine on the tiny model ----------===//
//
// The paged entry points must agree with each other: the logits of a
// sequence's last token are the same whether it was prefilled alone with
// every row's logits (prefill_all), in a ragged batch with other prompts
// (prefill), or appended by decode steps after a prefill, for an fp32 and
// an fp16 cache. The engine then streams, batches and stops correctly.
//
//===----------------------------------------------------------------------===//

#include "TinyModel.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/Half.h"
#include "kiln/runtime/HostDevice.h"
#include "kiln/runtime/PagedKVCache.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace kiln::runtime;
using namespace kiln::runtime::testing;

namespace {

constexpr int64_t kVocab = 16;

/// (cache dtype, weight dtype)
class DeviceTest : public ::testing::TestWithParam<std::pair<DType, DType>> {
protected:
  void SetUp() override {
    auto loaded =
        load(makeTinyModel(GetParam().first, 7, GetParam().second));
    ASSERT_TRUE(loaded.isOk()) << loaded.status();
    model = *loaded;
    KVCacheConfig kv = kvCacheConfigFor(*model, 24);
    auto created = PagedKVCache::create(kv);
    ASSERT_TRUE(created.isOk());
    cache.emplace(std::move(created).value());
    ASSERT_TRUE(device.prepare(model, kv).isOk());
    // Reads of slots no step wrote would turn the logits into NaN.
    device.poisonCache();
  }

  /// One step over `seqs` appending `chunks` through entry `name`.
  std::vector<float> step(const char *name, std::vector<int64_t> seqs,
                          std::vector<std::vector<int32_t>> chunks) {
    std::vector<int32_t> lengths, tokens;
    for (auto &c : chunks) {
      lengths.push_back(c.size());
      tokens.insert(tokens.end(), c.begin(), c.end());
    }
    for (int64_t s : seqs) {
      if (!cache->hasSequence(s)) {
        EXPECT_TRUE(cache->addSequence(s).isOk());
      }
    }
    EXPECT_TRUE(cache->beginForward(seqs, lengths).isOk());
    std::vector<float> logits;
    Status s = device.run(*model->entry(name), cache->forwardBatch(), tokens,
                          logits);
    EXPECT_TRUE(s.isOk()) << s;
    EXPECT_TRUE(cache->endForward().isOk());
    for (float v : logits)
      EXPECT_FALSE(std::isnan(v));
    return logits;
  }

  std::shared_ptr<const Model> model;
  std::optional<PagedKVCache> cache;
  HostDevice device;
};

void expectRowsNear(const float *a, const float *b, int64_t n, double tol) {
  for (int64_t k = 0; k < n; ++k)
    ASSERT_NEAR(a[k], b[k], tol) << "element " << k;
}

TEST_P(DeviceTest, PrefillBatchDecodeAndPrefillAllAgree) {
  std::vector<int32_t> a = {1, 5, 9, 3, 7, 7, 2}, b = {1, 4}, c = {1, 8, 8,
                                                                  8, 8, 8};
  // Alone, every row.
  std::vector<float> allA = step("prefill_all", {100}, {a});
  ASSERT_EQ(allA.size(), a.size() * kVocab);
  // A ragged batch, last rows only.
  std::vector<float> last = step("prefill", {1, 2, 3}, {a, b, c});
  ASSERT_EQ(last.size(), 3 * kVocab);
  expectRowsNear(last.data(), allA.data() + (a.size() - 1) * kVocab, kVocab,
                 1e-5);
  std::vector<float> allB = step("prefill_all", {101}, {b});
  expectRowsNear(last.data() + kVocab, allB.data() + kVocab, kVocab, 1e-5);

  // Decode two tokens onto sequences 1 and 3 (crossing block boundaries of
  // 4 tokens), then compare with prefill_all of the extended sequences.
  for (int32_t next : {11, 12}) {
    std::vector<float> d = step("decode", {1, 3}, {{next}, {next}});
    a.push_back(next);
    c.push_back(next);
    std::vector<float> refA = step("prefill_all", {200 + next}, {a});
    std::vector<float> refC = step("prefill_all", {300 + next}, {c});
    expectRowsNear(d.data(), refA.data() + (a.size() - 1) * kVocab, kVocab,
                   1e-5);
    expectRowsNear(d.data() + kVocab, refC.data() + (c.size() - 1) * kVocab,
                   kVocab, 1e-5);
  }
  // A mixed step: a 3-token chunk onto sequence 2 with one decode token.
  std::vector<float> mixed = step("prefill", {2, 1}, {{3, 4, 5}, {13}});
  b.insert(b.end(), {3, 4, 5});
  a.push_back(13);
  std::vector<float> refB = step("prefill_all", {400}, {b});
  std::vector<float> refA = step("prefill_all", {401}, {a});
  expectRowsNear(mixed.data(), refB.data() + (b.size() - 1) * kVocab, kVocab,
                 1e-5);
  expectRowsNear(mixed.data() + kVocab, refA.data() + (a.size() - 1) * kVocab,
                 kVocab, 1e-5);
}

TEST_P(DeviceTest, ForkedSequencesCopyTheirPartialBlock) {
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6};
  step("prefill", {1}, {a});
  ASSERT_TRUE(cache->forkSequence(1, 2).isOk()); // copies the partial block
  std::vector<float> d = step("decode", {1, 2}, {{7}, {9}});
  a.push_back(7);
  std::vector<float> refA = step("prefill_all", {10}, {a});
  a.back() = 9;
  std::vector<float> refB = step("prefill_all", {11}, {a});
  expectRowsNear(d.data(), refA.data() + 6 * kVocab, kVocab, 1e-5);
  expectRowsNear(d.data() + kVocab, refB.data() + 6 * kVocab, kVocab, 1e-5);
}

TEST_P(DeviceTest, RejectsInconsistentBatchesAndIds) {
  ASSERT_TRUE(cache->addSequence(1).isOk());
  ASSERT_TRUE(cache->beginForward({1}, {2}).isOk());
  std::vector<float> logits;
  std::vector<int32_t> one = {1};
  Status s = device.run(*model->entry("prefill"), cache->forwardBatch(), one,
                        logits);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("inconsistent forward batch: 1 token ids, 2 "
                             "positions"),
            std::string::npos)
      << s;
  std::vector<int32_t> outOfVocab = {1, 16};
  s = device.run(*model->entry("prefill"), cache->forwardBatch(), outOfVocab,
                 logits);
  EXPECT_EQ(s.message(), "entry point 'prefill' step 0 (Embedding): token id "
                         "16 is outside the vocabulary of 16");
  ForwardBatch bad = cache->forwardBatch();
  bad.blockTables[0] = 99;
  std::vector<int32_t> ok = {1, 2};
  s = device.run(*model->entry("prefill"), bad, ok, logits);
  EXPECT_NE(s.message().find("block 99 of sequence 0 is outside the cache's "
                             "24 blocks"),
            std::string::npos)
      << s;
  EXPECT_TRUE(cache->endForward().isOk());
  TinyModel other = makeTinyModel(GetParam().first, 7, GetParam().second);
  EXPECT_EQ(device
                .run(other.plan.entries[0], cache->forwardBatch(), ok, logits)
                .code(),
            StatusCode::FailedPrecondition);
}

TEST_P(DeviceTest, GreedyChainFeedsEachStepThePreviousIds) {
  // Two sequences, prompts of 3 tokens, then a chain of 3 one-token steps
  // against the same steps run one at a time with the ids fed back.
  step("prefill", {1, 2}, {{3, 4, 5}, {6, 7, 8}});
  const EntryPoint &decode = *model->entry("decode");
  std::vector<ForwardBatch> batches;
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(cache->beginForward({1, 2}, {1, 1}).isOk());
    batches.push_back(cache->forwardBatch());
    ASSERT_TRUE(cache->endForward().isOk());
  }
  std::vector<int32_t> chained;
  ASSERT_TRUE(
      device
          .runGreedyChain(decode, batches, std::vector<int32_t>{9, 10}, chained)
          .isOk());
  ASSERT_EQ(chained.size(), 6u);

  std::vector<int32_t> feed = {9, 10}, expected, ids;
  for (const ForwardBatch &batch : batches) {
    ASSERT_TRUE(device.runGreedy(decode, batch, feed, ids).isOk());
    expected.insert(expected.end(), ids.begin(), ids.end());
    feed = ids;
  }
  EXPECT_EQ(chained, expected);

  // A step of more than one row a sequence cannot take the previous ids.
  ASSERT_TRUE(cache->beginForward({1, 2}, {2, 1}).isOk());
  std::vector<ForwardBatch> ragged = {cache->forwardBatch()};
  ASSERT_TRUE(cache->endForward().isOk());
  EXPECT_EQ(
      device
          .runGreedyChain(decode, ragged, std::vector<int32_t>{9, 10}, chained)
          .code(),
      StatusCode::InvalidArgument);
}

TEST_P(DeviceTest, WritesAndReadsCacheSlots) {
  // 1 KV head of 4: two slots in different blocks, layer 1.
  std::vector<int64_t> slots = {5, 18};
  std::vector<float> keys = {1, -2, 0.5f, 4, 8, 0.25f, -1, 3},
                     values = {-4, 2, 1, 0, 7, 6, 5, 0.125f};
  Status s = device.writeCache(1, slots, keys, values);
  ASSERT_TRUE(s.isOk()) << s;
  std::vector<float> k, v;
  s = device.readCache(1, slots, k, v);
  ASSERT_TRUE(s.isOk()) << s;
  // Every value is exact in f16 and bf16.
  EXPECT_EQ(k, keys);
  EXPECT_EQ(v, values);
  // The layout is [layers, blocks, 2, kv_heads, block_size, head_dim].
  const host::KVCacheView &view = device.cache();
  std::vector<float> direct(4);
  int64_t at = view.offset(1, 18 / 4, 1, 0, 18 % 4);
  for (int j = 0; j < 4; ++j) {
    if (view.dtype == DType::F32)
      direct[j] = static_cast<const float *>(view.data)[at + j];
    else {
      uint16_t h = static_cast<const uint16_t *>(view.data)[at + j];
      direct[j] = view.dtype == DType::F16 ? halfToFloat(h) : bf16ToFloat(h);
    }
  }
  EXPECT_EQ(direct, std::vector<float>(values.begin() + 4, values.end()));

  EXPECT_EQ(device.writeCache(2, slots, keys, values).code(),
            StatusCode::OutOfRange);
  std::vector<int64_t> outside = {5, 96};
  s = device.writeCache(0, outside, keys, values);
  EXPECT_EQ(s.code(), StatusCode::OutOfRange);
  EXPECT_EQ(s.message(), "cannot write slot 96 (row 1): the KV cache has 96 "
                         "slots");
  EXPECT_EQ(device.readCache(0, {-1}, k, v).code(), StatusCode::OutOfRange);
  std::vector<float> shortKeys(4);
  EXPECT_EQ(device.writeCache(0, slots, shortKeys, values).code(),
            StatusCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(
    CacheAndWeightTypes, DeviceTest,
    ::testing::Values(std::make_pair(DType::F32, DType::F32),
                      std::make_pair(DType::F16, DType::F32),
                      std::make_pair(DType::F16, DType::F16),
                      std::make_pair(DType::BF16, DType::BF16)),
    [](const auto &info) {
      return std::string("cache_") + dtypeName(info.param.first) +
             "_weights_" + dtypeName(info.param.second);
    });

class EngineTest : public ::testing::Test {
protected:
  std::unique_ptr<Engine> make(int32_t numBlocks = 0,
                               int32_t maxSequences = 4) {
    auto m = load(makeTinyModel(DType::F16));
    EXPECT_TRUE(m.isOk()) << m.status();
    EngineOptions options;
    options.numBlocks = numBlocks;
    options.maxSequences = maxSequences;
    options.seed = 5;
    auto engine = Engine::create(*m, options);
    EXPECT_TRUE(engine.isOk()) << engine.status();
    return engine.isOk() ? std::move(engine).value() : nullptr;
  }

  /// Runs one request to completion; returns its tokens.
  std::vector<int32_t> generate(Engine &engine, std::vector<int32_t> prompt,
                                SamplingParams params, int32_t n,
                                FinishReason *finish = nullptr) {
    std::vector<int32_t> out;
    auto id = engine.addRequest(prompt, params, n, [&](const TokenEvent &e) {
      out.push_back(e.token);
      EXPECT_EQ(e.index, (int32_t)out.size());
      if (finish)
        *finish = e.finish;
    });
    EXPECT_TRUE(id.isOk()) << id.status();
    Status s = engine.runToCompletion();
    EXPECT_TRUE(s.isOk()) << s;
    return out;
  }
};

TEST_F(EngineTest, GreedyMatchesArgmaxOfPrefillAll) {
  auto engine = make();
  ASSERT_TRUE(engine);
  std::vector<int32_t> prompt = {1, 6, 7};
  FinishReason finish;
  std::vector<int32_t> out = generate(*engine, prompt, {}, 5, &finish);
  ASSERT_FALSE(out.empty());
  // Each token is the argmax of the logits of the sequence so far (unless
  // it stopped at EOS).
  std::vector<int32_t> seq = prompt;
  for (int32_t token : out) {
    auto logits = engine->forwardAll(seq);
    ASSERT_TRUE(logits.isOk()) << logits.status();
    const float *row = logits->data() + (seq.size() - 1) * kVocab;
    EXPECT_EQ(token, std::max_element(row, row + kVocab) - row);
    seq.push_back(token);
  }
  EXPECT_TRUE(finish == FinishReason::MaxTokens ||
              (finish == FinishReason::Eos && out.back() == 2));
  EXPECT_TRUE(engine->idle());
  EXPECT_EQ(engine->kvCache().numSequences(), 0);
}

TEST_F(EngineTest, SamplingIsDeterministicPerSeed) {
  SamplingParams params;
  params.temperature = 1.5f;
  params.topK = 8;
  auto a = make(), b = make();
  ASSERT_TRUE(a && b);
  std::vector<int32_t> x = generate(*a, {1, 3}, params, 12);
  std::vector<int32_t> y = generate(*b, {1, 3}, params, 12);
  EXPECT_EQ(x, y);
}

TEST_F(EngineTest, BatchedRequestsMatchRequestsAlone) {
  std::vector<std::vector<int32_t>> prompts = {
      {1, 5}, {1, 9, 9, 9, 4, 3}, {1, 12, 13, 14, 15, 3, 4, 5, 6}};
  std::vector<std::vector<int32_t>> alone;
  for (const auto &p : prompts) {
    auto engine = make();
    alone.push_back(generate(*engine, p, {}, 6));
  }
  auto engine = make();
  std::vector<std::vector<int32_t>> together(3);
  std::vector<int64_t> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto id = engine->addRequest(prompts[i], {}, 6, [&, i](const TokenEvent &e) {
      together[i].push_back(e.token);
    });
    ASSERT_TRUE(id.isOk());
    ids.push_back(*id);
  }
  ASSERT_TRUE(engine->runToCompletion().isOk());
  EXPECT_EQ(together, alone);
  // One prefill step took all three prompts.
  EXPECT_EQ(engine->stats().prefillSteps, 1);
  EXPECT_EQ(engine->stats().prefillTokens, 17);
}

TEST_F(EngineTest, StopsAtTheContextLength) {
  auto engine = make();
  std::vector<int32_t> prompt(30, 7);
  prompt[0] = 1;
  FinishReason finish = FinishReason::None;
  std::vector<int32_t> out = generate(*engine, prompt, {}, 100, &finish);
  // 30 prompt tokens + 2 fed tokens fill the 32-token context; the last
  // sampled token is reported and not fed.
  if (finish != FinishReason::Eos) {
    EXPECT_EQ(finish, FinishReason::ContextFull);
    EXPECT_EQ(out.size(), 3u);
  }
}

TEST_F(EngineTest, RejectsBadRequests) {
  auto engine = make();
  std::vector<int32_t> tooLong(33, 3);
  auto id = engine->addRequest(tooLong, {}, 4, nullptr);
  EXPECT_EQ(id.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(id.status().message(), "prompt of 33 tokens is longer than the "
                                   "model's context of 32 tokens");
  EXPECT_EQ(engine->addRequest({}, {}, 4, nullptr).status().message(),
            "empty prompt: at least one token (e.g. BOS) is needed");
  EXPECT_EQ(engine->addRequest({1, 16}, {}, 4, nullptr).status().message(),
            "prompt token 1 is 16, outside the vocabulary [0, 16)");
  EXPECT_EQ(engine->addRequest({1}, {}, 0, nullptr).status().code(),
            StatusCode::InvalidArgument);
  SamplingParams bad;
  bad.topP = 0;
  EXPECT_EQ(engine->addRequest({1}, bad, 4, nullptr).status().code(),
            StatusCode::InvalidArgument);
  EXPECT_TRUE(engine->idle());
}

TEST_F(EngineTest, RequestsTheWholeCacheCannotHoldAreRefused) {
  // Two blocks of 4 tokens: a 9-token prompt never fits.
  auto engine = make(2);
  std::vector<int32_t> prompt(9, 4);
  auto id = engine->addRequest(prompt, {}, 4, nullptr);
  EXPECT_EQ(id.status().code(), StatusCode::ResourceExhausted);
  EXPECT_EQ(id.status().message(),
            "out of KV cache blocks: a prompt of 9 tokens and up to 4 new "
            "tokens need 3 blocks of 4 tokens, the whole cache has 2");
  // An 8-token prompt fits, but not with 3 more tokens fed after it.
  std::vector<int32_t> fits(8, 4);
  fits[0] = 1;
  EXPECT_EQ(engine->addRequest(fits, {}, 4, nullptr).status().code(),
            StatusCode::ResourceExhausted);
  EXPECT_TRUE(engine->idle());
  // Its first token is sampled from the prefill and never fed: it fits.
  std::vector<int32_t> out = generate(*engine, fits, {}, 1);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(engine->idle());
  EXPECT_EQ(engine->numFreeBlocks(), 2);
  EXPECT_EQ(engine->stats().preemptions, 0);
}

/// Requests that together need more blocks than the pool holds: decode
/// steps preempt, and every request still produces what it produces alone.
class PreemptionTest : public EngineTest {
protected:
  std::vector<std::vector<int32_t>> prompts = {
      {1, 5, 9, 3, 7, 7},     {1, 9, 9, 9, 4, 3, 2},  {1, 12, 13, 14, 15},
      {1, 4, 4, 8, 8, 6, 10}, {1, 11, 3, 3},           {1, 6, 7, 8, 9, 10, 11}};
  static constexpr int32_t kNew = 12;

  std::vector<std::vector<int32_t>> alone(const SamplingParams &params) {
    std::vector<std::vector<int32_t>> out;
    for (const auto &p : prompts) {
      auto engine = make();
      out.push_back(generate(*engine, p, params, kNew));
    }
    return out;
  }

  /// All prompts through one engine of 6 blocks (24 tokens) that runs up
  /// to 4 sequences; each request alone needs at most 5 blocks.
  std::vector<std::vector<int32_t>>
  together(const SamplingParams &params, std::unique_ptr<Engine> &engine,
           std::vector<RequestMetrics> &metrics) {
    engine = make(6, 4);
    std::vector<std::vector<int32_t>> out(prompts.size());
    metrics.assign(prompts.size(), {});
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto id = engine->addRequest(
          prompts[i], params, kNew, [&, i](const TokenEvent &e) {
            out[i].push_back(e.token);
            EXPECT_EQ(e.index, (int32_t)out[i].size());
            EXPECT_EQ(e.metrics != nullptr, e.finish != FinishReason::None);
            if (e.metrics)
              metrics[i] = *e.metrics;
          });
      EXPECT_TRUE(id.isOk()) << id.status();
    }
    Status s = engine->runToCompletion();
    EXPECT_TRUE(s.isOk()) << s;
    return out;
  }
};

TEST_F(PreemptionTest, GreedyOutputsMatchRequestsAlone) {
  SamplingParams greedy;
  greedy.ignoreEos = true; // every sequence grows to its budget
  std::unique_ptr<Engine> engine;
  std::vector<RequestMetrics> metrics;
  std::vector<std::vector<int32_t>> got = together(greedy, engine, metrics);
  EXPECT_EQ(got, alone(greedy));
  const EngineStats &stats = engine->stats();
  EXPECT_GT(stats.preemptions, 0);
  EXPECT_GT(stats.recomputedTokens, 0);
  EXPECT_EQ(stats.finishedRequests, (int64_t)prompts.size());
  EXPECT_EQ(stats.generatedTokens, (int64_t)prompts.size() * kNew);
  EXPECT_GT(stats.generatedTokensPerSecond(), 0);
  // Every block is back in the pool.
  EXPECT_TRUE(engine->idle());
  EXPECT_EQ(engine->kvCache().numSequences(), 0);
  EXPECT_EQ(engine->numFreeBlocks(), engine->numBlocks());
  EXPECT_EQ(engine->numBlocks(), 6);

  int64_t preempted = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const RequestMetrics &m = metrics[i];
    EXPECT_EQ(m.requestId, (int64_t)i + 1);
    EXPECT_EQ(m.promptTokens, (int32_t)prompts[i].size());
    EXPECT_EQ(m.generatedTokens, kNew);
    EXPECT_EQ(m.finish, FinishReason::MaxTokens);
    EXPECT_EQ(m.interTokenSeconds.size(), size_t(kNew - 1));
    EXPECT_GE(m.timeToFirstTokenSeconds, m.queueSeconds);
    EXPECT_GE(m.totalSeconds, m.timeToFirstTokenSeconds);
    preempted += m.preemptions;
    auto queried = engine->requestMetrics(m.requestId);
    ASSERT_TRUE(queried.isOk()) << queried.status();
    EXPECT_EQ(queried->generatedTokens, kNew);
  }
  EXPECT_EQ(preempted, stats.preemptions);
  EXPECT_EQ(engine->requestMetrics(99).status().code(), StatusCode::NotFound);
  engine->clearFinishedMetrics();
  EXPECT_EQ(engine->requestMetrics(1).status().code(), StatusCode::NotFound);
}

TEST_F(PreemptionTest, SampledRequestsKeepTheirStreams) {
  // With a seed of its own a request draws the same tokens alone and when
  // preempted and resumed among others.
  SamplingParams sampled;
  sampled.temperature = 1.5f;
  sampled.topK = 8;
  sampled.ignoreEos = true;
  sampled.seed = 77;
  std::unique_ptr<Engine> engine;
  std::vector<RequestMetrics> metrics;
  std::vector<std::vector<int32_t>> got = together(sampled, engine, metrics);
  EXPECT_EQ(got, alone(sampled));
  EXPECT_GT(engine->stats().preemptions, 0);
  EXPECT_EQ(engine->numFreeBlocks(), engine->numBlocks());
}

TEST_F(PreemptionTest, RespectsThePrefillBudget) {
  // At most 8 prompt tokens per prefill step (a longer prompt alone).
  auto m = load(makeTinyModel(DType::F16));
  ASSERT_TRUE(m.isOk());
  EngineOptions options;
  options.numBlocks = 40;
  options.maxSequences = 8;
  options.maxPrefillTokens = 8;
  auto engine = Engine::create(*m, options);
  ASSERT_TRUE(engine.isOk());
  for (const auto &p : prompts)
    ASSERT_TRUE((*engine)->addRequest(p, {}, 2, nullptr).isOk());
  ASSERT_TRUE((*engine)->runToCompletion().isOk());
  // 6 + 7 + 5 + 7 + 4 + 7 tokens, no two of the first four fit together
  // and 4 + 7 do not either.
  EXPECT_EQ((*engine)->stats().prefillSteps, 6);
  EXPECT_EQ((*engine)->numFreeBlocks(), 40);
}

TEST_F(EngineTest, WaitingRequestsRunWhenBlocksFree) {
  // Room for one 8-token sequence at a time (3 blocks): the second request
  // waits for the first to finish.
  auto engine = make(3);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(engine
                  ->addRequest({1, 2, 3, 4, 5, 6, 7}, {}, 2,
                               [&](const TokenEvent &e) {
                                 a.push_back(e.token);
                               })
                  .isOk());
  ASSERT_TRUE(engine
                  ->addRequest({1, 7, 6, 5, 4, 3, 2}, {}, 2,
                               [&](const TokenEvent &e) {
                                 b.push_back(e.token);
                               })
                  .isOk());
  Status s = engine->runToCompletion();
  EXPECT_TRUE(s.isOk()) << s;
  EXPECT_FALSE(a.empty());
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(engine->stats().prefillSteps, 2);
}

TEST_F(EngineTest, ForwardAllBatchRunsRowsAsSequences) {
  auto engine = make();
  ASSERT_TRUE(engine);
  std::vector<int32_t> a = {1, 5, 9, 3, 7}, b = {1, 4, 4};
  auto alone = engine->forwardAll(a);
  auto batch = engine->forwardAllBatch({a, b});
  ASSERT_TRUE(alone.isOk() && batch.isOk()) << batch.status();
  ASSERT_EQ(batch->size(), (a.size() + b.size()) * kVocab);
  expectRowsNear(batch->data(), alone->data(), a.size() * kVocab, 1e-5);
  auto aloneB = engine->forwardAll(b);
  ASSERT_TRUE(aloneB.isOk());
  expectRowsNear(batch->data() + a.size() * kVocab, aloneB->data(),
                 b.size() * kVocab, 1e-5);
  EXPECT_EQ(engine->kvCache().numSequences(), 0);
  EXPECT_EQ(engine->forwardAllBatch({a, {}}).status().code(),
            StatusCode::InvalidArgument);
}

TEST_F(EngineTest, ForwardAllWithPastContinuesACachedContext) {
  auto engine = make();
  ASSERT_TRUE(engine);
  // The whole sequence, with its cache read back.
  std::vector<int32_t> full = {1, 5, 9, 3, 7, 7, 2};
  SequenceWithPast whole;
  whole.tokens = full;
  auto ref = engine->forwardAllWithPast({whole}, true);
  ASSERT_TRUE(ref.isOk()) << ref.status();
  ASSERT_EQ(ref->keys.size(), 1u);
  ASSERT_EQ(ref->keys[0].size(), 2u);
  const int64_t row = 4; // 1 KV head of 4
  ASSERT_EQ(ref->keys[0][0].size(), full.size() * row);

  // Its first 5 tokens as past (crossing a block), the last 2 on top, next
  // to a fresh sequence in the same step.
  int32_t past = 5;
  SequenceWithPast tail;
  tail.tokens.assign(full.begin() + past, full.end());
  tail.pastLength = past;
  for (int l = 0; l < 2; ++l) {
    tail.pastKeys.emplace_back(ref->keys[0][l].begin(),
                               ref->keys[0][l].begin() + past * row);
    tail.pastValues.emplace_back(ref->values[0][l].begin(),
                                 ref->values[0][l].begin() + past * row);
  }
  SequenceWithPast other;
  other.tokens = {1, 4};
  auto got = engine->forwardAllWithPast({other, tail}, true);
  ASSERT_TRUE(got.isOk()) << got.status();
  ASSERT_EQ(got->logits.size(), (2 + full.size() - past) * kVocab);
  expectRowsNear(got->logits.data() + 2 * kVocab,
                 ref->logits.data() + past * kVocab,
                 (full.size() - past) * kVocab, 1e-5);
  for (int l = 0; l < 2; ++l) {
    expectRowsNear(got->keys[1][l].data(), ref->keys[0][l].data(),
                   full.size() * row, 1e-5);
    expectRowsNear(got->values[1][l].data(), ref->values[0][l].data(),
                   full.size() * row, 1e-5);
  }
  EXPECT_EQ(got->keys[0][0].size(), 2 * row);
  EXPECT_EQ(engine->kvCache().numSequences(), 0);

  // Past arrays that do not match the cache geometry.
  tail.pastKeys[1].pop_back();
  auto bad = engine->forwardAllWithPast({tail}, false);
  EXPECT_EQ(bad.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(bad.status().message().find("expected 2 layers of past keys"),
            std::string::npos)
      << bad.status();
  EXPECT_EQ(engine->kvCache().numSequences(), 0);
}

TEST(DeviceFactoryTest, NamesAndMissingDriver) {
  EXPECT_TRUE(createDevice("host").isOk());
  auto storage = createDevice("host:storage");
  ASSERT_TRUE(storage.isOk());
  EXPECT_EQ((*storage)->name(), "host:storage");
  EXPECT_EQ(createDevice("tpu").status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(createDevice("cuda:").status().code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(createDevice("cuda:-1").status().code(),
            StatusCode::InvalidArgument);
  // The CUDA device opens libcuda.so.1 at run time: without a driver it is
  // Unimplemented and says so; a GPU ordinal the machine lacks is NotFound.
  auto cuda = createDevice("cuda:4096");
  ASSERT_FALSE(cuda.isOk());
  if (cuda.status().code() == StatusCode::Unimplemented)
    EXPECT_NE(cuda.status().message().find("CUDA driver"), std::string::npos)
        << cuda.status();
  else
    EXPECT_EQ(cuda.status().code(), StatusCode::NotFound) << cuda.status();
}

} // namespace
