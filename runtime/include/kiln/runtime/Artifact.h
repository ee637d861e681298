//===- Artifact.h - Writing and reading the .kiln container ---------------===//
//
// A .kiln file is a versioned header, a table of named, typed sections and
// their 64-byte-aligned payloads, each with a CRC-32 (layout in
// ArtifactFormat.h and docs/Artifact.md). The writer builds one in memory;
// the reader maps a file (or takes bytes) and validates all of it up front,
// so that later accesses cannot read out of bounds: any corruption is a
// DataLoss (or InvalidArgument for a file that is not an artifact of this
// version) whose message names the section and what is wrong.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACT_H
#define KILN_RUNTIME_ARTIFACT_H

#include "kiln/runtime/MappedFile.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

/// What a section holds. Values are part of the format; unknown non-zero
/// kinds are carried through so a newer compiler can add kinds.
enum class SectionKind : uint32_t {
  Config = 1,     ///< ModelConfig as versioned key=value text.
  Kernels = 2,    ///< PTX / cubin blobs.
  LaunchPlan = 3, ///< The kernel launches of each entry point.
  BufferPlan = 4, ///< Static activation buffer offsets and sizes.
  Weights = 5,    ///< Embedded weights.
  WeightRefs = 6, ///< External weights: path, checksum and offset.
  Tokenizer = 7,  ///< A serialized SentencePiece model.
  /// Speculative decoding: the default K and the draft kind (text,
  /// SpeculationConfig); the draft model's own sections are named
  /// "draft.config", "draft.launch_plan", ...
  Speculation = 8,
};

/// "config", "kernels", ...; "unknown" for other values.
const char *sectionKindName(SectionKind kind);

/// One section-table entry as read back.
struct SectionInfo {
  SectionKind kind;
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

class ArtifactWriter {
public:
  /// Adds a section. InvalidArgument for kind 0, an empty name, a name of
  /// more than 31 bytes or containing NUL, or a name already used.
  Status addSection(SectionKind kind, std::string_view name,
                    std::vector<uint8_t> payload);
  Status addSection(SectionKind kind, std::string_view name,
                    std::string_view text);

  /// The whole file.
  std::vector<uint8_t> serialize() const;

  /// Writes the file next to `path` and renames it into place, so that a
  /// failed write never leaves a truncated artifact under the final name.
  Status writeFile(const std::string &path) const;

private:
  struct PendingSection {
    SectionKind kind;
    std::string name;
    std::vector<uint8_t> payload;
  };
  std::vector<PendingSection> sections_;
};

class ArtifactReader {
public:
  /// Maps and validates the artifact at `path`.
  static StatusOr<ArtifactReader> openFile(const std::string &path);
  /// Validates an artifact held in memory (tests, embedded artifacts).
  static StatusOr<ArtifactReader> fromBytes(std::vector<uint8_t> bytes);

  uint32_t formatVersion() const { return version_; }
  const std::vector<SectionInfo> &sections() const { return sections_; }

  /// nullptr if there is no section of that name.
  const SectionInfo *findSection(std::string_view name) const;
  /// The first section of `kind`, or nullptr.
  const SectionInfo *findSection(SectionKind kind) const;

  /// A section's payload (validated and checksummed at open).
  Span<const uint8_t> payload(const SectionInfo &section) const {
    return Span<const uint8_t>(data_ + section.offset, section.size);
  }
  /// NotFound ("artifact has no section 'x'") if it does not exist.
  StatusOr<Span<const uint8_t>> sectionData(std::string_view name) const;
  StatusOr<Span<const uint8_t>> sectionData(SectionKind kind) const;

private:
  ArtifactReader() = default;
  /// Validates data_/size_ and fills version_ and sections_.
  Status parse();

  MappedFile file_;
  std::vector<uint8_t> bytes_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  std::vector<SectionInfo> sections_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ARTIFACT_H
