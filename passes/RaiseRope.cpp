//===- RaiseRope.cpp - Raise rotary position embeddings -------------------===//
//
// -llm-raise-rope: the rotate-half application of rotary embeddings becomes
// llm.rope, and Hugging Face's cos/sin table computation becomes
// llm.rotary_table with the inverse frequencies as an attribute, in the
// type its consumers cast it to.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

#include <cmath>
#include <limits>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISEROPE
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

//===----------------------------------------------------------------------===//
// llm.rope
//===----------------------------------------------------------------------===//

/// The [start, end) of a slice of `x` along its last axis with step 1, with
/// start normalized and end clamped to the dimension `size`.
std::optional<std::pair<int64_t, int64_t>> lastAxisSlice(SliceOp s, Value x,
                                                         int64_t size) {
  if (s.getData() != x || !s.getAxes())
    return std::nullopt;
  int64_t rank = getRank(x);
  auto axes = getConstantAxes(s.getAxes(), rank);
  auto starts = getConstantInts(s.getStarts());
  auto ends = getConstantInts(s.getEnds());
  if (!axes || !starts || !ends || axes->size() != 1 ||
      axes->front() != rank - 1 || starts->size() != 1 || ends->size() != 1)
    return std::nullopt;
  if (s.getSteps()) {
    auto steps = getConstantInts(s.getSteps());
    if (!steps || steps->size() != 1 || steps->front() != 1)
      return std::nullopt;
  }
  int64_t start = starts->front(), end = ends->front();
  if (start < 0)
    start += size;
  if (end < 0)
    end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, 0, size);
  return std::make_pair(start, end);
}

/// If `v` is rotate_half(x) = concat(-x[..., D/2:], x[..., :D/2], -1) of a
/// rank-4 x with a static even D, returns x.
Value matchRotateHalf(Value v) {
  auto concat = defOp<ConcatOp>(v);
  if (!concat || concat.getInputs().size() != 2)
    return Value();
  auto neg = defOp<NegOp>(concat.getInputs()[0]);
  auto hiSlice = neg ? defOp<SliceOp>(neg.getInput()) : SliceOp();
  auto loSlice = defOp<SliceOp>(concat.getInputs()[1]);
  if (!hiSlice || !loSlice || hiSlice.getData() != loSlice.getData())
    return Value();
  Value x = loSlice.getData();
  if (getRank(x) != 4)
    return Value();
  auto axis = normalizeAxis(concat.getAxis(), 4);
  int64_t d = getStaticDim(x, 3);
  if (!axis || *axis != 3 || ShapedType::isDynamic(d) || d % 2 != 0 || d == 0)
    return Value();
  auto hi = lastAxisSlice(hiSlice, x, d);
  auto lo = lastAxisSlice(loSlice, x, d);
  if (!hi || !lo || *hi != std::make_pair(d / 2, d) ||
      *lo != std::make_pair<int64_t, int64_t>(0, d / 2))
    return Value();
  return x;
}

/// If `v` is unsqueeze(t, [1]) of a rank-3 t whose last dimension is `d`,
/// returns t.
Value matchTableAtHeads(Value v, int64_t d) {
  auto unsqueeze = defOp<UnsqueezeOp>(v);
  if (!unsqueeze)
    return Value();
  Value table = unsqueeze.getData();
  auto axes = getConstantAxes(unsqueeze.getAxes(), 4);
  if (getRank(table) != 3 || !axes || axes->size() != 1 || axes->front() != 1 ||
      getStaticDim(table, 2) != d)
    return Value();
  return table;
}

/// x * unsqueeze(cos, 1) + rotate_half(x) * unsqueeze(sin, 1), with either
/// order of every sum and product, becomes llm.rope(x, cos, sin).
struct RaiseRope : public OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [cosTerm, sinTerm] : {std::pair(op.getLhs(), op.getRhs()),
                                    std::pair(op.getRhs(), op.getLhs())}) {
      auto sinMul = defOp<MulOp>(sinTerm);
      auto cosMul = defOp<MulOp>(cosTerm);
      if (!sinMul || !cosMul)
        continue;
      for (auto [rot, sinArg] : {std::pair(sinMul.getLhs(), sinMul.getRhs()),
                                 std::pair(sinMul.getRhs(), sinMul.getLhs())}) {
        Value x = matchRotateHalf(rot);
        if (!x)
          continue;
        Value cosArg;
        if (cosMul.getLhs() == x)
          cosArg = cosMul.getRhs();
        else if (cosMul.getRhs() == x)
          cosArg = cosMul.getLhs();
        else
          continue;
        int64_t d = getStaticDim(x, 3);
        Value cos = matchTableAtHeads(cosArg, d);
        Value sin = matchTableAtHeads(sinArg, d);
        if (!cos || !sin)
          continue;
        rewriter.replaceOpWithNewOp<RopeOp>(op, op.getType(), x, cos, sin,
                                            rewriter.getI64IntegerAttr(d));
        return success();
      }
    }
    return rewriter.notifyMatchFailure(
        op, "not x * cos + rotate_half(x) * sin with rank-3 cos/sin "
            "unsqueezed at dim 1 and a static head size");
  }
};

/// concat(rope(x[..., :r]), x[..., r:]) along the last axis (partial rotary
/// embeddings, as in GPT-NeoX and Phi) becomes llm.rope(x) with
/// rotary_dim = r.
struct RaisePartialRope : public OpRewritePattern<ConcatOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ConcatOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getInputs().size() != 2)
      return rewriter.notifyMatchFailure(op, "not a concat of two parts");
    auto rope = defOp<RopeOp>(op.getInputs()[0]);
    auto passSlice = defOp<SliceOp>(op.getInputs()[1]);
    auto rotSlice = rope ? defOp<SliceOp>(rope.getInput()) : SliceOp();
    if (!rotSlice || !passSlice || rotSlice.getData() != passSlice.getData())
      return rewriter.notifyMatchFailure(
          op, "not concat(rope(slice(x)), slice(x)) of one x");
    Value x = rotSlice.getData();
    int64_t d = getStaticDim(x, -1);
    auto axis = normalizeAxis(op.getAxis(), 4);
    if (getRank(x) != 4 || ShapedType::isDynamic(d) || !axis || *axis != 3)
      return rewriter.notifyMatchFailure(
          op, "not a last-axis concat of a rank-4 x with a static head size");
    int64_t rot = rope.getRotaryDim();
    auto rotPart = lastAxisSlice(rotSlice, x, d);
    auto passPart = lastAxisSlice(passSlice, x, d);
    if (!rotPart || !passPart || *rotPart != std::make_pair<int64_t>(0, rot) ||
        *passPart != std::make_pair(rot, d) ||
        getStaticDim(rope.getResult(), -1) != rot)
      return rewriter.notifyMatchFailure(
          op, "slices are not [0, rotary_dim) and [rotary_dim, D)");
    rewriter.replaceOpWithNewOp<RopeOp>(op, op.getType(), x, rope.getCos(),
                                        rope.getSin(),
                                        rewriter.getI64IntegerAttr(rot));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// llm.rotary_table
//===----------------------------------------------------------------------===//

/// theta when inv_freq[i] == theta^(-2i/dim) for all i (relative 1e-6).
std::optional<double> recoverTheta(ArrayRef<float> invFreq) {
  int64_t n = invFreq.size();
  if (n < 2 || invFreq[0] != 1.0f || invFreq[1] <= 0 || invFreq[1] >= 1)
    return std::nullopt;
  double dim = 2.0 * n;
  double theta = std::pow((double)invFreq[1], -dim / 2.0);
  auto fits = [&](double t) {
    for (int64_t i = 0; i < n; ++i) {
      double expected = std::pow(t, -2.0 * i / dim);
      if (std::fabs(invFreq[i] - expected) > 1e-6 * expected)
        return false;
    }
    return true;
  };
  // The f32 rounding of inv_freq[1] perturbs the recovered theta by about
  // dim/2 ulps: prefer the nearby integer the model config holds.
  double rounded = std::round(theta);
  if (std::fabs(rounded - theta) <= 1e-4 * theta && fits(rounded))
    return rounded;
  if (fits(theta))
    return theta;
  return std::nullopt;
}

/// If `v` is float(unsqueeze(p, [axis])) (the cast on either side) with p
/// of rank 2, returns p.
Value matchFloatPositions(Value v, int64_t axis) {
  auto cast = defOp<CastOp>(v);
  Value inner = v;
  if (cast && isFloatTensor(cast.getResult()))
    inner = cast.getInput();
  auto unsqueeze = defOp<UnsqueezeOp>(inner);
  if (!unsqueeze)
    return Value();
  auto axes = getConstantAxes(unsqueeze.getAxes(), 3);
  if (!axes || axes->size() != 1 || axes->front() != axis)
    return Value();
  Value p = unsqueeze.getData();
  if (!cast) {
    auto innerCast = defOp<CastOp>(p);
    if (!innerCast || !isFloatTensor(innerCast.getResult()))
      return Value();
    p = innerCast.getInput();
  }
  if (getRank(p) != 2)
    return Value();
  return p;
}

/// The angles `p * inv_freq` of a rotary table: positions [B, S], the
/// inverse frequencies and, when they were broadcast to a batch not provably
/// that of the positions, the shape vector they were expanded with.
struct AngleMatch {
  Value positions;
  Value invFreq;
  Value expandShape;
};

/// Matches the [B, S, N] angles computed as
/// transpose(inv_freq[None, :, None] @ float(p)[:, None, :], [0, 2, 1]).
std::optional<AngleMatch> matchAngles(Value v, std::string &why) {
  auto transpose = defOp<TransposeOp>(v);
  if (!transpose || transpose.getPerm() != ArrayRef<int64_t>{0, 2, 1}) {
    why = "angles are not a [0, 2, 1] transpose";
    return std::nullopt;
  }
  auto matmul = defOp<MatMulOp>(transpose.getInput());
  if (!matmul) {
    why = "angles are not a matmul of inv_freq and positions";
    return std::nullopt;
  }
  if (!getElementTypeOrSelf(matmul.getType()).isF32()) {
    why = "angles are not computed in f32";
    return std::nullopt;
  }
  Value positions = matchFloatPositions(matmul.getRhs(), 1);
  if (!positions) {
    why = "right operand is not float(unsqueeze(positions, 1))";
    return std::nullopt;
  }
  Value inv = stripFloatCasts(matmul.getLhs());
  Value expandShape;
  if (auto expand = defOp<ExpandOp>(inv)) {
    inv = stripFloatCasts(expand.getInput());
    expandShape = expand.getShape();
  }
  auto invType = dyn_cast<RankedTensorType>(inv.getType());
  if (!invType || !invType.hasStaticShape() ||
      !((invType.getRank() == 3 && invType.getDimSize(0) == 1 &&
         invType.getDimSize(2) == 1) ||
        (invType.getRank() == 2 && invType.getDimSize(1) == 1))) {
    why = "inv_freq is not a static [1, N, 1] or [N, 1] tensor";
    return std::nullopt;
  }
  int64_t n = invType.getDimSize(invType.getRank() - 2);
  if (expandShape) {
    auto sym = getSymbolicInts(expandShape);
    if (!sym || sym->size() < 2 || sym->size() > 3) {
      why = "inv_freq is expanded to an unknown shape";
      return std::nullopt;
    }
    size_t k = sym->size();
    const SymDim &rows = (*sym)[k - 2], &cols = (*sym)[k - 1];
    if (!(rows.isConstant(1) || rows.isConstant(n)) || !cols.isConstant(1)) {
      why = "inv_freq expansion changes more than the batch";
      return std::nullopt;
    }
    if (k == 2) {
      expandShape = Value();
    } else {
      const SymDim &batch = (*sym)[0];
      if (batch.isConstant(1) || symMatchesDim(batch, positions, 0))
        expandShape = Value();
    }
  }
  return AngleMatch{positions, inv, expandShape};
}

/// cos/sin(concat(f, f, -1)) of Hugging Face's rotary embedding (f the
/// transposed product of inv_freq and the float positions), optionally times
/// an attention scaling, become llm.rotary_table.
struct RaiseRotaryTable : public OpRewritePattern<CosOp> {
  RaiseRotaryTable(MLIRContext *ctx, bool readWeights)
      : OpRewritePattern(ctx), readWeights(readWeights) {}

  LogicalResult matchAndRewrite(CosOp cosOp,
                                PatternRewriter &rewriter) const override {
    Value emb = cosOp.getInput();
    auto concat = defOp<ConcatOp>(emb);
    if (!concat || concat.getInputs().size() != 2 ||
        concat.getInputs()[0] != concat.getInputs()[1] || getRank(emb) != 3)
      return rewriter.notifyMatchFailure(cosOp, "not cos(concat(f, f))");
    auto axis = normalizeAxis(concat.getAxis(), 3);
    if (!axis || *axis != 2)
      return rewriter.notifyMatchFailure(cosOp,
                                         "concat is not along the last axis");
    std::string why;
    auto angles = matchAngles(concat.getInputs()[0], why);
    if (!angles)
      return rewriter.notifyMatchFailure(cosOp, why);
    auto invFreq = readFloatValues(angles->invFreq, readWeights, why);
    if (!invFreq)
      return rewriter.notifyMatchFailure(cosOp, why);
    int64_t rotaryDim = 2 * invFreq->size();
    if (getStaticDim(emb, 2) != rotaryDim &&
        !ShapedType::isDynamic(getStaticDim(emb, 2)))
      return rewriter.notifyMatchFailure(cosOp, "table width is not 2 * N");

    SinOp sinOp;
    for (Operation *user : emb.getUsers())
      if (auto s = dyn_cast<SinOp>(user)) {
        sinOp = s;
        break;
      }

    // attention_scaling: the only use of cos (and sin) is a product with the
    // same broadcast-free scalar.
    double scaling = 1.0;
    MulOp cosScale, sinScale;
    auto scaleOf = [](Value v, MulOp &mul) -> std::optional<double> {
      if (!v.hasOneUse())
        return std::nullopt;
      mul = dyn_cast<MulOp>(*v.getUsers().begin());
      if (!mul)
        return std::nullopt;
      Value other = mul.getLhs() == v ? mul.getRhs() : mul.getLhs();
      auto c = getSplatFloat(other);
      if (!c || !isScalarConstant(other, *c, 0.0, 3))
        return std::nullopt;
      return c;
    };
    if (auto c = scaleOf(cosOp.getResult(), cosScale)) {
      std::optional<double> s;
      if (sinOp)
        s = scaleOf(sinOp.getResult(), sinScale);
      if (!sinOp || (s && *s == *c))
        scaling = *c;
    }
    if (scaling == 1.0) {
      cosScale = MulOp();
      sinScale = MulOp();
    }

    Location loc = cosOp.getLoc();
    Value positions = angles->positions;
    if (angles->expandShape) {
      // inv_freq was broadcast to a batch taken from another tensor: expand
      // the positions the same way, so that the table keeps that batch.
      auto i64 = rewriter.getI64Type();
      auto vec1 = RankedTensorType::get({1}, i64);
      auto zero = ConstantOp::create(rewriter, loc, vec1,
                                     DenseElementsAttr::get(vec1, int64_t(0)));
      auto one = ConstantOp::create(rewriter, loc, vec1,
                                    DenseElementsAttr::get(vec1, int64_t(1)));
      auto batch = SliceOp::create(rewriter, loc, vec1, angles->expandShape,
                                   zero, one, Value(), Value());
      auto shape =
          ConcatOp::create(rewriter, loc, RankedTensorType::get({2}, i64),
                           ValueRange{batch.getResult(), one.getResult()},
                           rewriter.getI64IntegerAttr(0));
      auto posType = cast<RankedTensorType>(positions.getType());
      auto expandedType =
          RankedTensorType::get({ShapedType::kDynamic, posType.getDimSize(1)},
                                posType.getElementType());
      positions = ExpandOp::create(rewriter, loc, expandedType, positions,
                                   shape.getResult());
    }

    Type cosType = (cosScale ? cosScale.getType() : cosOp.getType());
    Type sinType =
        sinOp ? (sinScale ? sinScale.getType() : sinOp.getType()) : cosType;
    std::optional<double> theta = recoverTheta(*invFreq);
    auto table = RotaryTableOp::create(
        rewriter, loc, cosType, sinType, positions,
        rewriter.getDenseF32ArrayAttr(*invFreq),
        rewriter.getF32FloatAttr((float)scaling),
        theta ? rewriter.getF64FloatAttr(*theta) : FloatAttr());
    rewriter.replaceOp(cosScale ? cosScale.getOperation()
                                : cosOp.getOperation(),
                       table.getCos());
    if (sinOp)
      rewriter.replaceOp(sinScale ? sinScale.getOperation()
                                  : sinOp.getOperation(),
                         table.getSin());
    return success();
  }

  bool readWeights;
};

/// The casts that follow a table: an fp32 llm.rotary_table whose cos and
/// sin are each read only by float casts to one narrower type yields that
/// type itself (the kernels compute in fp32 and round once when they
/// store, as the cast would), so the step that feeds the attention layers
/// is one launch instead of three (in a batched step the casts ran once a
/// row: 10 of a 5-row verify step's 86 launches on pycoder).
struct FoldRotaryTableCasts : public OpRewritePattern<RotaryTableOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RotaryTableOp table,
                                PatternRewriter &rewriter) const override {
    Type target;
    SmallVector<CastOp> casts;
    for (Value result : table->getResults()) {
      auto type = dyn_cast<RankedTensorType>(result.getType());
      if (!type || !type.getElementType().isF32())
        return rewriter.notifyMatchFailure(table, "the table is not fp32");
      for (OpOperand &use : result.getUses()) {
        auto cast = dyn_cast<CastOp>(use.getOwner());
        auto castType =
            cast ? dyn_cast<RankedTensorType>(cast.getType()) : nullptr;
        if (!castType || castType.getShape() != type.getShape())
          return rewriter.notifyMatchFailure(
              table, "a table result has a use that is not a cast");
        Type element = castType.getElementType();
        if (!isa<Float16Type, BFloat16Type>(element) ||
            (target && element != target))
          return rewriter.notifyMatchFailure(
              table, "the casts do not all narrow to one of f16 and bf16");
        target = element;
        casts.push_back(cast);
      }
    }
    if (!target)
      return rewriter.notifyMatchFailure(table, "no cast reads the table");
    auto narrowed = [&](Value v) {
      return cast<RankedTensorType>(v.getType()).clone(target);
    };
    auto folded = RotaryTableOp::create(
        rewriter, table.getLoc(), narrowed(table.getCos()),
        narrowed(table.getSin()), table.getPositions(), table.getInvFreqAttr(),
        table.getAttentionScalingAttr(), table.getThetaAttr());
    for (CastOp cast : casts)
      rewriter.replaceOp(cast, cast.getInput() == table.getCos()
                                   ? folded.getCos()
                                   : folded.getSin());
    rewriter.eraseOp(table);
    return success();
  }
};

struct LLMRaiseRopePass
    : public kiln::llm::impl::LLMRaiseRopeBase<LLMRaiseRopePass> {
  using LLMRaiseRopeBase::LLMRaiseRopeBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseRopePatterns(patterns, readWeights);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseRopePatterns(RewritePatternSet &patterns,
                                          bool readWeights) {
  patterns.add<RaiseRope, RaisePartialRope>(patterns.getContext());
  patterns.add<RaiseRotaryTable>(patterns.getContext(), readWeights);
  patterns.add<FoldRotaryTableCasts>(patterns.getContext());
}
