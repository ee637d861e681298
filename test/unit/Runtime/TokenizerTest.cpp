//===- TokenizerTest.cpp - SentencePiece wrapper on the pycoder model -----===//

#include "kiln/runtime/Tokenizer.h"
#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/MappedFile.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

const std::string kModelPath =
    std::string(KILN_TEST_MODELS_DIR) + "/pycoder/tokenizer.model";

class TokenizerTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!Tokenizer::isAvailable())
      GTEST_SKIP() << "built without SentencePiece";
    StatusOr<std::unique_ptr<Tokenizer>> loaded =
        Tokenizer::loadFromFile(kModelPath);
    ASSERT_TRUE(loaded.isOk()) << loaded.status();
    tokenizer = std::move(loaded).value();
  }
  std::unique_ptr<Tokenizer> tokenizer;
};

TEST_F(TokenizerTest, SpecialIdsAndVocabulary) {
  EXPECT_EQ(tokenizer->bosId(), 1);
  EXPECT_EQ(tokenizer->eosId(), 2);
  EXPECT_EQ(tokenizer->vocabSize(), 4096);
}

TEST_F(TokenizerTest, EncodeDecodeRoundTrip) {
  const std::string source = "def fib(n):\n    return n";
  StatusOr<std::vector<int32_t>> ids = tokenizer->encode(source);
  ASSERT_TRUE(ids.isOk()) << ids.status();
  EXPECT_FALSE(ids->empty());
  EXPECT_LT(ids->size(), source.size()); // BPE merges something
  for (int32_t id : *ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 4096);
  }
  StatusOr<std::string> text = tokenizer->decode(*ids);
  ASSERT_TRUE(text.isOk()) << text.status();
  EXPECT_EQ(*text, source);

  StatusOr<std::vector<int32_t>> withBos = tokenizer->encode(source, true);
  ASSERT_TRUE(withBos.isOk());
  ASSERT_EQ(withBos->size(), ids->size() + 1);
  EXPECT_EQ(withBos->front(), 1);
  EXPECT_TRUE(std::equal(ids->begin(), ids->end(), withBos->begin() + 1));
  // BOS and EOS are control tokens: they decode to nothing.
  std::vector<int32_t> framed = *withBos;
  framed.push_back(tokenizer->eosId());
  EXPECT_EQ(*tokenizer->decode(framed), source);
}

TEST_F(TokenizerTest, ByteFallbackCoversAnyUtf8) {
  const std::string text = "λx → x² # ünïcödé 🙂";
  StatusOr<std::vector<int32_t>> ids = tokenizer->encode(text);
  ASSERT_TRUE(ids.isOk()) << ids.status();
  EXPECT_EQ(*tokenizer->decode(*ids), text);
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  Status s = tokenizer->decode({5, 4096}).status();
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s.message(),
            "token id 4096 at index 1 is outside the vocabulary [0, 4096)");
  EXPECT_EQ(tokenizer->decode({-1}).status().code(),
            StatusCode::InvalidArgument);
}

TEST_F(TokenizerTest, LoadsFromArtifactBytes) {
  StatusOr<MappedFile> file = MappedFile::open(kModelPath);
  ASSERT_TRUE(file.isOk()) << file.status();
  ArtifactWriter writer;
  ASSERT_TRUE(writer
                  .addSection(SectionKind::Tokenizer, "tokenizer",
                              std::vector<uint8_t>(file->data(),
                                                   file->data() + file->size()))
                  .isOk());
  StatusOr<ArtifactReader> reader =
      ArtifactReader::fromBytes(writer.serialize());
  ASSERT_TRUE(reader.isOk()) << reader.status();
  StatusOr<std::unique_ptr<Tokenizer>> embedded =
      Tokenizer::loadFromBytes(*reader->sectionData(SectionKind::Tokenizer));
  ASSERT_TRUE(embedded.isOk()) << embedded.status();
  const std::string source = "def fib(n):\n    return n";
  EXPECT_EQ(*(*embedded)->encode(source), *tokenizer->encode(source));
}

TEST_F(TokenizerTest, LoadErrors) {
  Status missing =
      Tokenizer::loadFromFile("/nonexistent/tokenizer.model").status();
  EXPECT_EQ(missing.code(), StatusCode::NotFound);
  EXPECT_EQ(missing.message(), "cannot open '/nonexistent/tokenizer.model': "
                               "No such file or directory");
  std::vector<uint8_t> garbage = {'n', 'o', 't', ' ', 'a', ' ', 'm', 'o'};
  EXPECT_EQ(Tokenizer::loadFromBytes(garbage).status().code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(Tokenizer::loadFromBytes({}).status().message(),
            "empty SentencePiece tokenizer model");
}

} // namespace
