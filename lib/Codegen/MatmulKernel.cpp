//===- MatmulKernel.cpp - Tensor-core GEMM for many-row linears -----------===//

#include "kiln/Codegen/MatmulKernel.h"
#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"

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

FailureOr<KernelSpec>
kiln::codegen::buildMatmulKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                                 const MatmulOptions &o) {
  MLIRContext *context = builder.getContext();
  KernelDType outDType = o.outputDType.value_or(o.dtype);
  std::string name = llvm::formatv(
      "matmul_{0}_n{1}_k{2}{3}{4}", stringifyDType(o.dtype), o.n, o.k,
      o.bias ? "_bias" : "",
      outDType != o.dtype ? "_o" + stringifyDType(outDType).str()
                          : std::string());
  Location loc = NameLoc::get(StringAttr::get(context, name));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "matmul takes f16 or bf16 operands";
  int64_t warps = o.warpsM * o.warpsN;
  int64_t warpM = o.tileM / std::max<int64_t>(o.warpsM, 1);
  int64_t warpN = o.tileN / std::max<int64_t>(o.warpsN, 1);
  if (warps < 1 || warps > 32 || warpM % 16 || warpN % 16 || o.tileK % 16 ||
      o.tileM % o.warpsM || o.tileN % o.warpsN)
    return emitError(loc) << "tile " << o.tileM << "x" << o.tileN << "x"
                          << o.tileK << " over " << o.warpsM << "x"
                          << o.warpsN
                          << " warps: each warp needs a multiple of 16 rows "
                             "and 16 columns, tileK a multiple of 16";
  if (o.n <= 0 || o.k <= 0 || o.n % o.tileN || o.k % o.tileK)
    return emitError(loc) << "n=" << o.n << " and k=" << o.k
                          << " must be positive multiples of the tile ("
                          << o.tileN << ", " << o.tileK << ")";
  int64_t threads = warps * kWarpSize;
  int64_t vec = 8; // 16-byte global and workgroup vectors
  int64_t aVectors = o.tileM * o.tileK / vec, bVectors = o.tileN * o.tileK / vec;
  if (aVectors % threads || bVectors % threads)
    return emitError(loc) << "the " << threads
                          << " threads must split the tiles' 16-byte vectors "
                             "evenly";
  int64_t aPerThread = aVectors / threads, bPerThread = bVectors / threads;
  int64_t vectorsPerRow = o.tileK / vec;
  int64_t fragsM = warpM / 16, fragsN = warpN / 8;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type outElementType = getElementType(context, outDType);
  Type f32 = b.getF32Type();
  auto xType = MemRefType::get({kGemvMaxRows, o.k}, elementType);
  auto wType = MemRefType::get({o.n, o.k}, elementType);
  auto yType = MemRefType::get({kGemvMaxRows, o.n}, outElementType);
  auto biasType = MemRefType::get({o.n}, elementType);
  auto stepType = MemRefType::get({4}, b.getI32Type());
  SmallVector<Type> argTypes = {xType, wType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly};
  if (o.bias) {
    argTypes.push_back(biasType);
    access.push_back(ArgAccess::ReadOnly);
  }
  argTypes.append({yType, stepType});
  access.append({ArgAccess::WriteOnly, ArgAccess::ReadOnly});
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  int64_t stride = o.tileK + kRowPad;
  // Two stages: the mma reads one while the next tile is stored into the
  // other, so one barrier per K step suffices.
  auto aTileType = MemRefType::get({2, o.tileM, stride}, elementType,
                                   MemRefLayoutAttrInterface(), workgroup);
  auto bTileType = MemRefType::get({2, o.tileN, stride}, elementType,
                                   MemRefLayoutAttrInterface(), workgroup);
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads,
                                       {aTileType, bTileType});
  // Two CTAs per SM (ptxas caps registers at 128): one CTA's barriers and
  // global loads overlap the other's mma.
  func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(2));
  unsigned next = 2;
  Value x = func.getArgument(0), w = func.getArgument(1);
  Value biasArg = o.bias ? func.getArgument(next++) : Value();
  Value y = func.getArgument(next++);
  Value stepArg = func.getArgument(next++);
  Value aTile = func.getWorkgroupAttributions()[0];
  Value bTile = func.getWorkgroupAttributions()[1];

  Value tid = b.threadIdX();
  Value lane = arith::RemUIOp::create(b, tid, b.index(kWarpSize));
  Value warp = arith::DivUIOp::create(b, tid, b.index(kWarpSize));
  Value warpRow = arith::MulIOp::create(
      b, arith::DivUIOp::create(b, warp, b.index(o.warpsN)), b.index(warpM));
  Value warpCol = arith::MulIOp::create(
      b, arith::RemUIOp::create(b, warp, b.index(o.warpsN)), b.index(warpN));
  Value rowBase = arith::MulIOp::create(b, b.blockIdY(), b.index(o.tileM));
  Value colBase = arith::MulIOp::create(b, b.blockIdX(), b.index(o.tileN));
  Value numRows = arith::IndexCastOp::create(
      b, b.getIndexType(),
      memref::LoadOp::create(b, stepArg, ValueRange{b.index(0)}));
  Value lastRow = arith::SubIOp::create(b, numRows, b.index(1));

  // The global coordinates each thread copies: (row, column) of its
  // vectors in the x and W tiles (columns relative to the K step).
  auto tileCoords = [&](int64_t i) {
    Value v = arith::AddIOp::create(b, tid, b.index(i * threads));
    Value r = arith::DivUIOp::create(b, v, b.index(vectorsPerRow));
    Value c = arith::MulIOp::create(
        b, arith::RemUIOp::create(b, v, b.index(vectorsPerRow)), b.index(vec));
    return std::make_pair(r, c);
  };
  SmallVector<std::pair<Value, Value>> aCoords, bCoords;
  SmallVector<Value> aRows, bRows;
  for (int64_t i = 0; i < aPerThread; ++i) {
    aCoords.push_back(tileCoords(i));
    aRows.push_back(arith::MinUIOp::create(
        b, arith::AddIOp::create(b, rowBase, aCoords.back().first), lastRow));
  }
  for (int64_t i = 0; i < bPerThread; ++i) {
    bCoords.push_back(tileCoords(i));
    bRows.push_back(arith::AddIOp::create(b, colBase, bCoords.back().first));
  }
  auto loadTiles = [&](Value k0) {
    SmallVector<Value> loaded;
    for (int64_t i = 0; i < aPerThread; ++i)
      loaded.push_back(b.loadVector(
          x, {aRows[i], arith::AddIOp::create(b, k0, aCoords[i].second)},
          vec));
    for (int64_t i = 0; i < bPerThread; ++i)
      loaded.push_back(b.loadVector(
          w, {bRows[i], arith::AddIOp::create(b, k0, bCoords[i].second)},
          vec));
    return loaded;
  };
  auto storeTiles = [&](ValueRange loaded, Value stage) {
    for (int64_t i = 0; i < aPerThread; ++i)
      b.storeVector(loaded[i], aTile,
                    {stage, aCoords[i].first, aCoords[i].second});
    for (int64_t i = 0; i < bPerThread; ++i)
      b.storeVector(loaded[aPerThread + i], bTile,
                    {stage, bCoords[i].first, bCoords[i].second});
  };

  // ldmatrix row addresses: x4 for A, lanes give rows lane % 16 at column
  // (lane / 16) * 8 (matrices: rows 0-7 | 8-15, K 0-7 | 8-15 = the mma's
  // a0..a3); x2 for B, lanes 0-15 give W rows lane % 8 at K column
  // ((lane / 8) % 2) * 8 (b0, b1; lanes 16-31 repeat valid addresses).
  Value aLaneRow = arith::RemUIOp::create(b, lane, b.index(16));
  Value aLaneCol = arith::MulIOp::create(
      b, arith::DivUIOp::create(b, lane, b.index(16)), b.index(8));
  Value bLaneRow = arith::RemUIOp::create(b, lane, b.index(8));
  Value bLaneCol = arith::MulIOp::create(
      b,
      arith::RemUIOp::create(b, arith::DivUIOp::create(b, lane, b.index(8)),
                             b.index(2)),
      b.index(8));

  auto fragType = VectorType::get({4, 2}, elementType);
  auto bFragType = VectorType::get({2, 2}, elementType);
  auto accType = VectorType::get({2, 2}, f32);
  // One m16n8k16 mma. nvgpu.mma.sync lowers f16 fragments; for bf16 (which
  // it cannot type) the fragments are packed into the i32 registers
  // nvvm.mma.sync takes, with the PTX types given explicitly.
  bool bf16 = o.dtype == KernelDType::BF16;
  auto i32 = b.getI32Type();
  auto packed = [&](Value frag, int64_t rows) {
    SmallVector<Value> regs;
    for (int64_t i = 0; i < rows; ++i) {
      Value pair = vector::ExtractOp::create(b, frag, ArrayRef<int64_t>{i});
      Value word = vector::BitCastOp::create(
          b, VectorType::get({1}, i32), pair);
      regs.push_back(vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
    }
    return regs;
  };
  auto mma = [&](Value a, Value bFrag, Value acc) -> Value {
    if (!bf16)
      return nvgpu::MmaSyncOp::create(b, a, bFrag, acc,
                                      ArrayRef<int64_t>{16, 8, 16});
    SmallVector<Value> c;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        c.push_back(vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j}));
    Type resultType = LLVM::LLVMStructType::getLiteral(context, {f32, f32, f32, f32});
    Value d = NVVM::MmaOp::create(
        b, resultType, packed(a, 4), packed(bFrag, 2), c,
        ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                      NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    SmallVector<Value> out;
    for (int64_t i = 0; i < 4; ++i)
      out.push_back(LLVM::ExtractValueOp::create(b, d, ArrayRef<int64_t>{i}));
    return vector::FromElementsOp::create(b, accType, out);
  };

  auto compute = [&](SmallVector<Value> accs, Value stage) {
    for (int64_t kk = 0; kk < o.tileK; kk += 16) {
      SmallVector<Value> aFrags, bFrags;
      for (int64_t mt = 0; mt < fragsM; ++mt) {
        Value row = arith::AddIOp::create(
            b, arith::AddIOp::create(b, warpRow, b.index(mt * 16)), aLaneRow);
        Value col = arith::AddIOp::create(b, aLaneCol, b.index(kk));
        aFrags.push_back(nvgpu::LdMatrixOp::create(
            b, fragType, aTile, ValueRange{stage, row, col}, false, 4));
      }
      for (int64_t nt = 0; nt < fragsN; ++nt) {
        Value row = arith::AddIOp::create(
            b, arith::AddIOp::create(b, warpCol, b.index(nt * 8)), bLaneRow);
        Value col = arith::AddIOp::create(b, bLaneCol, b.index(kk));
        bFrags.push_back(nvgpu::LdMatrixOp::create(
            b, bFragType, bTile, ValueRange{stage, row, col}, false, 2));
      }
      for (int64_t mt = 0; mt < fragsM; ++mt)
        for (int64_t nt = 0; nt < fragsN; ++nt) {
          Value &acc = accs[mt * fragsN + nt];
          acc = mma(aFrags[mt], bFrags[nt], acc);
        }
    }
    return accs;
  };

  Value zero = arith::ConstantOp::create(
      b, accType, DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0f)));
  SmallVector<Value> init(fragsM * fragsN, zero);
  // Software pipeline: tile 0 is staged before the loop; each iteration
  // issues the next tile's global loads, runs the mma on the staged tile,
  // then stages the loaded one.
  storeTiles(loadTiles(b.index(0)), b.index(0));
  gpu::BarrierOp::create(b);
  int64_t steps = o.k / o.tileK;
  auto loop = scf::ForOp::create(
      b, b.index(0), b.index(steps - 1), b.index(1), init,
      [&](OpBuilder &, Location, Value step, ValueRange carried) {
        Value next = arith::AddIOp::create(b, step, b.index(1));
        Value nextK = arith::MulIOp::create(b, next, b.index(o.tileK));
        SmallVector<Value> loaded = loadTiles(nextK);
        SmallVector<Value> accs =
            compute(SmallVector<Value>(carried.begin(), carried.end()),
                    arith::RemUIOp::create(b, step, b.index(2)));
        storeTiles(loaded, arith::RemUIOp::create(b, next, b.index(2)));
        gpu::BarrierOp::create(b);
        scf::YieldOp::create(b, accs);
      });
  SmallVector<Value> accs = compute(
      SmallVector<Value>(loop.getResults().begin(), loop.getResults().end()),
      b.index((steps - 1) % 2));

  // Epilogue: accumulator (i, j) of fragment (mt, nt) is row
  // warpRow + mt*16 + lane/4 + 8i, column warpCol + nt*8 + (lane%4)*2 + j.
  Value laneRow = arith::DivUIOp::create(b, lane, b.index(4));
  Value laneCol = arith::MulIOp::create(
      b, arith::RemUIOp::create(b, lane, b.index(4)), b.index(2));
  for (int64_t mt = 0; mt < fragsM; ++mt)
    for (int64_t nt = 0; nt < fragsN; ++nt) {
      Value acc = accs[mt * fragsN + nt];
      Value col = arith::AddIOp::create(
          b,
          arith::AddIOp::create(b, colBase,
                                arith::AddIOp::create(b, warpCol,
                                                      b.index(nt * 8))),
          laneCol);
      Value biasPair;
      if (biasArg)
        biasPair = b.loadF32(biasArg, {col}, 2);
      for (int64_t i = 0; i < 2; ++i) {
        Value row = arith::AddIOp::create(
            b,
            arith::AddIOp::create(
                b, rowBase,
                arith::AddIOp::create(b, warpRow, b.index(mt * 16 + i * 8))),
            laneRow);
        Value pair = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i});
        if (biasPair)
          pair = arith::AddFOp::create(b, pair, biasPair);
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, row, numRows),
                 [&] { b.storeFromF32(pair, y, {row, col}); });
      }
    }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "matmul";
  spec.name = name;
  spec.grid = {o.n / o.tileN, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("n", o.n);
  spec.addParam("k", o.k);
  spec.addParam("tokens", o.tileM);
  spec.addParam("tile_n", o.tileN);
  spec.addParam("tile_k", o.tileK);
  spec.addParam("warps", std::to_string(o.warpsM) + "x" +
                             std::to_string(o.warpsN));
  if (o.bias)
    spec.addParam("bias", 1);
  if (outDType != o.dtype)
    spec.addParam("out_dtype", stringifyDType(outDType));
  spec.args = {{"x", o.dtype, {o.tileM, o.k}, false},
               {"w", o.dtype, {o.n, o.k}, false}};
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  spec.args.push_back({"y", outDType, {o.tileM, o.n}, true});
  spec.args.push_back({"step", KernelDType::I32, {4}, false});
  return spec;
}
