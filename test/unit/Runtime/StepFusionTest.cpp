//===- StepFusionTest.cpp - Which steps a device may run as one kernel ----===//

#include "kiln/runtime/StepFusion.h"

#include <gtest/gtest.h>

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
      s.operands.push_back(buffer(BufferKind::Weight, weightType,
                                  {Dim::constant(n)}));
    s.attrs.push_back(Attr::ofInt(AttrKey::TransposeWeight, 1));
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
  f.view(f.linear(x, 64, 64));  // q, then a View
  f.view(f.linear(x, 16, 64));  // k
  f.linear(x, 16, 64);          // v
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

} // namespace
