//===- StepFusionTest.cpp - Which steps a device may run as one kernel ----===//

#include "kiln/runtime/StepFusion.h"

#include <gtest/gtest.h>

#include <memory>

using namespace kiln::runtime;

namespace {

/// A plan fragment: activation x [T, 64] f16 and helpers to add weights,
/// activations and steps.
struct Fragment {
  EntryPoint entry;

  uint32_t buffer(BufferKind kind, DType dtype, Shape shape) {
    Buffer b;
    b.kind = kind;
    b.dtype = dtype;
    b.shape = std::move(shape);
    entry.buffers.push_back(std::move(b));
    return static_cast<uint32_t>(entry.buffers.size() - 1);
  }
  uint32_t activation(int64_t width, DType dtype = DType::F16) {
    return buffer(BufferKind::Activation, dtype,
                  {Dim::symbol(Sym::T), Dim::constant(width)});
  }
  /// Linear(x, W [n, k] stored transposed) -> [T, n].
  uint32_t linear(uint32_t x, int64_t n, int64_t k,
                  DType weightType = DType::F16, bool bias = false) {
    uint32_t w = buffer(BufferKind::Weight, weightType,
                        {Dim::constant(n), Dim::constant(k)});
    uint32_t y = activation(n);
    Step s{OpKind::Linear, {x, w}, {y}, {}};
    if (bias)
      s.operands.push_back(
          buffer(BufferKind::Weight, weightType, {Dim::constant(n)}));
    s.attrs.push_back(Attr::ofInt(AttrKey::TransposeWeight, 1));
    entry.steps.push_back(std::move(s));
    return y;
  }
  /// QuantLinear(x, packed [n, k * bits / 8], scales [n, k / group],
  /// [zeros]) -> [T, n].
  uint32_t quantLinear(uint32_t x, int64_t n, int64_t k, int64_t bits = 4,
                       int64_t group = 32, bool zeros = false,
                       bool bias = false) {
    uint32_t packed = buffer(BufferKind::Weight, DType::U8,
                             {Dim::constant(n), Dim::constant(k * bits / 8)});
    uint32_t scales = buffer(BufferKind::Weight, DType::F16,
                             {Dim::constant(n), Dim::constant(k / group)});
    uint32_t y = activation(n);
    Step s{OpKind::QuantLinear, {x, packed, scales}, {y}, {}};
    if (zeros || bias)
      s.operands.push_back(
          zeros ? buffer(BufferKind::Weight, DType::U8,
                         {Dim::constant(n), Dim::constant(k / group)})
                : kNoBuffer);
    if (bias)
      s.operands.push_back(
          buffer(BufferKind::Weight, DType::F16, {Dim::constant(n)}));
    s.attrs.push_back(Attr::ofInt(AttrKey::Bits, bits));
    s.attrs.push_back(Attr::ofInt(AttrKey::GroupSize, group));
    s.attrs.push_back(Attr::ofInt(AttrKey::QuantFormat, 1));
    entry.steps.push_back(std::move(s));
    return y;
  }
  void view(uint32_t of) {
    entry.steps.push_back(Step{OpKind::View, {of}, {activation(1)}, {}});
  }
};

TEST(StepFusionTest, GroupsQKVOfOneInputAcrossViews) {
  Fragment f;
  uint32_t x = f.activation(64);
  f.view(f.linear(x, 64, 64));        // q, then a View
  f.view(f.linear(x, 16, 64));        // k
  f.linear(x, 16, 64);                // v
  f.linear(f.activation(64), 64, 64); // another input: not in the group
  std::vector<SharedInputLinears> groups = findSharedInputLinears(f.entry);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].steps, (std::vector<size_t>{0, 2, 4}));
  EXPECT_EQ(groups[0].rows, (std::vector<int64_t>{64, 16, 16}));
  EXPECT_EQ(groups[0].k, 64);
}

TEST(StepFusionTest, StopsAtBiasOtherWidthOrOtherStep) {
  Fragment f;
  uint32_t x = f.activation(64);
  f.linear(x, 64, 64);
  f.linear(x, 64, 64, DType::F16, /*bias=*/true); // a bias: not fused
  EXPECT_TRUE(findSharedInputLinears(f.entry).empty());

  Fragment g;
  uint32_t y = g.activation(64);
  g.linear(y, 64, 64);
  g.entry.steps.push_back(Step{OpKind::SiLU, {y}, {g.activation(64)}, {}});
  g.linear(y, 64, 64); // a non-View step between: two separate linears
  EXPECT_TRUE(findSharedInputLinears(g.entry).empty());

  Fragment h;
  uint32_t z = h.activation(64);
  h.linear(z, 64, 64);
  h.linear(z, 64, 64, DType::BF16); // weights of another type
  EXPECT_TRUE(findSharedInputLinears(h.entry).empty());
}

TEST(StepFusionTest, AtMostThreePerGroup) {
  Fragment f;
  uint32_t x = f.activation(64);
  for (int i = 0; i < 5; ++i)
    f.linear(x, 32, 64);
  std::vector<SharedInputLinears> groups = findSharedInputLinears(f.entry);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].steps, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(groups[1].steps, (std::vector<size_t>{3, 4}));
}

/// Add(x, r) -> h, [View], RMSNorm(h, w) -> out.
TEST(StepFusionTest, PairsAnAddWithTheNormOfItsResult) {
  Fragment f;
  uint32_t x = f.activation(64), r = f.activation(64), h = f.activation(64);
  f.entry.steps.push_back(Step{OpKind::Add, {x, r}, {h}, {}});
  f.view(h);
  uint32_t w = f.buffer(BufferKind::Weight, DType::F16, {Dim::constant(64)});
  Step norm{OpKind::RMSNorm, {h, w}, {f.activation(64)}, {}};
  norm.attrs.push_back(Attr::ofFloat(AttrKey::Epsilon, 1e-5f));
  f.entry.steps.push_back(norm);
  std::vector<AddNorm> pairs = findAddNorms(f.entry);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].add, 0u);
  EXPECT_EQ(pairs[0].norm, 2u);
  EXPECT_EQ(pairs[0].hidden, 64);

  // A norm of another buffer, or an f32 add, is not a pair.
  Fragment g;
  uint32_t a = g.activation(64), bb = g.activation(64), s = g.activation(64);
  g.entry.steps.push_back(Step{OpKind::Add, {a, bb}, {s}, {}});
  uint32_t w2 = g.buffer(BufferKind::Weight, DType::F16, {Dim::constant(64)});
  g.entry.steps.push_back(
      Step{OpKind::RMSNorm, {a, w2}, {g.activation(64)}, {}});
  EXPECT_TRUE(findAddNorms(g.entry).empty());
  Fragment h32;
  uint32_t p = h32.activation(64, DType::F32),
           q = h32.activation(64, DType::F32),
           t = h32.activation(64, DType::F32);
  h32.entry.steps.push_back(Step{OpKind::Add, {p, q}, {t}, {}});
  uint32_t w3 = h32.buffer(BufferKind::Weight, DType::F32, {Dim::constant(64)});
  h32.entry.steps.push_back(
      Step{OpKind::RMSNorm, {t, w3}, {h32.activation(64, DType::F32)}, {}});
  EXPECT_TRUE(findAddNorms(h32.entry).empty());
}

/// Rope(q, cos, sin), View, Rope(k, cos, sin): one pair; a Rope with other
/// tables is not.
TEST(StepFusionTest, PairsRopesOfTheSameTables) {
  Fragment f;
  auto heads = [&](int64_t h) {
    return f.buffer(BufferKind::Activation, DType::BF16,
                    {Dim::symbol(Sym::T), Dim::constant(h), Dim::constant(64)});
  };
  uint32_t cosT = f.activation(64, DType::BF16);
  uint32_t sinT = f.activation(64, DType::BF16);
  auto rope = [&](uint32_t x, uint32_t c, uint32_t s) {
    Step step{OpKind::Rope, {x, c, s}, {heads(1)}, {}};
    step.attrs.push_back(Attr::ofInt(AttrKey::RotaryDim, 64));
    f.entry.steps.push_back(step);
  };
  rope(heads(8), cosT, sinT);
  f.view(cosT);
  rope(heads(2), cosT, sinT);
  rope(heads(8), cosT, sinT);
  rope(heads(2), f.activation(64, DType::BF16), sinT); // other cos table
  std::vector<RopePair> pairs = findRopePairs(f.entry);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].first, 0u);
  EXPECT_EQ(pairs[0].second, 2u);
  EXPECT_FALSE(pairs[0].hasKVWrite());

  // KVCacheWrite(cache, rotated k, v, slots) right after: part of the pair;
  // one that writes other keys is not.
  Fragment g;
  auto headsOf = [&](int64_t h) {
    return g.buffer(BufferKind::Activation, DType::BF16,
                    {Dim::symbol(Sym::T), Dim::constant(h), Dim::constant(64)});
  };
  uint32_t c = g.activation(64, DType::BF16),
           sn = g.activation(64, DType::BF16);
  uint32_t qRot = headsOf(8), kRot = headsOf(2), v = headsOf(2);
  for (auto [x, out] :
       {std::pair{headsOf(8), qRot}, std::pair{headsOf(2), kRot}}) {
    Step step{OpKind::Rope, {x, c, sn}, {out}, {}};
    step.attrs.push_back(Attr::ofInt(AttrKey::RotaryDim, 64));
    g.entry.steps.push_back(step);
  }
  uint32_t cacheBuf = g.buffer(BufferKind::KVCache, DType::BF16, {});
  uint32_t slots =
      g.buffer(BufferKind::Input, DType::I64, {Dim::symbol(Sym::T)});
  g.entry.steps.push_back(
      Step{OpKind::KVCacheWrite, {cacheBuf, kRot, v, slots}, {}, {}});
  pairs = findRopePairs(g.entry);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_TRUE(pairs[0].hasKVWrite());
  EXPECT_EQ(pairs[0].kvWrite, 2u);
  g.entry.steps.back().operands[1] = qRot; // not the rotated keys
  EXPECT_FALSE(findRopePairs(g.entry)[0].hasKVWrite());
}

} // namespace

TEST(StepFusionTest, GroupsQuantizedLinearsOfOneFormat) {
  Fragment f;
  uint32_t x = f.activation(64);
  f.view(f.quantLinear(x, 64, 64)); // q, k, v of one input and format
  f.quantLinear(x, 16, 64);
  f.quantLinear(x, 16, 64);
  f.linear(x, 64, 64); // a plain Linear: not in the quantized group
  std::vector<SharedInputLinears> groups = findSharedInputQuantLinears(f.entry);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].steps, (std::vector<size_t>{0, 2, 3}));
  EXPECT_EQ(groups[0].rows, (std::vector<int64_t>{64, 16, 16}));
  EXPECT_EQ(groups[0].k, 64);
  EXPECT_TRUE(findSharedInputLinears(f.entry).empty());
}

TEST(StepFusionTest, QuantizedGroupsNeedOneFormatAndNoBias) {
  auto pair = [](auto second) {
    Fragment f;
    uint32_t x = f.activation(64);
    f.quantLinear(x, 64, 64);
    second(f, x);
    return findSharedInputQuantLinears(f.entry).size();
  };
  EXPECT_EQ(pair([](Fragment &f, uint32_t x) { f.quantLinear(x, 64, 64); }),
            1u);
  EXPECT_EQ(pair([](Fragment &f, uint32_t x) { f.quantLinear(x, 64, 64, 8); }),
            0u); // other bits
  EXPECT_EQ(
      pair([](Fragment &f, uint32_t x) { f.quantLinear(x, 64, 64, 4, 64); }),
      0u); // other group size
  EXPECT_EQ(pair([](Fragment &f, uint32_t x) {
              f.quantLinear(x, 64, 64, 4, 32, /*zeros=*/true);
            }),
            0u); // zero points on one only
  EXPECT_EQ(pair([](Fragment &f, uint32_t x) {
              f.quantLinear(x, 64, 64, 4, 32, false, /*bias=*/true);
            }),
            0u); // a bias
}

/// Add, RMSNorm, then a quantized q/k/v group reading the normalized rows:
/// one norm-fed quantized group; a plain Linear after the norm, or a group
/// reading the add's sum instead, is not one.
TEST(StepFusionTest, FindsTheQuantizedLinearsANormFeeds) {
  auto build = [](bool quantized, bool readNormed) {
    auto f = std::make_unique<Fragment>();
    uint32_t x = f->activation(64), r = f->activation(64),
             h = f->activation(64);
    f->entry.steps.push_back(Step{OpKind::Add, {x, r}, {h}, {}});
    uint32_t w = f->buffer(BufferKind::Weight, DType::F16, {Dim::constant(64)});
    uint32_t normed = f->activation(64);
    Step norm{OpKind::RMSNorm, {h, w}, {normed}, {}};
    norm.attrs.push_back(Attr::ofFloat(AttrKey::Epsilon, 1e-5f));
    f->entry.steps.push_back(norm);
    uint32_t in = readNormed ? normed : h;
    for (int64_t n : {64, 16, 16}) {
      if (quantized)
        f->quantLinear(in, n, 64, 8, 64);
      else
        f->linear(in, n, 64);
    }
    return f;
  };
  auto f = build(/*quantized=*/true, /*readNormed=*/true);
  std::vector<NormFedLinears> fed = findNormFedQuantLinears(f->entry);
  ASSERT_EQ(fed.size(), 1u);
  EXPECT_EQ(fed[0].addNorm.add, 0u);
  EXPECT_EQ(fed[0].consumer, 2u);
  EXPECT_FALSE(fed[0].gated);
  EXPECT_FALSE(fed[0].hasRope());
  EXPECT_EQ(fed[0].group.rows, (std::vector<int64_t>{64, 16, 16}));
  EXPECT_TRUE(findNormFedLinears(f->entry).empty());

  auto dense = build(/*quantized=*/false, /*readNormed=*/true);
  EXPECT_TRUE(findNormFedQuantLinears(dense->entry).empty());
  EXPECT_EQ(findNormFedLinears(dense->entry).size(), 1u);
  auto sum = build(/*quantized=*/true, /*readNormed=*/false);
  EXPECT_TRUE(findNormFedQuantLinears(sum->entry).empty());
}

/// SiLU(g), Mul(silu, u): one pair (either operand order); not when the
/// SiLU's result is read elsewhere or the Mul takes it twice.
TEST(StepFusionTest, PairsASiluWithTheMulOfItsResult) {
  auto build = [](bool swapped, bool readTwice) {
    auto f = std::make_unique<Fragment>();
    uint32_t g = f->activation(64), u = f->activation(64);
    uint32_t s = f->activation(64), y = f->activation(64);
    f->entry.steps.push_back(Step{OpKind::SiLU, {g}, {s}, {}});
    f->view(g);
    f->entry.steps.push_back(Step{OpKind::Mul,
                                  swapped ? std::vector<uint32_t>{u, s}
                                          : std::vector<uint32_t>{s, u},
                                  {y},
                                  {}});
    if (readTwice)
      f->entry.steps.push_back(
          Step{OpKind::Add, {s, u}, {f->activation(64)}, {}});
    return f;
  };
  for (bool swapped : {false, true}) {
    auto f = build(swapped, false);
    std::vector<SiluMul> pairs = findSiluMuls(f->entry);
    ASSERT_EQ(pairs.size(), 1u) << swapped;
    EXPECT_EQ(pairs[0].silu, 0u);
    EXPECT_EQ(pairs[0].mul, 2u);
    EXPECT_EQ(pairs[0].gate, 0u);
    EXPECT_EQ(pairs[0].up, 1u);
    EXPECT_EQ(pairs[0].out, 3u);
    EXPECT_EQ(pairs[0].width, 64);
  }
  EXPECT_TRUE(findSiluMuls(build(false, true)->entry).empty());
  Fragment twice;
  uint32_t g = twice.activation(64), s = twice.activation(64);
  twice.entry.steps.push_back(Step{OpKind::SiLU, {g}, {s}, {}});
  twice.entry.steps.push_back(
      Step{OpKind::Mul, {s, s}, {twice.activation(64)}, {}});
  EXPECT_TRUE(findSiluMuls(twice.entry).empty());
}
