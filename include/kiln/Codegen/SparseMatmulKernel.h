//===- SparseMatmulKernel.h - 2:4 sparse tensor-core GEMM -------*- C++ -*-===//
//
// y[T, N] = x[T, K] . W[N, K]^T (+ bias[N]) for a W pruned to 2:4 along K
// and stored compressed (docs/Quantization.md, "Packed formats"): values
// [N, K/2] (the two kept entries of each group of 4, in order) and
// metadata [N, K/8] bytes (a nibble per group, its two 2-bit positions).
// Sparse tensor cores (mma.sp) skip the pruned half of the products: the
// sparse operand must be A, so the kernel computes y^T = W . x^T, W's rows
// (output features) as mma's M and the tokens as N.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_SPARSEMATMULKERNEL_H
#define KILN_CODEGEN_SPARSEMATMULKERNEL_H

#include "kiln/Codegen/KernelSpec.h"

#include "mlir/Support/LLVM.h"

namespace mlir {
class OpBuilder;
namespace gpu {
class GPUModuleOp;
} // namespace gpu
} // namespace mlir

namespace kiln {
namespace codegen {

struct SparseMatmulOptions {
  KernelDType dtype = KernelDType::BF16;
  /// Output features (rows of W) and input features (K, before pruning).
  int64_t n = 4096;
  int64_t k = 4096;
  bool bias = false;
  /// CTA tile: tileFeatures x tileTokens outputs, tileK (logical K) a step;
  /// warpsM x warpsN warps, each issuing (tileFeatures / warpsM / 16) x
  /// (tileTokens / warpsN / 8) mma.sp m16n8k32 per 32 of K.
  int64_t tileFeatures = 128;
  int64_t tileTokens = 128;
  int64_t tileK = 64;
  int64_t warpsM = 2;
  int64_t warpsN = 4;
  /// K steps in flight (cp.async), as in MatmulOptions.
  int64_t stages = 3;
};

/// Appends `gpu.func @smatmul_<dtype>_n<N>_k<K>[_bias](x, values, meta,
/// [bias,] y, step) kernel`: grid x covers N in tiles of tileFeatures,
/// grid y = ceil(T / tileTokens) (the launch scales it; T is step[0]).
/// Each K step copies the values tile [tileFeatures, tileK/2], the
/// metadata tile [tileFeatures, tileK/8] and the x tile [tileTokens,
/// tileK] into workgroup memory with cp.async, `stages - 1` steps ahead;
/// A fragments come from ldmatrix.x4 on the compressed values (the dense
/// A layout of the compressed 16 x 16), B fragments (8 tokens x 32 of K)
/// from one ldmatrix.x4 on x, the metadata word from workgroup memory.
mlir::FailureOr<KernelSpec>
buildSparseMatmulKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                        const SparseMatmulOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_SPARSEMATMULKERNEL_H
