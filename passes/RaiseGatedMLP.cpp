//===- RaiseGatedMLP.cpp - Raise SwiGLU/GeGLU feed-forward blocks ---------===//
//
// -llm-raise-gated-mlp: down(act(gate(x)) * up(x)) over three llm.linear ops
// becomes llm.gated_mlp.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISEGATEDMLP
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// The activation of a gated MLP: the name llm.gated_mlp uses and its input.
std::optional<std::pair<StringRef, Value>> matchActivation(Value v) {
  Operation *op = v.getDefiningOp();
  if (!op)
    return std::nullopt;
  if (auto a = dyn_cast<SiLUOp>(op))
    return std::make_pair(StringRef("silu"), a.getInput());
  if (auto a = dyn_cast<GeluOp>(op))
    return std::make_pair(StringRef("gelu"), a.getInput());
  if (auto a = dyn_cast<GeluTanhOp>(op))
    return std::make_pair(StringRef("gelu_tanh"), a.getInput());
  return std::nullopt;
}

/// down(act(gate(x)) * up(x)) with three bias-free linears of one weight
/// layout, each intermediate used once, becomes llm.gated_mlp.
struct RaiseGatedMLP : public OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LinearOp down,
                                PatternRewriter &rewriter) const override {
    if (down.getBias())
      return rewriter.notifyMatchFailure(down, "down projection has a bias");
    auto mul = defOp<MulOp>(down.getInput());
    if (!mul || !mul->hasOneUse())
      return rewriter.notifyMatchFailure(down,
                                         "input is not a single-use product");
    bool transposed = down.getTransposeWeight();
    for (auto [a, b] : {std::pair(mul.getLhs(), mul.getRhs()),
                        std::pair(mul.getRhs(), mul.getLhs())}) {
      auto act = matchActivation(a);
      if (!act)
        continue;
      auto gate = defOp<LinearOp>(act->second);
      auto up = defOp<LinearOp>(b);
      if (!gate || !up || gate.getBias() || up.getBias() ||
          gate.getInput() != up.getInput() ||
          gate.getTransposeWeight() != transposed ||
          up.getTransposeWeight() != transposed)
        continue;
      if (!allHaveOneUse({a, act->second, b}))
        continue;
      // The product must not broadcast: gate and up have the same shape.
      if (gate.getType() != up.getType() &&
          getStaticDim(gate.getWeight(), transposed ? 0 : 1) !=
              getStaticDim(up.getWeight(), transposed ? 0 : 1))
        continue;
      rewriter.replaceOpWithNewOp<GatedMLPOp>(
          down, down.getType(), gate.getInput(), gate.getWeight(),
          up.getWeight(), down.getWeight(), act->first, transposed);
      return success();
    }
    return rewriter.notifyMatchFailure(
        down, "input is not act(linear(x)) * linear(x) of bias-free, "
              "single-use linears with the down projection's layout");
  }
};

struct LLMRaiseGatedMLPPass
    : public kiln::llm::impl::LLMRaiseGatedMLPBase<LLMRaiseGatedMLPPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseGatedMLPPatterns(patterns);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseGatedMLPPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseGatedMLP>(patterns.getContext());
}
