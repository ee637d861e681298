//===- SpeculativeEngineTest.cpp - Speculative serving equals plain -------===//
//
// Greedy speculative decoding (a draft model, or n-gram lookup; fixed or
// adaptive K) must produce the target's plain greedy output token for
// token, with requests batched continuously, and leave both caches empty.
// A draft identical to the target must have every draft accepted, greedy
// or sampled (then p == q and min(1, p/q) is 1).
//
//===----------------------------------------------------------------------===//

#include "ChiSquare.h"
#include "TinyModel.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/SpeculativeEngine.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;
using namespace kiln::runtime::testing;

namespace {

using Outputs = std::vector<std::vector<int32_t>>;

const Outputs kPrompts = {{1, 5},
                          {1, 9, 9, 9, 4, 3},
                          {1, 12, 13, 14, 15, 3, 4, 5, 6},
                          {1, 7, 7, 8, 7, 7, 8, 7},
                          {1, 3}};

class SpeculativeEngineTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto t = load(makeTinyModel(DType::F16, 7));
    auto d = load(makeTinyModel(DType::F16, 8));
    ASSERT_TRUE(t.isOk() && d.isOk());
    target = *t;
    draft = *d;
  }

  Outputs plain(SamplingParams params, int32_t n) {
    EngineOptions options;
    options.maxSequences = 2;
    auto engine = Engine::create(target, options);
    EXPECT_TRUE(engine.isOk()) << engine.status();
    Outputs out(kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i)
      EXPECT_TRUE((*engine)
                      ->addRequest(kPrompts[i], params, n,
                                   [&out, i](const TokenEvent &e) {
                                     out[i].push_back(e.token);
                                   })
                      .isOk());
    EXPECT_TRUE((*engine)->runToCompletion().isOk());
    return out;
  }

  Outputs speculative(std::shared_ptr<const Model> draftModel,
                      SpeculativeOptions options, SamplingParams params,
                      int32_t n, SpeculativeStats *stats = nullptr) {
    options.maxSequences = 3;
    auto engine = SpeculativeEngine::create(target, draftModel, options);
    EXPECT_TRUE(engine.isOk()) << engine.status();
    if (!engine.isOk())
      return {};
    Outputs out(kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      auto id = (*engine)->addRequest(
          kPrompts[i], params, n, [&out, i](const TokenEvent &e) {
            out[i].push_back(e.token);
            EXPECT_EQ(e.index, (int32_t)out[i].size());
          });
      EXPECT_TRUE(id.isOk()) << id.status();
    }
    Status done = (*engine)->runToCompletion();
    EXPECT_TRUE(done.isOk()) << done;
    EXPECT_EQ((*engine)->numFreeTargetBlocks(), (*engine)->numTargetBlocks());
    EXPECT_EQ((*engine)->numFreeDraftBlocks(), (*engine)->numDraftBlocks());
    if (stats)
      *stats = (*engine)->stats();
    return out;
  }

  std::shared_ptr<const Model> target, draft;
};

TEST_F(SpeculativeEngineTest, GreedyDraftModelMatchesPlainDecoding) {
  for (bool ignoreEos : {false, true}) {
    SamplingParams greedy;
    greedy.ignoreEos = ignoreEos;
    Outputs expected = plain(greedy, 14);
    for (int32_t k : {1, 2, 3, 5}) {
      SpeculativeOptions options;
      options.k = k;
      SpeculativeStats stats;
      EXPECT_EQ(speculative(draft, options, greedy, 14, &stats), expected)
          << "K=" << k << " ignoreEos=" << ignoreEos;
      EXPECT_GT(stats.verifySteps, 0);
      EXPECT_GT(stats.draftedTokens, 0);
      // Each verified sequence gains its accepted drafts and one token.
      EXPECT_EQ(stats.stepTokens,
                stats.acceptedTokens + stats.verifiedSequences);
    }
  }
}

TEST_F(SpeculativeEngineTest, AdaptiveKMatchesPlainDecoding) {
  SamplingParams greedy;
  greedy.ignoreEos = true;
  SpeculativeOptions options;
  options.k = 2;
  options.adaptiveK = true;
  options.maxK = 6;
  EXPECT_EQ(speculative(draft, options, greedy, 20), plain(greedy, 20));
}

TEST_F(SpeculativeEngineTest, NGramLookupMatchesPlainDecoding) {
  SamplingParams greedy;
  greedy.ignoreEos = true;
  SpeculativeOptions options;
  options.k = 3;
  SpeculativeStats stats;
  EXPECT_EQ(speculative(nullptr, options, greedy, 20, &stats),
            plain(greedy, 20));
  // The repetitive prompt gives the lookup something to propose.
  EXPECT_GT(stats.draftedTokens, 0);
  EXPECT_EQ(stats.draftSteps, 0);
}

TEST_F(SpeculativeEngineTest, DraftEqualToTargetIsAlwaysAccepted) {
  SamplingParams greedy;
  greedy.ignoreEos = true;
  SpeculativeOptions options;
  options.k = 4;
  SpeculativeStats stats;
  EXPECT_EQ(speculative(target, options, greedy, 16, &stats),
            plain(greedy, 16));
  EXPECT_EQ(stats.acceptedTokens, stats.draftedTokens);
  EXPECT_DOUBLE_EQ(stats.acceptanceRateAt(0), 1.0);

  // Sampling: p == q, so min(1, p/q) = 1 for every draft.
  SamplingParams sampled;
  sampled.temperature = 1.0f;
  sampled.ignoreEos = true;
  SpeculativeStats sampledStats;
  Outputs out = speculative(target, options, sampled, 16, &sampledStats);
  EXPECT_EQ(out.size(), kPrompts.size());
  EXPECT_GT(sampledStats.draftedTokens, 0);
  EXPECT_EQ(sampledStats.acceptedTokens, sampledStats.draftedTokens);
}

TEST_F(SpeculativeEngineTest, GreedyRequestsAmongSampledOnesStayExact) {
  // A batch mixing greedy and sampled requests verifies with logits (not
  // the device's greedy ids); the greedy ones must still be exact.
  SamplingParams greedy;
  greedy.ignoreEos = true;
  Outputs expected = plain(greedy, 12);
  SpeculativeOptions options;
  options.k = 3;
  options.maxSequences = 4;
  auto engine = SpeculativeEngine::create(target, draft, options);
  ASSERT_TRUE(engine.isOk());
  Outputs out(kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SamplingParams sampled = greedy;
    sampled.temperature = 1.0f;
    ASSERT_TRUE(
        (*engine)->addRequest(kPrompts[i], sampled, 12, nullptr).isOk());
    ASSERT_TRUE((*engine)
                    ->addRequest(kPrompts[i], greedy, 12,
                                 [&out, i](const TokenEvent &e) {
                                   out[i].push_back(e.token);
                                 })
                    .isOk());
  }
  ASSERT_TRUE((*engine)->runToCompletion().isOk());
  EXPECT_EQ(out, expected);
}

TEST_F(SpeculativeEngineTest, SampledOutputIsReproduciblePerSeed) {
  SamplingParams sampled;
  sampled.temperature = 0.9f;
  sampled.topK = 8;
  sampled.seed = 42;
  SpeculativeOptions options;
  options.k = 3;
  Outputs a = speculative(draft, options, sampled, 12);
  Outputs b = speculative(draft, options, sampled, 12);
  EXPECT_EQ(a, b);
  for (const auto &o : a)
    EXPECT_FALSE(o.empty());
}

TEST_F(SpeculativeEngineTest, SetKChangesTheDraftLength) {
  SpeculativeOptions options;
  options.k = 2;
  options.maxK = 4;
  auto engine = SpeculativeEngine::create(target, draft, options);
  ASSERT_TRUE(engine.isOk());
  EXPECT_EQ((*engine)->setK(0).code(), StatusCode::InvalidArgument);
  EXPECT_EQ((*engine)->setK(5).code(), StatusCode::InvalidArgument);
  ASSERT_TRUE((*engine)->setK(4).isOk());
  EXPECT_EQ((*engine)->k(), 4);
  SamplingParams greedy;
  greedy.ignoreEos = true;
  ASSERT_TRUE((*engine)->addRequest({1, 5}, greedy, 11, nullptr).isOk());
  ASSERT_TRUE((*engine)->runToCompletion().isOk());
  // The first speculative step drafts 4 tokens (the budget allows 9).
  EXPECT_EQ((*engine)->stats().draftedAt.size(), 4u);
}

TEST_F(SpeculativeEngineTest, RejectsMismatchedDraftsAndBadOptions) {
  TinyModel other = makeTinyModel(DType::F16, 8);
  other.config.eosTokenId = 3;
  auto mismatched = load(other);
  ASSERT_TRUE(mismatched.isOk());
  auto engine = SpeculativeEngine::create(target, *mismatched, {});
  EXPECT_EQ(engine.status().code(), StatusCode::FailedPrecondition);
  EXPECT_NE(engine.status().message().find("BOS/EOS"), std::string::npos);

  SpeculativeOptions badK;
  badK.k = 0;
  EXPECT_EQ(SpeculativeEngine::create(target, draft, badK).status().code(),
            StatusCode::InvalidArgument);
  auto ok = SpeculativeEngine::create(target, draft, {});
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ((*ok)->addRequest({}, {}, 4, nullptr).status().code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ((*ok)->addRequest({1, 99}, {}, 4, nullptr).status().code(),
            StatusCode::InvalidArgument);
}

/// End to end under sampling: the second and third generated tokens (an
/// accepted draft, a correction or a bonus, from the speculative step after
/// the prefill) must follow the target's own marginal distributions,
/// computed exactly from its logits. Many requests, each with its own
/// random stream, through one batched engine.
TEST_F(SpeculativeEngineTest, SampledTokensFollowTheTargetDistribution) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.ignoreEos = true;
  const std::vector<int32_t> prompt = {1, 6, 7};
  const int32_t vocab = 16;

  // The target's marginals of tokens 2 and 3 after `prompt`.
  EngineOptions plainOptions;
  auto plainEngine = Engine::create(target, plainOptions);
  ASSERT_TRUE(plainEngine.isOk());
  auto dist = [&](const std::vector<float> &logits, size_t row) {
    std::vector<double> p;
    EXPECT_TRUE(
        Sampler::distribution(
            Span<const float>(logits.data() + row * vocab, vocab), params, p)
            .isOk());
    return p;
  };
  auto first = (*plainEngine)->forwardAll(prompt);
  ASSERT_TRUE(first.isOk());
  std::vector<double> p1 = dist(*first, prompt.size() - 1);
  std::vector<double> p2(vocab, 0.0), p3(vocab, 0.0);
  for (int32_t a = 0; a < vocab; ++a)
    for (int32_t b = 0; b < vocab; ++b) {
      std::vector<int32_t> seq = prompt;
      seq.push_back(a);
      seq.push_back(b);
      auto logits = (*plainEngine)->forwardAll(seq);
      ASSERT_TRUE(logits.isOk());
      std::vector<double> after = dist(*logits, prompt.size());
      std::vector<double> next = dist(*logits, prompt.size() + 1);
      if (b == 0)
        for (int32_t x = 0; x < vocab; ++x)
          p2[x] += p1[a] * after[x];
      for (int32_t x = 0; x < vocab; ++x)
        p3[x] += p1[a] * after[b] * next[x];
    }

  SpeculativeOptions options;
  options.k = 2;
  options.maxSequences = 16;
  options.seed = 99;
  auto engine = SpeculativeEngine::create(target, draft, options);
  ASSERT_TRUE(engine.isOk());
  std::vector<int64_t> second(vocab, 0), third(vocab, 0);
  const int requests = 6000;
  for (int i = 0; i < requests; ++i)
    ASSERT_TRUE((*engine)
                    ->addRequest(prompt, params, 3,
                                 [&](const TokenEvent &e) {
                                   if (e.index == 2)
                                     second[e.token] += 1;
                                   if (e.index == 3)
                                     third[e.token] += 1;
                                 })
                    .isOk());
  ASSERT_TRUE((*engine)->runToCompletion().isOk());
  // The second token came through the rejection rule, not plain sampling.
  EXPECT_GT((*engine)->stats().draftedTokens, 0);
  EXPECT_GT((*engine)->stats().acceptedTokens, 0);
  EXPECT_LT((*engine)->stats().acceptedTokens,
            (*engine)->stats().draftedTokens);
  double pSecond = chiSquarePValue(second, p2);
  double pThird = chiSquarePValue(third, p3);
  std::printf("speculative sampling vs the target: chi-square p = %.4f "
              "(token 2), %.4f (token 3)\n",
              pSecond, pThird);
  EXPECT_GT(pSecond, 0.01);
  EXPECT_GT(pThird, 0.01);
}

} // namespace
