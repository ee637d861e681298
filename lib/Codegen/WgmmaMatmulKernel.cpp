//===- WgmmaMatmulKernel.cpp - Hopper warpgroup GEMM for prefill ----------===//
//
// y = x . W^T on sm_90a's warpgroup tensor cores (wgmma.mma_async): each
// warpgroup (4 warps) owns 64 token rows of the CTA tile and all of its
// features; both operands are read from workgroup memory through matrix
// descriptors, so no thread loads fragments (ldmatrix) or holds A/B in
// registers -- the limit of the mma.sync GEMM (MatmulKernel.cpp), which
// spends its issue slots on ldmatrix and runs at 2 warps a scheduler.
//
// Workgroup layout: per stage, x's tile [tileM, 64] then W's [tileN, 64],
// both K-major with 128-byte rows in the 128-byte swizzle wgmma expects:
// 16-byte chunk c of row r sits at chunk c ^ (r % 8) of its row, 8-row
// atoms 1024 bytes apart (the descriptor's stride byte offset). The copies
// are cp.async (each thread its 16-byte vectors) into that layout; a
// fence.proxy.async makes them visible to the tensor cores' async proxy.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/GemvKernel.h"
#include "kiln/Codegen/MatmulKernel.h"

#include "KernelBuilder.h"
#include "MatmulSignature.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// K elements a stage holds: one 128-byte swizzle row of 2-byte elements.
static constexpr int64_t kStageK = 64;
/// Rows one warpgroup's wgmma covers (m64).
static constexpr int64_t kWarpgroupRows = 64;
static constexpr int64_t kWarpgroupThreads = 128;
/// The 128-byte swizzle repeats every 8 rows of 128 bytes.
static constexpr int64_t kSwizzleAtomBytes = 1024;
/// Workgroup memory one CTA may use on sm_90 (dynamic, opted in).
static constexpr int64_t kMaxSharedBytes = 227 * 1024;

/// The 64-bit wgmma matrix descriptor of a K-major, 128-byte-swizzled tile
/// starting at workgroup byte address `address` (i64): start address >> 4
/// in bits 0-13, leading byte offset (unused by this layout; 1 as CUTLASS
/// sets it) in 16-29, stride byte offset 1024 >> 4 in 32-45, swizzle mode
/// 1 (128 bytes) in 62-63.
static Value matrixDescriptor(KernelBuilder &b, Value address) {
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, i64, v).getResult();
  };
  Value start = arith::ShRUIOp::create(
      b, arith::AndIOp::create(b, address, constant(0x3FFFF)), constant(4));
  uint64_t fixed = (uint64_t(1) << 16) |
                   (uint64_t(kSwizzleAtomBytes >> 4) << 32) |
                   (uint64_t(1) << 62);
  return arith::OrIOp::create(b, start, constant(static_cast<int64_t>(fixed)));
}

FailureOr<KernelSpec> kiln::codegen::buildWgmmaMatmulKernel(
    OpBuilder &builder, gpu::GPUModuleOp module, const MatmulOptions &o) {
  MLIRContext *context = builder.getContext();
  KernelDType outDType = o.outputDType.value_or(o.dtype);
  bool swap = o.swapAB, split = o.splitK > 1;
  std::string allN;
  for (int64_t n : o.allN())
    allN += (allN.empty() ? "" : "_") + std::to_string(n);
  std::string name =
      llvm::formatv("matmul_{0}_n{1}_k{2}{3}{4}_t{5}x{6}x{7}s{8}_wg{9}{10}{11}",
                    stringifyDType(o.dtype), allN, o.k, o.bias ? "_bias" : "",
                    outDType != o.dtype ? "_o" + stringifyDType(outDType).str()
                                        : std::string(),
                    o.tileM, o.tileN, kStageK, o.stages, swap ? "t" : "",
                    split ? "_sk" + std::to_string(o.splitK) : std::string(),
                    o.constantWeights ? "" : "_wdyn");
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "the wgmma matmul takes f16 or bf16 operands";
  if (!swap && (o.tileM % kWarpgroupRows || o.tileM < kWarpgroupRows ||
                o.tileM > 2 * kWarpgroupRows))
    return emitError(loc) << "wgmma tile of " << o.tileM
                          << " token rows: 64 or 128 (one warpgroup a 64)";
  if (!swap && (o.tileN < 16 || o.tileN > 256 || o.tileN % 16))
    return emitError(loc) << "wgmma tile of " << o.tileN
                          << " features: a multiple of 16 up to 256";
  if (swap && (o.tileN % kWarpgroupRows || o.tileN < kWarpgroupRows ||
               o.tileN > 2 * kWarpgroupRows))
    return emitError(loc) << "swapped wgmma tile of " << o.tileN
                          << " features: 64 or 128 (one warpgroup a 64)";
  if (swap && (o.tileM < 8 || o.tileM > 256 || o.tileM % 8))
    return emitError(loc) << "swapped wgmma tile of " << o.tileM
                          << " token rows: a multiple of 8 up to 256";
  if (o.tileK != kStageK)
    return emitError(loc) << "wgmma tile_k " << o.tileK << ": must be "
                          << kStageK << " (one 128-byte swizzle row)";
  if (o.stages < 3 || o.stages > 8)
    return emitError(loc) << "stages=" << o.stages
                          << ": the wgmma pipeline takes 3 to 8 stages";
  if (o.splitK < 1 || o.splitK > 64)
    return emitError(loc) << "split_k=" << o.splitK << " must be in [1, 64]";
  if (!o.moreN.empty() && (o.bias || o.moreN.size() > 3))
    return emitError(loc) << "a grouped wgmma matmul (n=" << allN
                          << ") takes at most 4 weights and no bias";
  for (int64_t n : o.allN())
    if (n <= 0 || o.k <= 0 || n % o.tileN || o.k % (kStageK * o.splitK))
      return emitError(loc) << "n=" << n << " and k=" << o.k
                            << " must be positive multiples of the tile ("
                            << o.tileN << ", " << kStageK * o.splitK << ")";
  // wgmma's A operand (M rows, 64 a warpgroup) and B operand (N rows):
  // tokens and features, or (swapped, for few rows) features and tokens.
  int64_t aRows = swap ? o.tileN : o.tileM, bRows = swap ? o.tileM : o.tileN;
  int64_t warpgroups = aRows / kWarpgroupRows;
  int64_t threads = warpgroups * kWarpgroupThreads;
  int64_t vec = 8; // 16-byte vectors of 2-byte elements
  int64_t chunksPerRow = kStageK / vec;
  int64_t aVectors = aRows * chunksPerRow, bVectors = bRows * chunksPerRow;
  int64_t elementBytes = 2;
  int64_t aStageElems = aRows * kStageK, bStageElems = bRows * kStageK;
  int64_t stageElems = aStageElems + bStageElems;
  // One more atom: the stages start at the first 1024-byte boundary.
  int64_t sharedBytes =
      o.stages * stageElems * elementBytes + kSwizzleAtomBytes;
  if (sharedBytes > kMaxSharedBytes)
    return emitError(loc) << sharedBytes
                          << " bytes of workgroup memory exceed the "
                          << kMaxSharedBytes << " a CTA may use";
  // Column tiles over all members (grid x).
  int64_t tilesN = o.totalN() / o.tileN;
  int64_t kPerSplit = o.k / o.splitK;
  int64_t steps = kPerSplit / kStageK;
  // Copies run `ahead` K steps in front of the wgmma; one wgmma group stays
  // in flight, so the stage a copy overwrites was read two steps before.
  int64_t ahead = o.stages - 2;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type f32 = b.getF32Type();
  Type i64 = b.getI64Type();
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  MatmulArgs args = createMatmulKernel(b, module, name, o, threads);
  Value x = args.x, biasArg = args.bias, stepArg = args.step;

  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                   MemRefLayoutAttrInterface(), workgroup);
  Value shared = gpu::DynamicSharedMemoryOp::create(b, bytesType);
  Value sharedAddress =
      memref::ExtractAlignedPointerAsIndexOp::create(b, shared);
  // Bytes from the allocation's start to its first 1024-byte boundary.
  Value pad = b.remU(b.sub(b.index(kSwizzleAtomBytes),
                           b.remU(sharedAddress, kSwizzleAtomBytes)),
                     kSwizzleAtomBytes);
  auto stagesType = MemRefType::get({o.stages * stageElems}, elementType,
                                    MemRefLayoutAttrInterface(), workgroup);
  Value stagesTile =
      memref::ViewOp::create(b, stagesType, shared, pad, ValueRange{});
  Value stagesAddress =
      arith::IndexCastUIOp::create(b, i64, b.add(sharedAddress, pad));

  Value tid = b.threadIdX();
  Value warpgroup = b.divU(tid, kWarpgroupThreads);
  Value rowBase = b.mul(b.blockIdY(), o.tileM);
  Value kBase = split ? b.mul(b.blockIdZ(), kPerSplit) : b.index(0);
  Value numRows = arith::IndexCastOp::create(
      b, b.getIndexType(),
      memref::LoadOp::create(b, stepArg, ValueRange{b.index(0)}));
  Value lastRow = b.sub(numRows, b.index(1));

  if (aVectors % threads || bVectors % threads)
    return emitError(loc) << "the " << threads
                          << " threads must split the tiles' 16-byte vectors "
                             "evenly";
  // One member's tile: W [n, K] -> y, its column tile at colBase (each
  // member of a grouped GEMM gets its own copy of the code, selected by
  // grid x below: the operands are distinct memrefs).
  auto emitTile = [&](Value w, Value y, Value colBase) {
    // Each thread's 16-byte vectors of one operand tile: swizzled element
    // offset in the stage (relative to the tile), global row and column.
    struct Vector {
      Value offset, globalRow, column;
    };
    auto vectorsOf = [&](int64_t rows, bool isX) {
      SmallVector<Vector> out;
      for (int64_t i = 0; i * threads < rows * chunksPerRow; ++i) {
        Value v = b.add(tid, i * threads);
        Value row = b.divU(v, chunksPerRow), chunk = b.remU(v, chunksPerRow);
        Value swizzled = arith::XOrIOp::create(b, chunk, b.remU(row, 8));
        Vector r;
        r.offset = b.add(b.mul(row, kStageK), b.mul(swizzled, vec));
        r.column = b.mul(chunk, vec);
        // Rows past T read the last row (valid memory); they are not stored.
        r.globalRow =
            isX ? Value(arith::MinUIOp::create(b, b.add(rowBase, row), lastRow))
                : b.add(colBase, row);
        out.push_back(r);
      }
      return out;
    };
    // x's tile is A unless swapped; W's the other.
    int64_t xRows = swap ? bRows : aRows, wRows = swap ? aRows : bRows;
    int64_t xSlot = swap ? aStageElems : 0, wSlot = swap ? 0 : aStageElems;
    SmallVector<Vector> xVecs = vectorsOf(xRows, /*isX=*/true);
    SmallVector<Vector> wVecs = vectorsOf(wRows, /*isX=*/false);

    auto copyTiles = [&](Value step, Value stage, bool withX, bool withW) {
      Value k0 = b.add(kBase, b.mul(step, kStageK));
      Value stageBase = b.mul(stage, stageElems);
      auto copy = [&](Value dstOffset, Value src, Value row, Value column) {
        nvgpu::DeviceAsyncCopyOp::create(
            b, nvgpu::DeviceAsyncTokenType::get(context), stagesTile,
            ValueRange{dstOffset}, src, ValueRange{row, b.add(k0, column)},
            b.getIndexAttr(vec), Value(), b.getUnitAttr());
      };
      auto slotBase = [&](int64_t slot) {
        return slot ? b.add(stageBase, slot) : stageBase;
      };
      if (withX) {
        Value base = slotBase(xSlot);
        for (const Vector &v : xVecs)
          copy(b.add(base, v.offset), x, v.globalRow, v.column);
      }
      if (withW) {
        Value base = slotBase(wSlot);
        for (const Vector &v : wVecs)
          copy(b.add(base, v.offset), w, v.globalRow, v.column);
      }
    };
    auto commit = [&] { NVVM::CpAsyncCommitGroupOp::create(b); };

    int64_t accCount = bRows / 2;
    auto accType = LLVM::LLVMStructType::getLiteral(
        context, SmallVector<Type>(accCount, f32));
    NVVM::WGMMATypes operandType = o.dtype == KernelDType::BF16
                                       ? NVVM::WGMMATypes::bf16
                                       : NVVM::WGMMATypes::f16;
    auto shape = NVVM::MMAShapeAttr::get(context, kWarpgroupRows, bRows, 16);
    // This warpgroup's 64 rows of A, and all of B, in stage `stage`; each
    // 16-deep slice of K starts 32 bytes further into the swizzled rows.
    Value aRowsBytes = arith::IndexCastUIOp::create(
        b, i64, b.mul(warpgroup, kWarpgroupRows * kStageK * elementBytes));
    auto mmaStep = [&](Value acc, Value stage) {
      Value stageBytes = arith::IndexCastUIOp::create(
          b, i64, b.mul(stage, stageElems * elementBytes));
      Value aAddress = arith::AddIOp::create(
          b, arith::AddIOp::create(b, stagesAddress, stageBytes), aRowsBytes);
      Value bAddress = arith::AddIOp::create(
          b, arith::AddIOp::create(b, stagesAddress, stageBytes),
          arith::ConstantIntOp::create(b, i64, aStageElems * elementBytes));
      for (int64_t kk = 0; kk < kStageK; kk += 16) {
        Value kkBytes = arith::ConstantIntOp::create(b, i64, kk * elementBytes);
        Value descA =
            matrixDescriptor(b, arith::AddIOp::create(b, aAddress, kkBytes));
        Value descB =
            matrixDescriptor(b, arith::AddIOp::create(b, bAddress, kkBytes));
        acc = NVVM::WgmmaMmaAsyncOp::create(
            b, accType, acc, descA, descB, shape, operandType, operandType,
            NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
            NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
            NVVM::MMALayout::row, NVVM::MMALayout::col,
            NVVM::MMAIntOverflowAttr());
      }
      return acc;
    };

    // W is constant: its first stages go out before waiting for the previous
    // kernel (programmatic dependent launch) and join the first commit group.
    for (int64_t s = 0; o.constantWeights && s < ahead && s < steps; ++s)
      copyTiles(b.index(s), b.index(s), /*withX=*/false, /*withW=*/true);
    b.waitForPriorGrids();
    for (int64_t s = 0; s < ahead; ++s) {
      if (s < steps)
        copyTiles(b.index(s), b.index(s), /*withX=*/true,
                  /*withW=*/!o.constantWeights);
      commit();
    }
    // Iteration s: wait for step s's copies (`ahead` - 1 younger groups may
    // be pending), publish them to the async proxy, sync (every warpgroup
    // has also retired its wgmma of step s - 2, whose stage the next copy
    // reuses), copy step s + ahead, then issue step s's wgmma and keep it in
    // flight while the next iteration waits.
    Value zeroAcc = LLVM::ZeroOp::create(b, accType);
    auto loop = scf::ForOp::create(
        b, b.index(0), b.index(steps), b.index(1), ValueRange{zeroAcc},
        [&](OpBuilder &, Location, Value step, ValueRange carried) {
          NVVM::CpAsyncWaitGroupOp::create(b, ahead - 1);
          NVVM::FenceProxyOp::create(
              b, NVVM::ProxyKind::async_shared,
              NVVM::SharedSpaceAttr::get(context, NVVM::SharedSpace::shared_cta));
          gpu::BarrierOp::create(b);
          Value next = b.add(step, ahead);
          b.ifThen(b.cmp(arith::CmpIPredicate::ult, next, b.index(steps)),
                   [&] { copyTiles(next, b.remU(next, o.stages), true, true); });
          commit();
          NVVM::WgmmaFenceAlignedOp::create(b);
          Value acc = mmaStep(carried[0], b.remU(step, o.stages));
          NVVM::WgmmaGroupSyncAlignedOp::create(b);
          NVVM::WgmmaWaitGroupSyncOp::create(b, b.getI64IntegerAttr(1));
          scf::YieldOp::create(b, acc);
        });
    NVVM::WgmmaWaitGroupSyncOp::create(b, b.getI64IntegerAttr(0));
    Value acc = loop.getResult(0);

    // Accumulator element e of a warpgroup's m64nN tile: n8 block j = e / 4,
    // A row 16 * warp + lane / 4 (+ 8 for e % 4 >= 2), B row 8 j + 2 (lane %
    // 4) + e % 2 -- mma.sync's m16n8 layout repeated along N. Each pair
    // (e, e + 1) is two adjacent B rows of one A row.
    Value lane = b.remU(tid, kWarpSize);
    Value warpInGroup = b.remU(b.divU(tid, kWarpSize), 4);
    Value laneRow =
        b.add(b.add(b.mul(warpgroup, kWarpgroupRows), b.mul(warpInGroup, 16)),
              b.divU(lane, 4));
    Value laneCol = b.mul(b.remU(lane, 4), 2);
    auto pairType = VectorType::get({2}, f32);
    struct Pair {
      int64_t e;
      Value aRow, bRow;
    };
    SmallVector<Pair> pairs;
    for (int64_t j = 0; j < bRows / 8; ++j)
      for (int64_t half = 0; half < 2; ++half)
        pairs.push_back(
            {4 * j + 2 * half, b.add(laneRow, half * 8), b.add(laneCol, j * 8)});
    auto pairValue = [&](const Pair &p) {
      return vector::FromElementsOp::create(
                 b, pairType,
                 ValueRange{LLVM::ExtractValueOp::create(b, acc, p.e),
                            LLVM::ExtractValueOp::create(b, acc, p.e + 1)})
          .getResult();
    };
    // Writes a finished pair: one token row and two features, or (swapped)
    // two token rows of one feature; bias added, rows past T skipped.
    auto storePair = [&](Value pair, const Pair &p) {
      if (!swap) {
        Value gRow = b.add(rowBase, p.aRow), gCol = b.add(colBase, p.bRow);
        if (biasArg)
          pair = arith::AddFOp::create(b, pair, b.loadF32(biasArg, {gCol}, 2));
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, gRow, numRows), [&] {
          b.storeFromF32(pair, y, {gRow, gCol});
        });
        return;
      }
      Value gCol = b.add(colBase, p.aRow);
      Value bias = biasArg ? b.loadF32(biasArg, {gCol}, 1) : Value();
      for (int64_t i = 0; i < 2; ++i) {
        Value gRow = b.add(rowBase, b.add(p.bRow, i));
        Value one = vector::FromElementsOp::create(
            b, VectorType::get({1}, f32),
            ValueRange{vector::ExtractOp::create(b, pair, ArrayRef<int64_t>{i})});
        if (bias)
          one = arith::AddFOp::create(b, one, bias);
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, gRow, numRows), [&] {
          b.storeFromF32(one, y, {gRow, gCol});
        });
      }
    };

    if (!split) {
      for (const Pair &p : pairs)
        storePair(pairValue(p), p);
    } else {
      // Split-K: publish this CTA's fp32 tile (A rows x B rows, pairs
      // contiguous), count the arrivals at the output tile; the last CTA sums
      // the splitK partials in split order (the result does not depend on
      // which CTA finished last) and resets the counter for the next launch.
      Value tile = b.add(b.mul(b.blockIdY(), tilesN), b.blockIdX());
      auto partialAt = [&](Value z, const Pair &p) {
        Value record = b.add(b.mul(tile, o.splitK), z);
        return b.add(b.mul(b.add(b.mul(record, aRows), p.aRow), bRows), p.bRow);
      };
      for (const Pair &p : pairs)
        b.storeVector(pairValue(p), args.partials, {partialAt(b.blockIdZ(), p)},
                      8);
      Value isLast = splitKArrival(b, args.counters, tile,
                                   args.splitFlag,
                                   tid, o.splitK);
      b.ifThen(isLast, [&] {
        b.fenceGpu();
        for (const Pair &p : pairs) {
          Value sum = b.f32Splat(0.0, 2);
          for (int64_t z = 0; z < o.splitK; ++z)
            sum = arith::AddFOp::create(
                b, sum,
                b.loadVector(args.partials, {partialAt(b.index(z), p)}, 2, 8));
          storePair(sum, p);
        }
      });
    }
  };
  if (o.moreN.empty()) {
    emitTile(args.w, args.y, b.mul(b.blockIdX(), o.tileN));
  } else {
    SmallVector<Value> ws = {args.w}, ys = {args.y};
    ws.append(args.moreW.begin(), args.moreW.end());
    ys.append(args.moreY.begin(), args.moreY.end());
    int64_t firstTile = 0;
    for (auto [i, n] : llvm::enumerate(o.allN())) {
      int64_t tiles = n / o.tileN;
      Value tileInMember = b.sub(b.blockIdX(), b.index(firstTile));
      Value inMember = arith::AndIOp::create(
          b, b.cmp(arith::CmpIPredicate::uge, b.blockIdX(), b.index(firstTile)),
          b.cmp(arith::CmpIPredicate::ult, b.blockIdX(),
                b.index(firstTile + tiles)));
      b.ifThen(inMember, [&, i = i] {
        emitTile(ws[i], ys[i], b.mul(tileInMember, o.tileN));
      });
      firstTile += tiles;
    }
  }
  gpu::ReturnOp::create(b);

  return describeMatmul(o, name, threads, sharedBytes, [&](KernelSpec &spec) {
    spec.addParam("stages", o.stages);
    if (split)
      spec.addParam("split_k", o.splitK);
    spec.addParam("wgmma", swap ? "swap" : "1");
  });
}
