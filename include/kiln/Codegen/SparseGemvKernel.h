//===- SparseGemvKernel.h - GEMV over 2:4 compressed weights ----*- C++ -*-===//
//
// y = x . W^T for the SparseLinear steps of decode: W pruned to 2:4 along
// K and stored compressed (values [N, K/2], metadata [N, K/8] bytes, a
// nibble per group of 4: its two kept positions), read as stored.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_SPARSEGEMVKERNEL_H
#define KILN_CODEGEN_SPARSEGEMVKERNEL_H

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

struct SparseGemvOptions {
  KernelDType dtype = KernelDType::BF16;
  int64_t n = 4096;
  int64_t k = 4096;
  bool bias = false;
  int64_t warpsPerBlock = 4;
  /// 16-byte value loads in flight per lane before their math.
  int64_t unroll = 4;
  /// Token rows per CTA (> 1: the row-chunked variant over [T, K] with a
  /// `step` argument, grid.y = ceil(T / tokens)).
  int64_t tokens = 1;
};

/// Appends `gpu.func @sgemv_<dtype>_n<N>_k<K>[_bias][_t<R>](x, values,
/// meta, [bias,] y[, step]) kernel`: one warp per output row; a lane step
/// covers 4 groups (16 bytes of values, 2 of metadata, 16 x entries) and
/// picks each kept value's x by its 2-bit position with selects; fp32
/// accumulation, a shuffle butterfly, lane 0 stores.
mlir::FailureOr<KernelSpec>
buildSparseGemvKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                      const SparseGemvOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_SPARSEGEMVKERNEL_H
