//===- HostTensor.cpp - Tensors of the host reference executor ------------===//

#include "kiln/Reference/HostTensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace kiln;

bool kiln::isFloatDType(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
         t == DType::F64;
}

bool kiln::isUnsignedDType(DType t) {
  return t == DType::U8 || t == DType::U16 || t == DType::U32 ||
         t == DType::U64;
}

double kiln::dtypeLowest(DType t) {
  switch (t) {
  case DType::I64: return -9223372036854775808.0;
  case DType::I32: return -2147483648.0;
  case DType::I16: return -32768.0;
  case DType::I8: return -128.0;
  case DType::U8: case DType::U16: case DType::U32: case DType::U64:
  case DType::Bool: return 0.0;
  default: return -INFINITY;
  }
}

double kiln::dtypeHighest(DType t) {
  switch (t) {
  case DType::I64: return 9223372036854775807.0;
  case DType::I32: return 2147483647.0;
  case DType::I16: return 32767.0;
  case DType::I8: return 127.0;
  case DType::U8: return 255.0;
  case DType::U16: return 65535.0;
  case DType::U32: return 4294967295.0;
  case DType::U64: return 18446744073709551615.0;
  case DType::Bool: return 1.0;
  default: return INFINITY;
  }
}

const char *kiln::dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::F64: return "f64";
  case DType::I64: return "i64";
  case DType::I32: return "i32";
  case DType::I16: return "i16";
  case DType::I8: return "i8";
  case DType::U8: return "u8";
  case DType::U16: return "u16";
  case DType::U32: return "u32";
  case DType::U64: return "u64";
  case DType::Bool: return "bool";
  }
  return "?";
}

HostTensor::HostTensor(DType dtype, std::vector<int64_t> shape)
    : dtype(dtype), shape(std::move(shape)) {
  if (isFloat())
    f.assign(numElements(), 0.0f);
  else
    i.assign(numElements(), 0);
}

int64_t HostTensor::numElements() const { return numElementsOf(shape); }

int64_t kiln::numElementsOf(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Rounds a float to the nearest value representable in IEEE half precision.
static float roundToHalf(float v) {
  if (std::isnan(v) || std::isinf(v))
    return v;
  float a = std::fabs(v);
  if (a >= 65520.0f)
    return std::copysign(INFINITY, v);
  int exp;
  std::frexp(a, &exp); // a = m * 2^exp, m in [0.5, 1)
  // Half has 11 significant bits; subnormals below 2^-14 have a fixed step.
  int e = std::max(exp - 11, -24);
  float step = std::ldexp(1.0f, e);
  return std::copysign(std::nearbyint(a / step) * step, v);
}

/// Rounds a float to bfloat16 (round to nearest even on the top 16 bits).
static float roundToBF16(float v) {
  if (std::isnan(v))
    return v;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  uint32_t lsb = (bits >> 16) & 1;
  bits += 0x7fff + lsb;
  bits &= 0xffff0000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

/// Wraps an integer to `bits` bits, signed or not, as a C cast does.
static int64_t wrapInt(int64_t v, int bits, bool isSigned) {
  if (bits == 64)
    return v;
  uint64_t mask = (uint64_t(1) << bits) - 1;
  uint64_t u = (uint64_t)v & mask;
  if (isSigned && (u >> (bits - 1)))
    return (int64_t)(u | ~mask);
  return (int64_t)u;
}

void HostTensor::set(int64_t k, double v) {
  switch (dtype) {
  case DType::F32:
  case DType::F64: f[k] = (float)v; return;
  case DType::F16: f[k] = roundToHalf((float)v); return;
  case DType::BF16: f[k] = roundToBF16((float)v); return;
  case DType::Bool: i[k] = v != 0.0; return;
  default: break;
  }
  // Float to integer truncates toward zero as ONNX Cast does.
  int64_t t = std::isfinite(v) ? (int64_t)v : 0;
  switch (dtype) {
  case DType::I32: i[k] = wrapInt(t, 32, true); return;
  case DType::I16: i[k] = wrapInt(t, 16, true); return;
  case DType::I8: i[k] = wrapInt(t, 8, true); return;
  case DType::U8: i[k] = wrapInt(t, 8, false); return;
  case DType::U16: i[k] = wrapInt(t, 16, false); return;
  case DType::U32: i[k] = wrapInt(t, 32, false); return;
  default: i[k] = t; return;
  }
}

void HostTensor::setInt(int64_t k, int64_t v) {
  switch (dtype) {
  case DType::F32:
  case DType::F64:
  case DType::F16:
  case DType::BF16:
    set(k, (double)v);
    return;
  case DType::Bool: i[k] = v != 0; return;
  case DType::I32: i[k] = wrapInt(v, 32, true); return;
  case DType::I16: i[k] = wrapInt(v, 16, true); return;
  case DType::I8: i[k] = wrapInt(v, 8, true); return;
  case DType::U8: i[k] = wrapInt(v, 8, false); return;
  case DType::U16: i[k] = wrapInt(v, 16, false); return;
  case DType::U32: i[k] = wrapInt(v, 32, false); return;
  case DType::I64:
  case DType::U64: i[k] = v; return;
  }
}

std::string kiln::shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? "x" : "") + std::to_string(shape[d]);
  return s + "]";
}

std::string HostTensor::shapeString() const {
  return kiln::shapeString(shape) + dtypeName(dtype);
}

HostTensor HostTensor::fromFloats(std::vector<int64_t> shape,
                                  const std::vector<float> &values,
                                  DType dtype) {
  HostTensor t(dtype, std::move(shape));
  for (int64_t k = 0; k < t.numElements() && k < (int64_t)values.size(); ++k)
    t.set(k, values[k]);
  return t;
}

HostTensor HostTensor::fromInts(std::vector<int64_t> shape,
                                const std::vector<int64_t> &values,
                                DType dtype) {
  HostTensor t(dtype, std::move(shape));
  for (int64_t k = 0; k < t.numElements() && k < (int64_t)values.size(); ++k)
    t.setInt(k, values[k]);
  return t;
}

HostTensor HostTensor::scalar(double value, DType dtype) {
  HostTensor t(dtype, {});
  t.set(0, value);
  return t;
}

std::vector<int64_t> kiln::stridesOf(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = (int64_t)shape.size() - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}
