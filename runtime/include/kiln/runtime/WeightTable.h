//===- WeightTable.h - Names, types and locations of the weights ----------===//
//
// The WeightRefs section: one entry per weight with its dtype, shape and
// where its bytes are: embedded in the Weights section, a byte range of a
// file next to the artifact (with the CRC-32 of that range), or nowhere
// (dummy: filled with random values at load, for layout-only artifacts).
// Encoding in docs/Artifact.md.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_WEIGHTTABLE_H
#define KILN_RUNTIME_WEIGHTTABLE_H

#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::runtime {

/// Values are part of the format.
enum class WeightStorage : uint8_t { Embedded = 1, External = 2, Dummy = 3 };
const char *weightStorageName(WeightStorage storage);

struct WeightInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  WeightStorage storage = WeightStorage::Dummy;
  /// External: the file, relative to the artifact's directory (or absolute).
  std::string path;
  /// Embedded: offset into the Weights section; External: into the file.
  uint64_t offset = 0;
  /// Bytes: numElements(shape) * dtypeBytes(dtype) (Embedded, External).
  uint64_t length = 0;
  /// CRC-32 of the bytes (Embedded, External).
  uint32_t crc32 = 0;
  /// Dummy: the seed of the random values.
  uint64_t seed = 0;

  int64_t numElements() const;
  int64_t numBytes() const { return numElements() * dtypeBytes(dtype); }
};

class WeightTable {
public:
  static constexpr uint32_t kFormatVersion = 1;

  std::vector<WeightInfo> weights;

  size_t size() const { return weights.size(); }
  const WeightInfo &operator[](size_t i) const { return weights[i]; }

  std::vector<uint8_t> serialize() const;
  /// Parses and validates a WeightRefs payload: DataLoss for malformed
  /// bytes or inconsistent entries (a length that is not the shape's byte
  /// size, a negative dimension, an empty path), Unimplemented for another
  /// version.
  static StatusOr<WeightTable> deserialize(Span<const uint8_t> bytes);

  /// The consistency rules deserialize applies (also for tables built in
  /// memory); `weightsSectionSize` bounds embedded ranges.
  Status validate(uint64_t weightsSectionSize) const;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_WEIGHTTABLE_H
