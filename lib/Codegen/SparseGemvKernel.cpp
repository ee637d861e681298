//===- SparseGemvKernel.cpp - GEMV over 2:4 compressed weights ------------===//
//
// Decode reads W; a 2:4 W is 9/16 of the dense bytes (half the values, a
// metadata nibble per group of 4). One warp per output row; a lane step
// loads 16 bytes of values (4 groups, 8 kept entries), the 2 metadata bytes
// of those groups and the 16 x entries they cover, then picks each kept
// entry's x by its 2-bit position (selects on the position's two bits: no
// dynamically indexed registers, which would go to local memory).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/SparseGemvKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// Kept values one lane step loads (16 bytes of 2-byte values), the groups
/// of 4 they belong to, and the x entries those cover.
static constexpr int64_t kValuesPerStep = 8;
static constexpr int64_t kGroupsPerStep = kValuesPerStep / 2;
static constexpr int64_t kColumnsPerStep = kGroupsPerStep * 4;

FailureOr<KernelSpec> kiln::codegen::buildSparseGemvKernel(
    OpBuilder &builder, gpu::GPUModuleOp module, const SparseGemvOptions &o) {
  MLIRContext *context = builder.getContext();
  int64_t R = o.tokens;
  bool chunked = R > 1;
  std::string name = llvm::formatv(
      "sgemv_{0}_n{1}_k{2}{3}{4}", stringifyDType(o.dtype), o.n, o.k,
      o.bias ? "_bias" : "", chunked ? "_t" + std::to_string(R) : "");
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "sgemv takes f16 or bf16 values and activations";
  if (o.n <= 0 || o.k <= 0 || o.k % kColumnsPerStep)
    return emitError(loc) << "k=" << o.k << " must be a positive multiple of "
                          << kColumnsPerStep
                          << " (the inputs one 16-byte load of values covers)";
  if (o.warpsPerBlock < 1 || o.warpsPerBlock > 32 || o.unroll < 1 ||
      o.unroll > 16 || R < 1 || R > 16)
    return emitError(loc)
           << "warps in [1, 32], unroll in [1, 16] and tokens in [1, 16]";

  int64_t stepsPerRow = o.k / kColumnsPerStep;
  int64_t threads = o.warpsPerBlock * kWarpSize;
  int64_t blocks = ceilDiv(o.n, o.warpsPerBlock);
  bool rowsOvershoot = blocks * o.warpsPerBlock != o.n;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  SmallVector<Type> argTypes = {
      chunked ? MemRefType::get({kGemvMaxRows, o.k}, elementType)
              : MemRefType::get({o.k}, elementType),
      MemRefType::get({o.n, o.k / 2}, elementType),
      MemRefType::get({o.n, o.k / 8}, b.getI8Type())};
  if (o.bias)
    argTypes.push_back(MemRefType::get({o.n}, elementType));
  argTypes.push_back(chunked ? MemRefType::get({kGemvMaxRows, o.n}, elementType)
                             : MemRefType::get({o.n}, elementType));
  SmallVector<ArgAccess> access(argTypes.size(), ArgAccess::ReadOnly);
  access.back() = ArgAccess::WriteOnly;
  if (chunked) {
    argTypes.push_back(MemRefType::get({4}, i32));
    access.push_back(ArgAccess::ReadOnly);
  }
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  unsigned next = 0;
  Value x = func.getArgument(next++), values = func.getArgument(next++),
        meta = func.getArgument(next++);
  Value biasArg = o.bias ? func.getArgument(next++) : Value();
  Value y = func.getArgument(next++);
  Value stepArg = chunked ? func.getArgument(next++) : Value();

  SmallVector<Value> tokenRows, loadTokenRows;
  Value numTokens;
  if (chunked) {
    KernelBuilder::TokenChunk chunk = b.tokenChunk(stepArg, R);
    numTokens = chunk.numRows;
    tokenRows = chunk.rows;
    loadTokenRows = chunk.loadRows;
  }
  Value tid = b.threadIdX();
  Value lane = b.remU(tid, kWarpSize);
  Value row = b.add(b.mul(b.blockIdX(), o.warpsPerBlock), b.divU(tid, 32));
  Value loadRow =
      rowsOvershoot ? arith::MinUIOp::create(b, row, b.index(o.n - 1)) : row;

  auto i32Const = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, i32, v);
  };
  auto bitSet = [&](Value bits, int64_t mask) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                 arith::AndIOp::create(b, bits, i32Const(mask)),
                                 i32Const(0));
  };
  // x[4 g + position] for the 4 x entries `xs[4g..4g+3]` of a group.
  auto pick = [&](ArrayRef<Value> xs, Value position) {
    Value odd = bitSet(position, 1), high = bitSet(position, 2);
    Value low = arith::SelectOp::create(b, odd, xs[1], xs[0]);
    Value upper = arith::SelectOp::create(b, odd, xs[3], xs[2]);
    return arith::SelectOp::create(b, high, upper, low).getResult();
  };
  auto loadX = [&](int64_t t, Value column) {
    return chunked ? b.loadF32(x, {loadTokenRows[t], column}, kColumnsPerStep)
                   : b.loadF32(x, {column}, kColumnsPerStep);
  };

  // One group of lane steps: every load first, then the picks and FMAs.
  // Accumulators: one fp32 per token.
  auto accumulate = [&](ArrayRef<Value> steps, SmallVector<Value> accs) {
    SmallVector<Value> kept, nibbles;
    SmallVector<SmallVector<Value>> xs(R);
    for (Value s : steps) {
      kept.push_back(b.loadF32(values, {loadRow, b.mul(s, kValuesPerStep)},
                               kValuesPerStep));
      Value bytes = b.loadVector(meta, {loadRow, b.mul(s, 2)}, 2, 2);
      Value word = vector::BitCastOp::create(
          b, VectorType::get({1}, b.getI16Type()), bytes);
      nibbles.push_back(arith::ExtUIOp::create(
          b, i32, vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0})));
      for (int64_t t = 0; t < R; ++t)
        xs[t].push_back(loadX(t, b.mul(s, kColumnsPerStep)));
    }
    for (size_t s = 0; s < steps.size(); ++s)
      for (int64_t g = 0; g < kGroupsPerStep; ++g) {
        Value nibble = arith::ShRUIOp::create(b, nibbles[s], i32Const(4 * g));
        Value first = arith::AndIOp::create(b, nibble, i32Const(3));
        Value second = arith::AndIOp::create(
            b, arith::ShRUIOp::create(b, nibble, i32Const(2)), i32Const(3));
        Value v0 =
            vector::ExtractOp::create(b, kept[s], ArrayRef<int64_t>{2 * g});
        Value v1 =
            vector::ExtractOp::create(b, kept[s], ArrayRef<int64_t>{2 * g + 1});
        for (int64_t t = 0; t < R; ++t) {
          SmallVector<Value> group;
          for (int64_t j = 0; j < 4; ++j)
            group.push_back(vector::ExtractOp::create(
                b, xs[t][s], ArrayRef<int64_t>{4 * g + j}));
          accs[t] = LLVM::FMAOp::create(b, v0, pick(group, first), accs[t]);
          accs[t] = LLVM::FMAOp::create(b, v1, pick(group, second), accs[t]);
        }
      }
    return accs;
  };

  // The constant values of this warp's first steps go to L2 before waiting
  // for the previous kernel (programmatic dependent launch).
  for (int64_t s = 0; s < std::min<int64_t>(stepsPerRow / kWarpSize, o.unroll);
       ++s)
    b.prefetchL2(values,
                 b.add(b.mul(loadRow, o.k / 2),
                       b.mul(b.add(lane, s * kWarpSize), kValuesPerStep)));
  b.waitForPriorGrids();

  SmallVector<Value> accs =
      b.walkLaneVectors(lane, stepsPerRow, o.unroll,
                        SmallVector<Value>(R, b.f32(0.0)), accumulate);

  // Warp sum; lane 0 adds the bias and stores.
  Value writesRow = b.cmp(arith::CmpIPredicate::eq, lane, b.index(0));
  if (rowsOvershoot)
    writesRow =
        b.andI(writesRow, b.cmp(arith::CmpIPredicate::ult, row, b.index(o.n)));
  for (int64_t t = 0; t < R; ++t) {
    Value sum = b.warpSum(accs[t]);
    Value writes = writesRow;
    if (chunked)
      writes = b.andI(
          writes, b.cmp(arith::CmpIPredicate::ult, tokenRows[t], numTokens));
    b.ifThen(writes, [&] {
      Value total = sum;
      if (biasArg)
        total = arith::AddFOp::create(
            b, total,
            arith::ExtFOp::create(
                b, f32,
                memref::LoadOp::create(b, biasArg, ValueRange{row})
                    .getResult()));
      Value narrowed = arith::TruncFOp::create(b, elementType, total);
      if (chunked)
        memref::StoreOp::create(b, narrowed, y, ValueRange{tokenRows[t], row});
      else
        memref::StoreOp::create(b, narrowed, y, ValueRange{row});
    });
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "sgemv";
  spec.name = name;
  spec.grid = {blocks, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("n", o.n);
  spec.addParam("k", o.k);
  spec.addParam("unroll", o.unroll);
  if (o.bias)
    spec.addParam("bias", 1);
  if (chunked)
    spec.addParam("tokens", R);
  spec.args = {
      {"x", o.dtype,
       chunked ? SmallVector<int64_t>{R, o.k} : SmallVector<int64_t>{o.k},
       false},
      {"values", o.dtype, {o.n, o.k / 2}, false},
      {"meta", KernelDType::U8, {o.n, o.k / 8}, false}};
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  spec.args.push_back(
      {"y", o.dtype,
       chunked ? SmallVector<int64_t>{R, o.n} : SmallVector<int64_t>{o.n},
       true});
  if (chunked)
    spec.args.push_back({"step", KernelDType::I32, {4}, false});
  return spec;
}
