//===- QuantGemvKernel.h - GEMV over packed low-bit weights -----*- C++ -*-===//
//
// y = x . W^T for the QuantLinear steps (docs/Quantization.md): W is read
// as its packed codes (int8, or two int4 a byte) and per-group scales (and
// zero points), dequantized in registers; no dense copy of W exists.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_QUANTGEMVKERNEL_H
#define KILN_CODEGEN_QUANTGEMVKERNEL_H

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

struct QuantGemvOptions {
  /// Activations (x, y, bias) and the scales' type.
  KernelDType dtype = KernelDType::F16;
  KernelDType scaleDType = KernelDType::F16;
  int64_t n = 4096;
  int64_t k = 4096;
  /// 8 (one code a byte) or 4 (element 2j in the low nibble of byte j).
  int64_t bits = 4;
  /// K elements per scale (k: one per output channel).
  int64_t groupSize = 128;
  /// A u8 zero point per group; else the symmetric 2^(bits-1).
  bool zeroPoint = false;
  /// Codes are fp8 e4m3 bytes (bits 8, no zero points): w = scale * fp8.
  /// The CUDA-core qgemv and qdequant decode them; the tensor-core variant
  /// does not.
  bool fp8 = false;
  bool bias = false;
  /// y's type when it differs from the activations' (f32: logits kept in
  /// fp32 by a quantized lm_head).
  std::optional<KernelDType> outputDType;
  /// Output rows per warp (each streams its own packed row).
  int64_t rowsPerWarp = 1;
  int64_t warpsPerBlock = 4;
  /// 16-byte code loads in flight per lane before their FMAs.
  int64_t unroll = 4;
  /// Token rows per CTA (> 1: the row-chunked variant over [T, K], with a
  /// `step` argument, grid.y = ceil(T / tokens)); each decoded weight
  /// vector feeds every row.
  int64_t tokens = 1;
  /// The tensor-core variant (buildQuantMmaGemvKernel): 16 output rows a
  /// warp, tokens up to 16; `kSplit` warps of a CTA share the rows, each
  /// taking a slice of K (summed through workgroup memory). `unroll`
  /// counts chunks (4 lanes x 16 bytes) per loop step; rowsPerWarp and
  /// warpsPerBlock are ignored.
  bool tensorCores = false;
  int64_t kSplit = 1;
  /// Tensor-core variant: warps an SM should hold at once (0: ptxas's
  /// choice). Becomes nvvm.minctasm (ceil(warps / kSplit) CTAs), so ptxas
  /// caps the registers a thread takes (for measuring: at 64 registers
  /// the 8B shapes spill).
  int64_t minWarpsPerSM = 0;
  /// Row counts of further packed weights of the same format and K that
  /// read the same x (a layer's q, k, v): one launch over all of their
  /// row tiles (`qgemv_multi`), tensor cores, one row, no bias.
  llvm::SmallVector<int64_t, 3> moreN;
  /// The layer's residual add and RMSNorm in the prologue, as
  /// GemvOptions::addNormPrologue (one row, no bias, y in the activations'
  /// type; the CUDA-core qgemv): x is the sublayer's output, added to a
  /// `residual` argument and normalized with `norm_weight` exactly as the
  /// add_rms_norm kernel does, into workgroup memory the loads of x then
  /// read; CTA 0 also stores the rounded sum (`sum`) and the normalized row
  /// (`normed`). Two kernel boundaries fewer a quantized decode layer.
  bool addNormPrologue = false;
  double normEpsilon = 1e-5;
};

/// Weights one chunk of the tensor-core qgemv covers: the 4 lanes that
/// share a row in an mma fragment, 16 bytes each (128 int4, 64 int8).
/// Groups must be whole chunks.
constexpr int64_t quantMmaChunkWeights(int64_t bits) {
  return 4 * 16 * 8 / bits;
}

/// Appends `gpu.func @qgemv_<dtype>_n<N>_k<K>_b<bits>_g<group>[_zp][_bias]
/// [_t<R>](x, packed, scales, [zeros,] [bias,] y[, step]) kernel`: one warp
/// per output row; each lane loads 16 bytes of codes per step (16 int8 or
/// 32 int4 weights, within one group), the matching x, and accumulates
/// (u - z) * scale * x in fp32; a shuffle butterfly reduces the warp.
/// Emits an error and fails for shapes the layout cannot serve (K not a
/// multiple of the weights one load covers, a group that splits a load).
mlir::FailureOr<KernelSpec>
buildQuantGemvKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                     const QuantGemvOptions &options);

/// The same GEMV (same arguments, family and parameters, plus mma=1 and
/// k_split) with the products on the tensor cores: `qgemv_..._mma_s<S>`.
/// A warp owns 16 rows as the A operand of mma.m16n8k16 and the tokens as
/// B (one n8 tile per 8); codes become A fragments by bit operations.
/// Fails for layouts it cannot serve (groups not whole chunks).
mlir::FailureOr<KernelSpec>
buildQuantMmaGemvKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                        const QuantGemvOptions &options);

/// Appends `gpu.func @qdequant_<dtype>_n<N>_k<K>_b<bits>_g<group>[_zp]
/// (packed, scales, [zeros,] w) kernel`: the dense W [N, K] in `dtype`,
/// w = (u - z) * scale rounded once, for the tensor-core GEMM of many-row
/// steps (prefill), where decoding W once per step and reading it as dense
/// tiles beats decoding it once per 8 rows. One thread per 16-byte load of
/// codes (the GEMV's decode, QuantDecode.h); `bias`, `tokens`, `unroll` and
/// the row shape options are ignored.
mlir::FailureOr<KernelSpec>
buildQuantDequantKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                        const QuantGemvOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_QUANTGEMVKERNEL_H
