//===- KernelBuilder.h - Shared pieces of the kernel generators -*- C++ -*-===//
//
// Private to lib/Codegen. A thin layer over ImplicitLocOpBuilder that the
// generators share: index and float constants, the kernel skeleton
// (gpu.func with the kernel, reqntid and noalias/readonly attributes),
// widening 128-bit vector loads and narrowing stores, warp and block sums,
// and the two NVPTX approximations the kernels use (rsqrt, exp2) called as
// intrinsics so that no libdevice function is needed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_KERNELBUILDER_H
#define KILN_LIB_CODEGEN_KERNELBUILDER_H

#include "kiln/Codegen/KernelSpec.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace kiln {
namespace codegen {

/// Threads of a warp on every NVIDIA GPU Kiln targets.
constexpr int64_t kWarpSize = 32;
/// Bytes one thread moves per load or store when it can (ld.global.v4.b32).
constexpr int64_t kVectorBytes = 16;

/// Elements per vector access: 16 bytes' worth when `extent` divides into
/// them, else the largest power of two that does.
int64_t pickVectorWidth(int64_t extent, KernelDType dtype);

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t roundUp(int64_t a, int64_t b) { return ceilDiv(a, b) * b; }

/// How a kernel argument is used, which picks its LLVM attributes: all are
/// noalias; ReadOnly adds readonly (loads through ld.global.nc), WriteOnly
/// writeonly, ReadWrite nothing more (a cache updated in place, scratch).
enum class ArgAccess { ReadOnly, WriteOnly, ReadWrite };

class KernelBuilder : public mlir::ImplicitLocOpBuilder {
public:
  KernelBuilder(mlir::Location loc, mlir::OpBuilder &builder)
      : ImplicitLocOpBuilder(loc, builder) {}

  /// Appends `gpu.func @name(args) workgroup(workgroupTypes) kernel` to
  /// `module`, requires exactly `blockSize` threads (nvvm.reqntid, so a
  /// launch with another block shape fails instead of computing garbage),
  /// marks every argument noalias and the inputs readonly (their loads then
  /// use the non-coherent read-only path, ld.global.nc), and leaves the
  /// builder at the start of the body.
  mlir::gpu::GPUFuncOp
  createKernel(mlir::gpu::GPUModuleOp module, llvm::StringRef name,
               llvm::ArrayRef<mlir::Type> argTypes,
               llvm::ArrayRef<ArgAccess> access, int64_t blockSize,
               llvm::ArrayRef<mlir::Type> workgroupTypes = {});

  mlir::Value index(int64_t value);
  mlir::Value f32(double value);
  /// A vector<width x f32> splat of `value`.
  mlir::Value f32Splat(double value, int64_t width);

  mlir::Value threadIdX();
  mlir::Value blockIdX();
  mlir::Value blockIdY();
  mlir::Value blockIdZ();

  /// Index arithmetic shorthands (arith on `index`).
  mlir::Value add(mlir::Value a, mlir::Value b);
  mlir::Value sub(mlir::Value a, mlir::Value b);
  mlir::Value mul(mlir::Value a, mlir::Value b);
  mlir::Value mul(mlir::Value a, int64_t b) { return mul(a, index(b)); }
  mlir::Value add(mlir::Value a, int64_t b) { return add(a, index(b)); }
  mlir::Value divU(mlir::Value a, int64_t b);
  mlir::Value remU(mlir::Value a, int64_t b);
  mlir::Value minS(mlir::Value a, mlir::Value b);
  mlir::Value maxS(mlir::Value a, mlir::Value b);
  mlir::Value cmp(mlir::arith::CmpIPredicate predicate, mlir::Value a,
                  mlir::Value b);
  mlir::Value cmp(mlir::arith::CmpIPredicate predicate, mlir::Value a,
                  int64_t b) {
    return cmp(predicate, a, index(b));
  }
  mlir::Value andI(mlir::Value a, mlir::Value b);
  /// Loads one i32 or i64 element and sign-extends it to index.
  mlir::Value loadIndex(mlir::Value memref, mlir::ValueRange indices);

  /// Loads `width` consecutive elements of `memref` at `indices` (one
  /// aligned vector.load) and widens them to vector<width x f32> (f32 data
  /// is returned as loaded).
  mlir::Value loadF32(mlir::Value memref, mlir::ValueRange indices,
                      int64_t width);
  /// Rounds the fp32 vector to the element type of `memref` and stores it
  /// at `indices` (one aligned vector.store; no rounding into f32).
  void storeFromF32(mlir::Value value, mlir::Value memref,
                    mlir::ValueRange indices);
  /// Loads `width` consecutive elements as they are (a copy, or f32 data).
  /// `alignBytes` 0: the natural alignment of the whole vector, which the
  /// caller guarantees (index a multiple of `width`).
  mlir::Value loadVector(mlir::Value memref, mlir::ValueRange indices,
                         int64_t width, int64_t alignBytes = 0);
  void storeVector(mlir::Value value, mlir::Value memref,
                   mlir::ValueRange indices, int64_t alignBytes = 0);

  /// Rows [base, base + count) and the rows their loads use: clamped to
  /// `last` (when given) so that rows past the end read valid memory while
  /// their stores are skipped; every lane stays in the warp's shuffles.
  struct ClampedRows {
    llvm::SmallVector<mlir::Value> rows, loadRows;
  };
  ClampedRows clampedRows(mlir::Value base, int64_t count, mlir::Value last);
  /// step[0] of a row-chunked kernel's `step` argument (i32 [4]) as an
  /// index: the step's rows T.
  mlir::Value stepRows(mlir::Value step);
  /// The token rows of a row-chunked CTA: [blockIdx.y * count, + count),
  /// loads clamped to the step's last row; `numRows` is T.
  struct TokenChunk : ClampedRows {
    mlir::Value numRows;
  };
  TokenChunk tokenChunk(mlir::Value step, int64_t count);

  /// A warp's lane-strided walk over the `count` vectors of a row (lane l
  /// takes vectors l, l + 32, ...): `unroll` steps per scf.for iteration,
  /// the remaining whole steps after the loop, then one more step for the
  /// lanes below count % 32. `step` gets this lane's vector indices and the
  /// accumulators and returns them updated (loads first, then math).
  using LaneStep = std::function<llvm::SmallVector<mlir::Value>(
      llvm::ArrayRef<mlir::Value>, llvm::SmallVector<mlir::Value>)>;
  llvm::SmallVector<mlir::Value>
  walkLaneVectors(mlir::Value lane, int64_t count, int64_t unroll,
                  llvm::SmallVector<mlir::Value> accs, const LaneStep &step);

  /// `then()` under `cond`, with no results.
  void ifThen(mlir::Value cond, const std::function<void()> &then);
  /// `cond ? then() : otherwise()` as an scf.if yielding one value.
  mlir::Value ifElse(mlir::Value cond, const std::function<mlir::Value()> &then,
                     const std::function<mlir::Value()> &otherwise);

  /// Butterfly sum within aligned groups of `lanes` lanes (a power of two):
  /// log2(lanes) gpu.shuffle xor steps; every lane ends with the sum of its
  /// own group (with 32, of the whole warp).
  mlir::Value warpSum(mlir::Value value, int64_t lanes = kWarpSize);
  /// The same butterfly with another combining function (max, integer add).
  mlir::Value warpReduce(
      mlir::Value value, int64_t lanes,
      const std::function<mlir::Value(mlir::Value, mlir::Value)> &combine);
  /// The value of lane `lane ^ offset` (gpu.shuffle xor over the warp).
  mlir::Value shuffleXor(mlir::Value value, int64_t offset);
  /// Sum over the whole thread block, returned to every thread: warpSum,
  /// lane 0 of each warp writes its sum into `scratch` (workgroup memory of
  /// `numWarps` f32), a barrier, then each warp sums the `numWarps` values
  /// with a second, shorter butterfly. Uses `scratch` once: a second call
  /// on the same scratch would need a barrier before it.
  mlir::Value blockSum(mlir::Value value, mlir::Value threadId,
                       int64_t numWarps, mlir::Value scratch);

  /// Applies a scalar fp32 function to each element of a 1-D vector.
  mlir::Value mapElements(mlir::Value vector,
                          const std::function<mlir::Value(mlir::Value)> &fn);
  /// rsqrt.approx.f32 (max relative error 2^-22.9).
  mlir::Value rsqrtApprox(mlir::Value scalar);
  /// ex2.approx.f32 (max relative error 2^-22.5 for |x| < 126; -inf gives
  /// +0).
  mlir::Value exp2Approx(mlir::Value scalar);
  /// silu(a) * b = a * b / (1 + 2^(-a log2 e)) on fp32 scalars or vectors:
  /// the one formula of silu_mul and of the fused gate/up gemv, so that
  /// both round alike.
  mlir::Value siluMul(mlir::Value a, mlir::Value b);
  /// cos.approx.f32 / sin.approx.f32 (max absolute error 2^-20.5 on
  /// [-pi, pi]; reduce the argument first).
  mlir::Value cosApprox(mlir::Value scalar);
  mlir::Value sinApprox(mlir::Value scalar);
  /// tanh.approx.f32 (sm_75+, max relative error about 2^-11): llvm.tanh.f32
  /// with the afn flag.
  mlir::Value tanhApprox(mlir::Value scalar);
  /// membar.gl (fence.sc.gpu): orders this thread's global memory accesses
  /// before and after it for every thread of the GPU.
  void fenceGpu();

  /// prefetch.global.L2 of the line holding element `linearIndex` of the
  /// (identity-layout) global `memref`.
  void prefetchL2(mlir::Value memref, mlir::Value linearIndex);
  /// The i32 `value` through an opaque, side-effect-free `mov.b32`: LLVM
  /// cannot move arithmetic on the result above this point. A loop that
  /// carries loaded words to the next step uses it so the words, not every
  /// shift of them LLVM would otherwise hoist to the loads, cross the back
  /// edge (ptxas drops the move).
  mlir::Value pinI32(mlir::Value value);
  /// griddepcontrol.wait then launch_dependents: the point before which a
  /// kernel touches nothing a previous kernel writes or reads (only
  /// constant weights, e.g. to prefetch them). The lowering puts this at
  /// the top of every kernel that does not call it itself (sm_90+; earlier
  /// chips drop it).
  void waitForPriorGrids();
};

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_KERNELBUILDER_H
