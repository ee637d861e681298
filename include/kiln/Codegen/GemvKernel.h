//===- GemvKernel.h - Decode linear (GEMV) kernel generator -----*- C++ -*-===//

#ifndef KILN_CODEGEN_GEMVKERNEL_H
#define KILN_CODEGEN_GEMVKERNEL_H

#include "kiln/Codegen/KernelSpec.h"
#include "kiln/Codegen/PagedCacheLayout.h"

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

struct GemvOptions {
  KernelDType dtype = KernelDType::F16;
  /// The type of y (and of the bias): `dtype` unless set; F32 keeps the
  /// fp32 accumulation (logits).
  std::optional<KernelDType> outputDType;
  /// Output features (rows of W).
  int64_t n = 4096;
  /// Input features (columns of W, length of x).
  int64_t k = 4096;
  /// Warps per thread block; each warp computes `rowsPerWarp` outputs.
  int64_t warpsPerBlock = 4;
  int64_t rowsPerWarp = 1;
  /// K steps (one 128-bit vector per lane each) whose loads are issued
  /// together before their FMAs; a row with at most this many steps is
  /// unrolled completely, a longer one loops over chunks of this size.
  int64_t unroll = 8;
  /// Adds bias[n] (an extra `bias` argument after `w`) to each output in
  /// fp32 before the narrowing store: Linear's bias fused into the
  /// epilogue instead of a second pass over y.
  bool bias = false;
  /// Token rows one CTA computes (1: the classic gemv of one row, launched
  /// once per row). With R > 1 every weight vector a warp loads feeds R
  /// rows of x: x is the whole [T, K] activation, y the whole [T, N], a
  /// `step` argument (i32 [4]: T, N, M, P of the step) says how many rows
  /// exist, and grid.y = ceil(T / R) chunks (rows past T are clamped on
  /// load and skipped on store). This is what makes batched decode and
  /// prefill read W once per R rows instead of once per row.
  int64_t tokens = 1;
  /// Gated MLP's first half in one pass (no bias): a second weight `w_up`
  /// [N, K] after `w`; each warp computes row n of both, rounds them to
  /// `dtype` (as the unfused gemvs store them) and writes y[n] = silu(gate)
  /// * up. One launch instead of gate gemv, up gemv and silu_mul, with twice
  /// the loads in flight per warp; row-chunked (tokens > 1) for a batched
  /// decode or speculative verify step.
  bool gatedUp = false;
  /// Further weights that read the same x (no bias, no gating): W_i
  /// [moreN[i], K] after `w`, each with its own output y_i ([T, moreN[i]]
  /// when row-chunked). The CTAs of W come first, then those of W_1, and
  /// so on: one launch for a layer's q, k and v projections instead of
  /// three.
  llvm::SmallVector<int64_t, 2> moreN;
  /// The layer's residual add and RMSNorm in the prologue (one row, no
  /// bias; a multi-weight or gated gemv reading a norm's output): x is the
  /// sublayer's output, added to a `residual` argument, normalized with
  /// `norm_weight` and `normEpsilon` exactly as the add_rms_norm kernel does
  /// (the same threads' vectors and sum order), into workgroup memory that
  /// the warps then read instead of x; CTA 0 also stores the rounded sum
  /// (`sum`, the next residual) and the normalized row (`normed`). One
  /// kernel boundary fewer per norm in a decode step. `sum` must not alias
  /// x or residual (other CTAs still read them).
  bool addNormPrologue = false;
  double normEpsilon = 1e-5;
  /// A layer's rotary embedding and its keys' and values' paged-cache
  /// write in the epilogue of the q/k/v gemv (one row, exactly three
  /// weights: q, then k and v of one size, heads of `headDim` channels all
  /// rotated, the half-split rotation of the rope kernel): the CTAs of q
  /// and k own, per head, channels c and c + headDim/2 in warps that swap
  /// their rounded dot products through workgroup memory and write
  ///   out1 = x1 * cos1 - x2 * sin1,   out2 = x2 * cos2 + x1 * sin2
  /// (the rope kernel's fp32 arithmetic on the values the gemv would have
  /// stored), so y and y1 hold the rotated q and k; k and v also go to
  /// the cache slot `slot_mapping[0]` (skipped when negative). Extra
  /// arguments after the others: cos and sin ([1, headDim] of
  /// `ropeTableDType`), slot_mapping (i64 [1]) and the cache (Combined
  /// layout). One launch instead of the gemv and rope_pair_kv.
  bool ropeKVEpilogue = false;
  int64_t ropeHeadDim = 0;
  KernelDType ropeTableDType = KernelDType::F32;
  int64_t kvBlockSize = 16;
  PagedCacheLayout cache;

  /// N of every weight (n, then moreN).
  llvm::SmallVector<int64_t, 3> allN() const {
    llvm::SmallVector<int64_t, 3> all = {n};
    all.append(moreN.begin(), moreN.end());
    return all;
  }
};

/// The largest T a row-chunked gemv (tokens > 1) addresses.
constexpr int64_t kGemvMaxRows = int64_t(1) << 20;

/// Static workgroup memory a CTA may declare (more needs the dynamic
/// opt-in): the row-chunked add + norm prologue keeps its tokens x K
/// normalized rows there, so it serves rows of at most this many bytes.
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;

/// Appends `gpu.func @gemv_<dtype>_n<N>_k<K>(x, w, y) kernel` to `module`
/// (`@gemv_gateup_silu_...(x, w, w_up, y)` with `gatedUp`):
///
///   y[n] = sum_k x[k] * W[n, k]      W stored [N, K] row-major
///
/// One warp per output row: each lane loads 128-bit vectors of the row
/// (8 halves; narrower when K is not a multiple of 8) with ld.global.nc,
/// multiplies them with the matching vectors of x in fp32, and the warp
/// reduces its 32 partial sums with a gpu.shuffle xor butterfly. Emits an
/// error at the kernel's location and fails when the options cannot be met.
mlir::FailureOr<KernelSpec> buildGemvKernel(mlir::OpBuilder &builder,
                                            mlir::gpu::GPUModuleOp module,
                                            const GemvOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_GEMVKERNEL_H
