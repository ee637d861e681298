//===- ArtifactTest.cpp - The .kiln container: round trip and corruption --===//

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ArtifactFormat.h"
#include "kiln/runtime/Crc32.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

using namespace kiln::runtime;
namespace fmt = kiln::runtime::artifact;

namespace {

using Bytes = std::vector<uint8_t>;

/// gtest's own substring check, to avoid depending on gmock.
::testing::AssertionResult contains(const std::string &text,
                                    const std::string &part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "'" << text << "' does not contain '" << part << "'";
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i)
    b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

/// config (text), kernels (100 B), launch (empty), weights (1000 B).
Bytes sampleArtifact() {
  ArtifactWriter writer;
  EXPECT_TRUE(writer
                  .addSection(SectionKind::Config, "config",
                              std::string_view("kiln_model_config=1\n"))
                  .isOk());
  EXPECT_TRUE(
      writer.addSection(SectionKind::Kernels, "kernels", pattern(100, 1))
          .isOk());
  EXPECT_TRUE(
      writer.addSection(SectionKind::LaunchPlan, "launch", Bytes()).isOk());
  EXPECT_TRUE(
      writer.addSection(SectionKind::Weights, "weights", pattern(1000, 3))
          .isOk());
  return writer.serialize();
}

uint64_t get64(const Bytes &b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | b[at + i];
  return v;
}
void put32(Bytes &b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put64(Bytes &b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

/// Offset of field `field` of section entry `index`.
size_t entryField(size_t index, size_t field) {
  return fmt::kHeaderSize + index * fmt::kSectionEntrySize + field;
}

/// Re-seals the metadata after a test edits it, so that the check under
/// test (not a checksum) is the one that fires.
void reseal(Bytes &b) {
  uint32_t count = b[fmt::header::kSectionCountOffset];
  put32(b, fmt::header::kSectionTableCrcOffset,
        crc32(b.data() + fmt::kHeaderSize, count * fmt::kSectionEntrySize));
  put32(b, fmt::header::kHeaderCrcOffset,
        crc32(b.data(), fmt::header::kHeaderCrcOffset));
}

Status readError(Bytes bytes) {
  StatusOr<ArtifactReader> reader = ArtifactReader::fromBytes(std::move(bytes));
  EXPECT_FALSE(reader.isOk()) << "corrupt artifact was accepted";
  return reader.isOk() ? Status::ok() : reader.status();
}

std::string text(Span<const uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

//===----------------------------------------------------------------------===//
// Round trips
//===----------------------------------------------------------------------===//

TEST(ArtifactTest, RoundTripInMemory) {
  Bytes bytes = sampleArtifact();
  ASSERT_EQ(std::string(bytes.begin(), bytes.begin() + 8),
            std::string("KILNART\0", 8));
  StatusOr<ArtifactReader> reader = ArtifactReader::fromBytes(bytes);
  ASSERT_TRUE(reader.isOk()) << reader.status();
  EXPECT_EQ(reader->formatVersion(), 1u);
  const std::vector<SectionInfo> &sections = reader->sections();
  ASSERT_EQ(sections.size(), 4u);
  EXPECT_EQ(sections[0].name, "config");
  EXPECT_EQ(sections[0].kind, SectionKind::Config);
  EXPECT_EQ(sections[3].name, "weights");
  EXPECT_EQ(sections[3].kind, SectionKind::Weights);
  for (const SectionInfo &s : sections)
    EXPECT_EQ(s.offset % 64, 0u) << s.name;
  // Payloads start after the header and table: 64 + 4 * 64 = 320.
  EXPECT_EQ(sections[0].offset, 320u);
  EXPECT_EQ(bytes.size(), sections[3].offset + 1000);

  EXPECT_EQ(text(*reader->sectionData("config")), "kiln_model_config=1\n");
  Span<const uint8_t> kernels = *reader->sectionData(SectionKind::Kernels);
  EXPECT_EQ(Bytes(kernels.begin(), kernels.end()), pattern(100, 1));
  EXPECT_TRUE(reader->sectionData("launch")->empty());
  Span<const uint8_t> weights =
      reader->payload(*reader->findSection("weights"));
  EXPECT_EQ(Bytes(weights.begin(), weights.end()), pattern(1000, 3));

  Status missing = reader->sectionData("tokenizer").status();
  EXPECT_EQ(missing.code(), StatusCode::NotFound);
  EXPECT_EQ(missing.message(), "artifact has no section 'tokenizer'");
  EXPECT_EQ(reader->sectionData(SectionKind::Tokenizer).status().message(),
            "artifact has no tokenizer section");
}

TEST(ArtifactTest, EmptyArtifactRoundTrips) {
  Bytes bytes = ArtifactWriter().serialize();
  EXPECT_EQ(bytes.size(), 64u);
  StatusOr<ArtifactReader> reader = ArtifactReader::fromBytes(bytes);
  ASSERT_TRUE(reader.isOk()) << reader.status();
  EXPECT_TRUE(reader->sections().empty());
}

TEST(ArtifactTest, RoundTripThroughFile) {
  std::string path = ::testing::TempDir() + "kiln_artifact_test.kiln";
  ArtifactWriter writer;
  ASSERT_TRUE(
      writer.addSection(SectionKind::Weights, "w", pattern(5000, 9)).isOk());
  ASSERT_TRUE(writer.writeFile(path).isOk());
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
  StatusOr<ArtifactReader> reader = ArtifactReader::openFile(path);
  ASSERT_TRUE(reader.isOk()) << reader.status();
  Span<const uint8_t> w = *reader->sectionData("w");
  EXPECT_EQ(Bytes(w.begin(), w.end()), pattern(5000, 9));
  // The reader stays valid after a move (the mapping moves with it).
  ArtifactReader moved = std::move(reader).value();
  EXPECT_EQ(moved.sectionData("w")->size(), 5000u);

  // A corrupt file's error names the file.
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "not an artifact, but longer than sixty-four bytes so the magic "
           "is what fails";
  }
  Status bad = ArtifactReader::openFile(path).status();
  EXPECT_EQ(bad.code(), StatusCode::InvalidArgument);
  EXPECT_TRUE(contains(bad.message(), path));
  EXPECT_TRUE(contains(bad.message(), "bad magic"));
  std::remove(path.c_str());

  Status missing = ArtifactReader::openFile(path).status();
  EXPECT_EQ(missing.code(), StatusCode::NotFound);
  EXPECT_TRUE(contains(missing.message(), "cannot open '" + path + "'"));
}

TEST(ArtifactTest, WriterRejectsBadSections) {
  ArtifactWriter writer;
  ASSERT_TRUE(writer.addSection(SectionKind::Config, "config", Bytes()).isOk());
  EXPECT_EQ(writer.addSection(SectionKind::Config, "config", Bytes()).message(),
            "duplicate section 'config'");
  EXPECT_EQ(writer.addSection(SectionKind::Config, "", Bytes()).code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(
      writer.addSection(SectionKind::Config, std::string(32, 'x'), Bytes())
          .message(),
      "section name '" + std::string(32, 'x') + "' is longer than 31 bytes");
  EXPECT_TRUE(
      writer.addSection(SectionKind::Config, std::string(31, 'y'), Bytes())
          .isOk());
  EXPECT_EQ(
      writer.addSection(static_cast<SectionKind>(0), "zero", Bytes()).code(),
      StatusCode::InvalidArgument);
  // A kind this runtime does not know is carried through.
  ASSERT_TRUE(
      writer.addSection(static_cast<SectionKind>(99), "future", Bytes{1})
          .isOk());
  StatusOr<ArtifactReader> reader =
      ArtifactReader::fromBytes(writer.serialize());
  ASSERT_TRUE(reader.isOk()) << reader.status();
  EXPECT_EQ(static_cast<uint32_t>(reader->findSection("future")->kind), 99u);
  EXPECT_STREQ(sectionKindName(static_cast<SectionKind>(99)), "unknown");
}

//===----------------------------------------------------------------------===//
// Corruption
//===----------------------------------------------------------------------===//

TEST(ArtifactTest, BadMagicIsRejected) {
  Bytes bytes = sampleArtifact();
  bytes[3] = 'X';
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s.message(),
            "not a .kiln artifact: bad magic (expected \"KILNART\\0\")");
}

TEST(ArtifactTest, WrongVersionIsRejected) {
  Bytes bytes = sampleArtifact();
  put32(bytes, fmt::header::kVersionOffset, 2);
  reseal(bytes);
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(
      s.message(),
      "unsupported .kiln format version 2 (this runtime reads version 1)");
}

TEST(ArtifactTest, HeaderChecksumMismatchIsRejected) {
  Bytes bytes = sampleArtifact();
  bytes[fmt::header::kReservedOffset] = 1;
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_TRUE(contains(s.message(), "header checksum mismatch (stored 0x"));
}

TEST(ArtifactTest, TruncatedFileIsRejected) {
  Bytes bytes = sampleArtifact();
  size_t full = bytes.size();
  bytes.pop_back();
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_EQ(s.message(), "truncated artifact: header says " +
                             std::to_string(full) + " bytes, the file has " +
                             std::to_string(full - 1));
  bytes.resize(10);
  EXPECT_EQ(readError(bytes).message(),
            "truncated artifact: 10 bytes, the header alone is 64");
  EXPECT_EQ(readError(Bytes()).code(), StatusCode::DataLoss);
}

TEST(ArtifactTest, TrailingDataIsRejected) {
  Bytes bytes = sampleArtifact();
  bytes.push_back(0);
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_TRUE(contains(s.message(), "(trailing data)"));
}

TEST(ArtifactTest, FlippedPayloadByteNamesTheSection) {
  Bytes bytes = sampleArtifact();
  size_t weights = get64(bytes, entryField(3, fmt::entry::kPayloadOffset));
  bytes[weights + 500] ^= 0x10;
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_TRUE(contains(s.message(), "section 'weights' (#3): payload "
                                    "checksum mismatch (stored 0x"));
}

TEST(ArtifactTest, EditedSectionTableFailsItsChecksum) {
  Bytes bytes = sampleArtifact();
  put64(bytes, entryField(1, fmt::entry::kPayloadSizeOffset), 99);
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_TRUE(contains(s.message(), "section table checksum mismatch"));
}

TEST(ArtifactTest, SectionOutOfBoundsIsRejected) {
  Bytes bytes = sampleArtifact();
  const size_t size = bytes.size();
  // Past the end of the file.
  put64(bytes, entryField(3, fmt::entry::kPayloadOffset), size - 64 * 2);
  reseal(bytes);
  Status s = readError(bytes);
  EXPECT_EQ(s.code(), StatusCode::DataLoss);
  EXPECT_EQ(s.message(), "section 'weights' (#3): payload of 1000 bytes at "
                         "offset " +
                             std::to_string(size - 128) +
                             " is out of bounds (payloads lie in [320, " +
                             std::to_string(size) + "))");
  // A size that would overflow offset + size.
  bytes = sampleArtifact();
  put64(bytes, entryField(1, fmt::entry::kPayloadSizeOffset),
        std::numeric_limits<uint64_t>::max());
  reseal(bytes);
  EXPECT_TRUE(contains(readError(bytes).message(),
                       "section 'kernels' (#1): payload of"));
  // Inside the section table.
  bytes = sampleArtifact();
  put64(bytes, entryField(0, fmt::entry::kPayloadOffset), 64);
  reseal(bytes);
  EXPECT_TRUE(contains(readError(bytes).message(),
                       "section 'config' (#0): payload of 20 bytes at offset "
                       "64 is out of bounds"));
  // A section table larger than the file.
  bytes = sampleArtifact();
  put32(bytes, fmt::header::kSectionCountOffset, 1000);
  put32(bytes, fmt::header::kHeaderCrcOffset,
        crc32(bytes.data(), fmt::header::kHeaderCrcOffset));
  EXPECT_TRUE(contains(readError(bytes).message(),
                       "section table (1000 entries at offset 64) is out of "
                       "bounds"));
}

TEST(ArtifactTest, MisalignedAndOverlappingSectionsAreRejected) {
  Bytes bytes = sampleArtifact();
  size_t kernels = get64(bytes, entryField(1, fmt::entry::kPayloadOffset));
  put64(bytes, entryField(1, fmt::entry::kPayloadOffset), kernels + 4);
  reseal(bytes);
  EXPECT_EQ(readError(bytes).message(),
            "section 'kernels' (#1): payload offset " +
                std::to_string(kernels + 4) + " is not 64-byte aligned");

  bytes = sampleArtifact();
  size_t config = get64(bytes, entryField(0, fmt::entry::kPayloadOffset));
  put64(bytes, entryField(1, fmt::entry::kPayloadOffset), config);
  reseal(bytes);
  EXPECT_EQ(readError(bytes).message(),
            "sections 'config' and 'kernels' overlap");

  bytes = sampleArtifact();
  std::memcpy(&bytes[entryField(2, fmt::entry::kNameOffset)], "kernels\0", 8);
  reseal(bytes);
  EXPECT_EQ(readError(bytes).message(),
            "section 'kernels' (#2): duplicate name");
}

TEST(ArtifactTest, EveryFlippedByteAndEveryTruncationIsRejected) {
  const Bytes good = sampleArtifact();
  for (size_t i = 0; i < good.size(); ++i) {
    Bytes bytes = good;
    bytes[i] ^= 0x01;
    StatusOr<ArtifactReader> reader = ArtifactReader::fromBytes(bytes);
    ASSERT_FALSE(reader.isOk()) << "flipping byte " << i << " went unnoticed";
    EXPECT_TRUE(reader.status().code() == StatusCode::DataLoss ||
                reader.status().code() == StatusCode::InvalidArgument);
  }
  for (size_t n = 0; n < good.size(); ++n)
    ASSERT_FALSE(
        ArtifactReader::fromBytes(Bytes(good.begin(), good.begin() + n)).isOk())
        << "truncation to " << n << " bytes went unnoticed";
}

} // namespace
