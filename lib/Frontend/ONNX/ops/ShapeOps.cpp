//===- ShapeOps.cpp - ONNX shape and data-movement ops to llm -------------===//
//
// Reshape, Expand, Concat, Slice, the Gathers, (Un)Squeeze, Shape, Size,
// Range, CumSum, ConstantOfShape, Flatten, Split, Trilu, Tile, Transpose,
// Constant, ScatterND, ScatterElements, Pad, OneHot, NonZero and Compress. Axes that older opsets give as attributes become constant
// operands, so that llm ops have one form whatever the opset.
//
//===----------------------------------------------------------------------===//

#include "../OnnxOpTable.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace kiln;
using Results = FailureOr<SmallVector<Value>>;

namespace {

Type sameType(NodeContext &c) {
  return c.resultType(0, c.elementTypeOf(c.input(0)));
}

Results reshape(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects data and shape");
  return SmallVector<Value>{
      c.create<llm::ReshapeOp>(sameType(c), ValueRange{c.input(0), c.input(1)},
                               {c.i64Attr("allowzero", c.attrInt("allowzero", 0))})};
}

Results expand(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects input and shape");
  return SmallVector<Value>{
      c.create<llm::ExpandOp>(sameType(c), ValueRange{c.input(0), c.input(1)})};
}

Results concat(NodeContext &c) {
  if (!c.attr("axis"))
    return c.fail("requires the 'axis' attribute");
  SmallVector<Value> operands;
  for (Value v : c.inputs)
    if (v)
      operands.push_back(v);
  if (operands.empty())
    return c.fail("expects at least one input");
  return SmallVector<Value>{c.create<llm::ConcatOp>(
      c.resultType(0, c.elementTypeOf(operands[0])), operands,
      {c.i64Attr("axis", c.attrInt("axis", 0))})};
}

Results slice(NodeContext &c) {
  if (!c.input(0) || !c.input(1) || !c.input(2))
    return c.fail("expects data, starts and ends");
  auto op = llm::SliceOp::create(c.builder, c.loc, sameType(c), c.input(0),
                                 c.input(1), c.input(2), c.input(3), c.input(4));
  return SmallVector<Value>{op.getResult()};
}

template <typename OpT>
OnnxOpHandler gatherLike(StringRef axisName, int64_t def) {
  std::string name = axisName.str();
  return [name, def](NodeContext &c) -> Results {
    if (!c.input(0) || !c.input(1))
      return c.fail("expects data and indices");
    return SmallVector<Value>{
        c.create<OpT>(sameType(c), ValueRange{c.input(0), c.input(1)},
                      {c.i64Attr(name, c.attrInt(name, def))})};
  };
}

/// Squeeze/Unsqueeze before opset 13 take axes as an attribute.
template <typename OpT> OnnxOpHandler squeezeLike(bool axesFromAttr) {
  return [axesFromAttr](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects data");
    Value axes = c.input(1);
    if (axesFromAttr) {
      if (auto ints = c.attrInts("axes"))
        axes = c.constantI64(*ints);
    }
    if constexpr (std::is_same_v<OpT, llm::UnsqueezeOp>) {
      if (!axes)
        return c.fail("requires axes");
      return SmallVector<Value>{
          c.create<OpT>(sameType(c), ValueRange{c.input(0), axes})};
    } else {
      auto op = llm::SqueezeOp::create(c.builder, c.loc, sameType(c), c.input(0), axes);
      return SmallVector<Value>{op.getResult()};
    }
  };
}

Results shape(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects data");
  SmallVector<NamedAttribute> attrs{c.i64Attr("start", c.attrInt("start", 0))};
  if (c.attr("end"))
    attrs.push_back(c.i64Attr("end", c.attrInt("end", 0)));
  return SmallVector<Value>{c.create<llm::ShapeOp>(
      c.resultType(0, c.builder.getI64Type()), c.input(0), attrs)};
}

Results size(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects data");
  return SmallVector<Value>{
      c.create<llm::SizeOp>(c.resultType(0, c.builder.getI64Type()), c.input(0))};
}

Results range(NodeContext &c) {
  if (!c.input(0) || !c.input(1) || !c.input(2))
    return c.fail("expects start, limit and delta");
  return SmallVector<Value>{c.create<llm::RangeOp>(
      sameType(c), ValueRange{c.input(0), c.input(1), c.input(2)})};
}

Results cumsum(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects x and axis");
  return SmallVector<Value>{c.create<llm::CumSumOp>(
      sameType(c), ValueRange{c.input(0), c.input(1)},
      {c.i64Attr("exclusive", c.attrInt("exclusive", 0)),
       c.i64Attr("reverse", c.attrInt("reverse", 0))})};
}

Results constantOfShape(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects a shape");
  Attribute value;
  if (const auto *a = c.attr("value")) {
    Value cst = c.constantTensor(a->t());
    auto op = cst ? cst.getDefiningOp<llm::ConstantOp>() : nullptr;
    if (!op)
      return c.fail("'value' must be a one-element tensor");
    value = op.getValue();
    op.erase();
  } else {
    auto type = RankedTensorType::get({1}, c.builder.getF32Type());
    value = DenseElementsAttr::get(type, 0.0f);
  }
  auto elements = cast<ElementsAttr>(value);
  if (elements.getNumElements() != 1)
    return c.fail("'value' must have exactly one element");
  return SmallVector<Value>{c.create<llm::ConstantOfShapeOp>(
      c.resultType(0, elements.getElementType()), c.input(0),
      {c.builder.getNamedAttr("value", value)})};
}

Results flatten(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  return SmallVector<Value>{c.create<llm::FlattenOp>(
      sameType(c), c.input(0), {c.i64Attr("axis", c.attrInt("axis", 1))})};
}

/// Split: sizes from the 'split' attribute (11), the second input (13) or
/// equal parts (num_outputs in 18, the output count before).
OnnxOpHandler split(bool sizesFromAttr) {
  return [sizesFromAttr](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects an input");
    Value sizes = c.input(1);
    if (sizesFromAttr) {
      if (auto ints = c.attrInts("split"))
        sizes = c.constantI64(*ints);
    }
    SmallVector<Type> types;
    for (unsigned i = 0; i < c.numOutputs(); ++i)
      types.push_back(c.resultType(i, c.elementTypeOf(c.input(0))));
    auto op = llm::SplitOp::create(c.builder, c.loc, types, c.input(0), sizes,
                                   c.builder.getI64IntegerAttr(c.attrInt("axis", 0)));
    return SmallVector<Value>(op.getResults().begin(), op.getResults().end());
  };
}

Results trilu(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  auto op = llm::TriluOp::create(c.builder, c.loc, sameType(c), c.input(0),
                                 c.input(1),
                                 c.builder.getI64IntegerAttr(c.attrInt("upper", 1)));
  return SmallVector<Value>{op.getResult()};
}

Results tile(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects input and repeats");
  return SmallVector<Value>{
      c.create<llm::TileOp>(sameType(c), ValueRange{c.input(0), c.input(1)})};
}

Results transpose(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  std::vector<int64_t> perm;
  if (auto ints = c.attrInts("perm")) {
    perm = *ints;
  } else {
    auto ranked = dyn_cast<RankedTensorType>(c.input(0).getType());
    if (!ranked)
      return c.fail("without 'perm' needs an input of known rank");
    for (int64_t d = ranked.getRank() - 1; d >= 0; --d)
      perm.push_back(d);
  }
  return SmallVector<Value>{c.create<llm::TransposeOp>(
      sameType(c), c.input(0),
      {c.builder.getNamedAttr("perm", c.builder.getDenseI64ArrayAttr(perm))})};
}

Results constant(NodeContext &c) {
  if (const auto *a = c.attr("value")) {
    Value v = c.constantTensor(a->t());
    if (!v)
      return failure();
    return SmallVector<Value>{v};
  }
  auto f32 = c.builder.getF32Type();
  if (const auto *a = c.attr("value_float"))
    return SmallVector<Value>{c.constantScalar(f32, a->f())};
  if (const auto *a = c.attr("value_int"))
    return SmallVector<Value>{c.constantI64({a->i()}, /*scalar=*/true)};
  if (auto ints = c.attrInts("value_ints"))
    return SmallVector<Value>{c.constantI64(*ints)};
  if (const auto *a = c.attr("value_floats")) {
    std::vector<float> values(a->floats().begin(), a->floats().end());
    auto type = RankedTensorType::get({(int64_t)values.size()}, f32);
    return SmallVector<Value>{llm::ConstantOp::create(
        c.builder, c.loc, type,
        DenseElementsAttr::get(type, ArrayRef<float>(values)))};
  }
  return c.fail("only tensor, float(s) and int(s) values are supported "
                "(sparse and string constants are not)");
}

/// ScatterND and ScatterElements: `reduction` from 16 (add, mul) and 18
/// (max, min); before 16 it is always none.
template <typename OpT> OnnxOpHandler scatter(bool hasAxis) {
  return [hasAxis](NodeContext &c) -> Results {
    if (!c.input(0) || !c.input(1) || !c.input(2))
      return c.fail("expects data, indices and updates");
    std::string reduction = c.attrString("reduction", "none");
    if (reduction != "none" && reduction != "add" && reduction != "mul" &&
        reduction != "max" && reduction != "min")
      return c.fail("unknown reduction '" + reduction + "'");
    if ((c.opset < 16 && reduction != "none") ||
        (c.opset < 18 && (reduction == "max" || reduction == "min")))
      return c.fail("reduction '" + reduction + "' needs a newer opset than " +
                    std::to_string(c.opset));
    SmallVector<NamedAttribute> attrs{c.builder.getNamedAttr(
        "reduction", c.builder.getStringAttr(reduction))};
    if (hasAxis)
      attrs.push_back(c.i64Attr("axis", c.attrInt("axis", 0)));
    return SmallVector<Value>{c.create<OpT>(
        sameType(c), ValueRange{c.input(0), c.input(1), c.input(2)}, attrs)};
  };
}

/// Pad 11+: pads (and constant_value, axes from 18) are inputs.
Results pad(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects data and pads");
  std::string mode = c.attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" &&
      !(mode == "wrap" && c.opset >= 19))
    return c.fail("unknown mode '" + mode + "'");
  Value axes = c.opset >= 18 ? c.input(3) : Value();
  auto op = llm::PadOp::create(c.builder, c.loc, sameType(c), c.input(0),
                               c.input(1), c.input(2), axes,
                               c.builder.getStringAttr(mode));
  return SmallVector<Value>{op.getResult()};
}

Results oneHot(NodeContext &c) {
  if (!c.input(0) || !c.input(1) || !c.input(2))
    return c.fail("expects indices, depth and values");
  return SmallVector<Value>{c.create<llm::OneHotOp>(
      c.resultType(0, c.elementTypeOf(c.input(2))),
      ValueRange{c.input(0), c.input(1), c.input(2)},
      {c.i64Attr("axis", c.attrInt("axis", -1))})};
}

Results nonZero(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  return SmallVector<Value>{c.create<llm::NonZeroOp>(
      c.resultType(0, c.builder.getI64Type()), c.input(0))};
}

Results compress(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects input and condition");
  SmallVector<NamedAttribute> attrs;
  if (c.attr("axis"))
    attrs.push_back(c.i64Attr("axis", c.attrInt("axis", 0)));
  return SmallVector<Value>{c.create<llm::CompressOp>(
      sameType(c), ValueRange{c.input(0), c.input(1)}, attrs)};
}

} // namespace

void kiln::registerShapeOps(OnnxOpTable &t) {
  t.add("", "Reshape", {5, 13, 14, 19, 21}, reshape);
  t.add("", "Expand", {8, 13}, expand);
  t.add("", "Concat", {4, 11, 13}, concat);
  t.add("", "Slice", {10, 11, 13}, slice);
  t.add("", "Gather", {11, 13}, gatherLike<llm::GatherOp>("axis", 0));
  t.add("", "GatherElements", {11, 13},
        gatherLike<llm::GatherElementsOp>("axis", 0));
  t.add("", "GatherND", {11, 12, 13},
        gatherLike<llm::GatherNDOp>("batch_dims", 0));
  t.add("", "Squeeze", {11}, squeezeLike<llm::SqueezeOp>(true));
  t.add("", "Squeeze", {13, 21}, squeezeLike<llm::SqueezeOp>(false));
  t.add("", "Unsqueeze", {11}, squeezeLike<llm::UnsqueezeOp>(true));
  t.add("", "Unsqueeze", {13, 21}, squeezeLike<llm::UnsqueezeOp>(false));
  t.add("", "Shape", {13, 15, 19, 21}, shape);
  t.add("", "Size", {13, 19, 21}, size);
  t.add("", "Range", {11}, range);
  t.add("", "CumSum", {11, 14}, cumsum);
  t.add("", "ConstantOfShape", {9, 20, 21}, constantOfShape);
  t.add("", "Flatten", {11, 13, 21}, flatten);
  t.add("", "Split", {11}, split(true));
  t.add("", "Split", {13, 18}, split(false));
  t.add("", "Trilu", {14}, trilu);
  t.add("", "Tile", {13}, tile);
  t.add("", "Transpose", {13, 21}, transpose);
  t.add("", "Constant", {13, 19, 21}, constant);
  t.add("", "ScatterND", {11, 13, 16, 18}, scatter<llm::ScatterNDOp>(false));
  t.add("", "ScatterElements", {11, 13, 16, 18},
        scatter<llm::ScatterElementsOp>(true));
  // Scatter (9, deprecated in 11) is ScatterElements without reduction.
  t.add("", "Scatter", {9, 11}, scatter<llm::ScatterElementsOp>(true));
  t.add("", "Pad", {11, 13, 18, 19}, pad);
  t.add("", "OneHot", {11}, oneHot);
  t.add("", "NonZero", {13}, nonZero);
  t.add("", "Compress", {11}, compress);
}
