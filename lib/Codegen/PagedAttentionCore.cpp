//===- PagedAttentionCore.cpp - What paged decode and prefill share -------===//

#include "PagedAttentionCore.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace kiln::codegen;

/// Workgroup memory a CTA may take without opting in (static shared).
static constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;
/// fp32 registers per lane for its query slice (headsPerCta * vectors per
/// lane * vec); the accumulator takes as many again.
static constexpr int64_t kMaxQueryFloats = 64;
/// Keys a warp tile aims for (one block of 16 with the default block size).
static constexpr int64_t kTargetWarpTile = 16;

FailureOr<AttentionConfig>
kiln::codegen::resolveAttentionConfig(Location loc,
                                      const PagedAttentionOptions &options,
                                      int64_t defaultNumBlocks) {
  AttentionConfig c;
  c.options = options;
  if (options.dtype != KernelDType::F16 && options.dtype != KernelDType::BF16)
    return emitError(loc) << "paged attention reads f16 or bf16";
  if (options.numHeads <= 0 || options.kvHeads <= 0 || options.headDim <= 0 ||
      options.blockSize <= 0 || options.maxBlocks <= 0)
    return emitError(loc) << "paged attention needs heads, kv_heads, "
                             "head_dim, block_size and max_blocks > 0, got "
                             "heads="
                          << options.numHeads << " kv_heads=" << options.kvHeads
                          << " head_dim=" << options.headDim
                          << " block_size=" << options.blockSize
                          << " max_blocks=" << options.maxBlocks;
  if (options.numHeads % options.kvHeads != 0)
    return emitError(loc) << "heads=" << options.numHeads
                          << " is not a multiple of kv_heads="
                          << options.kvHeads;
  if (options.maxBlocks * options.blockSize > 2147483647)
    return emitError(loc) << "max_blocks * block_size exceeds the i32 "
                             "context lengths";
  c.scale =
      options.scale ? *options.scale : 1.0 / std::sqrt(double(options.headDim));
  if (!std::isfinite(c.scale) || c.scale == 0)
    return emitError(loc) << "scale must be finite and non-zero, got "
                          << c.scale;
  if (options.slidingWindow < 0)
    return emitError(loc) << "sliding window must be >= 0 (0: none), got "
                          << options.slidingWindow;
  if (!std::isfinite(options.softcap) || options.softcap < 0)
    return emitError(loc) << "softcap must be finite and >= 0 (0: none), got "
                          << options.softcap;
  FailureOr<ResolvedCacheLayout> cache = resolvePagedCacheLayout(
      loc, options.cache, options.dtype, options.kvHeads, options.blockSize,
      options.headDim, defaultNumBlocks);
  if (failed(cache))
    return failure();
  c.cache = *cache;

  c.group = options.numHeads / options.kvHeads;
  c.vec = c.cache.vectorWidth;
  c.vectorsPerRow = options.headDim / c.vec;
  int64_t largestPow2 = c.vectorsPerRow & -c.vectorsPerRow;
  if (options.lanesPerKey) {
    if (!llvm::isPowerOf2_64(options.lanesPerKey) ||
        options.lanesPerKey > kWarpSize ||
        c.vectorsPerRow % options.lanesPerKey != 0)
      return emitError(loc)
             << "lanes per key must be a power of two up to 32 dividing the "
             << c.vectorsPerRow << " vectors of a row, got "
             << options.lanesPerKey;
    c.lanesPerKey = options.lanesPerKey;
  } else {
    c.lanesPerKey = std::min<int64_t>(largestPow2, kWarpSize);
  }
  c.vectorsPerLane = c.vectorsPerRow / c.lanesPerKey;
  c.keysPerStep = kWarpSize / c.lanesPerKey;

  // Query heads per CTA: the whole group unless its query slice would not
  // fit the register budget; then the largest divisor that does.
  int64_t floatsPerHead = c.vectorsPerLane * c.vec;
  c.headsPerCta = 1;
  for (int64_t h = c.group; h >= 1; --h)
    if (c.group % h == 0 && h * floatsPerHead <= kMaxQueryFloats) {
      c.headsPerCta = h;
      break;
    }
  c.headChunks = c.group / c.headsPerCta;
  if (options.kvHeads * c.headChunks > 65535)
    return emitError(loc) << "kv_heads * head chunks exceeds the grid's y "
                             "dimension";

  if (options.keysPerLane < 0 || options.keysPerLane > 32)
    return emitError(loc) << "keys per lane must be in [1, 32], got "
                          << options.keysPerLane;
  c.keysPerLane =
      options.keysPerLane
          ? options.keysPerLane
          : std::max<int64_t>(1, std::min(kTargetWarpTile / c.keysPerStep,
                                          32 / c.headsPerCta));
  c.warpTile = c.keysPerLane * c.keysPerStep;
  if (options.warps < 0 || options.warps > 32)
    return emitError(loc) << "warps must be in [1, 32], got " << options.warps;
  c.warps = options.warps ? options.warps : 4;
  c.threads = c.warps * kWarpSize;
  c.prefetch = options.prefetch;
  c.tileInOneBlock = options.blockSize % c.warpTile == 0;
  c.stateFloats = c.warps * c.headsPerCta * (options.headDim + 2);
  if (c.stateFloats * 4 > kMaxStaticSharedBytes)
    return emitError(loc) << "the per-warp states take " << c.stateFloats * 4
                          << " bytes of workgroup memory (at most "
                          << kMaxStaticSharedBytes << "); use fewer warps";
  return c;
}

void kiln::codegen::addAttentionParams(KernelSpec &spec,
                                       const AttentionConfig &c) {
  const PagedAttentionOptions &o = c.options;
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("heads", o.numHeads);
  spec.addParam("kv_heads", o.kvHeads);
  spec.addParam("head_dim", o.headDim);
  spec.addParam("block_size", o.blockSize);
  spec.addParam("max_blocks", o.maxBlocks);
  spec.addFloatParam("scale", c.scale);
  spec.addParam("window", o.slidingWindow);
  spec.addFloatParam("softcap", o.softcap);
  addCacheParams(spec, c.cache);
  spec.addParam("vec", c.vec);
  spec.addParam("lanes_per_key", c.lanesPerKey);
  spec.addParam("keys_per_lane", c.keysPerLane);
  spec.addParam("warps", c.warps);
  spec.addParam("heads_per_cta", c.headsPerCta);
  spec.addParam("prefetch", c.prefetch ? 1 : 0);
}

std::string kiln::codegen::attentionNameSuffix(const AttentionConfig &c) {
  std::string suffix;
  if (c.options.slidingWindow)
    suffix += llvm::formatv("_sw{0}", c.options.slidingWindow);
  if (c.options.softcap) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", c.options.softcap);
    std::string cap = text;
    for (char &ch : cap)
      if (!std::isalnum(static_cast<unsigned char>(ch)))
        ch = 'p';
    suffix += "_cap" + cap;
  }
  if (c.cache.separate())
    suffix += "_sep";
  return suffix;
}

//===----------------------------------------------------------------------===//
// AttentionEmitter
//===----------------------------------------------------------------------===//

AttentionEmitter::AttentionEmitter(KernelBuilder &b, const AttentionConfig &c,
                                   Value q, Value kCache, Value vCache,
                                   Value blockTables, Value state)
    : b(b), c(c), q(q), kCache(kCache), vCache(vCache), tables(blockTables),
      state(state) {
  tid_ = b.threadIdX();
}

void AttentionEmitter::splitHeadIndex(Value y, Work &work) {
  if (c.headChunks == 1) {
    work.kvHead = y;
    work.firstHead = b.mul(y, c.group);
    return;
  }
  work.kvHead = b.divU(y, c.headChunks);
  work.firstHead = b.add(b.mul(work.kvHead, c.group),
                         b.mul(b.remU(y, c.headChunks), c.headsPerCta));
}

static Value maxF(KernelBuilder &b, Value x, Value y) {
  return arith::MaxNumFOp::create(b, x, y);
}
static Value mulF(KernelBuilder &b, Value x, Value y) {
  return arith::MulFOp::create(b, x, y);
}
static Value addF(KernelBuilder &b, Value x, Value y) {
  return arith::AddFOp::create(b, x, y);
}
static Value subF(KernelBuilder &b, Value x, Value y) {
  return arith::SubFOp::create(b, x, y);
}
static Value splat(KernelBuilder &b, Value scalar, int64_t width) {
  return vector::BroadcastOp::create(
      b, VectorType::get({width}, b.getF32Type()), scalar);
}

void AttentionEmitter::merge(Value &m, Value &l, Value &acc, Value m2, Value l2,
                             Value acc2) {
  Value top = maxF(b, m, m2);
  Value a = b.exp2Approx(subF(b, m, top));
  Value a2 = b.exp2Approx(subF(b, m2, top));
  l = addF(b, mulF(b, l, a), mulF(b, l2, a2));
  int64_t width = cast<VectorType>(acc.getType()).getNumElements();
  acc = vector::FMAOp::create(b, acc2, splat(b, a2, width),
                              mulF(b, acc, splat(b, a, width)));
  m = top;
}

void AttentionEmitter::prefetchRows(const Work &work) {
  const PagedAttentionOptions &o = c.options;
  Value position = b.add(work.begin, tid_);
  b.ifThen(b.cmp(arith::CmpIPredicate::ult, position, work.end), [&] {
    Value logical = b.divU(position, o.blockSize);
    Value block = b.loadIndex(tables, {work.seq, logical});
    Value row = b.add(b.add(b.mul(block, c.cache.blockStride),
                            b.mul(work.kvHead, c.cache.headStride)),
                      b.mul(b.sub(position, b.mul(logical, o.blockSize)),
                            c.cache.tokenStride));
    int64_t elementBytes = getElementBytes(o.dtype);
    int64_t lineElements = 128 / elementBytes;
    for (int64_t e = 0; e < o.headDim; e += lineElements) {
      b.prefetchL2(kCache, b.add(row, e));
      b.prefetchL2(vCache, b.add(row, c.cacheVOffset() + e));
    }
  });
}

void AttentionEmitter::accumulate(const Work &work, bool maskBelowBegin) {
  const PagedAttentionOptions &o = c.options;
  int64_t heads = c.headsPerCta, lanes = c.lanesPerKey;
  int64_t perLane = c.vectorsPerLane, vec = c.vec, tile = c.warpTile;
  Value lane = b.remU(tid_, kWarpSize);
  Value warp = b.divU(tid_, kWarpSize);
  Value keyLane = b.remU(lane, lanes); // c: which vectors of the row
  Value keySlot = b.divU(lane, lanes); // kk: which key of a warp step

  // Columns of this lane's vectors of a row.
  SmallVector<Value> columns;
  for (int64_t i = 0; i < perLane; ++i)
    columns.push_back(b.mul(b.add(keyLane, i * lanes), vec));

  // The query slice, pre-scaled so that q . k is the score in base 2 (or
  // the tanh argument with a softcap).
  double qScale =
      o.softcap ? c.scale / o.softcap : c.scale * llvm::numbers::log2e;
  Value qScaleSplat = b.f32Splat(qScale, vec);
  SmallVector<SmallVector<Value>> qs(heads);
  for (int64_t g = 0; g < heads; ++g)
    for (int64_t i = 0; i < perLane; ++i)
      qs[g].push_back(mulF(
          b,
          b.loadF32(q, {work.qRow, b.add(work.firstHead, g), columns[i]}, vec),
          qScaleSplat));

  // Loop-carried state: m[g], l[g], acc[g][i].
  SmallVector<Value> init;
  for (int64_t g = 0; g < heads; ++g)
    init.push_back(b.f32(kNoScore));
  for (int64_t g = 0; g < heads; ++g)
    init.push_back(b.f32(0.0));
  for (int64_t g = 0; g < heads * perLane; ++g)
    init.push_back(b.f32Splat(0.0, vec));
  auto mAt = [&](int64_t g) { return g; };
  auto lAt = [&](int64_t g) { return heads + g; };
  auto accAt = [&](int64_t g, int64_t i) {
    return 2 * heads + g * perLane + i;
  };

  Value tileStart = b.sub(work.begin, b.remU(work.begin, tile));
  Value start = b.add(tileStart, b.mul(warp, tile));
  Value last = b.sub(work.end, b.index(1));
  Value headBase = b.mul(work.kvHead, c.cache.headStride);
  int64_t vOffset = c.cacheVOffset();
  Value negInf = b.f32(-INFINITY);
  double capLog2e = o.softcap * llvm::numbers::log2e;

  // The raw K and V vectors of the warp tile at `t` (keys t + u * steps +
  // keySlot), in u-major order: K of every (u, i), then V. Keys are clamped
  // into [0, end - 1] for the addresses, so a tile past the end (the
  // prefetch after the last one, or any tile of an empty range) still reads
  // inside the sequence's table row and blocks; only tiles below `end` are
  // ever computed.
  int64_t vectorsPerTile = c.keysPerLane * perLane;
  auto loadTile = [&](Value t) -> SmallVector<Value> {
    SmallVector<Value> rows;
    auto clampKey = [&](Value key) {
      return b.maxS(b.minS(key, last), b.index(0));
    };
    Value tileBlock, tileBlockStart;
    if (c.tileInOneBlock) {
      Value logical = b.divU(clampKey(t), o.blockSize);
      Value block = b.loadIndex(tables, {work.seq, logical});
      tileBlock = b.add(b.mul(block, c.cache.blockStride), headBase);
      tileBlockStart = b.mul(logical, o.blockSize);
    }
    for (int64_t u = 0; u < c.keysPerLane; ++u) {
      Value clamped = clampKey(b.add(b.add(t, u * c.keysPerStep), keySlot));
      Value row;
      if (c.tileInOneBlock) {
        row = b.add(tileBlock,
                    b.mul(b.sub(clamped, tileBlockStart), c.cache.tokenStride));
      } else {
        Value logical = b.divU(clamped, o.blockSize);
        Value block = b.loadIndex(tables, {work.seq, logical});
        Value offset = b.sub(clamped, b.mul(logical, o.blockSize));
        row = b.add(b.add(b.mul(block, c.cache.blockStride), headBase),
                    b.mul(offset, c.cache.tokenStride));
      }
      rows.push_back(row);
    }
    SmallVector<Value> raw;
    for (int64_t u = 0; u < c.keysPerLane; ++u)
      for (int64_t i = 0; i < perLane; ++i)
        raw.push_back(b.loadVector(kCache, {b.add(rows[u], columns[i])}, vec));
    for (int64_t u = 0; u < c.keysPerLane; ++u)
      for (int64_t i = 0; i < perLane; ++i) {
        Value index = b.add(rows[u], columns[i]);
        raw.push_back(b.loadVector(
            vCache, {vOffset ? b.add(index, vOffset) : index}, vec));
      }
    return raw;
  };

  // One tile's scores and online-softmax update of the state `st`.
  auto computeTile = [&](Value t, ArrayRef<Value> raw, SmallVector<Value> st) {
    auto widen = [&](Value v) {
      return arith::ExtFOp::create(b, VectorType::get({vec}, b.getF32Type()), v,
                                   arith::FastMathFlagsAttr())
          .getResult();
    };
    SmallVector<Value> valid;
    for (int64_t u = 0; u < c.keysPerLane; ++u) {
      Value key = b.add(b.add(t, u * c.keysPerStep), keySlot);
      Value inRange = b.cmp(arith::CmpIPredicate::slt, key, work.end);
      if (maskBelowBegin)
        inRange =
            b.andI(inRange, b.cmp(arith::CmpIPredicate::sge, key, work.begin));
      valid.push_back(inRange);
    }
    // Scores [g][u] in base 2.
    SmallVector<SmallVector<Value>> kf(c.keysPerLane);
    for (int64_t u = 0; u < c.keysPerLane; ++u)
      for (int64_t i = 0; i < perLane; ++i)
        kf[u].push_back(widen(raw[u * perLane + i]));
    SmallVector<SmallVector<Value>> scores(heads);
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t u = 0; u < c.keysPerLane; ++u) {
        Value dot = mulF(b, qs[g][0], kf[u][0]);
        for (int64_t i = 1; i < perLane; ++i)
          dot = vector::FMAOp::create(b, qs[g][i], kf[u][i], dot);
        Value s =
            vector::ReductionOp::create(b, vector::CombiningKind::ADD, dot);
        s = b.warpSum(s, lanes);
        if (o.softcap)
          s = mulF(b, b.f32(capLog2e), b.tanhApprox(s));
        scores[g].push_back(arith::SelectOp::create(b, valid[u], s, negInf));
      }
    // Online softmax update per head.
    SmallVector<SmallVector<Value>> vf(c.keysPerLane);
    for (int64_t u = 0; u < c.keysPerLane; ++u)
      for (int64_t i = 0; i < perLane; ++i)
        vf[u].push_back(widen(raw[vectorsPerTile + u * perLane + i]));
    for (int64_t g = 0; g < heads; ++g) {
      Value tileMax = scores[g][0];
      for (int64_t u = 1; u < c.keysPerLane; ++u)
        tileMax = maxF(b, tileMax, scores[g][u]);
      Value m = st[mAt(g)];
      Value top = maxF(b, m, tileMax);
      Value alpha = b.exp2Approx(subF(b, m, top));
      SmallVector<Value> p;
      Value sum;
      for (int64_t u = 0; u < c.keysPerLane; ++u) {
        p.push_back(b.exp2Approx(subF(b, scores[g][u], top)));
        sum = u ? addF(b, sum, p[u]) : p[u];
      }
      st[lAt(g)] = addF(b, mulF(b, st[lAt(g)], alpha), sum);
      for (int64_t i = 0; i < perLane; ++i) {
        Value acc = mulF(b, st[accAt(g, i)], splat(b, alpha, vec));
        for (int64_t u = 0; u < c.keysPerLane; ++u)
          acc = vector::FMAOp::create(b, splat(b, p[u], vec), vf[u][i], acc);
        st[accAt(g, i)] = acc;
      }
      st[mAt(g)] = top;
    }
    return st;
  };

  // The loop over this warp's tiles. With prefetch, the raw vectors of the
  // next tile are loop-carried: its loads are issued before the current
  // tile's math, so that each warp keeps two tiles of loads in flight.
  int64_t stride = c.warps * tile;
  int64_t stateSize = static_cast<int64_t>(init.size());
  if (c.prefetch)
    init.append(loadTile(start));
  auto loop = scf::ForOp::create(
      b, start, work.end, b.index(stride), init,
      [&](OpBuilder &, Location, Value t, ValueRange carried) {
        SmallVector<Value> st(carried.begin(), carried.begin() + stateSize);
        SmallVector<Value> next, raw;
        if (c.prefetch) {
          raw.assign(carried.begin() + stateSize, carried.end());
          next = loadTile(b.add(t, stride));
        } else {
          raw = loadTile(t);
        }
        SmallVector<Value> yield = computeTile(t, raw, st);
        yield.append(next);
        scf::YieldOp::create(b, yield);
      });
  SmallVector<Value> st(loop.getResults().begin(),
                        loop.getResults().begin() + stateSize);

  // Merge the keySlot groups of the warp: lane kk*L + c with (kk ^ 1)*L + c,
  // and so on, until every lane holds the warp's state for its columns.
  for (int64_t offset = lanes; offset < kWarpSize; offset *= 2) {
    for (int64_t g = 0; g < heads; ++g) {
      Value m2 = b.shuffleXor(st[mAt(g)], offset);
      Value l2 = b.shuffleXor(st[lAt(g)], offset);
      Value top = maxF(b, st[mAt(g)], m2);
      Value a = b.exp2Approx(subF(b, st[mAt(g)], top));
      Value a2 = b.exp2Approx(subF(b, m2, top));
      st[lAt(g)] = addF(b, mulF(b, st[lAt(g)], a), mulF(b, l2, a2));
      for (int64_t i = 0; i < perLane; ++i) {
        Value acc = st[accAt(g, i)];
        SmallVector<Value> elements;
        for (int64_t e = 0; e < vec; ++e)
          elements.push_back(
              b.shuffleXor(vector::ExtractOp::create(b, acc, e), offset));
        Value acc2 = vector::FromElementsOp::create(
            b, VectorType::get({vec}, b.getF32Type()), elements);
        st[accAt(g, i)] = vector::FMAOp::create(b, acc2, splat(b, a2, vec),
                                                mulF(b, acc, splat(b, a, vec)));
      }
      st[mAt(g)] = top;
    }
  }

  // Warp states to workgroup memory: acc [W, heads, D], m [W, heads],
  // l [W, heads].
  int64_t mBase = c.warps * heads * o.headDim;
  int64_t lBase = mBase + c.warps * heads;
  Value warpHeads = b.mul(warp, heads);
  b.ifThen(b.cmp(arith::CmpIPredicate::eq, keySlot, 0), [&] {
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t i = 0; i < perLane; ++i)
        b.storeVector(
            st[accAt(g, i)], state,
            {b.add(b.mul(b.add(warpHeads, g), o.headDim), columns[i])},
            /*alignBytes=*/4);
  });
  b.ifThen(b.cmp(arith::CmpIPredicate::eq, lane, 0), [&] {
    for (int64_t g = 0; g < heads; ++g) {
      memref::StoreOp::create(b, st[mAt(g)], state,
                              b.add(warpHeads, mBase + g));
      memref::StoreOp::create(b, st[lAt(g)], state,
                              b.add(warpHeads, lBase + g));
    }
  });
  gpu::BarrierOp::create(b);
}

void AttentionEmitter::forEachResult(
    const std::function<void(const Result &)> &fn) {
  const PagedAttentionOptions &o = c.options;
  int64_t heads = c.headsPerCta;
  int64_t items = heads * c.vectorsPerRow;
  int64_t rounds = ceilDiv(items, c.threads);
  int64_t mBase = c.warps * heads * o.headDim;
  int64_t lBase = mBase + c.warps * heads;
  for (int64_t r = 0; r < rounds; ++r) {
    Value item = b.add(tid_, r * c.threads);
    auto emit = [&] {
      Value g = b.divU(item, c.vectorsPerRow);
      Value column = b.mul(b.remU(item, c.vectorsPerRow), c.vec);
      SmallVector<Value> ms;
      Value top;
      for (int64_t w = 0; w < c.warps; ++w) {
        ms.push_back(
            memref::LoadOp::create(b, state, b.add(g, mBase + w * heads)));
        top = w ? maxF(b, top, ms[w]) : ms[w];
      }
      Value l, acc;
      for (int64_t w = 0; w < c.warps; ++w) {
        Value weight = b.exp2Approx(subF(b, ms[w], top));
        Value lw =
            memref::LoadOp::create(b, state, b.add(g, lBase + w * heads));
        Value accw = b.loadVector(
            state, {b.add(b.mul(b.add(g, w * heads), o.headDim), column)},
            c.vec, /*alignBytes=*/4);
        Value scaledL = mulF(b, lw, weight);
        Value scaledAcc = mulF(b, accw, splat(b, weight, c.vec));
        l = w ? addF(b, l, scaledL) : scaledL;
        acc = w ? addF(b, acc, scaledAcc) : scaledAcc;
      }
      fn({g, column, top, l, acc});
    };
    if ((r + 1) * c.threads > items)
      b.ifThen(b.cmp(arith::CmpIPredicate::ult, item, items), emit);
    else
      emit();
  }
}

Value AttentionEmitter::normalize(Value acc, Value l) {
  Value positive =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, l, b.f32(0.0));
  Value inverse = arith::SelectOp::create(
      b, positive, arith::DivFOp::create(b, b.f32(1.0), l), b.f32(0.0));
  return mulF(b, acc, splat(b, inverse, c.vec));
}
