//===- RaiseActivations.cpp - Raise SiLU and GELU decompositions ---------===//
//
// -llm-raise-activations: x * sigmoid(x) becomes llm.silu; the erf and tanh
// forms of GELU become llm.gelu and llm.gelu_tanh.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

#include <cmath>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISEACTIVATIONS
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// x * sigmoid(x), in either order, becomes llm.silu(x).
struct RaiseSiLU : public OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [x, s] : {std::pair(op.getLhs(), op.getRhs()),
                        std::pair(op.getRhs(), op.getLhs())}) {
      auto sigmoid = defOp<SigmoidOp>(s);
      if (!sigmoid || sigmoid.getInput() != x || !isFloatTensor(x))
        continue;
      rewriter.replaceOpWithNewOp<SiLUOp>(op, x.getType(), x);
      return success();
    }
    return rewriter.notifyMatchFailure(op, "not x * sigmoid(x)");
  }
};

/// The factors of the product tree at `v`: operands of nested llm.mul ops.
void collectFactors(Value v, SmallVectorImpl<Value> &factors, int depth) {
  if (auto mul = defOp<MulOp>(v); mul && depth < 4) {
    collectFactors(mul.getLhs(), factors, depth + 1);
    collectFactors(mul.getRhs(), factors, depth + 1);
    return;
  }
  factors.push_back(v);
}

bool near(double value, double expected, double tol) {
  return std::fabs(value - expected) <= tol * std::fabs(expected);
}

/// If `v` is `1 + f(y)` with f = OpT (either order), returns y.
template <typename OpT> Value matchOnePlus(Value v) {
  auto add = defOp<AddOp>(v);
  if (!add)
    return Value();
  for (auto [f, one] : {std::pair(add.getLhs(), add.getRhs()),
                        std::pair(add.getRhs(), add.getLhs())}) {
    auto fn = defOp<OpT>(f);
    if (!fn || getRank(fn.getInput()) < 0)
      continue;
    if (isScalarConstant(one, 1.0, 0.0, getRank(fn.getInput())))
      return fn.getInput();
  }
  return Value();
}

/// If `v` is `x * c`, `c * x` or `x / (1/c)` with c a broadcast-free scalar
/// constant, returns {x, c}.
std::optional<std::pair<Value, double>> matchScaled(Value v) {
  if (auto mul = defOp<MulOp>(v)) {
    for (auto [x, c] : {std::pair(mul.getLhs(), mul.getRhs()),
                        std::pair(mul.getRhs(), mul.getLhs())}) {
      auto k = getSplatFloat(c);
      if (k && getRank(x) >= 0 && isScalarConstant(c, *k, 0.0, getRank(x)))
        return std::make_pair(x, *k);
    }
  }
  if (auto div = defOp<DivOp>(v)) {
    auto k = getSplatFloat(div.getRhs());
    Value x = div.getLhs();
    if (k && *k != 0 && getRank(x) >= 0 &&
        isScalarConstant(div.getRhs(), *k, 0.0, getRank(x)))
      return std::make_pair(x, 1.0 / *k);
  }
  return std::nullopt;
}

/// If `v` is x^3 (`pow(x, 3)` or `x * x * x` in any association), returns x.
Value matchCube(Value v) {
  if (auto pow = defOp<PowOp>(v)) {
    Value x = pow.getLhs();
    if (getRank(x) >= 0 && isScalarConstant(pow.getRhs(), 3.0, 0.0, getRank(x)))
      return x;
    return Value();
  }
  auto mul = defOp<MulOp>(v);
  if (!mul)
    return Value();
  for (auto [a, b] : {std::pair(mul.getLhs(), mul.getRhs()),
                      std::pair(mul.getRhs(), mul.getLhs())})
    if (auto sq = defOp<MulOp>(b))
      if (sq.getLhs() == a && sq.getRhs() == a)
        return a;
  return Value();
}

/// Checks that the remaining factors of a GELU product are x and constants
/// multiplying to 0.5.
bool isHalfX(ArrayRef<Value> factors, Value x, double tol) {
  int64_t rank = getRank(x);
  double product = 1.0;
  int xs = 0;
  for (Value f : factors) {
    if (f == x) {
      ++xs;
      continue;
    }
    auto c = getSplatFloat(f);
    if (!c || !isScalarConstant(f, *c, 0.0, rank))
      return false;
    product *= *c;
  }
  return xs == 1 && near(product, 0.5, tol);
}

/// 0.5 * x * (1 + erf(x / sqrt(2))) in any association becomes llm.gelu(x).
struct RaiseGelu : public OpRewritePattern<MulOp> {
  RaiseGelu(MLIRContext *ctx, double tol) : OpRewritePattern(ctx), tol(tol) {}

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<Value> factors;
    collectFactors(op.getResult(), factors, 0);
    for (auto [i, f] : llvm::enumerate(factors)) {
      Value y = matchOnePlus<ErfOp>(f);
      if (!y)
        continue;
      auto scaled = matchScaled(y);
      if (!scaled || !near(scaled->second, M_SQRT1_2, tol))
        continue;
      Value x = scaled->first;
      SmallVector<Value> rest(factors);
      rest.erase(rest.begin() + i);
      if (!isFloatTensor(x) || !isHalfX(rest, x, tol))
        continue;
      rewriter.replaceOpWithNewOp<GeluOp>(op, x.getType(), x);
      return success();
    }
    return rewriter.notifyMatchFailure(op,
                                       "not 0.5 * x * (1 + erf(x / sqrt(2)))");
  }

  double tol;
};

/// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) becomes
/// llm.gelu_tanh(x).
struct RaiseGeluTanh : public OpRewritePattern<MulOp> {
  RaiseGeluTanh(MLIRContext *ctx, double tol)
      : OpRewritePattern(ctx), tol(tol) {}

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<Value> factors;
    collectFactors(op.getResult(), factors, 0);
    for (auto [i, f] : llvm::enumerate(factors)) {
      Value z = matchOnePlus<TanhOp>(f);
      if (!z)
        continue;
      auto outer = matchScaled(z);
      if (!outer || !near(outer->second, std::sqrt(2.0 / M_PI), tol))
        continue;
      auto inner = defOp<AddOp>(outer->first);
      if (!inner)
        continue;
      Value x;
      for (auto [a, b] : {std::pair(inner.getLhs(), inner.getRhs()),
                          std::pair(inner.getRhs(), inner.getLhs())}) {
        auto cubic = matchScaled(b);
        if (cubic && near(cubic->second, 0.044715, tol) &&
            matchCube(cubic->first) == a)
          x = a;
      }
      if (!x || !isFloatTensor(x))
        continue;
      SmallVector<Value> rest(factors);
      rest.erase(rest.begin() + i);
      if (!isHalfX(rest, x, tol))
        continue;
      rewriter.replaceOpWithNewOp<GeluTanhOp>(op, x.getType(), x);
      return success();
    }
    return rewriter.notifyMatchFailure(
        op, "not 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))");
  }

  double tol;
};

struct LLMRaiseActivationsPass
    : public kiln::llm::impl::LLMRaiseActivationsBase<LLMRaiseActivationsPass> {
  using LLMRaiseActivationsBase::LLMRaiseActivationsBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseActivationsPatterns(patterns, tolerance);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseActivationsPatterns(RewritePatternSet &patterns,
                                                 double tolerance) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<RaiseSiLU>(ctx);
  patterns.add<RaiseGelu, RaiseGeluTanh>(ctx, tolerance);
}
