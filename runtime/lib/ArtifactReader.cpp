//===- ArtifactReader.cpp - Validating and reading a .kiln file -----------===//
//
// Everything is checked once, at open, in the order that gives the most
// useful message: size, magic and version first (is this an artifact we
// read at all?), then checksums of the header and the section table (is the
// metadata intact?), then each section's bounds and payload checksum. Every
// offset is checked with subtraction rather than addition so that a forged
// u64 cannot overflow past a bound.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ArtifactFormat.h"
#include "kiln/runtime/Crc32.h"

#include "ByteIO.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kiln::runtime {

using namespace artifact;
using byteio::readLE;

static std::string hex32(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%08x", value);
  return buffer;
}

StatusOr<ArtifactReader> ArtifactReader::openFile(const std::string &path) {
  KILN_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  ArtifactReader reader;
  reader.file_ = std::move(file);
  reader.data_ = reader.file_.data();
  reader.size_ = reader.file_.size();
  Status status = reader.parse();
  if (!status.isOk())
    return Status(status.code(), "'" + path + "': " + status.message());
  return reader;
}

StatusOr<ArtifactReader> ArtifactReader::fromBytes(std::vector<uint8_t> bytes) {
  ArtifactReader reader;
  reader.bytes_ = std::move(bytes);
  reader.data_ = reader.bytes_.data();
  reader.size_ = reader.bytes_.size();
  KILN_RETURN_IF_ERROR(reader.parse());
  return reader;
}

/// Reads the name field: NUL-terminated within 32 bytes, NUL-padded.
static Status readName(const uint8_t *field, size_t index, std::string &out) {
  const char *chars = reinterpret_cast<const char *>(field);
  size_t length = strnlen(chars, kSectionNameSize);
  if (length == kSectionNameSize)
    return makeError(StatusCode::DataLoss, "section #", index,
                     ": name is not NUL-terminated");
  if (length == 0)
    return makeError(StatusCode::DataLoss, "section #", index,
                     ": name is empty");
  for (size_t i = length; i < kSectionNameSize; ++i)
    if (field[i] != 0)
      return makeError(StatusCode::DataLoss, "section #", index,
                       ": name padding is not zero");
  out.assign(chars, length);
  return Status::ok();
}

Status ArtifactReader::parse() {
  if (size_ < kHeaderSize)
    return makeError(StatusCode::DataLoss, "truncated artifact: ", size_,
                     " bytes, the header alone is ", kHeaderSize);
  const uint8_t *h = data_;
  if (std::memcmp(h + header::kMagicOffset, kMagic, sizeof(kMagic)) != 0)
    return makeError(
        StatusCode::InvalidArgument,
        "not a .kiln artifact: bad magic (expected \"KILNART\\0\")");
  version_ = readLE<uint32_t>(h + header::kVersionOffset);
  if (version_ != kFormatVersion)
    return makeError(StatusCode::InvalidArgument,
                     "unsupported .kiln format version ", version_,
                     " (this runtime reads version ", kFormatVersion, ")");
  uint32_t storedHeaderCrc = readLE<uint32_t>(h + header::kHeaderCrcOffset);
  uint32_t headerCrc = crc32(h, header::kHeaderCrcOffset);
  if (storedHeaderCrc != headerCrc)
    return makeError(StatusCode::DataLoss, "header checksum mismatch (stored ",
                     hex32(storedHeaderCrc), ", computed ", hex32(headerCrc),
                     ")");
  for (size_t i = header::kReservedOffset; i < header::kHeaderCrcOffset; ++i)
    if (h[i] != 0)
      return makeError(StatusCode::DataLoss,
                       "reserved header bytes are not zero");

  uint64_t fileSize = readLE<uint64_t>(h + header::kFileSizeOffset);
  if (fileSize > size_)
    return makeError(StatusCode::DataLoss, "truncated artifact: header says ",
                     fileSize, " bytes, the file has ", size_);
  if (fileSize < size_)
    return makeError(StatusCode::DataLoss, "artifact has ", size_,
                     " bytes but its header says ", fileSize,
                     " (trailing data)");

  uint32_t count = readLE<uint32_t>(h + header::kSectionCountOffset);
  uint64_t tableOffset = readLE<uint64_t>(h + header::kSectionTableOffset);
  uint32_t entrySize = readLE<uint32_t>(h + header::kSectionEntrySizeOffset);
  if (entrySize != kSectionEntrySize)
    return makeError(StatusCode::DataLoss, "section entry size ", entrySize,
                     " is not ", kSectionEntrySize);
  if (tableOffset < kHeaderSize || tableOffset > size_ ||
      count > (size_ - tableOffset) / kSectionEntrySize)
    return makeError(StatusCode::DataLoss, "section table (", count,
                     " entries at offset ", tableOffset,
                     ") is out of bounds of the ", size_, "-byte file");
  const uint8_t *table = data_ + tableOffset;
  const uint64_t tableEnd = tableOffset + uint64_t(count) * kSectionEntrySize;
  uint32_t storedTableCrc =
      readLE<uint32_t>(h + header::kSectionTableCrcOffset);
  uint32_t tableCrc = crc32(table, tableEnd - tableOffset);
  if (storedTableCrc != tableCrc)
    return makeError(
        StatusCode::DataLoss, "section table checksum mismatch (stored ",
        hex32(storedTableCrc), ", computed ", hex32(tableCrc), ")");

  sections_.clear();
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t *e = table + size_t(i) * kSectionEntrySize;
    SectionInfo info;
    KILN_RETURN_IF_ERROR(readName(e + entry::kNameOffset, i, info.name));
    info.kind =
        static_cast<SectionKind>(readLE<uint32_t>(e + entry::kKindOffset));
    info.offset = readLE<uint64_t>(e + entry::kPayloadOffset);
    info.size = readLE<uint64_t>(e + entry::kPayloadSizeOffset);
    info.crc32 = readLE<uint32_t>(e + entry::kPayloadCrcOffset);
    std::string where =
        "section '" + info.name + "' (#" + std::to_string(i) + ")";
    if (static_cast<uint32_t>(info.kind) == 0)
      return makeError(StatusCode::DataLoss, where, ": kind 0 is invalid");
    if (readLE<uint32_t>(e + entry::kFlagsOffset) != 0 ||
        readLE<uint32_t>(e + entry::kReservedOffset) != 0)
      return makeError(StatusCode::DataLoss, where,
                       ": reserved fields are not zero");
    for (const SectionInfo &other : sections_)
      if (other.name == info.name)
        return makeError(StatusCode::DataLoss, where, ": duplicate name");
    if (info.offset < tableEnd || info.offset > size_ ||
        info.size > size_ - info.offset)
      return makeError(StatusCode::DataLoss, where, ": payload of ", info.size,
                       " bytes at offset ", info.offset,
                       " is out of bounds (payloads lie in [", tableEnd, ", ",
                       size_, "))");
    if (info.offset % kPayloadAlignment != 0)
      return makeError(StatusCode::DataLoss, where, ": payload offset ",
                       info.offset, " is not ", kPayloadAlignment,
                       "-byte aligned");
    sections_.push_back(std::move(info));
  }

  // Overlapping payloads would let one section's bytes be read as another.
  std::vector<const SectionInfo *> byOffset;
  for (const SectionInfo &s : sections_)
    byOffset.push_back(&s);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SectionInfo *a, const SectionInfo *b) {
              return a->offset < b->offset;
            });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i]->offset < byOffset[i - 1]->offset + byOffset[i - 1]->size)
      return makeError(StatusCode::DataLoss, "sections '",
                       byOffset[i - 1]->name, "' and '", byOffset[i]->name,
                       "' overlap");
  // Padding is the only part no checksum covers; requiring zeros there
  // means any flipped byte in the file is detected.
  uint64_t gapStart = tableEnd;
  for (const SectionInfo *s : byOffset) {
    for (uint64_t b = gapStart; b < s->offset; ++b)
      if (data_[b] != 0)
        return makeError(StatusCode::DataLoss, "non-zero padding at byte ", b,
                         " before section '", s->name, "'");
    gapStart = s->offset + s->size;
  }
  for (uint64_t b = gapStart; b < size_; ++b)
    if (data_[b] != 0)
      return makeError(StatusCode::DataLoss, "non-zero byte ", b,
                       " after the last section");

  for (size_t i = 0; i < sections_.size(); ++i) {
    const SectionInfo &s = sections_[i];
    uint32_t crc = crc32(data_ + s.offset, s.size);
    if (crc != s.crc32)
      return makeError(StatusCode::DataLoss, "section '", s.name, "' (#", i,
                       "): payload checksum mismatch (stored ", hex32(s.crc32),
                       ", computed ", hex32(crc), ")");
  }
  return Status::ok();
}

const SectionInfo *ArtifactReader::findSection(std::string_view name) const {
  for (const SectionInfo &s : sections_)
    if (s.name == name)
      return &s;
  return nullptr;
}

const SectionInfo *ArtifactReader::findSection(SectionKind kind) const {
  for (const SectionInfo &s : sections_)
    if (s.kind == kind)
      return &s;
  return nullptr;
}

StatusOr<Span<const uint8_t>>
ArtifactReader::sectionData(std::string_view name) const {
  const SectionInfo *s = findSection(name);
  if (!s)
    return makeError(StatusCode::NotFound, "artifact has no section '", name,
                     "'");
  return payload(*s);
}

StatusOr<Span<const uint8_t>>
ArtifactReader::sectionData(SectionKind kind) const {
  const SectionInfo *s = findSection(kind);
  if (!s)
    return makeError(StatusCode::NotFound, "artifact has no ",
                     sectionKindName(kind), " section");
  return payload(*s);
}

} // namespace kiln::runtime
