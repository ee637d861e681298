//===- MatmulKernel.h - Tensor-core GEMM for many-row linears -------------===//
//
// y[T, N] = x[T, K] . W[N, K]^T (+ bias[N]) on the tensor cores, for the
// steps with many rows (prefill, batched decode) where the gemv family would
// read W once per 8 rows. W is the same [N, K] row-major layout the gemv
// kernels read (both operands K-contiguous), so a model uploads it once.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_MATMULKERNEL_H
#define KILN_CODEGEN_MATMULKERNEL_H

#include "kiln/Codegen/KernelSpec.h"

#include "mlir/Support/LLVM.h"

#include <optional>

namespace mlir {
class OpBuilder;
namespace gpu {
class GPUModuleOp;
} // namespace gpu
} // namespace mlir

namespace kiln {
namespace codegen {

struct MatmulOptions {
  KernelDType dtype = KernelDType::F16;
  /// Output features (rows of W) and input features (columns of W, of x).
  int64_t n = 4096;
  int64_t k = 4096;
  /// Adds bias[n] (an extra `bias` argument after `w`) in fp32.
  bool bias = false;
  /// The type of y: `dtype` unless set (F32: logits).
  std::optional<KernelDType> outputDType;
  /// CTA tile: tileM token rows x tileN features, tileK deep per step; the
  /// warps split the tile warpsM x warpsN, each warp issuing
  /// (tileM / warpsM / 16) x (tileN / warpsN / 8) m16n8k16 mma.sync per 16
  /// of K. n must be a multiple of tileN, k of tileK.
  int64_t tileM = 128;
  int64_t tileN = 128;
  int64_t tileK = 32;
  int64_t warpsM = 2;
  int64_t warpsN = 4;
};

/// Appends `gpu.func @matmul_<dtype>_n<N>_k<K>[_bias][_o<out>](x, w,
/// [bias,] y, step) kernel` to `module`. x and y are whole [T, K] and [T, N]
/// activations (rows indexed by the kernel; T is step[0]); grid x covers N
/// in tiles, grid y = ceil(T / tileM) (the launch scales it). Each K step
/// stages the x and W tiles in workgroup memory (rows padded by 8 elements
/// so ldmatrix is bank-conflict free; the next tile's global loads are
/// issued before the current tile's mma so that their latency overlaps),
/// loads fragments with ldmatrix.x4 and accumulates in fp32 with
/// nvgpu.mma.sync (m16n8k16). Rows past T are clamped on load and not
/// stored. Emits an error and fails for shapes the tiling cannot serve.
mlir::FailureOr<KernelSpec> buildMatmulKernel(mlir::OpBuilder &builder,
                                              mlir::gpu::GPUModuleOp module,
                                              const MatmulOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_MATMULKERNEL_H
