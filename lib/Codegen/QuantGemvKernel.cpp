//===- QuantGemvKernel.cpp - GEMV over packed low-bit weights -------------===//
//
// Decode is bound by reading W; packed weights cut those bytes 2x (int8) or
// ~3.9x (int4 with f16 scales per 128). Warp w of block b owns output rows
// (b * warpsPerBlock + w) * rowsPerWarp and up. A lane step loads 16 bytes
// of a row's codes (ld.global.nc, 512 contiguous bytes per warp), the
// group's scale (and zero point) and the matching x; the codes become fp32
// in registers and meet x in vector FMAs: u - z is built as a float by bit
// operations (see accumulate), the group's scale applied once per load.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/QuantGemvKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"
#include "NormRowEmitter.h"
#include "QuantDecode.h"
#include "QuantGemvSignature.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace kiln::codegen;

FailureOr<KernelSpec>
kiln::codegen::buildQuantGemvKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                                    const QuantGemvOptions &o) {
  MLIRContext *context = builder.getContext();
  int64_t R = o.tokens;
  bool chunked = R > 1;
  std::string name = quantGemvName(o, "");
  Location loc = NameLoc::get(StringAttr::get(context, name));
  FailureOr<int64_t> checked = checkPackedLayout(loc, "qgemv", o);
  if (failed(checked))
    return failure();
  int64_t perLoad = *checked; // weights one load covers
  if (o.rowsPerWarp < 1 || o.rowsPerWarp > 4 || o.warpsPerBlock < 1 ||
      o.warpsPerBlock > 32 || o.unroll < 1 || o.unroll > 16 || R < 1 || R > 16)
    return emitError(loc) << "rows_per_warp in [1, 4], warps in [1, 32], "
                             "unroll in [1, 16] and tokens in [1, 16]";
  if (failed(verifyQuantGemvMulti(loc, o)))
    return failure();
  FailureOr<NormShape> normRow = NormShape();
  if (o.addNormPrologue) {
    normRow = normShape(loc, o.k, o.dtype, 0);
    if (failed(normRow))
      return failure();
    if (normRow->threads > o.warpsPerBlock * kWarpSize)
      return emitError(loc)
             << "the add + norm prologue of a " << o.k << "-wide row needs "
             << normRow->threads << " threads, the CTA has "
             << o.warpsPerBlock * kWarpSize;
  }

  int64_t rowBytes = o.k * o.bits / 8;
  int64_t vectorsPerRow = rowBytes / kCodeLoadBytes;
  int64_t fullSteps = vectorsPerRow / kWarpSize;
  int64_t threads = o.warpsPerBlock * kWarpSize;
  int64_t rowsPerBlock = o.warpsPerBlock * o.rowsPerWarp;
  // Blocks of each weight, consecutive along grid x.
  SmallVector<int64_t> allRows = {o.n};
  allRows.append(o.moreN.begin(), o.moreN.end());
  int64_t blocks = 0;
  for (int64_t n : allRows)
    blocks += ceilDiv(n, rowsPerBlock);

  KernelBuilder b(loc, builder);
  Type f32 = b.getF32Type();
  SmallVector<Type> workgroup;
  if (o.addNormPrologue) {
    // The normalized row and the block sum's per-warp slots.
    auto space =
        gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
    workgroup.push_back(MemRefType::get({o.k}, getElementType(context, o.dtype),
                                        MemRefLayoutAttrInterface(), space));
    workgroup.push_back(MemRefType::get({o.warpsPerBlock}, f32,
                                        MemRefLayoutAttrInterface(), space));
  }
  QuantGemvArgs all =
      createQuantGemvKernel(b, module, name, o, threads, workgroup);
  auto func = cast<gpu::GPUFuncOp>(b.getInsertionBlock()->getParentOp());
  // With the prologue the loads of x read the normalized row.
  Value x =
      o.addNormPrologue ? Value(func.getWorkgroupAttributions()[0]) : all.x;
  Value stepArg = all.step;

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
  Value warp = b.divU(tid, kWarpSize);
  // Codes decode as QuantDecode.h describes: 4-wide vectors, one per code
  // position, against the matching lanes of x.
  int64_t codesPerWord = 32 / o.bits;
  auto vec4F32 = VectorType::get({4}, f32);
  // x at element `column` for token t: the perLoad weights' activations.
  auto loadX = [&](int64_t t, Value column) {
    return chunked ? b.loadF32(x, {loadTokenRows[t], column}, perLoad)
                   : b.loadF32(x, {column}, perLoad);
  };
  // Lanes of x meeting code position i of the 4 words.
  SmallVector<SmallVector<int64_t>> positions(codesPerWord);
  for (int64_t i = 0; i < codesPerWord; ++i)
    for (int64_t j = 0; j < 4; ++j)
      positions[i].push_back(j * codesPerWord + i);

  // Block `block` (counted from the weight's first) of W [n, K] whose
  // arguments are `args`.
  auto emitBlock = [&](const QuantGemvArgs &args, int64_t n, Value block) {
    Value packed = args.packed, scales = args.scales, zeros = args.zeros,
          biasArg = args.bias, y = args.y;
    bool rowsOvershoot = ceilDiv(n, rowsPerBlock) * rowsPerBlock != n;
    Value firstRow =
        b.add(b.mul(block, rowsPerBlock), b.mul(warp, o.rowsPerWarp));
    auto warpRows = b.clampedRows(firstRow, o.rowsPerWarp,
                                  rowsOvershoot ? b.index(n - 1) : Value());
    SmallVector<Value> rows = warpRows.rows, loadRows = warpRows.loadRows;

    // One group of lane steps at byte vectors `vectors` (per lane): every
    // load first, then the decoding and FMAs. Accumulators are [row r][token
    // t] at r * R + t; each load adds scale * sum_i (u_i - z) x_i.
    auto accumulate = [&](ArrayRef<Value> vectors, SmallVector<Value> accs) {
      struct Loaded {
        Value codes, scale, zero;
      };
      SmallVector<SmallVector<Loaded>> w(loadRows.size());
      SmallVector<SmallVector<Value>> xs(R);
      for (Value v : vectors) {
        Value column = b.mul(v, perLoad);
        Value group = b.divU(column, o.groupSize);
        for (auto [r, row] : llvm::enumerate(loadRows)) {
          Loaded l;
          l.codes = b.loadVector(packed, {row, b.mul(v, kCodeLoadBytes)},
                                 kCodeLoadBytes);
          Value s = memref::LoadOp::create(b, scales, ValueRange{row, group});
          l.scale = s.getType() == f32
                        ? s
                        : arith::ExtFOp::create(b, f32, s).getResult();
          if (zeros)
            l.zero = arith::UIToFPOp::create(
                b, f32,
                memref::LoadOp::create(b, zeros, ValueRange{row, group})
                    .getResult());
          w[r].push_back(l);
        }
        for (int64_t t = 0; t < R; ++t)
          xs[t].push_back(loadX(t, column));
      }
      for (size_t s = 0; s < vectors.size(); ++s)
        for (size_t r = 0; r < loadRows.size(); ++r) {
          const Loaded &l = w[r][s];
          SmallVector<Value> decoded =
              o.fp8 ? decodeFp8Codes(b, l.codes)
                    : decodeCodes(b, l.codes, codeOffset(b, l.zero, o.bits),
                                  o.bits);
          Value scale = vector::BroadcastOp::create(b, vec4F32, l.scale);
          for (int64_t t = 0; t < R; ++t) {
            Value dot;
            for (int64_t i = 0; i < codesPerWord; ++i) {
              Value xi = vector::ShuffleOp::create(b, xs[t][s], xs[t][s],
                                                   positions[i]);
              dot = dot ? vector::FMAOp::create(b, decoded[i], xi, dot)
                              .getResult()
                        : arith::MulFOp::create(b, decoded[i], xi).getResult();
            }
            accs[r * R + t] =
                vector::FMAOp::create(b, scale, dot, accs[r * R + t]);
          }
        }
      return accs;
    };
    // The constant codes of this warp's first group of steps go to L2 before
    // waiting for the previous kernel (programmatic dependent launch).
    for (Value row : loadRows)
      for (int64_t s = 0; s < std::min<int64_t>(fullSteps, o.unroll); ++s)
        b.prefetchL2(packed,
                     b.add(b.mul(row, rowBytes),
                           b.mul(b.add(lane, s * kWarpSize), kCodeLoadBytes)));
    b.waitForPriorGrids();
    if (o.addNormPrologue)
      emitNormPrologue(b,
                       {all.x, all.residual, all.normWeight, all.sum,
                        all.normed, tid, func.getWorkgroupAttributions()[1], x,
                        o.warpsPerBlock, o.k, o.normEpsilon,
                        getElementType(context, o.dtype)},
                       *normRow);

    SmallVector<Value> accs = b.walkLaneVectors(
        lane, vectorsPerRow, o.unroll,
        SmallVector<Value>(loadRows.size() * R, b.f32Splat(0.0, 4)),
        accumulate);

    // Lane sum, warp sum; lane 0 adds the bias and stores each row it owns.
    Value isLeader = b.cmp(arith::CmpIPredicate::eq, lane, b.index(0));
    for (size_t i = 0; i < accs.size(); ++i) {
      size_t r = i / R;
      int64_t t = static_cast<int64_t>(i % R);
      Value sum = b.warpSum(
          vector::ReductionOp::create(b, vector::CombiningKind::ADD, accs[i]));
      Value writes = isLeader;
      if (rowsOvershoot)
        writes = b.andI(writes,
                        b.cmp(arith::CmpIPredicate::ult, rows[r], b.index(n)));
      if (chunked)
        writes = b.andI(
            writes, b.cmp(arith::CmpIPredicate::ult, tokenRows[t], numTokens));
      b.ifThen(writes, [&] {
        // fp8 codes decode 2^-8 times their value (QuantDecode.h).
        Value total =
            o.fp8 ? arith::MulFOp::create(b, sum, b.f32(kFp8DecodeScale))
                        .getResult()
                  : sum;
        if (biasArg)
          total = arith::AddFOp::create(
              b, total,
              arith::ExtFOp::create(
                  b, f32,
                  memref::LoadOp::create(b, biasArg, ValueRange{rows[r]})
                      .getResult()));
        if (chunked)
          storeQuantGemvOutput(b, total, y, {tokenRows[t], rows[r]});
        else
          storeQuantGemvOutput(b, total, y, {rows[r]});
      });
    }
  };

  forEachQuantWeight(
      b, o, all, [&](int64_t n) { return ceilDiv(n, rowsPerBlock); },
      emitBlock);
  gpu::ReturnOp::create(b);

  return describeQuantGemv(o, name, blocks, threads);
}
