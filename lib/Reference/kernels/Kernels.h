//===- Kernels.h - Host reference kernels: registry and helpers -*- C++ -*-===//
//
// Internal to lib/Reference. A kernel computes the results of one op from
// the host tensors of its operands (in operand order; absent optional
// operands have no entry). Before the call, `outputs` holds one empty tensor
// per result whose `dtype` is the element type of the result's type; the
// kernel fills in shape and data. Kernels report errors with
// `op->emitOpError()` and return failure; they never abort.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_REFERENCE_KERNELS_H
#define KILN_LIB_REFERENCE_KERNELS_H

#include "kiln/Reference/HostTensor.h"

#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringMap.h"

#include <cstdint>
#include <vector>

namespace kiln {
namespace reference {

using Kernel = mlir::LogicalResult (*)(mlir::Operation *op,
                                       const std::vector<const HostTensor *> &inputs,
                                       std::vector<HostTensor> &outputs);

struct KernelRegistry {
  llvm::StringMap<Kernel> kernels;
  void add(llvm::StringRef opName, Kernel kernel) { kernels[opName] = kernel; }
};

/// The registry of all kernels (built once, on first use).
const KernelRegistry &getKernelRegistry();

void registerElementwiseKernels(KernelRegistry &registry);
void registerShapeKernels(KernelRegistry &registry);
void registerReductionKernels(KernelRegistry &registry);
void registerLinearAlgebraKernels(KernelRegistry &registry);
void registerModelKernels(KernelRegistry &registry);
void registerCacheKernels(KernelRegistry &registry);

//===----------------------------------------------------------------------===//
// Helpers shared by the kernels
//===----------------------------------------------------------------------===//

/// The tensor of operand `v` of `op` (nullptr when `v` is null, i.e. an
/// absent optional operand).
const HostTensor *inputFor(mlir::Operation *op,
                           const std::vector<const HostTensor *> &inputs,
                           mlir::Value v);

/// Normalizes a possibly negative axis into [0, rank); emits an error naming
/// `what` when out of range.
mlir::FailureOr<int64_t> normalizeAxis(mlir::Operation *op, int64_t axis,
                                       int64_t rank, llvm::StringRef what = "axis");

/// Numpy broadcast of two shapes; emits "cannot broadcast [2x3]f32 with
/// [4]f32" on failure.
mlir::FailureOr<std::vector<int64_t>>
broadcastShapes(mlir::Operation *op, const HostTensor &a, const HostTensor &b);
/// Same for raw shapes (messages show shapes without dtypes).
mlir::FailureOr<std::vector<int64_t>>
broadcastShapes(mlir::Operation *op, const std::vector<int64_t> &a,
                const std::vector<int64_t> &b);

/// Strides to read a tensor of shape `in` as if broadcast to `out` (0 along
/// broadcast dimensions). `in` must be broadcastable to `out`.
std::vector<int64_t> broadcastStrides(const std::vector<int64_t> &in,
                                      const std::vector<int64_t> &out);

/// Calls `f(outIndex, offsets)` for each element of a tensor of shape `out`
/// in row-major order, where offsets[j] = sum(index[d] * strides[j][d]) (+
/// bases[j]). strides[j] must have out.size() entries.
template <typename F>
void forEachStrided(const std::vector<int64_t> &out,
                    const std::vector<std::vector<int64_t>> &strides,
                    const std::vector<int64_t> &bases, F &&f) {
  int64_t n = numElementsOf(out);
  if (n == 0)
    return;
  size_t rank = out.size(), numIn = strides.size();
  std::vector<int64_t> index(rank, 0), offsets = bases;
  if (rank == 0) {
    f((int64_t)0, offsets.data());
    return;
  }
  int64_t inner = out[rank - 1];
  std::vector<int64_t> innerStride(numIn);
  for (size_t j = 0; j < numIn; ++j)
    innerStride[j] = strides[j][rank - 1];
  std::vector<int64_t> cur(numIn);
  for (int64_t k = 0; k < n; k += inner) {
    for (size_t j = 0; j < numIn; ++j)
      cur[j] = offsets[j];
    for (int64_t e = 0; e < inner; ++e) {
      f(k + e, cur.data());
      for (size_t j = 0; j < numIn; ++j)
        cur[j] += innerStride[j];
    }
    // Advance the odometer over the outer dimensions.
    for (int64_t d = (int64_t)rank - 2; d >= 0; --d) {
      for (size_t j = 0; j < numIn; ++j)
        offsets[j] += strides[j][d];
      if (++index[d] < out[d])
        break;
      for (size_t j = 0; j < numIn; ++j)
        offsets[j] -= strides[j][d] * out[d];
      index[d] = 0;
    }
  }
}

/// Fills `dst` (shape already set, storage allocated, same dtype as `src`)
/// with src[base + sum(index[d] * srcStrides[d])].
void copyStrided(const HostTensor &src, HostTensor &dst,
                 const std::vector<int64_t> &srcStrides, int64_t base = 0);

/// The elements of an integer (or float) tensor as int64 (for shapes, axes,
/// indices).
std::vector<int64_t> toInt64s(const HostTensor &t);

/// Fails unless `t` has exactly one element; the element as int64.
mlir::FailureOr<int64_t> scalarInt(mlir::Operation *op, const HostTensor &t,
                                   llvm::StringRef what);

/// Fails unless `t` holds floats (messages name `what`).
mlir::LogicalResult expectFloat(mlir::Operation *op, const HostTensor &t,
                                llvm::StringRef what);

/// Reads an optional float/integer attribute of `op` by name.
double floatAttrOr(mlir::Operation *op, llvm::StringRef name, double dflt);
int64_t intAttrOr(mlir::Operation *op, llvm::StringRef name, int64_t dflt);

/// A tensor of `dtype` and `shape`, zero-filled.
inline HostTensor makeTensor(DType dtype, std::vector<int64_t> shape) {
  return HostTensor(dtype, std::move(shape));
}

/// C = A * B for row-major fp32 matrices: A is M x K (row stride lda), B is
/// K x N (row stride ldb), C is M x N (row stride ldc) and is overwritten.
/// Accumulates in fp32 over k in order.
void gemm(const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
          int64_t ldc, int64_t M, int64_t K, int64_t N);

/// y[M, N] = x[M, K] @ W (+ bias[N]) where W is [K, N], or [N, K] when
/// `transposed`. Used by llm.linear and llm.gated_mlp.
void denseLayer(const float *x, int64_t M, int64_t K, const float *w,
                bool transposed, int64_t N, const float *bias, float *y);

} // namespace reference
} // namespace kiln

#endif // KILN_LIB_REFERENCE_KERNELS_H
