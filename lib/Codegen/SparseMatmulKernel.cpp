//===- SparseMatmulKernel.cpp - 2:4 sparse tensor-core GEMM ---------------===//
//
// The pipeline of the dense GEMM (MatmulKernel.cpp) with the roles of its
// operands swapped: mma.sp takes the sparse operand as A, so W's
// compressed rows are A (M = output features) and the tokens B (N).
// Per 32 of logical K a warp issues one m16n8k32 mma.sp per fragment pair,
// where the dense kernel issues two m16n8k16: half the tensor-core work,
// and 9/16 of W's bytes.
//
// Layouts (PTX ISA, sparse mma metadata for m16n8k32 f16/bf16, selector
// 0): the compressed 16 x 16 A fragment is the dense A layout (ldmatrix.x4
// on the values tile, compressed column c belonging to group c / 2); lane
// q = lane % 4 in {0, 1} gives the metadata of K [16q, 16q + 16) -- two
// bytes of Kiln's [N, K/8] metadata, nibble j for group j -- of row lane/4
// in the low half of the word and of row lane/4 + 8 in the high half.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/SparseMatmulKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"
#include "TensorCoreOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// Elements of padding per workgroup row (16 bytes: ldmatrix's 8 rows in
/// different banks), as in the dense GEMM.
static constexpr int64_t kRowPad = 8;
static constexpr int64_t kMaxSharedBytes = 226 * 1024;
/// Logical K one mma.sp covers.
static constexpr int64_t kMmaK = 32;

FailureOr<KernelSpec> kiln::codegen::buildSparseMatmulKernel(
    OpBuilder &builder, gpu::GPUModuleOp module, const SparseMatmulOptions &o) {
  MLIRContext *context = builder.getContext();
  std::string name =
      llvm::formatv("smatmul_{0}_n{1}_k{2}{3}", stringifyDType(o.dtype), o.n,
                    o.k, o.bias ? "_bias" : "");
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "smatmul takes f16 or bf16 operands";
  int64_t warps = o.warpsM * o.warpsN;
  int64_t warpM = o.tileFeatures / std::max<int64_t>(o.warpsM, 1);
  int64_t warpN = o.tileTokens / std::max<int64_t>(o.warpsN, 1);
  // Metadata moves in 8-byte cp.async copies: 64 of K per copy.
  if (warps < 1 || warps > 32 || warpM % 16 || warpN % 8 || o.tileK % 64 ||
      o.tileFeatures % o.warpsM || o.tileTokens % o.warpsN)
    return emitError(loc) << "tile " << o.tileFeatures << "x" << o.tileTokens
                          << "x" << o.tileK << " over " << o.warpsM << "x"
                          << o.warpsN
                          << " warps: each warp needs a multiple of 16 "
                             "features and 8 tokens, tileK a multiple of 64";
  if (o.stages < 2 || o.stages > 8)
    return emitError(loc) << "stages=" << o.stages
                          << ": the pipeline takes 2 to 8 stages";
  if (o.n <= 0 || o.k <= 0 || o.n % o.tileFeatures || o.k % o.tileK)
    return emitError(loc) << "n=" << o.n << " and k=" << o.k
                          << " must be positive multiples of the tile ("
                          << o.tileFeatures << ", " << o.tileK << ")";
  int64_t threads = warps * kWarpSize;
  int64_t vec = 8; // 16-byte vectors of 2-byte elements
  int64_t valuesPerRow = o.tileK / 2, metaPerRow = o.tileK / 8;
  int64_t vVectors = o.tileFeatures * valuesPerRow / vec;
  int64_t xVectors = o.tileTokens * o.tileK / vec;
  int64_t metaCopies = o.tileFeatures * metaPerRow / 8;
  if (vVectors % threads || xVectors % threads)
    return emitError(loc) << "the " << threads
                          << " threads must split the tiles' 16-byte vectors "
                             "evenly";
  int64_t vPerThread = vVectors / threads, xPerThread = xVectors / threads;
  int64_t fragsM = warpM / 16, fragsN = warpN / 8;
  int64_t vStride = valuesPerRow + kRowPad, xStride = o.tileK + kRowPad;
  int64_t vStageBytes = o.tileFeatures * vStride * 2;
  int64_t xStageBytes = o.tileTokens * xStride * 2;
  int64_t metaStageBytes = o.tileFeatures * metaPerRow;
  int64_t sharedBytes = o.stages * (vStageBytes + xStageBytes + metaStageBytes);
  if (sharedBytes > kMaxSharedBytes)
    return emitError(loc) << sharedBytes
                          << " bytes of workgroup memory exceed the "
                          << kMaxSharedBytes << " a CTA may use";
  int64_t steps = o.k / o.tileK;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type i8 = b.getI8Type();
  SmallVector<Type> argTypes = {
      MemRefType::get({kGemvMaxRows, o.k}, elementType),
      MemRefType::get({o.n, o.k / 2}, elementType),
      MemRefType::get({o.n, o.k / 8}, i8)};
  if (o.bias)
    argTypes.push_back(MemRefType::get({o.n}, elementType));
  argTypes.push_back(MemRefType::get({kGemvMaxRows, o.n}, elementType));
  argTypes.push_back(MemRefType::get({4}, b.getI32Type()));
  SmallVector<ArgAccess> access(argTypes.size(), ArgAccess::ReadOnly);
  access[argTypes.size() - 2] = ArgAccess::WriteOnly;
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  unsigned next = 0;
  Value x = func.getArgument(next++), values = func.getArgument(next++),
        meta = func.getArgument(next++);
  Value biasArg = o.bias ? func.getArgument(next++) : Value();
  Value y = func.getArgument(next++);
  Value stepArg = func.getArgument(next++);

  // Stages in dynamic workgroup memory: values, then x, then metadata.
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, i8,
                                   MemRefLayoutAttrInterface(), workgroup);
  Value shared = gpu::DynamicSharedMemoryOp::create(b, bytesType);
  auto view = [&](ArrayRef<int64_t> shape, Type type, int64_t offset) {
    return memref::ViewOp::create(
        b, MemRefType::get(shape, type, MemRefLayoutAttrInterface(), workgroup),
        shared, b.index(offset), ValueRange{});
  };
  Value vTile = view({o.stages, o.tileFeatures, vStride}, elementType, 0);
  Value xTile = view({o.stages, o.tileTokens, xStride}, elementType,
                     o.stages * vStageBytes);
  Value metaTile = view({o.stages, o.tileFeatures, metaPerRow}, i8,
                        o.stages * (vStageBytes + xStageBytes));

  Value tid = b.threadIdX();
  Value lane = b.remU(tid, kWarpSize);
  Value warp = b.divU(tid, kWarpSize);
  Value warpRow = b.mul(b.divU(warp, o.warpsN), warpM);
  Value warpCol = b.mul(b.remU(warp, o.warpsN), warpN);
  Value featureBase = b.mul(b.blockIdX(), o.tileFeatures);
  Value tokenBase = b.mul(b.blockIdY(), o.tileTokens);
  Value numRows = b.stepRows(stepArg);
  Value lastRow = b.sub(numRows, b.index(1));

  // What each thread copies: (tile row, element column) of its vectors.
  auto coords = [&](int64_t i, int64_t perRow) {
    Value v = b.add(tid, i * threads);
    return std::make_pair(b.divU(v, perRow), b.mul(b.remU(v, perRow), vec));
  };
  SmallVector<std::pair<Value, Value>> vCoords, xCoords;
  SmallVector<Value> xRows;
  for (int64_t i = 0; i < vPerThread; ++i)
    vCoords.push_back(coords(i, valuesPerRow / vec));
  for (int64_t i = 0; i < xPerThread; ++i) {
    xCoords.push_back(coords(i, o.tileK / vec));
    // Tokens past T read the last row (valid memory); they are not stored.
    xRows.push_back(arith::MinUIOp::create(
        b, b.add(tokenBase, xCoords.back().first), lastRow));
  }
  auto copy = [&](Value dst, ValueRange dstIdx, Value src, ValueRange srcIdx,
                  int64_t elements, bool bypassL1) {
    nvgpu::DeviceAsyncCopyOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(context), dst, dstIdx, src, srcIdx,
        b.getIndexAttr(elements), Value(),
        bypassL1 ? b.getUnitAttr() : UnitAttr());
  };
  // K step `step`'s tiles into `stage`. The values and metadata are
  // constant (copied before the grid dependency wait in the prologue), x
  // is the previous kernel's output.
  auto copyTiles = [&](Value step, Value stage, bool withX, bool withW) {
    Value k0 = b.mul(step, o.tileK);
    for (int64_t i = 0; withW && i < vPerThread; ++i)
      copy(vTile, {stage, vCoords[i].first, vCoords[i].second}, values,
           {b.add(featureBase, vCoords[i].first),
            b.add(b.divU(k0, 2), vCoords[i].second)},
           vec, true);
    if (withW)
      for (int64_t first = 0; first < metaCopies; first += threads) {
        Value c = b.add(tid, first);
        auto body = [&] {
          Value row = b.divU(c, metaPerRow / 8);
          Value col = b.mul(b.remU(c, metaPerRow / 8), 8);
          copy(metaTile, {stage, row, col}, meta,
               {b.add(featureBase, row), b.add(b.divU(k0, 8), col)}, 8, false);
        };
        if (first + threads <= metaCopies)
          body();
        else
          b.ifThen(b.cmp(arith::CmpIPredicate::ult, c, b.index(metaCopies)),
                   body);
      }
    for (int64_t i = 0; withX && i < xPerThread; ++i)
      copy(xTile, {stage, xCoords[i].first, xCoords[i].second}, x,
           {xRows[i], b.add(k0, xCoords[i].second)}, vec, true);
  };
  auto commit = [&] { NVVM::CpAsyncCommitGroupOp::create(b); };

  // The metadata word of the 16 features from `row0` for K [kk, kk + 32)
  // of the stage: lane q % 2 reads the two bytes of K [kk + 16 (q % 2),
  // + 16) of rows row0 + lane/4 (low half) and row0 + lane/4 + 8 (high).
  Value laneRow = b.divU(lane, 4);
  Value halfK = b.remU(lane, 2);
  Type i32 = b.getI32Type();
  auto metaWord = [&](Value stage, Value row0, int64_t kk) {
    Value col = b.add(b.mul(halfK, 2), kk / 8);
    auto half = [&](int64_t rowOffset) {
      Value bytes = b.loadVector(
          metaTile, {stage, b.add(b.add(row0, laneRow), rowOffset), col}, 2, 2);
      Value word = vector::BitCastOp::create(
          b, VectorType::get({1}, b.getI16Type()), bytes);
      return arith::ExtUIOp::create(
          b, i32, vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
    };
    return arith::OrIOp::create(
        b, half(0),
        arith::ShLIOp::create(b, half(8),
                              arith::ConstantIntOp::create(b, i32, 16)));
  };

  auto compute = [&](SmallVector<Value> accs, Value stage) {
    for (int64_t kk = 0; kk < o.tileK; kk += kMmaK) {
      SmallVector<Value> aFrags, metas, bFrags;
      for (int64_t mt = 0; mt < fragsM; ++mt) {
        Value row0 = b.add(warpRow, mt * 16);
        aFrags.push_back(
            loadAFragment(b, vTile, stage, lane, row0, b.index(kk / 2)));
        metas.push_back(metaWord(stage, row0, kk));
      }
      for (int64_t nt = 0; nt < fragsN; ++nt) {
        Value n0 = b.add(warpCol, nt * 8);
        Value frag = loadBFragmentNK32(b, xTile, stage, lane, n0, b.index(kk));
        bFrags.push_back(frag);
      }
      for (int64_t mt = 0; mt < fragsM; ++mt)
        for (int64_t nt = 0; nt < fragsN; ++nt) {
          Value &acc = accs[mt * fragsN + nt];
          acc = mmaSpM16N8K32(b, aFrags[mt], bFrags[nt], acc, metas[mt]);
        }
    }
    return accs;
  };

  // The dense GEMM's pipeline (MatmulKernel.cpp): W's first stages before
  // the grid dependency wait, x's after; one commit group per iteration.
  for (int64_t s = 0; s < o.stages - 1 && s < steps; ++s)
    copyTiles(b.index(s), b.index(s), /*withX=*/false, /*withW=*/true);
  b.waitForPriorGrids();
  for (int64_t s = 0; s < o.stages - 1; ++s) {
    if (s < steps)
      copyTiles(b.index(s), b.index(s), /*withX=*/true, /*withW=*/false);
    commit();
  }
  SmallVector<Value> init(fragsM * fragsN, zeroAccumulator(b));
  auto loop = scf::ForOp::create(
      b, b.index(0), b.index(steps), b.index(1), init,
      [&](OpBuilder &, Location, Value step, ValueRange carried) {
        NVVM::CpAsyncWaitGroupOp::create(b, o.stages - 2);
        gpu::BarrierOp::create(b);
        Value ahead = b.add(step, o.stages - 1);
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, ahead, b.index(steps)), [&] {
          copyTiles(ahead, b.remU(ahead, o.stages), true, true);
        });
        commit();
        scf::YieldOp::create(
            b, compute(SmallVector<Value>(carried.begin(), carried.end()),
                       b.remU(step, o.stages)));
      });

  // Accumulator (i, j) of fragment (mt, nt): feature warpRow + mt*16 +
  // lane/4 + 8i, token warpCol + nt*8 + 2 (lane % 4) + j; y is [T, N], so
  // each lane stores its values one by one.
  Type f32 = b.getF32Type();
  Value laneCol = b.mul(b.remU(lane, 4), 2);
  for (int64_t mt = 0; mt < fragsM; ++mt)
    for (int64_t i = 0; i < 2; ++i) {
      Value feature =
          b.add(featureBase, b.add(b.add(warpRow, mt * 16 + 8 * i), laneRow));
      Value bias;
      if (biasArg)
        bias = arith::ExtFOp::create(
            b, f32,
            memref::LoadOp::create(b, biasArg, ValueRange{feature})
                .getResult());
      for (int64_t nt = 0; nt < fragsN; ++nt)
        for (int64_t j = 0; j < 2; ++j) {
          Value token =
              b.add(tokenBase, b.add(b.add(warpCol, nt * 8 + j), laneCol));
          Value v = vector::ExtractOp::create(
              b, loop.getResult(mt * fragsN + nt), ArrayRef<int64_t>{i, j});
          if (bias)
            v = arith::AddFOp::create(b, v, bias);
          b.ifThen(b.cmp(arith::CmpIPredicate::ult, token, numRows), [&] {
            memref::StoreOp::create(b,
                                    arith::TruncFOp::create(b, elementType, v),
                                    y, ValueRange{token, feature});
          });
        }
    }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "smatmul";
  spec.name = name;
  spec.grid = {o.n / o.tileFeatures, 1, 1};
  spec.block = {threads, 1, 1};
  spec.dynamicSharedBytes = sharedBytes;
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("n", o.n);
  spec.addParam("k", o.k);
  spec.addParam("tokens", o.tileTokens);
  spec.addParam("tile_features", o.tileFeatures);
  spec.addParam("tile_k", o.tileK);
  spec.addParam("warps",
                std::to_string(o.warpsM) + "x" + std::to_string(o.warpsN));
  spec.addParam("stages", o.stages);
  if (o.bias)
    spec.addParam("bias", 1);
  spec.args = {{"x", o.dtype, {o.tileTokens, o.k}, false},
               {"values", o.dtype, {o.n, o.k / 2}, false},
               {"meta", KernelDType::U8, {o.n, o.k / 8}, false}};
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  spec.args.push_back({"y", o.dtype, {o.tileTokens, o.n}, true});
  spec.args.push_back({"step", KernelDType::I32, {4}, false});
  return spec;
}
