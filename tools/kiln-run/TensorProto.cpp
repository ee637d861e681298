//===- TensorProto.cpp - ONNX TensorProto wire-format decoder -------------===//

#include "TensorProto.h"

#include "kiln/runtime/Half.h"
#include "kiln/runtime/MappedFile.h"

#include <cstring>

namespace kiln::tools {

using runtime::makeError;
using runtime::Status;
using runtime::StatusCode;
using runtime::StatusOr;

namespace {

// onnx.TensorProto.DataType values.
enum : int32_t {
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUint32 = 12,
  kUint64 = 13,
  kBfloat16 = 16,
};

class Wire {
public:
  Wire(const uint8_t *data, size_t size) : p(data), end(data + size) {}
  bool done() const { return p >= end; }
  bool ok() const { return good; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) {
        good = false;
        return 0;
      }
      uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80))
        return v;
    }
    good = false;
    return 0;
  }
  /// A length-delimited field's bytes.
  bool bytes(const uint8_t *&data, size_t &size) {
    uint64_t n = varint();
    if (!good || n > static_cast<uint64_t>(end - p)) {
      good = false;
      return false;
    }
    data = p;
    size = n;
    p += n;
    return true;
  }
  bool skip(int wireType) {
    switch (wireType) {
    case 0:
      varint();
      return good;
    case 1:
      return advance(8);
    case 2: {
      const uint8_t *d;
      size_t n;
      return bytes(d, n);
    }
    case 5:
      return advance(4);
    default:
      good = false;
      return false;
    }
  }
  bool fixed32(uint32_t &v) {
    if (end - p < 4)
      return good = false;
    std::memcpy(&v, p, 4);
    p += 4;
    return true;
  }
  bool fixed64(uint64_t &v) {
    if (end - p < 8)
      return good = false;
    std::memcpy(&v, p, 8);
    p += 8;
    return true;
  }

private:
  bool advance(size_t n) {
    if (static_cast<size_t>(end - p) < n)
      return good = false;
    p += n;
    return true;
  }
  const uint8_t *p, *end;
  bool good = true;
};

} // namespace

bool Tensor::isFloat() const {
  return dataType == kFloat || dataType == kFloat16 || dataType == kDouble ||
         dataType == kBfloat16;
}

int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

StatusOr<Tensor> readTensorProto(const std::string &path) {
  auto file = runtime::MappedFile::open(path);
  if (!file.isOk())
    return file.status();
  Tensor t;
  const uint8_t *raw = nullptr;
  size_t rawSize = 0;
  std::vector<double> doubles;
  Wire w(file->data(), file->size());
  auto bad = [&](const char *what) {
    return makeError(StatusCode::DataLoss, "'", path,
                     "' is not a valid TensorProto: ", what);
  };
  while (!w.done()) {
    uint64_t key = w.varint();
    if (!w.ok())
      return bad("truncated field key");
    int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    // Packed repeated scalars arrive as one length-delimited field, or one
    // value per key.
    auto readPacked = [&](auto &&onValue, int scalarType) -> bool {
      if (type == 2) {
        const uint8_t *d;
        size_t n;
        if (!w.bytes(d, n))
          return false;
        Wire inner(d, n);
        while (!inner.done()) {
          if (scalarType == 0)
            onValue(inner.varint());
          else if (scalarType == 5) {
            uint32_t v;
            if (!inner.fixed32(v))
              return false;
            onValue(v);
          } else {
            uint64_t v;
            if (!inner.fixed64(v))
              return false;
            onValue(v);
          }
          if (!inner.ok())
            return false;
        }
        return true;
      }
      if (type != scalarType)
        return false;
      if (scalarType == 0) {
        onValue(w.varint());
      } else if (scalarType == 5) {
        uint32_t v;
        if (!w.fixed32(v))
          return false;
        onValue(v);
      } else {
        uint64_t v;
        if (!w.fixed64(v))
          return false;
        onValue(v);
      }
      return w.ok();
    };
    bool ok = true;
    switch (field) {
    case 1: // dims
      ok = readPacked(
          [&](uint64_t v) { t.dims.push_back(static_cast<int64_t>(v)); }, 0);
      break;
    case 2: // data_type
      ok = type == 0;
      t.dataType = static_cast<int32_t>(w.varint());
      break;
    case 4: // float_data
      ok = readPacked(
          [&](uint64_t v) {
            uint32_t u = static_cast<uint32_t>(v);
            float f;
            std::memcpy(&f, &u, 4);
            t.floats.push_back(f);
          },
          5);
      break;
    case 5: // int32_data (also fp16/bf16 bits)
      ok = readPacked(
          [&](uint64_t v) {
            t.ints.push_back(static_cast<int32_t>(static_cast<uint32_t>(v)));
          },
          0);
      break;
    case 7: // int64_data
      ok = readPacked(
          [&](uint64_t v) { t.ints.push_back(static_cast<int64_t>(v)); }, 0);
      break;
    case 8: { // name
      const uint8_t *d;
      size_t n;
      ok = type == 2 && w.bytes(d, n);
      if (ok)
        t.name.assign(reinterpret_cast<const char *>(d), n);
      break;
    }
    case 9: // raw_data
      ok = type == 2 && w.bytes(raw, rawSize);
      break;
    case 10: // double_data
      ok = readPacked(
          [&](uint64_t v) {
            double d;
            std::memcpy(&d, &v, 8);
            doubles.push_back(d);
          },
          1);
      break;
    case 14: // data_location
      ok = type == 0;
      if (w.varint() != 0)
        return bad("external data is not supported");
      break;
    default:
      ok = w.skip(type);
      break;
    }
    if (!ok || !w.ok())
      return bad("malformed field");
  }
  for (int64_t d : t.dims)
    if (d < 0)
      return bad("negative dimension");
  int64_t n = t.numElements();
  if (raw) {
    int64_t size = 0;
    switch (t.dataType) {
    case kFloat:
    case kInt32:
    case kUint32:
      size = 4;
      break;
    case kInt64:
    case kUint64:
    case kDouble:
      size = 8;
      break;
    case kFloat16:
    case kBfloat16:
    case kInt16:
    case kUint16:
      size = 2;
      break;
    case kInt8:
    case kUint8:
    case kBool:
      size = 1;
      break;
    default:
      return bad("unsupported data type");
    }
    if (static_cast<int64_t>(rawSize) != n * size)
      return bad("raw_data size does not match the dims");
    for (int64_t k = 0; k < n; ++k) {
      const uint8_t *e = raw + k * size;
      switch (t.dataType) {
      case kFloat: {
        float f;
        std::memcpy(&f, e, 4);
        t.floats.push_back(f);
        break;
      }
      case kDouble: {
        double d;
        std::memcpy(&d, e, 8);
        t.floats.push_back(static_cast<float>(d));
        break;
      }
      case kFloat16:
      case kBfloat16: {
        uint16_t h;
        std::memcpy(&h, e, 2);
        t.floats.push_back(t.dataType == kFloat16 ? runtime::halfToFloat(h)
                                                  : runtime::bf16ToFloat(h));
        break;
      }
      case kInt32: {
        int32_t v;
        std::memcpy(&v, e, 4);
        t.ints.push_back(v);
        break;
      }
      case kUint32: {
        uint32_t v;
        std::memcpy(&v, e, 4);
        t.ints.push_back(v);
        break;
      }
      case kInt64:
      case kUint64: {
        int64_t v;
        std::memcpy(&v, e, 8);
        t.ints.push_back(v);
        break;
      }
      case kInt16: {
        int16_t v;
        std::memcpy(&v, e, 2);
        t.ints.push_back(v);
        break;
      }
      case kUint16: {
        uint16_t v;
        std::memcpy(&v, e, 2);
        t.ints.push_back(v);
        break;
      }
      case kInt8:
        t.ints.push_back(static_cast<int8_t>(*e));
        break;
      default:
        t.ints.push_back(*e);
        break;
      }
    }
  } else {
    for (double d : doubles)
      t.floats.push_back(static_cast<float>(d));
    if (t.dataType == kFloat16 || t.dataType == kBfloat16) {
      for (int64_t v : t.ints)
        t.floats.push_back(t.dataType == kFloat16
                               ? runtime::halfToFloat(static_cast<uint16_t>(v))
                               : runtime::bf16ToFloat(static_cast<uint16_t>(v)));
      t.ints.clear();
    }
  }
  int64_t have = t.isFloat() ? t.floats.size() : t.ints.size();
  if (have != n)
    return bad("element count does not match the dims");
  return t;
}

} // namespace kiln::tools
