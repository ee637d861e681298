//===- ArtifactFormat.h - Byte layout of the .kiln container --------------===//
//
// The constants that define a .kiln file; docs/Artifact.md is the prose
// version with the full table. All integers are little-endian.
//
//   [0, 64)                 header
//   [64, 64 + 64 * count)   section table, one 64-byte entry per section
//   then                    payloads, each starting at a multiple of 64
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACTFORMAT_H
#define KILN_RUNTIME_ARTIFACTFORMAT_H

#include <cstddef>
#include <cstdint>

namespace kiln::runtime::artifact {

/// "KILNART" and a NUL: a text tool shows the name, and the NUL stops the
/// file from passing for text.
constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'A', 'R', 'T', '\0'};
/// Bumped on any change a version-1 reader would misread.
constexpr uint32_t kFormatVersion = 1;

constexpr size_t kHeaderSize = 64;
constexpr size_t kSectionEntrySize = 64;
/// Payload alignment: a cache line, and enough for any element type, so
/// that a mapped file's weights and kernels can be used in place.
constexpr size_t kPayloadAlignment = 64;
/// Section names are NUL-padded in 32 bytes, so at most 31 characters.
constexpr size_t kSectionNameSize = 32;

/// Header field offsets.
namespace header {
constexpr size_t kMagicOffset = 0;             // char[8]
constexpr size_t kVersionOffset = 8;           // u32
constexpr size_t kSectionCountOffset = 12;     // u32
constexpr size_t kFileSizeOffset = 16;         // u64
constexpr size_t kSectionTableOffset = 24;     // u64
constexpr size_t kSectionEntrySizeOffset = 32; // u32
constexpr size_t kSectionTableCrcOffset = 36;  // u32
constexpr size_t kReservedOffset = 40;         // 20 zero bytes
constexpr size_t kHeaderCrcOffset = 60;        // u32, CRC-32 of [0, 60)
} // namespace header

/// Section-table entry field offsets.
namespace entry {
constexpr size_t kKindOffset = 0;         // u32
constexpr size_t kFlagsOffset = 4;        // u32, zero in version 1
constexpr size_t kNameOffset = 8;         // char[32]
constexpr size_t kPayloadOffset = 40;     // u64, from the start of the file
constexpr size_t kPayloadSizeOffset = 48; // u64
constexpr size_t kPayloadCrcOffset = 56;  // u32, CRC-32 of the payload
constexpr size_t kReservedOffset = 60;    // u32, zero
} // namespace entry

} // namespace kiln::runtime::artifact

#endif // KILN_RUNTIME_ARTIFACTFORMAT_H
