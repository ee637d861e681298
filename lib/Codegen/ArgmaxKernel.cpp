//===- ArgmaxKernel.cpp - Greedy token selection on the device ------------===//

#include "kiln/Codegen/ArgmaxKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

#include <limits>

using namespace mlir;
using namespace kiln::codegen;

FailureOr<KernelSpec> kiln::codegen::buildArgmaxKernel(OpBuilder &builder,
                                                       gpu::GPUModuleOp module,
                                                       const ArgmaxOptions &o) {
  MLIRContext *context = builder.getContext();
  std::string name = llvm::formatv("argmax_f32_v{0}", o.vocab);
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.vocab <= 0 || o.vocab > std::numeric_limits<int32_t>::max())
    return emitError(loc) << "argmax needs 0 < vocab < 2^31, got " << o.vocab;
  if (o.blockSize % kWarpSize || o.blockSize < kWarpSize || o.blockSize > 1024)
    return emitError(loc) << "block size must be a multiple of 32 up to "
                             "1024, got "
                          << o.blockSize;
  int64_t warps = o.blockSize / kWarpSize;

  KernelBuilder b(loc, builder);
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto logitsType = MemRefType::get({kGemvMaxRows, o.vocab}, f32);
  auto outType = MemRefType::get({kGemvMaxRows}, i32);
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  auto valuesType =
      MemRefType::get({warps}, f32, MemRefLayoutAttrInterface(), workgroup);
  auto indicesType =
      MemRefType::get({warps}, i32, MemRefLayoutAttrInterface(), workgroup);
  gpu::GPUFuncOp func =
      b.createKernel(module, name, {logitsType, outType},
                     {ArgAccess::ReadOnly, ArgAccess::WriteOnly}, o.blockSize,
                     {valuesType, indicesType, indicesType});
  Value logits = func.getArgument(0), out = func.getArgument(1);
  Value wgValues = func.getWorkgroupAttributions()[0];
  Value wgIndices = func.getWorkgroupAttributions()[1];
  Value wgBad = func.getWorkgroupAttributions()[2];

  Value tid = b.threadIdX();
  Value row = b.blockIdX();
  Value lane = arith::RemUIOp::create(b, tid, b.index(kWarpSize));
  Value warp = arith::DivUIOp::create(b, tid, b.index(kWarpSize));
  Value negInf = arith::ConstantOp::create(
      b, b.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
  Value posInf = arith::ConstantOp::create(
      b, b.getF32FloatAttr(std::numeric_limits<float>::infinity()));
  Value noIndex = arith::ConstantOp::create(
      b, b.getI32IntegerAttr(std::numeric_limits<int32_t>::max()));
  Value zero32 = arith::ConstantOp::create(b, b.getI32IntegerAttr(0));
  Value one32 = arith::ConstantOp::create(b, b.getI32IntegerAttr(1));

  // (value, index, bad) of the better of two candidates: the larger value,
  // the lower index among equals; bad is sticky.
  auto better = [&](Value v1, Value i1, Value v2, Value i2) {
    Value greater = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, v2, v1);
    Value equal = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, v2, v1);
    Value lower = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, i2, i1);
    Value take = arith::OrIOp::create(b, greater,
                                      arith::AndIOp::create(b, equal, lower));
    return std::make_pair(arith::SelectOp::create(b, take, v2, v1).getResult(),
                          arith::SelectOp::create(b, take, i2, i1).getResult());
  };

  // One candidate column: (value, index, bad) updated by logit `v` at
  // `column`. Strictly greater, so the first maximum a thread sees stays.
  auto consider = [&](Value v, Value column, ValueRange carried) {
    Value nan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, v, v);
    Value inf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, v, posInf);
    Value bad = arith::OrIOp::create(
        b, carried[2],
        arith::ExtUIOp::create(b, i32, arith::OrIOp::create(b, nan, inf)));
    Value greater =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, v, carried[0]);
    Value index = arith::IndexCastOp::create(b, i32, column);
    return SmallVector<Value>{
        arith::SelectOp::create(b, greater, v, carried[0]),
        arith::SelectOp::create(b, greater, index, carried[1]), bad};
  };
  // The bulk of the row in chunks of blockSize * 4 * kUnroll columns: each
  // thread issues kUnroll 16-byte loads (columns in increasing order: u,
  // then the 4 elements), then scans them -- a long logits row (128k
  // entries) is read with many loads in flight instead of one dependent
  // scalar load per step.
  constexpr int64_t kWidth = 4, kUnroll = 4;
  int64_t chunk = o.blockSize * kWidth * kUnroll;
  int64_t bulk = o.vocab % kWidth == 0 ? o.vocab / chunk * chunk : 0;
  SmallVector<Value> state = {negInf, noIndex, zero32};
  if (bulk > 0) {
    auto loop = scf::ForOp::create(
        b, b.index(0), b.index(bulk), b.index(chunk), state,
        [&](OpBuilder &, Location, Value base, ValueRange carried) {
          SmallVector<Value> columns, vectors;
          for (int64_t u = 0; u < kUnroll; ++u) {
            columns.push_back(b.add(b.add(base, u * o.blockSize * kWidth),
                                    b.mul(tid, kWidth)));
            vectors.push_back(
                b.loadVector(logits, {row, columns.back()}, kWidth));
          }
          SmallVector<Value> st(carried.begin(), carried.end());
          for (int64_t u = 0; u < kUnroll; ++u)
            for (int64_t e = 0; e < kWidth; ++e)
              st = consider(vector::ExtractOp::create(b, vectors[u],
                                                      ArrayRef<int64_t>{e}),
                            b.add(columns[u], e), st);
          scf::YieldOp::create(b, st);
        });
    state.assign(loop.getResults().begin(), loop.getResults().end());
  }
  // The rest one column per thread: bulk + tid, + blockSize, ...
  auto scan = scf::ForOp::create(
      b, b.add(tid, bulk), b.index(o.vocab), b.index(o.blockSize), state,
      [&](OpBuilder &, Location, Value column, ValueRange carried) {
        Value v = memref::LoadOp::create(b, logits, ValueRange{row, column});
        scf::YieldOp::create(b, consider(v, column, carried));
      });
  Value value = scan.getResult(0), index = scan.getResult(1),
        bad = scan.getResult(2);

  auto warpArgmax = [&](Value &v, Value &i, Value &flag, int64_t lanes) {
    for (int64_t offset = lanes / 2; offset >= 1; offset /= 2) {
      Value v2 = b.shuffleXor(v, offset), i2 = b.shuffleXor(i, offset),
            f2 = b.shuffleXor(flag, offset);
      auto [nv, ni] = better(v, i, v2, i2);
      v = nv;
      i = ni;
      flag = arith::OrIOp::create(b, flag, f2);
    }
  };
  warpArgmax(value, index, bad, kWarpSize);
  Value isLeader = b.cmp(arith::CmpIPredicate::eq, lane, b.index(0));
  b.ifThen(isLeader, [&] {
    memref::StoreOp::create(b, value, wgValues, ValueRange{warp});
    memref::StoreOp::create(b, index, wgIndices, ValueRange{warp});
    memref::StoreOp::create(b, bad, wgBad, ValueRange{warp});
  });
  gpu::BarrierOp::create(b);
  b.ifThen(b.cmp(arith::CmpIPredicate::eq, warp, b.index(0)), [&] {
    // Lanes past the warp count hold the identity.
    Value inRange = b.cmp(arith::CmpIPredicate::ult, lane, b.index(warps));
    Value slot = arith::MinUIOp::create(b, lane, b.index(warps - 1));
    Value v = arith::SelectOp::create(
        b, inRange, memref::LoadOp::create(b, wgValues, ValueRange{slot}),
        negInf);
    Value i = arith::SelectOp::create(
        b, inRange, memref::LoadOp::create(b, wgIndices, ValueRange{slot}),
        noIndex);
    Value f = arith::SelectOp::create(
        b, inRange, memref::LoadOp::create(b, wgBad, ValueRange{slot}), zero32);
    warpArgmax(v, i, f, kWarpSize);
    b.ifThen(isLeader, [&] {
      // A row of -inf only (no finite logit) is bad too.
      Value none = b.cmp(arith::CmpIPredicate::eq, i, noIndex);
      Value isBad = arith::OrIOp::create(
          b, b.cmp(arith::CmpIPredicate::eq, f, one32), none);
      Value minusOne = arith::ConstantOp::create(b, b.getI32IntegerAttr(-1));
      memref::StoreOp::create(b, arith::SelectOp::create(b, isBad, minusOne, i),
                              out, ValueRange{row});
    });
  });
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "argmax";
  spec.name = name;
  spec.grid = {1, 1, 1};
  spec.block = {o.blockSize, 1, 1};
  spec.addParam("vocab", o.vocab);
  spec.args = {{"logits", KernelDType::F32, {1, o.vocab}, false},
               {"ids", KernelDType::I32, {1}, true}};
  return spec;
}
