//===- MatmulKernel.cpp - Tensor-core GEMM for many-row linears -----------===//

#include "kiln/Codegen/MatmulKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"
#include "MatmulSignature.h"
#include "TensorCoreOps.h"

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

/// Elements of padding per workgroup row: 16 bytes, so that the 8 rows an
/// ldmatrix reads fall in different banks.
static constexpr int64_t kRowPad = 8;
/// Workgroup memory one CTA may use on sm_90 (dynamic, opted in by the
/// device), less 1 KB for the static split-K flag and alignment.
static constexpr int64_t kMaxSharedBytes = 226 * 1024;

FailureOr<KernelSpec> kiln::codegen::buildMatmulKernel(OpBuilder &builder,
                                                       gpu::GPUModuleOp module,
                                                       const MatmulOptions &o) {
  if (o.wgmma)
    return buildWgmmaMatmulKernel(builder, module, o);
  MLIRContext *context = builder.getContext();
  KernelDType outDType = o.outputDType.value_or(o.dtype);
  bool custom = o.tileM != 128 || o.tileN != 128 || o.tileK != 32 ||
                o.warpsM != 2 || o.warpsN != 4 || o.stages != 4;
  std::string name = llvm::formatv(
      "matmul_{0}_n{1}_k{2}{3}{4}{5}{6}", stringifyDType(o.dtype), o.n, o.k,
      o.bias ? "_bias" : "",
      outDType != o.dtype ? "_o" + stringifyDType(outDType).str()
                          : std::string(),
      custom ? llvm::formatv("_t{0}x{1}x{2}s{3}", o.tileM, o.tileN, o.tileK,
                             o.stages)
                   .str()
             : std::string(),
      (o.splitK > 1 ? "_sk" + std::to_string(o.splitK) : std::string()) +
          (o.constantWeights ? "" : "_wdyn"));
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "matmul takes f16 or bf16 operands";
  if (!o.moreN.empty())
    return emitError(loc) << "a grouped GEMM (further weights) is the "
                             "swapped wgmma GEMM's (--wgmma --swap-ab)";
  int64_t warps = o.warpsM * o.warpsN;
  int64_t warpM = o.tileM / std::max<int64_t>(o.warpsM, 1);
  int64_t warpN = o.tileN / std::max<int64_t>(o.warpsN, 1);
  if (warps < 1 || warps > 32 || warpM % 16 || warpN % 16 || o.tileK % 16 ||
      o.tileM % o.warpsM || o.tileN % o.warpsN)
    return emitError(loc) << "tile " << o.tileM << "x" << o.tileN << "x"
                          << o.tileK << " over " << o.warpsM << "x" << o.warpsN
                          << " warps: each warp needs a multiple of 16 rows "
                             "and 16 columns, tileK a multiple of 16";
  if (o.stages < 2 || o.stages > 8)
    return emitError(loc) << "stages=" << o.stages
                          << ": the pipeline takes 2 to 8 stages";
  if (o.splitK < 1 || o.splitK > 64)
    return emitError(loc) << "split_k=" << o.splitK << " must be in [1, 64]";
  if (o.n <= 0 || o.k <= 0 || o.n % o.tileN || o.k % (o.tileK * o.splitK))
    return emitError(loc) << "n=" << o.n << " and k=" << o.k
                          << " must be positive multiples of the tile ("
                          << o.tileN << ", " << o.tileK * o.splitK << ")";
  int64_t threads = warps * kWarpSize;
  int64_t vec = 8; // 16-byte global and workgroup vectors
  int64_t aVectors = o.tileM * o.tileK / vec,
          bVectors = o.tileN * o.tileK / vec;
  if (aVectors % threads || bVectors % threads)
    return emitError(loc) << "the " << threads
                          << " threads must split the tiles' 16-byte vectors "
                             "evenly";
  int64_t aPerThread = aVectors / threads, bPerThread = bVectors / threads;
  int64_t vectorsPerRow = o.tileK / vec;
  int64_t fragsM = warpM / 16, fragsN = warpN / 8;
  int64_t stride = o.tileK + kRowPad;
  int64_t elementBytes = 2;
  int64_t aStageBytes = o.tileM * stride * elementBytes;
  int64_t bStageBytes = o.tileN * stride * elementBytes;
  int64_t sharedBytes = o.stages * (aStageBytes + bStageBytes);
  if (sharedBytes > kMaxSharedBytes)
    return emitError(loc) << sharedBytes
                          << " bytes of workgroup memory exceed the "
                          << kMaxSharedBytes << " a CTA may use";
  int64_t tilesN = o.n / o.tileN;
  int64_t kPerSplit = o.k / o.splitK;
  int64_t steps = kPerSplit / o.tileK;
  bool split = o.splitK > 1;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  MatmulArgs args = createMatmulKernel(b, module, name, o, threads);
  gpu::GPUFuncOp func = args.func;
  // Two CTAs per SM: one CTA's barriers and waits overlap the other's mma
  // (for 256 threads this caps ptxas at 128 registers) -- unless a warp's
  // accumulators alone take more than 64 registers (warp tiles beyond
  // 64 x 32), which that cap would spill.
  if (fragsM * fragsN * 4 <= 64)
    func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(2));
  Value x = args.x, w = args.w, biasArg = args.bias, y = args.y,
        stepArg = args.step, partials = args.partials, counters = args.counters;

  // The stages live in dynamic workgroup memory (more than the 48 KB a
  // static allocation may take): all A stages, then all B stages.
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                   MemRefLayoutAttrInterface(), workgroup);
  Value shared = gpu::DynamicSharedMemoryOp::create(b, bytesType);
  auto aTileType = MemRefType::get({o.stages, o.tileM, stride}, elementType,
                                   MemRefLayoutAttrInterface(), workgroup);
  auto bTileType = MemRefType::get({o.stages, o.tileN, stride}, elementType,
                                   MemRefLayoutAttrInterface(), workgroup);
  Value aTile =
      memref::ViewOp::create(b, aTileType, shared, b.index(0), ValueRange{});
  Value bTile = memref::ViewOp::create(
      b, bTileType, shared, b.index(o.stages * aStageBytes), ValueRange{});

  Value tid = b.threadIdX();
  Value lane = b.remU(tid, kWarpSize);
  Value warp = b.divU(tid, kWarpSize);
  Value warpRow = b.mul(b.divU(warp, o.warpsN), warpM);
  Value warpCol = b.mul(b.remU(warp, o.warpsN), warpN);
  Value rowBase = b.mul(b.blockIdY(), o.tileM);
  Value colBase = b.mul(b.blockIdX(), o.tileN);
  Value kBase = b.mul(b.blockIdZ(), kPerSplit);
  Value numRows = arith::IndexCastOp::create(
      b, b.getIndexType(),
      memref::LoadOp::create(b, stepArg, ValueRange{b.index(0)}));
  Value lastRow = b.sub(numRows, b.index(1));

  // The global coordinates each thread copies: (row, column) of its
  // vectors in the x and W tiles (columns relative to the K step).
  auto tileCoords = [&](int64_t i) {
    Value v = b.add(tid, i * threads);
    return std::make_pair(b.divU(v, vectorsPerRow),
                          b.mul(b.remU(v, vectorsPerRow), vec));
  };
  SmallVector<std::pair<Value, Value>> aCoords, bCoords;
  SmallVector<Value> aRows, bRows;
  for (int64_t i = 0; i < aPerThread; ++i) {
    aCoords.push_back(tileCoords(i));
    // Rows past T read the last row (valid memory); they are not stored.
    aRows.push_back(arith::MinUIOp::create(
        b, b.add(rowBase, aCoords.back().first), lastRow));
  }
  for (int64_t i = 0; i < bPerThread; ++i) {
    bCoords.push_back(tileCoords(i));
    bRows.push_back(b.add(colBase, bCoords.back().first));
  }
  // Issues K step `step`'s x and W tiles into `stage` as cp.async copies
  // (16 bytes each, bypassing L1); the caller commits the group.
  // `withX` / `withW`: which of the two tiles to copy (the prologue issues
  // W's before waiting for the previous kernel, x's after).
  auto copyTiles = [&](Value step, Value stage, bool withX = true,
                       bool withW = true) {
    Value k0 = b.add(kBase, b.mul(step, o.tileK));
    auto copy = [&](Value dst, ValueRange dstIdx, Value src,
                    ValueRange srcIdx) {
      nvgpu::DeviceAsyncCopyOp::create(
          b, nvgpu::DeviceAsyncTokenType::get(context), dst, dstIdx, src,
          srcIdx, b.getIndexAttr(vec), Value(), b.getUnitAttr());
    };
    for (int64_t i = 0; withX && i < aPerThread; ++i)
      copy(aTile, {stage, aCoords[i].first, aCoords[i].second}, x,
           {aRows[i], b.add(k0, aCoords[i].second)});
    for (int64_t i = 0; withW && i < bPerThread; ++i)
      copy(bTile, {stage, bCoords[i].first, bCoords[i].second}, w,
           {bRows[i], b.add(k0, bCoords[i].second)});
  };
  auto commit = [&] { NVVM::CpAsyncCommitGroupOp::create(b); };

  auto compute = [&](SmallVector<Value> accs, Value stage) {
    for (int64_t kk = 0; kk < o.tileK; kk += 16) {
      SmallVector<Value> aFrags, bFrags;
      for (int64_t mt = 0; mt < fragsM; ++mt)
        aFrags.push_back(loadAFragment(b, aTile, stage, lane,
                                       b.add(warpRow, mt * 16), b.index(kk)));
      for (int64_t nt = 0; nt < fragsN; ++nt)
        bFrags.push_back(loadBFragmentNK(b, bTile, stage, lane,
                                         b.add(warpCol, nt * 8), b.index(kk)));
      for (int64_t mt = 0; mt < fragsM; ++mt)
        for (int64_t nt = 0; nt < fragsN; ++nt) {
          Value &acc = accs[mt * fragsN + nt];
          acc = mmaM16N8K16(b, aFrags[mt], bFrags[nt], acc);
        }
    }
    return accs;
  };

  // Multi-stage pipeline: stages - 1 K steps are in flight before the
  // first mma. Iteration s waits until step s has landed (at most
  // stages - 2 younger groups pending), syncs (everyone is done with the
  // stage step s - 1 used, which the next copy overwrites), issues step
  // s + stages - 1, then runs the mma on step s. Every iteration commits a
  // group, empty past the last step, so the wait count stays constant.
  //
  // W is constant, so the prologue's W copies go out before waiting for the
  // previous kernel (programmatic dependent launch: they overlap its tail);
  // they join the first commit group, which iteration 0 waits for anyway.
  // A W written by the previous kernel (constantWeights false) waits too.
  for (int64_t s = 0; o.constantWeights && s < o.stages - 1 && s < steps; ++s)
    copyTiles(b.index(s), b.index(s), /*withX=*/false, /*withW=*/true);
  b.waitForPriorGrids();
  for (int64_t s = 0; s < o.stages - 1; ++s) {
    if (s < steps)
      copyTiles(b.index(s), b.index(s), /*withX=*/true,
                /*withW=*/!o.constantWeights);
    commit();
  }
  SmallVector<Value> init(fragsM * fragsN, zeroAccumulator(b));
  auto loop = scf::ForOp::create(
      b, b.index(0), b.index(steps), b.index(1), init,
      [&](OpBuilder &, Location, Value step, ValueRange carried) {
        NVVM::CpAsyncWaitGroupOp::create(b, o.stages - 2);
        gpu::BarrierOp::create(b);
        Value ahead = b.add(step, o.stages - 1);
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, ahead, b.index(steps)),
                 [&] { copyTiles(ahead, b.remU(ahead, o.stages)); });
        commit();
        SmallVector<Value> accs =
            compute(SmallVector<Value>(carried.begin(), carried.end()),
                    b.remU(step, o.stages));
        scf::YieldOp::create(b, accs);
      });
  SmallVector<Value> accs(loop.getResults().begin(), loop.getResults().end());

  // Accumulator (i, j) of fragment (mt, nt) is tile row
  // warpRow + mt*16 + lane/4 + 8i, column warpCol + nt*8 + (lane%4)*2 + j.
  Value laneRow = b.divU(lane, 4);
  Value laneCol = b.mul(b.remU(lane, 4), 2);
  auto tileRow = [&](int64_t mt, int64_t i) {
    return b.add(b.add(warpRow, mt * 16 + i * 8), laneRow);
  };
  auto tileCol = [&](int64_t nt) {
    return b.add(b.add(warpCol, nt * 8), laneCol);
  };
  // Writes the finished pair (row, col..col+1) of the tile, bias added.
  auto storePair = [&](Value pair, Value row, Value col) {
    Value gRow = b.add(rowBase, row), gCol = b.add(colBase, col);
    if (biasArg)
      pair = arith::AddFOp::create(b, pair, b.loadF32(biasArg, {gCol}, 2));
    b.ifThen(b.cmp(arith::CmpIPredicate::ult, gRow, numRows), [&] {
      b.storeFromF32(pair, y, {gRow, gCol});
    });
  };

  if (!split) {
    for (int64_t mt = 0; mt < fragsM; ++mt)
      for (int64_t nt = 0; nt < fragsN; ++nt)
        for (int64_t i = 0; i < 2; ++i)
          storePair(vector::ExtractOp::create(b, accs[mt * fragsN + nt],
                                              ArrayRef<int64_t>{i}),
                    tileRow(mt, i), tileCol(nt));
    gpu::ReturnOp::create(b);
  } else {
    // Split-K: publish this CTA's fp32 tile, count the arrivals at the
    // output tile; the last CTA sums the splitK partials in split order
    // (the result does not depend on which CTA finished last) and resets
    // the counter for the next launch.
    Value tile = b.add(b.mul(b.blockIdY(), tilesN), b.blockIdX());
    auto partialAt = [&](Value z, Value row, Value col) {
      Value record = b.add(b.mul(tile, o.splitK), z);
      return b.add(b.mul(b.add(b.mul(record, o.tileM), row), o.tileN), col);
    };
    for (int64_t mt = 0; mt < fragsM; ++mt)
      for (int64_t nt = 0; nt < fragsN; ++nt)
        for (int64_t i = 0; i < 2; ++i)
          b.storeVector(vector::ExtractOp::create(b, accs[mt * fragsN + nt],
                                                  ArrayRef<int64_t>{i}),
                        partials,
                        {partialAt(b.blockIdZ(), tileRow(mt, i), tileCol(nt))},
                        8);
    Value isLast =
        splitKArrival(b, counters, tile, args.splitFlag,
                      tid, o.splitK);
    b.ifThen(isLast, [&] {
      b.fenceGpu();
      for (int64_t mt = 0; mt < fragsM; ++mt)
        for (int64_t nt = 0; nt < fragsN; ++nt)
          for (int64_t i = 0; i < 2; ++i) {
            Value row = tileRow(mt, i), col = tileCol(nt);
            Value sum = b.f32Splat(0.0, 2);
            for (int64_t z = 0; z < o.splitK; ++z)
              sum = arith::AddFOp::create(
                  b, sum,
                  b.loadVector(partials, {partialAt(b.index(z), row, col)}, 2,
                               8));
            storePair(sum, row, col);
          }
    });
    gpu::ReturnOp::create(b);
  }

  return describeMatmul(o, name, threads, sharedBytes, [&](KernelSpec &spec) {
    spec.addParam("warps",
                  std::to_string(o.warpsM) + "x" + std::to_string(o.warpsN));
    spec.addParam("stages", o.stages);
    if (split)
      spec.addParam("split_k", o.splitK);
  });
}
