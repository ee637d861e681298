//===- ElementwiseOps.cpp - ONNX elementwise ops to llm -------------------===//
//
// Unary math and activations, broadcasting binary arithmetic, comparisons and
// logic, Where, Cast and Clip.
//
//===----------------------------------------------------------------------===//

#include "../OnnxOpTable.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace kiln;
using Results = FailureOr<SmallVector<Value>>;

namespace {

/// Scalar attributes of unary ops (alpha, beta, gamma of activations,
/// detect_negative of IsInf, ...) travel as f32/i64 attributes of the same
/// name; the executor applies the ONNX defaults for absent ones.
SmallVector<NamedAttribute> scalarAttrs(NodeContext &c) {
  SmallVector<NamedAttribute> attrs;
  for (const auto &a : c.node.attribute()) {
    if (a.type() == onnx::AttributeProto::FLOAT)
      attrs.push_back(c.f32Attr(a.name(), a.f()));
    else if (a.type() == onnx::AttributeProto::INT)
      attrs.push_back(c.i64Attr(a.name(), a.i()));
  }
  return attrs;
}

template <typename OpT> OnnxOpHandler unary(bool boolResult = false) {
  return [boolResult](NodeContext &c) -> Results {
    if (!c.input(0))
      return c.fail("expects one input");
    Type elem = boolResult ? c.builder.getI1Type() : c.elementTypeOf(c.input(0));
    return SmallVector<Value>{
        c.create<OpT>(c.resultType(0, elem), c.input(0), scalarAttrs(c))};
  };
}

template <typename OpT> OnnxOpHandler binary(bool comparison = false) {
  return [comparison](NodeContext &c) -> Results {
    if (!c.input(0) || !c.input(1))
      return c.fail("expects two inputs");
    Type elem =
        comparison ? c.builder.getI1Type() : c.elementTypeOf(c.input(0));
    SmallVector<NamedAttribute> attrs;
    if (const auto *fmod = c.attr("fmod"))
      attrs.push_back(c.i64Attr("fmod", fmod->i()));
    return SmallVector<Value>{c.create<OpT>(c.resultType(0, elem),
                                            ValueRange{c.input(0), c.input(1)},
                                            attrs)};
  };
}

/// Max, Min and Sum take any number of inputs: a left fold of binary ops.
template <typename OpT> OnnxOpHandler variadic() {
  return [](NodeContext &c) -> Results {
    if (c.inputs.empty() || !c.input(0))
      return c.fail("expects at least one input");
    Value acc = c.input(0);
    Type elem = c.elementTypeOf(acc);
    for (unsigned i = 1; i < c.inputs.size(); ++i) {
      bool last = i + 1 == c.inputs.size();
      Type t = last ? c.resultType(0, elem) : UnrankedTensorType::get(elem);
      acc = c.create<OpT>(t, ValueRange{acc, c.input(i)});
    }
    return SmallVector<Value>{acc};
  };
}

Results mean(NodeContext &c) {
  if (c.inputs.empty() || !c.input(0))
    return c.fail("expects at least one input");
  Type elem = c.elementTypeOf(c.input(0));
  Value acc = c.input(0);
  for (unsigned i = 1; i < c.inputs.size(); ++i)
    acc = c.create<llm::AddOp>(UnrankedTensorType::get(elem),
                               ValueRange{acc, c.input(i)});
  Value n = c.constantScalar(elem, (double)c.inputs.size());
  return SmallVector<Value>{
      c.create<llm::DivOp>(c.resultType(0, elem), ValueRange{acc, n})};
}

Results passThrough(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects one input");
  return SmallVector<Value>{c.input(0)};
}

/// Dropout at inference is the identity and its mask is all true; training
/// mode (a training_mode input that is not the constant false) is rejected.
Results dropout(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects one input");
  if (Value training = c.input(2)) {
    auto values = c.constantInts(training);
    if (!values || values->size() != 1 || (*values)[0] != 0)
      return c.fail("training-mode Dropout is unsupported at inference");
  }
  SmallVector<Value> results{c.input(0)};
  if (c.numOutputs() > 1 && !c.node.output(1).empty()) {
    Type i1 = c.builder.getI1Type();
    auto value = DenseElementsAttr::get(RankedTensorType::get({1}, i1), true);
    Value shape = c.create<llm::ShapeOp>(
        UnrankedTensorType::get(c.builder.getI64Type()), c.input(0),
        {c.i64Attr("start", 0)});
    results.push_back(c.create<llm::ConstantOfShapeOp>(
        c.resultType(1, i1), shape, {c.builder.getNamedAttr("value", value)}));
  }
  return results;
}

Results where(NodeContext &c) {
  if (!c.input(0) || !c.input(1) || !c.input(2))
    return c.fail("expects condition, X and Y");
  Type elem = c.elementTypeOf(c.input(1));
  return SmallVector<Value>{c.create<llm::WhereOp>(
      c.resultType(0, elem), ValueRange{c.input(0), c.input(1), c.input(2)})};
}

Results castTo(NodeContext &c, Type elem) {
  SmallVector<NamedAttribute> attrs;
  if (const auto *sat = c.attr("saturate"))
    attrs.push_back(c.i64Attr("saturate", sat->i()));
  return SmallVector<Value>{
      c.create<llm::CastOp>(c.resultType(0, elem), c.input(0), attrs)};
}

Results castOp(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects one input");
  Type elem = elementTypeFromOnnx(c.attrInt("to", 0), c.builder.getContext());
  if (!elem)
    return c.fail("unsupported ONNX element type " +
                  std::to_string(c.attrInt("to", 0)) + " as cast target");
  return castTo(c, elem);
}

Results castLike(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.fail("expects input and target_type");
  return castTo(c, c.elementTypeOf(c.input(1)));
}

/// Clip-11 and later: optional min and max inputs.
Results clipInputs(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  Value lo = c.input(1), hi = c.input(2);
  auto op = llm::ClipOp::create(c.builder, c.loc,
                                c.resultType(0, c.elementTypeOf(c.input(0))),
                                c.input(0), lo, hi);
  return SmallVector<Value>{op.getResult()};
}

/// Clip-6: min and max are attributes.
Results clipAttrs(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects an input");
  Type elem = c.elementTypeOf(c.input(0));
  Value lo = c.constantScalar(elem, c.attrFloat("min", -3.4028234663852886e38f));
  Value hi = c.constantScalar(elem, c.attrFloat("max", 3.4028234663852886e38f));
  auto op = llm::ClipOp::create(c.builder, c.loc, c.resultType(0, elem),
                                c.input(0), lo, hi);
  return SmallVector<Value>{op.getResult()};
}

Results gelu(NodeContext &c) {
  if (!c.input(0))
    return c.fail("expects one input");
  std::string approx = c.attrString("approximate", "none");
  Type t = c.resultType(0, c.elementTypeOf(c.input(0)));
  if (approx == "tanh")
    return SmallVector<Value>{c.create<llm::GeluTanhOp>(t, c.input(0))};
  if (approx != "none")
    return c.fail("unknown approximate mode '" + approx + "'");
  return SmallVector<Value>{c.create<llm::GeluOp>(t, c.input(0))};
}

} // namespace

void kiln::registerElementwiseOps(OnnxOpTable &t) {
  // Unary math.
  t.add("", "Neg", {6, 13}, unary<llm::NegOp>());
  t.add("", "Exp", {6, 13}, unary<llm::ExpOp>());
  t.add("", "Log", {6, 13}, unary<llm::LogOp>());
  t.add("", "Sqrt", {6, 13}, unary<llm::SqrtOp>());
  t.add("", "Reciprocal", {6, 13}, unary<llm::ReciprocalOp>());
  t.add("", "Abs", {6, 13}, unary<llm::AbsOp>());
  t.add("", "Floor", {6, 13}, unary<llm::FloorOp>());
  t.add("", "Ceil", {6, 13}, unary<llm::CeilOp>());
  t.add("", "Round", {11, 22}, unary<llm::RoundOp>());
  t.add("", "Sign", {9, 13}, unary<llm::SignOp>());
  t.add("", "Erf", {9, 13}, unary<llm::ErfOp>());
  t.add("", "Cos", {7, 22}, unary<llm::CosOp>());
  t.add("", "Sin", {7, 22}, unary<llm::SinOp>());
  t.add("", "Tan", {7, 22}, unary<llm::TanOp>());
  t.add("", "Asin", {7, 22}, unary<llm::AsinOp>());
  t.add("", "Acos", {7, 22}, unary<llm::AcosOp>());
  t.add("", "Atan", {7, 22}, unary<llm::AtanOp>());
  t.add("", "Sinh", {9, 22}, unary<llm::SinhOp>());
  t.add("", "Cosh", {9, 22}, unary<llm::CoshOp>());
  t.add("", "Asinh", {9, 22}, unary<llm::AsinhOp>());
  t.add("", "Acosh", {9, 22}, unary<llm::AcoshOp>());
  t.add("", "Atanh", {9, 22}, unary<llm::AtanhOp>());
  // Activations.
  t.add("", "Relu", {6, 13, 14}, unary<llm::ReluOp>());
  t.add("", "Sigmoid", {6, 13}, unary<llm::SigmoidOp>());
  t.add("", "Tanh", {6, 13}, unary<llm::TanhOp>());
  t.add("", "Softplus", {1, 22}, unary<llm::SoftplusOp>());
  t.add("", "Softsign", {1, 22}, unary<llm::SoftsignOp>());
  t.add("", "Elu", {6, 22}, unary<llm::EluOp>());
  t.add("", "Selu", {6, 22}, unary<llm::SeluOp>());
  t.add("", "Celu", {12}, unary<llm::CeluOp>());
  t.add("", "LeakyRelu", {6, 16}, unary<llm::LeakyReluOp>());
  t.add("", "HardSigmoid", {6, 22}, unary<llm::HardSigmoidOp>());
  t.add("", "HardSwish", {14, 22}, unary<llm::HardSwishOp>());
  t.add("", "Mish", {18, 22}, unary<llm::MishOp>());
  t.add("", "ThresholdedRelu", {10, 22}, unary<llm::ThresholdedReluOp>());
  t.add("", "Gelu", {20}, gelu);
  t.add("", "Shrink", {9}, unary<llm::ShrinkOp>());
  // Predicates and logic.
  t.add("", "Not", {1}, unary<llm::NotOp>(true));
  t.add("", "IsNaN", {9, 13, 20}, unary<llm::IsNaNOp>(true));
  t.add("", "IsInf", {10, 20}, unary<llm::IsInfOp>(true));
  t.add("", "BitwiseNot", {18}, unary<llm::BitwiseNotOp>());
  // Broadcasting binary arithmetic.
  t.add("", "Add", {7, 13, 14}, binary<llm::AddOp>());
  t.add("", "Sub", {7, 13, 14}, binary<llm::SubOp>());
  t.add("", "Mul", {7, 13, 14}, binary<llm::MulOp>());
  t.add("", "Div", {7, 13, 14}, binary<llm::DivOp>());
  t.add("", "Pow", {7, 12, 13, 15}, binary<llm::PowOp>());
  t.add("", "Mod", {10, 13}, binary<llm::ModOp>());
  t.add("", "PRelu", {9, 16}, binary<llm::PReluOp>());
  t.add("", "Max", {8, 12, 13}, variadic<llm::MaxOp>());
  t.add("", "Min", {8, 12, 13}, variadic<llm::MinOp>());
  t.add("", "Sum", {8, 13}, variadic<llm::AddOp>());
  t.add("", "Mean", {8, 13}, mean);
  t.add("", "And", {7}, binary<llm::AndOp>());
  t.add("", "Or", {7}, binary<llm::OrOp>());
  t.add("", "Xor", {7}, binary<llm::XorOp>());
  t.add("", "BitwiseAnd", {18}, binary<llm::BitwiseAndOp>());
  t.add("", "BitwiseOr", {18}, binary<llm::BitwiseOrOp>());
  t.add("", "BitwiseXor", {18}, binary<llm::BitwiseXorOp>());
  // Comparisons.
  t.add("", "Equal", {11, 13, 19}, binary<llm::EqualOp>(true));
  t.add("", "Less", {9, 13}, binary<llm::LessOp>(true));
  t.add("", "LessOrEqual", {12, 16}, binary<llm::LessOrEqualOp>(true));
  t.add("", "Greater", {9, 13}, binary<llm::GreaterOp>(true));
  t.add("", "GreaterOrEqual", {12, 16}, binary<llm::GreaterOrEqualOp>(true));
  // Selection and conversion.
  t.add("", "Where", {9, 16}, where);
  t.add("", "Cast", {13, 19, 21}, castOp);
  t.add("", "CastLike", {15, 19, 21}, castLike);
  t.add("", "Clip", {6}, clipAttrs);
  t.add("", "Clip", {11, 12, 13}, clipInputs);
  t.add("", "Identity", {1, 13, 14, 16, 19, 21}, passThrough);
  t.add("", "Dropout", {12, 13, 22}, dropout);
}
