//===- SamplerTest.cpp - Greedy, temperature, top-k and top-p sampling ----===//

#include "kiln/runtime/Sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace kiln::runtime;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

SamplingParams params(float temperature, int32_t topK = 0, float topP = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.topK = topK;
  p.topP = topP;
  return p;
}

int32_t draw(Sampler &sampler, const std::vector<float> &logits,
             const SamplingParams &p) {
  StatusOr<int32_t> token = sampler.sample(logits, p);
  EXPECT_TRUE(token.isOk()) << token.status();
  return token.isOk() ? *token : -1;
}

/// Random logits with deliberate ties (values on a coarse grid).
std::vector<float> randomLogits(std::mt19937_64 &rng, size_t n) {
  std::vector<float> logits(n);
  for (float &l : logits)
    l = static_cast<float>(rng() % 16) * 0.5f;
  return logits;
}

TEST(SamplerTest, ValidatesParameters) {
  Sampler sampler(0);
  std::vector<float> logits = {1, 2};
  Status t = sampler.sample(logits, params(-0.5f)).status();
  EXPECT_EQ(t.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(t.message(), "temperature -0.5 must be a finite value >= 0");
  EXPECT_EQ(sampler.sample(logits, params(std::nanf(""))).status().code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(sampler.sample(logits, params(1, -1)).status().message(),
            "top_k -1 must be >= 0 (0 disables it)");
  EXPECT_EQ(sampler.sample(logits, params(1, 0, 0.0f)).status().message(),
            "top_p 0 must lie in (0, 1]");
  EXPECT_EQ(sampler.sample(logits, params(1, 0, 1.5f)).status().code(),
            StatusCode::InvalidArgument);
  // Greedy validates too: bad top_p is a caller bug whatever the mode.
  EXPECT_EQ(sampler.sample(logits, params(0, 0, 2.0f)).status().code(),
            StatusCode::InvalidArgument);
}

TEST(SamplerTest, RejectsUnusableLogits) {
  Sampler sampler(0);
  EXPECT_EQ(Sampler::greedy({}).status().message(), "empty logits");
  EXPECT_EQ(Sampler::greedy({1.0f, std::nanf("")}).status().message(),
            "logit 1 is nan");
  EXPECT_EQ(sampler.sample({kNegInf, kNegInf}, params(1)).status().message(),
            "every logit is -inf: no token can be chosen");
  EXPECT_EQ(
      Sampler::greedy({std::numeric_limits<float>::infinity()}).status().code(),
      StatusCode::InvalidArgument);
}

TEST(SamplerTest, GreedyTakesLowestIndexOnTies) {
  EXPECT_EQ(*Sampler::greedy({1, 3, 3, 2}), 1);
  EXPECT_EQ(*Sampler::greedy({kNegInf, kNegInf, -7}), 2);
  Sampler sampler(5);
  EXPECT_EQ(draw(sampler, {0.5f, 4, 4, 4}, params(0)), 1);
  // Temperature 0 is greedy whatever top-k and top-p say.
  EXPECT_EQ(draw(sampler, {0.5f, 4, 4, 4}, params(0, 3, 0.5f)), 1);
}

TEST(SamplerTest, SameSeedSameTokens) {
  std::mt19937_64 rng(7);
  std::vector<float> logits = randomLogits(rng, 100);
  SamplingParams p = params(1.3f, 40, 0.9f);
  Sampler a(42), b(42), c(43);
  std::vector<int32_t> fromA, fromB, fromC;
  for (int i = 0; i < 200; ++i) {
    fromA.push_back(draw(a, logits, p));
    fromB.push_back(draw(b, logits, p));
    fromC.push_back(draw(c, logits, p));
  }
  EXPECT_EQ(fromA, fromB);
  EXPECT_NE(fromA, fromC);
  a.reseed(42);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(draw(a, logits, p), fromA[i]);
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  std::mt19937_64 rng(11);
  Sampler sampler(3);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> logits = randomLogits(rng, 50);
    int32_t greedy = *Sampler::greedy(logits);
    EXPECT_EQ(draw(sampler, logits, params(1.0f, 1)), greedy);
    EXPECT_EQ(draw(sampler, logits, params(2.0f, 0, 1e-6f)), greedy);
  }
}

/// Draws `n` tokens and returns their frequencies.
std::vector<double> frequencies(Sampler &sampler,
                                const std::vector<float> &logits,
                                const SamplingParams &p, int n) {
  std::vector<double> freq(logits.size(), 0.0);
  for (int i = 0; i < n; ++i)
    freq[draw(sampler, logits, p)] += 1.0 / n;
  return freq;
}

/// softmax(logits / temperature) restricted to `keep` (all if empty).
std::vector<double> softmax(const std::vector<float> &logits, double t,
                            std::vector<int> keep = {}) {
  if (keep.empty())
    for (size_t i = 0; i < logits.size(); ++i)
      keep.push_back(i);
  std::vector<double> p(logits.size(), 0.0);
  double total = 0.0;
  for (int i : keep)
    total += p[i] = std::exp(logits[i] / t);
  for (double &v : p)
    v /= total;
  return p;
}

// 100k draws: the standard error of each frequency is below 0.0016, so a
// 0.01 tolerance is over six standard errors.
constexpr int kDraws = 100000;
constexpr double kTolerance = 0.01;

TEST(SamplerTest, TemperatureFrequenciesFollowSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, kNegInf};
  Sampler sampler(2024);
  for (float t : {0.7f, 1.0f, 2.0f}) {
    std::vector<double> freq = frequencies(sampler, logits, params(t), kDraws);
    std::vector<double> want = softmax(logits, t, {0, 1, 2, 3, 4});
    for (size_t i = 0; i < logits.size(); ++i)
      EXPECT_NEAR(freq[i], want[i], kTolerance) << "token " << i << " t=" << t;
    EXPECT_EQ(freq[5], 0.0);
  }
}

TEST(SamplerTest, TopKRenormalizesOverTheKBest) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f};
  Sampler sampler(99);
  std::vector<double> freq = frequencies(sampler, logits, params(1, 2), kDraws);
  std::vector<double> want = softmax(logits, 1, {1, 3});
  for (size_t i = 0; i < logits.size(); ++i)
    EXPECT_NEAR(freq[i], want[i], kTolerance) << "token " << i;
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps the first two (the
  // mass before the third, 0.8, reaches 0.75), top_p 0.85 the first three.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                               std::log(0.05f)};
  Sampler sampler(5);
  std::vector<double> two =
      frequencies(sampler, logits, params(1, 0, 0.75f), kDraws);
  EXPECT_NEAR(two[0], 0.5 / 0.8, kTolerance);
  EXPECT_NEAR(two[1], 0.3 / 0.8, kTolerance);
  EXPECT_EQ(two[2] + two[3], 0.0);
  std::vector<double> three =
      frequencies(sampler, logits, params(1, 0, 0.85f), kDraws);
  EXPECT_NEAR(three[2], 0.15 / 0.95, kTolerance);
  EXPECT_EQ(three[3], 0.0);
}

} // namespace
