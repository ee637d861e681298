//===- Crc32.h - CRC-32 (IEEE 802.3) of a byte range ----------------------===//
//
// The checksum of the .kiln artifact's header, section table and payloads:
// the zlib/PNG CRC-32 (reflected polynomial 0xEDB88320), so that any
// `crc32` tool can verify a section. Written here to keep the runtime free
// of dependencies.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CRC32_H
#define KILN_RUNTIME_CRC32_H

#include <cstddef>
#include <cstdint>

namespace kiln::runtime {

/// Extends `crc` (the CRC of the bytes before) over `size` more bytes;
/// crc32(data, n) is the CRC of a whole buffer. crc32("123456789") is
/// 0xCBF43926.
uint32_t crc32(const void *data, size_t size, uint32_t crc = 0);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_CRC32_H
