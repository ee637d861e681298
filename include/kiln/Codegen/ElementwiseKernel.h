//===- ElementwiseKernel.h - Fused elementwise kernel generator -*- C++ -*-===//

#ifndef KILN_CODEGEN_ELEMENTWISEKERNEL_H
#define KILN_CODEGEN_ELEMENTWISEKERNEL_H

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

enum class ElementwiseOp {
  /// out = silu(a) * b = a / (1 + exp(-a)) * b  (SwiGLU: a = gate, b = up).
  SiluMul,
  /// out = a + b  (residual connection).
  Add,
  /// out = a * b  (an unfused gated MLP's product).
  Mul,
  /// out = silu(x)  (one input: arguments x, out).
  Silu,
};

/// "silu_mul", "residual_add", "mul" or "silu" (the family and kernel-name
/// prefix).
llvm::StringRef stringifyElementwiseOp(ElementwiseOp op);
std::optional<ElementwiseOp> parseElementwiseOp(llvm::StringRef name);

struct ElementwiseOptions {
  ElementwiseOp op = ElementwiseOp::SiluMul;
  KernelDType dtype = KernelDType::F16;
  /// Elements of each operand (rows * hidden for activations).
  int64_t size = 4096;
  /// Threads per block, a multiple of 32 up to 1024; 0 picks 256 (fewer
  /// when the whole tensor needs fewer).
  int64_t blockSize = 0;
};

/// Appends `gpu.func @<op>_<dtype>_<size>(a, b, out) kernel` to `module`:
/// one 128-bit vector per thread (narrower when size is not a multiple of
/// 8), computed in fp32, with a bounds check only when the grid overshoots.
/// Outputs must not alias inputs (the arguments are marked noalias so that
/// the loads go through the read-only cache).
mlir::FailureOr<KernelSpec>
buildElementwiseKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                       const ElementwiseOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_ELEMENTWISEKERNEL_H
