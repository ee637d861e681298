//===- HostTensor.h - Tensors of the host reference executor ----*- C++ -*-===//
//
// The host reference executor computes in fp32 (floats) and int64 (integers
// and booleans) whatever the stored element type: it is the oracle that
// faster backends are checked against, so it favours plain, readable code.
// `dtype` remembers the logical element type so that casts, comparisons with
// the reference outputs and integer wrap-around follow ONNX.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_HOSTTENSOR_H
#define KILN_REFERENCE_HOSTTENSOR_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, U16, U32, U64, Bool };

/// True for the floating-point element types (stored in `HostTensor::f`).
bool isFloatDType(DType t);
/// True for the unsigned integer types (U8..U64; not Bool).
bool isUnsignedDType(DType t);
/// The smallest and largest values of an integer dtype (for floats: -inf and
/// +inf), as ONNX uses for reductions over empty sets.
double dtypeLowest(DType t);
double dtypeHighest(DType t);
/// A short name such as "f32" or "i64", for messages.
const char *dtypeName(DType t);

struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<float> f;   // elements when isFloatDType(dtype)
  std::vector<int64_t> i; // elements otherwise (booleans are 0/1)

  HostTensor() = default;
  HostTensor(DType dtype, std::vector<int64_t> shape);

  bool isFloat() const { return isFloatDType(dtype); }
  int64_t rank() const { return (int64_t)shape.size(); }
  int64_t numElements() const;
  /// Element `k` (row-major) as a double, whatever the storage.
  double get(int64_t k) const { return isFloat() ? f[k] : (double)i[k]; }
  /// Sets element `k` from a double, rounding/wrapping to `dtype`.
  void set(int64_t k, double v);
  /// Element `k` as an integer (floats truncate toward zero).
  int64_t getInt(int64_t k) const { return isFloat() ? (int64_t)f[k] : i[k]; }
  /// Sets element `k` from an integer, wrapping to `dtype` exactly (no trip
  /// through double, so int64 keeps all its bits).
  void setInt(int64_t k, int64_t v);
  std::string shapeString() const;

  /// Convenience constructors (values are rounded/wrapped to `dtype`).
  static HostTensor fromFloats(std::vector<int64_t> shape,
                               const std::vector<float> &values,
                               DType dtype = DType::F32);
  static HostTensor fromInts(std::vector<int64_t> shape,
                             const std::vector<int64_t> &values,
                             DType dtype = DType::I64);
  /// A rank-0 tensor.
  static HostTensor scalar(double value, DType dtype);
};

/// The product of the dimensions of a shape (1 for rank 0).
int64_t numElementsOf(const std::vector<int64_t> &shape);
/// "[2x3]" (no dtype), for messages.
std::string shapeString(const std::vector<int64_t> &shape);

/// Row-major strides of a shape.
std::vector<int64_t> stridesOf(const std::vector<int64_t> &shape);

} // namespace kiln

#endif // KILN_REFERENCE_HOSTTENSOR_H
