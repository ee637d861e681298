//===- LinearAlgebraOps.cpp - ONNX MatMul, Gemm, MatMulNBits, Einsum ------===//

#include "../OnnxOpTable.h"

#include <onnx/onnx_pb.h>

#include <cctype>

using namespace mlir;
using namespace kiln;
using Results = FailureOr<SmallVector<Value>>;

namespace {

Results matmul(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects two inputs");
  return SmallVector<Value>{c.create<llm::MatMulOp>(
      c.resultType(0, c.elementTypeOf(c.input(0))),
      ValueRange{c.input(0), c.input(1)})};
}

/// Gemm is Y = alpha * A' B' + beta * C: decomposed into transpose, matmul,
/// scaling and a broadcasting add that the raising passes see through.
Results gemm(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects A and B");
  Type elem = c.elementTypeOf(c.input(0));
  auto unranked = UnrankedTensorType::get(elem);
  auto transposed = [&](Value v) {
    return c.create<llm::TransposeOp>(
        unranked, v,
        {c.builder.getNamedAttr("perm", c.builder.getDenseI64ArrayAttr({1, 0}))});
  };
  Value a = c.attrInt("transA", 0) ? transposed(c.input(0)) : c.input(0);
  Value b = c.attrInt("transB", 0) ? transposed(c.input(1)) : c.input(1);
  float alpha = c.attrFloat("alpha", 1.0f), beta = c.attrFloat("beta", 1.0f);
  Value y = c.create<llm::MatMulOp>(unranked, ValueRange{a, b});
  if (alpha != 1.0f)
    y = c.create<llm::MulOp>(unranked,
                             ValueRange{y, c.constantScalar(elem, alpha)});
  if (Value bias = c.input(2)) {
    if (beta != 1.0f)
      bias = c.create<llm::MulOp>(unranked,
                                  ValueRange{bias, c.constantScalar(elem, beta)});
    y = c.create<llm::AddOp>(unranked, ValueRange{y, bias});
  }
  // Give the final value the graph's declared type.
  Type declared = c.resultType(0, elem);
  if (declared != y.getType())
    y.setType(declared);
  return SmallVector<Value>{y};
}

/// com.microsoft MatMulNBits: block-quantized weight, optional zero points
/// and bias. Activation-order (g_idx) quantization is not supported.
Results matmulNBits(NodeContext &c) {
  if (!c.input(0) || !c.input(1) || !c.input(2))
    return c.fail("expects A, B and scales");
  if (c.input(4))
    return c.fail("g_idx (activation-order quantization) is not supported");
  for (StringRef required : {"K", "N", "block_size"})
    if (!c.attr(required))
      return c.fail("requires the '" + required + "' attribute");
  Type elem = c.elementTypeOf(c.input(0));
  Value bias = c.input(5);
  auto op = llm::MatMulNBitsOp::create(
      c.builder, c.loc,
      bias ? Type(UnrankedTensorType::get(elem)) : c.resultType(0, elem),
      c.input(0), c.input(1), c.input(2), c.input(3),
      c.builder.getI64IntegerAttr(c.attrInt("K", 0)),
      c.builder.getI64IntegerAttr(c.attrInt("N", 0)),
      c.builder.getI64IntegerAttr(c.attrInt("bits", 4)),
      c.builder.getI64IntegerAttr(c.attrInt("block_size", 0)));
  Value y = op.getResult();
  if (bias)
    y = c.create<llm::AddOp>(c.resultType(0, elem), ValueRange{y, bias});
  return SmallVector<Value>{y};
}

/// Einsum 12: the equation is checked for its alphabet here; the kernel
/// checks it against the operand ranks.
Results einsum(NodeContext &c) {
  std::string equation = c.attrString("equation", "");
  if (equation.empty())
    return c.fail("requires the 'equation' attribute");
  for (char ch : equation)
    if (!std::isalpha((unsigned char)ch) && ch != ',' && ch != '-' &&
        ch != '>' && ch != '.' && ch != ' ')
      return c.fail("equation '" + equation + "' has an invalid character");
  SmallVector<Value> operands;
  for (Value v : c.inputs) {
    if (!v)
      return c.fail("expects no absent inputs");
    operands.push_back(v);
  }
  if (operands.empty())
    return c.fail("expects at least one input");
  return SmallVector<Value>{c.create<llm::EinsumOp>(
      c.resultType(0, c.elementTypeOf(operands[0])), operands,
      {c.builder.getNamedAttr("equation", c.builder.getStringAttr(equation))})};
}

} // namespace

void kiln::registerLinearAlgebraOps(OnnxOpTable &t) {
  t.add("", "MatMul", {9, 13}, matmul);
  t.add("", "Gemm", {11, 13}, gemm);
  t.add("", "Einsum", {12}, einsum);
  t.add("com.microsoft", "MatMulNBits", {1}, matmulNBits);
}
