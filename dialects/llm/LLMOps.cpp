//===- LLMOps.cpp - Verifiers of llm ops ----------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace kiln::llm;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// The shape of a ranked tensor type, or nullopt for unranked/non-tensors.
static std::optional<ArrayRef<int64_t>> rankedShape(Type type) {
  if (auto ranked = dyn_cast<RankedTensorType>(type))
    return ranked.getShape();
  return std::nullopt;
}

/// Fails when `type` is ranked with a rank other than `rank`.
static LogicalResult expectRank(Operation *op, StringRef what, Type type,
                                int64_t rank) {
  auto shape = rankedShape(type);
  if (shape && (int64_t)shape->size() != rank)
    return op->emitOpError() << what << " must have rank " << rank
                             << ", got " << type;
  return success();
}

/// Fails when two static dimensions that must agree differ.
static LogicalResult expectSameDim(Operation *op, StringRef what, int64_t a,
                                   int64_t b) {
  if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
    return op->emitOpError() << what << " mismatch: " << a << " vs " << b;
  return success();
}

/// The (K, N) of a weight, whatever its representation; dynamic when unknown.
static std::pair<int64_t, int64_t> weightKN(Type type, bool transposed) {
  if (auto q = dyn_cast<QuantizedWeightType>(type))
    return {q.getK(), q.getN()};
  if (auto s = dyn_cast<SparseWeightType>(type))
    return {s.getK(), s.getN()};
  auto shape = rankedShape(type);
  if (!shape || shape->size() != 2)
    return {ShapedType::kDynamic, ShapedType::kDynamic};
  if (transposed)
    return {(*shape)[1], (*shape)[0]};
  return {(*shape)[0], (*shape)[1]};
}

static LogicalResult verifyWeightOperand(Operation *op, StringRef what,
                                         Type type, int64_t inputK,
                                         bool transposed) {
  if (auto shape = rankedShape(type); shape && shape->size() != 2)
    return op->emitOpError() << what << " must be a matrix, got " << type;
  auto [k, n] = weightKN(type, transposed);
  (void)n;
  return expectSameDim(op, (what + " input features").str(), inputK, k);
}

static int64_t lastDim(Type type) {
  auto shape = rankedShape(type);
  if (!shape || shape->empty())
    return ShapedType::kDynamic;
  return shape->back();
}

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (!isa<ExternalDataAttr, InitializerAttr>(getSource()))
    return emitOpError() << "source must be #llm.external_data or "
                            "#llm.initializer, got "
                         << getSource();
  if (auto external = dyn_cast<ExternalDataAttr>(getSource())) {
    if (external.getOffset() < 0 || external.getLength() < 0)
      return emitOpError() << "external data range must be non-negative";
    auto tensor = dyn_cast<RankedTensorType>(getType());
    if (tensor && tensor.hasStaticShape() &&
        tensor.getElementType().isIntOrFloat()) {
      int64_t bits = tensor.getElementTypeBitWidth();
      int64_t bytes = (tensor.getNumElements() * bits + 7) / 8;
      if (bytes != external.getLength())
        return emitOpError() << "external data holds " << external.getLength()
                             << " bytes but " << tensor << " needs " << bytes;
    }
    int64_t packed = -1;
    if (auto q = dyn_cast<QuantizedWeightType>(getType()))
      packed = getQuantizedLayout(q).total;
    else if (auto sp = dyn_cast<SparseWeightType>(getType()))
      packed = getSparseLayout(sp).total;
    if (packed >= 0 && packed != external.getLength())
      return emitOpError() << "external data holds " << external.getLength()
                           << " bytes but the packed " << getType() << " needs "
                           << packed;
  }
  return success();
}

LogicalResult ConstantOp::verify() {
  if (getValue().getType() != getType())
    return emitOpError() << "value type " << getValue().getType()
                         << " differs from result type " << getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(expectRank(*this, "table", getTable().getType(), 2)))
    return failure();
  if (!isa<IntegerType>(getElementTypeOrSelf(getIds().getType())))
    return emitOpError() << "ids must be integers, got " << getIds().getType();
  return expectSameDim(*this, "hidden size", lastDim(getTable().getType()),
                       lastDim(getType()));
}

LogicalResult RMSNormOp::verify() {
  if (failed(expectRank(*this, "weight", getWeight().getType(), 1)))
    return failure();
  if (getEpsilon().convertToFloat() < 0)
    return emitOpError() << "epsilon must be non-negative";
  return expectSameDim(*this, "normalized size", lastDim(getInput().getType()),
                       lastDim(getWeight().getType()));
}

LogicalResult LayerNormOp::verify() {
  if (failed(expectRank(*this, "weight", getWeight().getType(), 1)))
    return failure();
  if (getBias() &&
      failed(expectSameDim(*this, "bias size", lastDim(getBias().getType()),
                           lastDim(getWeight().getType()))))
    return failure();
  return expectSameDim(*this, "normalized size", lastDim(getInput().getType()),
                       lastDim(getWeight().getType()));
}

LogicalResult RotaryTableOp::verify() {
  if (getInvFreq().empty())
    return emitOpError() << "inv_freq must not be empty";
  int64_t rotaryDim = 2 * (int64_t)getInvFreq().size();
  if (failed(expectSameDim(*this, "cos table width", lastDim(getCos().getType()),
                           rotaryDim)) ||
      failed(expectSameDim(*this, "sin table width", lastDim(getSin().getType()),
                           rotaryDim)))
    return failure();
  return success();
}

LogicalResult RopeOp::verify() {
  // [B, H, S, D], or [T, H, D] in the packed form of the paged entry points.
  if (auto shape = rankedShape(getInput().getType());
      shape && shape->size() != 4 && shape->size() != 3)
    return emitOpError() << "input must have rank 4 ([B, H, S, D]) or 3 "
                            "([T, H, D]), got "
                         << getInput().getType();
  int64_t rot = getRotaryDim();
  if (rot <= 0 || rot % 2 != 0)
    return emitOpError() << "rotary_dim must be positive and even, got " << rot;
  int64_t headDim = lastDim(getInput().getType());
  if (!ShapedType::isDynamic(headDim) && rot > headDim)
    return emitOpError() << "rotary_dim " << rot << " exceeds head size "
                         << headDim;
  return expectSameDim(*this, "cos table width", lastDim(getCos().getType()),
                       rot);
}

LogicalResult LinearOp::verify() {
  if (failed(verifyWeightOperand(*this, "weight", getWeight().getType(),
                                 lastDim(getInput().getType()),
                                 getTransposeWeight())))
    return failure();
  auto [k, n] = weightKN(getWeight().getType(), getTransposeWeight());
  (void)k;
  if (getBias() &&
      failed(expectSameDim(*this, "bias size", lastDim(getBias().getType()), n)))
    return failure();
  return expectSameDim(*this, "output features", lastDim(getType()), n);
}

LogicalResult AttentionOp::verify() {
  for (auto [what, value] : {std::pair<StringRef, Value>{"query", getQuery()},
                             {"key", getKey()},
                             {"value", getValue()}})
    if (failed(expectRank(*this, what, value.getType(), 4)))
      return failure();
  int64_t heads = getNumHeads(), kvHeads = getKvHeads();
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
    return emitOpError() << "num_heads (" << heads
                         << ") must be a positive multiple of kv_heads ("
                         << kvHeads << ")";
  auto dimOf = [](Value v, unsigned i) {
    auto shape = rankedShape(v.getType());
    return shape ? (*shape)[i] : ShapedType::kDynamic;
  };
  if (failed(expectSameDim(*this, "query heads", dimOf(getQuery(), 1), heads)) ||
      failed(expectSameDim(*this, "key heads", dimOf(getKey(), 1), kvHeads)) ||
      failed(expectSameDim(*this, "value heads", dimOf(getValue(), 1), kvHeads)) ||
      failed(expectSameDim(*this, "query/key head size", dimOf(getQuery(), 3),
                           dimOf(getKey(), 3))) ||
      failed(expectSameDim(*this, "key/value length", dimOf(getKey(), 2),
                           dimOf(getValue(), 2))))
    return failure();
  if (auto window = getSlidingWindow(); window && *window <= 0)
    return emitOpError() << "sliding_window must be positive";
  if (auto cap = getSoftcap(); cap && cap->convertToFloat() <= 0)
    return emitOpError() << "softcap must be positive";
  return success();
}

LogicalResult GatedMLPOp::verify() {
  StringRef act = getActivation();
  if (act != "silu" && act != "gelu" && act != "gelu_tanh")
    return emitOpError() << "activation must be silu, gelu or gelu_tanh, got '"
                         << act << "'";
  bool t = getTransposeWeights();
  int64_t hidden = lastDim(getInput().getType());
  if (failed(verifyWeightOperand(*this, "gate weight",
                                 getGateWeight().getType(), hidden, t)) ||
      failed(verifyWeightOperand(*this, "up weight", getUpWeight().getType(),
                                 hidden, t)))
    return failure();
  int64_t inter = weightKN(getGateWeight().getType(), t).second;
  if (failed(expectSameDim(*this, "gate/up features", inter,
                           weightKN(getUpWeight().getType(), t).second)) ||
      failed(verifyWeightOperand(*this, "down weight",
                                 getDownWeight().getType(), inter, t)))
    return failure();
  return expectSameDim(*this, "output features", lastDim(getType()),
                       weightKN(getDownWeight().getType(), t).second);
}

//===----------------------------------------------------------------------===//
// Generic ops
//===----------------------------------------------------------------------===//

/// Elementwise binary ops broadcast as numpy does: aligned from the right,
/// static dimensions must be equal or 1.
static LogicalResult verifyBroadcastable(Operation *op) {
  auto lhs = rankedShape(op->getOperand(0).getType());
  auto rhs = rankedShape(op->getOperand(1).getType());
  if (!lhs || !rhs)
    return success();
  for (size_t i = 0; i < std::min(lhs->size(), rhs->size()); ++i) {
    int64_t a = (*lhs)[lhs->size() - 1 - i], b = (*rhs)[rhs->size() - 1 - i];
    if (ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b ||
        a == 1 || b == 1)
      continue;
    return op->emitOpError() << "operands are not broadcastable: "
                             << op->getOperand(0).getType() << " and "
                             << op->getOperand(1).getType();
  }
  return success();
}

/// Arithmetic and logic ops take one element type; comparisons yield i1.
static LogicalResult verifyBinary(Operation *op, bool sameElementType,
                                  bool comparison) {
  if (failed(verifyBroadcastable(op)))
    return failure();
  Type lhs = getElementTypeOrSelf(op->getOperand(0).getType());
  Type rhs = getElementTypeOrSelf(op->getOperand(1).getType());
  if (sameElementType && lhs != rhs)
    return op->emitOpError() << "operand element types differ: " << lhs
                             << " vs " << rhs;
  Type result = getElementTypeOrSelf(op->getResult(0).getType());
  if (comparison && !result.isInteger(1))
    return op->emitOpError() << "comparison must yield i1, got " << result;
  return success();
}

#define KILN_ARITH_BINARY(Op)                                                  \
  LogicalResult Op::verify() { return verifyBinary(*this, true, false); }
#define KILN_COMPARE_BINARY(Op)                                                \
  LogicalResult Op::verify() { return verifyBinary(*this, true, true); }
KILN_ARITH_BINARY(AddOp)
KILN_ARITH_BINARY(SubOp)
KILN_ARITH_BINARY(MulOp)
KILN_ARITH_BINARY(DivOp)
KILN_ARITH_BINARY(MaxOp)
KILN_ARITH_BINARY(MinOp)
KILN_ARITH_BINARY(ModOp)
KILN_ARITH_BINARY(AndOp)
KILN_ARITH_BINARY(OrOp)
KILN_ARITH_BINARY(XorOp)
KILN_ARITH_BINARY(PReluOp)
KILN_ARITH_BINARY(BitwiseAndOp)
KILN_ARITH_BINARY(BitwiseOrOp)
KILN_ARITH_BINARY(BitwiseXorOp)
KILN_COMPARE_BINARY(EqualOp)
KILN_COMPARE_BINARY(LessOp)
KILN_COMPARE_BINARY(LessOrEqualOp)
KILN_COMPARE_BINARY(GreaterOp)
KILN_COMPARE_BINARY(GreaterOrEqualOp)
#undef KILN_ARITH_BINARY
#undef KILN_COMPARE_BINARY

// Pow is the one binary op whose exponent may have another element type.
LogicalResult PowOp::verify() { return verifyBinary(*this, false, false); }

LogicalResult MatMulOp::verify() {
  auto lhs = rankedShape(getLhs().getType());
  auto rhs = rankedShape(getRhs().getType());
  if (!lhs || !rhs)
    return success();
  if (lhs->empty() || rhs->empty())
    return emitOpError() << "operands must have rank >= 1";
  int64_t k1 = lhs->back();
  int64_t k2 = rhs->size() == 1 ? (*rhs)[0] : (*rhs)[rhs->size() - 2];
  return expectSameDim(*this, "contraction dimension", k1, k2);
}

LogicalResult MatMulNBitsOp::verify() {
  int64_t bits = getBits(), block = getBlockSize();
  if (bits != 2 && bits != 4 && bits != 8)
    return emitOpError() << "bits must be 2, 4 or 8, got " << bits;
  if (block < 16 || (block & (block - 1)) != 0)
    return emitOpError() << "block_size must be a power of two >= 16, got "
                         << block;
  if (getK() <= 0 || getN() <= 0)
    return emitOpError() << "K and N must be positive";
  return expectSameDim(*this, "input features", lastDim(getA().getType()),
                       getK());
}

LogicalResult TransposeOp::verify() {
  ArrayRef<int64_t> perm = getPerm();
  SmallVector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= (int64_t)perm.size() || seen[p])
      return emitOpError() << "perm must be a permutation of 0.."
                           << perm.size() - 1;
    seen[p] = true;
  }
  return expectRank(*this, "input", getInput().getType(), perm.size());
}

static LogicalResult expectIntegerElements(Operation *op, StringRef what,
                                           Type type) {
  if (!isa<IntegerType>(getElementTypeOrSelf(type)))
    return op->emitOpError() << what << " must have integer elements, got "
                             << type;
  return success();
}

static LogicalResult verifyReduction(Operation *op, StringRef reduction) {
  if (reduction != "none" && reduction != "add" && reduction != "mul" &&
      reduction != "max" && reduction != "min")
    return op->emitOpError() << "reduction must be none, add, mul, max or min, "
                                "got '"
                             << reduction << "'";
  return success();
}

LogicalResult ScatterNDOp::verify() {
  if (failed(verifyReduction(*this, getReduction())) ||
      failed(expectIntegerElements(*this, "indices", getIndices().getType())))
    return failure();
  auto data = rankedShape(getData().getType());
  auto indices = rankedShape(getIndices().getType());
  auto updates = rankedShape(getUpdates().getType());
  if (indices && indices->empty())
    return emitOpError() << "indices must have rank >= 1";
  if (data && indices && updates && !ShapedType::isDynamic(indices->back())) {
    int64_t k = indices->back(), r = data->size(), q = indices->size();
    if (k > r)
      return emitOpError() << "index tuples of length " << k
                           << " exceed the data rank " << r;
    if ((int64_t)updates->size() != q - 1 + r - k)
      return emitOpError() << "updates must have rank " << q - 1 + r - k
                           << ", got " << getUpdates().getType();
  }
  return success();
}

LogicalResult ScatterElementsOp::verify() {
  if (failed(verifyReduction(*this, getReduction())) ||
      failed(expectIntegerElements(*this, "indices", getIndices().getType())))
    return failure();
  if (auto data = rankedShape(getData().getType())) {
    if (failed(expectRank(*this, "indices", getIndices().getType(), data->size())) ||
        failed(expectRank(*this, "updates", getUpdates().getType(), data->size())))
      return failure();
    int64_t axis = getAxis(), r = data->size();
    if (axis < -r || axis >= r)
      return emitOpError() << "axis " << axis << " is out of range for rank "
                           << r;
  }
  auto indices = rankedShape(getIndices().getType());
  auto updates = rankedShape(getUpdates().getType());
  if (indices && updates && indices->size() == updates->size())
    for (size_t d = 0; d < indices->size(); ++d)
      if (failed(expectSameDim(*this, "indices/updates dimension",
                               (*indices)[d], (*updates)[d])))
        return failure();
  return success();
}

LogicalResult PadOp::verify() {
  StringRef mode = getMode();
  if (mode != "constant" && mode != "reflect" && mode != "edge" &&
      mode != "wrap")
    return emitOpError() << "mode must be constant, reflect, edge or wrap, "
                            "got '"
                         << mode << "'";
  return expectIntegerElements(*this, "pads", getPads().getType());
}

bool kiln::llm::isRaisedOp(Operation *op) {
  return isa<WeightOp, ConstantOp, EmbeddingOp, RMSNormOp, LayerNormOp,
             RotaryTableOp, RopeOp, LinearOp, AttentionOp, GatedMLPOp, SiLUOp,
             GeluOp, GeluTanhOp, ReluOp, KVCacheWriteOp, PagedAttentionOp,
             GatherLastTokensOp>(op);
}

#define GET_OP_CLASSES
#include "kiln/Dialect/LLM/IR/LLMOps.cpp.inc"
