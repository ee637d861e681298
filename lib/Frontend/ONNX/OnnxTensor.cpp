//===- OnnxTensor.cpp - ONNX TensorProto decoding -------------------------===//
//
// One decoder for every place that reads ONNX tensors: initializers, Constant
// nodes, external data and the input_N.pb/output_N.pb test files.
//
//===----------------------------------------------------------------------===//

#include "kiln/Frontend/OnnxTensor.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <sstream>

using namespace kiln;

std::optional<DType> kiln::dtypeFromOnnx(int32_t onnxType) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT: return DType::F32;
  case onnx::TensorProto::FLOAT16: return DType::F16;
  case onnx::TensorProto::BFLOAT16: return DType::BF16;
  case onnx::TensorProto::DOUBLE: return DType::F64;
  case onnx::TensorProto::INT64: return DType::I64;
  case onnx::TensorProto::INT32: return DType::I32;
  case onnx::TensorProto::INT16: return DType::I16;
  case onnx::TensorProto::INT8: return DType::I8;
  case onnx::TensorProto::UINT8: return DType::U8;
  case onnx::TensorProto::UINT16: return DType::U16;
  case onnx::TensorProto::UINT32: return DType::U32;
  case onnx::TensorProto::UINT64: return DType::U64;
  case onnx::TensorProto::BOOL: return DType::Bool;
  default: return std::nullopt;
  }
}

static float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  int32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: normalize
      exp = 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (uint32_t)(exp + 127 - 15) << 23 | (mant << 13);
    }
  } else {
    bits = sign | (uint32_t)(exp + 127 - 15) << 23 | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static float bf16ToFloat(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static size_t elementBytes(DType t) {
  switch (t) {
  case DType::F64: case DType::I64: case DType::U64: return 8;
  case DType::F32: case DType::I32: case DType::U32: return 4;
  case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
  default: return 1;
  }
}

template <typename T> static T load(const char *p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool kiln::decodeRawBytes(const char *bytes, size_t size, HostTensor &out,
                          std::string &error) {
  int64_t n = out.numElements();
  size_t eb = elementBytes(out.dtype);
  if (size != (size_t)n * eb) {
    error = "tensor " + out.shapeString() + " needs " +
            std::to_string((size_t)n * eb) + " bytes, data has " +
            std::to_string(size);
    return false;
  }
  if (out.isFloat())
    out.f.resize(n);
  else
    out.i.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    const char *p = bytes + k * eb;
    switch (out.dtype) {
    case DType::F32: out.f[k] = load<float>(p); break;
    case DType::F64: out.f[k] = (float)load<double>(p); break;
    case DType::F16: out.f[k] = halfToFloat(load<uint16_t>(p)); break;
    case DType::BF16: out.f[k] = bf16ToFloat(load<uint16_t>(p)); break;
    case DType::I64: out.i[k] = load<int64_t>(p); break;
    case DType::U64: out.i[k] = (int64_t)load<uint64_t>(p); break;
    case DType::I32: out.i[k] = load<int32_t>(p); break;
    case DType::U32: out.i[k] = load<uint32_t>(p); break;
    case DType::I16: out.i[k] = load<int16_t>(p); break;
    case DType::U16: out.i[k] = load<uint16_t>(p); break;
    case DType::I8: out.i[k] = load<int8_t>(p); break;
    case DType::U8: out.i[k] = load<uint8_t>(p); break;
    case DType::Bool: out.i[k] = load<uint8_t>(p) != 0; break;
    }
  }
  return true;
}

/// Reads `length` bytes at `offset` of `path` (length < 0: to the end).
static bool readFileRange(const std::string &path, int64_t offset,
                          int64_t length, std::string &bytes,
                          std::string &error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    error = "cannot open external data file '" + path + "'";
    return false;
  }
  int64_t fileSize = in.tellg();
  if (length < 0)
    length = fileSize - offset;
  if (offset < 0 || offset + length > fileSize) {
    error = "external data range [" + std::to_string(offset) + ", " +
            std::to_string(offset + length) + ") is outside '" + path +
            "' (" + std::to_string(fileSize) + " bytes)";
    return false;
  }
  bytes.resize(length);
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (!in) {
    error = "short read from '" + path + "'";
    return false;
  }
  return true;
}

static std::string joinPath(const std::string &dir, const std::string &file) {
  if (file.empty() || file[0] == '/' || dir.empty())
    return file;
  return dir + "/" + file;
}

bool kiln::readExternalDataRef(const onnx::TensorProto &proto,
                               ExternalDataRef &ref, std::string &error) {
  auto parseCount = [&](const std::string &text, int64_t &out) {
    char *end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 0) {
      error = "tensor '" + proto.name() + "' has an invalid external data "
              "offset or length '" + text + "'";
      return false;
    }
    out = v;
    return true;
  };
  for (const auto &kv : proto.external_data()) {
    if (kv.key() == "location")
      ref.location = kv.value();
    else if (kv.key() == "offset" && !parseCount(kv.value(), ref.offset))
      return false;
    else if (kv.key() == "length" && !parseCount(kv.value(), ref.length))
      return false;
  }
  if (ref.location.empty()) {
    error = "tensor '" + proto.name() + "' has external data without a location";
    return false;
  }
  return true;
}

bool kiln::decodeTensorProto(const onnx::TensorProto &proto,
                             const std::string &baseDir, HostTensor &out,
                             std::string &error) {
  auto dtype = dtypeFromOnnx(proto.data_type());
  if (!dtype) {
    error = "tensor '" + proto.name() + "' has unsupported data type " +
            std::to_string(proto.data_type());
    return false;
  }
  out = HostTensor();
  out.dtype = *dtype;
  for (int64_t d : proto.dims()) {
    if (d < 0) {
      error = "tensor '" + proto.name() + "' has a negative dimension";
      return false;
    }
    out.shape.push_back(d);
  }
  int64_t n = out.numElements();
  // Guard against absurd sizes from corrupt files before allocating.
  if (n > (int64_t(1) << 34)) {
    error = "tensor '" + proto.name() + "' is implausibly large";
    return false;
  }

  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    ExternalDataRef ref;
    if (!readExternalDataRef(proto, ref, error))
      return false;
    if (ref.length < 0)
      ref.length = (int64_t)(n * elementBytes(out.dtype));
    std::string bytes;
    if (!readFileRange(joinPath(baseDir, ref.location), ref.offset, ref.length,
                       bytes, error)) {
      error = "tensor '" + proto.name() + "': " + error;
      return false;
    }
    return decodeRawBytes(bytes.data(), bytes.size(), out, error);
  }
  if (proto.has_raw_data()) {
    if (!decodeRawBytes(proto.raw_data().data(), proto.raw_data().size(), out,
                        error)) {
      error = "tensor '" + proto.name() + "': " + error;
      return false;
    }
    return true;
  }

  // Typed fields: which one holds the data depends on the data type.
  auto sizeError = [&](int64_t have) {
    error = "tensor '" + proto.name() + "' " + out.shapeString() + " has " +
            std::to_string(have) + " stored elements";
    return false;
  };
  HostTensor t(out.dtype, out.shape);
  switch (out.dtype) {
  case DType::F32:
    if (proto.float_data_size() != n) return sizeError(proto.float_data_size());
    for (int64_t k = 0; k < n; ++k) t.f[k] = proto.float_data(k);
    break;
  case DType::F64:
    if (proto.double_data_size() != n) return sizeError(proto.double_data_size());
    for (int64_t k = 0; k < n; ++k) t.f[k] = (float)proto.double_data(k);
    break;
  case DType::F16:
  case DType::BF16:
    if (proto.int32_data_size() != n) return sizeError(proto.int32_data_size());
    for (int64_t k = 0; k < n; ++k)
      t.f[k] = out.dtype == DType::F16 ? halfToFloat(proto.int32_data(k))
                                       : bf16ToFloat(proto.int32_data(k));
    break;
  case DType::I64:
    if (proto.int64_data_size() != n) return sizeError(proto.int64_data_size());
    for (int64_t k = 0; k < n; ++k) t.i[k] = proto.int64_data(k);
    break;
  case DType::U32:
  case DType::U64:
    if (proto.uint64_data_size() != n) return sizeError(proto.uint64_data_size());
    for (int64_t k = 0; k < n; ++k) t.i[k] = (int64_t)proto.uint64_data(k);
    break;
  default: // INT32, INT16, INT8, UINT8, UINT16, BOOL live in int32_data.
    if (proto.int32_data_size() != n) return sizeError(proto.int32_data_size());
    for (int64_t k = 0; k < n; ++k) t.set(k, proto.int32_data(k));
    break;
  }
  out = std::move(t);
  return true;
}

static std::string dirOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool kiln::readTensorProtoFile(const std::string &path, HostTensor &out,
                               std::string *name, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "'";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) {
    error = "'" + path + "' is not a serialized ONNX TensorProto";
    return false;
  }
  if (name)
    *name = proto.name();
  if (!decodeTensorProto(proto, dirOf(path), out, error)) {
    error = "'" + path + "': " + error;
    return false;
  }
  return true;
}

bool kiln::readModelProto(const std::string &path, onnx::ModelProto &model,
                          std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open ONNX model '" + path + "'";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  if (bytes.empty()) {
    error = "'" + path + "' is empty";
    return false;
  }
  if (!model.ParseFromString(bytes)) {
    error = "'" + path +
            "' is not a valid ONNX model (protobuf parse failed: truncated or "
            "corrupt file)";
    return false;
  }
  if (!model.has_graph()) {
    error = "'" + path + "' has no graph (not an ONNX model)";
    return false;
  }
  return true;
}
