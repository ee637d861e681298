//===- ShapeInference.cpp - ONNX shape inference of generic llm ops ------===//

#include "ShapeInference.h"

#include "RaiseUtils.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace kiln::llm;

using Shape = SmallVector<int64_t>;
static constexpr int64_t kDyn = ShapedType::kDynamic;

static std::optional<Shape> shapeOf(Value v) {
  auto ranked = dyn_cast<RankedTensorType>(v.getType());
  if (!ranked)
    return std::nullopt;
  return Shape(ranked.getShape());
}

/// Numpy broadcasting of static information: a static dimension other than 1
/// wins (a valid run has the others equal to it or 1); 1 with unknown is
/// unknown. nullopt when two static dimensions contradict each other.
static std::optional<Shape> broadcast(ArrayRef<Shape> shapes) {
  size_t rank = 0;
  for (const Shape &s : shapes)
    rank = std::max(rank, s.size());
  Shape result(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t fixed = 1;
    bool dynamic = false;
    for (const Shape &s : shapes) {
      if (i + s.size() < rank)
        continue;
      int64_t d = s[i + s.size() - rank];
      if (ShapedType::isDynamic(d)) {
        dynamic = true;
      } else if (d != 1) {
        if (fixed != 1 && fixed != d)
          return std::nullopt;
        fixed = d;
      }
    }
    result[i] = fixed != 1 ? fixed : (dynamic ? kDyn : 1);
  }
  return result;
}

static std::optional<Shape> operandShapesBroadcast(Operation *op) {
  SmallVector<Shape> shapes;
  for (Value v : op->getOperands()) {
    auto s = shapeOf(v);
    if (!s)
      return std::nullopt;
    shapes.push_back(*s);
  }
  return broadcast(shapes);
}

static int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (ShapedType::isDynamic(d))
      return kDyn;
    p *= d;
  }
  return p;
}

static std::optional<Shape> inferMatMul(Value lhs, Value rhs) {
  auto a = shapeOf(lhs), b = shapeOf(rhs);
  if (!a || !b || a->empty() || b->empty())
    return std::nullopt;
  bool vecA = a->size() == 1, vecB = b->size() == 1;
  if (vecA)
    a->insert(a->begin(), 1);
  if (vecB)
    b->push_back(1);
  Shape batchA(a->begin(), a->end() - 2), batchB(b->begin(), b->end() - 2);
  auto batch = broadcast({batchA, batchB});
  if (!batch)
    return std::nullopt;
  Shape result = *batch;
  if (!vecA)
    result.push_back((*a)[a->size() - 2]);
  if (!vecB)
    result.push_back(b->back());
  return result;
}

static std::optional<Shape> inferReshape(ReshapeOp op) {
  auto sym = getSymbolicInts(op.getShape());
  if (!sym)
    return std::nullopt;
  auto in = shapeOf(op.getData());
  Shape result;
  int inferIndex = -1;
  for (auto [i, e] : llvm::enumerate(*sym)) {
    if (e.isConstant(-1)) {
      if (inferIndex >= 0)
        return std::nullopt;
      inferIndex = i;
      result.push_back(kDyn);
    } else if (e.isConstant(0) && op.getAllowzero() == 0) {
      if (in && i < in->size())
        result.push_back((*in)[i]);
      else
        result.push_back(kDyn);
    } else if (e.isConstant()) {
      if (e.constant < 0)
        return std::nullopt;
      result.push_back(e.constant);
    } else {
      result.push_back(kDyn);
    }
  }
  if (inferIndex >= 0 && in) {
    // Cancel the dynamic input dimensions that target elements provably
    // copy; if none is left, the static parts determine the -1.
    SmallVector<bool> cancelled(in->size(), false);
    int64_t inStatic = 1, outStatic = 1;
    for (auto [k, d] : llvm::enumerate(*in)) {
      if (!ShapedType::isDynamic(d)) {
        inStatic *= d;
        cancelled[k] = true;
      }
    }
    bool determined = true;
    for (auto [i, e] : llvm::enumerate(*sym)) {
      if ((int)i == inferIndex)
        continue;
      if (!ShapedType::isDynamic(result[i])) {
        outStatic *= result[i];
        continue;
      }
      bool matched = false;
      for (size_t k = 0; k < in->size() && !matched; ++k) {
        if (cancelled[k])
          continue;
        bool copies = (e.isConstant(0) && op.getAllowzero() == 0 && k == i) ||
                      symMatchesDim(e, op.getData(), k);
        if (copies)
          cancelled[k] = matched = true;
      }
      if (!matched)
        determined = false;
    }
    if (llvm::is_contained(cancelled, false))
      determined = false;
    if (determined && outStatic > 0 && inStatic % outStatic == 0)
      result[inferIndex] = inStatic / outStatic;
  }
  return result;
}

static std::optional<Shape> inferExpand(ExpandOp op) {
  auto in = shapeOf(op.getInput());
  auto sym = getSymbolicInts(op.getShape());
  if (!in || !sym)
    return std::nullopt;
  size_t rank = std::max(in->size(), sym->size());
  Shape result(rank, kDyn);
  for (size_t i = 0; i < rank; ++i) {
    int64_t d = i + in->size() >= rank ? (*in)[i + in->size() - rank] : 1;
    std::optional<SymDim> e;
    if (i + sym->size() >= rank)
      e = (*sym)[i + sym->size() - rank];
    if (!e || e->isConstant(1)) {
      result[i] = d;
    } else if (e->isConstant()) {
      int64_t c = e->constant;
      if (!ShapedType::isDynamic(d) && d != 1 && d != c)
        return std::nullopt;
      result[i] = c;
    } else {
      result[i] = (!ShapedType::isDynamic(d) && d != 1) ? d : kDyn;
    }
  }
  return result;
}

static std::optional<Shape> inferSlice(SliceOp op) {
  auto in = shapeOf(op.getData());
  if (!in)
    return std::nullopt;
  int64_t rank = in->size();
  auto starts = getConstantInts(op.getStarts());
  auto ends = getConstantInts(op.getEnds());
  SmallVector<int64_t> axes;
  if (op.getAxes()) {
    auto a = getConstantAxes(op.getAxes(), rank);
    if (!a) {
      // The sliced axes are unknown: every dimension may change.
      return Shape(rank, kDyn);
    }
    axes = *a;
  } else {
    int64_t n =
        starts ? (int64_t)starts->size() : getStaticDim(op.getStarts(), 0);
    if (ShapedType::isDynamic(n) || n > rank)
      return Shape(rank, kDyn);
    for (int64_t i = 0; i < n; ++i)
      axes.push_back(i);
  }
  std::optional<SmallVector<int64_t>> steps;
  if (op.getSteps())
    steps = getConstantInts(op.getSteps());
  Shape result = *in;
  for (auto [k, axis] : llvm::enumerate(axes)) {
    int64_t d = (*in)[axis];
    if (!starts || !ends || (op.getSteps() && !steps) || k >= starts->size() ||
        k >= ends->size() || ShapedType::isDynamic(d)) {
      result[axis] = kDyn;
      continue;
    }
    int64_t start = (*starts)[k], end = (*ends)[k];
    int64_t step = steps ? (*steps)[k] : 1;
    if (step == 0)
      return std::nullopt;
    if (start < 0)
      start += d;
    if (end < 0)
      end += d;
    int64_t count;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, d);
      end = std::clamp<int64_t>(end, 0, d);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, d - 1);
      end = std::clamp<int64_t>(end, -1, d - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    result[axis] = count;
  }
  return result;
}

template <typename ReduceOpT>
static std::optional<Shape> inferReduce(ReduceOpT op) {
  auto in = shapeOf(op.getData());
  if (!in)
    return std::nullopt;
  int64_t rank = in->size();
  SmallVector<int64_t> axes;
  if (op.getAxes()) {
    auto a = getConstantAxes(op.getAxes(), rank);
    if (!a)
      return std::nullopt;
    axes = *a;
  }
  if (axes.empty()) {
    if (op.getNoopWithEmptyAxes())
      return in;
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  Shape result;
  for (int64_t i = 0; i < rank; ++i) {
    if (!llvm::is_contained(axes, i))
      result.push_back((*in)[i]);
    else if (op.getKeepdims())
      result.push_back(1);
  }
  return result;
}

static std::optional<Shape> inferRange(RangeOp op) {
  auto start = getSplatNumber(op.getStart());
  auto limit = getSplatNumber(op.getLimit());
  auto delta = getSplatNumber(op.getDelta());
  if (!start || !limit || !delta || *delta == 0)
    return Shape{kDyn};
  double n = std::ceil((*limit - *start) / *delta);
  return Shape{std::max<int64_t>((int64_t)n, 0)};
}

std::optional<Shape> kiln::llm::inferResultShape(Operation *op,
                                                 unsigned index) {
  if (op->getNumOperands() == 0)
    return std::nullopt;
  if (isa<CastOp, SoftmaxOp, LogSoftmaxOp, CumSumOp, TriluOp, ClipOp,
          IdentityOp, HardmaxOp, ScatterNDOp, ScatterElementsOp>(op) ||
      (op->hasTrait<OpTrait::SameOperandsAndResultShape>() &&
       op->getNumOperands() == 1))
    return shapeOf(op->getOperand(0));
  if (isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, ModOp, AndOp, OrOp,
          XorOp, EqualOp, LessOp, LessOrEqualOp, GreaterOp, GreaterOrEqualOp,
          PReluOp, BitwiseAndOp, BitwiseOrOp, BitwiseXorOp, WhereOp>(op))
    return operandShapesBroadcast(op);

  return llvm::TypeSwitch<Operation *, std::optional<Shape>>(op)
      .Case([](MatMulOp m) { return inferMatMul(m.getLhs(), m.getRhs()); })
      .Case([](MatMulNBitsOp m) -> std::optional<Shape> {
        auto a = shapeOf(m.getA());
        if (!a || a->empty())
          return std::nullopt;
        a->back() = m.getN();
        return a;
      })
      .Case([](TransposeOp t) -> std::optional<Shape> {
        auto in = shapeOf(t.getInput());
        if (!in || in->size() != t.getPerm().size())
          return std::nullopt;
        Shape result;
        for (int64_t p : t.getPerm())
          result.push_back((*in)[p]);
        return result;
      })
      .Case([](ReshapeOp r) { return inferReshape(r); })
      .Case([](ExpandOp e) { return inferExpand(e); })
      .Case([](ConcatOp c) -> std::optional<Shape> {
        SmallVector<Shape> shapes;
        for (Value v : c.getInputs()) {
          auto s = shapeOf(v);
          if (!s)
            return std::nullopt;
          shapes.push_back(*s);
        }
        int64_t rank = shapes.front().size();
        auto axis = normalizeAxis(c.getAxis(), rank);
        if (!axis)
          return std::nullopt;
        Shape result(rank, kDyn);
        int64_t total = 0;
        for (const Shape &s : shapes) {
          if ((int64_t)s.size() != rank)
            return std::nullopt;
          for (int64_t i = 0; i < rank; ++i) {
            if (i == *axis)
              continue;
            if (!ShapedType::isDynamic(s[i])) {
              if (!ShapedType::isDynamic(result[i]) && result[i] != s[i])
                return std::nullopt;
              result[i] = s[i];
            }
          }
          total =
              (ShapedType::isDynamic(total) || ShapedType::isDynamic(s[*axis]))
                  ? kDyn
                  : total + s[*axis];
        }
        result[*axis] = total;
        return result;
      })
      .Case([](SliceOp s) { return inferSlice(s); })
      .Case([](GatherOp g) -> std::optional<Shape> {
        auto data = shapeOf(g.getData()), idx = shapeOf(g.getIndices());
        if (!data || !idx)
          return std::nullopt;
        auto axis = normalizeAxis(g.getAxis(), data->size());
        if (!axis)
          return std::nullopt;
        Shape result(data->begin(), data->begin() + *axis);
        result.append(idx->begin(), idx->end());
        result.append(data->begin() + *axis + 1, data->end());
        return result;
      })
      .Case([](GatherElementsOp g) { return shapeOf(g.getIndices()); })
      .Case([](UnsqueezeOp u) -> std::optional<Shape> {
        auto in = shapeOf(u.getData());
        auto raw = getConstantInts(u.getAxes(), 64);
        if (!in || !raw)
          return std::nullopt;
        int64_t rank = in->size() + raw->size();
        auto axes = getConstantAxes(u.getAxes(), rank);
        if (!axes)
          return std::nullopt;
        Shape result;
        size_t next = 0;
        for (int64_t i = 0; i < rank; ++i) {
          if (llvm::is_contained(*axes, i))
            result.push_back(1);
          else
            result.push_back((*in)[next++]);
        }
        return result;
      })
      .Case([](SqueezeOp s) -> std::optional<Shape> {
        auto in = shapeOf(s.getData());
        if (!in)
          return std::nullopt;
        Shape result;
        if (!s.getAxes()) {
          for (int64_t d : *in) {
            if (ShapedType::isDynamic(d))
              return std::nullopt;
            if (d != 1)
              result.push_back(d);
          }
          return result;
        }
        auto axes = getConstantAxes(s.getAxes(), in->size());
        if (!axes)
          return std::nullopt;
        for (int64_t i = 0; i < (int64_t)in->size(); ++i)
          if (!llvm::is_contained(*axes, i))
            result.push_back((*in)[i]);
        return result;
      })
      .Case([](ShapeOp s) -> std::optional<Shape> {
        int64_t rank = getRank(s.getData());
        if (rank < 0)
          return Shape{kDyn};
        int64_t start = s.getStart(), end = s.getEnd() ? *s.getEnd() : rank;
        if (start < 0)
          start += rank;
        if (end < 0)
          end += rank;
        start = std::clamp<int64_t>(start, 0, rank);
        end = std::clamp<int64_t>(end, 0, rank);
        return Shape{std::max<int64_t>(end - start, 0)};
      })
      .Case([](SizeOp) { return Shape{}; })
      .Case([](ReduceSumOp r) { return inferReduce(r); })
      .Case([](ReduceMeanOp r) { return inferReduce(r); })
      .Case([](ReduceMaxOp r) { return inferReduce(r); })
      .Case([](ReduceMinOp r) { return inferReduce(r); })
      .Case([](ReduceProdOp r) { return inferReduce(r); })
      .Case([](ReduceL1Op r) { return inferReduce(r); })
      .Case([](ReduceL2Op r) { return inferReduce(r); })
      .Case([](ReduceSumSquareOp r) { return inferReduce(r); })
      .Case([](ReduceLogSumOp r) { return inferReduce(r); })
      .Case([](ReduceLogSumExpOp r) { return inferReduce(r); })
      .Case<ArgMaxOp, ArgMinOp>([](auto a) -> std::optional<Shape> {
        auto in = shapeOf(a.getData());
        if (!in)
          return std::nullopt;
        auto axis = normalizeAxis(a.getAxis(), in->size());
        if (!axis)
          return std::nullopt;
        Shape result = *in;
        if (a.getKeepdims())
          result[*axis] = 1;
        else
          result.erase(result.begin() + *axis);
        return result;
      })
      .Case([](RangeOp r) { return inferRange(r); })
      .Case([](ConstantOfShapeOp c) -> std::optional<Shape> {
        auto sym = getSymbolicInts(c.getShape());
        if (!sym)
          return std::nullopt;
        Shape result;
        for (const SymDim &e : *sym) {
          if (e.isConstant() && e.constant < 0)
            return std::nullopt;
          result.push_back(e.isConstant() ? e.constant : kDyn);
        }
        return result;
      })
      .Case([](FlattenOp f) -> std::optional<Shape> {
        auto in = shapeOf(f.getInput());
        if (!in)
          return std::nullopt;
        int64_t axis = f.getAxis();
        if (axis < 0)
          axis += in->size();
        if (axis < 0 || axis > (int64_t)in->size())
          return std::nullopt;
        ArrayRef<int64_t> dims(*in);
        return Shape{product(dims.take_front(axis)),
                     product(dims.drop_front(axis))};
      })
      .Case([](TileOp t) -> std::optional<Shape> {
        auto in = shapeOf(t.getInput());
        auto repeats = getConstantInts(t.getRepeats());
        if (!in)
          return std::nullopt;
        if (!repeats || repeats->size() != in->size())
          return Shape(in->size(), kDyn);
        Shape result;
        for (auto [d, r] : llvm::zip(*in, *repeats))
          result.push_back(ShapedType::isDynamic(d) ? kDyn : d * r);
        return result;
      })
      .Default([](Operation *) { return std::nullopt; });
}

Type kiln::llm::refineTensorType(Type declared, ArrayRef<int64_t> inferred) {
  auto tensor = dyn_cast<TensorType>(declared);
  if (!tensor)
    return nullptr;
  for (int64_t d : inferred)
    if (!ShapedType::isDynamic(d) && d < 0)
      return nullptr;
  auto ranked = dyn_cast<RankedTensorType>(declared);
  if (!ranked)
    return RankedTensorType::get(inferred, tensor.getElementType());
  if (ranked.getRank() != (int64_t)inferred.size())
    return nullptr;
  SmallVector<int64_t> shape(ranked.getShape());
  bool changed = false;
  for (auto [i, d] : llvm::enumerate(inferred)) {
    if (ShapedType::isDynamic(d))
      continue;
    if (ShapedType::isDynamic(shape[i])) {
      shape[i] = d;
      changed = true;
    } else if (shape[i] != d) {
      return nullptr;
    }
  }
  if (!changed)
    return nullptr;
  return RankedTensorType::get(shape, ranked.getElementType(),
                               ranked.getEncoding());
}
