//===- RMSNormKernel.h - RMSNorm kernel generator ---------------*- C++ -*-===//

#ifndef KILN_CODEGEN_RMSNORMKERNEL_H
#define KILN_CODEGEN_RMSNORMKERNEL_H

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

struct RMSNormOptions {
  KernelDType dtype = KernelDType::F16;
  /// Rows of the [rows, hidden] input: one thread block per row. The code
  /// does not depend on it (the grid does), so the kernel name omits it.
  int64_t rows = 1;
  int64_t hidden = 4096;
  double epsilon = 1e-5;
  /// Threads per block, a multiple of 32 up to 1024; 0 picks the power of
  /// two that gives each thread about four 128-bit vectors of the row.
  int64_t blockSize = 0;
  /// The residual add before the norm in the same pass (a layer's
  /// `h = x + residual; out = rms_norm(h)`): a `residual` argument after
  /// x and a `sum` output before out; h is rounded to `dtype`, stored, and
  /// normalized as rounded, exactly as residual_add then rms_norm compute
  /// it. One launch and one read of the row instead of two.
  bool residual = false;
};

/// Appends `gpu.func @rms_norm_<dtype>_<hidden>(x, weight, out) kernel` to
/// `module`:
///
///   out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight[:]
///
/// with x, weight and out in `dtype` and everything else in fp32. Each thread
/// keeps its slice of the row in registers between the sum of squares and
/// the scaling (the row is read from memory once); the block reduction is a
/// warp butterfly of gpu.shuffle xor, one fp32 per warp through workgroup
/// memory, and a second butterfly. Emits an error at the kernel's location
/// and fails when the options cannot be met.
mlir::FailureOr<KernelSpec> buildRMSNormKernel(mlir::OpBuilder &builder,
                                               mlir::gpu::GPUModuleOp module,
                                               const RMSNormOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_RMSNORMKERNEL_H
