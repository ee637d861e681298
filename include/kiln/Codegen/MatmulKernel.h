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
#include "llvm/ADT/SmallVector.h"

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
  /// K steps in flight: cp.async copies run stages - 1 steps ahead of the
  /// mma (the stages live in dynamic workgroup memory).
  int64_t stages = 4;
  /// CTAs along K (grid z), each over k / splitK; the last to finish an
  /// output tile sums the fp32 partials. For steps of few rows, where
  /// n / tileN CTAs alone would leave most SMs idle.
  int64_t splitK = 1;
  /// W is constant for the artifact's life (a weight): its first stages are
  /// copied before waiting for the previous kernel. False when the previous
  /// kernel writes it (quantized weights decoded into scratch); the name
  /// then ends in `_wdyn`.
  bool constantWeights = true;
  /// Hopper warpgroup tensor cores (buildWgmmaMatmulKernel): tileM 64 or
  /// 128 (one warpgroup of 4 warps a 64 rows), tileN a multiple of 16 up to
  /// 256, tileK 64, no split; warpsM/warpsN are ignored. sm_90a only.
  bool wgmma = false;
  /// wgmma for steps of few rows: W is wgmma's A operand (tileN features
  /// along M, 64 or 128: one warpgroup a 64) and the tile's tokens its N
  /// (tileM a multiple of 8 up to 256), so a 32-row step wastes no part of
  /// the m64 instruction; with splitK as the mma.sync few-row GEMM.
  bool swapAB = false;
  /// Further weights that share x (a layer's k and v after q): one launch
  /// computes every member, W_i [moreN[i], K] -> y_i [rows, moreN[i]]
  /// (arguments w1.., y1.. after w and y), each member's tiles along grid x
  /// after the previous member's. A batched decode step's k and v alone
  /// are too few tiles to fill the SMs, and so are a 512-token prefill's
  /// (16 CTAs for the 8B shape's). wgmma only, no bias; every member's N a
  /// multiple of tileN.
  llvm::SmallVector<int64_t, 2> moreN;

  /// N of every member, in order.
  llvm::SmallVector<int64_t, 3> allN() const {
    llvm::SmallVector<int64_t, 3> all = {n};
    all.append(moreN.begin(), moreN.end());
    return all;
  }
  /// Features over all members.
  int64_t totalN() const {
    int64_t total = n;
    for (int64_t m : moreN)
      total += m;
    return total;
  }
};

/// Appends `gpu.func @matmul_<dtype>_n<N>_k<K>[_bias][_o<out>][_t<tile>]
/// [_sk<S>](x, w, [bias,] y, step[, partials, counters]) kernel` to
/// `module`. x and y are whole [T, K] and [T, N] activations (rows indexed
/// by the kernel; T is step[0]); grid x covers N in tiles, grid y =
/// ceil(T / tileM) (the launch scales it), grid z the K splits. K steps are
/// copied into workgroup memory with cp.async, `stages - 1` ahead of the
/// mma (rows padded by 8 elements so ldmatrix is bank-conflict free);
/// fragments come from ldmatrix.x4 and accumulate in fp32 with m16n8k16
/// mma.sync. Rows past T are clamped on load and not stored. With split-K
/// the `partials` (fp32) and `counters` (zero before the first launch, left
/// zero) workspaces are per row tile. Emits an error and fails for shapes
/// the tiling cannot serve.
/// The mma.sync GEMM, or the wgmma one when options.wgmma is set.
mlir::FailureOr<KernelSpec> buildMatmulKernel(mlir::OpBuilder &builder,
                                              mlir::gpu::GPUModuleOp module,
                                              const MatmulOptions &options);

/// `matmul_<dtype>_n<N>_k<K>[_bias][_o<out>]_t<M>x<N>x64s<stages>_wg[_wdyn]
/// (x, w, [bias,] y, step)`, with moreN
/// `matmul_<dtype>_n<N>_<N1>.._k<K>..._wgt[_sk<S>](x, w, w1.., y, y1.., step,
/// ...)`: the same contract as the mma.sync GEMM (grid
/// n / tileN, y scaled by the rows a step has) on wgmma.mma_async, both
/// operands from 128-byte-swizzled workgroup memory filled by cp.async.
mlir::FailureOr<KernelSpec>
buildWgmmaMatmulKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                       const MatmulOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_MATMULKERNEL_H
