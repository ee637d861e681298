//===- GemvKernel.cpp - Decode linear (GEMV) kernel generator -------------===//
//
// y[N] = W[N, K] x[K] for one token (decode). The kernel is bound by reading
// W once: warp w of block b owns rows (b * warpsPerBlock + w) * rowsPerWarp
// and up. A K step moves one 128-bit vector per lane, so a warp covers
// 32 * vec consecutive halves of the row per step (fully coalesced, 512
// bytes). Steps are issued in groups of `unroll` loads before their FMAs so
// that several loads per lane are in flight; the fp32 vector accumulators
// are reduced within the lane, then across the warp by a shuffle butterfly.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/GemvKernel.h"

#include "KernelBuilder.h"
#include "NormRowEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdio>

using namespace mlir;
using namespace kiln::codegen;

FailureOr<KernelSpec>
kiln::codegen::buildGemvKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                               const GemvOptions &options) {
  MLIRContext *context = builder.getContext();
  std::string allN = std::to_string(options.n);
  for (int64_t more : options.moreN)
    allN += "_" + std::to_string(more);
  std::string name = llvm::formatv(
      "gemv_{6}{0}_n{1}_k{2}{3}{4}{5}", stringifyDType(options.dtype), allN,
      options.k, options.bias ? "_bias" : "",
      options.outputDType && *options.outputDType != options.dtype
          ? "_o" + stringifyDType(*options.outputDType).str()
          : std::string(),
      options.tokens > 1 ? "_t" + std::to_string(options.tokens)
                         : std::string(),
      std::string(options.gatedUp         ? "gateup_silu_"
                  : options.moreN.empty() ? ""
                                          : "multi_") +
          (options.addNormPrologue ? "addnorm_" : "") +
          (options.ropeKVEpilogue ? "rope_kv_" : ""));
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.n <= 0 || options.k <= 0)
    return emitError(loc) << "gemv needs n > 0 and k > 0, got n=" << options.n
                          << " k=" << options.k;
  if (options.warpsPerBlock < 1 || options.warpsPerBlock > 32)
    return emitError(loc) << "warps per block must be in [1, 32], got "
                          << options.warpsPerBlock;
  if (options.rowsPerWarp < 1 || options.rowsPerWarp > 8)
    return emitError(loc) << "rows per warp must be in [1, 8], got "
                          << options.rowsPerWarp;
  if (options.unroll < 1 || options.unroll > 32)
    return emitError(loc) << "unroll must be in [1, 32], got "
                          << options.unroll;
  if (options.tokens < 1 || options.tokens > 16)
    return emitError(loc) << "tokens per CTA must be in [1, 16], got "
                          << options.tokens;
  int64_t R = options.tokens;
  bool chunked = R > 1;
  bool gated = options.gatedUp;
  if (gated && (options.bias ||
                options.outputDType.value_or(options.dtype) != options.dtype))
    return emitError(loc) << "the fused gate/up gemv takes no bias and "
                             "writes the weights' type";

  bool multi = !options.moreN.empty();
  bool addNorm = options.addNormPrologue;
  if (addNorm && (options.bias ||
                  options.outputDType.value_or(options.dtype) != options.dtype))
    return emitError(loc) << "the add + norm prologue takes no bias and "
                             "writes the weights' type";
  // Row-chunked, the R normalized rows sit in static workgroup memory.
  if (addNorm && chunked && R * options.k * 2 > kMaxStaticSharedBytes)
    return emitError(loc) << "the add + norm prologue of " << R << " rows of "
                          << options.k << " needs " << R * options.k * 2
                          << " bytes of workgroup memory, more than "
                          << kMaxStaticSharedBytes;
  FailureOr<NormShape> normRow = NormShape();
  if (addNorm) {
    normRow = normShape(loc, options.k, options.dtype, 0);
    if (failed(normRow))
      return failure();
    if (normRow->threads > options.warpsPerBlock * kWarpSize)
      return emitError(loc)
             << "the add + norm prologue of a " << options.k
             << "-wide row needs " << normRow->threads
             << " threads, the CTA has " << options.warpsPerBlock * kWarpSize;
  }
  if (multi && (gated || options.bias || options.moreN.size() > 3 ||
                options.outputDType.value_or(options.dtype) != options.dtype))
    return emitError(loc) << "a multi-weight gemv takes at most 4 weights, "
                             "no bias or gating, and writes the weights' "
                             "type";
  for (int64_t more : options.moreN)
    if (more <= 0)
      return emitError(loc) << "gemv needs every n > 0, got " << more;
  bool rope = options.ropeKVEpilogue;
  if (rope && chunked)
    return emitError(loc) << "the rope + cache epilogue takes one row";
  int64_t headDim = options.ropeHeadDim, halfDim = headDim / 2;
  // Warps of a CTA holding first-half channels; their partners follow.
  int64_t pairWarps = options.warpsPerBlock / 2;
  FailureOr<ResolvedCacheLayout> cacheLayout = ResolvedCacheLayout();
  if (rope) {
    if (options.moreN.size() != 2 || options.moreN[0] != options.moreN[1])
      return emitError(loc) << "the rope + cache epilogue takes three "
                               "weights: q, then k and v of one size";
    if (options.rowsPerWarp != 1 || options.warpsPerBlock % 2 != 0)
      return emitError(loc) << "the rope + cache epilogue needs one row per "
                               "warp and an even number of warps";
    if (headDim <= 0 || headDim % 2 != 0 || halfDim % pairWarps != 0 ||
        options.n % headDim != 0 || options.moreN[0] % headDim != 0)
      return emitError(loc)
             << "the rope + cache epilogue needs q and k of whole heads of an "
                "even head_dim whose half divides into "
             << pairWarps << " warps, got head_dim=" << headDim
             << " n=" << allN;
    if (options.cache.kind != KVCacheKind::Combined)
      return emitError(loc) << "the rope + cache epilogue writes the "
                               "combined cache layout only";
    cacheLayout = resolvePagedCacheLayout(loc, options.cache, options.dtype,
                                          options.moreN[0] / headDim,
                                          options.kvBlockSize, headDim, 1);
    if (failed(cacheLayout))
      return failure();
  }

  int64_t width = pickVectorWidth(options.k, options.dtype);
  int64_t numVectors = options.k / width;
  // Steps every lane takes, and the lanes that take one more (a partial
  // step at the end of the row).
  int64_t fullSteps = numVectors / kWarpSize;
  int64_t tailLanes = numVectors % kWarpSize;
  int64_t threads = options.warpsPerBlock * kWarpSize;
  int64_t rowsPerBlock = options.warpsPerBlock * options.rowsPerWarp;
  // The matrices' row counts and their CTAs (consecutive along grid x).
  SmallVector<int64_t> allRows = {options.n};
  allRows.append(options.moreN.begin(), options.moreN.end());
  SmallVector<int64_t> matrixBlocks;
  int64_t blocks = 0;
  for (int64_t n : allRows) {
    matrixBlocks.push_back(ceilDiv(n, rowsPerBlock));
    blocks += matrixBlocks.back();
  }
  if (blocks > 2147483647)
    return emitError(loc) << "n=" << allN << " exceeds the grid's x dimension";
  int64_t stride = kWarpSize * width; // elements between a lane's steps

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  KernelDType outDType = options.outputDType.value_or(options.dtype);
  Type outElementType = getElementType(context, outDType);
  // Row-chunked kernels index x and y by token row; bare pointers carry no
  // bounds, so the row extent is a static maximum.
  auto xType = chunked ? MemRefType::get({kGemvMaxRows, options.k}, elementType)
                       : MemRefType::get({options.k}, elementType);
  auto wType = MemRefType::get({options.n, options.k}, elementType);
  auto yType = chunked
                   ? MemRefType::get({kGemvMaxRows, options.n}, outElementType)
                   : MemRefType::get({options.n}, outElementType);
  auto biasType = MemRefType::get({options.n}, elementType);
  auto stepType = MemRefType::get({4}, b.getI32Type());
  SmallVector<Type> argTypes = {xType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly};
  auto rowType = MemRefType::get({options.k}, elementType);
  if (addNorm) {
    // residual, norm_weight
    argTypes.append({xType, rowType});
    access.append({ArgAccess::ReadOnly, ArgAccess::ReadOnly});
  }
  argTypes.push_back(wType);
  access.push_back(ArgAccess::ReadOnly);
  if (gated) {
    argTypes.push_back(wType);
    access.push_back(ArgAccess::ReadOnly);
  }
  for (int64_t more : options.moreN) {
    argTypes.push_back(MemRefType::get({more, options.k}, elementType));
    access.push_back(ArgAccess::ReadOnly);
  }
  if (options.bias) {
    argTypes.push_back(biasType);
    access.push_back(ArgAccess::ReadOnly);
  }
  argTypes.push_back(yType);
  access.push_back(ArgAccess::WriteOnly);
  for (int64_t more : options.moreN) {
    argTypes.push_back(
        chunked ? MemRefType::get({kGemvMaxRows, more}, outElementType)
                : MemRefType::get({more}, outElementType));
    access.push_back(ArgAccess::WriteOnly);
  }
  if (chunked) {
    argTypes.push_back(stepType);
    access.push_back(ArgAccess::ReadOnly);
  }
  SmallVector<Type> workgroup;
  if (addNorm) {
    // sum, normed; the normalized row and the block sum's per-warp slots.
    argTypes.append({xType, xType});
    access.append({ArgAccess::WriteOnly, ArgAccess::WriteOnly});
    auto space =
        gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
    workgroup.push_back(
        MemRefType::get(chunked ? SmallVector<int64_t>{R, options.k}
                                : SmallVector<int64_t>{options.k},
                        elementType, MemRefLayoutAttrInterface(), space));
    workgroup.push_back(MemRefType::get({options.warpsPerBlock}, b.getF32Type(),
                                        MemRefLayoutAttrInterface(), space));
  }
  if (rope) {
    // cos, sin, slot_mapping, cache; the swap slots of the rotation.
    auto tableType = MemRefType::get(
        {1, headDim}, getElementType(context, options.ropeTableDType));
    argTypes.append(
        {tableType, tableType, MemRefType::get({1}, b.getI64Type()),
         MemRefType::get({cacheLayout->bufferElements}, elementType)});
    access.append({ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                   ArgAccess::ReadOnly, ArgAccess::WriteOnly});
    workgroup.push_back(MemRefType::get(
        {options.warpsPerBlock}, b.getF32Type(), MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup)));
  }
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, threads, workgroup);
  unsigned next = 0;
  Value x = func.getArgument(next++);
  Value residual = addNorm ? func.getArgument(next++) : Value();
  Value normWeight = addNorm ? func.getArgument(next++) : Value();
  Value w = func.getArgument(next++);
  Value wUp = gated ? func.getArgument(next++) : Value();
  SmallVector<Value> weights = {w}, outputs;
  for (size_t i = 0; i < options.moreN.size(); ++i)
    weights.push_back(func.getArgument(next++));
  Value biasArg = options.bias ? func.getArgument(next++) : Value();
  Value y = func.getArgument(next++);
  outputs.push_back(y);
  for (size_t i = 0; i < options.moreN.size(); ++i)
    outputs.push_back(func.getArgument(next++));
  Value stepArg = chunked ? func.getArgument(next++) : Value();
  Value sumOut = addNorm ? func.getArgument(next++) : Value();
  Value normedOut = addNorm ? func.getArgument(next++) : Value();
  Value cosTable = rope ? func.getArgument(next++) : Value();
  Value sinTable = rope ? func.getArgument(next++) : Value();
  Value slotMapping = rope ? func.getArgument(next++) : Value();
  Value cacheArg = rope ? func.getArgument(next++) : Value();
  Value swapSlots =
      rope ? Value(func.getWorkgroupAttributions().back()) : Value();
  // With the prologue the warps read the normalized row from workgroup
  // memory.
  Value xRow = addNorm ? Value(func.getWorkgroupAttributions()[0]) : x;
  // Token rows of this CTA: [tokenBase, tokenBase + R), loads clamped to
  // the step's last row.
  SmallVector<Value> tokenRows, loadTokenRows;
  Value numTokens;
  if (chunked) {
    KernelBuilder::TokenChunk chunk = b.tokenChunk(stepArg, R);
    numTokens = chunk.numRows;
    tokenRows = chunk.rows;
    loadTokenRows = chunk.loadRows;
  }
  // x[t, column] (chunked) or x[column].
  auto loadX = [&](int64_t t, Value column) {
    if (chunked && addNorm)
      return b.loadF32(xRow, {b.index(t), column}, width);
    return chunked ? b.loadF32(x, {loadTokenRows[t], column}, width)
                   : b.loadF32(xRow, {column}, width);
  };

  Value tid = b.threadIdX();
  Value warpSize = b.index(kWarpSize);
  Value lane = arith::RemUIOp::create(b, tid, warpSize);
  Value warp = arith::DivUIOp::create(b, tid, warpSize);
  // The rope + cache epilogue of one warp's row `row` (all lanes hold its
  // dot product `dot`): q and k rotate with their partner warp's value,
  // k and v also go to the cache slot.
  auto emitRopeAndCacheWrite = [&](Value row, Value dot, size_t member) {
    Value isLeader = b.cmp(arith::CmpIPredicate::eq, lane, 0);
    auto narrow = [&](Value v) {
      return arith::TruncFOp::create(b, elementType, v).getResult();
    };
    // The value the unfused gemv would have stored, back in fp32.
    Value stored = arith::ExtFOp::create(b, b.getF32Type(), narrow(dot));
    Value out = stored;
    if (member < 2) {
      b.ifThen(isLeader,
               [&] { memref::StoreOp::create(b, stored, swapSlots, warp); });
      gpu::BarrierOp::create(b);
      Value partner = memref::LoadOp::create(
          b, swapSlots,
          ValueRange{b.remU(b.add(warp, pairWarps), options.warpsPerBlock)});
      Value channel = b.remU(row, headDim);
      auto table = [&](Value t) {
        Value v = memref::LoadOp::create(b, t, ValueRange{b.index(0), channel});
        return v.getType().isF32()
                   ? v
                   : arith::ExtFOp::create(b, b.getF32Type(), v).getResult();
      };
      Value c = table(cosTable), sn = table(sinTable);
      Value ownCos = arith::MulFOp::create(b, stored, c);
      Value partnerSin = arith::MulFOp::create(b, partner, sn);
      // First half: x1 cos1 - x2 sin1; second half: x2 cos2 + x1 sin2.
      out = arith::SelectOp::create(
          b, b.cmp(arith::CmpIPredicate::ult, warp, pairWarps),
          arith::SubFOp::create(b, ownCos, partnerSin),
          arith::AddFOp::create(b, ownCos, partnerSin));
    }
    Value value = narrow(out);
    Value slot = b.loadIndex(slotMapping, {b.index(0)});
    b.ifThen(isLeader, [&] {
      memref::StoreOp::create(b, value, outputs[member], row);
      if (member == 0)
        return;
      b.ifThen(b.cmp(arith::CmpIPredicate::sge, slot, 0), [&] {
        // Slots are non-negative here, so unsigned division is exact.
        const ResolvedCacheLayout &l = *cacheLayout;
        Value at = b.add(
            b.add(b.mul(b.divU(slot, options.kvBlockSize), l.blockStride),
                  b.mul(b.remU(slot, options.kvBlockSize), l.tokenStride)),
            b.add(b.mul(b.divU(row, headDim), l.headStride),
                  b.remU(row, headDim)));
        if (member == 2)
          at = b.add(at, l.vOffset);
        memref::StoreOp::create(b, value, cacheArg, at);
      });
    });
  };
  // The rows of one matrix W [n, K] -> y [n] that CTA `block` (counted
  // from the matrix's first CTA) owns. `member`: the weight's position
  // (with the rope epilogue 0 is q, 1 k, 2 v).
  auto emitRows = [&](Value w, Value y, int64_t n, Value block, size_t member) {
    bool rotated = rope && member < 2;
    bool rowsOvershoot = ceilDiv(n, rowsPerBlock) * rowsPerBlock != n;
    Value firstRow = arith::AddIOp::create(
        b, arith::MulIOp::create(b, block, b.index(rowsPerBlock)),
        arith::MulIOp::create(b, warp, b.index(options.rowsPerWarp)));
    if (rotated) {
      // CTA `block` of a head's halfDim / pairWarps: warp w < pairWarps
      // takes channel j * pairWarps + w, warp w + pairWarps the channel
      // halfDim further (its rotation partner).
      int64_t blocksPerHead = halfDim / pairWarps;
      Value head = b.divU(block, blocksPerHead);
      Value channel = b.add(b.mul(b.remU(block, blocksPerHead), pairWarps),
                            b.add(b.remU(warp, pairWarps),
                                  b.mul(b.divU(warp, pairWarps), halfDim)));
      firstRow = b.add(b.mul(head, headDim), channel);
    }
    Value laneColumn = arith::MulIOp::create(b, lane, b.index(width));

    // Rows past N (last block only) read row N-1 and skip the store, so every
    // lane stays in the shuffles and no load needs a guard.
    auto warpRows = b.clampedRows(firstRow, options.rowsPerWarp,
                                  rowsOvershoot ? b.index(n - 1) : Value());
    SmallVector<Value> rows = warpRows.rows, loadRows = warpRows.loadRows;

    // The weight rows a warp streams: its rows of W, then (gated) the same
    // rows of W_up. Accumulators: [stream r][token t] at r * R + t.
    SmallVector<std::pair<Value, Value>> streams; // (matrix, row)
    for (Value row : loadRows)
      streams.push_back({w, row});
    if (gated)
      for (Value row : loadRows)
        streams.push_back({wUp, row});
    // Before waiting for the previous kernel (whose output is x), start
    // pulling this warp's first group of weight vectors into L2: the weights
    // are constant, so with programmatic dependent launch their reads overlap
    // the previous kernel's tail.
    int64_t prefetchSteps = std::min<int64_t>(fullSteps, options.unroll);
    for (auto &stream : streams)
      for (int64_t s = 0; s < prefetchSteps; ++s)
        b.prefetchL2(stream.first, b.add(b.mul(stream.second, options.k),
                                         b.add(laneColumn, s * stride)));
    b.waitForPriorGrids();
    if (addNorm) {
      NormPrologue prologue = {x,
                               residual,
                               normWeight,
                               sumOut,
                               normedOut,
                               tid,
                               func.getWorkgroupAttributions()[1],
                               xRow,
                               options.warpsPerBlock,
                               options.k,
                               options.normEpsilon,
                               elementType};
      if (chunked) {
        prologue.rows = loadTokenRows;
        for (Value row : tokenRows)
          prologue.liveRows.push_back(
              b.cmp(arith::CmpIPredicate::ult, row, numTokens));
      }
      emitNormPrologue(b, prologue, *normRow);
    }

    // One group of K steps at the given columns: all loads, then the FMAs.
    auto accumulate = [&](ArrayRef<Value> columns, SmallVector<Value> accs) {
      SmallVector<SmallVector<Value>> xs(R);
      SmallVector<SmallVector<Value>> ws(streams.size());
      for (Value column : columns) {
        for (int64_t t = 0; t < R; ++t)
          xs[t].push_back(loadX(t, column));
        for (auto [r, stream] : llvm::enumerate(streams))
          ws[r].push_back(
              b.loadF32(stream.first, {stream.second, column}, width));
      }
      for (size_t s = 0; s < columns.size(); ++s)
        for (size_t r = 0; r < streams.size(); ++r)
          for (int64_t t = 0; t < R; ++t)
            accs[r * R + t] =
                vector::FMAOp::create(b, xs[t][s], ws[r][s], accs[r * R + t]);
      return accs;
    };
    auto columnsFrom = [&](Value base, int64_t count) {
      SmallVector<Value> columns;
      for (int64_t s = 0; s < count; ++s)
        columns.push_back(
            arith::AddIOp::create(b, base, b.index(s * stride)).getResult());
      return columns;
    };

    SmallVector<Value> accs(streams.size() * R, b.f32Splat(0.0, width));
    int64_t chunks =
        fullSteps > options.unroll ? fullSteps / options.unroll : 0;
    int64_t doneSteps = 0;
    if (chunks > 0) {
      // scf.for over chunks of `unroll` steps; the accumulators are carried.
      int64_t chunkElements = options.unroll * stride;
      auto loop = scf::ForOp::create(
          b, b.index(0), b.index(chunks * chunkElements),
          b.index(chunkElements), accs,
          [&](OpBuilder &, Location, Value offset, ValueRange carried) {
            Value base = arith::AddIOp::create(b, laneColumn, offset);
            SmallVector<Value> next =
                accumulate(columnsFrom(base, options.unroll),
                           SmallVector<Value>(carried.begin(), carried.end()));
            scf::YieldOp::create(b, next);
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
      doneSteps = chunks * options.unroll;
    }
    if (fullSteps > doneSteps) {
      Value base =
          arith::AddIOp::create(b, laneColumn, b.index(doneSteps * stride));
      accs = accumulate(columnsFrom(base, fullSteps - doneSteps), accs);
    }
    if (tailLanes > 0) {
      Value inRow = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, lane,
                                          b.index(tailLanes));
      Value column =
          arith::AddIOp::create(b, laneColumn, b.index(fullSteps * stride));
      for (size_t i = 0; i < accs.size(); ++i) {
        Value before = accs[i];
        size_t r = i / R;
        int64_t t = static_cast<int64_t>(i % R);
        accs[i] = b.ifElse(
            inRow,
            [&] {
              Value xv = loadX(t, column);
              Value wv = b.loadF32(streams[r].first,
                                   {streams[r].second, column}, width);
              return vector::FMAOp::create(b, xv, wv, before).getResult();
            },
            [&] { return before; });
      }
    }

    // Lane sum, warp sum, and lane 0 writes each row it owns.
    Value isLeader =
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane, b.index(0));
    SmallVector<Value> sums;
    for (Value acc : accs)
      sums.push_back(b.warpSum(
          vector::ReductionOp::create(b, vector::CombiningKind::ADD, acc)));
    // The stored type, back in fp32 (the gated path's gate and up round as
    // the unfused gemvs' outputs would).
    auto roundTrip = [&](Value v) {
      Value narrowed = arith::TruncFOp::create(b, elementType, v);
      return arith::ExtFOp::create(b, b.getF32Type(), narrowed).getResult();
    };
    // The rope epilogue stores its own rows (rotated, and into the cache).
    size_t outputs = gated ? accs.size() / 2 : rope ? 0 : accs.size();
    for (size_t i = 0; i < outputs; ++i) {
      size_t r = i / R;
      int64_t t = static_cast<int64_t>(i % R);
      Value sum = sums[i];
      if (gated)
        sum = b.siluMul(roundTrip(sum), roundTrip(sums[outputs + i]));
      Value writes = isLeader;
      if (rowsOvershoot)
        writes = arith::AndIOp::create(
            b, writes,
            arith::CmpIOp::create(b, arith::CmpIPredicate::ult, rows[r],
                                  b.index(n)));
      if (chunked)
        writes = arith::AndIOp::create(
            b, writes,
            arith::CmpIOp::create(b, arith::CmpIPredicate::ult, tokenRows[t],
                                  numTokens));
      b.ifThen(writes, [&] {
        Value total = sum;
        if (biasArg) {
          Value bv = memref::LoadOp::create(b, biasArg, rows[r]);
          total = arith::AddFOp::create(
              b, sum, arith::ExtFOp::create(b, b.getF32Type(), bv));
        }
        Value narrowed =
            outElementType == total.getType()
                ? total
                : arith::TruncFOp::create(b, outElementType, total).getResult();
        if (chunked)
          memref::StoreOp::create(b, narrowed, y,
                                  ValueRange{tokenRows[t], rows[r]});
        else
          memref::StoreOp::create(b, narrowed, y, rows[r]);
      });
    }
    if (rope)
      emitRopeAndCacheWrite(rows.front(), sums.front(), member);
  };
  if (!multi) {
    emitRows(w, y, options.n, b.blockIdX(), 0);
  } else {
    // CTA-uniform branches: each CTA computes rows of one matrix.
    Value block = b.blockIdX();
    int64_t first = 0;
    for (size_t m = 0; m < allRows.size(); ++m) {
      Value inMatrix = b.cmp(arith::CmpIPredicate::uge, block, first);
      if (m + 1 < allRows.size())
        inMatrix = b.andI(inMatrix, b.cmp(arith::CmpIPredicate::ult, block,
                                          first + matrixBlocks[m]));
      b.ifThen(inMatrix, [&] {
        emitRows(weights[m], outputs[m], allRows[m],
                 b.sub(block, b.index(first)), m);
      });
      first += matrixBlocks[m];
    }
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = gated ? "gemv_gated" : multi ? "gemv_multi" : "gemv";
  spec.name = name;
  spec.grid = {blocks, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("n", StringRef(allN));
  spec.addParam("k", options.k);
  spec.addParam("vec", width);
  spec.addParam("rows_per_warp", options.rowsPerWarp);
  spec.addParam("unroll", options.unroll);
  if (options.bias)
    spec.addParam("bias", 1);
  if (chunked)
    spec.addParam("tokens", R);
  if (outDType != options.dtype)
    spec.addParam("out_dtype", stringifyDType(outDType));
  if (addNorm) {
    spec.addParam("add_norm", 1);
    spec.addFloatParam("eps", options.normEpsilon);
  }
  if (rope) {
    spec.addParam("rope", 1);
    spec.addParam("head_dim", headDim);
    spec.addParam("table_dtype", stringifyDType(options.ropeTableDType));
    spec.addParam("block_size", options.kvBlockSize);
    addCacheParams(spec, *cacheLayout);
  }
  // Chunked: shapes of one chunk of R rows (the device passes the whole
  // [T, K] and [T, N] buffers).
  spec.args = {{"x", options.dtype,
                chunked ? SmallVector<int64_t>{R, options.k}
                        : SmallVector<int64_t>{options.k},
                false},
               {"w", options.dtype, {options.n, options.k}, false}};
  if (addNorm)
    spec.args.insert(spec.args.begin() + 1,
                     {{"residual", options.dtype, spec.args[0].shape, false},
                      {"norm_weight", options.dtype, {options.k}, false}});
  if (gated)
    spec.args.push_back({"w_up", options.dtype, {options.n, options.k}, false});
  for (size_t i = 0; i < options.moreN.size(); ++i)
    spec.args.push_back({"w" + std::to_string(i + 1),
                         options.dtype,
                         {options.moreN[i], options.k},
                         false});
  if (options.bias)
    spec.args.push_back({"bias", options.dtype, {options.n}, false});
  spec.args.push_back({"y", outDType,
                       chunked ? SmallVector<int64_t>{R, options.n}
                               : SmallVector<int64_t>{options.n},
                       true});
  for (size_t i = 0; i < options.moreN.size(); ++i)
    spec.args.push_back({"y" + std::to_string(i + 1), outDType,
                         chunked ? SmallVector<int64_t>{R, options.moreN[i]}
                                 : SmallVector<int64_t>{options.moreN[i]},
                         true});
  if (chunked)
    spec.args.push_back({"step", KernelDType::I32, {4}, false});
  if (addNorm) {
    spec.args.push_back({"sum", options.dtype, spec.args[0].shape, true});
    spec.args.push_back({"normed", options.dtype, spec.args[0].shape, true});
  }
  if (rope) {
    spec.args.push_back({"cos", options.ropeTableDType, {1, headDim}, false});
    spec.args.push_back({"sin", options.ropeTableDType, {1, headDim}, false});
    spec.args.push_back({"slot_mapping", KernelDType::I64, {1}, false});
    addCacheArgs(spec, *cacheLayout, options.dtype, /*isOutput=*/true);
  }
  return spec;
}
