//===- HostKernelsTest.cpp - The host device's step kernels on tiny shapes ===//

#include "kiln/runtime/Half.h"
#include "kiln/runtime/HostKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

using namespace kiln::runtime;
using namespace kiln::runtime::host;

namespace {

std::vector<float> randomVector(size_t n, uint64_t seed, float spread = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-spread, spread);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

TEST(HalfTest, ConvertsExactlyAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = halfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(f))));
      continue;
    }
    ASSERT_EQ(floatToHalf(f), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // ties to even: overflow
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00); // tie, even
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000); // tie to zero
  EXPECT_EQ(floatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f)), 1.0f);
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80); // tie, even
  EXPECT_EQ(floatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(HostKernelsTest, MatmulMatchesTheNaiveProduct) {
  // Sizes around the 4-row, 32-column tiles, with a bias and without.
  for (int64_t m : {1, 3, 4, 5, 9})
    for (int64_t k : {1, 7, 33})
      for (int64_t n : {1, 31, 32, 33, 70}) {
        std::vector<float> x = randomVector(m * k, m * 1000 + k),
                           w = randomVector(k * n, n),
                           bias = randomVector(n, 5), y(m * n);
        for (bool withBias : {false, true}) {
          matmul(x.data(), m, k, w.data(), n, withBias ? bias.data() : nullptr,
                 y.data());
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double ref = withBias ? bias[j] : 0.0;
              for (int64_t kk = 0; kk < k; ++kk)
                ref += (double)x[i * k + kk] * w[kk * n + j];
              ASSERT_NEAR(y[i * n + j], ref, 1e-4)
                  << m << "x" << k << "x" << n << " at " << i << "," << j;
            }
        }
      }
}

TEST(HostKernelsTest, MatmulWidensHalfWeightsExactly) {
  // Weights stored as f16/bf16 (normal, subnormal, zero, negative) give
  // the product of their exact fp32 values.
  const int64_t m = 3, k = 5, n = 37;
  std::vector<float> x = randomVector(m * k, 1), wf = randomVector(k * n, 2);
  wf[3] = std::ldexp(1.0f, -20); // a half subnormal
  wf[4] = -0.0f;
  wf[5] = 60000.0f;
  for (DType dtype : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> w(k * n);
    std::vector<float> exact(k * n), y(m * n), ref(m * n);
    for (int64_t i = 0; i < k * n; ++i) {
      w[i] = dtype == DType::F16 ? floatToHalf(wf[i]) : floatToBf16(wf[i]);
      exact[i] = dtype == DType::F16 ? halfToFloat(w[i]) : bf16ToFloat(w[i]);
    }
    matmul(x.data(), m, k, WeightRef(w.data(), dtype), n, nullptr, y.data());
    matmul(x.data(), m, k, exact.data(), n, nullptr, ref.data());
    EXPECT_EQ(y, ref) << dtypeName(dtype);
  }
}

TEST(HostKernelsTest, Norms) {
  std::vector<float> x = {1, 2, 3, 4, -1, 0, 1, 2}, w = {1, 2, 1, 0.5f},
                     bias = {0, 1, 0, 0}, y(8);
  rmsNorm(x.data(), 2, 4, w.data(), 0.0f, 0.0f, y.data());
  double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  EXPECT_NEAR(y[1], 2 / rms * 2, 1e-6);
  EXPECT_NEAR(y[7], 2 / std::sqrt(6 / 4.0) * 0.5, 1e-6);
  // Gemma's (1 + w) scale.
  rmsNorm(x.data(), 2, 4, w.data(), 0.0f, 1.0f, y.data());
  EXPECT_NEAR(y[1], 2 / rms * 3, 1e-6);
  layerNorm(x.data(), 2, 4, w.data(), bias.data(), 0.0f, y.data());
  double sd = std::sqrt((2.25 + 0.25 + 0.25 + 2.25) / 4);
  EXPECT_NEAR(y[0], -1.5 / sd, 1e-6);
  EXPECT_NEAR(y[1], -0.5 / sd * 2 + 1, 1e-6);
}

TEST(HostKernelsTest, RotaryTableAndRope) {
  std::vector<int64_t> positions = {0, 3};
  std::vector<float> cosT(8), sinT(8);
  rotaryTable(positions.data(), 2, {1.0f, 0.5f}, 2.0f, cosT.data(),
              sinT.data());
  EXPECT_FLOAT_EQ(cosT[0], 2.0f);
  EXPECT_FLOAT_EQ(cosT[4], 2 * std::cos(3.0f));
  EXPECT_FLOAT_EQ(cosT[6], 2 * std::cos(3.0f)); // halves repeat
  EXPECT_FLOAT_EQ(sinT[5], 2 * std::sin(1.5f));
  // Half-split rotation of the first 4 of 6 channels, in place.
  rotaryTable(positions.data(), 2, {1.0f, 0.5f}, 1.0f, cosT.data(),
              sinT.data());
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  rope(x.data(), 2, 1, 6, cosT.data(), sinT.data(), 4, x.data());
  EXPECT_FLOAT_EQ(x[0], 1); // position 0: identity
  EXPECT_FLOAT_EQ(x[3], 4);
  float c = std::cos(3.0f), s = std::sin(3.0f);
  EXPECT_FLOAT_EQ(x[6], 1 * c - 3 * s);
  EXPECT_FLOAT_EQ(x[8], 3 * c + 1 * s);
  EXPECT_FLOAT_EQ(x[10], 5); // past rotary_dim: unchanged
}

TEST(HostKernelsTest, EmbeddingChecksIds) {
  std::vector<float> table = {0, 1, 10, 11, 20, 21}, out(4);
  std::vector<int64_t> ids = {2, -1};
  ASSERT_TRUE(embedding(table.data(), 3, 2, ids.data(), 2, out.data()).isOk());
  EXPECT_EQ(out, (std::vector<float>{20, 21, 20, 21}));
  std::vector<uint16_t> half;
  for (float v : table)
    half.push_back(floatToHalf(v));
  ASSERT_TRUE(embedding(WeightRef(half.data(), DType::F16), 3, 2, ids.data(),
                        2, out.data())
                  .isOk());
  EXPECT_EQ(out, (std::vector<float>{20, 21, 20, 21}));
  ids = {3};
  Status s = embedding(table.data(), 3, 2, ids.data(), 1, out.data());
  EXPECT_EQ(s.code(), StatusCode::OutOfRange);
  EXPECT_EQ(s.message(), "token id 3 is outside the vocabulary of 3");
}

/// A cache of `blocks` blocks of 2 tokens, 1 layer, 2 KV heads of 3.
struct SmallCache {
  explicit SmallCache(DType dtype, int64_t blocks = 4) {
    view.dtype = dtype;
    view.layers = 1;
    view.blocks = blocks;
    view.kvHeads = 2;
    view.blockSize = 2;
    view.headDim = 3;
    memory.assign(blocks * 2 * 2 * 2 * 3 * dtypeBytes(dtype), 0);
    view.data = memory.data();
  }
  float at(int64_t block, int64_t kv, int64_t head, int64_t t, int64_t d) {
    int64_t k = view.offset(0, block, kv, head, t) + d;
    if (view.dtype == DType::F32)
      return reinterpret_cast<float *>(memory.data())[k];
    return halfToFloat(reinterpret_cast<uint16_t *>(memory.data())[k]);
  }
  std::vector<uint8_t> memory;
  KVCacheView view;
};

TEST(HostKernelsTest, KVCacheWriteRoundsToTheCacheType) {
  SmallCache cache(DType::F16);
  std::vector<float> k = randomVector(2 * 2 * 3, 1), v = randomVector(12, 2);
  std::vector<int64_t> slots = {5, -1}; // block 2, offset 1; a padding token
  ASSERT_TRUE(
      kvCacheWrite(cache.view, 0, k.data(), v.data(), slots.data(), 2).isOk());
  EXPECT_EQ(cache.at(2, 0, 1, 1, 2), halfToFloat(floatToHalf(k[5])));
  EXPECT_EQ(cache.at(2, 1, 0, 1, 0), halfToFloat(floatToHalf(v[0])));
  EXPECT_EQ(cache.at(2, 0, 0, 0, 0), 0.0f);
  slots = {8};
  Status s = kvCacheWrite(cache.view, 0, k.data(), v.data(), slots.data(), 1);
  EXPECT_EQ(s.code(), StatusCode::OutOfRange);
  EXPECT_EQ(s.message(), "slot 8 of token 0 is outside the cache's 8 slots");
  // Copy-on-write copies the first rows of every head, K and V.
  ASSERT_TRUE(copyBlock(cache.view, 2, 0, 2).isOk());
  EXPECT_EQ(cache.at(0, 0, 1, 1, 2), cache.at(2, 0, 1, 1, 2));
  EXPECT_EQ(cache.at(0, 1, 0, 1, 0), cache.at(2, 1, 0, 1, 0));
  EXPECT_FALSE(copyBlock(cache.view, 2, 4, 1).isOk());
  EXPECT_FALSE(copyBlock(cache.view, 0, 1, 3).isOk());
}

/// Reference attention of one query row over contiguous keys/values.
std::vector<double> naiveAttention(const float *q, const std::vector<float> &k,
                                   const std::vector<float> &v, int64_t n,
                                   int64_t D, float scale, double softcap,
                                   int64_t first) {
  std::vector<double> s(n), out(D, 0);
  double mx = -INFINITY, sum = 0;
  for (int64_t j = first; j < n; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d)
      dot += (double)q[d] * k[j * D + d];
    s[j] = dot * scale;
    if (softcap > 0)
      s[j] = softcap * std::tanh(s[j] / softcap);
    mx = std::max(mx, s[j]);
  }
  for (int64_t j = first; j < n; ++j)
    sum += std::exp(s[j] - mx);
  for (int64_t j = first; j < n; ++j)
    for (int64_t d = 0; d < D; ++d)
      out[d] += std::exp(s[j] - mx) / sum * v[j * D + d];
  return out;
}

TEST(HostKernelsTest, PagedAttentionMatchesContiguousAttention) {
  // Two sequences in scattered blocks: sequence 0 has 5 cached tokens and
  // queries its last 2, sequence 1 has 3 and queries its last 1. GQA: 4
  // query heads over 2 KV heads. With and without a window and softcap.
  const int64_t D = 3, H = 4, KVH = 2, B = 2;
  SmallCache cache(DType::F32, 6);
  std::vector<int64_t> tables = {4, 1, 5, /* seq 1 */ 0, 3, 0};
  std::vector<int64_t> contexts = {5, 3}, qsl = {0, 2, 3};
  std::vector<int64_t> lengths = {5, 3};
  std::vector<std::vector<float>> keys(2), values(2);
  for (int s = 0; s < 2; ++s) {
    keys[s] = randomVector(lengths[s] * KVH * D, 10 + s);
    values[s] = randomVector(lengths[s] * KVH * D, 20 + s);
    for (int64_t j = 0; j < lengths[s]; ++j) {
      int64_t slot = tables[s * 3 + j / B] * B + j % B;
      ASSERT_TRUE(kvCacheWrite(cache.view, 0, keys[s].data() + j * KVH * D,
                               values[s].data() + j * KVH * D, &slot, 1)
                      .isOk());
    }
  }
  std::vector<float> q = randomVector(3 * H * D, 30), y(3 * H * D);
  for (int64_t window : {0, 2})
    for (float softcap : {0.0f, 1.5f}) {
      PagedAttentionParams p;
      p.numHeads = H;
      p.kvHeads = KVH;
      p.scale = 0.7f;
      p.slidingWindow = window;
      p.softcap = softcap;
      ASSERT_TRUE(pagedAttention(cache.view, p, q.data(), 3, tables.data(), 2,
                                 3, contexts.data(), qsl.data(), y.data())
                      .isOk());
      for (int64_t t = 0; t < 3; ++t) {
        int s = t < 2 ? 0 : 1;
        int64_t pos = t < 2 ? 3 + t : 2;
        for (int64_t h = 0; h < H; ++h) {
          int64_t kvh = h / 2;
          std::vector<float> k(pos + 1 > 0 ? (pos + 1) * D : 0),
              v((pos + 1) * D);
          for (int64_t j = 0; j <= pos; ++j)
            for (int64_t d = 0; d < D; ++d) {
              k[j * D + d] = keys[s][(j * KVH + kvh) * D + d];
              v[j * D + d] = values[s][(j * KVH + kvh) * D + d];
            }
          int64_t first = window ? std::max<int64_t>(0, pos - window + 1) : 0;
          std::vector<double> ref =
              naiveAttention(q.data() + (t * H + h) * D, k, v, pos + 1, D,
                             0.7f, softcap, first);
          for (int64_t d = 0; d < D; ++d)
            ASSERT_NEAR(y[(t * H + h) * D + d], ref[d], 1e-5)
                << "token " << t << " head " << h << " window " << window
                << " softcap " << softcap;
        }
      }
    }
  // Context lengths and block tables are checked before they index.
  PagedAttentionParams p;
  p.numHeads = H;
  p.kvHeads = KVH;
  std::vector<int64_t> badTables = {4, 1, 9, 0, 3, 0};
  Status s = pagedAttention(cache.view, p, q.data(), 3, badTables.data(), 2,
                            3, contexts.data(), qsl.data(), y.data());
  EXPECT_EQ(s.message(),
            "block 9 of sequence 0 is outside the cache's 6 blocks");
  std::vector<int64_t> longContext = {7, 3};
  s = pagedAttention(cache.view, p, q.data(), 3, tables.data(), 2, 3,
                     longContext.data(), qsl.data(), y.data());
  EXPECT_EQ(s.message(), "sequence 0 of 7 tokens needs more than the 3 "
                         "blocks of its block table");
  std::vector<int64_t> shortContext = {1, 3};
  s = pagedAttention(cache.view, p, q.data(), 3, tables.data(), 2, 3,
                     shortContext.data(), qsl.data(), y.data());
  EXPECT_EQ(s.message(),
            "sequence 0 appends 2 tokens but its context length is 1");
}

TEST(HostKernelsTest, BroadcastingArithmetic) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {10, 20, 30}, s = {2},
                     out(6);
  binary(BinaryOp::Add, a.data(), {2, 3}, b.data(), {3}, out.data(), {2, 3});
  EXPECT_EQ(out, (std::vector<float>{11, 22, 33, 14, 25, 36}));
  binary(BinaryOp::Mul, a.data(), {2, 3}, s.data(), {}, out.data(), {2, 3});
  EXPECT_EQ(out, (std::vector<float>{2, 4, 6, 8, 10, 12}));
  binary(BinaryOp::Div, s.data(), {1, 1}, a.data(), {2, 3}, out.data(),
         {2, 3});
  EXPECT_FLOAT_EQ(out[3], 0.5f);
  std::vector<float> col = {1, 2};
  binary(BinaryOp::Sub, a.data(), {2, 3}, col.data(), {2, 1}, out.data(),
         {2, 3});
  EXPECT_EQ(out, (std::vector<float>{0, 1, 2, 2, 3, 4}));
}

TEST(HostKernelsTest, Activations) {
  std::vector<float> x = {-1, 0, 2}, y(3);
  activation(OpKind::SiLU, x.data(), 3, y.data());
  EXPECT_FLOAT_EQ(y[2], 2 / (1 + std::exp(-2.0f)));
  activation(OpKind::GELU, x.data(), 3, y.data());
  EXPECT_NEAR(y[0], -0.158655254, 1e-6);
  activation(OpKind::GeluTanh, x.data(), 3, y.data());
  EXPECT_NEAR(y[0], -0.158808, 1e-5);
  activation(OpKind::ReLU, x.data(), 3, y.data());
  EXPECT_EQ(y, (std::vector<float>{0, 0, 2}));
  activation(OpKind::Tanh, x.data(), 3, y.data());
  EXPECT_FLOAT_EQ(y[0], std::tanh(-1.0f));
}

TEST(HostKernelsTest, GatedMlp) {
  // One row, K=2, I=1, N=1: down * silu(x.gate) * (x.up).
  std::vector<float> x = {1, 2}, gate = {0.5f, 0.25f}, up = {1, -1},
                     down = {3}, y(1), scratch;
  gatedMlp(x.data(), 1, 2, gate.data(), up.data(), 1, down.data(), 1,
           Activation::SiLU, y.data(), scratch);
  float g = 1.0f, u = -1.0f;
  EXPECT_FLOAT_EQ(y[0], 3 * (g / (1 + std::exp(-g))) * u);
}

TEST(HostKernelsTest, GatherSliceSplit) {
  std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7}, out(4);
  std::vector<int64_t> qsl = {0, 3, 4};
  ASSERT_TRUE(gatherLastTokens(x.data(), 4, 2, qsl.data(), 2, out.data())
                  .isOk());
  EXPECT_EQ(out, (std::vector<float>{4, 5, 6, 7}));
  qsl = {0, 0, 4};
  EXPECT_EQ(gatherLastTokens(x.data(), 4, 2, qsl.data(), 2, out.data())
                .message(),
            "sequence 0 has no token");
  // [2, 4] -> columns 1 and 3.
  std::vector<float> sliced(4);
  slice(x.data(), {2, 4}, {1}, {1}, {2}, sliced.data(), {2, 2});
  EXPECT_EQ(sliced, (std::vector<float>{1, 3, 5, 7}));
  std::vector<float> a(2), b(6);
  split(x.data(), {2, 4}, 1, {1, 3}, {a.data(), b.data()});
  EXPECT_EQ(a, (std::vector<float>{0, 4}));
  EXPECT_EQ(b, (std::vector<float>{1, 2, 3, 5, 6, 7}));
}

} // namespace
