//===- NormalizationOps.cpp - ONNX normalization ops to llm ---------------===//
//
// Exporters that keep normalization whole (LayerNormalization-17,
// RMSNormalization-23, ORT's SimplifiedLayerNormalization) map straight to
// llm.layer_norm / llm.rms_norm; decomposed chains are raised by passes.
//
//===----------------------------------------------------------------------===//

#include "../OnnxOpTable.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace kiln;
using Results = FailureOr<SmallVector<Value>>;

namespace {

/// Only normalization over the last axis maps to llm ops.
LogicalResult checkLastAxis(NodeContext &c) {
  int64_t axis = c.attrInt("axis", -1);
  if (axis == -1)
    return success();
  auto ranked = dyn_cast<RankedTensorType>(c.input(0).getType());
  if (ranked && axis == ranked.getRank() - 1)
    return success();
  return failure();
}

/// LayerNormalization over axes [axis, rank) or with its Mean/InvStdDev
/// outputs: spelled out in generic ops (mean, centred variance, 1/sqrt).
Results decomposedLayerNorm(NodeContext &c) {
  auto ranked = dyn_cast<RankedTensorType>(c.input(0).getType());
  if (!ranked)
    return c.fail("normalization over a leading axis needs an input of known rank");
  int64_t rank = ranked.getRank();
  int64_t axis = c.attrInt("axis", -1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return c.fail("axis " + std::to_string(c.attrInt("axis", -1)) +
                  " is out of range for rank " + std::to_string(rank));
  Type elem = ranked.getElementType();
  auto any = UnrankedTensorType::get(elem);
  std::vector<int64_t> axesList;
  for (int64_t d = axis; d < rank; ++d)
    axesList.push_back(d);
  Value axes = c.constantI64(axesList);
  auto mean = [&](Value v, Type t) {
    return llm::ReduceMeanOp::create(c.builder, c.loc, t, v, axes,
                                      c.builder.getI64IntegerAttr(1),
                                      c.builder.getI64IntegerAttr(0))
        .getResult();
  };
  Value mu = mean(c.input(0), c.numOutputs() > 1 ? c.resultType(1, elem) : any);
  Value centred = c.create<llm::SubOp>(any, ValueRange{c.input(0), mu});
  Value square = c.create<llm::MulOp>(any, ValueRange{centred, centred});
  Value var = mean(square, any);
  Value eps = c.constantScalar(elem, c.attrFloat("epsilon", 1e-5f));
  Value std = c.create<llm::SqrtOp>(any, c.create<llm::AddOp>(any, ValueRange{var, eps}));
  Value inv = c.create<llm::ReciprocalOp>(
      c.numOutputs() > 2 ? c.resultType(2, elem) : any, std);
  Value normed = c.create<llm::MulOp>(any, ValueRange{centred, inv});
  Value y = c.create<llm::MulOp>(c.input(2) ? any : c.resultType(0, elem),
                                 ValueRange{normed, c.input(1)});
  if (Value bias = c.input(2))
    y = c.create<llm::AddOp>(c.resultType(0, elem), ValueRange{y, bias});
  SmallVector<Value> results{y, mu, inv};
  results.resize(std::min<unsigned>(3, c.numOutputs()));
  return results;
}

Results layerNorm(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects X and Scale");
  bool extraOutputs = false;
  for (unsigned i = 1; i < c.numOutputs(); ++i)
    extraOutputs |= !c.node.output(i).empty();
  if (failed(checkLastAxis(c)) || extraOutputs)
    return decomposedLayerNorm(c);
  auto op = llm::LayerNormOp::create(
      c.builder, c.loc, c.resultType(0, c.elementTypeOf(c.input(0))),
      c.input(0), c.input(1), c.input(2),
      c.builder.getF32FloatAttr(c.attrFloat("epsilon", 1e-5f)));
  return SmallVector<Value>{op.getResult()};
}

Results rmsNorm(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects X and scale");
  if (failed(checkLastAxis(c)))
    return c.fail("normalization over axes other than the last is not supported");
  for (unsigned i = 1; i < c.numOutputs(); ++i)
    if (!c.node.output(i).empty())
      return c.fail("the InvStdDev output is not supported");
  auto op = llm::RMSNormOp::create(
      c.builder, c.loc, c.resultType(0, c.elementTypeOf(c.input(0))),
      c.input(0), c.input(1),
      c.builder.getF32FloatAttr(c.attrFloat("epsilon", 1e-5f)),
      c.builder.getF32FloatAttr(0.0f));
  return SmallVector<Value>{op.getResult()};
}

} // namespace

void kiln::registerNormalizationOps(OnnxOpTable &t) {
  t.add("", "LayerNormalization", {17}, layerNorm);
  t.add("", "RMSNormalization", {23}, rmsNorm);
  t.add("", "SimplifiedLayerNormalization", {1}, rmsNorm);
  t.add("com.microsoft", "SimplifiedLayerNormalization", {1}, rmsNorm);
}
