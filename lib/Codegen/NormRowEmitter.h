//===- NormRowEmitter.h - One row's (residual add +) RMSNorm ---*- C++ -*-===//
//
// Private to lib/Codegen. The rms_norm / add_rms_norm kernels and the gemv
// that normalizes its own input (the add + norm in its prologue) compute a
// row the same way through this emitter, so their results are bit-identical:
// thread t of the `threads` normalizing threads owns the 128-bit vectors t,
// t + threads, ... of the row, sums their squares in that order, and the
// block sum adds the warps' sums in warp order (warps past `threads`
// contribute exact zeros).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_NORMROWEMITTER_H
#define KILN_LIB_CODEGEN_NORMROWEMITTER_H

#include "KernelBuilder.h"

#include <functional>

namespace kiln {
namespace codegen {

struct NormRow {
  /// x [.., hidden] (and residual, added first when set), weight [hidden];
  /// sum (with residual) and out receive the rounded sum and the normalized
  /// row when set. `row` indexes the leading dimension of 2-D operands; null
  /// for 1-D [hidden] operands.
  mlir::Value x, residual, weight, sum, out, row;
  /// Guards the stores to `sum` and `out` (i1; null: always).
  mlir::Value storeGlobal;
  mlir::Value tid;
  /// Threads that normalize (a multiple of 32) and warps in the block (all
  /// of them reach the block sum's barrier).
  int64_t threads = 32;
  int64_t blockWarps = 1;
  /// f32 [blockWarps] in workgroup memory when blockWarps > 1.
  mlir::Value scratch;
  int64_t hidden = 0;
  double epsilon = 1e-5;
  mlir::Type elementType;
  /// Called in the normalizing threads with each normalized vector (fp32
  /// x * rstd * weight, the value `out` stores rounded) and its column.
  std::function<void(mlir::Value column, mlir::Value normed)> onNormed;
};

/// Threads a standalone (add_)rms_norm block uses for a row of `hidden`
/// (0: the default rule) and the vectors each owns; fails with an error at
/// `loc` past kMaxNormStepsPerThread.
struct NormShape {
  int64_t width = 8, threads = 32, steps = 1;
};
mlir::FailureOr<NormShape> normShape(mlir::Location loc, int64_t hidden,
                                     KernelDType dtype, int64_t blockSize);

/// Emits the row's norm as described above.
void emitNormRow(KernelBuilder &b, const NormRow &r, const NormShape &shape);

/// The add + norm prologue of a kernel that normalizes its own input (the
/// gemv and qgemv with add_norm=1): x + residual normalized with `weight`
/// into the workgroup row `into`, CTA 0 also storing the rounded sum and the
/// normalized row to `sum` and `normed`, then a barrier. Row-chunked (a
/// gemv of several token rows): each of `rows` in turn, into row t of
/// `into`, stored where `liveRows[t]` holds.
struct NormPrologue {
  mlir::Value x, residual, weight, sum, normed, tid;
  /// f32 [blockWarps] and the [hidden] row ([rows, hidden] row-chunked), in
  /// workgroup memory.
  mlir::Value scratch, into;
  int64_t blockWarps = 1;
  int64_t hidden = 0;
  double epsilon = 1e-5;
  mlir::Type elementType;
  /// Row-chunked: the token rows of x, residual, sum and normed (loads
  /// clamped to the step's rows) and whether each is a row of the step.
  llvm::SmallVector<mlir::Value> rows, liveRows;
};
void emitNormPrologue(KernelBuilder &b, const NormPrologue &p,
                      const NormShape &shape);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_NORMROWEMITTER_H
