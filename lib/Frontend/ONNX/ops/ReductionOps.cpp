//===- ReductionOps.cpp - ONNX reductions and softmax to llm --------------===//

#include "../OnnxOpTable.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace kiln;
using Results = FailureOr<SmallVector<Value>>;

namespace {

/// Reductions take axes as an attribute before opset 18 (13 for ReduceSum)
/// and as an optional input after; both become the optional `axes` operand.
template <typename OpT> OnnxOpHandler reduce(bool axesFromAttr) {
  return [axesFromAttr](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects data");
    Value axes = c.input(1);
    if (axesFromAttr) {
      if (auto ints = c.attrInts("axes"))
        axes = c.constantI64(*ints);
    }
    auto op = OpT::create(
        c.builder, c.loc, c.resultType(0, c.elementTypeOf(c.input(0))),
        c.input(0), axes, c.builder.getI64IntegerAttr(c.attrInt("keepdims", 1)),
        c.builder.getI64IntegerAttr(c.attrInt("noop_with_empty_axes", 0)));
    return SmallVector<Value>{op.getResult()};
  };
}

template <typename OpT> OnnxOpHandler argReduce() {
  return [](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects data");
    return SmallVector<Value>{c.create<OpT>(
        c.resultType(0, c.builder.getI64Type()), c.input(0),
        {c.i64Attr("axis", c.attrInt("axis", 0)),
         c.i64Attr("keepdims", c.attrInt("keepdims", 1)),
         c.i64Attr("select_last_index", c.attrInt("select_last_index", 0))})};
  };
}

template <typename OpT> OnnxOpHandler softmaxLike() {
  return [](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects an input");
    return SmallVector<Value>{
        c.create<OpT>(c.resultType(0, c.elementTypeOf(c.input(0))), c.input(0),
                      {c.i64Attr("axis", c.attrInt("axis", -1))})};
  };
}

/// TopK 11: k is a 1-element int64 input; values and indices outputs.
Results topK(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects X and K");
  auto op = llm::TopKOp::create(
      c.builder, c.loc,
      TypeRange{c.resultType(0, c.elementTypeOf(c.input(0))),
                c.resultType(1, c.builder.getI64Type())},
      ValueRange{c.input(0), c.input(1)},
      ArrayRef<NamedAttribute>{c.i64Attr("axis", c.attrInt("axis", -1)),
                               c.i64Attr("largest", c.attrInt("largest", 1)),
                               c.i64Attr("sorted", c.attrInt("sorted", 1))});
  return SmallVector<Value>{op.getValues(), op.getIndices()};
}

template <typename OpT>
void addReduce(OnnxOpTable &t, StringRef name, int inputSince) {
  t.add("", name, {11, 13}, reduce<OpT>(/*axesFromAttr=*/true));
  t.add("", name, {inputSince}, reduce<OpT>(/*axesFromAttr=*/false));
}

} // namespace

void kiln::registerReductionOps(OnnxOpTable &t) {
  t.add("", "ReduceSum", {11}, reduce<llm::ReduceSumOp>(true));
  t.add("", "ReduceSum", {13}, reduce<llm::ReduceSumOp>(false));
  addReduce<llm::ReduceMeanOp>(t, "ReduceMean", 18);
  addReduce<llm::ReduceMaxOp>(t, "ReduceMax", 18);
  t.add("", "ReduceMax", {20}, reduce<llm::ReduceMaxOp>(false));
  addReduce<llm::ReduceMinOp>(t, "ReduceMin", 18);
  t.add("", "ReduceMin", {20}, reduce<llm::ReduceMinOp>(false));
  addReduce<llm::ReduceProdOp>(t, "ReduceProd", 18);
  addReduce<llm::ReduceL1Op>(t, "ReduceL1", 18);
  addReduce<llm::ReduceL2Op>(t, "ReduceL2", 18);
  addReduce<llm::ReduceSumSquareOp>(t, "ReduceSumSquare", 18);
  addReduce<llm::ReduceLogSumOp>(t, "ReduceLogSum", 18);
  addReduce<llm::ReduceLogSumExpOp>(t, "ReduceLogSumExp", 18);
  t.add("", "ArgMax", {11, 12, 13}, argReduce<llm::ArgMaxOp>());
  t.add("", "ArgMin", {11, 12, 13}, argReduce<llm::ArgMinOp>());
  t.add("", "Softmax", {13}, softmaxLike<llm::SoftmaxOp>());
  t.add("", "LogSoftmax", {13}, softmaxLike<llm::LogSoftmaxOp>());
  t.add("", "Hardmax", {13}, softmaxLike<llm::HardmaxOp>());
  t.add("", "TopK", {11}, topK);
}
