//===- RaiseNorms.cpp - Raise RMSNorm and LayerNorm chains ----------------===//
//
// -llm-raise-norms: the decomposed normalizations exporters emit for
// Llama-family RMSNorm (x * rsqrt(mean(x^2) + eps) * w) and for LayerNorm
// become llm.rms_norm and llm.layer_norm.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISENORMS
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// If `v` is `reduce_mean(y, [last axis], keepdims = 1)`, returns y.
Value matchMeanOverLastAxis(Value v) {
  auto mean = defOp<ReduceMeanOp>(v);
  if (!mean || mean.getKeepdims() != 1 || !mean.getAxes())
    return Value();
  int64_t rank = getRank(mean.getData());
  if (rank < 1)
    return Value();
  auto axes = getConstantAxes(mean.getAxes(), rank);
  if (!axes || axes->size() != 1 || axes->front() != rank - 1)
    return Value();
  return mean.getData();
}

/// If `v` is `x^2` (`pow(x, 2)` or `x * x`), returns x.
Value matchSquare(Value v) {
  if (auto pow = defOp<PowOp>(v)) {
    Value x = pow.getLhs();
    if (getRank(x) >= 0 && isScalarConstant(pow.getRhs(), 2.0, 0.0, getRank(x)))
      return x;
    return Value();
  }
  if (auto mul = defOp<MulOp>(v))
    if (mul.getLhs() == mul.getRhs())
      return mul.getLhs();
  return Value();
}

/// If `v` is `mean + eps` with eps a non-negative scalar constant that does
/// not broadcast a tensor of `rank`, returns {mean, eps}.
std::optional<std::pair<Value, double>> matchPlusEpsilon(Value v,
                                                         int64_t rank) {
  auto add = defOp<AddOp>(v);
  if (!add)
    return std::nullopt;
  for (auto [a, b] : {std::pair(add.getLhs(), add.getRhs()),
                      std::pair(add.getRhs(), add.getLhs())}) {
    auto eps = getSplatFloat(b);
    if (eps && *eps >= 0 && isScalarConstant(b, *eps, 0.0, rank))
      return std::make_pair(a, *eps);
  }
  return std::nullopt;
}

/// A matched `sqrt(mean(x^2) + eps)` or `sqrt(var + eps)`: the statistic and
/// epsilon.
struct RootOfStatistic {
  Value statistic; // mean(x^2) or var
  double epsilon;
};

/// If `v` is `sqrt(stat + eps)`, returns it.
std::optional<RootOfStatistic> matchSqrtPlusEps(Value v, int64_t rank) {
  auto sqrt = defOp<SqrtOp>(v);
  if (!sqrt)
    return std::nullopt;
  auto sum = matchPlusEpsilon(sqrt.getInput(), rank);
  if (!sum)
    return std::nullopt;
  return RootOfStatistic{sum->first, sum->second};
}

/// If `v` is `1 / sqrt(stat + eps)` (reciprocal, a division of one, or
/// `pow(stat + eps, -0.5)`), returns it.
std::optional<RootOfStatistic> matchInverseRoot(Value v, int64_t rank) {
  if (auto rec = defOp<ReciprocalOp>(v))
    return matchSqrtPlusEps(rec.getInput(), rank);
  if (auto div = defOp<DivOp>(v)) {
    if (isScalarConstant(div.getLhs(), 1.0, 0.0, rank))
      return matchSqrtPlusEps(div.getRhs(), rank);
    return std::nullopt;
  }
  if (auto pow = defOp<PowOp>(v)) {
    if (!isScalarConstant(pow.getRhs(), -0.5, 0.0, rank))
      return std::nullopt;
    auto sum = matchPlusEpsilon(pow.getLhs(), rank);
    if (!sum)
      return std::nullopt;
    return RootOfStatistic{sum->first, sum->second};
  }
  return std::nullopt;
}

/// The normalized value `x / root` where `v` is `x * inv_root`,
/// `inv_root * x` or `x / root`: returns {x, root}.
std::optional<std::pair<Value, RootOfStatistic>> matchNormalize(Value v) {
  if (auto div = defOp<DivOp>(v)) {
    Value x = div.getLhs();
    int64_t rank = getRank(x);
    if (rank < 1)
      return std::nullopt;
    if (auto root = matchSqrtPlusEps(div.getRhs(), rank))
      return std::make_pair(x, *root);
    return std::nullopt;
  }
  auto mul = defOp<MulOp>(v);
  if (!mul)
    return std::nullopt;
  for (auto [x, r] : {std::pair(mul.getLhs(), mul.getRhs()),
                      std::pair(mul.getRhs(), mul.getLhs())}) {
    int64_t rank = getRank(x);
    if (rank < 1)
      continue;
    if (auto root = matchInverseRoot(r, rank))
      return std::make_pair(x, *root);
  }
  return std::nullopt;
}

/// The normalization weight: a 1-D tensor of `size` elements, or `w + 1`
/// (Gemma stores the weight minus one). Returns {weight, offset}.
std::optional<std::pair<Value, double>> matchNormWeight(Value v, int64_t size) {
  auto isVector = [&](Value w) {
    return getRank(w) == 1 && getStaticDim(w, 0) == size && isFloatTensor(w);
  };
  if (auto add = defOp<AddOp>(v))
    for (auto [w, one] : {std::pair(add.getLhs(), add.getRhs()),
                          std::pair(add.getRhs(), add.getLhs())})
      if (isVector(w) && isScalarConstant(one, 1.0, 0.0, 1))
        return std::make_pair(w, 1.0);
  if (isVector(v))
    return std::make_pair(v, 0.0);
  return std::nullopt;
}

/// If `v` is a cast between floating-point types, its input; else `v`.
Value stripOneFloatCast(Value v, CastOp *cast = nullptr) {
  auto c = defOp<CastOp>(v);
  if (c && isFloatTensor(c.getInput()) && isFloatTensor(c.getResult())) {
    if (cast)
      *cast = c;
    return c.getInput();
  }
  return v;
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

/// Raises `weight * (x * rsqrt(mean(x^2, -1) + eps))` (either product order,
/// with the Cast to f32 and back of half-precision models) to llm.rms_norm.
struct RaiseRMSNorm : public OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [normalized, weight] : {std::pair(op.getLhs(), op.getRhs()),
                                      std::pair(op.getRhs(), op.getLhs())}) {
      CastOp castBack;
      Value inner = stripOneFloatCast(normalized, &castBack);
      auto norm = matchNormalize(inner);
      if (!norm)
        continue;
      Value x = norm->first;
      Value squared = matchMeanOverLastAxis(norm->second.statistic);
      if (!squared || matchSquare(squared) != x)
        continue;
      // x - mean(x) normalized is a LayerNorm: leave it to those patterns.
      if (auto sub = defOp<SubOp>(x))
        if (matchMeanOverLastAxis(sub.getRhs()) == sub.getLhs())
          continue;
      int64_t size = getStaticDim(x, -1);
      if (ShapedType::isDynamic(size))
        return rewriter.notifyMatchFailure(op, "normalized size is not static");
      auto w = matchNormWeight(weight, size);
      if (!w)
        continue;
      // Hugging Face casts x to f32 for the statistics and the result back
      // to x's type before the weight: the norm of the uncast x.
      Value input = x;
      CastOp castIn;
      Value original = stripOneFloatCast(x, &castIn);
      if (castIn && castBack &&
          getElementTypeOrSelf(original.getType()) ==
              getElementTypeOrSelf(castBack.getType()))
        input = original;
      rewriter.replaceOpWithNewOp<RMSNormOp>(
          op, op.getType(), input, w->first,
          rewriter.getF32FloatAttr((float)norm->second.epsilon),
          rewriter.getF32FloatAttr((float)w->second));
      return success();
    }
    return rewriter.notifyMatchFailure(
        op, "not weight * x * rsqrt(mean(x^2, -1) + eps) with a 1-D weight");
  }
};

//===----------------------------------------------------------------------===//
// LayerNorm
//===----------------------------------------------------------------------===//

/// The matched `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * w`.
struct LayerNormMatch {
  Value input, weight;
  double epsilon;
};

/// Matches the weighted, normalized part of a LayerNorm rooted at `mul`.
std::optional<LayerNormMatch> matchWeightedLayerNorm(MulOp mul) {
  for (auto [normalized, weight] : {std::pair(mul.getLhs(), mul.getRhs()),
                                    std::pair(mul.getRhs(), mul.getLhs())}) {
    auto norm = matchNormalize(normalized);
    if (!norm)
      continue;
    Value centered = norm->first;
    auto sub = defOp<SubOp>(centered);
    if (!sub)
      continue;
    Value x = sub.getLhs();
    if (matchMeanOverLastAxis(sub.getRhs()) != x)
      continue;
    Value squared = matchMeanOverLastAxis(norm->second.statistic);
    if (!squared || matchSquare(squared) != centered)
      continue;
    int64_t size = getStaticDim(x, -1);
    if (ShapedType::isDynamic(size) || getRank(weight) != 1 ||
        getStaticDim(weight, 0) != size || !isFloatTensor(weight))
      continue;
    return LayerNormMatch{x, weight, norm->second.epsilon};
  }
  return std::nullopt;
}

/// True when `v` is a 1-D float tensor of `size` elements.
bool isBiasVector(Value v, int64_t size) {
  return getRank(v) == 1 && getStaticDim(v, 0) == size && isFloatTensor(v);
}

/// Raises `layer_norm_chain(x) * w + b` to llm.layer_norm with a bias.
struct RaiseLayerNormWithBias : public OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [scaled, bias] : {std::pair(op.getLhs(), op.getRhs()),
                                std::pair(op.getRhs(), op.getLhs())}) {
      auto mul = defOp<MulOp>(scaled);
      if (!mul)
        continue;
      auto ln = matchWeightedLayerNorm(mul);
      if (!ln || !isBiasVector(bias, getStaticDim(ln->input, -1)))
        continue;
      rewriter.replaceOpWithNewOp<LayerNormOp>(
          op, op.getType(), ln->input, ln->weight, bias,
          rewriter.getF32FloatAttr((float)ln->epsilon));
      return success();
    }
    return rewriter.notifyMatchFailure(op, "not a LayerNorm chain plus a bias");
  }
};

/// Raises `layer_norm_chain(x) * w` without a bias to llm.layer_norm.
struct RaiseLayerNorm : public OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    auto ln = matchWeightedLayerNorm(op);
    if (!ln)
      return rewriter.notifyMatchFailure(op, "not a weighted LayerNorm chain");
    // Leave a following bias add to RaiseLayerNormWithBias.
    if (op->hasOneUse())
      if (auto add = dyn_cast<AddOp>(*op->getUsers().begin())) {
        Value other =
            add.getLhs() == op.getResult() ? add.getRhs() : add.getLhs();
        if (isBiasVector(other, getStaticDim(ln->input, -1)))
          return rewriter.notifyMatchFailure(op, "a bias add follows");
      }
    rewriter.replaceOpWithNewOp<LayerNormOp>(
        op, op.getType(), ln->input, ln->weight, Value(),
        rewriter.getF32FloatAttr((float)ln->epsilon));
    return success();
  }
};

struct LLMRaiseNormsPass
    : public kiln::llm::impl::LLMRaiseNormsBase<LLMRaiseNormsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseNormsPatterns(patterns);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseNormsPatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<RaiseRMSNorm, RaiseLayerNorm>(ctx);
  patterns.add<RaiseLayerNormWithBias>(ctx, /*benefit=*/2);
}
