//===- EmbeddingKernel.h - Embedding (row gather) generator ----*- C++ -*-===//

#ifndef KILN_CODEGEN_EMBEDDINGKERNEL_H
#define KILN_CODEGEN_EMBEDDINGKERNEL_H

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

struct EmbeddingOptions {
  KernelDType dtype = KernelDType::F16;
  /// Tokens of the step (rows of ids and out). One CTA per token, so the
  /// code does not depend on it and the name omits it.
  int64_t numTokens = 1;
  int64_t vocab = 32000;
  int64_t hidden = 4096;
};

/// Appends `gpu.func @embedding_<dtype>_v<V>_h<H>(table, ids, out) kernel`
/// to `module`:
///
///   out[t, :] = table[ids[t], :]      table [V, H], ids [T] i64, out [T, H]
///
/// A negative id counts from the end (-V <= id < 0 reads row V + id, as the
/// ONNX Gather the step comes from); an id outside [-V, V) writes a row of
/// zeros (the runtime reports such ids before launch). One CTA per token;
/// each thread copies 128-bit vectors (no conversion).
mlir::FailureOr<KernelSpec>
buildEmbeddingKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                     const EmbeddingOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_EMBEDDINGKERNEL_H
