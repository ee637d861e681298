//===- QuantGemvSignature.h - The qgemv kernels' one contract -*- C++ -*-===//
//
// Private to lib/Codegen. The CUDA-core and the tensor-core qgemv compute
// the same thing for the same runtime binding: this is their shared
// signature (argument types and access, the spec's parameters and
// arguments), so the two cannot drift apart.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_QUANTGEMVSIGNATURE_H
#define KILN_LIB_CODEGEN_QUANTGEMVSIGNATURE_H

#include "KernelBuilder.h"
#include "kiln/Codegen/QuantGemvKernel.h"

#include <vector>

namespace kiln {
namespace codegen {

/// The qgemv arguments, in order: x, packed, scales, [zeros,] [bias,] y
/// [, step]; absent ones are null.
struct QuantGemvArgs {
  mlir::Value x, packed, scales, zeros, bias, y, step;
  /// With the add + norm prologue (o.addNormPrologue): residual and
  /// norm_weight after x, sum and normed last.
  mlir::Value residual, normWeight, sum, normed;
  /// qgemv_multi (o.moreN): each further weight's packed, scales, [zeros]
  /// and y, after the first weight's y; x is shared.
  std::vector<QuantGemvArgs> more;
};

/// Narrows the fp32 `value` to y's element type (none for f32 logits) and
/// stores it at `indices`.
void storeQuantGemvOutput(KernelBuilder &b, mlir::Value value, mlir::Value y,
                          mlir::ValueRange indices);

/// qgemv_multi's limits (o.moreN): one row, at most 4 weights of positive
/// row counts, no bias; and the add + norm prologue's: one row, no bias, y
/// in the activations' type. An error at `loc` otherwise.
mlir::LogicalResult verifyQuantGemvMulti(mlir::Location loc,
                                         const QuantGemvOptions &o);

/// `qgemv_<dtype>_n<N>_k<K>_b<bits>_g<group>[_zp][_bias][_addnorm][_t<R>]
/// <suffix>`;
/// qgemv_multi: `qgemv_multi_<dtype>_n<N>_<N1>.._k<K>...`.
std::string quantGemvName(const QuantGemvOptions &o, llvm::StringRef suffix);

/// Creates the kernel `name` with qgemv's arguments (x and y [R, K] / [R, N]
/// with a `step` argument when o.tokens > 1) and returns them.
QuantGemvArgs createQuantGemvKernel(KernelBuilder &b,
                                    mlir::gpu::GPUModuleOp module,
                                    llvm::StringRef name,
                                    const QuantGemvOptions &o, int64_t threads,
                                    llvm::ArrayRef<mlir::Type> workgroup = {});

/// Emits `body(weight's arguments, its rows, block within it)` for the
/// weight whose range of grid x holds this CTA: `blocksOf(n)` blocks each,
/// consecutive from the first weight; a plain qgemv (no o.moreN) is its
/// one weight's body.
void forEachQuantWeight(
    KernelBuilder &b, const QuantGemvOptions &o, const QuantGemvArgs &all,
    llvm::function_ref<int64_t(int64_t)> blocksOf,
    llvm::function_ref<void(const QuantGemvArgs &, int64_t, mlir::Value)> body);

/// The packed layout's parameters (dtype, n, k, bits, group_size,
/// scale_dtype), which qgemv and qdequant publish first.
void addPackedLayoutParams(KernelSpec &spec, const QuantGemvOptions &o);

/// The packed weight's arguments: packed, scales[, zeros].
void addPackedWeightArgs(KernelSpec &spec, const QuantGemvOptions &o);

/// The spec both variants publish: family qgemv, the layout parameters,
/// and the arguments the CUDA device binds by name.
KernelSpec describeQuantGemv(const QuantGemvOptions &o, llvm::StringRef name,
                             int64_t gridX, int64_t threads);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_QUANTGEMVSIGNATURE_H
