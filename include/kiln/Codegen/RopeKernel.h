//===- RopeKernel.h - Rotary position embedding generator -------*- C++ -*-===//

#ifndef KILN_CODEGEN_ROPEKERNEL_H
#define KILN_CODEGEN_ROPEKERNEL_H

#include "kiln/Codegen/KernelSpec.h"
#include "kiln/Codegen/PagedCacheLayout.h"

#include "mlir/Support/LLVM.h"

#include <vector>

namespace mlir {
class OpBuilder;
namespace gpu {
class GPUModuleOp;
} // namespace gpu
} // namespace mlir

namespace kiln {
namespace codegen {

struct RopeOptions {
  /// Storage type of x and out.
  KernelDType dtype = KernelDType::F16;
  /// Type of the cos and sin tables: F32, F16 or BF16.
  KernelDType tableDType = KernelDType::F16;
  /// Tokens of the step; one CTA per token, so the name omits it.
  int64_t numTokens = 1;
  int64_t numHeads = 32;
  int64_t headDim = 128;
  /// Rotated channels (even, at most headDim); the rest are copied.
  int64_t rotaryDim = 128;
  /// Heads of a second [T, H2, D] input rotated by the same tables in the
  /// same launch (a layer's q and k): arguments (x, x2, cos, sin, out,
  /// out2); 0 for none.
  int64_t secondHeads = 0;
  /// With a second input: also write the rotated second rows (a layer's
  /// keys) and a `value` [T, H2, D] to the paged cache at slot_mapping[t]
  /// (kv_write's work, after a barrier): arguments (x, x2, cos, sin, out,
  /// out2, value, slot_mapping, cache | k_cache, v_cache).
  bool kvWrite = false;
  int64_t kvBlockSize = 16;
  PagedCacheLayout cache;
};

/// Appends `gpu.func @rope_<dtype>[_t<table dtype>]_h<H>_d<D>_r<rot>(x, cos,
/// sin, out) kernel` to `module`, the half-split (GPT-NeoX / HF Llama)
/// rotation of the packed [T, H, D] rows with the [T, rot] tables:
///
///   i < rot/2:  out[i] = x[i] * cos[i] - x[i + rot/2] * sin[i]
///   i >= rot/2: out[i] = x[i] * cos[i] + x[i - rot/2] * sin[i]   (i < rot)
///   i >= rot:   out[i] = x[i]
///
/// in fp32, rounded once. One CTA per token; each thread rotates a vector
/// pair (x[c..c+w), x[c+rot/2..)) of one head (128-bit when the shape
/// allows), then the pass-through channels are copied. out must not alias x.
mlir::FailureOr<KernelSpec> buildRopeKernel(mlir::OpBuilder &builder,
                                            mlir::gpu::GPUModuleOp module,
                                            const RopeOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_ROPEKERNEL_H
