//===- FlashPrefillKernel.cpp - Tensor-core paged prefill attention -------===//
//
// FlashAttention-2's forward pass over Kiln's paged cache, for one
// sequence's appended rows. Why its own kernel: paged_prefill runs the
// decode CTA once per query token, so a 2,048-token prompt streams its keys
// 2,048 times through CUDA-core dot products; here a CTA of QT query rows
// reads each key tile once into workgroup memory and does both products on
// the tensor cores, the softmax state in registers.
//
// Layout of a warp's data (mma.sync m16n8k16, see TensorCoreOps.h): the
// warp owns query rows r0 + lane/4 and r0 + lane/4 + 8; S's accumulators
// for 8 keys hold, per lane, keys 2 * (lane % 4) + {0, 1} of both rows, so
// a row's max and sum are shared by the 4 lanes of a quad (two xor
// shuffles). The S fragments of keys [16c, 16c + 16) are, rounded to
// bf16/f16, exactly the A fragment of P for the second product, so P never
// leaves registers.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/FlashPrefillKernel.h"

#include "KernelBuilder.h"
#include "PagedAttentionCore.h"
#include "TensorCoreOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace kiln::codegen;

/// Elements of padding per workgroup row (16 bytes: the 8 rows an ldmatrix
/// reads fall in different banks).
static constexpr int64_t kRowPad = 8;
/// Workgroup memory one CTA may use on sm_90 (dynamic, opted in).
static constexpr int64_t kMaxSharedBytes = 226 * 1024;

FailureOr<KernelSpec>
kiln::codegen::buildFlashPrefillKernel(OpBuilder &builder,
                                       gpu::GPUModuleOp module,
                                       const FlashPrefillOptions &options) {
  MLIRContext *context = builder.getContext();
  const PagedAttentionOptions &o = options.attention;
  int64_t qt = options.queryTile, kt = options.keyTile, dim = o.headDim;
  std::string base =
      llvm::formatv("flash_prefill_{0}_h{1}_kv{2}_d{3}_b{4}_mb{5}_q{6}k{7}",
                    stringifyDType(o.dtype), o.numHeads, o.kvHeads, dim,
                    o.blockSize, o.maxBlocks, qt, kt);
  Location loc = NameLoc::get(StringAttr::get(context, base));
  if (o.dtype != KernelDType::F16 && o.dtype != KernelDType::BF16)
    return emitError(loc) << "flash_prefill reads f16 or bf16";
  if (o.numHeads <= 0 || o.kvHeads <= 0 || o.numHeads % o.kvHeads != 0 ||
      o.blockSize <= 0 || o.maxBlocks <= 0)
    return emitError(loc) << "flash_prefill needs heads a positive multiple "
                             "of kv_heads, block_size and max_blocks > 0";
  if (dim % 16 != 0 || dim <= 0 || dim > 256)
    return emitError(loc) << "flash_prefill needs head_dim a multiple of 16 "
                             "up to 256 (the mma's K), got "
                          << dim;
  if (o.slidingWindow || o.softcap)
    return emitError(loc)
           << "flash_prefill has no sliding window or soft-capping "
              "(paged_prefill serves them), got window="
           << o.slidingWindow << " softcap=" << o.softcap;
  if (qt < 16 || qt > 128 || qt % 16 || kt < 16 || kt > 128 || kt % 16)
    return emitError(loc) << "query tile " << qt << " and key tile " << kt
                          << " must be multiples of 16 in [16, 128]";
  double scale = o.scale ? *o.scale : 1.0 / std::sqrt(double(dim));
  if (!std::isfinite(scale) || scale == 0)
    return emitError(loc) << "scale must be finite and non-zero, got " << scale;
  FailureOr<ResolvedCacheLayout> resolved = resolvePagedCacheLayout(
      loc, o.cache, o.dtype, o.kvHeads, o.blockSize, dim, o.maxBlocks);
  if (failed(resolved))
    return failure();
  const ResolvedCacheLayout &cache = *resolved;
  int64_t vec = 8; // 16-byte cp.async vectors
  if (cache.vectorWidth != vec)
    return emitError(loc) << "flash_prefill copies 16-byte cache rows; the "
                             "layout's strides align rows to only "
                          << cache.vectorWidth << " elements";
  int64_t warps = qt / 16, threads = warps * kWarpSize;
  int64_t vectorsPerRow = dim / vec;
  if ((qt * vectorsPerRow) % threads || (kt * vectorsPerRow) % threads)
    return emitError(loc) << "the " << threads
                          << " threads must split the tiles' 16-byte vectors "
                             "evenly (head_dim "
                          << dim << ")";
  int64_t stride = dim + kRowPad;
  int64_t qBytes = qt * stride * 2, kvStageBytes = kt * stride * 2;
  int64_t sharedBytes = qBytes + 4 * kvStageBytes;
  if (sharedBytes > kMaxSharedBytes)
    return emitError(loc) << sharedBytes
                          << " bytes of workgroup memory exceed the "
                          << kMaxSharedBytes << " a CTA may use";
  std::string name = base + (cache.separate() ? "_sep" : "");
  loc = NameLoc::get(StringAttr::get(context, name));

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type f32 = b.getF32Type();
  auto qType = MemRefType::get({qt, o.numHeads, dim}, elementType);
  auto cacheType = MemRefType::get({cache.bufferElements}, elementType);
  SmallVector<Type> argTypes = {qType, cacheType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly};
  if (cache.separate()) {
    argTypes.push_back(cacheType);
    access.push_back(ArgAccess::ReadOnly);
  }
  argTypes.append({MemRefType::get({1, o.maxBlocks}, b.getI32Type()),
                   MemRefType::get({1}, b.getI32Type()),
                   MemRefType::get({2}, b.getI32Type()), qType});
  access.append({ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                 ArgAccess::WriteOnly});
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  unsigned arg = 0;
  Value q = func.getArgument(arg++);
  Value kCache = func.getArgument(arg++);
  Value vCache = cache.separate() ? func.getArgument(arg++) : kCache;
  Value tables = func.getArgument(arg++);
  Value lens = func.getArgument(arg++);
  Value starts = func.getArgument(arg++);
  Value out = func.getArgument(arg++);
  int64_t vOffset = cache.separate() ? 0 : cache.vOffset;

  // Workgroup tiles: Q [QT][D + pad], then K and V [2 stages][KT][D + pad].
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                   MemRefLayoutAttrInterface(), workgroup);
  Value shared = gpu::DynamicSharedMemoryOp::create(b, bytesType);
  auto tileType = [&](ArrayRef<int64_t> shape) {
    return MemRefType::get(shape, elementType, MemRefLayoutAttrInterface(),
                           workgroup);
  };
  Value qTile = memref::ViewOp::create(b, tileType({qt, stride}), shared,
                                       b.index(0), ValueRange{});
  Value kTile = memref::ViewOp::create(b, tileType({2, kt, stride}), shared,
                                       b.index(qBytes), ValueRange{});
  Value vTile =
      memref::ViewOp::create(b, tileType({2, kt, stride}), shared,
                             b.index(qBytes + 2 * kvStageBytes), ValueRange{});

  Value tid = b.threadIdX();
  Value lane = b.remU(tid, kWarpSize);
  Value warp = b.divU(tid, kWarpSize);
  Value head = b.blockIdY();
  Value kvHead = b.divU(head, o.numHeads / o.kvHeads);
  Value rowBase = b.mul(b.blockIdX(), qt);
  // Row i of the sequence's L appended rows is position C - L + i.
  Value rowsL = b.sub(b.loadIndex(starts, {b.index(1)}),
                      b.loadIndex(starts, {b.index(0)}));
  Value ctx = b.loadIndex(lens, {b.index(0)});
  Value lastRow = b.maxS(b.sub(rowsL, b.index(1)), b.index(0));
  Value firstPos = b.sub(ctx, rowsL);
  Value maxPos = b.maxS(
      b.add(firstPos, b.minS(b.add(rowBase, qt - 1), lastRow)), b.index(0));
  Value numKeyTiles = b.divU(b.add(maxPos, kt), kt);
  Value headBase = b.mul(kvHead, cache.headStride);

  auto copy = [&](Value dst, ValueRange dstIdx, Value src, ValueRange srcIdx) {
    nvgpu::DeviceAsyncCopyOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(context), dst, dstIdx, src, srcIdx,
        b.getIndexAttr(vec), Value(), b.getUnitAttr());
  };
  auto vectorCoords = [&](int64_t i) {
    Value v = b.add(tid, i * threads);
    return std::make_pair(b.divU(v, vectorsPerRow),
                          b.mul(b.remU(v, vectorsPerRow), vec));
  };
  // Rows past L load row L - 1 (valid memory); they are never stored.
  auto copyQuery = [&] {
    for (int64_t i = 0; i < qt * vectorsPerRow / threads; ++i) {
      auto [r, col] = vectorCoords(i);
      copy(qTile, {r, col}, q, {b.minS(b.add(rowBase, r), lastRow), head, col});
    }
  };
  // Keys past the tile's last position load that position's row (inside
  // the sequence's written blocks); the mask drops them.
  auto copyKeys = [&](Value tileIndex, Value stage) {
    Value first = b.mul(tileIndex, kt);
    for (int64_t i = 0; i < kt * vectorsPerRow / threads; ++i) {
      auto [r, col] = vectorCoords(i);
      Value key = b.minS(b.add(first, r), maxPos);
      Value logical = b.divU(key, o.blockSize);
      Value block = b.loadIndex(tables, {b.index(0), logical});
      Value offset = b.sub(key, b.mul(logical, o.blockSize));
      Value at = b.add(b.add(b.mul(block, cache.blockStride), headBase),
                       b.add(b.mul(offset, cache.tokenStride), col));
      copy(kTile, {stage, r, col}, kCache, {at});
      copy(vTile, {stage, r, col}, vCache, {vOffset ? b.add(at, vOffset) : at});
    }
  };
  auto commit = [&] { NVVM::CpAsyncCommitGroupOp::create(b); };

  copyQuery();
  copyKeys(b.index(0), b.index(0));
  commit();
  NVVM::CpAsyncWaitGroupOp::create(b, 0);
  gpu::BarrierOp::create(b);
  Value warpRow = b.mul(warp, 16);
  SmallVector<Value> qFrags;
  for (int64_t c = 0; c < dim / 16; ++c)
    qFrags.push_back(
        loadAFragment(b, qTile, {}, lane, warpRow, b.index(c * 16)));

  // This lane's two rows and their positions.
  Value laneRow = b.add(warpRow, b.divU(lane, 4));
  Value rowPos[2] = {b.add(b.add(firstPos, rowBase), laneRow),
                     b.add(b.add(firstPos, rowBase), b.add(laneRow, 8))};
  Value laneKey = b.mul(b.remU(lane, 4), 2);
  double scoreScale = scale * llvm::numbers::log2e;

  // Loop-carried: O's D/8 accumulators, then m and l of both rows (l is
  // this lane's part of the row sum; the quad's parts are added at the end,
  // after which every lane of the quad holds the same row sum).
  int64_t dimTiles = dim / 8, keyTiles8 = kt / 8, keyChunks = kt / 16;
  SmallVector<Value> init(dimTiles, zeroAccumulator(b));
  init.append({b.f32(kNoScore), b.f32(kNoScore), b.f32(0.0), b.f32(0.0)});
  auto maxF = [&](Value x, Value y) {
    return arith::MaxNumFOp::create(b, x, y).getResult();
  };
  auto addF = [&](Value x, Value y) {
    return arith::AddFOp::create(b, x, y).getResult();
  };
  auto mulF = [&](Value x, Value y) {
    return arith::MulFOp::create(b, x, y).getResult();
  };
  auto subF = [&](Value x, Value y) {
    return arith::SubFOp::create(b, x, y).getResult();
  };
  auto accType = VectorType::get({2, 2}, f32);
  auto pFragType = VectorType::get({4, 2}, elementType);
  Value negInf = b.f32(-INFINITY);

  // Two-stage pipeline: iteration j waits for tile j, syncs (everyone is
  // past iteration j - 1, which read the stage tile j + 1 overwrites),
  // issues tile j + 1, then computes on tile j while it lands.
  auto loop = scf::ForOp::create(
      b, b.index(0), numKeyTiles, b.index(1), init,
      [&](OpBuilder &, Location, Value j, ValueRange carried) {
        NVVM::CpAsyncWaitGroupOp::create(b, 0);
        gpu::BarrierOp::create(b);
        Value nextTile = b.add(j, 1);
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, nextTile, numKeyTiles),
                 [&] { copyKeys(nextTile, b.remU(nextTile, 2)); });
        commit();
        Value stage = b.remU(j, 2);

        // S = Q K^T, scaled to base 2 and masked causally.
        Value keyBase = b.add(b.mul(j, kt), laneKey);
        SmallVector<Value> s(keyTiles8 * 4); // [n-tile][row i][key jj]
        Value rowMax[2];
        for (int64_t nt = 0; nt < keyTiles8; ++nt) {
          Value acc = zeroAccumulator(b);
          for (int64_t c = 0; c < dim / 16; ++c)
            acc = mmaM16N8K16(b, qFrags[c],
                              loadBFragmentNK(b, kTile, stage, lane,
                                              b.index(nt * 8), b.index(c * 16)),
                              acc);
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t jj = 0; jj < 2; ++jj) {
              Value score = mulF(
                  vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, jj}),
                  b.f32(scoreScale));
              Value key = b.add(keyBase, nt * 8 + jj);
              Value visible = b.cmp(arith::CmpIPredicate::sle, key, rowPos[i]);
              score = arith::SelectOp::create(b, visible, score, negInf);
              s[nt * 4 + i * 2 + jj] = score;
              rowMax[i] = nt || jj ? maxF(rowMax[i], score) : score;
            }
        }
        // Online softmax per row.
        Value m[2], l[2], alpha[2];
        for (int64_t i = 0; i < 2; ++i) {
          Value tileMax = b.warpReduce(rowMax[i], 4, maxF);
          Value mOld = carried[dimTiles + i];
          m[i] = maxF(mOld, tileMax);
          alpha[i] = b.exp2Approx(subF(mOld, m[i]));
          l[i] = mulF(carried[dimTiles + 2 + i], alpha[i]);
        }
        for (int64_t k = 0; k < keyTiles8 * 4; ++k) {
          int64_t i = (k / 2) % 2;
          s[k] = b.exp2Approx(subF(s[k], m[i]));
          l[i] = addF(l[i], s[k]);
        }
        // P's A fragments: keys [16c, 16c + 16) are n-tiles 2c and 2c + 1.
        SmallVector<Value> pFrags;
        for (int64_t c = 0; c < keyChunks; ++c) {
          SmallVector<Value> elements;
          for (int64_t half = 0; half < 2; ++half)
            for (int64_t i = 0; i < 2; ++i)
              for (int64_t jj = 0; jj < 2; ++jj)
                elements.push_back(arith::TruncFOp::create(
                    b, elementType, s[(2 * c + half) * 4 + i * 2 + jj]));
          pFrags.push_back(
              vector::FromElementsOp::create(b, pFragType, elements));
        }
        // O = O * alpha + P V.
        Value rescale = vector::FromElementsOp::create(
            b, accType, ValueRange{alpha[0], alpha[0], alpha[1], alpha[1]});
        SmallVector<Value> yield;
        for (int64_t dn = 0; dn < dimTiles; ++dn) {
          Value acc = arith::MulFOp::create(b, carried[dn], rescale);
          for (int64_t c = 0; c < keyChunks; ++c)
            acc = mmaM16N8K16(b, pFrags[c],
                              loadBFragmentKN(b, vTile, stage, lane,
                                              b.index(c * 16), b.index(dn * 8)),
                              acc);
          yield.push_back(acc);
        }
        yield.append({m[0], m[1], l[0], l[1]});
        scf::YieldOp::create(b, yield);
      });

  // O / l, rows below L stored.
  for (int64_t i = 0; i < 2; ++i) {
    Value l = b.warpReduce(loop.getResult(dimTiles + 2 + i), 4, addF);
    Value positive =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, l, b.f32(0.0));
    Value inverse = arith::SelectOp::create(
        b, positive, arith::DivFOp::create(b, b.f32(1.0), l), b.f32(0.0));
    Value inverse2 =
        vector::BroadcastOp::create(b, VectorType::get({2}, f32), inverse);
    Value row = b.add(rowBase, i ? b.add(laneRow, 8) : laneRow);
    b.ifThen(b.cmp(arith::CmpIPredicate::ult, row, rowsL), [&] {
      for (int64_t dn = 0; dn < dimTiles; ++dn) {
        Value pair = vector::ExtractOp::create(b, loop.getResult(dn),
                                               ArrayRef<int64_t>{i});
        pair = arith::MulFOp::create(b, pair, inverse2);
        b.storeFromF32(pair, out, {row, head, b.add(laneKey, dn * 8)});
      }
    });
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "flash_prefill";
  spec.name = name;
  spec.grid = {1, o.numHeads, 1};
  spec.block = {threads, 1, 1};
  spec.dynamicSharedBytes = sharedBytes;
  spec.addParam("tokens", qt);
  spec.addParam("key_tile", kt);
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("heads", o.numHeads);
  spec.addParam("kv_heads", o.kvHeads);
  spec.addParam("head_dim", dim);
  spec.addParam("block_size", o.blockSize);
  spec.addParam("max_blocks", o.maxBlocks);
  spec.addFloatParam("scale", scale);
  addCacheParams(spec, cache);
  spec.args = {{"q", o.dtype, {qt, o.numHeads, dim}, false}};
  addCacheArgs(spec, cache, o.dtype, /*isOutput=*/false);
  spec.args.push_back(
      {"block_tables", KernelDType::I32, {1, o.maxBlocks}, false});
  spec.args.push_back({"context_lens", KernelDType::I32, {1}, false});
  spec.args.push_back({"query_start_loc", KernelDType::I32, {2}, false});
  spec.args.push_back({"out", o.dtype, {qt, o.numHeads, dim}, true});
  return spec;
}
