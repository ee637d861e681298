//===- ModelConfigTest.cpp - The Config section's key=value text ----------===//

#include "kiln/runtime/ModelConfig.h"
#include "kiln/runtime/Artifact.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

/// The bundled pycoder model's shape.
ModelConfig pycoder() {
  ModelConfig c;
  c.vocabSize = 4096;
  c.bosTokenId = 1;
  c.eosTokenId = 2;
  c.contextLength = 512;
  c.numLayers = 4;
  c.numHeads = 8;
  c.numKVHeads = 2;
  c.headDim = 32;
  c.hiddenSize = 256;
  c.intermediateSize = 704;
  c.ropeTheta = 10000.0;
  c.dtype = "f16";
  return c;
}

/// Replaces the line starting with `key=` by `line` (or drops it if empty).
std::string withLine(const ModelConfig &c, const std::string &key,
                     const std::string &line) {
  std::string text = c.serialize();
  size_t at = text.find(key + "=");
  size_t end = text.find('\n', at);
  return text.substr(0, at) + line + (line.empty() ? "" : "\n") +
         text.substr(end + 1);
}

Status parseError(const std::string &text) {
  StatusOr<ModelConfig> c = ModelConfig::deserialize(text);
  EXPECT_FALSE(c.isOk()) << "accepted:\n" << text;
  return c.isOk() ? Status::ok() : c.status();
}

TEST(ModelConfigTest, SerializesAsVersionedKeyValueText) {
  EXPECT_EQ(pycoder().serialize(), "kiln_model_config=2\n"
                                   "vocab_size=4096\n"
                                   "bos_token_id=1\n"
                                   "eos_token_id=2\n"
                                   "context_length=512\n"
                                   "num_layers=4\n"
                                   "num_heads=8\n"
                                   "num_kv_heads=2\n"
                                   "head_dim=32\n"
                                   "hidden_size=256\n"
                                   "intermediate_size=704\n"
                                   "rope_theta=10000\n"
                                   "dtype=f16\n"
                                   "block_size=16\n");
}

TEST(ModelConfigTest, ReadsVersion1WithoutBlockSize) {
  // Version 1 predates block_size; such artifacts used 16-token blocks.
  ModelConfig c = pycoder();
  c.blockSize = 32;
  std::string text =
      withLine(c, "kiln_model_config", "kiln_model_config=1");
  text = text.substr(0, text.find("block_size="));
  StatusOr<ModelConfig> back = ModelConfig::deserialize(text);
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_EQ(back->blockSize, 16);
  // ... and reject the key, which version 1 did not have.
  EXPECT_EQ(parseError(text + "block_size=32\n").message(),
            "model config line 14: unknown key 'block_size'");
}

TEST(ModelConfigTest, RoundTripsExactly) {
  ModelConfig c = pycoder();
  c.ropeTheta = 500000.123456789; // shortest round-trip form keeps it exact
  c.dtype = "bf16";
  StatusOr<ModelConfig> back = ModelConfig::deserialize(c.serialize());
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_TRUE(*back == c);
  EXPECT_EQ(back->ropeTheta, 500000.123456789);
}

TEST(ModelConfigTest, RoundTripsThroughAnArtifact) {
  ArtifactWriter writer;
  ASSERT_TRUE(writer
                  .addSection(SectionKind::Config, "config",
                              std::string_view(pycoder().serialize()))
                  .isOk());
  StatusOr<ArtifactReader> reader =
      ArtifactReader::fromBytes(writer.serialize());
  ASSERT_TRUE(reader.isOk()) << reader.status();
  Span<const uint8_t> bytes = *reader->sectionData(SectionKind::Config);
  StatusOr<ModelConfig> back = ModelConfig::deserialize(std::string_view(
      reinterpret_cast<const char *>(bytes.data()), bytes.size()));
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_TRUE(*back == pycoder());
}

TEST(ModelConfigTest, RejectsMalformedText) {
  ModelConfig c = pycoder();
  EXPECT_EQ(parseError("").message(),
            "model config is empty or lacks its version line");
  EXPECT_EQ(parseError("vocab_size=4096\n").message(),
            "model config line 1: expected 'kiln_model_config=<version>' "
            "first");
  EXPECT_EQ(parseError(withLine(c, "kiln_model_config", "kiln_model_config=3"))
                .message(),
            "unsupported model config version 3 (this runtime reads versions "
            "1 to 2)");
  EXPECT_EQ(parseError(withLine(c, "num_heads", "num_heads 8")).message(),
            "model config line 7: expected key=value, got 'num_heads 8'");
  EXPECT_EQ(parseError(withLine(c, "num_layers", "")).message(),
            "model config lacks 'num_layers'");
  EXPECT_EQ(parseError(withLine(c, "head_dim", "head_dim=32x")).message(),
            "model config line 9: value '32x' of 'head_dim' is not a 32-bit "
            "integer");
  EXPECT_EQ(
      parseError(withLine(c, "head_dim", "head_dim=99999999999")).message(),
      "model config line 9: value '99999999999' of 'head_dim' is not a "
      "32-bit integer");
  EXPECT_EQ(parseError(withLine(c, "rope_theta", "rope_theta=fast")).message(),
            "model config line 12: value 'fast' of 'rope_theta' is not a "
            "number");
  EXPECT_EQ(parseError(c.serialize() + "num_layers=5\n").message(),
            "model config line 15: duplicate key 'num_layers'");
  EXPECT_EQ(parseError(c.serialize() + "sliding_window=4096\n").message(),
            "model config line 15: unknown key 'sliding_window'");
}

TEST(ModelConfigTest, ValidatesValues) {
  ModelConfig c = pycoder();
  c.numKVHeads = 3;
  EXPECT_EQ(c.validate().message(),
            "model config num_heads 8 is not a multiple of num_kv_heads 3");
  c = pycoder();
  c.eosTokenId = 4096;
  EXPECT_EQ(c.validate().message(),
            "model config eos_token_id 4096 is outside the vocabulary [0, "
            "4096)");
  c = pycoder();
  c.numLayers = 0;
  EXPECT_EQ(c.validate().message(),
            "model config num_layers must be positive, got 0");
  c = pycoder();
  c.headDim = 33;
  EXPECT_EQ(c.validate().code(), StatusCode::InvalidArgument);
  c = pycoder();
  c.ropeTheta = -1;
  EXPECT_EQ(c.validate().code(), StatusCode::InvalidArgument);
  c = pycoder();
  c.blockSize = 0;
  EXPECT_EQ(c.validate().message(),
            "model config block_size must be positive, got 0");
  c = pycoder();
  c.dtype = "f8";
  EXPECT_EQ(c.validate().message(),
            "model config dtype 'f8' is not one of f32, f16, bf16");
  // deserialize validates too.
  c = pycoder();
  EXPECT_EQ(parseError(withLine(c, "bos_token_id", "bos_token_id=-1")).code(),
            StatusCode::InvalidArgument);
}

} // namespace
