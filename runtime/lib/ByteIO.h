//===- ByteIO.h - Little-endian integers in byte buffers (private) --------===//
//
// The artifact is defined byte by byte as little-endian, so it is read and
// written through these helpers rather than by casting structs: no padding,
// alignment or host-endianness assumptions.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_BYTEIO_H
#define KILN_RUNTIME_LIB_BYTEIO_H

#include <cstdint>
#include <cstring>
#include <vector>

namespace kiln::runtime::byteio {

template <typename T> inline T readLE(const uint8_t *p) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<T>(p[i]) << (8 * i);
  return value;
}

template <typename T> inline void writeLE(uint8_t *p, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<uint8_t>(value >> (8 * i));
}

} // namespace kiln::runtime::byteio

#endif // KILN_RUNTIME_LIB_BYTEIO_H
