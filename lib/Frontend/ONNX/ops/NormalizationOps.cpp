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

Results layerNorm(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects X and Scale");
  if (failed(checkLastAxis(c)))
    return c.fail("normalization over axes other than the last is not supported");
  for (unsigned i = 1; i < c.numOutputs(); ++i)
    if (!c.node.output(i).empty())
      return c.fail("the Mean and InvStdDev outputs are not supported");
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
