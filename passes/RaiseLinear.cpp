//===- RaiseLinear.cpp - Raise matmuls and gathers of weights -------------===//
//
// -llm-raise-linear: matmul by a weight (possibly transposed) plus an
// optional bias becomes llm.linear; a gather of rows of a weight table
// becomes llm.embedding.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace kiln::llm {
#define GEN_PASS_DEF_LLMRAISELINEAR
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// A rank-2 `llm.weight`.
bool isMatrixWeight(Value v) { return defOp<WeightOp>(v) && getRank(v) == 2; }

/// matmul(x, W) and matmul(x, transpose(W, [1, 0])) with W a rank-2 weight
/// become llm.linear (transpose_weight for the second).
struct RaiseMatMulToLinear : public OpRewritePattern<MatMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatMulOp op,
                                PatternRewriter &rewriter) const override {
    Value rhs = op.getRhs();
    bool transposed = false;
    if (auto t = defOp<TransposeOp>(rhs)) {
      if (t.getPerm() != ArrayRef<int64_t>{1, 0})
        return rewriter.notifyMatchFailure(op,
                                           "weight transpose is not [1, 0]");
      rhs = t.getInput();
      transposed = true;
    }
    if (!isMatrixWeight(rhs))
      return rewriter.notifyMatchFailure(
          op, "right operand is not a rank-2 weight");
    if (getRank(op.getLhs()) == 0)
      return rewriter.notifyMatchFailure(op, "left operand is a scalar");
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getLhs(), rhs,
                                          Value(), transposed);
    return success();
  }
};

/// The output features of a linear op, or kDynamic.
int64_t outputFeatures(LinearOp linear) {
  return getStaticDim(linear.getWeight(), linear.getTransposeWeight() ? 0 : 1);
}

/// linear(x, W) + b with b a 1-D tensor of the output features (weight or
/// constant) becomes linear(x, W, b).
struct FoldBiasIntoLinear : public OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [y, b] : {std::pair(op.getLhs(), op.getRhs()),
                        std::pair(op.getRhs(), op.getLhs())}) {
      auto linear = defOp<LinearOp>(y);
      if (!linear || linear.getBias() || !linear->hasOneUse())
        continue;
      int64_t n = outputFeatures(linear);
      if (ShapedType::isDynamic(n) || getRank(b) != 1 ||
          getStaticDim(b, 0) != n || !isFloatTensor(b))
        continue;
      if (!defOp<WeightOp>(b) && !defOp<ConstantOp>(b))
        continue;
      rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), linear.getInput(),
                                            linear.getWeight(), b,
                                            linear.getTransposeWeight());
      rewriter.eraseOp(linear);
      return success();
    }
    return rewriter.notifyMatchFailure(
        op, "not a single-use bias-free linear plus a 1-D bias of its width");
  }
};

/// gather(W, ids, axis = 0) with W a rank-2 weight and integer ids becomes
/// llm.embedding.
struct RaiseGatherToEmbedding : public OpRewritePattern<GatherOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GatherOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getAxis() != 0)
      return rewriter.notifyMatchFailure(op, "gather is not along axis 0");
    if (!isMatrixWeight(op.getData()))
      return rewriter.notifyMatchFailure(op, "table is not a rank-2 weight");
    if (!isa<IntegerType>(getElementTypeOrSelf(op.getIndices().getType())))
      return rewriter.notifyMatchFailure(op, "ids are not integers");
    rewriter.replaceOpWithNewOp<EmbeddingOp>(op, op.getType(), op.getData(),
                                             op.getIndices());
    return success();
  }
};

struct LLMRaiseLinearPass
    : public kiln::llm::impl::LLMRaiseLinearBase<LLMRaiseLinearPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseLinearPatterns(patterns);
    if (failed(applyRaisingPatterns(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void kiln::llm::populateRaiseLinearPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseMatMulToLinear, FoldBiasIntoLinear, RaiseGatherToEmbedding>(
      patterns.getContext());
}
