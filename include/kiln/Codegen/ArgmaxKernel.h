//===- ArgmaxKernel.h - Greedy token selection on the device --------------===//
//
// The index of the largest logit of each row, so that a greedy step copies
// back one i32 per sequence instead of a vocabulary-wide row of fp32 (16 MB
// a step for 32 sequences of a 128k vocabulary) and does not scan it on the
// host.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_ARGMAXKERNEL_H
#define KILN_CODEGEN_ARGMAXKERNEL_H

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

struct ArgmaxOptions {
  /// Logits per row (f32).
  int64_t vocab = 32000;
  /// Threads per block (one block per row), a multiple of 32 up to 1024.
  int64_t blockSize = 1024;
};

/// Appends `gpu.func @argmax_f32_v<V>(logits, out) kernel` to `module`:
/// block r writes to out[r] the first index of the largest value of
/// logits[r, :], as the host's greedy sampler picks it (ties go to the
/// lower index), or -1 when the row holds a NaN or +inf (the host then
/// reports the bad row; NaN never becomes a token). Each thread scans a
/// strided slice, then a (value, index, bad) butterfly per warp and a
/// second one over the warps' results in workgroup memory.
mlir::FailureOr<KernelSpec> buildArgmaxKernel(mlir::OpBuilder &builder,
                                              mlir::gpu::GPUModuleOp module,
                                              const ArgmaxOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_ARGMAXKERNEL_H
