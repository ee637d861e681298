//===- WeightTable.cpp - The WeightRefs section ---------------------------===//

#include "kiln/runtime/WeightTable.h"

#include "ByteStream.h"

namespace kiln::runtime {

const char *weightStorageName(WeightStorage storage) {
  switch (storage) {
  case WeightStorage::Embedded:
    return "embedded";
  case WeightStorage::External:
    return "external";
  case WeightStorage::Dummy:
    return "dummy";
  }
  return "unknown";
}

int64_t WeightInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// "KWTB": the payload's first four bytes.
static constexpr uint32_t kTableMagic = 0x4254574bu;

std::vector<uint8_t> WeightTable::serialize() const {
  ByteWriter w;
  w.u32(kTableMagic);
  w.u32(kFormatVersion);
  w.u32(static_cast<uint32_t>(weights.size()));
  for (const WeightInfo &info : weights) {
    w.str(info.name);
    w.u8(static_cast<uint8_t>(info.dtype));
    w.u8(static_cast<uint8_t>(info.storage));
    w.u16(0);
    w.u32(static_cast<uint32_t>(info.shape.size()));
    for (int64_t d : info.shape)
      w.i64(d);
    switch (info.storage) {
    case WeightStorage::Embedded:
      w.u64(info.offset);
      w.u64(info.length);
      w.u32(info.crc32);
      break;
    case WeightStorage::External:
      w.str(info.path);
      w.u64(info.offset);
      w.u64(info.length);
      w.u32(info.crc32);
      break;
    case WeightStorage::Dummy:
      w.u64(info.seed);
      break;
    }
  }
  return w.take();
}

StatusOr<WeightTable> WeightTable::deserialize(Span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint32_t magic = r.u32("weight table magic");
  if (r.ok() && magic != kTableMagic)
    return makeError(StatusCode::DataLoss,
                     "weight table: bad magic (not a weight table payload)");
  uint32_t version = r.u32("weight table version");
  if (r.ok() && version != kFormatVersion)
    return makeError(StatusCode::Unimplemented,
                     "unsupported weight table version ", version,
                     " (this runtime reads version ", kFormatVersion, ")");
  WeightTable table;
  uint32_t count = r.count("weight count", 12);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    WeightInfo info;
    info.name = r.str("weight name");
    uint8_t dtype = r.u8("weight dtype"), storage = r.u8("weight storage");
    uint16_t reserved = r.u16("reserved bytes");
    if (r.ok() && (dtype < 1 || dtype > 6))
      r.fail("weight #" + std::to_string(i) + ": unknown dtype " +
             std::to_string(dtype));
    if (r.ok() && (storage < 1 || storage > 3))
      r.fail("weight #" + std::to_string(i) + ": unknown storage " +
             std::to_string(storage));
    if (r.ok() && reserved)
      r.fail("weight #" + std::to_string(i) + ": reserved bytes not zero");
    info.dtype = static_cast<DType>(dtype);
    info.storage = static_cast<WeightStorage>(storage);
    uint32_t rank = r.count("weight rank", 8);
    for (uint32_t d = 0; d < rank && r.ok(); ++d)
      info.shape.push_back(r.i64("weight dimension"));
    switch (info.storage) {
    case WeightStorage::Embedded:
      info.offset = r.u64("weight offset");
      info.length = r.u64("weight length");
      info.crc32 = r.u32("weight checksum");
      break;
    case WeightStorage::External:
      info.path = r.str("weight path");
      info.offset = r.u64("weight offset");
      info.length = r.u64("weight length");
      info.crc32 = r.u32("weight checksum");
      break;
    case WeightStorage::Dummy:
      info.seed = r.u64("weight seed");
      break;
    }
    table.weights.push_back(std::move(info));
  }
  if (!r.ok())
    return makeError(StatusCode::DataLoss, "weight table: ", r.error());
  if (!r.atEnd())
    return makeError(StatusCode::DataLoss, "weight table: ", r.remaining(),
                     " trailing bytes");
  // Embedded ranges are checked against the Weights section by the loader.
  KILN_RETURN_IF_ERROR(table.validate(UINT64_MAX));
  return table;
}

Status WeightTable::validate(uint64_t weightsSectionSize) const {
  constexpr int64_t kMaxDim = int64_t(1) << 40;
  constexpr int64_t kMaxElements = int64_t(1) << 48;
  for (size_t i = 0; i < weights.size(); ++i) {
    const WeightInfo &w = weights[i];
    auto fail = [&](const std::string &what) {
      return makeError(StatusCode::DataLoss, "weight table: weight #", i, " '",
                       w.name, "': ", what);
    };
    if (w.name.empty())
      return fail("empty name");
    // U8: the packed bytes of a quantized or 2:4-sparse weight.
    if (!isFloatDType(w.dtype) && w.dtype != DType::U8)
      return fail(std::string("dtype ") + dtypeName(w.dtype) +
                  " is neither a float type nor u8");
    if (w.shape.size() > 8)
      return fail("rank above 8");
    int64_t n = 1;
    for (int64_t d : w.shape) {
      if (d < 0 || d > kMaxDim)
        return fail("dimension " + std::to_string(d) + " out of range");
      n *= d ? d : 1;
      if (n > kMaxElements)
        return fail("too many elements");
    }
    if (w.storage == WeightStorage::Dummy)
      continue;
    if (w.length != static_cast<uint64_t>(w.numBytes()))
      return fail(std::to_string(w.length) + " bytes for a weight of " +
                  std::to_string(w.numBytes()));
    if (w.storage == WeightStorage::External && w.path.empty())
      return fail("external weight without a path");
    if (w.storage == WeightStorage::Embedded &&
        (w.offset > weightsSectionSize ||
         w.length > weightsSectionSize - w.offset))
      return fail("bytes [" + std::to_string(w.offset) + ", +" +
                  std::to_string(w.length) +
                  ") lie outside the Weights section of " +
                  std::to_string(weightsSectionSize) + " bytes");
    for (size_t j = 0; j < i; ++j)
      if (weights[j].name == w.name)
        return fail("duplicate name");
  }
  return Status::ok();
}

} // namespace kiln::runtime
