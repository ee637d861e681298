//===- SpeculativeDecode.cpp - The @verify entry point --------------------===//
//
// -llm-speculative-decode: @verify, the target's scorer of drafted tokens,
// is @prefill with every row's logits (the last-token selection removed).
// A prefill over cached context is exactly what verification needs: the
// last committed token and k drafts appended to each sequence, attending
// causally to the sequence's cache.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace kiln::llm {
#define GEN_PASS_DEF_LLMSPECULATIVEDECODE
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// The vocabulary of an entry point's logits (its first result, [rows, V]).
FailureOr<int64_t> logitsVocab(func::FuncOp func) {
  if (func.getNumResults() < 1)
    return failure();
  auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[0]);
  if (!type || type.getRank() != 2 || type.isDynamicDim(1))
    return failure();
  return type.getDimSize(1);
}

struct LLMSpeculativeDecodePass
    : public kiln::llm::impl::LLMSpeculativeDecodeBase<
          LLMSpeculativeDecodePass> {
  using LLMSpeculativeDecodeBase::LLMSpeculativeDecodeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The options' values (a diagnostic would print the option objects).
    int64_t k = this->k, draftVocab = this->draftVocab;
    if (k < 1) {
      emitError(module.getLoc())
          << "speculative decoding needs k >= 1 drafted tokens, got " << k;
      return signalPassFailure();
    }
    if (draftVocab < 0) {
      emitError(module.getLoc())
          << "draft-vocab must not be negative, got " << draftVocab;
      return signalPassFailure();
    }
    if (Operation *existing = module.lookupSymbol("verify")) {
      emitError(existing->getLoc())
          << "a @verify already exists: the module is set up for "
             "speculative decoding already";
      return signalPassFailure();
    }
    auto prefill = module.lookupSymbol<func::FuncOp>("prefill");
    if (!prefill) {
      emitError(module.getLoc())
          << "expected a @prefill over the paged KV cache to build @verify "
             "from (run -llm-kv-cache-layout first)";
      return signalPassFailure();
    }
    FailureOr<int64_t> vocab = logitsVocab(prefill);
    if (failed(vocab)) {
      emitError(prefill.getLoc())
          << "expected @prefill to return [rows, vocab] logits first";
      return signalPassFailure();
    }
    if (draftVocab != 0 && draftVocab != *vocab) {
      emitError(prefill.getLoc())
          << "the draft model's vocabulary of " << draftVocab
          << " tokens differs from the target's of " << *vocab
          << ": a draft must propose the target's token ids";
      return signalPassFailure();
    }

    auto verify = cast<func::FuncOp>(prefill->clone());
    verify.setName("verify");
    module.insert(std::next(prefill->getIterator()), verify);
    // Every row's logits: the rows after the gather are the same per-token
    // computation, now over all T rows instead of the N last ones.
    SmallVector<GatherLastTokensOp> gathers;
    verify.walk([&](GatherLastTokensOp op) { gathers.push_back(op); });
    for (GatherLastTokensOp op : gathers) {
      if (op.getInput().getType() != op.getResult().getType()) {
        emitError(op.getLoc())
            << "expected the last-token selection to keep the row type, got "
            << op.getInput().getType() << " -> " << op.getResult().getType();
        verify.erase();
        return signalPassFailure();
      }
      op.getResult().replaceAllUsesWith(op.getInput());
      op.erase();
    }
    MLIRContext *ctx = &getContext();
    verify->setAttr("llm.logits", StringAttr::get(ctx, "all"));
    verify->setAttr("llm.verify_tokens",
                    IntegerAttr::get(IntegerType::get(ctx, 64), k + 1));
    NamedAttribute fields[] = {
        NamedAttribute(StringAttr::get(ctx, "k"),
                       IntegerAttr::get(IntegerType::get(ctx, 64), k)),
        NamedAttribute(StringAttr::get(ctx, "draft"),
                       StringAttr::get(ctx, draftVocab ? "model" : "ngram"))};
    module->setAttr("llm.speculative", DictionaryAttr::get(ctx, fields));
  }
};

} // namespace
