//===- KernelTableTest.cpp - The Kernels section round trip and checks ----===//

#include "kiln/runtime/KernelTable.h"
#include "kiln/runtime/Artifact.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

KernelTable makeTable() {
  KernelTable t;
  t.target = "sm_90a";
  KernelInfo g;
  g.name = "gemv_f16_n768_k256";
  g.family = "gemv";
  g.params = {{"dtype", "f16"}, {"n", "768"}, {"k", "256"}};
  g.uses = 3;
  g.grid = {192, 1, 1};
  g.block = {128, 1, 1};
  g.repeat = LaunchRepeat::PerToken;
  g.weightLayout = WeightLayout::NK;
  g.args = {{"x", DType::F16, ArgAccess::In, {256}},
            {"w", DType::F16, ArgAccess::In, {768, 256}},
            {"y", DType::F16, ArgAccess::Out, {768}}};
  g.ptx = ".version 8.0\n.target sm_90a\n.visible .entry gemv_f16_n768_k256(\n";
  g.cubin = {0x7f, 'E', 'L', 'F', 1, 2, 3};
  t.kernels.push_back(g);
  KernelInfo m;
  m.name = "missing:embedding_f16_v4096_h256";
  m.family = "embedding";
  m.status = KernelStatus::Missing;
  m.params = {{"vocab", "4096"}, {"hidden", "256"}};
  m.uses = 1;
  m.reason = "no embedding generator";
  t.kernels.push_back(m);
  // decode: step 0 launches nothing (a View), step 1 the gemv, step 2 the
  // missing embedding.
  t.bindings.push_back({"decode", {{}, {0}, {1}}});
  return t;
}

} // namespace

TEST(KernelTable, RoundTrip) {
  KernelTable t = makeTable();
  std::vector<uint8_t> bytes = t.serialize();
  auto back = KernelTable::deserialize(Span<const uint8_t>(bytes));
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_EQ(back->target, "sm_90a");
  ASSERT_EQ(back->kernels.size(), 2u);
  EXPECT_EQ(back->numGenerated(), 1u);
  EXPECT_EQ(back->numMissing(), 1u);
  EXPECT_EQ(back->numCubins(), 1u);
  const KernelInfo *g = back->find("gemv_f16_n768_k256");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->param("n"), "768");
  EXPECT_EQ(g->grid[0], 192);
  EXPECT_EQ(g->block[0], 128);
  EXPECT_EQ(g->repeat, LaunchRepeat::PerToken);
  EXPECT_EQ(g->weightLayout, WeightLayout::NK);
  ASSERT_EQ(g->args.size(), 3u);
  EXPECT_EQ(g->args[1].shape, (std::vector<int64_t>{768, 256}));
  EXPECT_EQ(g->args[2].access, ArgAccess::Out);
  EXPECT_EQ(g->ptx, t.kernels[0].ptx);
  EXPECT_EQ(g->cubin, t.kernels[0].cubin);
  EXPECT_EQ(back->kernels[1].reason, "no embedding generator");
  const EntryKernels *decode = back->bindingsFor("decode");
  ASSERT_NE(decode, nullptr);
  EXPECT_EQ(decode->steps, (std::vector<std::vector<uint32_t>>{{}, {0}, {1}}));
  EXPECT_EQ(back->bindingsFor("prefill"), nullptr);
  EXPECT_EQ(back->serialize(), bytes);
  std::string listing = describeKernelTable(*back);
  EXPECT_NE(listing.find("generated gemv gemv_f16_n768_k256"),
            std::string::npos);
  EXPECT_NE(listing.find("missing   embedding"), std::string::npos);
  EXPECT_NE(listing.find("entry decode: 2 of 3 steps launch 2 kernels"),
            std::string::npos);
}

TEST(KernelTable, ThroughArtifact) {
  ArtifactWriter w;
  ASSERT_TRUE(
      w.addSection(SectionKind::Kernels, "kernels", makeTable().serialize())
          .isOk());
  auto reader = ArtifactReader::fromBytes(w.serialize());
  ASSERT_TRUE(reader.isOk()) << reader.status();
  auto data = reader->sectionData(SectionKind::Kernels);
  ASSERT_TRUE(data.isOk());
  auto t = KernelTable::deserialize(*data);
  ASSERT_TRUE(t.isOk()) << t.status();
  EXPECT_EQ(t->kernels.size(), 2u);
}

TEST(KernelTable, EveryTruncationIsDataLoss) {
  std::vector<uint8_t> bytes = makeTable().serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto t = KernelTable::deserialize(Span<const uint8_t>(bytes.data(), n));
    ASSERT_FALSE(t.isOk()) << "length " << n;
    EXPECT_EQ(t.status().code(), StatusCode::DataLoss) << "length " << n;
  }
}

TEST(KernelTable, EveryByteFlipIsSafe) {
  // No flip may crash or read out of bounds; most are rejected.
  std::vector<uint8_t> bytes = makeTable().serialize();
  size_t rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> copy = bytes;
    copy[i] ^= 0xff;
    auto t = KernelTable::deserialize(Span<const uint8_t>(copy));
    rejected += !t.isOk();
  }
  EXPECT_GT(rejected, bytes.size() / 3);
}

TEST(KernelTable, Errors) {
  auto expectError = [](const KernelTable &t, StatusCode code,
                        const std::string &text) {
    std::vector<uint8_t> bytes = t.serialize();
    auto back = KernelTable::deserialize(Span<const uint8_t>(bytes));
    ASSERT_FALSE(back.isOk()) << text;
    EXPECT_EQ(back.status().code(), code);
    EXPECT_NE(back.status().message().find(text), std::string::npos)
        << back.status().message();
  };
  KernelTable t = makeTable();
  t.kernels[1].name = t.kernels[0].name;
  expectError(t, StatusCode::DataLoss, "duplicate name");
  t = makeTable();
  t.kernels[0].block = {2048, 1, 1};
  expectError(t, StatusCode::DataLoss, "block dimension 0 is 2048");
  t = makeTable();
  t.kernels[0].ptx = ".version 8.0\n";
  expectError(t, StatusCode::DataLoss,
              "kernel #0 ('gemv_f16_n768_k256'): the PTX has no .entry");
  t = makeTable();
  t.kernels[0].args[0].dtype = static_cast<DType>(9);
  expectError(t, StatusCode::DataLoss, "argument 'x': unknown dtype 9");
  t = makeTable();
  t.kernels[1].reason.clear();
  expectError(t, StatusCode::DataLoss, "without a reason");

  t = makeTable();
  t.bindings[0].steps[1] = {7};
  expectError(t, StatusCode::DataLoss,
              "entry point 'decode' step #1 names kernel #7 of 2");
  t = makeTable();
  t.bindings.push_back(t.bindings[0]);
  expectError(t, StatusCode::DataLoss,
              "bindings of entry point 'decode' are empty-named or repeated");

  std::vector<uint8_t> bytes = makeTable().serialize();
  bytes[4] = 3; // version
  auto v = KernelTable::deserialize(Span<const uint8_t>(bytes));
  ASSERT_FALSE(v.isOk());
  EXPECT_EQ(v.status().code(), StatusCode::Unimplemented);
  EXPECT_NE(v.status().message().find("unsupported kernel table version 3"),
            std::string::npos);
  bytes = makeTable().serialize();
  bytes[0] = 'X';
  EXPECT_EQ(
      KernelTable::deserialize(Span<const uint8_t>(bytes)).status().code(),
      StatusCode::DataLoss);
  bytes = makeTable().serialize();
  bytes.push_back(0);
  auto trailing = KernelTable::deserialize(Span<const uint8_t>(bytes));
  ASSERT_FALSE(trailing.isOk());
  EXPECT_NE(trailing.status().message().find("trailing"), std::string::npos);
}

// Variant parameters name kernels of the right kind: `flash` a row-chunked
// (TokenChunks) kernel, `dequant` a qdequant kernel that comes with a
// `tiled` GEMM; a corrupt name is data loss, not a launch of the wrong code.
TEST(KernelTable, VariantNamesAreChecked) {
  auto withVariant = [](const std::string &key, const std::string &family,
                        LaunchScale scale) {
    KernelTable t = makeTable();
    KernelInfo v = t.kernels[0];
    v.name = "variant_kernel";
    v.family = family;
    v.gridScale = scale;
    v.params = {{"tokens", "64"}};
    v.ptx = ".version 8.0\n.target sm_90a\n.visible .entry variant_kernel(\n";
    t.kernels.push_back(v);
    t.kernels[0].params.emplace_back(key, "variant_kernel");
    return t;
  };
  auto validate = [](const KernelTable &t) {
    std::vector<uint8_t> bytes = t.serialize();
    return KernelTable::deserialize(Span<const uint8_t>(bytes)).status();
  };
  EXPECT_TRUE(
      validate(withVariant("flash", "flash_prefill", LaunchScale::TokenChunks))
          .isOk());
  Status flash =
      validate(withVariant("flash", "flash_prefill", LaunchScale::Tokens));
  EXPECT_EQ(flash.code(), StatusCode::DataLoss);
  EXPECT_NE(flash.message().find("'flash' names 'variant_kernel'"),
            std::string::npos)
      << flash.message();

  // dequant without a tiled GEMM, or naming another family.
  Status alone =
      validate(withVariant("dequant", "qdequant", LaunchScale::None));
  EXPECT_EQ(alone.code(), StatusCode::DataLoss);
  EXPECT_NE(alone.message().find("without a 'tiled' GEMM"), std::string::npos)
      << alone.message();
  KernelTable other = withVariant("dequant", "gemv", LaunchScale::None);
  other.kernels[0].params.emplace_back("tiled", "variant_kernel");
  EXPECT_EQ(validate(other).code(), StatusCode::DataLoss);
}
