//===- KVCacheLayout.cpp - Entry points over a paged KV cache -------------===//
//
// -llm-kv-cache-layout: the raised model function (stateless, or with
// past/present KV) becomes @prefill and @decode over packed tokens and a
// paged KV cache, with the runtime's ForwardBatch conventions.
//
// How: every decoder computes each token's row independently except in
// attention. So the rewrite follows values from the token ids to the logits
// and gives each a *token layout*: `Token` for [lead dims..., rest] with the
// lead dims ([B, S], or [B*S] after a flattening reshape) enumerating
// tokens, packed as [T, rest]; `Head` for [B, H, S, D], packed as [T, H, D]
// (the head transposes become no-ops); `PastKV` for concat(past, new) of
// with-past exports, whose only use is attention. Each op on that path is
// re-created in packed form after checking that it cannot mix tokens (norms,
// linear layers, MLPs and activations act on the last axis; elementwise
// arithmetic with weights or constants may broadcast over trailing axes
// only; reshapes must keep token rows; splits and slices must be along
// non-token axes). Attention becomes a KV-cache write plus paged attention.
// The mask, the shape arithmetic and the past/present concatenations are
// not re-created; rotary tables and position embeddings read `positions`.
// This covers fused projections (Phi-3, GPT-2), q/k norms (Qwen3),
// embedding scales (Gemma), casts of half models and the 2-D linears of
// GPT-2 without a description per family.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"

#include <map>
#include <vector>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMKVCACHELAYOUT
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

namespace {

//===----------------------------------------------------------------------===//
// Analysis of the source function
//===----------------------------------------------------------------------===//

/// What the rewrite needs to know about the model before re-creating it.
struct ModelFacts {
  func::FuncOp func;
  /// The token ids argument (the ids of the token embedding).
  BlockArgument tokens;
  /// The logits among the function's results.
  Value logits;
  /// Ops the logits depend on: the only ones re-created.
  llvm::DenseSet<Operation *> slice;
  /// The attentions on that path in order: layer l is attentions[l].
  SmallVector<AttentionOp> attentions;
  /// The cache geometry: KV heads, head size and element type.
  int64_t kvHeads = 0, headDim = 0;
  Type kvElementType;
  /// Values computed from the token ids' values (not only their shape).
  llvm::DenseSet<Value> readsTokens;
  /// Values computed from a range or a non-token argument (position ids).
  llvm::DenseSet<Value> positional;
};

LogicalResult analyzeModel(func::FuncOp func, ModelFacts &facts) {
  facts.func = func;
  if (func.isExternal() || !func.getBody().hasOneBlock())
    return emitError(func.getLoc())
           << "expected a model function with one block";
  Block &body = func.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret)
    return emitError(func.getLoc())
           << "expected the model function to end with "
              "func.return";

  // The token ids: the argument a token embedding reads.
  SmallVector<BlockArgument> tokenArgs;
  func.walk([&](EmbeddingOp emb) {
    auto arg = dyn_cast<BlockArgument>(emb.getIds());
    if (arg && arg.getOwner() == &body && !llvm::is_contained(tokenArgs, arg))
      tokenArgs.push_back(arg);
  });
  if (tokenArgs.size() != 1)
    return emitError(func.getLoc())
           << "expected one function argument of token ids read by "
              "llm.embedding, found "
           << tokenArgs.size() << " (run the raise pipeline first)";
  facts.tokens = tokenArgs.front();
  if (getRank(facts.tokens) < 1)
    return emitError(func.getLoc())
           << "expected ranked token ids, got " << facts.tokens.getType();

  // The logits: the first floating-point result.
  for (Value v : ret.getOperands())
    if (isFloatTensor(v)) {
      facts.logits = v;
      break;
    }
  if (!facts.logits)
    return emitError(ret.getLoc())
           << "expected the model to return floating-point "
              "logits";

  // The backward slice of the logits through data operands: attention masks
  // and the shape vectors of reshapes and expands are not re-created, so the
  // ops computing only them are left out.
  SmallVector<Operation *> worklist;
  if (Operation *def = facts.logits.getDefiningOp())
    worklist.push_back(def);
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (!facts.slice.insert(op).second)
      continue;
    for (OpOperand &use : op->getOpOperands()) {
      Value operand = use.get();
      if (auto attn = dyn_cast<AttentionOp>(op);
          attn && operand == attn.getMask())
        continue;
      if (isa<ReshapeOp, ExpandOp>(op) && use.getOperandNumber() == 1)
        continue;
      if (Operation *def = operand.getDefiningOp())
        worklist.push_back(def);
    }
  }

  // Which values read the token ids, and which are positional.
  facts.readsTokens.insert(facts.tokens);
  for (BlockArgument arg : body.getArguments())
    if (arg != facts.tokens)
      facts.positional.insert(arg);
  for (Operation &op : body) {
    bool reads = false, positional = isa<RangeOp>(op);
    if (!isa<ShapeOp, SizeOp>(op))
      for (Value operand : op.getOperands()) {
        reads |= facts.readsTokens.contains(operand);
        positional |= facts.positional.contains(operand);
      }
    for (Value result : op.getResults()) {
      if (reads)
        facts.readsTokens.insert(result);
      if (positional)
        facts.positional.insert(result);
    }
  }

  // The attentions, which fix the cache geometry.
  for (Operation &op : body)
    if (auto attn = dyn_cast<AttentionOp>(op);
        attn && facts.slice.contains(attn))
      facts.attentions.push_back(attn);
  if (facts.attentions.empty())
    return emitError(func.getLoc())
           << "expected at least one llm.attention on the "
              "path to the logits (run the raise pipeline "
              "first)";
  for (AttentionOp attn : facts.attentions) {
    int64_t kvHeads = attn.getKvHeads();
    int64_t headDim = getStaticDim(attn.getQuery(), 3);
    int64_t valueDim = getStaticDim(attn.getValue(), 3);
    Type elem = getElementTypeOrSelf(attn.getKey().getType());
    if (ShapedType::isDynamic(headDim))
      return attn.emitOpError() << "cannot be laid out for the paged KV cache: "
                                   "expected a static head size";
    if (valueDim != headDim)
      return attn.emitOpError()
             << "cannot be laid out for the paged KV cache: expected values "
                "of the key head size "
             << headDim << ", got " << attn.getValue().getType();
    if (elem != getElementTypeOrSelf(attn.getValue().getType()))
      return attn.emitOpError() << "cannot be laid out for the paged KV cache: "
                                   "expected keys and values of one element "
                                   "type";
    if (!facts.kvElementType) {
      facts.kvHeads = kvHeads;
      facts.headDim = headDim;
      facts.kvElementType = elem;
    } else if (kvHeads != facts.kvHeads || headDim != facts.headDim ||
               elem != facts.kvElementType) {
      return attn.emitOpError()
             << "cannot be laid out for the paged KV cache: expected every "
                "layer to have "
             << facts.kvHeads << " KV heads of size " << facts.headDim << " in "
             << facts.kvElementType << ", got " << kvHeads << " of size "
             << headDim << " in " << elem;
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Re-creating the model in packed form
//===----------------------------------------------------------------------===//

enum class Layout { Token, Head, PastKV };

/// The packed counterpart of an original value.
struct Packed {
  Value value;
  Layout layout = Layout::Token;
  /// Token layout: how many leading dimensions of the original enumerate
  /// tokens (2 for [B, S, ...], 1 after a flattening reshape).
  int64_t lead = 0;
};

/// Builds one entry point (@prefill or @decode) from the analyzed model.
class EntryBuilder {
public:
  EntryBuilder(ModelFacts &facts, int64_t blockSize)
      : facts(facts), blockSize(blockSize), b(facts.func.getContext()) {}

  FailureOr<func::FuncOp> build(OpBuilder &moduleBuilder, StringRef name,
                                bool gatherLast);

private:
  LogicalResult visit(Operation *op);
  LogicalResult visitAttention(AttentionOp op);
  LogicalResult visitReshape(ReshapeOp op, const Packed &in);
  LogicalResult visitPositional(Operation *op, Value positions);

  /// Clones `op` with mapped operands replaced by their packed values, the
  /// operand at `override.first` (when >= 0) by `override.second`, and the
  /// others by invariants; its results get `layout` and `lead`.
  FailureOr<Operation *> cloneMapped(Operation *op, Layout layout, int64_t lead,
                                     std::pair<int64_t, Value> override = {
                                         -1, Value()});
  /// An i64 vector constant, created once per entry point.
  Value vectorConstant(Location loc, ArrayRef<int64_t> values);
  /// The copy of a value that does not depend on tokens (weights, constants
  /// and pure ops of them).
  FailureOr<Value> invariant(Operation *user, Value v);
  /// The packed type of an original value `v` in `layout`.
  FailureOr<RankedTensorType> packedType(Operation *op, Value v, Layout layout,
                                         int64_t lead);
  /// The packed axis of original axis `axis` of a value of rank `rank`, or
  /// nullopt when it enumerates tokens.
  std::optional<int64_t> packedAxis(const Packed &p, int64_t rank,
                                    int64_t axis);
  void setPacked(Value original, Value packed, Layout layout, int64_t lead) {
    map[original] = Packed{packed, layout, lead};
    tokenValues.insert(packed);
  }
  const Packed *lookup(Value v) const {
    auto it = map.find(v);
    return it == map.end() ? nullptr : &it->second;
  }
  InFlightDiagnostic fail(Operation *op) {
    return op->emitOpError() << "cannot be laid out for the paged KV cache: ";
  }
  Value gatherLastTokens(Value logits);

  ModelFacts &facts;
  int64_t blockSize;
  OpBuilder b;
  llvm::DenseMap<Value, Packed> map;
  llvm::DenseMap<Value, Value> invariants;
  std::map<std::vector<int64_t>, Value> vectorConstants;
  /// Packed values holding one row per token.
  llvm::DenseSet<Value> tokenValues;
  Value tokensArg, positionsArg, startsArg, tablesArg, contextArg, slotsArg;
  Value cache;
  int64_t layer = 0;
};

FailureOr<RankedTensorType>
EntryBuilder::packedType(Operation *op, Value v, Layout layout, int64_t lead) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type) {
    fail(op) << "expected a ranked tensor, got " << v.getType();
    return failure();
  }
  Type elem = type.getElementType();
  if (layout == Layout::Head) {
    if (type.getRank() != 4 || type.isDynamicDim(1) || type.isDynamicDim(3)) {
      fail(op) << "expected [B, heads, S, head_dim] with static heads and "
                  "head size, got "
               << type;
      return failure();
    }
    return RankedTensorType::get(
        {ShapedType::kDynamic, type.getDimSize(1), type.getDimSize(3)}, elem);
  }
  if (type.getRank() < lead) {
    fail(op) << "expected rank >= " << lead << ", got " << type;
    return failure();
  }
  SmallVector<int64_t> shape{ShapedType::kDynamic};
  for (int64_t d = lead; d < type.getRank(); ++d) {
    if (type.isDynamicDim(d)) {
      fail(op) << "expected static sizes after the " << lead
               << " token dimensions, got " << type;
      return failure();
    }
    shape.push_back(type.getDimSize(d));
  }
  return RankedTensorType::get(shape, elem);
}

std::optional<int64_t> EntryBuilder::packedAxis(const Packed &p, int64_t rank,
                                                int64_t axis) {
  auto normalized = normalizeAxis(axis, rank);
  if (!normalized)
    return std::nullopt;
  if (p.layout == Layout::Head) {
    // [B, H, S, D] -> [T, H, D]
    if (*normalized == 1)
      return 1;
    if (*normalized == 3)
      return 2;
    return std::nullopt;
  }
  if (p.layout != Layout::Token || *normalized < p.lead)
    return std::nullopt;
  return *normalized - p.lead + 1;
}

FailureOr<Value> EntryBuilder::invariant(Operation *user, Value v) {
  if (auto it = invariants.find(v); it != invariants.end())
    return it->second;
  Operation *def = v.getDefiningOp();
  auto reject = [&](StringRef why) -> FailureOr<Value> {
    fail(user) << "expected operand " << v.getType()
               << " to be a weight, a constant or a per-token value, got "
               << why;
    return failure();
  };
  if (lookup(v))
    return reject("a value in another token layout");
  if (!def)
    return reject("a function argument");
  if (facts.readsTokens.contains(v))
    return reject("a value computed from the token ids");
  if (!isa_and_nonnull<LLMDialect>(def->getDialect()) || def->getNumRegions() ||
      def->getNumResults() != 1 || isa<ShapeOp, SizeOp>(def))
    return reject(("'" + def->getName().getStringRef() + "'").str());
  IRMapping mapping;
  for (Value operand : def->getOperands()) {
    FailureOr<Value> copy = invariant(user, operand);
    if (failed(copy))
      return failure();
    mapping.map(operand, *copy);
  }
  Value copy = b.clone(*def, mapping)->getResult(0);
  invariants[v] = copy;
  return copy;
}

Value EntryBuilder::vectorConstant(Location loc, ArrayRef<int64_t> values) {
  Value &cached =
      vectorConstants[std::vector<int64_t>(values.begin(), values.end())];
  if (!cached) {
    auto type = RankedTensorType::get({(int64_t)values.size()}, b.getI64Type());
    cached =
        ConstantOp::create(b, loc, type, DenseElementsAttr::get(type, values));
  }
  return cached;
}

FailureOr<Operation *>
EntryBuilder::cloneMapped(Operation *op, Layout layout, int64_t lead,
                          std::pair<int64_t, Value> override) {
  IRMapping mapping;
  SmallVector<Value> newOperands;
  for (OpOperand &use : op->getOpOperands()) {
    Value operand = use.get();
    if ((int64_t)use.getOperandNumber() == override.first) {
      newOperands.push_back(override.second);
      continue;
    }
    if (const Packed *p = lookup(operand)) {
      if (p->layout == Layout::PastKV) {
        fail(op) << "expected past/present keys and values to be read by "
                    "attention only";
        return failure();
      }
      newOperands.push_back(p->value);
      continue;
    }
    FailureOr<Value> copy = invariant(op, operand);
    if (failed(copy))
      return failure();
    newOperands.push_back(*copy);
  }
  SmallVector<RankedTensorType> types;
  for (Value result : op->getResults()) {
    auto type = packedType(op, result, layout, lead);
    if (failed(type))
      return failure();
    types.push_back(*type);
  }
  Operation *copy = b.clone(*op, mapping);
  copy->setOperands(newOperands);
  for (auto [result, newResult, type] :
       llvm::zip(op->getResults(), copy->getResults(), types)) {
    newResult.setType(type);
    setPacked(result, newResult, layout, lead);
  }
  return copy;
}

/// Row-wise ops: norms, linear layers (int4 MatMulNBits included) and MLPs
/// act on the last axis, unary elementwise ops on every element.
bool isRowWise(Operation *op) {
  return isa<RMSNormOp, LayerNormOp, LinearOp, MatMulNBitsOp, GatedMLPOp,
             SiLUOp, GeluOp, GeluTanhOp, ReluOp, CastOp, IdentityOp, NegOp,
             ExpOp, LogOp, SqrtOp, ReciprocalOp, AbsOp, SigmoidOp, TanhOp,
             ErfOp, SoftplusOp, SoftsignOp, EluOp, SeluOp, LeakyReluOp,
             HardSigmoidOp, HardSwishOp, CeluOp, MishOp, ClipOp>(op);
}

bool isElementwiseBinary(Operation *op) {
  return isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp>(op);
}

LogicalResult EntryBuilder::visitPositional(Operation *op, Value positions) {
  if (facts.readsTokens.contains(positions) ||
      !facts.positional.contains(positions))
    return fail(op) << "expected positions computed from a range or a "
                       "position ids argument, got a value "
                    << (facts.readsTokens.contains(positions)
                            ? "computed from the token ids"
                            : "of unknown origin");
  IRMapping mapping;
  mapping.map(positions, positionsArg);
  for (Value operand : op->getOperands())
    if (operand != positions) {
      FailureOr<Value> copy = invariant(op, operand);
      if (failed(copy))
        return failure();
      mapping.map(operand, *copy);
    }
  int64_t lead = getRank(positions);
  SmallVector<RankedTensorType> types;
  for (Value result : op->getResults()) {
    auto type = packedType(op, result, Layout::Token, lead);
    if (failed(type))
      return failure();
    types.push_back(*type);
  }
  Operation *copy = b.clone(*op, mapping);
  for (auto [result, newResult, type] :
       llvm::zip(op->getResults(), copy->getResults(), types)) {
    newResult.setType(type);
    setPacked(result, newResult, Layout::Token, lead);
  }
  return success();
}

LogicalResult EntryBuilder::visitReshape(ReshapeOp op, const Packed &in) {
  if (in.layout != Layout::Token)
    return fail(op) << "expected a reshape of token-major rows, not of "
                       "[B, heads, S, head_dim] attention heads";
  auto inType = dyn_cast<RankedTensorType>(op.getData().getType());
  auto outType = dyn_cast<RankedTensorType>(op.getType());
  if (!inType || !outType)
    return fail(op) << "expected ranked types";
  int64_t rowSize = 1;
  for (int64_t d = in.lead; d < inType.getRank(); ++d)
    rowSize *= inType.getDimSize(d);
  // The reshape keeps token rows when its trailing static dimensions hold
  // exactly one row (row-major order is preserved). Prefer the input's lead.
  auto rowsFrom = [&](int64_t k) {
    if (k < 1 || k > outType.getRank())
      return false;
    int64_t size = 1;
    for (int64_t d = k; d < outType.getRank(); ++d) {
      if (outType.isDynamicDim(d))
        return false;
      size *= outType.getDimSize(d);
    }
    return size == rowSize;
  };
  int64_t lead = 0;
  if (rowsFrom(in.lead))
    lead = in.lead;
  for (int64_t k = outType.getRank(); k >= 1 && !lead; --k)
    if (rowsFrom(k))
      lead = k;
  if (!lead)
    return fail(op) << "expected a reshape that keeps token rows of " << rowSize
                    << " elements, got " << inType << " to " << outType;
  auto type = packedType(op, op.getResult(), Layout::Token, lead);
  if (failed(type))
    return failure();
  Value result = in.value;
  if (*type != in.value.getType()) {
    SmallVector<int64_t> shape{-1};
    shape.append(type->getShape().begin() + 1, type->getShape().end());
    Value target = vectorConstant(op.getLoc(), shape);
    result = ReshapeOp::create(b, op.getLoc(), *type, in.value, target,
                               b.getI64IntegerAttr(0));
  }
  setPacked(op.getResult(), result, Layout::Token, lead);
  return success();
}

LogicalResult EntryBuilder::visitAttention(AttentionOp op) {
  const Packed *q = lookup(op.getQuery());
  if (!q || q->layout != Layout::Head)
    return fail(op) << "expected the query to be [B, heads, S, head_dim] "
                       "heads of this step's tokens";
  Value kv[2], operands[2] = {op.getKey(), op.getValue()};
  for (int i = 0; i < 2; ++i) {
    const Packed *p = lookup(operands[i]);
    if (!p || p->layout == Layout::Token)
      return fail(op) << "expected the " << (i ? "value" : "key")
                      << " to be [B, kv_heads, S, head_dim] heads of this "
                         "step's tokens (or their concatenation to a past)";
    kv[i] = p->value;
  }
  if (Value mask = op.getMask()) {
    if (lookup(mask) || facts.readsTokens.contains(mask))
      return fail(op) << "expected a causal attention mask, got one computed "
                         "from the token ids (a padding mask?)";
  } else if (!op.getCausal()) {
    return fail(op) << "expected causal attention (a mask or causal = true)";
  }
  if (layer >= (int64_t)facts.attentions.size() ||
      facts.attentions[layer] != op)
    return fail(op) << "expected the attentions of the analysis in order";
  Location loc = op.getLoc();
  cache = KVCacheWriteOp::create(b, loc, cache.getType(), cache, kv[0], kv[1],
                                 slotsArg, b.getI64IntegerAttr(layer));
  auto type = packedType(op, op.getResult(), Layout::Head, 0);
  if (failed(type))
    return failure();
  auto paged = PagedAttentionOp::create(
      b, loc, *type, q->value, cache, tablesArg, contextArg, startsArg,
      b.getI64IntegerAttr(layer), op.getScaleAttr(), op.getNumHeadsAttr(),
      op.getKvHeadsAttr(), op.getSlidingWindowAttr(), op.getSoftcapAttr());
  setPacked(op.getResult(), paged.getResult(), Layout::Head, 0);
  ++layer;
  return success();
}

LogicalResult EntryBuilder::visit(Operation *op) {
  // Shapes of token values are read by the mask and reshape arithmetic,
  // which is not re-created.
  if (isa<ShapeOp, SizeOp, IsNaNOp>(op))
    return success();
  if (auto table = dyn_cast<RotaryTableOp>(op)) {
    if (lookup(table.getPositions()))
      return fail(op) << "expected positions, got token values";
    return visitPositional(op, table.getPositions());
  }
  // A position embedding (GPT-2): an embedding of non-token ids.
  if (auto emb = dyn_cast<EmbeddingOp>(op); emb && !lookup(emb.getIds()))
    return visitPositional(op, emb.getIds());

  bool anyMapped = llvm::any_of(op->getOperands(),
                                [&](Value v) { return lookup(v) != nullptr; });
  if (!anyMapped)
    return success(); // mask building, shape arithmetic, invariants

  if (auto attn = dyn_cast<AttentionOp>(op))
    return visitAttention(attn);

  if (auto emb = dyn_cast<EmbeddingOp>(op)) {
    const Packed *ids = lookup(emb.getIds());
    if (ids->layout != Layout::Token || getRank(emb.getIds()) != ids->lead)
      return fail(op) << "expected token ids as the embedding's ids";
    return cloneMapped(op, Layout::Token, ids->lead);
  }

  if (isRowWise(op)) {
    const Packed *in = lookup(op->getOperand(0));
    if (!in)
      return fail(op) << "expected the first operand to be a per-token value";
    for (Value operand : op->getOperands().drop_front())
      if (lookup(operand))
        return fail(op) << "expected weights or constants besides the input";
    if (getRank(op->getResult(0)) != getRank(op->getOperand(0)))
      return fail(op) << "expected the result rank to be the input's";
    return cloneMapped(op, in->layout, in->lead);
  }

  if (isElementwiseBinary(op)) {
    Value lhs = op->getOperand(0), rhs = op->getOperand(1);
    const Packed *a = lookup(lhs), *c = lookup(rhs);
    if (a && c) {
      if (a->layout != c->layout || a->layout == Layout::PastKV ||
          a->lead != c->lead || getRank(lhs) != getRank(rhs))
        return fail(op) << "expected both operands in one token layout";
      return cloneMapped(op, a->layout, a->lead);
    }
    const Packed *p = a ? a : c;
    Value mapped = a ? lhs : rhs, other = a ? rhs : lhs;
    int64_t rowRank = p->layout == Layout::Head ? 1 : getRank(mapped) - p->lead;
    if (p->layout == Layout::PastKV || getRank(other) < 0 ||
        getRank(other) > rowRank)
      return fail(op) << "expected the other operand to broadcast over the "
                      << rowRank << " trailing dimensions only, got "
                      << other.getType();
    return cloneMapped(op, p->layout, p->lead);
  }

  if (auto reshape = dyn_cast<ReshapeOp>(op)) {
    const Packed *in = lookup(reshape.getData());
    if (!in)
      return fail(op) << "expected a reshape of token values";
    return visitReshape(reshape, *in);
  }

  if (auto transpose = dyn_cast<TransposeOp>(op)) {
    const Packed *in = lookup(transpose.getInput());
    if (transpose.getPerm() != ArrayRef<int64_t>{0, 2, 1, 3} ||
        in->layout == Layout::PastKV ||
        (in->layout == Layout::Token && in->lead != 2))
      return fail(op) << "expected the [0, 2, 1, 3] transpose between "
                         "[B, S, heads, head_dim] and [B, heads, S, head_dim]";
    if (in->layout == Layout::Token) {
      // [B, S, H, D] -> [B, H, S, D]: the packed [T, H, D] is both.
      if (failed(packedType(op, transpose.getResult(), Layout::Head, 0)))
        return failure();
      setPacked(transpose.getResult(), in->value, Layout::Head, 0);
    } else {
      setPacked(transpose.getResult(), in->value, Layout::Token, 2);
    }
    return success();
  }

  // The NaN guard of fully masked rows, where(isnan(x), 0, x): paged
  // attention has none (each token sees itself).
  if (auto where = dyn_cast<WhereOp>(op)) {
    auto isnan = defOp<IsNaNOp>(where.getCondition());
    const Packed *y = lookup(where.getY());
    if (isnan && y && isnan.getInput() == where.getY() &&
        isScalarConstant(where.getX(), 0.0) && !lookup(where.getX())) {
      map[where.getResult()] = *y;
      return success();
    }
    return fail(op) << "expected only the where(isnan(x), 0, x) guard of "
                       "attention outputs";
  }

  if (auto concat = dyn_cast<ConcatOp>(op)) {
    // concat(past, new) of with-past exports: the cache holds the past.
    auto inputs = concat.getInputs();
    const Packed *last = lookup(inputs.back());
    if (inputs.size() == 2 && isa<BlockArgument>(inputs[0]) && last &&
        last->layout == Layout::Head && !lookup(inputs[0]) &&
        normalizeAxis(concat.getAxis(), 4) == std::optional<int64_t>(2)) {
      map[concat.getResult()] = Packed{last->value, Layout::PastKV, 0};
      return success();
    }
    // Concatenation along a non-token axis of values in one layout.
    const Packed *first = lookup(inputs[0]);
    std::optional<int64_t> axis;
    if (first)
      axis = packedAxis(*first, getRank(concat.getResult()), concat.getAxis());
    bool ok = first && axis;
    for (Value input : inputs) {
      const Packed *p = lookup(input);
      ok = ok && p && p->layout == first->layout && p->lead == first->lead &&
           getRank(input) == getRank(inputs[0]);
    }
    if (!ok)
      return fail(op) << "expected a concatenation of a past argument and "
                         "this step's heads along the sequence, or of "
                         "per-token values along a non-token axis";
    auto copy = cloneMapped(op, first->layout, first->lead);
    if (failed(copy))
      return failure();
    (*copy)->setAttr("axis", b.getI64IntegerAttr(*axis));
    return success();
  }

  // The expand of keys/values to another tensor's batch and length that the
  // attention raising adds when it cannot prove them equal.
  if (auto expand = dyn_cast<ExpandOp>(op)) {
    const Packed *in = lookup(expand.getInput());
    bool toAttention = llvm::all_of(expand->getUsers(), [](Operation *user) {
      return isa<AttentionOp>(user);
    });
    if (in && in->layout != Layout::Token && toAttention &&
        getStaticDim(expand.getResult(), 1) ==
            getStaticDim(expand.getInput(), 1) &&
        getStaticDim(expand.getResult(), 3) ==
            getStaticDim(expand.getInput(), 3)) {
      map[expand.getResult()] = *in;
      return success();
    }
    return fail(op) << "expected only the expand of attention keys or "
                       "values to their batch and length";
  }

  if (auto split = dyn_cast<SplitOp>(op)) {
    const Packed *in = lookup(split.getInput());
    auto axis = in ? packedAxis(*in, getRank(split.getInput()), split.getAxis())
                   : std::nullopt;
    if (!axis || (split.getSplit() && lookup(split.getSplit())))
      return fail(op) << "expected a split along a non-token axis";
    auto copy = cloneMapped(op, in->layout, in->lead);
    if (failed(copy))
      return failure();
    (*copy)->setAttr("axis", b.getI64IntegerAttr(*axis));
    return success();
  }

  if (auto slice = dyn_cast<SliceOp>(op)) {
    const Packed *in = lookup(slice.getData());
    int64_t rank = getRank(slice.getData());
    auto axes =
        slice.getAxes() ? getConstantInts(slice.getAxes()) : std::nullopt;
    SmallVector<int64_t> newAxes;
    bool ok = in && axes && !lookup(slice.getStarts()) &&
              !lookup(slice.getEnds()) &&
              !(slice.getSteps() && lookup(slice.getSteps()));
    for (int64_t a : ok ? *axes : SmallVector<int64_t>()) {
      auto axis = packedAxis(*in, rank, a);
      ok = ok && axis;
      if (axis)
        newAxes.push_back(*axis);
    }
    if (!ok)
      return fail(op) << "expected a slice along non-token axes given as "
                         "constants";
    Value axesValue = vectorConstant(op->getLoc(), newAxes);
    int64_t axesIndex = slice.getAxesMutable()[0].getOperandNumber();
    return cloneMapped(op, in->layout, in->lead, {axesIndex, axesValue});
  }

  // A softmax over a non-token axis (models that return probabilities).
  if (isa<SoftmaxOp, LogSoftmaxOp>(op)) {
    const Packed *in = lookup(op->getOperand(0));
    int64_t original = isa<SoftmaxOp>(op) ? cast<SoftmaxOp>(op).getAxis()
                                          : cast<LogSoftmaxOp>(op).getAxis();
    auto axis = packedAxis(*in, getRank(op->getOperand(0)), original);
    if (!axis)
      return fail(op) << "expected a softmax along a non-token axis";
    auto copy = cloneMapped(op, in->layout, in->lead);
    if (failed(copy))
      return failure();
    (*copy)->setAttr("axis", b.getI64IntegerAttr(*axis));
    return success();
  }

  if (isa<RopeOp>(op)) {
    auto rope = cast<RopeOp>(op);
    const Packed *x = lookup(rope.getInput());
    const Packed *c = lookup(rope.getCos()), *s = lookup(rope.getSin());
    if (!x || x->layout != Layout::Head || !c || !s ||
        c->layout != Layout::Token || s->layout != Layout::Token ||
        getRank(rope.getCos()) - c->lead != 1 ||
        getRank(rope.getSin()) - s->lead != 1)
      return fail(op) << "expected [B, heads, S, head_dim] heads rotated by "
                         "per-token cos/sin tables";
    return cloneMapped(op, Layout::Head, 0);
  }

  return fail(op) << "expected per-token ops (norms, linear layers, MLPs, "
                     "activations, elementwise arithmetic, casts), head "
                     "reshapes and transposes, rotary embeddings or attention "
                     "on the path from the token ids to the logits";
}

Value EntryBuilder::gatherLastTokens(Value logits) {
  // Every packed op is row-wise except attention and rope, which read other
  // token rows or tables: the chain of single-token-operand ops ending in
  // the logits (final norm, LM head, casts, softcap) runs on the last
  // tokens only.
  Operation *chainOp = nullptr;
  Value at = logits;
  for (Value cur = logits;;) {
    Operation *def = cur.getDefiningOp();
    if (!def || def->getNumResults() != 1 ||
        isa<PagedAttentionOp, KVCacheWriteOp, RopeOp, RotaryTableOp,
            GatherLastTokensOp>(def))
      break;
    Value next;
    int count = 0;
    for (Value operand : def->getOperands())
      if (tokenValues.contains(operand)) {
        next = operand;
        ++count;
      }
    if (count != 1 || llvm::count(def->getOperands(), next) != 1)
      break;
    chainOp = def;
    at = next;
    if (!next.hasOneUse())
      break;
    cur = next;
  }
  Location loc = logits.getLoc();
  if (!chainOp)
    return GatherLastTokensOp::create(b, loc, logits.getType(), logits,
                                      startsArg);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(chainOp);
  Value gathered =
      GatherLastTokensOp::create(b, loc, at.getType(), at, startsArg);
  chainOp->replaceUsesOfWith(at, gathered);
  return logits;
}

FailureOr<func::FuncOp> EntryBuilder::build(OpBuilder &moduleBuilder,
                                            StringRef name, bool gatherLast) {
  MLIRContext *ctx = b.getContext();
  Location loc = facts.func.getLoc();
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  int64_t dyn = ShapedType::kDynamic;
  auto vec = [&](Type elem) { return RankedTensorType::get({dyn}, elem); };
  Type tokenElem = getElementTypeOrSelf(facts.tokens.getType());
  auto cacheType =
      RankedTensorType::get({(int64_t)facts.attentions.size(), dyn, 2,
                             facts.kvHeads, blockSize, facts.headDim},
                            facts.kvElementType);
  auto logitsType = dyn_cast<RankedTensorType>(facts.logits.getType());
  if (!logitsType || logitsType.getRank() < 2 ||
      logitsType.isDynamicDim(logitsType.getRank() - 1))
    return emitError(facts.func.getLoc())
           << "expected logits [..., vocab] with a static vocabulary, got "
           << facts.logits.getType();
  auto packedLogits = RankedTensorType::get(
      {dyn, logitsType.getDimSize(logitsType.getRank() - 1)},
      logitsType.getElementType());
  SmallVector<Type> inputs = {
      vec(tokenElem), vec(i64),
      vec(i32),       RankedTensorType::get({dyn, dyn}, i32),
      vec(i32),       vec(i64),
      cacheType};
  auto func = func::FuncOp::create(
      moduleBuilder, loc, name,
      FunctionType::get(ctx, inputs, {packedLogits, cacheType}));
  const char *argNames[] = {"tokens",       "positions",    "query_start_loc",
                            "block_tables", "context_lens", "slot_mapping",
                            "kv_cache"};
  for (auto [i, argName] : llvm::enumerate(argNames))
    func.setArgAttr(i, "llm.name", b.getStringAttr(argName));
  func.setResultAttr(0, "llm.name", b.getStringAttr("logits"));
  func.setResultAttr(1, "llm.name", b.getStringAttr("kv_cache"));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  tokensArg = body->getArgument(0);
  positionsArg = body->getArgument(1);
  startsArg = body->getArgument(2);
  tablesArg = body->getArgument(3);
  contextArg = body->getArgument(4);
  slotsArg = body->getArgument(5);
  cache = body->getArgument(6);

  setPacked(facts.tokens, tokensArg, Layout::Token, getRank(facts.tokens));
  for (Operation &op : facts.func.getBody().front().without_terminator()) {
    if (!facts.slice.contains(&op))
      continue;
    if (failed(visit(&op))) {
      func.erase();
      return failure();
    }
  }
  const Packed *logits = lookup(facts.logits);
  if (!logits || logits->layout != Layout::Token ||
      getRank(facts.logits) - logits->lead != 1) {
    func.erase();
    return emitError(facts.func.getLoc())
           << "expected the logits to be per-token rows [..., vocab]";
  }
  if (layer != (int64_t)facts.attentions.size()) {
    func.erase();
    return emitError(facts.func.getLoc())
           << "expected every attention to be laid out";
  }
  Value result = logits->value;
  if (result.getType() != packedLogits) {
    func.erase();
    return emitError(facts.func.getLoc())
           << "expected packed logits " << packedLogits << ", got "
           << result.getType();
  }
  if (gatherLast)
    result = gatherLastTokens(result);
  func::ReturnOp::create(b, loc, ValueRange{result, cache});
  return func;
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct LLMKVCacheLayoutPass
    : public kiln::llm::impl::LLMKVCacheLayoutBase<LLMKVCacheLayoutPass> {
  using LLMKVCacheLayoutBase::LLMKVCacheLayoutBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (blockSize <= 0) {
      emitError(module.getLoc())
          << "block-size must be positive, got " << blockSize;
      return signalPassFailure();
    }
    for (StringRef name : {"prefill", "decode"})
      if (Operation *existing = module.lookupSymbol(name)) {
        emitError(existing->getLoc())
            << "a @" << name
            << " already exists: the module is laid out "
               "for the paged KV cache already";
        return signalPassFailure();
      }
    func::FuncOp source = module.lookupSymbol<func::FuncOp>("main");
    if (!source) {
      SmallVector<func::FuncOp> defined;
      for (auto f : module.getOps<func::FuncOp>())
        if (!f.isExternal())
          defined.push_back(f);
      if (defined.size() != 1) {
        emitError(module.getLoc())
            << "expected a @main model function (or a single "
               "function) to lay out";
        return signalPassFailure();
      }
      source = defined.front();
    }
    ModelFacts facts;
    if (failed(analyzeModel(source, facts)))
      return signalPassFailure();
    OpBuilder moduleBuilder(source);
    auto prefill = EntryBuilder(facts, blockSize)
                       .build(moduleBuilder, "prefill", !allLogits);
    if (failed(prefill))
      return signalPassFailure();
    (*prefill)->setAttr(
        "llm.logits",
        StringAttr::get(&getContext(), allLogits ? "all" : "last"));
    auto decode =
        EntryBuilder(facts, blockSize).build(moduleBuilder, "decode", false);
    if (failed(decode))
      return signalPassFailure();
    (*decode)->setAttr("llm.logits", StringAttr::get(&getContext(), "all"));
    source.erase();
  }
};

} // namespace
