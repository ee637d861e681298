//===- MatmulSignature.h - The prefill GEMMs' one contract ------*- C++ -*-===//
//
// Private to lib/Codegen. The mma.sync and the wgmma GEMM serve the same
// runtime binding (x [rows, K], W [N, K], [bias,] y [rows, N], step, and the
// split-K scratch): this is their shared signature, so the two cannot drift
// apart.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_MATMULSIGNATURE_H
#define KILN_LIB_CODEGEN_MATMULSIGNATURE_H

#include "KernelBuilder.h"
#include "kiln/Codegen/MatmulKernel.h"

#include "llvm/ADT/STLFunctionalExtras.h"

namespace kiln {
namespace codegen {

/// The GEMM's arguments in order; bias, partials and counters are null
/// when absent. moreW/moreY: the grouped members' w1.. and y1...
/// splitFlag: with split-K, the one-i32 workgroup buffer splitKArrival
/// tells the CTA through whether it arrived last.
struct MatmulArgs {
  mlir::gpu::GPUFuncOp func;
  mlir::Value x, w, bias, y, step, partials, counters, splitFlag;
  llvm::SmallVector<mlir::Value, 2> moreW, moreY;
};

/// Creates the kernel `name` with the GEMM's arguments: x [kGemvMaxRows, K],
/// w [N, K], w1 [N1, K].., [bias [N],] y [kGemvMaxRows, N] of the output
/// type, y1.., step [4], and with o.splitK > 1 the fp32 partial tiles and
/// arrival counters (over all members' tiles) and the split flag.
MatmulArgs createMatmulKernel(KernelBuilder &b, mlir::gpu::GPUModuleOp module,
                              llvm::StringRef name, const MatmulOptions &o,
                              int64_t threads);

/// Split-K arrival at output tile `tile` (index): after every thread has
/// published its partials, makes them visible device-wide, counts this CTA
/// at `counters[tile]` (thread 0; the last of `splitK` arrivals resets it
/// to zero for the next launch) and returns, in every thread, whether this
/// CTA arrived last and so sums the partials. `flag` is a one-i32
/// workgroup buffer.
mlir::Value splitKArrival(KernelBuilder &b, mlir::Value counters,
                          mlir::Value tile, mlir::Value flag, mlir::Value tid,
                          int64_t splitK);

/// The GEMM's launch contract: grid (N / tileN, 1, splitK) with y scaled by
/// the step's row tiles (x: every member's tiles), its shape parameters
/// (dtype, n -- "N_N1_N2" for a grouped GEMM --, k, tokens, tile_n,
/// tile_k, then what `variantParams` adds, then bias and out_dtype) and
/// its arguments.
KernelSpec describeMatmul(const MatmulOptions &o, llvm::StringRef name,
                          int64_t threads, int64_t sharedBytes,
                          llvm::function_ref<void(KernelSpec &)> variantParams);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_MATMULSIGNATURE_H
