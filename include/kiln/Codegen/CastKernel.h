//===- CastKernel.h - Elementwise float cast generator ----------*- C++ -*-===//

#ifndef KILN_CODEGEN_CASTKERNEL_H
#define KILN_CODEGEN_CASTKERNEL_H

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

struct CastOptions {
  /// F32, F16 or BF16 each, different.
  KernelDType from = KernelDType::F32;
  KernelDType to = KernelDType::F16;
  /// Elements of the tensor (rows * row length).
  int64_t size = 4096;
};

/// Appends `gpu.func @cast_<from>_<to>_<size>(x, out) kernel` to `module`:
/// out = x rounded to nearest even (through fp32; f32 -> f16/bf16 rounds
/// once, widening is exact). A flat grid with one vector per thread (128
/// bits of the wider type), bounds-checked only when the grid overshoots.
mlir::FailureOr<KernelSpec> buildCastKernel(mlir::OpBuilder &builder,
                                            mlir::gpu::GPUModuleOp module,
                                            const CastOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_CASTKERNEL_H
