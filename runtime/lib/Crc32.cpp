//===- Crc32.cpp - CRC-32 (IEEE 802.3), one table lookup per byte ---------===//
//
// A byte-at-a-time table is ~0.5 GB/s, enough for checking weights once at
// load; slicing-by-8 can replace it if load time ever matters.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Crc32.h"

#include <array>

namespace kiln::runtime {

static constexpr std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

static constexpr std::array<uint32_t, 256> kCrcTable = makeCrcTable();

uint32_t crc32(const void *data, size_t size, uint32_t crc) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = kCrcTable[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

} // namespace kiln::runtime
