//===- ReportUnraised.cpp - List the generic ops left after raising -------===//
//
// -llm-report-unraised: one remark per function naming every generic op
// still there, grouped by op name, with why it was not raised. The reason
// is inferred from what the op computes and where its results go.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMREPORTUNRAISED
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

/// Whether the op is a generic (ONNX-semantics) llm op.
bool isGeneric(Operation *op) {
  return isa_and_nonnull<LLMDialect>(op->getDialect()) &&
         !isModelOrParameterOp(op);
}

bool isIntegerOrBool(Value v) {
  return isa<IntegerType>(getElementTypeOrSelf(v.getType()));
}

/// Ops all of whose results flow only into `sinks` (attention masks or
/// rotary cos/sin producers), computed backwards to a fixed point.
llvm::DenseSet<Operation *>
feedingOnly(func::FuncOp func, llvm::function_ref<bool(OpOperand &)> sink) {
  llvm::DenseSet<Operation *> set;
  SmallVector<Operation *> ops;
  func.walk([&](Operation *op) {
    if (isGeneric(op))
      ops.push_back(op);
  });
  bool changed = true;
  while (changed) {
    changed = false;
    for (Operation *op : llvm::reverse(ops)) {
      if (set.contains(op) || op->getNumResults() == 0)
        continue;
      bool all = true, any = false;
      for (Value r : op->getResults())
        for (OpOperand &use : r.getUses()) {
          any = true;
          if (!sink(use) && !set.contains(use.getOwner()))
            all = false;
        }
      if (any && all) {
        set.insert(op);
        changed = true;
      }
    }
  }
  return set;
}

/// The reason category of a generic op left in the function.
std::string categorize(Operation *op, const llvm::DenseSet<Operation *> &mask,
                       const llvm::DenseSet<Operation *> &rotary) {
  if (isa<MatMulNBitsOp>(op))
    return "quantized matmul";
  // The guard kept on an attention output when the mask may be -inf.
  if (auto isnan = dyn_cast<IsNaNOp>(op))
    if (defOp<AttentionOp>(isnan.getInput()))
      return "attention NaN guard";
  if (mask.contains(op) || llvm::any_of(op->getResults(), [](Value r) {
        return getElementTypeOrSelf(r.getType()).isInteger(1);
      }))
    return "mask building";
  if (llvm::all_of(op->getResults(), isIntegerOrBool))
    return "shape arithmetic";
  if (rotary.contains(op) || isa<CosOp, SinOp>(op))
    return "rotary table";
  // The guard kept on an attention output when the mask may be -inf.
  if (auto where = dyn_cast<WhereOp>(op))
    if (auto isnan = defOp<IsNaNOp>(where.getCondition()))
      if (defOp<AttentionOp>(isnan.getInput()))
        return "attention NaN guard";
  if (isa<CastOp>(op))
    return "dtype conversion";
  if (isa<ReshapeOp, TransposeOp, UnsqueezeOp, SqueezeOp, ExpandOp, SliceOp,
          FlattenOp, SplitOp, GatherOp>(op))
    return "head layout";
  if (auto concat = dyn_cast<ConcatOp>(op)) {
    bool fromArgs = llvm::any_of(concat.getInputs(),
                                 [](Value v) { return isa<BlockArgument>(v); });
    bool returned = llvm::any_of(concat->getUsers(), [](Operation *u) {
      return isa<func::ReturnOp>(u);
    });
    if (fromArgs || returned)
      return "kv cache";
    return "head layout";
  }
  // act(gate) * up around projections that are not llm.linear (fused or
  // quantized).
  if (auto mul = dyn_cast<MulOp>(op))
    if (llvm::any_of(mul->getOperands(), [](Value v) {
          return defOp<SiLUOp>(v) || defOp<GeluOp>(v) || defOp<GeluTanhOp>(v);
        }))
      return "gated MLP of fused or quantized projections";
  if (auto add = dyn_cast<AddOp>(op)) {
    // GPT-2: token plus position embeddings.
    if (defOp<EmbeddingOp>(add.getLhs()) && defOp<EmbeddingOp>(add.getRhs()))
      return "embedding sum";
    auto isActivation = [](Value v) {
      Operation *def = v.getDefiningOp();
      if (def && isa<ConstantOp, WeightOp>(def))
        return false;
      return isFloatTensor(v) && getRank(v) >= 2;
    };
    if (isActivation(add.getLhs()) && isActivation(add.getRhs()) &&
        add.getLhs().getType() == add.getRhs().getType())
      return "residual connection";
  }
  return "unmatched arithmetic";
}

struct LLMReportUnraisedPass
    : public kiln::llm::impl::LLMReportUnraisedBase<LLMReportUnraisedPass> {
  using LLMReportUnraisedBase::LLMReportUnraisedBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    auto mask = feedingOnly(func, [](OpOperand &use) {
      auto attention = dyn_cast<AttentionOp>(use.getOwner());
      // Operands: query, key, value, mask.
      return attention && attention.getMask() && use.getOperandNumber() == 3;
    });
    auto rotary = feedingOnly(func, [](OpOperand &use) {
      return isa<CosOp, SinOp, RotaryTableOp>(use.getOwner());
    });

    // op name -> (category -> count), in first-seen order of op names.
    llvm::MapVector<StringRef, std::map<std::string, int64_t>> groups;
    int64_t total = 0;
    func.walk([&](Operation *op) {
      if (!isGeneric(op))
        return;
      ++groups[op->getName().getStringRef()][categorize(op, mask, rotary)];
      ++total;
    });
    if (total == 0)
      return;

    std::string text;
    llvm::raw_string_ostream os(text);
    os << total << " generic op" << (total == 1 ? "" : "s")
       << " left unraised in @" << func.getSymName() << ":";
    for (auto &[name, categories] : groups) {
      int64_t count = 0;
      for (auto &[category, n] : categories)
        count += n;
      os << "\n  " << name << " x" << count << " (";
      bool first = true;
      for (auto &[category, n] : categories) {
        os << (first ? "" : ", ") << category << ": " << n;
        first = false;
      }
      os << ")";
    }
    // Emitted at the location rather than on the op, so that handlers that
    // print the op a diagnostic is attached to do not dump the function.
    if (failOnUnraised) {
      mlir::emitError(func.getLoc()) << os.str();
      return signalPassFailure();
    }
    mlir::emitRemark(func.getLoc()) << os.str();
  }
};

} // namespace
