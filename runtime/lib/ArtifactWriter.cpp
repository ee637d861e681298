//===- ArtifactWriter.cpp - Building a .kiln file -------------------------===//

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ArtifactFormat.h"
#include "kiln/runtime/Crc32.h"

#include "ByteIO.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kiln::runtime {

using namespace artifact;
using byteio::writeLE;

const char *sectionKindName(SectionKind kind) {
  switch (kind) {
  case SectionKind::Config:
    return "config";
  case SectionKind::Kernels:
    return "kernels";
  case SectionKind::LaunchPlan:
    return "launch_plan";
  case SectionKind::BufferPlan:
    return "buffer_plan";
  case SectionKind::Weights:
    return "weights";
  case SectionKind::WeightRefs:
    return "weight_refs";
  case SectionKind::Tokenizer:
    return "tokenizer";
  case SectionKind::Speculation:
    return "speculation";
  }
  return "unknown";
}

static uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

Status ArtifactWriter::addSection(SectionKind kind, std::string_view name,
                                  std::vector<uint8_t> payload) {
  if (static_cast<uint32_t>(kind) == 0)
    return makeError(StatusCode::InvalidArgument, "section '", name,
                     "': kind 0 is reserved");
  if (name.empty())
    return makeError(StatusCode::InvalidArgument,
                     "a section name must not be empty");
  if (name.size() >= kSectionNameSize)
    return makeError(StatusCode::InvalidArgument, "section name '", name,
                     "' is longer than ", kSectionNameSize - 1, " bytes");
  if (name.find('\0') != std::string_view::npos)
    return makeError(StatusCode::InvalidArgument,
                     "a section name must not contain NUL");
  for (const PendingSection &s : sections_)
    if (s.name == name)
      return makeError(StatusCode::InvalidArgument, "duplicate section '", name,
                       "'");
  sections_.push_back(
      PendingSection{kind, std::string(name), std::move(payload)});
  return Status::ok();
}

Status ArtifactWriter::addSection(SectionKind kind, std::string_view name,
                                  std::string_view text) {
  return addSection(kind, name, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<uint8_t> ArtifactWriter::serialize() const {
  const uint64_t tableOffset = kHeaderSize;
  const uint64_t tableSize = sections_.size() * kSectionEntrySize;
  uint64_t offset = alignUp(tableOffset + tableSize, kPayloadAlignment);
  std::vector<uint64_t> offsets;
  for (const PendingSection &s : sections_) {
    offsets.push_back(offset);
    offset = alignUp(offset + s.payload.size(), kPayloadAlignment);
  }
  // The file ends right after the last payload, not at its padding.
  uint64_t fileSize = sections_.empty()
                          ? tableOffset + tableSize
                          : offsets.back() + sections_.back().payload.size();

  std::vector<uint8_t> out(fileSize, 0);
  for (size_t i = 0; i < sections_.size(); ++i) {
    const PendingSection &s = sections_[i];
    uint8_t *e = out.data() + tableOffset + i * kSectionEntrySize;
    writeLE<uint32_t>(e + entry::kKindOffset, static_cast<uint32_t>(s.kind));
    std::memcpy(e + entry::kNameOffset, s.name.data(), s.name.size());
    writeLE<uint64_t>(e + entry::kPayloadOffset, offsets[i]);
    writeLE<uint64_t>(e + entry::kPayloadSizeOffset, s.payload.size());
    writeLE<uint32_t>(e + entry::kPayloadCrcOffset,
                      crc32(s.payload.data(), s.payload.size()));
    if (!s.payload.empty())
      std::memcpy(out.data() + offsets[i], s.payload.data(), s.payload.size());
  }

  uint8_t *h = out.data();
  std::memcpy(h + header::kMagicOffset, kMagic, sizeof(kMagic));
  writeLE<uint32_t>(h + header::kVersionOffset, kFormatVersion);
  writeLE<uint32_t>(h + header::kSectionCountOffset,
                    static_cast<uint32_t>(sections_.size()));
  writeLE<uint64_t>(h + header::kFileSizeOffset, fileSize);
  writeLE<uint64_t>(h + header::kSectionTableOffset, tableOffset);
  writeLE<uint32_t>(h + header::kSectionEntrySizeOffset, kSectionEntrySize);
  writeLE<uint32_t>(h + header::kSectionTableCrcOffset,
                    crc32(out.data() + tableOffset, tableSize));
  writeLE<uint32_t>(h + header::kHeaderCrcOffset,
                    crc32(h, header::kHeaderCrcOffset));
  return out;
}

Status ArtifactWriter::writeFile(const std::string &path) const {
  std::vector<uint8_t> bytes = serialize();
  std::string tmpPath = path + ".tmp";
  std::FILE *f = std::fopen(tmpPath.c_str(), "wb");
  if (!f)
    return fileError("create", tmpPath, errno);
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmpPath.c_str());
    return fileError("write", tmpPath, err ? err : EIO);
  }
  if (std::rename(tmpPath.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmpPath.c_str());
    return fileError("rename into", path, err);
  }
  return Status::ok();
}

} // namespace kiln::runtime
