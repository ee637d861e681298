//===- QuantMmaGemvKernel.cpp - Quantized GEMV on the tensor cores --------===//
//
// The CUDA-core qgemv turns every code into an fp32 and meets x in a scalar
// FMA chain: about six instructions a weight, which at int4 keeps it near a
// third of the HBM bandwidth. Here the products run on the tensor cores
// (mma.m16n8k16, fp32 accumulators) and a weight costs about one integer
// and half a packed-half instruction:
//
// - A warp owns 16 output rows, the A operand; the tokens are B's n columns
//   (one n8 tile per 8 tokens, so 16 decode rows cost about what 1 does).
//   Lane (g, q) = (lane / 4, lane % 4) holds rows g and g + 8.
// - The 4 lanes of a row load 64 contiguous bytes of it (a "chunk": 128
//   int4 or 64 int8 weights), 16 each, and build their A fragments from
//   their own 16 bytes. mma sums over k, so k may be permuted as long as A
//   and B agree: lane q's fragment slots hold codes (i, i + P) of one word
//   of its load (P = half the codes a word holds; adjacent codes where
//   they go through fp32, below) and its B slots the matching x, picked
//   from x's loads by shuffles.
// - A pair of codes becomes a packed pair of halves without a conversion:
//   (word >> bits * i) & (mask, mask) | (magic, magic) is the pair of halves
//   magic + u (f16 1024, bf16 128: the code lands in the mantissa), and one
//   packed subtraction of magic + z leaves u - z exactly. int8 with bf16
//   (whose 8-bit mantissa cannot hold magic + u) goes through fp32: 2^23 + u
//   as bits (one prmt of the code's byte under 2^23's), minus 2^23 + z,
//   packed by one cvt.rn.bf16x2.f32 (exact: |u - z| < 256).
// - (u - z) * x is exact in the fp32 accumulators; a group's partial sums
//   are scaled once, in fp32, so the result matches the CUDA-core qgemv up
//   to summation order.
// - kSplit warps of a CTA take slices of K for the same 16 rows and add
//   their results through workgroup memory: an 8B model's 1024-row k/v
//   projections would otherwise occupy 64 warps of a 132-SM GPU.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/GemvKernel.h"
#include "kiln/Codegen/QuantGemvKernel.h"

#include "KernelBuilder.h"
#include "NormRowEmitter.h"
#include "QuantDecode.h"
#include "QuantGemvSignature.h"
#include "TensorCoreOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace kiln::codegen;

namespace {

constexpr int64_t kTileRows = 16;  // mma M
constexpr int64_t kTileTokens = 8; // mma N
constexpr int64_t kMaxTokens = 16;

/// Chunks per loop step: the largest count up to `wanted` that divides the
/// row's chunks and either divides a group's chunks or is made of whole
/// groups, so a step's partial sums fold into whole groups.
int64_t pickUnroll(int64_t wanted, int64_t chunks, int64_t chunksPerGroup) {
  for (int64_t u = wanted; u > 1; --u)
    if (chunks % u == 0 && (chunksPerGroup % u == 0 || u % chunksPerGroup == 0))
      return u;
  return 1;
}

/// How codes become packed halves for one (activation type, bits).
struct PairDecoder {
  KernelBuilder &b;
  Type half;     // f16 or bf16
  int64_t bits;  // 4 or 8
  bool viaFloat; // int8 with bf16: through fp32

  int64_t codesPerWord() const { return 32 / bits; }
  /// Pairs a word's codes make: P = codesPerWord / 2.
  int64_t pairsPerWord() const { return codesPerWord() / 2; }
  /// The codes of pair i of a word: (i, i + P) where a packed pair of
  /// halves is built in place (the codes 16 bits apart); adjacent codes
  /// (2i, 2i + 1) through fp32, whose codes are decoded one by one: their
  /// x pair is then one 32-bit register of x's load, no shuffle.
  std::pair<int64_t, int64_t> pairCodes(int64_t i) const {
    if (viaFloat)
      return {2 * i, 2 * i + 1};
    return {i, i + pairsPerWord()};
  }

  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }

  /// The magic whose mantissa holds a code: 2^23 (fp32 route), 1024 (f16),
  /// 128 (bf16 with 4-bit codes).
  double magic() const {
    return viaFloat ? double(kCodeMagic) : half.isF16() ? 1024.0 : 128.0;
  }

  /// What a group subtracts: magic + z (zero point `zero`, an f32), else
  /// magic + 2^(bits-1). A vector<2 x half> splat, or an f32 for viaFloat.
  Value offset(Value zero) {
    Value value =
        zero ? arith::AddFOp::create(b, zero, b.f32(magic())).getResult()
             : b.f32(magic() + double(int64_t(1) << (bits - 1)));
    if (viaFloat)
      return value;
    Value narrowed = arith::TruncFOp::create(b, half, value);
    return vector::BroadcastOp::create(b, VectorType::get({2}, half), narrowed);
  }

  /// The P packed pairs (u - z of codes pairCodes(i)) of the i32 `word`.
  SmallVector<Value> decodeWord(Value word, Value offset) {
    auto pairType = VectorType::get({2}, half);
    SmallVector<Value> pairs;
    int64_t mask = (int64_t(1) << bits) - 1;
    for (int64_t i = 0; i < pairsPerWord(); ++i) {
      if (viaFloat) {
        // One prmt a code: byte `position` of the word under the bytes of
        // 2^23 (0x4B000000) is the fp32 2^23 + u (bfe + or before).
        auto code = [&](int64_t position) {
          Value bitsOf = NVVM::PermuteOp::create(
              b, b.getI32Type(), word, i32(0x4B000000), i32(0x7650 | position),
              NVVM::PermuteMode::DEFAULT);
          return arith::SubFOp::create(
                     b, arith::BitcastOp::create(b, b.getF32Type(), bitsOf),
                     offset)
              .getResult();
        };
        auto [first, second] = pairCodes(i);
        Value both = vector::FromElementsOp::create(
            b, VectorType::get({2}, b.getF32Type()),
            ValueRange{code(first), code(second)});
        pairs.push_back(arith::TruncFOp::create(b, pairType, both));
        continue;
      }
      int64_t halfMagic = half.isF16() ? 0x6400 : 0x4300;
      Value shifted =
          i ? arith::ShRUIOp::create(b, word, i32(bits * i)).getResult() : word;
      Value bitsOf = arith::OrIOp::create(
          b, arith::AndIOp::create(b, shifted, i32(mask * 0x00010001)),
          i32(halfMagic * 0x00010001));
      Value pair = vector::BitCastOp::create(
          b, pairType,
          vector::BroadcastOp::create(b, VectorType::get({1}, b.getI32Type()),
                                      bitsOf));
      pairs.push_back(arith::SubFOp::create(b, pair, offset));
    }
    return pairs;
  }
};

/// vector<N x 2 x T> of N vector<2 x T> pairs (an mma fragment).
Value stackPairs(KernelBuilder &b, ArrayRef<Value> pairs) {
  auto pairType = cast<VectorType>(pairs.front().getType());
  auto type =
      VectorType::get({int64_t(pairs.size()), 2}, pairType.getElementType());
  Value out = arith::ConstantOp::create(b, type, b.getZeroAttr(type));
  for (auto [i, pair] : llvm::enumerate(pairs))
    out = vector::InsertOp::create(b, pair, out, ArrayRef<int64_t>{int64_t(i)});
  return out;
}

} // namespace

FailureOr<KernelSpec>
kiln::codegen::buildQuantMmaGemvKernel(OpBuilder &builder,
                                       gpu::GPUModuleOp module,
                                       const QuantGemvOptions &options) {
  MLIRContext *context = builder.getContext();
  QuantGemvOptions o = options;
  o.tensorCores = true;
  int64_t R = o.tokens;
  bool chunked = R > 1;
  Location loc = NameLoc::get(StringAttr::get(
      context, quantGemvName(o, "_mma_s" + std::to_string(o.kSplit))));
  FailureOr<int64_t> checked = checkPackedLayout(loc, "qgemv", o);
  if (failed(checked))
    return failure();
  if (o.fp8)
    return emitError(loc) << "qgemv on the tensor cores decodes integer "
                             "codes, not fp8 (the CUDA-core qgemv does)";
  int64_t perLoad = *checked;
  int64_t chunkWeights = quantMmaChunkWeights(o.bits);
  if (o.groupSize % chunkWeights)
    return emitError(loc) << "group_size=" << o.groupSize
                          << ": qgemv on the tensor cores needs groups of "
                             "whole "
                          << chunkWeights << "-weight chunks (4 lanes x 16 "
                          << "bytes of " << o.bits << "-bit codes)";
  if (R < 1 || R > kMaxTokens || o.kSplit < 1 || o.kSplit > 16 ||
      o.unroll < 1 || o.unroll > 8)
    return emitError(loc) << "qgemv on the tensor cores takes tokens in [1, "
                          << kMaxTokens
                          << "], k_split in [1, 16] and unroll in [1, 8]";
  if (failed(verifyQuantGemvMulti(loc, o)))
    return failure();

  int64_t chunks = o.k / chunkWeights;
  int64_t chunksPerGroup = o.groupSize / chunkWeights;
  o.unroll = pickUnroll(o.unroll, chunks, chunksPerGroup);
  int64_t U = o.unroll;
  int64_t steps = chunks / U;
  // Every warp gets at least one step.
  o.kSplit = std::min(o.kSplit, steps);
  // The add + norm prologue normalizes the row with the threads the
  // add_rms_norm kernel uses (the same results bit for bit): at least that
  // many warps split K.
  FailureOr<NormShape> normRow = NormShape();
  if (o.addNormPrologue) {
    normRow = normShape(loc, o.k, o.dtype, 0);
    if (failed(normRow))
      return failure();
    o.kSplit = std::max(o.kSplit, normRow->threads / kWarpSize);
    if (o.kSplit > steps || o.kSplit > 16)
      return emitError(loc)
             << "the add + norm prologue of a " << o.k << "-wide row needs "
             << normRow->threads / kWarpSize << " warps splitting K, which has "
             << steps << " loop steps";
  }
  int64_t S = o.kSplit;
  std::string name = quantGemvName(o, "_mma_s" + std::to_string(S));
  loc = NameLoc::get(StringAttr::get(context, name));

  int64_t nTiles = ceilDiv(R, kTileTokens);
  int64_t columns = nTiles * kTileTokens;
  // Row tiles of each weight, consecutive along grid x.
  SmallVector<int64_t> allRows = {o.n};
  allRows.append(o.moreN.begin(), o.moreN.end());
  int64_t rowTiles = 0;
  for (int64_t n : allRows)
    rowTiles += ceilDiv(n, kTileRows);
  int64_t threads = S * kWarpSize;
  int64_t rowBytes = o.k * o.bits / 8;
  int64_t chunkBytes = 4 * kCodeLoadBytes;

  KernelBuilder b(loc, builder);
  Type half = getElementType(context, o.dtype);
  Type f32 = b.getF32Type();
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  SmallVector<Type> workgroupTypes;
  if (S > 1)
    workgroupTypes.push_back(MemRefType::get({S * kTileRows * columns}, f32,
                                             MemRefLayoutAttrInterface(),
                                             workgroup));
  size_t normAt = workgroupTypes.size();
  if (o.addNormPrologue) {
    // The normalized row and the block sum's per-warp slots.
    workgroupTypes.push_back(
        MemRefType::get({o.k}, half, MemRefLayoutAttrInterface(), workgroup));
    workgroupTypes.push_back(
        MemRefType::get({S}, f32, MemRefLayoutAttrInterface(), workgroup));
  }
  QuantGemvArgs all =
      createQuantGemvKernel(b, module, name, o, threads, workgroupTypes);
  auto func = cast<gpu::GPUFuncOp>(b.getInsertionBlock()->getParentOp());
  if (o.minWarpsPerSM > 0)
    func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(std::min<int64_t>(
                                       32, ceilDiv(o.minWarpsPerSM, S))));

  Value tid = b.threadIdX();
  Value lane = b.remU(tid, kWarpSize);
  Value warp = b.divU(tid, kWarpSize);
  Value laneRow = b.divU(lane, 4); // g
  Value quad = b.remU(lane, 4);    // q

  // Row tile `tile` of the weight W [n, K] whose arguments are `args`.
  auto emitTile = [&](const QuantGemvArgs &args, int64_t n, Value tile) {
    bool rowsOvershoot = ceilDiv(n, kTileRows) * kTileRows != n;
    Value tileRow0 = b.mul(tile, kTileRows);
    // Rows g and g + 8 of the tile; loads of rows past N read row N - 1.
    SmallVector<Value> rows = {b.add(tileRow0, laneRow),
                               b.add(b.add(tileRow0, laneRow), 8)};
    SmallVector<Value> loadRows = rows;
    if (rowsOvershoot)
      for (Value &r : loadRows)
        r = arith::MinUIOp::create(b, r, b.index(n - 1));

    // B columns: lane g supplies token g of each n8 tile.
    Value numTokens, chunkStart;
    SmallVector<Value> xRows; // per n tile, this lane's token row (clamped)
    if (chunked) {
      numTokens = b.stepRows(args.step);
      chunkStart = b.mul(b.blockIdY(), R);
      for (int64_t nt = 0; nt < nTiles; ++nt)
        xRows.push_back(arith::MinUIOp::create(
            b, b.add(b.add(chunkStart, laneRow), nt * kTileTokens),
            b.sub(numTokens, b.index(1))));
    }

    // This warp's loop steps: [first, last) of the row's `steps`.
    Value firstStep = b.divU(b.mul(warp, steps), S);
    Value lastStep = b.divU(b.mul(b.add(warp, 1), steps), S);

    // The constant codes of the first step go to L2 before waiting for the
    // previous kernel (programmatic dependent launch).
    for (Value row : loadRows)
      for (int64_t u = 0; u < U; ++u)
        b.prefetchL2(
            args.packed,
            b.add(b.mul(row, rowBytes),
                  b.add(b.mul(b.add(b.mul(firstStep, U), u), chunkBytes),
                        b.mul(quad, kCodeLoadBytes))));
    b.waitForPriorGrids();
    // With the prologue the x loads read the normalized row.
    Value xSource = args.x;
    if (o.addNormPrologue) {
      xSource = func.getWorkgroupAttributions()[normAt];
      emitNormPrologue(b,
                       {all.x, all.residual, all.normWeight, all.sum,
                        all.normed, tid,
                        func.getWorkgroupAttributions()[normAt + 1], xSource, S,
                        o.k, o.normEpsilon, half},
                       *normRow);
    }

    PairDecoder decoder{b, half, o.bits, o.bits == 8 && half.isBF16()};
    int64_t codesPerWord = decoder.codesPerWord();
    int64_t P = decoder.pairsPerWord();
    auto pairF32 = VectorType::get({2}, f32);

    // The codes of one loop step: [row][chunk] 16-byte vectors, rows g and
    // g + 8, chunks [step * U, + U).
    auto loadCodes = [&](Value step) {
      SmallVector<Value> codes;
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t u = 0; u < U; ++u) {
          Value byte = b.add(b.mul(b.add(b.mul(step, U), u), chunkBytes),
                             b.mul(quad, kCodeLoadBytes));
          codes.push_back(
              b.loadVector(args.packed, {loadRows[r], byte}, kCodeLoadBytes));
        }
      return codes;
    };

    // One loop step on its codes (loaded a step ahead): chunks [step * U,
    // + U) of rows g, g + 8 against every n tile; each group's partial sums
    // scaled once into `accs`.
    auto stepBody = [&](Value step, ValueRange stepCodes,
                        SmallVector<Value> accs) {
      Value firstChunk = b.mul(step, U);
      SmallVector<SmallVector<Value>> codes(2);
      for (int64_t r = 0; r < 2; ++r)
        codes[r].assign(stepCodes.begin() + r * U,
                        stepCodes.begin() + (r + 1) * U);
      // The x a word's codes meet (codesPerWord halves), loaded where the
      // word is decoded: one word's x is live at a time, not a whole
      // step's (perLoad halves a chunk).
      auto loadWordX = [&](int64_t u, int64_t j, int64_t nt) {
        Value column = b.add(b.add(b.mul(b.add(firstChunk, u), chunkWeights),
                                   b.mul(quad, perLoad)),
                             j * codesPerWord);
        return chunked ? b.loadVector(args.x, {xRows[nt], column}, codesPerWord)
                       : b.loadVector(xSource, {column}, codesPerWord);
      };
      int64_t chunksPerFold = std::min(U, chunksPerGroup);
      for (int64_t first = 0; first < U; first += chunksPerFold) {
        Value group = b.divU(b.add(firstChunk, first), chunksPerGroup);
        SmallVector<Value> scale(2), offset(2);
        for (int64_t r = 0; r < 2; ++r) {
          Value s = memref::LoadOp::create(b, args.scales,
                                           ValueRange{loadRows[r], group});
          scale[r] = s.getType() == f32
                         ? s
                         : arith::ExtFOp::create(b, f32, s).getResult();
          Value zero;
          if (args.zeros)
            zero = arith::UIToFPOp::create(
                b, f32,
                memref::LoadOp::create(b, args.zeros,
                                       ValueRange{loadRows[r], group}));
          offset[r] = decoder.offset(zero);
        }
        SmallVector<Value> partial(nTiles, zeroAccumulator(b));
        for (int64_t u = first; u < first + chunksPerFold; ++u) {
          SmallVector<Value> words[2];
          for (int64_t r = 0; r < 2; ++r) {
            Value w = vector::BitCastOp::create(
                b, VectorType::get({4}, b.getI32Type()), codes[r][u]);
            for (int64_t j = 0; j < 4; ++j)
              words[r].push_back(b.pinI32(
                  vector::ExtractOp::create(b, w, ArrayRef<int64_t>{j})));
          }
          for (int64_t j = 0; j < 4; ++j) {
            SmallVector<Value> a0 = decoder.decodeWord(words[0][j], offset[0]);
            SmallVector<Value> a1 = decoder.decodeWord(words[1][j], offset[1]);
            SmallVector<Value> xWord;
            for (int64_t nt = 0; nt < nTiles; ++nt)
              xWord.push_back(loadWordX(u, j, nt));
            for (int64_t h = 0; h < P / 2; ++h) {
              Value aFrag = stackPairs(
                  b, {a0[2 * h], a1[2 * h], a0[2 * h + 1], a1[2 * h + 1]});
              for (int64_t nt = 0; nt < nTiles; ++nt) {
                auto xPair = [&](int64_t i) {
                  auto [first, second] = decoder.pairCodes(i);
                  return vector::ShuffleOp::create(
                             b, xWord[nt], xWord[nt],
                             ArrayRef<int64_t>{first, second})
                      .getResult();
                };
                Value bFrag = stackPairs(b, {xPair(2 * h), xPair(2 * h + 1)});
                partial[nt] = mmaM16N8K16(b, aFrag, bFrag, partial[nt]);
              }
            }
          }
        }
        // Row g's scale on accumulator row 0, row g + 8's on row 1 (1-D
        // FMAs: vector.fma does not lower on 2-D vectors).
        for (int64_t nt = 0; nt < nTiles; ++nt)
          for (int64_t r = 0; r < 2; ++r) {
            auto row = [&](Value v) {
              return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{r})
                  .getResult();
            };
            Value s = vector::BroadcastOp::create(b, pairF32, scale[r]);
            accs[nt] = vector::InsertOp::create(
                b, vector::FMAOp::create(b, s, row(partial[nt]), row(accs[nt])),
                accs[nt], ArrayRef<int64_t>{r});
          }
      }
      return accs;
    };

    // The loop carries the next step's codes: their loads are issued before
    // this step's decoding and mma, so HBM reads stay in flight while the
    // warp computes. The last step is peeled off the loop, so no load is
    // issued twice (with K split 8 over 4096, each warp has one step).
    SmallVector<Value> init(nTiles, zeroAccumulator(b));
    llvm::append_range(init, loadCodes(firstStep));
    Value finalStep = b.sub(lastStep, b.index(1));
    auto loop = scf::ForOp::create(
        b, firstStep, finalStep, b.index(1), init,
        [&](OpBuilder &, Location, Value step, ValueRange carried) {
          SmallVector<Value> next = loadCodes(b.add(step, 1));
          SmallVector<Value> results = stepBody(
              step, carried.drop_front(nTiles),
              SmallVector<Value>(carried.begin(), carried.begin() + nTiles));
          llvm::append_range(results, next);
          scf::YieldOp::create(b, results);
        });
    ValueRange carried = loop.getResults();
    SmallVector<Value> accs =
        stepBody(finalStep, carried.drop_front(nTiles),
                 SmallVector<Value>(carried.begin(), carried.begin() + nTiles));

    // Stores y[token][row] = total + bias, for real rows and tokens only.
    auto storeOutput = [&](Value total, Value row, Value token) {
      Value writes;
      auto require = [&](Value cond) {
        writes = writes ? b.andI(writes, cond) : cond;
      };
      if (rowsOvershoot)
        require(b.cmp(arith::CmpIPredicate::ult, row, b.index(n)));
      if (chunked) {
        require(b.cmp(arith::CmpIPredicate::ult, token, b.index(R)));
        require(b.cmp(arith::CmpIPredicate::ult, b.add(chunkStart, token),
                      numTokens));
      } else {
        require(b.cmp(arith::CmpIPredicate::eq, token, b.index(0)));
      }
      b.ifThen(writes, [&] {
        Value sum = total;
        if (args.bias)
          sum = arith::AddFOp::create(
              b, sum,
              arith::ExtFOp::create(
                  b, f32,
                  memref::LoadOp::create(b, args.bias, ValueRange{row})
                      .getResult()));
        if (chunked)
          storeQuantGemvOutput(b, sum, args.y, {b.add(chunkStart, token), row});
        else
          storeQuantGemvOutput(b, sum, args.y, {row});
      });
    };
    // Accumulator element [i][e] of n tile nt: row g + 8 i, token nt * 8 +
    // 2 q + e.
    auto forEachElement =
        [&](const std::function<void(Value, int64_t, int64_t, Value)> &fn) {
          for (int64_t nt = 0; nt < nTiles; ++nt)
            for (int64_t i = 0; i < 2; ++i)
              for (int64_t e = 0; e < 2; ++e) {
                Value token = b.add(b.mul(quad, 2), nt * kTileTokens + e);
                fn(vector::ExtractOp::create(b, accs[nt],
                                             ArrayRef<int64_t>{i, e}),
                   i, nt, token);
              }
        };
    if (S == 1) {
      forEachElement([&](Value v, int64_t i, int64_t, Value token) {
        storeOutput(v, rows[i], token);
      });
    } else {
      // Each warp's 16 x columns results to workgroup memory; then thread t
      // sums output t (and t + threads, ...) over the warps.
      Value partials = func.getWorkgroupAttributions()[0];
      Value warpBase = b.mul(warp, kTileRows * columns);
      forEachElement([&](Value v, int64_t i, int64_t, Value token) {
        Value r = b.add(laneRow, 8 * i);
        memref::StoreOp::create(
            b, v, partials,
            ValueRange{b.add(warpBase, b.add(b.mul(r, columns), token))});
      });
      gpu::BarrierOp::create(b);
      int64_t outputs = kTileRows * R;
      for (int64_t first = 0; first < outputs; first += threads) {
        Value out = b.add(tid, first);
        auto body = [&] {
          Value r = b.divU(out, R), token = b.remU(out, R);
          Value at = b.add(b.mul(r, columns), token);
          Value sum;
          for (int64_t w = 0; w < S; ++w) {
            Value v = memref::LoadOp::create(
                b, partials, ValueRange{b.add(at, w * kTileRows * columns)});
            sum = sum ? arith::AddFOp::create(b, sum, v).getResult() : v;
          }
          storeOutput(sum, b.add(tileRow0, r), token);
        };
        if (first + threads <= outputs)
          body();
        else
          b.ifThen(b.cmp(arith::CmpIPredicate::ult, out, b.index(outputs)),
                   body);
      }
    }
  };

  forEachQuantWeight(
      b, o, all, [&](int64_t n) { return ceilDiv(n, kTileRows); }, emitTile);
  gpu::ReturnOp::create(b);

  return describeQuantGemv(o, name, rowTiles, threads);
}
