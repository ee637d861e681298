//===- Crc32.cpp - CRC-32 (IEEE 802.3), slicing by 8 -----------------------===//
//
// Eight bytes per step through eight derived tables (Intel's slicing-by-8),
// a few GB/s without special instructions: the compiler checksums every
// referenced weight and the runtime verifies them at load, so for large
// models this is on the load path.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Crc32.h"

#include <array>
#include <cstring>

namespace kiln::runtime {

using Tables = std::array<std::array<uint32_t, 256>, 8>;

static constexpr Tables makeCrcTables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (int s = 1; s < 8; ++s)
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  return t;
}

static constexpr Tables kCrcTables = makeCrcTables();

uint32_t crc32(const void *data, size_t size, uint32_t crc) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  crc = ~crc;
  // Eight bytes at a time, read little-endian byte by byte so that neither
  // alignment nor host byte order matters.
  while (size >= 8) {
    uint32_t lo = crc ^ (uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 |
                         uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24);
    uint32_t hi = uint32_t(bytes[4]) | uint32_t(bytes[5]) << 8 |
                  uint32_t(bytes[6]) << 16 | uint32_t(bytes[7]) << 24;
    crc = kCrcTables[7][lo & 0xFF] ^ kCrcTables[6][(lo >> 8) & 0xFF] ^
          kCrcTables[5][(lo >> 16) & 0xFF] ^ kCrcTables[4][lo >> 24] ^
          kCrcTables[3][hi & 0xFF] ^ kCrcTables[2][(hi >> 8) & 0xFF] ^
          kCrcTables[1][(hi >> 16) & 0xFF] ^ kCrcTables[0][hi >> 24];
    bytes += 8;
    size -= 8;
  }
  for (size_t i = 0; i < size; ++i)
    crc = kCrcTables[0][(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

} // namespace kiln::runtime
