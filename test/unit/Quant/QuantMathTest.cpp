//===- QuantMathTest.cpp - Packed weight formats against the host kernels -===//
//
// Weights packed by kiln::quant (what the passes write) are executed by the
// host device's QuantLinear/SparseLinear kernels; both must agree with the
// format's definition computed here independently in double.
//
//===----------------------------------------------------------------------===//

#include "kiln/Quant/QuantMath.h"
#include "kiln/runtime/Half.h"
#include "kiln/runtime/HostKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace kiln;
using namespace kiln::runtime;

namespace {

std::vector<float> randomMatrix(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> w(n * k);
  for (float &x : w)
    x = dist(rng);
  return w;
}

/// Inputs whose features are correlated (as activations are), so that
/// second-order methods have something to exploit.
std::vector<float> correlatedInputs(int64_t m, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> base(m * 8), x(m * k);
  for (float &v : base)
    v = dist(rng);
  std::vector<float> mix(8 * k);
  for (float &v : mix)
    v = dist(rng);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c) {
      float s = 0.1f * dist(rng);
      for (int j = 0; j < 8; ++j)
        s += base[r * 8 + j] * mix[j * k + c];
      x[r * k + c] = s * (1.0f + (c % 7));
    }
  return x;
}

std::vector<double> hessianOf(const std::vector<float> &x, int64_t m,
                              int64_t k) {
  std::vector<double> h(k * k, 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += (double)x[r * k + i] * x[r * k + j];
  return h;
}

/// || x W^T - x V^T ||^2 for [N, K] matrices W and V.
double outputError(const std::vector<float> &x, int64_t m, int64_t k,
                   const std::vector<float> &w, const std::vector<float> &v,
                   int64_t n) {
  double e = 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double d = 0;
      for (int64_t c = 0; c < k; ++c)
        d += (double)x[r * k + c] * (w[j * k + c] - v[j * k + c]);
      e += d * d;
    }
  return e;
}

std::vector<float> dequantized(const quant::PackedWeight &p, int64_t n,
                               int64_t k, const quant::QuantSpec &spec) {
  std::vector<float> v(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      v[r * k + c] = quant::dequantizedAt(p, k, spec, r, c);
  return v;
}

/// The host device's QuantLinear on `x` [m, k] with f16 scales.
std::vector<float> hostQuantLinear(const quant::PackedWeight &p,
                                   const quant::QuantSpec &spec,
                                   const std::vector<float> &x, int64_t m,
                                   int64_t k, int64_t n) {
  std::vector<uint16_t> scales(p.scales.size());
  for (size_t i = 0; i < scales.size(); ++i)
    scales[i] = floatToHalf(p.scales[i]);
  host::QuantWeightRef w;
  w.packed = p.packed.data();
  w.scales = host::WeightRef(scales.data(), DType::F16);
  w.zeroPoints = spec.zeroPoint ? p.zeroPoints.data() : nullptr;
  w.bits = spec.bits;
  w.group = spec.group;
  w.format = spec.fp8 ? QuantFormat::FP8E4M3 : QuantFormat::Int;
  std::vector<float> y(m * n), scratch;
  host::quantLinear(x.data(), m, k, w, n, nullptr, y.data(), scratch);
  return y;
}

quant::QuantSpec halfScales(quant::QuantSpec spec) {
  spec.roundScale = [](float f) { return halfToFloat(floatToHalf(f)); };
  return spec;
}

struct Case {
  int64_t bits, group;
  bool zeroPoint, fp8;
};

class PackedFormatTest : public ::testing::TestWithParam<Case> {};

TEST_P(PackedFormatTest, HostKernelExecutesTheFormatsDefinition) {
  Case c = GetParam();
  const int64_t n = 24, k = 64, m = 3;
  quant::QuantSpec spec;
  spec.bits = c.bits;
  spec.group = c.group;
  spec.zeroPoint = c.zeroPoint;
  spec.fp8 = c.fp8;
  spec = halfScales(spec);
  std::vector<float> w = randomMatrix(n, k, 7);
  quant::PackedWeight p = quant::quantizeRTN(w, n, k, spec);
  ASSERT_EQ((int64_t)p.packed.size(), n * k * c.bits / 8);
  ASSERT_EQ((int64_t)p.scales.size(), n * (k / c.group));

  // The format's definition, decoded here from the bytes directly.
  std::vector<float> x = randomMatrix(m, k, 11);
  std::vector<float> y = hostQuantLinear(p, spec, x, m, k, n);
  int64_t groups = k / c.group;
  double worst = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t col = 0; col < k; ++col) {
      uint8_t byte =
          c.bits == 8 ? p.packed[r * k + col] : p.packed[r * (k / 2) + col / 2];
      int u = c.bits == 8 ? byte : (col % 2 ? byte >> 4 : byte & 15);
      double scale = p.scales[r * groups + col / c.group];
      double value;
      if (c.fp8)
        value = scale * quant::fp8e4m3ToFloatRef(static_cast<uint8_t>(u));
      else
        value =
            scale * (u - (c.zeroPoint ? p.zeroPoints[r * groups + col / c.group]
                                      : (1 << (c.bits - 1))));
      EXPECT_EQ((float)value, quant::dequantizedAt(p, k, spec, r, col));
      worst = std::max(worst, std::fabs(value - w[r * k + col]));
    }
  // Round to nearest: within half a step (plus the f16 scale rounding) of
  // the original weights.
  double step = c.fp8 ? 0.2 / 8 : 0.25 / ((1 << (c.bits - 1)) - 1);
  EXPECT_LT(worst, step);
  std::vector<float> v = dequantized(p, n, k, spec);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t col = 0; col < k; ++col)
        want += (double)x[r * k + col] * v[j * k + col];
      EXPECT_NEAR(y[r * n + j], want, 1e-5) << "row " << r << " col " << j;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, PackedFormatTest,
    ::testing::Values(Case{8, 64, false, false}, Case{8, 32, true, false},
                      Case{4, 16, false, false}, Case{4, 32, true, false},
                      Case{4, 64, false, false}, Case{8, 64, false, true}));

TEST(Fp8Test, EncodesEveryCodeToItselfAndRoundsToNearest) {
  for (int code = 0; code < 256; ++code) {
    float f = quant::fp8e4m3ToFloatRef(static_cast<uint8_t>(code));
    float host = host::fp8e4m3ToFloat(static_cast<uint8_t>(code));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(host)) << "code " << code;
      EXPECT_TRUE(code == 0x7f || code == 0xff) << "code " << code;
      continue;
    }
    EXPECT_EQ(host, f) << "code " << code;
    if (code == 0x80) // -0 encodes as itself too, but compares equal to +0
      continue;
    EXPECT_EQ(quant::floatToFp8e4m3(f), code) << "code " << code;
  }
  EXPECT_EQ(quant::fp8e4m3ToFloatRef(0x7e), 448.0f);
  EXPECT_EQ(quant::floatToFp8e4m3(1000.0f), 0x7e); // saturates
  EXPECT_EQ(quant::floatToFp8e4m3(1.0625f), 0x38); // tie 1 | 1.125: even
  EXPECT_EQ(quant::floatToFp8e4m3(1.07f), 0x39);
}

TEST(GptqTest, FactorInvertsTheDampedHessian) {
  const int64_t k = 48, m = 200;
  std::vector<double> h = hessianOf(correlatedInputs(m, k, 8), m, k);
  std::vector<double> u;
  std::string error;
  ASSERT_TRUE(quant::inverseHessianFactor(h, k, 0.01, u, error)) << error;
  double mean = 0;
  for (int64_t i = 0; i < k; ++i)
    mean += h[i * k + i] / k;
  // (U^T U) (H + damp) = I.
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(i > j ? u[i * k + j] : 0.0, 0.0);
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        double inv = 0;
        for (int64_t q = 0; q < k; ++q)
          inv += u[q * k + i] * u[q * k + p];
        s += inv * (h[p * k + j] + (p == j ? 0.01 * mean : 0.0));
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-6) << i << "," << j;
    }
}

TEST(GptqTest, ReducesTheOutputErrorOfRoundToNearest) {
  const int64_t n = 32, k = 128, m = 256;
  std::vector<float> w = randomMatrix(n, k, 3);
  std::vector<float> x = correlatedInputs(m, k, 5);
  for (quant::QuantSpec spec : {quant::QuantSpec{4, 32, false, false},
                                quant::QuantSpec{4, 128, true, false},
                                quant::QuantSpec{8, 128, false, false}}) {
    spec = halfScales(spec);
    quant::PackedWeight rtn = quant::quantizeRTN(w, n, k, spec);
    std::vector<double> factor;
    std::string error;
    ASSERT_TRUE(quant::inverseHessianFactor(hessianOf(x, m, k), k, 0.01,
                                            factor, error))
        << error;
    quant::PackedWeight gptq = quant::quantizeGPTQ(w, n, k, spec, factor);
    double eRtn = outputError(x, m, k, w, dequantized(rtn, n, k, spec), n);
    double eGptq = outputError(x, m, k, w, dequantized(gptq, n, k, spec), n);
    EXPECT_LT(eGptq, 0.8 * eRtn)
        << "bits " << spec.bits << " group " << spec.group;
    // Act order with static, clipped groups: lower than rounding too.
    std::vector<double> h = hessianOf(x, m, k);
    std::vector<int64_t> order = quant::actOrder(h, k);
    for (int64_t c = 1; c < k; ++c)
      ASSERT_GE(h[order[c - 1] * k + order[c - 1]], h[order[c] * k + order[c]]);
    std::vector<double> importance(k), permutedFactor;
    for (int64_t c = 0; c < k; ++c)
      importance[c] = h[c * k + c];
    ASSERT_TRUE(quant::inverseHessianFactor(quant::permuted(h, k, order), k,
                                            0.01, permutedFactor, error));
    quant::PackedWeight ordered = quant::quantizeGPTQActOrder(
        w, n, k, spec, permutedFactor, order, importance);
    double eOrdered =
        outputError(x, m, k, w, dequantized(ordered, n, k, spec), n);
    EXPECT_LT(eOrdered, 0.8 * eRtn) << "bits " << spec.bits;
  }
}

/// The host device's SparseLinear on `x`.
std::vector<float> hostSparseLinear(const quant::SparseWeight &s,
                                    const std::vector<float> &x, int64_t m,
                                    int64_t k, int64_t n) {
  host::SparseWeightRef w;
  w.values = host::WeightRef(s.values.data());
  w.meta = s.meta.data();
  std::vector<float> y(m * n), scratch;
  host::sparseLinear(x.data(), m, k, w, n, nullptr, y.data(), scratch);
  return y;
}

TEST(Sparse24Test, MagnitudeKeepsTheTwoLargestOfEveryFour) {
  const int64_t n = 16, k = 64, m = 2;
  std::vector<float> w = randomMatrix(n, k, 9);
  std::vector<float> score(w.size());
  for (size_t i = 0; i < w.size(); ++i)
    score[i] = std::fabs(w[i]);
  quant::SparseWeight s = quant::prune24(w, n, k, score);
  std::vector<float> d = quant::densify(s, n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      int kept = 0;
      float smallestKept = INFINITY, largestPruned = 0;
      for (int j = 0; j < 4; ++j) {
        float orig = w[r * k + 4 * g + j], got = d[r * k + 4 * g + j];
        if (got != 0) {
          ++kept;
          EXPECT_EQ(got, orig);
          smallestKept = std::min(smallestKept, std::fabs(orig));
        } else {
          largestPruned = std::max(largestPruned, std::fabs(orig));
        }
      }
      EXPECT_EQ(kept, 2);
      EXPECT_GE(smallestKept, largestPruned);
    }
  std::vector<float> x = randomMatrix(m, k, 4);
  std::vector<float> y = hostSparseLinear(s, x, m, k, n);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t c = 0; c < k; ++c)
        want += (double)x[r * k + c] * d[j * k + c];
      EXPECT_NEAR(y[r * n + j], want, 1e-5);
    }
}

TEST(Sparse24Test, WandaAndSparseGptBeatMagnitudeOnCorrelatedInputs) {
  const int64_t n = 32, k = 128, m = 256;
  std::vector<float> w = randomMatrix(n, k, 21);
  std::vector<float> x = correlatedInputs(m, k, 22);
  std::vector<double> h = hessianOf(x, m, k);
  std::vector<float> magnitude(w.size()), wanda(w.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      magnitude[r * k + c] = std::fabs(w[r * k + c]);
      wanda[r * k + c] = magnitude[r * k + c] * std::sqrt(h[c * k + c]);
    }
  double eMag = outputError(
      x, m, k, w, quant::densify(quant::prune24(w, n, k, magnitude), n, k), n);
  double eWanda = outputError(
      x, m, k, w, quant::densify(quant::prune24(w, n, k, wanda), n, k), n);
  std::vector<double> factor;
  std::string error;
  ASSERT_TRUE(quant::inverseHessianFactor(h, k, 0.01, factor, error)) << error;
  quant::SparseWeight sgpt = quant::prune24SparseGPT(w, n, k, factor);
  std::vector<float> dense = quant::densify(sgpt, n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      int zeros = 0;
      for (int j = 0; j < 4; ++j)
        zeros += dense[r * k + 4 * g + j] == 0;
      EXPECT_GE(zeros, 2);
    }
  double eSgpt = outputError(x, m, k, w, dense, n);
  EXPECT_LT(eWanda, eMag);
  EXPECT_LT(eSgpt, eWanda);
  // The host kernel executes what densify describes.
  std::vector<float> y = hostSparseLinear(sgpt, x, 4, k, n);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t c = 0; c < k; ++c)
        want += (double)x[r * k + c] * dense[j * k + c];
      EXPECT_NEAR(y[r * n + j], want, 1e-3 * (1 + std::fabs(want)));
    }
}

} // namespace
