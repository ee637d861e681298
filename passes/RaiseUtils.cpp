//===- RaiseUtils.cpp - Matching helpers of the raising passes -----------===//

#include "RaiseUtils.h"

#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace kiln::llm;

//===----------------------------------------------------------------------===//
// Constants and types
//===----------------------------------------------------------------------===//

std::optional<SmallVector<int64_t>>
kiln::llm::getConstantInts(Value v, int64_t maxElements) {
  auto cst = defOp<ConstantOp>(v);
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
  if (!dense || dense.getNumElements() > maxElements)
    return std::nullopt;
  bool zeroExtend = dense.getElementType().isInteger(1) ||
                    dense.getElementType().isUnsignedInteger();
  SmallVector<int64_t> result;
  result.reserve(dense.getNumElements());
  for (const APInt &value : dense.getValues<APInt>())
    result.push_back(zeroExtend ? (int64_t)value.getZExtValue()
                                : value.getSExtValue());
  return result;
}

static double toDouble(APFloat value) {
  bool lost = false;
  value.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
  return value.convertToDouble();
}

std::optional<double> kiln::llm::getSplatFloat(Value v) {
  auto cst = defOp<ConstantOp>(v);
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseFPElementsAttr>(cst.getValue());
  if (!dense || dense.getNumElements() == 0)
    return std::nullopt;
  if (dense.isSplat())
    return toDouble(dense.getSplatValue<APFloat>());
  std::optional<double> first;
  for (const APFloat &value : dense.getValues<APFloat>()) {
    double d = toDouble(value);
    if (!first)
      first = d;
    else if (d != *first)
      return std::nullopt;
  }
  return first;
}

std::optional<double> kiln::llm::getSplatNumber(Value v) {
  if (auto f = getSplatFloat(v))
    return f;
  auto ints = getConstantInts(v);
  if (!ints || ints->empty())
    return std::nullopt;
  for (int64_t x : *ints)
    if (x != ints->front())
      return std::nullopt;
  if (defOp<ConstantOp>(v).getType().getElementType().isInteger(1))
    return std::nullopt;
  return (double)ints->front();
}

bool kiln::llm::isScalarConstant(Value v, double expected, double relTol,
                                 int64_t maxRank) {
  std::optional<double> value = getSplatNumber(v);
  if (!value)
    return false;
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return false;
  if (maxRank >= 0) {
    if (type.getRank() > maxRank)
      return false;
    for (int64_t d : type.getShape())
      if (d != 1)
        return false;
  }
  if (relTol == 0.0)
    return *value == expected;
  return std::fabs(*value - expected) <= relTol * std::fabs(expected);
}

int64_t kiln::llm::getRank(Value v) {
  if (auto ranked = dyn_cast<RankedTensorType>(v.getType()))
    return ranked.getRank();
  return -1;
}

int64_t kiln::llm::getStaticDim(Value v, int64_t dim) {
  auto ranked = dyn_cast<RankedTensorType>(v.getType());
  if (!ranked)
    return ShapedType::kDynamic;
  auto axis = normalizeAxis(dim, ranked.getRank());
  if (!axis)
    return ShapedType::kDynamic;
  return ranked.getDimSize(*axis);
}

std::optional<int64_t> kiln::llm::normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return std::nullopt;
  return axis;
}

std::optional<SmallVector<int64_t>> kiln::llm::getConstantAxes(Value axes,
                                                               int64_t rank) {
  auto ints = getConstantInts(axes, 64);
  if (!ints)
    return std::nullopt;
  SmallVector<int64_t> result;
  for (int64_t a : *ints) {
    auto axis = normalizeAxis(a, rank);
    if (!axis || llvm::is_contained(result, *axis))
      return std::nullopt;
    result.push_back(*axis);
  }
  return result;
}

bool kiln::llm::isFloatTensor(Value v) {
  auto shaped = dyn_cast<ShapedType>(v.getType());
  return shaped && isa<FloatType>(shaped.getElementType());
}

bool kiln::llm::isModelOrParameterOp(Operation *op) {
  return isRaisedOp(op);
}

Value kiln::llm::stripFloatCasts(Value v) {
  while (auto cast = defOp<CastOp>(v)) {
    if (!isFloatTensor(cast.getInput()) || !isFloatTensor(cast.getResult()))
      break;
    v = cast.getInput();
  }
  return v;
}

bool kiln::llm::allHaveOneUse(ArrayRef<Value> values) {
  return llvm::all_of(values, [](Value v) { return v && v.hasOneUse(); });
}

void kiln::llm::syncFunctionResultTypes(func::FuncOp func) {
  if (func.getBody().empty())
    return;
  auto ret = dyn_cast<func::ReturnOp>(func.getBody().back().getTerminator());
  if (!ret)
    return;
  SmallVector<Type> results(ret.getOperandTypes());
  if (results != func.getFunctionType().getResults())
    func.setFunctionType(FunctionType::get(
        func.getContext(), func.getFunctionType().getInputs(), results));
}

LogicalResult kiln::llm::applyRaisingPatterns(func::FuncOp func,
                                              RewritePatternSet &&patterns) {
  GreedyRewriteConfig config;
  config.setUseTopDownTraversal(true);
  config.setMaxIterations(32);
  // Not converging within the iteration limit leaves valid IR: not an error.
  (void)applyPatternsGreedily(func, std::move(patterns), config);
  syncFunctionResultTypes(func);
  return success();
}

//===----------------------------------------------------------------------===//
// Dimension provenance
//===----------------------------------------------------------------------===//

bool SymDim::equals(const SymDim &other) const {
  if (kind == Unknown || other.kind == Unknown || kind != other.kind)
    return false;
  if (kind == Constant)
    return constant == other.constant;
  return value == other.value && dim == other.dim;
}

namespace {
/// Bounds the mutual recursion of resolveDim and getSymbolicInts, and
/// memoizes both for the duration of one outermost query (the IR does not
/// change during a query; it may between queries). Without the memo the
/// residual adds of a deep model make the walk exponential.
struct QueryState {
  int depth = 0;
  llvm::DenseMap<std::pair<void *, int64_t>, SymDim> dims;
  llvm::DenseMap<void *, std::optional<SmallVector<SymDim>>> syms;
};
thread_local QueryState queryState;

struct DepthGuard {
  DepthGuard() {
    if (queryState.depth++ == 0) {
      queryState.dims.clear();
      queryState.syms.clear();
    }
  }
  ~DepthGuard() { --queryState.depth; }
  bool tooDeep() const { return queryState.depth > 1500; }
};
} // namespace

namespace {
bool isElementwiseBinary(Operation *op) {
  return isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, ModOp, AndOp,
             OrOp, XorOp, EqualOp, LessOp, LessOrEqualOp, GreaterOp,
             GreaterOrEqualOp, PReluOp, BitwiseAndOp, BitwiseOrOp,
             BitwiseXorOp>(op);
}

/// Ops whose result has the shape of their first operand.
bool isShapePreserving(Operation *op) {
  if (op->hasTrait<OpTrait::SameOperandsAndResultShape>() ||
      op->hasTrait<OpTrait::SameOperandsAndResultType>())
    return op->getNumOperands() >= 1;
  return isa<CastOp, SoftmaxOp, LogSoftmaxOp, CumSumOp, TriluOp, ClipOp,
             IdentityOp, RMSNormOp, LayerNormOp, RopeOp>(op);
}
} // namespace

/// Resolves a broadcast result dimension from the aligned dimensions of the
/// operands (`dims[k]` = the operand's dimension index, or -1 if absent).
static SymDim resolveBroadcast(ArrayRef<Value> operands,
                               ArrayRef<int64_t> dims) {
  SmallVector<SymDim> resolved;
  for (auto [v, d] : llvm::zip(operands, dims)) {
    if (d < 0)
      continue;
    SymDim r = resolveDim(v, d);
    if (r.isConstant(1))
      continue; // A 1 broadcasts to the others.
    resolved.push_back(r);
  }
  if (resolved.empty()) {
    // All present dims are 1 (or absent): the result dim is 1 when some
    // operand has this dimension.
    if (llvm::any_of(dims, [](int64_t d) { return d >= 0; }))
      return SymDim::of(1);
    return SymDim::unknown();
  }
  for (const SymDim &r : resolved)
    if (!r.equals(resolved.front()))
      return SymDim::unknown();
  return resolved.front();
}

/// The dimension of an elementwise result aligned from the right.
static SymDim resolveElementwise(Operation *op, ArrayRef<Value> operands,
                                 int64_t resultRank, int64_t dim) {
  SmallVector<int64_t> dims;
  for (Value v : operands) {
    int64_t rank = getRank(v);
    if (rank < 0)
      return SymDim::unknown();
    int64_t aligned = dim - (resultRank - rank);
    dims.push_back(aligned);
  }
  return resolveBroadcast(operands, dims);
}

/// The -1 element `dim` of the target `sym` of a reshape of `input`: when
/// the other target elements account for every input dimension but one
/// dynamic dimension j (the dynamic ones matched one to one, the static ones
/// by their product), the inferred element is input dimension j.
static SymDim resolveInferredReshapeDim(Value input, ArrayRef<SymDim> sym,
                                        int64_t dim, SymDim self) {
  int64_t inRank = getRank(input);
  if (inRank < 0)
    return self;
  SmallVector<SymDim> inDims;
  SmallVector<bool> used(inRank, false);
  int64_t inStatic = 1, outStatic = 1;
  for (int64_t i = 0; i < inRank; ++i) {
    inDims.push_back(resolveDim(input, i));
    if (inDims.back().isConstant()) {
      inStatic *= inDims.back().constant;
      used[i] = true;
    }
  }
  for (auto [i, e] : llvm::enumerate(sym)) {
    if ((int64_t)i == dim)
      continue;
    if (e.isConstant() && e.constant > 0) {
      outStatic *= e.constant;
      continue;
    }
    if (e.kind != SymDim::Dim)
      return self;
    bool matched = false;
    for (int64_t k = 0; k < inRank && !matched; ++k)
      if (!used[k] && inDims[k].equals(e))
        used[k] = matched = true;
    if (!matched)
      return self;
  }
  int64_t remaining = -1;
  for (int64_t k = 0; k < inRank; ++k) {
    if (used[k])
      continue;
    if (remaining >= 0)
      return self;
    remaining = k;
  }
  if (remaining < 0 || inStatic != outStatic ||
      inDims[remaining].kind != SymDim::Dim)
    return self;
  return inDims[remaining];
}

static SymDim resolveDimUncached(Value v, int64_t dim);

SymDim kiln::llm::resolveDim(Value v, int64_t dim) {
  DepthGuard guard;
  if (guard.tooDeep())
    return SymDim::unknown();
  auto key = std::make_pair(v.getAsOpaquePointer(), dim);
  auto it = queryState.dims.find(key);
  if (it != queryState.dims.end())
    return it->second;
  SymDim result = resolveDimUncached(v, dim);
  queryState.dims[key] = result;
  return result;
}

static SymDim resolveDimUncached(Value v, int64_t dim) {
  int64_t rank = getRank(v);
  if (rank >= 0) {
    auto axis = normalizeAxis(dim, rank);
    if (!axis)
      return SymDim::unknown();
    dim = *axis;
    int64_t size = cast<RankedTensorType>(v.getType()).getDimSize(dim);
    if (!ShapedType::isDynamic(size))
      return SymDim::of(size);
  } else if (dim < 0) {
    return SymDim::unknown();
  }
  SymDim self = SymDim::dimOf(v, dim);
  Operation *op = v.getDefiningOp();
  if (!op)
    return self;

  auto follow = [&](Value operand, int64_t d) {
    SymDim r = resolveDim(operand, d);
    return r.isKnown() ? r : self;
  };

  if (isShapePreserving(op))
    return follow(op->getOperand(0), dim);

  if (isElementwiseBinary(op) || isa<WhereOp>(op)) {
    if (rank < 0)
      return self;
    SmallVector<Value> operands(op->getOperands());
    SymDim r = resolveElementwise(op, operands, rank, dim);
    return r.isKnown() ? r : self;
  }

  return llvm::TypeSwitch<Operation *, SymDim>(op)
      .Case([&](TransposeOp t) {
        ArrayRef<int64_t> perm = t.getPerm();
        if (dim >= (int64_t)perm.size())
          return self;
        return follow(t.getInput(), perm[dim]);
      })
      .Case([&](UnsqueezeOp u) {
        if (rank < 0)
          return self;
        auto axes = getConstantAxes(u.getAxes(), rank);
        if (!axes)
          return self;
        if (llvm::is_contained(*axes, dim))
          return SymDim::of(1);
        int64_t before =
            llvm::count_if(*axes, [&](int64_t a) { return a < dim; });
        return follow(u.getData(), dim - before);
      })
      .Case([&](SqueezeOp s) {
        int64_t inRank = getRank(s.getData());
        if (inRank < 0 || !s.getAxes())
          return self;
        auto axes = getConstantAxes(s.getAxes(), inRank);
        if (!axes)
          return self;
        int64_t out = 0;
        for (int64_t i = 0; i < inRank; ++i) {
          if (llvm::is_contained(*axes, i))
            continue;
          if (out++ == dim)
            return follow(s.getData(), i);
        }
        return self;
      })
      .Case([&](ConcatOp c) {
        if (rank < 0)
          return self;
        auto axis = normalizeAxis(c.getAxis(), rank);
        if (!axis || *axis == dim)
          return self;
        return follow(c.getInputs().front(), dim);
      })
      .Case([&](SliceOp s) {
        if (rank < 0)
          return self;
        SmallVector<int64_t> axes;
        if (s.getAxes()) {
          auto a = getConstantAxes(s.getAxes(), rank);
          if (!a)
            return self;
          axes = *a;
        } else {
          auto starts = getConstantInts(s.getStarts());
          if (!starts)
            return self;
          for (int64_t i = 0; i < (int64_t)starts->size(); ++i)
            axes.push_back(i);
        }
        auto it = llvm::find(axes, dim);
        if (it == axes.end())
          return follow(s.getData(), dim);
        // A full slice [0, >= dim) with step 1 keeps the dimension.
        size_t k = it - axes.begin();
        auto starts = getConstantInts(s.getStarts());
        auto ends = getConstantInts(s.getEnds());
        std::optional<SmallVector<int64_t>> steps;
        if (s.getSteps())
          steps = getConstantInts(s.getSteps());
        if (!starts || !ends || k >= starts->size() || k >= ends->size())
          return self;
        if ((*starts)[k] != 0 || (s.getSteps() && (!steps || (*steps)[k] != 1)))
          return self;
        if ((*ends)[k] >= std::numeric_limits<int32_t>::max())
          return follow(s.getData(), dim);
        return self;
      })
      .Case([&](GatherOp g) {
        int64_t dataRank = getRank(g.getData());
        int64_t idxRank = getRank(g.getIndices());
        if (dataRank < 0 || idxRank < 0)
          return self;
        auto axis = normalizeAxis(g.getAxis(), dataRank);
        if (!axis)
          return self;
        if (dim < *axis)
          return follow(g.getData(), dim);
        if (dim < *axis + idxRank)
          return follow(g.getIndices(), dim - *axis);
        return follow(g.getData(), dim - idxRank + 1);
      })
      .Case([&](ReshapeOp r) {
        auto sym = getSymbolicInts(r.getShape());
        if (!sym || dim >= (int64_t)sym->size())
          return self;
        const SymDim &e = (*sym)[dim];
        if (e.kind == SymDim::Dim)
          return e;
        if (e.isConstant() && e.constant > 0)
          return e;
        if (e.isConstant(0) && r.getAllowzero() == 0)
          return follow(r.getData(), dim);
        if (e.isConstant(-1))
          return resolveInferredReshapeDim(r.getData(), *sym, dim, self);
        return self;
      })
      .Case([&](ExpandOp x) {
        auto sym = getSymbolicInts(x.getShape());
        int64_t inRank = getRank(x.getInput());
        if (!sym || inRank < 0)
          return self;
        int64_t outRank = std::max<int64_t>(inRank, sym->size());
        int64_t ii = dim - (outRank - inRank);
        int64_t ei = dim - (outRank - (int64_t)sym->size());
        if (ei < 0)
          return follow(x.getInput(), ii);
        SymDim e = (*sym)[ei];
        if (ii < 0)
          return e.isKnown() ? e : self;
        SymDim in = resolveDim(x.getInput(), ii);
        if (e.isConstant(1))
          return in.isKnown() ? in : self;
        if (in.isConstant(1))
          return e.isKnown() ? e : self;
        if (e.equals(in))
          return e;
        return self;
      })
      .Case([&](MatMulOp m) {
        int64_t lr = getRank(m.getLhs()), rr = getRank(m.getRhs());
        if (rank < 0 || lr < 2 || rr < 2)
          return self;
        if (dim == rank - 1)
          return follow(m.getRhs(), rr - 1);
        if (dim == rank - 2)
          return follow(m.getLhs(), lr - 2);
        SmallVector<Value> operands{m.getLhs(), m.getRhs()};
        SmallVector<int64_t> dims{dim - (rank - lr), dim - (rank - rr)};
        SymDim r = resolveBroadcast(operands, dims);
        return r.isKnown() ? r : self;
      })
      .Case([&](LinearOp l) {
        if (rank < 0 || dim == rank - 1)
          return self;
        return follow(l.getInput(), dim);
      })
      .Case([&](GatedMLPOp g) {
        if (rank < 0 || dim == rank - 1)
          return self;
        return follow(g.getInput(), dim);
      })
      .Case([&](MatMulNBitsOp m) {
        if (rank < 0 || dim == rank - 1)
          return self;
        return follow(m.getA(), dim);
      })
      .Case([&](AttentionOp a) {
        if (dim == 3)
          return follow(a.getValue(), 3);
        return follow(a.getQuery(), dim);
      })
      .Case([&](EmbeddingOp e) {
        int64_t idRank = getRank(e.getIds());
        if (idRank < 0 || dim >= idRank)
          return self;
        return follow(e.getIds(), dim);
      })
      .Case([&](RotaryTableOp t) {
        if (dim >= 2)
          return self;
        return follow(t.getPositions(), dim);
      })
      .Default([&](Operation *) { return self; });
}

bool kiln::llm::dimsEqual(Value x, int64_t a, Value y, int64_t b) {
  return resolveDim(x, a).equals(resolveDim(y, b));
}

bool kiln::llm::symMatchesDim(const SymDim &e, Value v, int64_t dim) {
  return e.equals(resolveDim(v, dim));
}

bool kiln::llm::isKnownNonNegative(const SymDim &e) {
  return e.kind == SymDim::Dim || (e.isConstant() && e.constant >= 0);
}

//===----------------------------------------------------------------------===//
// Symbolic shape vectors
//===----------------------------------------------------------------------===//

static bool isIntegerTensor(Value v) {
  auto shaped = dyn_cast<ShapedType>(v.getType());
  return shaped && isa<IntegerType>(shaped.getElementType());
}

/// The elements of an unanalyzable 0-D or 1-D value of static size.
static std::optional<SmallVector<SymDim>> unknownsOf(Value v) {
  auto ranked = dyn_cast<RankedTensorType>(v.getType());
  if (!ranked || ranked.getRank() > 1 || !ranked.hasStaticShape() ||
      ranked.getNumElements() > 64)
    return std::nullopt;
  return SmallVector<SymDim>(ranked.getNumElements(), SymDim::unknown());
}

/// Broadcasts two symbolic lists elementwise (equal lengths or one of 1).
template <typename Fn>
static std::optional<SmallVector<SymDim>>
zipSym(const SmallVector<SymDim> &a, const SmallVector<SymDim> &b, Fn fn) {
  size_t n = std::max(a.size(), b.size());
  if (a.size() != n && a.size() != 1)
    return std::nullopt;
  if (b.size() != n && b.size() != 1)
    return std::nullopt;
  SmallVector<SymDim> result;
  for (size_t i = 0; i < n; ++i)
    result.push_back(fn(a[a.size() == 1 ? 0 : i], b[b.size() == 1 ? 0 : i]));
  return result;
}

std::optional<SmallVector<int64_t>>
kiln::llm::sliceIndices(int64_t n, int64_t start, int64_t end, int64_t step) {
  if (step == 0)
    return std::nullopt;
  if (start < 0)
    start += n;
  if (end < 0)
    end += n;
  SmallVector<int64_t> indices;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, 0, n);
    for (int64_t i = start; i < end; i += step)
      indices.push_back(i);
  } else {
    start = std::clamp<int64_t>(start, 0, n - 1);
    end = std::clamp<int64_t>(end, -1, n - 1);
    for (int64_t i = start; i > end; i += step)
      indices.push_back(i);
  }
  return indices;
}

static std::optional<SmallVector<SymDim>> getSymbolicIntsUncached(Value v);

std::optional<SmallVector<SymDim>> kiln::llm::getSymbolicInts(Value v) {
  DepthGuard guard;
  if (guard.tooDeep() || !isIntegerTensor(v))
    return std::nullopt;
  void *key = v.getAsOpaquePointer();
  auto it = queryState.syms.find(key);
  if (it != queryState.syms.end())
    return it->second;
  auto result = getSymbolicIntsUncached(v);
  // An element nothing is known about is still element i of v.
  if (result && getRank(v) <= 1)
    for (auto [i, e] : llvm::enumerate(*result))
      if (!e.isKnown())
        e = SymDim::elementOf(v, i);
  queryState.syms[key] = result;
  return result;
}

static std::optional<SmallVector<SymDim>> getSymbolicIntsUncached(Value v) {
  if (int64_t rank = getRank(v); rank > 1)
    return std::nullopt;
  Operation *op = v.getDefiningOp();
  if (!op)
    return unknownsOf(v);

  if (auto ints = getConstantInts(v, 64)) {
    SmallVector<SymDim> result;
    for (int64_t x : *ints)
      result.push_back(SymDim::of(x));
    return result;
  }

  auto binary = [&](auto fn) -> std::optional<SmallVector<SymDim>> {
    auto lhs = getSymbolicInts(op->getOperand(0));
    auto rhs = getSymbolicInts(op->getOperand(1));
    if (!lhs || !rhs)
      return unknownsOf(v);
    auto result = zipSym(*lhs, *rhs, fn);
    if (!result)
      return unknownsOf(v);
    return result;
  };

  std::optional<SmallVector<SymDim>> result =
      llvm::TypeSwitch<Operation *, std::optional<SmallVector<SymDim>>>(op)
          .Case([&](ShapeOp s) -> std::optional<SmallVector<SymDim>> {
            int64_t rank = getRank(s.getData());
            if (rank < 0)
              return std::nullopt;
            int64_t start = s.getStart();
            int64_t end = s.getEnd() ? *s.getEnd() : rank;
            if (start < 0)
              start += rank;
            if (end < 0)
              end += rank;
            start = std::clamp<int64_t>(start, 0, rank);
            end = std::clamp<int64_t>(end, 0, rank);
            SmallVector<SymDim> dims;
            for (int64_t d = start; d < end; ++d)
              dims.push_back(resolveDim(s.getData(), d));
            return dims;
          })
          .Case([&](SizeOp s) -> std::optional<SmallVector<SymDim>> {
            auto ranked = dyn_cast<RankedTensorType>(s.getData().getType());
            if (ranked && ranked.hasStaticShape())
              return SmallVector<SymDim>{SymDim::of(ranked.getNumElements())};
            return SmallVector<SymDim>{SymDim::unknown()};
          })
          .Case([&](ConcatOp c) -> std::optional<SmallVector<SymDim>> {
            SmallVector<SymDim> all;
            for (Value in : c.getInputs()) {
              if (getRank(in) != 1)
                return std::nullopt;
              auto part = getSymbolicInts(in);
              if (!part)
                return std::nullopt;
              all.append(part->begin(), part->end());
            }
            return all;
          })
          .Case([&](GatherOp g) -> std::optional<SmallVector<SymDim>> {
            auto data = getSymbolicInts(g.getData());
            auto indices = getConstantInts(g.getIndices(), 64);
            int64_t idxRank = getRank(g.getIndices());
            if (!data || !indices || idxRank > 1 || getRank(g.getData()) != 1)
              return std::nullopt;
            SmallVector<SymDim> picked;
            int64_t n = data->size();
            for (int64_t i : *indices) {
              if (i < 0)
                i += n;
              if (i < 0 || i >= n)
                return std::nullopt;
              picked.push_back((*data)[i]);
            }
            return picked;
          })
          .Case([&](SliceOp s) -> std::optional<SmallVector<SymDim>> {
            auto data = getSymbolicInts(s.getData());
            auto starts = getConstantInts(s.getStarts());
            auto ends = getConstantInts(s.getEnds());
            if (!data || !starts || !ends || starts->size() != 1 ||
                ends->size() != 1 || getRank(s.getData()) != 1)
              return std::nullopt;
            if (s.getAxes()) {
              auto axes = getConstantAxes(s.getAxes(), 1);
              if (!axes || axes->size() != 1)
                return std::nullopt;
            }
            int64_t step = 1;
            if (s.getSteps()) {
              auto steps = getConstantInts(s.getSteps());
              if (!steps || steps->size() != 1)
                return std::nullopt;
              step = steps->front();
            }
            auto indices = sliceIndices(data->size(), starts->front(),
                                        ends->front(), step);
            if (!indices)
              return std::nullopt;
            SmallVector<SymDim> picked;
            for (int64_t i : *indices)
              picked.push_back((*data)[i]);
            return picked;
          })
          .Case([&](UnsqueezeOp u) -> std::optional<SmallVector<SymDim>> {
            auto axes = getConstantAxes(u.getAxes(), 1);
            if (getRank(u.getData()) != 0 || !axes || axes->size() != 1)
              return std::nullopt;
            return getSymbolicInts(u.getData());
          })
          .Case([&](SqueezeOp s) -> std::optional<SmallVector<SymDim>> {
            auto data = getSymbolicInts(s.getData());
            if (!data || data->size() != 1)
              return std::nullopt;
            return data;
          })
          .Case([&](ReshapeOp r) -> std::optional<SmallVector<SymDim>> {
            auto data = getSymbolicInts(r.getData());
            auto shape = getConstantInts(r.getShape());
            if (!data || !shape || shape->size() > 1)
              return std::nullopt;
            if (shape->empty())
              return data->size() == 1 ? data : std::nullopt;
            int64_t n = shape->front();
            if (n == -1 || n == (int64_t)data->size() ||
                (n == 0 && r.getAllowzero() == 0))
              return data;
            return std::nullopt;
          })
          .Case([&](CastOp c) -> std::optional<SmallVector<SymDim>> {
            if (!isIntegerTensor(c.getInput()))
              return std::nullopt;
            auto data = getSymbolicInts(c.getInput());
            if (!data)
              return std::nullopt;
            unsigned width =
                getElementTypeOrSelf(c.getType()).getIntOrFloatBitWidth();
            for (SymDim &e : *data) {
              if (!e.isConstant())
                continue;
              if (width == 1)
                e.constant = e.constant != 0;
              else if (width < 64 &&
                       (e.constant >= (int64_t(1) << (width - 1)) ||
                        e.constant < -(int64_t(1) << (width - 1))))
                e = SymDim::unknown();
            }
            return data;
          })
          .Case([&](IdentityOp i) { return getSymbolicInts(i.getInput()); })
          .Case([&](AddOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(a.constant + b.constant);
              if (b.isConstant(0))
                return a;
              if (a.isConstant(0))
                return b;
              return SymDim::unknown();
            });
          })
          .Case([&](SubOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(a.constant - b.constant);
              if (b.isConstant(0))
                return a;
              return SymDim::unknown();
            });
          })
          .Case([&](MulOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(a.constant * b.constant);
              if (b.isConstant(1))
                return a;
              if (a.isConstant(1))
                return b;
              return SymDim::unknown();
            });
          })
          .Case([&](DivOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant() && a.constant >= 0 &&
                  b.constant > 0)
                return SymDim::of(a.constant / b.constant);
              if (b.isConstant(1))
                return a;
              return SymDim::unknown();
            });
          })
          .Case([&](MaxOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(std::max(a.constant, b.constant));
              if (a.equals(b))
                return a;
              return SymDim::unknown();
            });
          })
          .Case([&](MinOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(std::min(a.constant, b.constant));
              if (a.equals(b))
                return a;
              return SymDim::unknown();
            });
          })
          .Case([&](EqualOp) {
            return binary([](SymDim a, SymDim b) {
              if (a.isConstant() && b.isConstant())
                return SymDim::of(a.constant == b.constant);
              if (a.equals(b))
                return SymDim::of(1);
              // Dimensions are never negative.
              if ((a.kind == SymDim::Dim && b.isConstant() && b.constant < 0) ||
                  (b.kind == SymDim::Dim && a.isConstant() && a.constant < 0))
                return SymDim::of(0);
              return SymDim::unknown();
            });
          })
          .Case([&](NotOp n) -> std::optional<SmallVector<SymDim>> {
            auto data = getSymbolicInts(n.getInput());
            if (!data)
              return std::nullopt;
            for (SymDim &e : *data)
              e = e.isConstant() ? SymDim::of(!e.constant) : SymDim::unknown();
            return data;
          })
          .Case([&](WhereOp w) -> std::optional<SmallVector<SymDim>> {
            auto cond = getSymbolicInts(w.getCondition());
            auto x = getSymbolicInts(w.getX());
            auto y = getSymbolicInts(w.getY());
            if (!cond || !x || !y)
              return std::nullopt;
            size_t n = std::max({cond->size(), x->size(), y->size()});
            for (auto *list : {&*cond, &*x, &*y})
              if (list->size() != n && list->size() != 1)
                return std::nullopt;
            SmallVector<SymDim> picked;
            for (size_t i = 0; i < n; ++i) {
              const SymDim &c = (*cond)[cond->size() == 1 ? 0 : i];
              const SymDim &a = (*x)[x->size() == 1 ? 0 : i];
              const SymDim &b = (*y)[y->size() == 1 ? 0 : i];
              if (c.isConstant())
                picked.push_back(c.constant ? a : b);
              else if (a.equals(b))
                picked.push_back(a);
              else
                picked.push_back(SymDim::unknown());
            }
            return picked;
          })
          .Case([&](ConstantOfShapeOp c) -> std::optional<SmallVector<SymDim>> {
            auto shape = getSymbolicInts(c.getShape());
            auto value = dyn_cast<DenseIntElementsAttr>(c.getValue());
            if (!shape || !value || value.getNumElements() != 1)
              return std::nullopt;
            if (shape->empty()) // A 0-D result.
              return std::nullopt;
            if (shape->size() != 1 || !shape->front().isConstant() ||
                shape->front().constant > 64 || shape->front().constant < 0)
              return std::nullopt;
            APInt x = *value.getValues<APInt>().begin();
            int64_t fill = value.getElementType().isInteger(1)
                               ? (int64_t)x.getBoolValue()
                               : x.getSExtValue();
            return SmallVector<SymDim>(shape->front().constant,
                                       SymDim::of(fill));
          })
          .Default([&](Operation *) { return std::nullopt; });
  if (result)
    return result;
  return unknownsOf(v);
}
