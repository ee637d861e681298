//===- FoldShapes.cpp - Shape inference and folding of shape arithmetic --===//
//
// -llm-fold-shapes: refines result types by ONNX shape inference, folds ops
// of constants (shape vectors, small integer and f32 tensors), replaces
// shape vectors whose every element is known by constants, removes ops that
// provably return their input, and rewrites the reshape/transpose/reshape
// form of a last-two-dimension transpose into one llm.transpose.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"
#include "ShapeInference.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMFOLDSHAPES
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;

//===----------------------------------------------------------------------===//
// A small host tensor for folding
//===----------------------------------------------------------------------===//

namespace {

/// The elements of a constant, kept in the attribute's own representation
/// (APInt or APFloat) so that moving them around never changes a bit.
struct Elements {
  SmallVector<int64_t> shape;
  Type elementType;
  SmallVector<APInt> ints;
  SmallVector<APFloat> floats;

  bool isFloat() const { return isa<FloatType>(elementType); }
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  /// A copy with no elements of the same element type.
  Elements empty(ArrayRef<int64_t> newShape) const {
    Elements e;
    e.shape.assign(newShape.begin(), newShape.end());
    e.elementType = elementType;
    return e;
  }
  void pushFrom(const Elements &src, int64_t index) {
    if (src.isFloat())
      floats.push_back(src.floats[index]);
    else
      ints.push_back(src.ints[index]);
  }
  int64_t intAt(int64_t i) const {
    if (elementType.isInteger(1))
      return ints[i].getBoolValue();
    return elementType.isUnsignedInteger() ? (int64_t)ints[i].getZExtValue()
                                           : ints[i].getSExtValue();
  }
};

/// Whether `x` is representable in the integer type `type`.
bool fitsIn(IntegerType type, int64_t x) {
  unsigned width = type.getWidth();
  if (type.isUnsigned())
    return x >= 0 && (width >= 63 || x < (int64_t(1) << width));
  if (width >= 64)
    return true;
  return x >= -(int64_t(1) << (width - 1)) && x < (int64_t(1) << (width - 1));
}

APInt makeInt(IntegerType type, int64_t x) {
  return APInt(type.getWidth(), (uint64_t)x, /*isSigned=*/!type.isUnsigned(),
               /*implicitTrunc=*/true);
}

std::optional<Elements> elementsOf(Value v, int64_t limit) {
  auto cst = defOp<ConstantOp>(v);
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(cst.getValue());
  if (!dense || dense.getNumElements() > limit)
    return std::nullopt;
  Elements e;
  e.shape.assign(dense.getType().getShape().begin(),
                 dense.getType().getShape().end());
  e.elementType = dense.getElementType();
  if (isa<FloatType>(e.elementType))
    e.floats.assign(dense.getValues<APFloat>().begin(),
                    dense.getValues<APFloat>().end());
  else if (isa<IntegerType>(e.elementType))
    e.ints.assign(dense.getValues<APInt>().begin(),
                  dense.getValues<APInt>().end());
  else
    return std::nullopt;
  return e;
}

DenseElementsAttr toAttr(const Elements &e) {
  auto type = RankedTensorType::get(e.shape, e.elementType);
  if (e.isFloat())
    return DenseElementsAttr::get(type, e.floats);
  return DenseElementsAttr::get(type, e.ints);
}

SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = (int64_t)shape.size() - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// The flat index into a tensor of `shape` broadcast to `outShape` for the
/// multi-index `index` of the output.
int64_t broadcastIndex(ArrayRef<int64_t> shape, ArrayRef<int64_t> outShape,
                       ArrayRef<int64_t> index) {
  SmallVector<int64_t> strides = stridesOf(shape);
  int64_t flat = 0, offset = outShape.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1)
      flat += index[i + offset] * strides[i];
  return flat;
}

void unravel(int64_t flat, ArrayRef<int64_t> shape,
             SmallVector<int64_t> &index) {
  index.assign(shape.size(), 0);
  for (int64_t i = (int64_t)shape.size() - 1; i >= 0; --i) {
    index[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
}

std::optional<SmallVector<int64_t>> broadcastShape(ArrayRef<int64_t> a,
                                                   ArrayRef<int64_t> b) {
  size_t rank = std::max(a.size(), b.size());
  SmallVector<int64_t> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t x = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    int64_t y = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (x != y && x != 1 && y != 1)
      return std::nullopt;
    result[i] = x == 1 ? y : x;
  }
  return result;
}

//===----------------------------------------------------------------------===//
// The folder
//===----------------------------------------------------------------------===//

/// Folds one generic op whose operands are constants into its result's
/// elements, or nullopt when it cannot (or must not: half-precision
/// arithmetic, float-to-integer casts, results above the size limit).
class ConstantEvaluator {
public:
  ConstantEvaluator(int64_t limit) : limit(limit) {}

  std::optional<Elements> evaluate(Operation *op) {
    Type resultElem = getElementTypeOrSelf(op->getResult(0).getType());
    return llvm::TypeSwitch<Operation *, std::optional<Elements>>(op)
        .Case([&](ReshapeOp r) -> std::optional<Elements> {
          auto data = get(r.getData());
          auto shape = getConstantInts(r.getShape());
          if (!data || !shape)
            return std::nullopt;
          SmallVector<int64_t> newShape;
          int inferAt = -1;
          int64_t known = 1;
          for (auto [i, d] : llvm::enumerate(*shape)) {
            if (d == 0 && !r.getAllowzero()) {
              if (i >= data->shape.size())
                return std::nullopt;
              d = data->shape[i];
            }
            if (d == -1) {
              if (inferAt >= 0)
                return std::nullopt;
              inferAt = i;
              newShape.push_back(1);
              continue;
            }
            if (d < 0)
              return std::nullopt;
            known *= d;
            newShape.push_back(d);
          }
          if (inferAt >= 0) {
            if (known == 0 || data->size() % known != 0)
              return std::nullopt;
            newShape[inferAt] = data->size() / known;
          }
          Elements e = *data;
          e.shape = newShape;
          if (e.size() != data->size())
            return std::nullopt;
          return e;
        })
        .Case([&](ExpandOp x) -> std::optional<Elements> {
          auto data = get(x.getInput());
          auto shape = getConstantInts(x.getShape());
          if (!data || !shape)
            return std::nullopt;
          auto out = broadcastShape(data->shape, *shape);
          if (!out)
            return std::nullopt;
          return broadcastTo(*data, *out);
        })
        .Case([&](ConcatOp c) -> std::optional<Elements> {
          SmallVector<Elements> parts;
          for (Value v : c.getInputs()) {
            auto e = get(v);
            if (!e)
              return std::nullopt;
            parts.push_back(*e);
          }
          int64_t rank = parts.front().shape.size();
          auto axis = normalizeAxis(c.getAxis(), rank);
          if (!axis)
            return std::nullopt;
          SmallVector<int64_t> shape = parts.front().shape;
          shape[*axis] = 0;
          for (const Elements &p : parts) {
            if ((int64_t)p.shape.size() != rank)
              return std::nullopt;
            for (int64_t i = 0; i < rank; ++i)
              if (i != *axis && p.shape[i] != parts.front().shape[i])
                return std::nullopt;
            shape[*axis] += p.shape[*axis];
          }
          Elements e = parts.front().empty(shape);
          if (e.size() > limit)
            return std::nullopt;
          int64_t outer = 1, inner = 1;
          for (int64_t i = 0; i < *axis; ++i)
            outer *= shape[i];
          for (int64_t i = *axis + 1; i < rank; ++i)
            inner *= shape[i];
          for (int64_t o = 0; o < outer; ++o)
            for (const Elements &p : parts)
              for (int64_t k = 0; k < p.shape[*axis] * inner; ++k)
                e.pushFrom(p, o * p.shape[*axis] * inner + k);
          return e;
        })
        .Case([&](SliceOp s) -> std::optional<Elements> {
          auto data = get(s.getData());
          auto starts = getConstantInts(s.getStarts());
          auto ends = getConstantInts(s.getEnds());
          if (!data || !starts || !ends || starts->size() != ends->size())
            return std::nullopt;
          int64_t rank = data->shape.size();
          SmallVector<int64_t> axes;
          if (s.getAxes()) {
            auto a = getConstantAxes(s.getAxes(), rank);
            if (!a)
              return std::nullopt;
            axes = *a;
          } else {
            for (int64_t i = 0; i < (int64_t)starts->size(); ++i)
              axes.push_back(i);
          }
          SmallVector<int64_t> steps(axes.size(), 1);
          if (s.getSteps()) {
            auto st = getConstantInts(s.getSteps());
            if (!st)
              return std::nullopt;
            steps = *st;
          }
          if (axes.size() != starts->size() || steps.size() != axes.size())
            return std::nullopt;
          SmallVector<SmallVector<int64_t>> picks(rank);
          for (int64_t i = 0; i < rank; ++i)
            for (int64_t j = 0; j < data->shape[i]; ++j)
              picks[i].push_back(j);
          for (auto [k, axis] : llvm::enumerate(axes)) {
            auto idx = sliceIndices(data->shape[axis], (*starts)[k], (*ends)[k],
                                 steps[k]);
            if (!idx)
              return std::nullopt;
            picks[axis] = *idx;
          }
          return select(*data, picks);
        })
        .Case([&](GatherOp g) -> std::optional<Elements> {
          auto data = get(g.getData());
          auto idx = getConstantInts(g.getIndices(), limit);
          auto idxType = dyn_cast<RankedTensorType>(g.getIndices().getType());
          if (!data || !idx || !idxType)
            return std::nullopt;
          int64_t rank = data->shape.size();
          auto axis = normalizeAxis(g.getAxis(), rank);
          if (!axis)
            return std::nullopt;
          SmallVector<int64_t> shape(data->shape.begin(),
                                     data->shape.begin() + *axis);
          shape.append(idxType.getShape().begin(), idxType.getShape().end());
          shape.append(data->shape.begin() + *axis + 1, data->shape.end());
          Elements e = data->empty(shape);
          if (e.size() > limit)
            return std::nullopt;
          int64_t outer = 1, inner = 1, n = data->shape[*axis];
          for (int64_t i = 0; i < *axis; ++i)
            outer *= data->shape[i];
          for (int64_t i = *axis + 1; i < rank; ++i)
            inner *= data->shape[i];
          for (int64_t o = 0; o < outer; ++o)
            for (int64_t j : *idx) {
              if (j < 0)
                j += n;
              if (j < 0 || j >= n)
                return std::nullopt;
              for (int64_t k = 0; k < inner; ++k)
                e.pushFrom(*data, (o * n + j) * inner + k);
            }
          return e;
        })
        .Case([&](UnsqueezeOp u) -> std::optional<Elements> {
          auto data = get(u.getData());
          auto raw = getConstantInts(u.getAxes(), 64);
          if (!data || !raw)
            return std::nullopt;
          int64_t rank = data->shape.size() + raw->size();
          auto axes = getConstantAxes(u.getAxes(), rank);
          if (!axes)
            return std::nullopt;
          SmallVector<int64_t> shape;
          size_t next = 0;
          for (int64_t i = 0; i < rank; ++i)
            shape.push_back(llvm::is_contained(*axes, i) ? 1
                                                         : data->shape[next++]);
          Elements e = *data;
          e.shape = shape;
          return e;
        })
        .Case([&](SqueezeOp s) -> std::optional<Elements> {
          auto data = get(s.getData());
          if (!data)
            return std::nullopt;
          SmallVector<int64_t> axes;
          if (s.getAxes()) {
            auto a = getConstantAxes(s.getAxes(), data->shape.size());
            if (!a)
              return std::nullopt;
            axes = *a;
          } else {
            for (auto [i, d] : llvm::enumerate(data->shape))
              if (d == 1)
                axes.push_back(i);
          }
          SmallVector<int64_t> shape;
          for (auto [i, d] : llvm::enumerate(data->shape)) {
            if (!llvm::is_contained(axes, (int64_t)i))
              shape.push_back(d);
            else if (d != 1)
              return std::nullopt;
          }
          Elements e = *data;
          e.shape = shape;
          return e;
        })
        .Case([&](FlattenOp f) -> std::optional<Elements> {
          auto data = get(f.getInput());
          if (!data)
            return std::nullopt;
          int64_t axis = f.getAxis();
          if (axis < 0)
            axis += data->shape.size();
          if (axis < 0 || axis > (int64_t)data->shape.size())
            return std::nullopt;
          int64_t outer = 1;
          for (int64_t i = 0; i < axis; ++i)
            outer *= data->shape[i];
          Elements e = *data;
          e.shape = {outer, outer ? data->size() / outer : 0};
          return e;
        })
        .Case([&](TransposeOp t) -> std::optional<Elements> {
          auto data = get(t.getInput());
          if (!data || data->shape.size() != t.getPerm().size())
            return std::nullopt;
          SmallVector<int64_t> shape;
          for (int64_t p : t.getPerm())
            shape.push_back(data->shape[p]);
          Elements e = data->empty(shape);
          SmallVector<int64_t> strides = stridesOf(data->shape), index;
          for (int64_t i = 0; i < e.size(); ++i) {
            unravel(i, shape, index);
            int64_t src = 0;
            for (auto [k, p] : llvm::enumerate(t.getPerm()))
              src += index[k] * strides[p];
            e.pushFrom(*data, src);
          }
          return e;
        })
        .Case([&](IdentityOp i) { return get(i.getInput()); })
        .Case([&](ShapeOp s) -> std::optional<Elements> {
          auto sym = getSymbolicInts(s.getResult());
          return fromSymbolic(sym, resultElem);
        })
        .Case([&](SizeOp s) -> std::optional<Elements> {
          auto ranked = dyn_cast<RankedTensorType>(s.getData().getType());
          if (!ranked || !ranked.hasStaticShape())
            return std::nullopt;
          return intTensor({}, resultElem, {ranked.getNumElements()});
        })
        .Case([&](ConstantOfShapeOp c) -> std::optional<Elements> {
          auto shape = getConstantInts(c.getShape());
          auto value = dyn_cast<DenseElementsAttr>(c.getValue());
          if (!shape || !value || value.getNumElements() != 1)
            return std::nullopt;
          Elements single;
          single.elementType = value.getElementType();
          if (isa<FloatType>(single.elementType))
            single.floats.push_back(*value.getValues<APFloat>().begin());
          else if (isa<IntegerType>(single.elementType))
            single.ints.push_back(*value.getValues<APInt>().begin());
          else
            return std::nullopt;
          for (int64_t d : *shape)
            if (d < 0)
              return std::nullopt;
          return broadcastTo(single, *shape);
        })
        .Case([&](RangeOp r) -> std::optional<Elements> {
          auto start = getConstantInts(r.getStart());
          auto lim = getConstantInts(r.getLimit());
          auto delta = getConstantInts(r.getDelta());
          if (!start || !lim || !delta || start->size() != 1 ||
              lim->size() != 1 || delta->size() != 1 || delta->front() == 0)
            return std::nullopt;
          SmallVector<int64_t> values;
          for (int64_t x = start->front();
               delta->front() > 0 ? x < lim->front() : x > lim->front();
               x += delta->front()) {
            values.push_back(x);
            if ((int64_t)values.size() > limit)
              return std::nullopt;
          }
          return intTensor({(int64_t)values.size()}, resultElem, values);
        })
        .Case([&](WhereOp w) -> std::optional<Elements> {
          auto cond = get(w.getCondition());
          auto x = get(w.getX());
          auto y = get(w.getY());
          if (!cond || !x || !y)
            return std::nullopt;
          auto s1 = broadcastShape(cond->shape, x->shape);
          if (!s1)
            return std::nullopt;
          auto shape = broadcastShape(*s1, y->shape);
          if (!shape)
            return std::nullopt;
          Elements e = x->empty(*shape);
          if (e.size() > limit)
            return std::nullopt;
          SmallVector<int64_t> index;
          for (int64_t i = 0; i < e.size(); ++i) {
            unravel(i, *shape, index);
            bool c = cond->intAt(broadcastIndex(cond->shape, *shape, index));
            if (c)
              e.pushFrom(*x, broadcastIndex(x->shape, *shape, index));
            else
              e.pushFrom(*y, broadcastIndex(y->shape, *shape, index));
          }
          return e;
        })
        .Case([&](CastOp c) { return cast(c, resultElem); })
        .Default([&](Operation *op) { return arithmetic(op, resultElem); });
  }

private:
  std::optional<Elements> get(Value v) { return elementsOf(v, limit); }

  std::optional<Elements> intTensor(ArrayRef<int64_t> shape, Type elem,
                                    ArrayRef<int64_t> values) {
    auto intType = dyn_cast<IntegerType>(elem);
    if (!intType)
      return std::nullopt;
    Elements e;
    e.shape.assign(shape.begin(), shape.end());
    e.elementType = elem;
    for (int64_t v : values) {
      if (!fitsIn(intType, v))
        return std::nullopt;
      e.ints.push_back(makeInt(intType, v));
    }
    return e;
  }

  std::optional<Elements> fromSymbolic(std::optional<SmallVector<SymDim>> sym,
                                       Type elem) {
    if (!sym)
      return std::nullopt;
    SmallVector<int64_t> values;
    for (const SymDim &e : *sym) {
      if (!e.isConstant())
        return std::nullopt;
      values.push_back(e.constant);
    }
    return intTensor({(int64_t)values.size()}, elem, values);
  }

  /// The elements at the cartesian product of per-axis indices.
  std::optional<Elements> select(const Elements &data,
                                 ArrayRef<SmallVector<int64_t>> picks) {
    SmallVector<int64_t> shape;
    for (const auto &p : picks)
      shape.push_back(p.size());
    Elements e = data.empty(shape);
    if (e.size() > limit)
      return std::nullopt;
    SmallVector<int64_t> strides = stridesOf(data.shape), index;
    for (int64_t i = 0; i < e.size(); ++i) {
      unravel(i, shape, index);
      int64_t src = 0;
      for (size_t k = 0; k < shape.size(); ++k)
        src += picks[k][index[k]] * strides[k];
      e.pushFrom(data, src);
    }
    return e;
  }

  std::optional<Elements> broadcastTo(const Elements &data,
                                      ArrayRef<int64_t> shape) {
    Elements e = data.empty(shape);
    if (e.size() > limit)
      return std::nullopt;
    SmallVector<int64_t> index;
    for (int64_t i = 0; i < e.size(); ++i) {
      unravel(i, shape, index);
      e.pushFrom(data, broadcastIndex(data.shape, shape, index));
    }
    return e;
  }

  std::optional<Elements> cast(CastOp c, Type to) {
    auto in = get(c.getInput());
    if (!in)
      return std::nullopt;
    Elements e = in->empty(in->shape);
    e.elementType = to;
    if (auto toInt = dyn_cast<IntegerType>(to)) {
      if (in->isFloat())
        return std::nullopt; // Float-to-integer rounding is left to run time.
      unsigned width = toInt.getWidth();
      for (int64_t i = 0; i < in->size(); ++i) {
        int64_t x = in->intAt(i);
        if (width == 1) {
          e.ints.push_back(APInt(1, x != 0));
          continue;
        }
        if (!fitsIn(toInt, x))
          return std::nullopt;
        e.ints.push_back(makeInt(toInt, x));
      }
      return e;
    }
    auto toFloat = dyn_cast<FloatType>(to);
    if (!toFloat)
      return std::nullopt;
    for (int64_t i = 0; i < in->size(); ++i) {
      APFloat f(toFloat.getFloatSemantics());
      if (in->isFloat()) {
        f = in->floats[i];
        bool lost = false;
        f.convert(toFloat.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                  &lost);
      } else {
        bool isUnsigned =
            in->elementType.isUnsignedInteger() || in->elementType.isInteger(1);
        f.convertFromAPInt(
            isUnsigned ? in->ints[i].zext(64) : in->ints[i].sext(64),
            /*isSigned=*/!isUnsigned, APFloat::rmNearestTiesToEven);
      }
      e.floats.push_back(f);
    }
    return e;
  }

  /// Elementwise integer, boolean and f32/f64 arithmetic with broadcasting.
  std::optional<Elements> arithmetic(Operation *op, Type resultElem) {
    unsigned n = op->getNumOperands();
    if (op->getNumResults() != 1 || n < 1 || n > 2)
      return std::nullopt;
    SmallVector<Elements> args;
    for (Value v : op->getOperands()) {
      auto e = get(v);
      if (!e)
        return std::nullopt;
      args.push_back(*e);
    }
    Type argElem = args.front().elementType;
    bool isFloat = args.front().isFloat();
    if (isFloat && !argElem.isF32() && !argElem.isF64())
      return std::nullopt;
    for (const Elements &a : args)
      if (a.elementType != argElem)
        return std::nullopt;
    SmallVector<int64_t> shape = args.front().shape;
    if (n == 2) {
      auto s = broadcastShape(args[0].shape, args[1].shape);
      if (!s)
        return std::nullopt;
      shape = *s;
    }
    Elements e;
    e.shape = shape;
    e.elementType = resultElem;
    if (e.size() > limit)
      return std::nullopt;
    bool toBool = resultElem.isInteger(1);
    SmallVector<int64_t> index;
    for (int64_t i = 0; i < e.size(); ++i) {
      unravel(i, shape, index);
      int64_t ia = broadcastIndex(args[0].shape, shape, index);
      int64_t ib = n == 2 ? broadcastIndex(args[1].shape, shape, index) : 0;
      if (isFloat) {
        bool single = argElem.isF32();
        auto round = [&](double x) { return single ? (double)(float)x : x; };
        double a = toDouble(args[0].floats[ia]);
        double b = n == 2 ? toDouble(args[1].floats[ib]) : 0.0;
        std::optional<double> r;
        std::optional<bool> cmp;
        llvm::TypeSwitch<Operation *>(op)
            .Case([&](AddOp) { r = round(a + b); })
            .Case([&](SubOp) { r = round(a - b); })
            .Case([&](MulOp) { r = round(a * b); })
            .Case([&](DivOp) { r = round(a / b); })
            .Case([&](NegOp) { r = -a; })
            .Case([&](AbsOp) { r = std::fabs(a); })
            .Case([&](SqrtOp) { r = round(std::sqrt(a)); })
            .Case([&](ReciprocalOp) { r = round(1.0 / a); })
            .Case([&](EqualOp) { cmp = a == b; })
            .Case([&](LessOp) { cmp = a < b; })
            .Case([&](LessOrEqualOp) { cmp = a <= b; })
            .Case([&](GreaterOp) { cmp = a > b; })
            .Case([&](GreaterOrEqualOp) { cmp = a >= b; });
        if (cmp && toBool) {
          e.ints.push_back(APInt(1, *cmp));
        } else if (r && resultElem == argElem) {
          if (single)
            e.floats.push_back(APFloat((float)*r));
          else
            e.floats.push_back(APFloat(*r));
        } else {
          return std::nullopt;
        }
        continue;
      }
      int64_t a = args[0].intAt(ia);
      int64_t b = n == 2 ? args[1].intAt(ib) : 0;
      std::optional<int64_t> r;
      llvm::TypeSwitch<Operation *>(op)
          .Case([&](AddOp) { r = a + b; })
          .Case([&](SubOp) { r = a - b; })
          .Case([&](MulOp) { r = a * b; })
          .Case([&](DivOp) {
            if (a >= 0 && b > 0)
              r = a / b;
          })
          .Case([&](NegOp) { r = -a; })
          .Case([&](AbsOp) { r = a < 0 ? -a : a; })
          .Case([&](MaxOp) { r = std::max(a, b); })
          .Case([&](MinOp) { r = std::min(a, b); })
          .Case([&](EqualOp) { r = a == b; })
          .Case([&](LessOp) { r = a < b; })
          .Case([&](LessOrEqualOp) { r = a <= b; })
          .Case([&](GreaterOp) { r = a > b; })
          .Case([&](GreaterOrEqualOp) { r = a >= b; })
          .Case([&](NotOp) { r = !a; })
          .Case([&](AndOp) { r = a && b; })
          .Case([&](OrOp) { r = a || b; })
          .Case([&](XorOp) { r = (a != 0) != (b != 0); });
      if (!r || !isa<IntegerType>(resultElem))
        return std::nullopt;
      bool isComparison = isa<EqualOp, LessOp, LessOrEqualOp, GreaterOp,
                              GreaterOrEqualOp, NotOp, AndOp, OrOp, XorOp>(op);
      if (isComparison != toBool)
        return std::nullopt;
      if (toBool) {
        e.ints.push_back(APInt(1, *r != 0));
        continue;
      }
      auto resultInt = llvm::cast<IntegerType>(resultElem);
      if (!fitsIn(resultInt, *r))
        return std::nullopt;
      e.ints.push_back(makeInt(resultInt, *r));
    }
    return e;
  }

  static double toDouble(APFloat value) {
    bool lost = false;
    value.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
    return value.convertToDouble();
  }

  int64_t limit;
};

/// True for the generic ops of the llm dialect (not model ops, weights or
/// constants): the ops this file folds and refines.
bool isGenericOp(Operation *op) {
  return isa<LLMDialect>(op->getDialect()) && !isModelOrParameterOp(op) &&
         !isa<MatMulNBitsOp>(op);
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// Refines the result types of a generic op with the shapes ONNX shape
/// inference gives them.
struct RefineResultTypes : public RewritePattern {
  RefineResultTypes(MLIRContext *ctx)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/10, ctx) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    // Ops whose result type is their operand's (the activations) follow a
    // refined operand, or they would no longer verify.
    if (isa<LLMDialect>(op->getDialect()) &&
        op->hasTrait<OpTrait::SameOperandsAndResultType>() &&
        op->getNumOperands() == 1 && op->getNumResults() == 1) {
      Type operandType = op->getOperand(0).getType();
      if (op->getResult(0).getType() == operandType)
        return rewriter.notifyMatchFailure(op, "result type already matches");
      rewriter.modifyOpInPlace(op,
                               [&] { op->getResult(0).setType(operandType); });
      return success();
    }
    if (!isGenericOp(op) && !isa<MatMulNBitsOp>(op))
      return rewriter.notifyMatchFailure(op, "not a generic llm op");
    SmallVector<std::pair<unsigned, Type>> updates;
    for (unsigned i = 0; i < op->getNumResults(); ++i) {
      auto inferred = inferResultShape(op, i);
      if (!inferred)
        continue;
      if (Type refined =
              refineTensorType(op->getResult(i).getType(), *inferred))
        updates.push_back({i, refined});
    }
    if (updates.empty())
      return rewriter.notifyMatchFailure(op,
                                         "no static shape information to add");
    rewriter.modifyOpInPlace(op, [&] {
      for (auto [i, type] : updates)
        op->getResult(i).setType(type);
    });
    return success();
  }
};

/// Replaces a generic op whose operands are constants (or whose result
/// depends only on static shapes) with the constant it computes.
struct FoldConstantOp : public RewritePattern {
  FoldConstantOp(MLIRContext *ctx, int64_t limit)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/5, ctx), limit(limit) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    if (!isGenericOp(op) || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not a single-result generic op");
    bool shapeOnly = isa<ShapeOp, SizeOp>(op);
    if (!shapeOnly && !llvm::all_of(op->getOperands(), [](Value v) {
          return defOp<ConstantOp>(v) != nullptr;
        }))
      return rewriter.notifyMatchFailure(op, "operands are not all constants");
    ConstantEvaluator evaluator(limit);
    std::optional<Elements> folded = evaluator.evaluate(op);
    if (!folded)
      return rewriter.notifyMatchFailure(op, "cannot fold (unsupported op, "
                                             "type or size)");
    if (getElementTypeOrSelf(op->getResult(0).getType()) != folded->elementType)
      return rewriter.notifyMatchFailure(op, "folded element type differs");
    if (auto ranked = dyn_cast<RankedTensorType>(op->getResult(0).getType()))
      if (failed(verifyCompatibleShape(ranked.getShape(), folded->shape)))
        return rewriter.notifyMatchFailure(op, "folded shape contradicts the "
                                               "declared type");
    DenseElementsAttr attr = toAttr(*folded);
    auto cst = ConstantOp::create(rewriter, op->getLoc(), attr.getType(), attr);
    rewriter.replaceOp(op, cst.getResult());
    return success();
  }

  int64_t limit;
};

/// Replaces a 0-D or 1-D integer value whose every element is a known
/// constant (a shape vector built from static dimensions) by a constant.
struct FoldSymbolicShapeVector : public RewritePattern {
  FoldSymbolicShapeVector(MLIRContext *ctx)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/4, ctx) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    if (!isGenericOp(op) || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not a single-result generic op");
    Value result = op->getResult(0);
    auto type = dyn_cast<RankedTensorType>(result.getType());
    auto elem = type ? dyn_cast<IntegerType>(type.getElementType()) : nullptr;
    if (!type || !elem || type.getRank() > 1)
      return rewriter.notifyMatchFailure(op, "not a 0-D/1-D integer value");
    auto sym = getSymbolicInts(result);
    if (!sym)
      return rewriter.notifyMatchFailure(op, "not a symbolic shape vector");
    SmallVector<APInt> values;
    for (const SymDim &e : *sym) {
      if (!e.isConstant())
        return rewriter.notifyMatchFailure(op, "an element is not constant");
      if (!fitsIn(elem, e.constant))
        return rewriter.notifyMatchFailure(op, "an element overflows the type");
      values.push_back(makeInt(elem, e.constant));
    }
    SmallVector<int64_t> shape;
    if (type.getRank() == 1)
      shape.push_back(values.size());
    else if (values.size() != 1)
      return rewriter.notifyMatchFailure(op, "0-D value with several elements");
    if (failed(verifyCompatibleShape(type.getShape(), shape)))
      return rewriter.notifyMatchFailure(op, "length contradicts the type");
    auto attrType = RankedTensorType::get(shape, elem);
    auto cst = ConstantOp::create(rewriter, op->getLoc(), attrType,
                                  DenseElementsAttr::get(attrType, values));
    rewriter.replaceOp(op, cst.getResult());
    return success();
  }
};

/// True when `shapeVec` provably holds exactly the dimensions of `v`
/// (allowing one -1, and 0 meaning "copy" when `zeroCopies`).
static bool isShapeOf(Value shapeVec, Value v, bool zeroCopies,
                      bool allowInfer = true) {
  auto sym = getSymbolicInts(shapeVec);
  int64_t rank = getRank(v);
  if (!sym || rank < 0 || (int64_t)sym->size() != rank)
    return false;
  int inferred = 0;
  for (int64_t i = 0; i < rank; ++i) {
    const SymDim &e = (*sym)[i];
    if (symMatchesDim(e, v, i))
      continue;
    if (e.isConstant(0) && zeroCopies)
      continue;
    if (e.isConstant(-1) && allowInfer && ++inferred == 1)
      continue;
    return false;
  }
  return true;
}

/// Removes ops that provably return their operand: reshapes and expands to
/// the operand's own shape, identity transposes, casts to the same element
/// type, full slices, single-input concats, multiplications and divisions
/// by a broadcast-free one, and empty (un)squeezes.
struct RemoveNoOp : public RewritePattern {
  RemoveNoOp(MLIRContext *ctx)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/3, ctx) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    Value replacement =
        llvm::TypeSwitch<Operation *, Value>(op)
            .Case([](ReshapeOp r) -> Value {
              return isShapeOf(r.getShape(), r.getData(), !r.getAllowzero())
                         ? r.getData()
                         : Value();
            })
            .Case([](ExpandOp x) -> Value {
              auto sym = getSymbolicInts(x.getShape());
              int64_t rank = getRank(x.getInput());
              if (!sym || rank < 0 || (int64_t)sym->size() > rank)
                return Value();
              int64_t offset = rank - sym->size();
              for (auto [i, e] : llvm::enumerate(*sym))
                if (!e.isConstant(1) &&
                    !symMatchesDim(e, x.getInput(), i + offset))
                  return Value();
              return x.getInput();
            })
            .Case([](TransposeOp t) -> Value {
              for (auto [i, p] : llvm::enumerate(t.getPerm()))
                if ((int64_t)i != p)
                  return Value();
              return t.getInput();
            })
            .Case([](CastOp c) -> Value {
              return getElementTypeOrSelf(c.getInput().getType()) ==
                             getElementTypeOrSelf(c.getType())
                         ? c.getInput()
                         : Value();
            })
            .Case([](SliceOp s) -> Value {
              int64_t rank = getRank(s.getData());
              auto starts = getConstantInts(s.getStarts());
              auto ends = getConstantInts(s.getEnds());
              if (rank < 0 || !starts || !ends ||
                  starts->size() != ends->size())
                return Value();
              SmallVector<int64_t> axes;
              if (s.getAxes()) {
                auto a = getConstantAxes(s.getAxes(), rank);
                if (!a)
                  return Value();
                axes = *a;
              } else {
                for (size_t i = 0; i < starts->size(); ++i)
                  axes.push_back(i);
              }
              std::optional<SmallVector<int64_t>> steps;
              if (s.getSteps()) {
                steps = getConstantInts(s.getSteps());
                if (!steps)
                  return Value();
              }
              for (auto [k, axis] : llvm::enumerate(axes)) {
                if (k >= starts->size() || (*starts)[k] != 0 ||
                    (steps && (*steps)[k] != 1))
                  return Value();
                int64_t end = (*ends)[k];
                int64_t dim = getStaticDim(s.getData(), axis);
                bool full = end >= std::numeric_limits<int32_t>::max() ||
                            (!ShapedType::isDynamic(dim) && end >= dim);
                if (!full)
                  return Value();
              }
              return s.getData();
            })
            .Case([](ConcatOp c) -> Value {
              return c.getInputs().size() == 1 ? c.getInputs().front()
                                               : Value();
            })
            .Case<MulOp, DivOp>([](auto m) -> Value {
              Value x = m.getLhs();
              if (!isFloatTensor(x) &&
                  !isa<IntegerType>(getElementTypeOrSelf(x.getType())))
                return Value();
              if (getRank(x) < 0 ||
                  !isScalarConstant(m.getRhs(), 1.0, 0.0, getRank(x)))
                return Value();
              return x;
            })
            .Case([](UnsqueezeOp u) -> Value {
              auto axes = getConstantInts(u.getAxes());
              return axes && axes->empty() ? u.getData() : Value();
            })
            .Case([](SqueezeOp s) -> Value {
              if (!s.getAxes())
                return Value();
              auto axes = getConstantInts(s.getAxes());
              return axes && axes->empty() ? s.getData() : Value();
            })
            .Default([](Operation *) { return Value(); });
    // mul(1, x) is the commuted form of the multiplication case.
    if (!replacement)
      if (auto mul = dyn_cast<MulOp>(op))
        if (getRank(mul.getRhs()) >= 0 &&
            isScalarConstant(mul.getLhs(), 1.0, 0.0, getRank(mul.getRhs())))
          replacement = mul.getRhs();
    if (!replacement)
      return rewriter.notifyMatchFailure(op, "not a provable no-op");
    if (getElementTypeOrSelf(replacement.getType()) !=
        getElementTypeOrSelf(op->getResult(0).getType()))
      return rewriter.notifyMatchFailure(op, "element types differ");
    rewriter.replaceOp(op, replacement);
    return success();
  }
};

/// Rewrites reshape(transpose(reshape(x, [-1, a, b]), [0, 2, 1]),
/// [d0, ..., b, a]) with a, b the last two dimensions of x and d0... its
/// leading ones, the dynamo export of x.transpose(-2, -1), into one
/// llm.transpose of x.
struct FoldReshapeTransposeReshape : public OpRewritePattern<ReshapeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ReshapeOp outer,
                                PatternRewriter &rewriter) const override {
    auto transpose = defOp<TransposeOp>(outer.getData());
    if (!transpose || transpose.getPerm() != ArrayRef<int64_t>{0, 2, 1})
      return rewriter.notifyMatchFailure(outer,
                                         "not reshape of a 3-D transpose");
    auto inner = defOp<ReshapeOp>(transpose.getInput());
    if (!inner)
      return rewriter.notifyMatchFailure(outer,
                                         "transpose input is not a reshape");
    Value x = inner.getData();
    int64_t rank = getRank(x);
    if (rank < 3)
      return rewriter.notifyMatchFailure(outer,
                                         "input rank unknown or below 3");
    auto s1 = getSymbolicInts(inner.getShape());
    auto s2 = getSymbolicInts(outer.getShape());
    if (!s1 || !s2 || s1->size() != 3 || (int64_t)s2->size() != rank)
      return rewriter.notifyMatchFailure(outer, "shape vectors unknown");
    // inner: [-1 (or the product of the leading dims), a, b].
    if (!symMatchesDim((*s1)[1], x, rank - 2) ||
        !symMatchesDim((*s1)[2], x, rank - 1))
      return rewriter.notifyMatchFailure(outer, "inner reshape does not keep "
                                                "the last two dimensions");
    if (!(*s1)[0].isConstant(-1)) {
      int64_t lead = 1;
      for (int64_t i = 0; i < rank - 2; ++i) {
        int64_t d = getStaticDim(x, i);
        if (ShapedType::isDynamic(d)) {
          lead = -1;
          break;
        }
        lead *= d;
      }
      if (lead < 0 || !(*s1)[0].isConstant(lead))
        return rewriter.notifyMatchFailure(outer, "inner reshape does not "
                                                  "merge the leading dims");
    }
    // outer: [d0, ..., b, a] (one -1 allowed).
    int inferred = 0;
    for (int64_t i = 0; i < rank; ++i) {
      int64_t src = i < rank - 2 ? i : (i == rank - 2 ? rank - 1 : rank - 2);
      const SymDim &e = (*s2)[i];
      if (symMatchesDim(e, x, src))
        continue;
      if (e.isConstant(-1) && ++inferred == 1)
        continue;
      return rewriter.notifyMatchFailure(outer, "outer reshape is not the "
                                                "transposed shape");
    }
    SmallVector<int64_t> perm;
    for (int64_t i = 0; i < rank - 2; ++i)
      perm.push_back(i);
    perm.push_back(rank - 1);
    perm.push_back(rank - 2);
    rewriter.replaceOpWithNewOp<TransposeOp>(
        outer, outer.getType(), x, rewriter.getDenseI64ArrayAttr(perm));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct LLMFoldShapesPass
    : public kiln::llm::impl::LLMFoldShapesBase<LLMFoldShapesPass> {
  using LLMFoldShapesBase::LLMFoldShapesBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    RewritePatternSet patterns(&getContext());
    populateFoldShapesPatterns(patterns, maxFoldElements);
    GreedyRewriteConfig config;
    config.setUseTopDownTraversal(true);
    config.setMaxIterations(64);
    // Not converging within the iteration limit leaves valid IR.
    (void)applyPatternsGreedily(func, std::move(patterns), config);
    // Results whose types were refined change the function's signature.
    auto ret = dyn_cast<func::ReturnOp>(func.getBody().back().getTerminator());
    if (!ret)
      return;
    SmallVector<Type> results(ret.getOperandTypes());
    if (results != func.getFunctionType().getResults())
      func.setFunctionType(FunctionType::get(
          &getContext(), func.getFunctionType().getInputs(), results));
  }
};

} // namespace

void kiln::llm::populateFoldShapesPatterns(RewritePatternSet &patterns,
                                           int64_t maxFoldElements) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<RefineResultTypes, FoldSymbolicShapeVector, RemoveNoOp>(ctx);
  patterns.add<FoldConstantOp>(ctx, maxFoldElements);
  patterns.add<FoldReshapeTransposeReshape>(ctx);
}
