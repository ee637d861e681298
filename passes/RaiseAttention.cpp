//===- RaiseAttention.cpp - Raise scaled dot-product attention ------------===//
//
// -llm-raise-attention: softmax(q k^T * scale + mask) v, in the forms the
// dynamo and TorchScript exporters emit (scale on the product, or sqrt(scale)
// on q and k each; grouped-query repeat_kv of k and v; the isnan guard of
// fully masked rows), becomes llm.attention.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

#include <cmath>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISEATTENTION
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// Strips multiplications and divisions by broadcast-free scalar constants
/// off `v`, accumulating them into `scale`.
Value peelScale(Value v, double &scale) {
  for (int guard = 0; guard < 8; ++guard) {
    int64_t rank = -1;
    if (auto mul = defOp<MulOp>(v)) {
      bool peeled = false;
      for (auto [y, c] : {std::pair(mul.getLhs(), mul.getRhs()),
                          std::pair(mul.getRhs(), mul.getLhs())}) {
        rank = getRank(y);
        auto k = getSplatFloat(c);
        if (rank >= 0 && k && isScalarConstant(c, *k, 0.0, rank)) {
          scale *= *k;
          v = y;
          peeled = true;
          break;
        }
      }
      if (peeled)
        continue;
      break;
    }
    if (auto div = defOp<DivOp>(v)) {
      rank = getRank(div.getLhs());
      auto k = getSplatFloat(div.getRhs());
      if (rank >= 0 && k && *k != 0 &&
          isScalarConstant(div.getRhs(), *k, 0.0, rank)) {
        scale /= *k;
        v = div.getLhs();
        continue;
      }
    }
    break;
  }
  return v;
}

/// The query and (untransposed, possibly repeated) key of `q @ k^T` with its
/// accumulated scale.
struct ScoresMatch {
  Value query, key;
  double scale;
  /// Non-empty when the key is transpose(key, keyPerm) rather than `key`
  /// itself (k^T written as one transpose of the [B, S, H, D] projection).
  SmallVector<int64_t> keyPerm;
};

/// Matches scale * (q * s1) @ transpose(k * s2, [0, 1, 3, 2]) with the scale
/// factors anywhere along the chain.
std::optional<ScoresMatch> matchScores(Value v) {
  double scale = 1.0;
  auto matmul = defOp<MatMulOp>(peelScale(v, scale));
  if (!matmul)
    return std::nullopt;
  Value q = peelScale(matmul.getLhs(), scale);
  auto transpose = defOp<TransposeOp>(peelScale(matmul.getRhs(), scale));
  if (!transpose || transpose.getPerm().size() != 4)
    return std::nullopt;
  // k^T = transpose(x, p) is transpose(k, [0, 1, 3, 2]) for
  // k = transpose(x, [p0, p1, p3, p2]).
  ArrayRef<int64_t> p = transpose.getPerm();
  SmallVector<int64_t> keyPerm{p[0], p[1], p[3], p[2]};
  Value k = peelScale(transpose.getInput(), scale);
  if (keyPerm == ArrayRef<int64_t>{0, 1, 2, 3})
    keyPerm.clear();
  if (getRank(q) != 4 || getRank(k) != 4)
    return std::nullopt;
  return ScoresMatch{q, k, scale, keyPerm};
}

/// A key or value with its grouped-query repetition undone. When the
/// repetition's expand may also broadcast the batch or sequence (its target
/// is computed from other tensors than kv), `expandShape` is that 5-D target:
/// kv must be expanded by its [0, 1, 3, 4] elements to stay exact.
struct KVMatch {
  Value kv;
  int64_t repeats;
  Value expandShape;
};

/// True when `e`, element `i` of the target of a reshape of the expanded
/// [B, kv_heads, n_rep, T, D] tensor, provably is `expected`.
bool provesDim(const SymDim &e, Value kv, int64_t kvDim, int64_t constant) {
  if (constant >= 0)
    return e.isConstant(constant);
  return symMatchesDim(e, kv, kvDim);
}

/// Matches repeat_kv: reshape(expand(unsqueeze(kv, 2), [b, Hkv, n, t, D]),
/// [b, Hkv * n, t, D]); anything else is its own kv with 1 repeat.
KVMatch matchRepeatKV(Value v) {
  KVMatch plain{v, 1, Value()};
  auto reshape = defOp<ReshapeOp>(v);
  auto expand = reshape ? defOp<ExpandOp>(reshape.getData()) : ExpandOp();
  auto unsqueeze =
      expand ? defOp<UnsqueezeOp>(expand.getInput()) : UnsqueezeOp();
  if (!unsqueeze)
    return plain;
  auto axes = getConstantAxes(unsqueeze.getAxes(), 5);
  Value kv = unsqueeze.getData();
  if (!axes || axes->size() != 1 || axes->front() != 2 || getRank(kv) != 4)
    return plain;
  int64_t kvHeads = getStaticDim(kv, 1);
  auto s5 = getSymbolicInts(expand.getShape());
  if (ShapedType::isDynamic(kvHeads) || !s5 || s5->size() != 5 ||
      !(*s5)[2].isConstant() || (*s5)[2].constant < 1)
    return plain;
  int64_t n = (*s5)[2].constant;
  // The heads must not broadcast; the batch, sequence and head size
  // length may be taken from other tensors than kv (dynamo computes them
  // from another layer's past), and then kv is expanded by them explicitly.
  const SymDim &heads = (*s5)[1];
  if (!heads.isConstant(1) && !heads.isConstant(kvHeads))
    return plain;
  bool broadcasts = false;
  const int64_t kvDimOf[5] = {0, 1, -1, 2, 3};
  for (int64_t i : {0, 3, 4}) {
    const SymDim &e = (*s5)[i];
    if (!e.isConstant(1) && !symMatchesDim(e, kv, kvDimOf[i]))
      broadcasts = true;
  }
  // The target must be [b, Hkv * n, t, D]. Without a broadcast, the element
  // count pins one unproven element; with one, every element must be the kv
  // dimension or the expand's: each is then at most the expanded dimension,
  // and the equal element counts make them equal.
  auto s4 = getSymbolicInts(reshape.getShape());
  if (!s4 || s4->size() != 4)
    return plain;
  const int64_t expandIndexOf[4] = {0, -1, 3, 4};
  int unproven = 0;
  for (int64_t i = 0; i < 4; ++i) {
    const SymDim &e = (*s4)[i];
    bool ok =
        i == 1 ? e.isConstant(kvHeads * n)
               : (provesDim(e, kv, i, -1) || e.equals((*s5)[expandIndexOf[i]]));
    if (!ok && (broadcasts || ++unproven > 1))
      return plain;
  }
  return KVMatch{kv, n, broadcasts ? expand.getShape() : Value()};
}

/// The kv operand of llm.attention for `match`: kv itself, or kv expanded by
/// the batch and sequence of its repeat_kv expand.
Value materializeKV(PatternRewriter &rewriter, Location loc,
                    const KVMatch &match) {
  if (!match.expandShape)
    return match.kv;
  auto i64 = rewriter.getI64Type();
  auto idxType = RankedTensorType::get({4}, i64);
  auto idx = ConstantOp::create(
      rewriter, loc, idxType,
      DenseElementsAttr::get(idxType, ArrayRef<int64_t>{0, 1, 3, 4}));
  auto shape = GatherOp::create(rewriter, loc, idxType, match.expandShape, idx,
                                rewriter.getI64IntegerAttr(0));
  auto kvType = cast<RankedTensorType>(match.kv.getType());
  auto type =
      RankedTensorType::get({ShapedType::kDynamic, kvType.getDimSize(1),
                             ShapedType::kDynamic, kvType.getDimSize(3)},
                            kvType.getElementType());
  return ExpandOp::create(rewriter, loc, type, match.kv, shape.getResult());
}

/// True when `mask` can hold no infinity: a select between finite constants,
/// possibly reshaped, expanded or cast.
bool isProvablyFiniteMask(Value mask) {
  for (int guard = 0; guard < 16 && mask; ++guard) {
    Operation *op = mask.getDefiningOp();
    if (!op)
      return false;
    if (isa<ExpandOp, UnsqueezeOp, ReshapeOp, SqueezeOp, TransposeOp, SliceOp>(
            op)) {
      mask = op->getOperand(0);
      continue;
    }
    auto allFinite = [](Value v) {
      auto cst = defOp<ConstantOp>(v);
      auto dense = cst ? dyn_cast<DenseFPElementsAttr>(cst.getValue())
                       : DenseFPElementsAttr();
      if (!dense)
        return false;
      for (const APFloat &f : dense.getValues<APFloat>())
        if (!f.isFinite())
          return false;
      return true;
    };
    if (auto where = dyn_cast<WhereOp>(op))
      return allFinite(where.getX()) && allFinite(where.getY());
    return allFinite(mask);
  }
  return false;
}

/// softmax(q k^T * scale + mask, -1) @ v, with grouped-query repeat_kv of k
/// and v absorbed, becomes llm.attention.
struct RaiseAttention : public OpRewritePattern<MatMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatMulOp op,
                                PatternRewriter &rewriter) const override {
    // The isnan guard: where(isnan(p), 0, p).
    Value probs = op.getLhs();
    bool guarded = false;
    if (auto where = defOp<WhereOp>(probs)) {
      auto isnan = defOp<IsNaNOp>(where.getCondition());
      if (isnan && isnan.getInput() == where.getY() &&
          isScalarConstant(where.getX(), 0.0, 0.0, 4)) {
        probs = where.getY();
        guarded = true;
      }
    }
    auto softmax = defOp<SoftmaxOp>(stripFloatCasts(probs));
    if (!softmax)
      return rewriter.notifyMatchFailure(op, "left operand is not a softmax");
    if (getRank(softmax.getInput()) != 4)
      return rewriter.notifyMatchFailure(op, "softmax input is not rank 4");
    auto axis = normalizeAxis(softmax.getAxis(), 4);
    if (!axis || *axis != 3)
      return rewriter.notifyMatchFailure(op,
                                         "softmax is not over the last axis");

    Value scores = stripFloatCasts(softmax.getInput());
    std::optional<ScoresMatch> qk;
    Value mask;
    if (auto add = defOp<AddOp>(scores)) {
      for (auto [s, m] : {std::pair(add.getLhs(), add.getRhs()),
                          std::pair(add.getRhs(), add.getLhs())}) {
        if ((qk = matchScores(s))) {
          mask = m;
          break;
        }
      }
    }
    if (!qk)
      qk = matchScores(scores);
    if (!qk)
      return rewriter.notifyMatchFailure(
          op, "softmax input is not scale * q @ transpose(k, [0, 1, 3, 2]) "
              "(+ mask)");
    if (mask &&
        (getRank(mask) < 0 || getRank(mask) > 4 || !isFloatTensor(mask)))
      return rewriter.notifyMatchFailure(op, "mask is not a float tensor of "
                                             "rank <= 4");

    // A key written transposed is materialized once every check passed;
    // until then its dimensions are read through the permutation.
    KVMatch key{qk->key, 1, Value()};
    if (qk->keyPerm.empty())
      key = matchRepeatKV(qk->key);
    auto keyDim = [&](int64_t i) {
      return getStaticDim(key.kv, qk->keyPerm.empty() ? i : qk->keyPerm[i]);
    };
    KVMatch value = matchRepeatKV(op.getRhs());
    Value q = qk->query;
    if (getRank(value.kv) != 4)
      return rewriter.notifyMatchFailure(op, "value is not rank 4");
    int64_t heads = getStaticDim(q, 1);
    int64_t kvHeads = keyDim(1);
    if (ShapedType::isDynamic(heads))
      return rewriter.notifyMatchFailure(op, "query head count is not static");
    if (ShapedType::isDynamic(kvHeads))
      return rewriter.notifyMatchFailure(op, "key head count is not static");
    if (kvHeads * key.repeats != heads)
      return rewriter.notifyMatchFailure(op, "query heads are not the key "
                                             "heads times the repetition");
    if (getStaticDim(value.kv, 1) != kvHeads || value.repeats != key.repeats)
      return rewriter.notifyMatchFailure(op,
                                         "value heads differ from key heads");
    // Static dimensions that contradict each other (a broadcast the
    // attention op does not do) stop the rewrite.
    auto clash = [](int64_t a, int64_t b) {
      return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
    };
    if (clash(getStaticDim(q, 0), keyDim(0)) ||
        clash(getStaticDim(q, 0), getStaticDim(value.kv, 0)) ||
        clash(getStaticDim(q, 3), keyDim(3)) ||
        clash(keyDim(2), getStaticDim(value.kv, 2)))
      return rewriter.notifyMatchFailure(op, "static dimensions of q, k and v "
                                             "do not agree");
    if (mask && getRank(mask) == 4 &&
        !ShapedType::isDynamic(getStaticDim(mask, 1)) &&
        getStaticDim(mask, 1) != 1 && getStaticDim(mask, 1) != heads)
      return rewriter.notifyMatchFailure(op,
                                         "mask heads neither 1 nor num_heads");
    if (!std::isfinite(qk->scale) || qk->scale == 0)
      return rewriter.notifyMatchFailure(op,
                                         "scale is not finite and non-zero");

    Location loc = op.getLoc();
    if (!qk->keyPerm.empty()) {
      auto type = cast<RankedTensorType>(qk->key.getType());
      SmallVector<int64_t> shape;
      for (int64_t d : qk->keyPerm)
        shape.push_back(type.getDimSize(d));
      key.kv = TransposeOp::create(
          rewriter, loc, RankedTensorType::get(shape, type.getElementType()),
          qk->key, rewriter.getDenseI64ArrayAttr(qk->keyPerm));
    }
    Value keyArg = materializeKV(rewriter, loc, key);
    Value valueArg = materializeKV(rewriter, loc, value);
    Value result = AttentionOp::create(
        rewriter, loc, op.getType(), q, keyArg, valueArg, mask,
        rewriter.getF32FloatAttr((float)qk->scale),
        rewriter.getI64IntegerAttr(heads), rewriter.getI64IntegerAttr(kvHeads),
        rewriter.getBoolAttr(false), IntegerAttr(), FloatAttr());
    if (guarded && !isProvablyFiniteMask(mask)) {
      // A fully masked row is NaN after the softmax and zeroed by the guard;
      // the same guard on the output zeroes the same rows.
      Type resultType = result.getType();
      Type flags = UnrankedTensorType::get(rewriter.getI1Type());
      if (auto ranked = dyn_cast<RankedTensorType>(resultType))
        flags = ranked.clone(rewriter.getI1Type());
      Type elem = getElementTypeOrSelf(resultType);
      auto scalarType = RankedTensorType::get({}, elem);
      auto zero = ConstantOp::create(
          rewriter, loc, scalarType,
          DenseElementsAttr::get(scalarType,
                                 rewriter.getFloatAttr(elem, 0.0).getValue()));
      Value isnan = IsNaNOp::create(rewriter, loc, flags, result);
      result = WhereOp::create(rewriter, loc, resultType, isnan, zero, result);
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LLMRaiseAttentionPass
    : public kiln::llm::impl::LLMRaiseAttentionBase<LLMRaiseAttentionPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseAttentionPatterns(patterns);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseAttentionPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseAttention>(patterns.getContext());
}
