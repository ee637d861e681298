//===- NormRowEmitter.cpp - One row's (residual add +) RMSNorm ------------===//

#include "NormRowEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>

using namespace mlir;
using namespace kiln::codegen;

/// Vectors each thread keeps in registers; past this the row needs a larger
/// block (or a multi-pass kernel, not written yet).
static constexpr int64_t kMaxStepsPerThread = 16;
/// Vectors per thread the automatic block size aims for: enough loads in
/// flight per thread without leaving most of a small row's block idle. The
/// block is the next power of two (odd warp counts such as 5 made ptxas
/// trade registers for spills).
static constexpr int64_t kTargetStepsPerThread = 4;

FailureOr<NormShape> kiln::codegen::normShape(Location loc, int64_t hidden,
                                              KernelDType dtype,
                                              int64_t blockSize) {
  NormShape shape;
  shape.width = pickVectorWidth(hidden, dtype);
  int64_t numVectors = hidden / shape.width;
  shape.threads =
      blockSize
          ? blockSize
          : std::clamp<int64_t>(
                llvm::PowerOf2Ceil(ceilDiv(numVectors, kTargetStepsPerThread)),
                kWarpSize, 1024);
  shape.steps = ceilDiv(numVectors, shape.threads);
  if (shape.steps > kMaxStepsPerThread)
    return emitError(loc) << "hidden=" << hidden << " needs " << shape.steps
                          << " vectors of " << shape.width
                          << " per thread with a block of " << shape.threads
                          << " threads (at most " << kMaxStepsPerThread
                          << "); use a larger block size";
  return shape;
}

void kiln::codegen::emitNormRow(KernelBuilder &b, const NormRow &r,
                                const NormShape &shape) {
  int64_t width = shape.width, threads = shape.threads, steps = shape.steps;
  int64_t numVectors = r.hidden / width;
  Type f32 = b.getF32Type();
  Value vectorWidth = b.index(width);
  Value vectorCount = b.index(numVectors);
  // Threads past `threads` (a gemv block larger than the norm's) own no
  // vectors: they add zeros to the block sum.
  bool idleThreads = r.blockWarps * kWarpSize > threads;
  Value normalizes =
      idleThreads ? b.cmp(arith::CmpIPredicate::ult, r.tid, b.index(threads))
                  : Value();
  auto at = [&](Value column) {
    return r.row ? SmallVector<Value>{r.row, column}
                 : SmallVector<Value>{column};
  };
  auto guarded = [&](Value stores, const std::function<void()> &then) {
    if (stores)
      b.ifThen(stores, then);
    else
      then();
  };

  // The column of step `s` for this thread, and whether the step can miss
  // the row (only the last step of a row that does not fill the block).
  auto vectorOf = [&](int64_t s) {
    return arith::AddIOp::create(b, r.tid, b.index(s * threads)).getResult();
  };
  auto columnOf = [&](Value vector) {
    return arith::MulIOp::create(b, vector, vectorWidth).getResult();
  };
  auto stepIsPartial = [&](int64_t s) {
    return (s + 1) * threads > numVectors;
  };
  auto inRowOf = [&](int64_t s, Value vector) -> Value {
    Value inRow = stepIsPartial(s)
                      ? arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                              vector, vectorCount)
                            .getResult()
                      : Value();
    if (normalizes)
      inRow = inRow ? b.andI(inRow, normalizes) : normalizes;
    return inRow;
  };

  // Phase 1: load the row slice, widen to fp32, sum the squares.
  SmallVector<Value> values;
  Value squares = b.f32Splat(0.0, width);
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = vectorOf(s);
    auto load = [&]() -> Value {
      Value column = columnOf(vector);
      Value v = b.loadF32(r.x, at(column), width);
      if (!r.residual)
        return v;
      // h rounded to the storage type, stored, and used as rounded.
      Value h =
          arith::AddFOp::create(b, v, b.loadF32(r.residual, at(column), width));
      if (r.sum)
        guarded(r.storeGlobal, [&] { b.storeFromF32(h, r.sum, at(column)); });
      auto narrow = VectorType::get({width}, r.elementType);
      Value rounded = arith::TruncFOp::create(b, narrow, h);
      return arith::ExtFOp::create(b, VectorType::get({width}, f32), rounded)
          .getResult();
    };
    Value value;
    if (Value inRow = inRowOf(s, vector))
      value = b.ifElse(inRow, load, [&] { return b.f32Splat(0.0, width); });
    else
      value = load();
    values.push_back(value);
    squares = vector::FMAOp::create(b, value, value, squares);
  }
  Value sum =
      vector::ReductionOp::create(b, vector::CombiningKind::ADD, squares);
  sum = b.blockSum(sum, r.tid, r.blockWarps, r.scratch);

  // rstd = rsqrt(sum / hidden + eps), the same in every thread.
  Value mean = arith::DivFOp::create(b, sum, b.f32(r.hidden));
  Value rstd = b.rsqrtApprox(
      arith::AddFOp::create(b, mean, b.f32(r.epsilon)).getResult());
  Value rstdSplat =
      vector::BroadcastOp::create(b, VectorType::get({width}, f32), rstd);

  // Phase 2: out = x * rstd * weight.
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = vectorOf(s);
    auto scaleAndStore = [&] {
      Value column = columnOf(vector);
      Value w = b.loadF32(r.weight, {column}, width);
      Value normed = arith::MulFOp::create(b, values[s], rstdSplat);
      Value scaled = arith::MulFOp::create(b, normed, w);
      if (r.out)
        guarded(r.storeGlobal,
                [&] { b.storeFromF32(scaled, r.out, at(column)); });
      if (r.onNormed)
        r.onNormed(column, scaled);
    };
    if (Value inRow = inRowOf(s, vector))
      b.ifThen(inRow, scaleAndStore);
    else
      scaleAndStore();
  }
}

void kiln::codegen::emitNormPrologue(KernelBuilder &b, const NormPrologue &p,
                                     const NormShape &shape) {
  Value firstCta = b.cmp(arith::CmpIPredicate::eq, b.blockIdX(), 0);
  // A row a single warp normalizes (threads == 32: the standalone kernel's
  // block is that one warp, so the sums agree bit for bit) needs no block
  // sum: each warp takes rows of its own and one barrier ends them all.
  bool warpRows = !p.rows.empty() && shape.threads == kWarpSize;
  auto emitRow = [&](Value row, Value live, Value into) {
    NormRow r;
    r.x = p.x;
    r.residual = p.residual;
    r.weight = p.weight;
    r.sum = p.sum;
    r.out = p.normed;
    r.row = row;
    r.storeGlobal = live ? b.andI(firstCta, live) : firstCta;
    r.tid = warpRows ? b.remU(p.tid, kWarpSize) : p.tid;
    r.threads = shape.threads;
    r.blockWarps = warpRows ? 1 : p.blockWarps;
    r.scratch = warpRows ? Value() : p.scratch;
    r.hidden = p.hidden;
    r.epsilon = p.epsilon;
    r.elementType = p.elementType;
    r.onNormed = [&](Value column, Value normed) {
      b.storeFromF32(normed, p.into,
                     into ? SmallVector<Value>{into, column}
                          : SmallVector<Value>{column});
    };
    emitNormRow(b, r, shape);
    // Also orders the block sum's scratch reads before the next row's
    // writes.
    if (!warpRows)
      gpu::BarrierOp::create(b);
  };
  if (p.rows.empty()) {
    emitRow(Value(), Value(), Value());
    return;
  }
  Value warp = b.divU(p.tid, kWarpSize);
  for (auto [t, row] : llvm::enumerate(p.rows)) {
    if (!warpRows) {
      emitRow(row, p.liveRows[t], b.index(t));
      continue;
    }
    int64_t owner = static_cast<int64_t>(t) % p.blockWarps;
    b.ifThen(b.cmp(arith::CmpIPredicate::eq, warp, owner),
             [&] { emitRow(row, p.liveRows[t], b.index(t)); });
  }
  if (warpRows)
    gpu::BarrierOp::create(b);
}
