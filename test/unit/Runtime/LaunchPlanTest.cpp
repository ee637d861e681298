//===- LaunchPlanTest.cpp - Plan and weight-table encoding and validation -===//

#include "TinyModel.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Crc32.h"
#include "kiln/runtime/Model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace kiln::runtime;
using namespace kiln::runtime::testing;

namespace {

/// The message of a plan that must not validate.
std::string invalid(TinyModel m) {
  Status s = m.plan.validate(m.weights, m.config);
  EXPECT_FALSE(s.isOk()) << "validated";
  EXPECT_EQ(s.code(), StatusCode::DataLoss) << s;
  return s.message();
}

EntryPoint &prefill(TinyModel &m) { return m.plan.entries[0]; }

/// The index of the first step of `kind` in the prefill entry point.
size_t firstStep(TinyModel &m, OpKind kind) {
  for (size_t i = 0; i < prefill(m).steps.size(); ++i)
    if (prefill(m).steps[i].kind == kind)
      return i;
  ADD_FAILURE() << "no step " << opKindName(kind);
  return 0;
}

TEST(LaunchPlanTest, TinyModelValidates) {
  TinyModel m = makeTinyModel();
  Status s = m.plan.validate(m.weights, m.config);
  ASSERT_TRUE(s.isOk()) << s;
  const EntryPoint &e = m.plan.entries[0];
  EXPECT_EQ(e.buffers[e.inputs[0]].role, InputRole::Tokens);
  EXPECT_EQ(e.buffers[e.kvCache].kind, BufferKind::KVCache);
  EXPECT_EQ(e.buffers[e.output].kind, BufferKind::Output);
  EXPECT_EQ(shapeString(e.buffers[e.output].shape), "[N, 16]");
  EXPECT_EQ(shapeString(e.buffers[e.inputs[2]].shape), "[N+1]");
}

TEST(LaunchPlanTest, RoundTripsExactly) {
  TinyModel m = makeTinyModel(DType::F16);
  std::vector<uint8_t> bytes = m.plan.serialize();
  StatusOr<LaunchPlan> back = LaunchPlan::deserialize(bytes);
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_EQ(back->serialize(), bytes);
  EXPECT_EQ(back->target, "host");
  ASSERT_EQ(back->entries.size(), 3u);
  EXPECT_EQ(back->entries[1].name, "decode");
  ASSERT_TRUE(back->validate(m.weights, m.config).isOk());
  EXPECT_EQ(describeEntryPoint(back->entries[0]),
            describeEntryPoint(m.plan.entries[0]));
}

TEST(LaunchPlanTest, EveryTruncationIsDataLoss) {
  std::vector<uint8_t> bytes = makeTinyModel().plan.serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    StatusOr<LaunchPlan> plan = LaunchPlan::deserialize(
        Span<const uint8_t>(bytes.data(), n));
    ASSERT_FALSE(plan.isOk()) << "accepted a prefix of " << n << " bytes";
    EXPECT_EQ(plan.status().code(), StatusCode::DataLoss) << plan.status();
  }
  bytes.push_back(0);
  EXPECT_EQ(LaunchPlan::deserialize(bytes).status().message(),
            "launch plan: 1 trailing bytes after the last entry point");
}

TEST(LaunchPlanTest, CorruptBytesNeverValidateIntoNonsense) {
  // Flip every byte in turn: decoding and validation either reject the
  // plan or accept one that is still consistent (e.g. a changed float);
  // neither may crash or read out of bounds.
  TinyModel m = makeTinyModel();
  std::vector<uint8_t> bytes = m.plan.serialize();
  int rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> corrupt = bytes;
    corrupt[i] ^= 0x5a;
    StatusOr<LaunchPlan> plan = LaunchPlan::deserialize(corrupt);
    if (!plan.isOk() || !plan->validate(m.weights, m.config).isOk())
      ++rejected;
  }
  EXPECT_GT(rejected, (int)bytes.size() / 2);
}

TEST(LaunchPlanTest, RejectsOtherVersionsAndPayloads) {
  std::vector<uint8_t> bytes = makeTinyModel().plan.serialize();
  std::vector<uint8_t> v2 = bytes;
  v2[4] = 2;
  EXPECT_EQ(LaunchPlan::deserialize(v2).status().message(),
            "unsupported launch plan version 2 (this runtime reads version "
            "1)");
  EXPECT_EQ(LaunchPlan::deserialize(v2).status().code(),
            StatusCode::Unimplemented);
  std::vector<uint8_t> notPlan = bytes;
  notPlan[0] = 'X';
  EXPECT_EQ(LaunchPlan::deserialize(notPlan).status().message(),
            "launch plan: bad magic (not a launch plan payload)");
}

TEST(LaunchPlanTest, RejectsIdsOutOfRange) {
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::RMSNorm);
  prefill(m).steps[i].operands[0] = 9999;
  EXPECT_NE(invalid(m).find("step " + std::to_string(i) +
                            " (RMSNorm): operand 0 is buffer %9999, outside "
                            "the"),
            std::string::npos)
      << invalid(m);

  m = makeTinyModel();
  i = firstStep(m, OpKind::Linear);
  prefill(m).steps[i].results[0] = 70000;
  EXPECT_NE(invalid(m).find("result 0 is buffer %70000"), std::string::npos);

  m = makeTinyModel();
  for (Buffer &b : prefill(m).buffers)
    if (b.kind == BufferKind::Weight) {
      b.weightIndex = 500;
      break;
    }
  EXPECT_NE(invalid(m).find("weight index 500 is outside the weight table"),
            std::string::npos);
}

TEST(LaunchPlanTest, RejectsReadsBeforeWrites) {
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::RMSNorm);
  std::swap(prefill(m).steps[0], prefill(m).steps[i]); // before Embedding
  EXPECT_NE(invalid(m).find("is read before any step writes it"),
            std::string::npos);
}

TEST(LaunchPlanTest, RejectsSecondWrites) {
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::Add);
  prefill(m).steps[i + 1].results = prefill(m).steps[i].results;
  EXPECT_NE(invalid(m).find("is written a second time"), std::string::npos);
}

TEST(LaunchPlanTest, RejectsInconsistentShapes) {
  // A linear layer whose weight does not take the input's features.
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::Linear);
  size_t k = firstStep(m, OpKind::GatedMLP);
  prefill(m).steps[i].operands[1] = prefill(m).steps[k].operands[3]; // [12, 8]
  EXPECT_NE(invalid(m).find("(Linear): weight %"), std::string::npos)
      << invalid(m);

  // A view that does not hold its source's elements.
  m = makeTinyModel();
  i = firstStep(m, OpKind::View);
  prefill(m).buffers[prefill(m).steps[i].results[0]].shape[2] =
      Dim::constant(5);
  EXPECT_NE(invalid(m).find("does not hold the elements of"),
            std::string::npos);

  // Attention heads that do not fit the cache.
  m = makeTinyModel();
  i = firstStep(m, OpKind::PagedAttention);
  for (Attr &a : prefill(m).steps[i].attrs)
    if (a.key == AttrKey::KVHeads)
      a.i = 2;
  EXPECT_NE(invalid(m).find("num_heads 2 and kv_heads 2 do not fit a cache of "
                            "1 KV heads"),
            std::string::npos);

  // Broadcasting that does not work out.
  m = makeTinyModel();
  i = firstStep(m, OpKind::Add);
  prefill(m).steps[i].operands[1] =
      prefill(m).steps[firstStep(m, OpKind::GatedMLP)].operands[1];
  EXPECT_NE(invalid(m).find("cannot broadcast"), std::string::npos);
}

TEST(LaunchPlanTest, RejectsMissingAndUnexpectedAttributes) {
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::RMSNorm);
  prefill(m).steps[i].attrs.clear();
  EXPECT_NE(invalid(m).find("(RMSNorm): missing attribute epsilon"),
            std::string::npos);

  m = makeTinyModel();
  prefill(m).steps[i].attrs.push_back(Attr::ofInt(AttrKey::Axis, 1));
  EXPECT_NE(invalid(m).find("(RMSNorm): unexpected attribute axis"),
            std::string::npos);

  m = makeTinyModel();
  prefill(m).steps[i].attrs[0] = Attr::ofInt(AttrKey::Epsilon, 1);
  EXPECT_NE(invalid(m).find("attribute epsilon has the wrong type"),
            std::string::npos);

  m = makeTinyModel();
  i = firstStep(m, OpKind::PagedAttention);
  for (Attr &a : prefill(m).steps[i].attrs)
    if (a.key == AttrKey::Layer)
      a.i = 2;
  EXPECT_NE(invalid(m).find("layer 2 is outside the 2 layers"),
            std::string::npos);
}

TEST(LaunchPlanTest, RejectsInterfacesThatDisagreeWithTheConfig) {
  TinyModel m = makeTinyModel();
  m.config.numLayers = 3;
  EXPECT_NE(invalid(m).find("KV cache is %6 [2, P, 2, 1, 4, 4]f32, expected "
                            "floats of shape [3, P, 2, 1, 4, 4]"),
            std::string::npos)
      << invalid(m);

  m = makeTinyModel();
  m.config.vocabSize = 17;
  EXPECT_NE(invalid(m).find("logits are"), std::string::npos);

  m = makeTinyModel();
  prefill(m).buffers[0].role = InputRole::Positions;
  EXPECT_NE(invalid(m).find("two inputs for positions"), std::string::npos);

  m = makeTinyModel();
  prefill(m).buffers[2].shape = {Dim::symbol(Sym::N)};
  EXPECT_NE(invalid(m).find("input query_start_loc is %2 [N]i32, expected "
                            "integers of shape [N+1]"),
            std::string::npos);
}

TEST(LaunchPlanTest, WeightTableRoundTripsAndRejectsBadEntries) {
  TinyModel m = makeTinyModel();
  m.weights.weights[1].storage = WeightStorage::External;
  m.weights.weights[1].path = "weights.bin";
  m.weights.weights[2].storage = WeightStorage::Dummy;
  m.weights.weights[2].seed = 42;
  std::vector<uint8_t> bytes = m.weights.serialize();
  StatusOr<WeightTable> back = WeightTable::deserialize(bytes);
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_EQ(back->serialize(), bytes);
  EXPECT_EQ(back->weights[1].path, "weights.bin");
  EXPECT_EQ(back->weights[2].seed, 42u);
  for (size_t n = 0; n < bytes.size(); ++n)
    ASSERT_FALSE(
        WeightTable::deserialize(Span<const uint8_t>(bytes.data(), n)).isOk());

  WeightTable bad = m.weights;
  bad.weights[0].length += 1;
  EXPECT_EQ(WeightTable::deserialize(bad.serialize()).status().message(),
            "weight table: weight #0 'embed': 513 bytes for a weight of 512");
  bad = m.weights;
  bad.weights[3].name = bad.weights[0].name;
  EXPECT_NE(WeightTable::deserialize(bad.serialize())
                .status()
                .message()
                .find("duplicate name"),
            std::string::npos);
  bad = m.weights;
  bad.weights[0].shape[0] = -4;
  EXPECT_FALSE(WeightTable::deserialize(bad.serialize()).isOk());
  // Embedded ranges must lie inside the Weights section.
  EXPECT_NE(m.weights.validate(100).message().find("outside the Weights "
                                                   "section of 100 bytes"),
            std::string::npos);
}

/// An artifact of the tiny model with embedded weights.
std::vector<uint8_t> tinyArtifact(const TinyModel &m,
                                  bool withPlan = true) {
  ArtifactWriter w;
  EXPECT_TRUE(w.addSection(SectionKind::Config, "config",
                           std::string_view(m.config.serialize()))
                  .isOk());
  if (withPlan) {
    EXPECT_TRUE(
        w.addSection(SectionKind::LaunchPlan, "launch_plan", m.plan.serialize())
            .isOk());
  }
  EXPECT_TRUE(w.addSection(SectionKind::WeightRefs, "weight_refs",
                           m.weights.serialize())
                  .isOk());
  EXPECT_TRUE(
      w.addSection(SectionKind::Weights, "weights", weightsSection(m)).isOk());
  return w.serialize();
}

TEST(ModelLoadTest, LoadsAnArtifactWithEmbeddedWeights) {
  TinyModel m = makeTinyModel(DType::F16);
  auto reader = ArtifactReader::fromBytes(tinyArtifact(m));
  ASSERT_TRUE(reader.isOk()) << reader.status();
  auto model = Model::fromReader(std::move(reader).value(), "/nonexistent");
  ASSERT_TRUE(model.isOk()) << model.status();
  EXPECT_EQ((*model)->config(), m.config);
  EXPECT_EQ((*model)->weights().size(), m.weights.size());
  for (size_t i = 0; i < m.weights.size(); ++i) {
    Span<const uint8_t> bytes = (*model)->weightBytes(i);
    ASSERT_EQ(bytes.size(), m.data[i].size());
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), m.data[i]);
  }
  EXPECT_TRUE((*model)->tokenizerBytes().empty());
  EXPECT_NE((*model)->entry("prefill_all"), nullptr);
}

TEST(ModelLoadTest, CorruptArtifactsAreRejected) {
  // Every truncation and a sample of byte flips: the container's checks
  // (sizes, checksums, zero padding) reject them before any section is
  // parsed; nothing crashes.
  std::vector<uint8_t> bytes = tinyArtifact(makeTinyModel());
  for (size_t n = 0; n < bytes.size(); n += 37) {
    auto reader = ArtifactReader::fromBytes(
        std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    ASSERT_FALSE(reader.isOk()) << n;
  }
  for (size_t i = 0; i < bytes.size(); i += 13) {
    std::vector<uint8_t> corrupt = bytes;
    corrupt[i] ^= 0x01;
    auto reader = ArtifactReader::fromBytes(corrupt);
    if (reader.isOk()) {
      EXPECT_FALSE(Model::fromReader(std::move(reader).value(), ".").isOk())
          << "flipped byte " << i;
    }
  }
}

TEST(ModelLoadTest, MissingSectionsAreNotFound) {
  TinyModel m = makeTinyModel();
  auto reader = ArtifactReader::fromBytes(tinyArtifact(m, false));
  ASSERT_TRUE(reader.isOk());
  auto model = Model::fromReader(std::move(reader).value(), ".");
  ASSERT_FALSE(model.isOk());
  EXPECT_EQ(model.status().code(), StatusCode::NotFound);
  EXPECT_EQ(model.status().message(),
            "artifact has no launch_plan section");
}

TEST(ModelLoadTest, InvalidPlansFailToLoad) {
  TinyModel m = makeTinyModel();
  m.plan.entries[1].steps.pop_back(); // decode never writes its logits
  auto reader = ArtifactReader::fromBytes(tinyArtifact(m));
  ASSERT_TRUE(reader.isOk());
  auto model = Model::fromReader(std::move(reader).value(), ".");
  ASSERT_FALSE(model.isOk());
  EXPECT_EQ(model.status().message(),
            "launch plan: entry point 'decode': no step writes the logits");
}

class ExternalWeightsTest : public ::testing::Test {
protected:
  void SetUp() override {
    char dir[] = "/tmp/kiln-model-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    this->dir = dir;
    m = makeTinyModel();
    // Weight 1 lives at offset 8 of an external file.
    WeightInfo &w = m.weights.weights[1];
    write("data.bin", dataFile());
    w.storage = WeightStorage::External;
    w.path = "data.bin";
    w.offset = 8;
  }
  /// Eight filler bytes, then weight 1.
  std::vector<uint8_t> dataFile() const {
    std::vector<uint8_t> file(8 + m.data[1].size(), 0xee);
    std::copy(m.data[1].begin(), m.data[1].end(), file.begin() + 8);
    return file;
  }
  void TearDown() override {
    std::remove((dir + "/data.bin").c_str());
    std::remove((dir + "/m.kiln").c_str());
    rmdir(dir.c_str());
  }
  void write(const std::string &name, const std::vector<uint8_t> &bytes) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  }
  StatusOr<std::shared_ptr<const Model>> loadArtifact() {
    write("m.kiln", tinyArtifact(m));
    return Model::load(dir + "/m.kiln");
  }
  std::string dir;
  TinyModel m;
};

TEST_F(ExternalWeightsTest, ReadsAndVerifiesReferencedBytes) {
  auto model = loadArtifact();
  ASSERT_TRUE(model.isOk()) << model.status();
  Span<const uint8_t> bytes = (*model)->weightBytes(1);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), m.data[1]);
}

TEST_F(ExternalWeightsTest, ChecksumMismatchIsDataLoss) {
  std::vector<uint8_t> file = dataFile();
  file[20] ^= 1;
  write("data.bin", file);
  auto model = loadArtifact();
  ASSERT_FALSE(model.isOk());
  EXPECT_EQ(model.status().code(), StatusCode::DataLoss);
  EXPECT_NE(model.status().message().find(
                "weight 'layer0.norm1': checksum mismatch of '" + dir +
                "/data.bin' bytes [8, 40): stored 0x"),
            std::string::npos)
      << model.status();
  // Without verification the bytes are used as they are.
  write("m.kiln", tinyArtifact(m));
  ModelLoadOptions options;
  options.verifyChecksums = false;
  EXPECT_TRUE(Model::load(dir + "/m.kiln", options).isOk());
}

TEST_F(ExternalWeightsTest, ShortOrMissingFilesAreErrors) {
  write("data.bin", std::vector<uint8_t>(16, 0));
  auto model = loadArtifact();
  ASSERT_FALSE(model.isOk());
  EXPECT_NE(model.status().message().find("bytes [8, 40) lie outside"),
            std::string::npos)
      << model.status();
  std::remove((dir + "/data.bin").c_str());
  model = loadArtifact();
  ASSERT_FALSE(model.isOk());
  EXPECT_EQ(model.status().code(), StatusCode::NotFound);
}

TEST(ModelLoadTest, DummyWeightsAreSeededRandomValues) {
  TinyModel m = makeTinyModel();
  for (WeightInfo &w : m.weights.weights) {
    w.storage = WeightStorage::Dummy;
    w.seed = 3;
  }
  auto a = load(m), b = load(m);
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_TRUE((*a)->hasDummyWeights());
  Span<const uint8_t> x = (*a)->weightBytes(0), y = (*b)->weightBytes(0);
  EXPECT_EQ(std::vector<uint8_t>(x.begin(), x.end()),
            std::vector<uint8_t>(y.begin(), y.end()));
  // Vectors (norm scales) are around 1, matrices around 0.
  float norm, mat;
  std::memcpy(&norm, (*a)->weightBytes(1).data(), 4);
  std::memcpy(&mat, (*a)->weightBytes(0).data(), 4);
  EXPECT_NEAR(norm, 1.0f, 0.051f);
  EXPECT_NEAR(mat, 0.0f, 0.051f);
}

} // namespace

namespace {

/// The tiny model with its first Linear replaced by a QuantLinear (8-bit
/// codes, one scale per `group` inputs) or, with `sparse`, a SparseLinear
/// over new u8/f32 weight-table entries.
TinyModel withPackedLinear(bool sparse, int64_t group = 8) {
  TinyModel m = makeTinyModel();
  size_t i = firstStep(m, OpKind::Linear);
  EntryPoint &e = prefill(m);
  Step &s = e.steps[i];
  int64_t k = e.buffers[s.operands[0]].shape.back().value;
  int64_t n = e.buffers[s.results[0]].shape.back().value;
  auto addWeight = [&](const std::string &name, DType dtype,
                       std::vector<int64_t> shape) {
    WeightInfo w;
    w.name = name;
    w.dtype = dtype;
    w.shape = shape;
    w.storage = WeightStorage::Embedded;
    w.length = w.numBytes();
    m.weights.weights.push_back(w);
    m.data.emplace_back(w.numBytes(), 0);
    Buffer b;
    b.kind = BufferKind::Weight;
    b.dtype = dtype;
    for (int64_t d : shape)
      b.shape.push_back(Dim::constant(d));
    b.weightIndex = m.weights.size() - 1;
    e.buffers.push_back(b);
    return static_cast<uint32_t>(e.buffers.size() - 1);
  };
  uint32_t bias = s.operands.size() > 2 ? s.operands[2] : kNoBuffer;
  if (sparse) {
    uint32_t values = addWeight("q.values", DType::F32, {n, k / 2});
    uint32_t meta = addWeight("q.meta", DType::U8, {n, k / 8});
    s.kind = OpKind::SparseLinear;
    s.operands = {s.operands[0], values, meta, bias};
    s.attrs.clear();
    return m;
  }
  uint32_t packed = addWeight("q.packed", DType::U8, {n, k});
  uint32_t scales = addWeight("q.scales", DType::F32, {n, k / group});
  s.kind = OpKind::QuantLinear;
  s.operands = {s.operands[0], packed, scales, kNoBuffer, bias};
  s.attrs = {Attr::ofInt(AttrKey::Bits, 8),
             Attr::ofInt(AttrKey::GroupSize, group),
             Attr::ofInt(AttrKey::QuantFormat, 1)};
  return m;
}

TEST(LaunchPlanTest, PackedLinearStepsValidateAndRoundTrip) {
  for (bool sparse : {false, true}) {
    TinyModel m = withPackedLinear(sparse);
    Status s = m.plan.validate(m.weights, m.config);
    ASSERT_TRUE(s.isOk()) << s;
    std::vector<uint8_t> bytes = m.plan.serialize();
    StatusOr<LaunchPlan> back = LaunchPlan::deserialize(bytes);
    ASSERT_TRUE(back.isOk()) << back.status();
    EXPECT_EQ(back->serialize(), bytes);
    StatusOr<WeightTable> table =
        WeightTable::deserialize(m.weights.serialize());
    ASSERT_TRUE(table.isOk()) << table.status();
    int u8 = 0;
    for (const WeightInfo &w : table->weights)
      u8 += w.dtype == DType::U8;
    EXPECT_EQ(u8, 1); // the packed codes or the 2:4 metadata
    EXPECT_TRUE(table->validate(~0ull).isOk());
  }
}

TEST(LaunchPlanTest, RejectsPackedLinearStepsNoKernelServes) {
  // A group that does not divide the input features.
  EXPECT_NE(invalid(withPackedLinear(false, 3))
                .find("group_size 3 does not "
                      "divide the 8 input "
                      "features"),
            std::string::npos);
  // Packed codes of the wrong width.
  TinyModel m = withPackedLinear(false);
  Step *s = &prefill(m).steps[firstStep(m, OpKind::QuantLinear)];
  prefill(m).buffers[s->operands[1]].shape[1] = Dim::constant(4);
  m.weights.weights[prefill(m).buffers[s->operands[1]].weightIndex].shape[1] =
      4;
  EXPECT_NE(invalid(m).find("should be [N, 8]u8"), std::string::npos)
      << invalid(m);
  // fp8 with 4 bits, and an unknown format.
  m = withPackedLinear(false);
  s = &prefill(m).steps[firstStep(m, OpKind::QuantLinear)];
  s->attrs = {Attr::ofInt(AttrKey::Bits, 4), Attr::ofInt(AttrKey::GroupSize, 8),
              Attr::ofInt(AttrKey::QuantFormat, 2)};
  EXPECT_NE(invalid(m).find("bits 4 is not served for fp8"), std::string::npos)
      << invalid(m);
  s->attrs[2].i = 7;
  EXPECT_NE(invalid(m).find("unknown quant_format 7"), std::string::npos);
  // u8 is for weights only.
  m = withPackedLinear(false);
  s = &prefill(m).steps[firstStep(m, OpKind::QuantLinear)];
  prefill(m).buffers[s->results[0]].dtype = DType::U8;
  EXPECT_NE(invalid(m).find("u8 (packed weight bytes) is for weights only"),
            std::string::npos);
  // 2:4 metadata that is not u8.
  m = withPackedLinear(true);
  s = &prefill(m).steps[firstStep(m, OpKind::SparseLinear)];
  prefill(m).buffers[s->operands[2]].dtype = DType::F32;
  m.weights.weights[prefill(m).buffers[s->operands[2]].weightIndex].dtype =
      DType::F32;
  EXPECT_NE(invalid(m).find("must be u8"), std::string::npos) << invalid(m);
}

} // namespace
