//===- RotaryTableKernel.h - Rotary cos/sin table generator -----*- C++ -*-===//

#ifndef KILN_CODEGEN_ROTARYTABLEKERNEL_H
#define KILN_CODEGEN_ROTARYTABLEKERNEL_H

#include "kiln/Codegen/KernelSpec.h"

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

struct RotaryTableOptions {
  /// Type of the cos and sin tables: F32 (what the plans compute), F16 or
  /// BF16.
  KernelDType dtype = KernelDType::F32;
  /// Tokens of the step (rows of positions); one CTA per token, so the name
  /// omits it.
  int64_t numTokens = 1;
  /// inv_freq, rotary_dim / 2 values, baked into the code.
  std::vector<float> invFreq;
  /// Multiplies cos and sin (HF's attention_scaling; 1 for plain RoPE).
  float attentionScaling = 1.0f;
};

/// inv_freq[i] = base^(-2i / rotaryDim), i < rotaryDim / 2 (default RoPE).
std::vector<float> defaultInvFreq(int64_t rotaryDim, double base);

/// Appends `gpu.func @rotary_table_<dtype>_r<rot>_<hash>(positions, cos,
/// sin) kernel` to `module` (the hash covers inv_freq and the scaling):
///
///   angle = float(pos[t]) * inv_freq[i mod rot/2]         (an fp32 product)
///   cos[t, i] = cos(angle) * scaling, sin[t, i] = sin(angle) * scaling
///
/// positions [T] i64, cos and sin [T, rot]. One CTA per token, one thread
/// per column: the angle is reduced to [-pi, pi] in double precision, then
/// cos.approx/sin.approx.f32 (absolute error below 1e-6).
mlir::FailureOr<KernelSpec>
buildRotaryTableKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                       const RotaryTableOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_ROTARYTABLEKERNEL_H
