//===- SpeculativeAcceptanceTest.cpp - Greedy prefix and rejection rule ---===//
//
// The greedy rule keeps the longest agreeing prefix. The rejection rule is
// checked statistically: generating with drafts from q and the rule must
// give tokens distributed as the target's p. A chi-square test of the
// joint frequencies of the first two generated tokens passes (p > 0.01)
// for acceptSampled and fails (p < 0.01) for two classic mistakes, so the
// test is able to fail.
//
//===----------------------------------------------------------------------===//

#include "ChiSquare.h"

#include "kiln/runtime/SpeculativeAcceptance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

using namespace kiln::runtime;
using namespace kiln::runtime::testing;

namespace {

TEST(SpeculativeAcceptanceTest, GreedyKeepsTheAgreeingPrefix) {
  StatusOr<Acceptance> all = acceptGreedy({4, 5, 6}, {4, 5, 6, 9});
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  EXPECT_EQ(all->accepted, 3);
  EXPECT_EQ(all->tokens, (std::vector<int32_t>{4, 5, 6, 9}));

  StatusOr<Acceptance> some = acceptGreedy({4, 5, 6}, {4, 7, 6, 9});
  ASSERT_TRUE(some.isOk());
  EXPECT_EQ(some->accepted, 1);
  EXPECT_EQ(some->tokens, (std::vector<int32_t>{4, 7}));

  StatusOr<Acceptance> none = acceptGreedy({4, 5}, {3, 5, 6});
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(none->accepted, 0);
  EXPECT_EQ(none->tokens, (std::vector<int32_t>{3}));

  StatusOr<Acceptance> empty = acceptGreedy({}, {8});
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->tokens, (std::vector<int32_t>{8}));

  EXPECT_EQ(acceptGreedy({1, 2}, {1, 2}).status().code(),
            StatusCode::InvalidArgument);
}

TEST(SpeculativeAcceptanceTest, SampledRejectsBadInput) {
  Sampler sampler(1);
  std::vector<double> q = {0.5, 0.5, 0.0}, p = {0.2, 0.3, 0.5, 1, 0, 0};
  EXPECT_EQ(acceptSampled({0}, q, {0.2, 0.3}, 3, sampler).status().code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(acceptSampled({3}, q, p, 3, sampler).status().code(),
            StatusCode::InvalidArgument);
  // Token 2 cannot have been drawn from q.
  EXPECT_EQ(acceptSampled({2}, q, p, 3, sampler).status().code(),
            StatusCode::InvalidArgument);
}

TEST(SpeculativeAcceptanceTest, SampledKeepsDraftsTheTargetAgreesWith) {
  // p == q: every draft is accepted (u * q < p always holds).
  Sampler sampler(3);
  std::vector<double> q = {0.25, 0.75, 0.6, 0.4};
  std::vector<double> p = {0.25, 0.75, 0.6, 0.4, 0.0, 1.0};
  for (int trial = 0; trial < 100; ++trial) {
    StatusOr<Acceptance> a = acceptSampled({1, 0}, q, p, 2, sampler);
    ASSERT_TRUE(a.isOk());
    EXPECT_EQ(a->accepted, 2);
    EXPECT_EQ(a->tokens, (std::vector<int32_t>{1, 0, 1}));
  }
  // The target gives the draft no mass: always rejected, and the correction
  // comes from max(0, p - q), which here is token 2 only.
  std::vector<double> q1 = {0.5, 0.5, 0.0};
  std::vector<double> p1 = {0.0, 0.5, 0.5, 1.0, 0.0, 0.0};
  for (int trial = 0; trial < 100; ++trial) {
    StatusOr<Acceptance> a = acceptSampled({0}, q1, p1, 3, sampler);
    ASSERT_TRUE(a.isOk());
    EXPECT_EQ(a->accepted, 0);
    EXPECT_EQ(a->tokens, (std::vector<int32_t>{2}));
  }
}

//===----------------------------------------------------------------------===//
// Chi-square test of the generated tokens' distribution
//===----------------------------------------------------------------------===//

TEST(SpeculativeAcceptanceTest, ChiSquareSurvivalMatchesKnownValues) {
  // scipy.stats.chi2.sf(x, df)
  EXPECT_NEAR(upperGammaQ(0.5, 3.841458820694124 / 2), 0.05, 1e-9);
  EXPECT_NEAR(upperGammaQ(12.0, 36.41502850180731 / 2), 0.05, 1e-9);
  EXPECT_NEAR(upperGammaQ(12.0, 42.97982013890984 / 2), 0.01, 1e-9);
  EXPECT_NEAR(upperGammaQ(2.0, 1.0), 2.0 * std::exp(-1.0), 1e-12);
}

constexpr int32_t kVocab = 5;
constexpr int32_t kDrafts = 3;
constexpr int32_t kPositions = 6;

/// Position-dependent, context-free target and draft distributions: the
/// target alone would draw token j of a sequence from kP[j]. The draft is
/// deliberately different (and gives token 4 nothing at position 0, so the
/// correction path matters).
const double kP[kPositions][kVocab] = {
    {0.30, 0.25, 0.20, 0.15, 0.10}, {0.05, 0.10, 0.15, 0.30, 0.40},
    {0.20, 0.20, 0.20, 0.20, 0.20}, {0.50, 0.05, 0.05, 0.20, 0.20},
    {0.10, 0.30, 0.10, 0.30, 0.20}, {0.25, 0.25, 0.25, 0.15, 0.10}};
const double kQ[kPositions][kVocab] = {
    {0.10, 0.50, 0.30, 0.10, 0.00}, {0.20, 0.20, 0.20, 0.20, 0.20},
    {0.40, 0.10, 0.10, 0.10, 0.30}, {0.30, 0.10, 0.10, 0.40, 0.10},
    {0.20, 0.20, 0.20, 0.20, 0.20}, {0.20, 0.20, 0.20, 0.20, 0.20}};

using AcceptFn =
    std::function<StatusOr<Acceptance>(Span<const int32_t>, Span<const double>,
                                       Span<const double>, int32_t, Sampler &)>;

/// Generates `trials` sequences of two tokens by drafting kDrafts tokens
/// from kQ and accepting with `accept`, and returns the chi-square p-value
/// of the joint frequencies of (token 0, token 1) against kP[0] x kP[1].
double jointPValue(const AcceptFn &accept, int trials, uint64_t seed) {
  Sampler sampler(seed);
  std::vector<int64_t> counts(kVocab * kVocab, 0);
  std::vector<int32_t> draft;
  std::vector<double> q, p;
  for (int t = 0; t < trials; ++t) {
    std::vector<int32_t> out;
    while (out.size() < 2) {
      size_t n = out.size();
      draft.clear();
      q.clear();
      p.clear();
      for (size_t i = 0; i < kDrafts; ++i) {
        Span<const double> qi(kQ[n + i], kVocab);
        draft.push_back(*sampler.sampleFrom(qi));
        q.insert(q.end(), qi.begin(), qi.end());
      }
      for (size_t i = 0; i <= kDrafts; ++i)
        p.insert(p.end(), kP[n + i], kP[n + i] + kVocab);
      StatusOr<Acceptance> a = accept(draft, q, p, kVocab, sampler);
      EXPECT_TRUE(a.isOk());
      if (!a.isOk())
        return 0.0;
      out.insert(out.end(), a->tokens.begin(), a->tokens.end());
    }
    counts[out[0] * kVocab + out[1]] += 1;
  }
  double chi2 = 0.0;
  for (int32_t a = 0; a < kVocab; ++a)
    for (int32_t b = 0; b < kVocab; ++b) {
      double expected = trials * kP[0][a] * kP[1][b];
      double diff = counts[a * kVocab + b] - expected;
      chi2 += diff * diff / expected;
    }
  double df = kVocab * kVocab - 1;
  return upperGammaQ(df / 2, chi2 / 2);
}

constexpr int kTrials = 200000;

TEST(SpeculativeAcceptanceTest, RejectionSamplingFollowsTheTarget) {
  double pValue = jointPValue(acceptSampled, kTrials, 11);
  RecordProperty("p_value", std::to_string(pValue));
  std::printf("rejection sampling: chi-square p = %.4f\n", pValue);
  EXPECT_GT(pValue, 0.01);
}

/// A common mistake: after a rejection, draw the correction from p itself
/// instead of the residual max(0, p - q).
StatusOr<Acceptance> resampleFromTarget(Span<const int32_t> draft,
                                        Span<const double> q,
                                        Span<const double> p, int32_t vocab,
                                        Sampler &sampler) {
  Acceptance result;
  for (size_t i = 0; i < draft.size(); ++i) {
    int32_t d = draft[i];
    if (sampler.nextUniform() * q[i * vocab + d] < p[i * vocab + d]) {
      result.tokens.push_back(d);
      continue;
    }
    result.accepted = static_cast<int32_t>(i);
    result.tokens.push_back(
        *sampler.sampleFrom(Span<const double>(p.data() + i * vocab, vocab)));
    return result;
  }
  result.accepted = static_cast<int32_t>(draft.size());
  result.tokens.push_back(*sampler.sampleFrom(
      Span<const double>(p.data() + draft.size() * vocab, vocab)));
  return result;
}

/// Another: an off-by-one between drafts and target rows, judging draft i
/// (and drawing its correction) by the target's row i + 1.
StatusOr<Acceptance> shiftedTargetRows(Span<const int32_t> draft,
                                       Span<const double> q,
                                       Span<const double> p, int32_t vocab,
                                       Sampler &sampler) {
  std::vector<double> shifted(p.begin() + vocab, p.end());
  shifted.insert(shifted.end(), p.end() - vocab, p.end());
  return acceptSampled(draft, q, shifted, vocab, sampler);
}

TEST(SpeculativeAcceptanceTest, BiasedRulesFailTheChiSquareTest) {
  double fromTarget = jointPValue(resampleFromTarget, kTrials, 11);
  double shifted = jointPValue(shiftedTargetRows, kTrials, 11);
  std::printf("resample from p: chi-square p = %.3g\n", fromTarget);
  std::printf("rows off by one: chi-square p = %.3g\n", shifted);
  EXPECT_LT(fromTarget, 0.01);
  EXPECT_LT(shifted, 0.01);
}

TEST(SpeculativeAcceptanceTest, OneHotDraftsFollowTheTarget) {
  // n-gram lookup proposes fixed tokens: q is one-hot at each draft, and
  // the rule must still give the target's distribution (accepting with
  // p(d) and correcting from p without d is exact for any fixed d).
  auto oneHotAccept = [](Span<const int32_t> draft, Span<const double>,
                         Span<const double> p, int32_t vocab,
                         Sampler &sampler) {
    std::vector<int32_t> fixed(draft.size(), 3);
    std::vector<double> oneHot(draft.size() * vocab, 0.0);
    for (size_t i = 0; i < fixed.size(); ++i)
      oneHot[i * vocab + fixed[i]] = 1.0;
    return acceptSampled(fixed, oneHot, p, vocab, sampler);
  };
  double pValue = jointPValue(oneHotAccept, kTrials, 12);
  std::printf("one-hot drafts: chi-square p = %.4f\n", pValue);
  EXPECT_GT(pValue, 0.01);
}

} // namespace
