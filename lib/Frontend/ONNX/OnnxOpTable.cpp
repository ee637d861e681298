//===- OnnxOpTable.cpp - (op, since-version) table and node binding -------===//

#include "OnnxOpTable.h"

#include "kiln/Frontend/OnnxTensor.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace kiln;

Type kiln::elementTypeFromOnnx(int32_t onnxType, MLIRContext *ctx) {
  auto dtype = dtypeFromOnnx(onnxType);
  if (!dtype)
    return nullptr;
  auto uint = [&](unsigned w) {
    return IntegerType::get(ctx, w, IntegerType::Unsigned);
  };
  switch (*dtype) {
  case DType::F32: return Float32Type::get(ctx);
  case DType::F16: return Float16Type::get(ctx);
  case DType::BF16: return BFloat16Type::get(ctx);
  case DType::F64: return Float64Type::get(ctx);
  case DType::I64: return IntegerType::get(ctx, 64);
  case DType::I32: return IntegerType::get(ctx, 32);
  case DType::I16: return IntegerType::get(ctx, 16);
  case DType::I8: return IntegerType::get(ctx, 8);
  case DType::U8: return uint(8);
  case DType::U16: return uint(16);
  case DType::U32: return uint(32);
  case DType::U64: return uint(64);
  case DType::Bool: return IntegerType::get(ctx, 1);
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

unsigned NodeContext::numOutputs() const { return node.output_size(); }

const onnx::AttributeProto *NodeContext::attr(StringRef name) const {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t NodeContext::attrInt(StringRef name, int64_t def) const {
  const auto *a = attr(name);
  return a ? a->i() : def;
}

float NodeContext::attrFloat(StringRef name, float def) const {
  const auto *a = attr(name);
  return a ? a->f() : def;
}

std::string NodeContext::attrString(StringRef name, StringRef def) const {
  const auto *a = attr(name);
  return a ? a->s() : def.str();
}

std::optional<std::vector<int64_t>> NodeContext::attrInts(StringRef name) const {
  const auto *a = attr(name);
  if (!a)
    return std::nullopt;
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

Type NodeContext::elementTypeOf(Value v) const {
  return cast<ShapedType>(v.getType()).getElementType();
}

Value NodeContext::constantI64(ArrayRef<int64_t> values, bool scalar) {
  auto type = RankedTensorType::get(
      scalar ? ArrayRef<int64_t>{} : ArrayRef<int64_t>{(int64_t)values.size()},
      builder.getI64Type());
  return llm::ConstantOp::create(builder, loc, type,
                                 DenseIntElementsAttr::get(type, values));
}

Value NodeContext::constantScalar(Type elementType, double value) {
  auto type = RankedTensorType::get({}, elementType);
  DenseElementsAttr attr;
  if (auto ft = dyn_cast<FloatType>(elementType)) {
    APFloat x(value);
    bool lost;
    x.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
    attr = DenseElementsAttr::get(type, x);
  } else {
    attr = DenseElementsAttr::get(
        type, APInt(elementType.getIntOrFloatBitWidth(), (int64_t)value,
                    /*isSigned=*/true, /*implicitTrunc=*/true));
  }
  return llm::ConstantOp::create(builder, loc, type, attr);
}

std::optional<std::vector<int64_t>> NodeContext::constantInts(Value v) const {
  if (!v)
    return std::nullopt;
  auto cst = v.getDefiningOp<llm::ConstantOp>();
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
  if (!dense)
    return std::nullopt;
  std::vector<int64_t> out;
  for (const APInt &x : dense.getValues<APInt>())
    out.push_back(x.getSExtValue());
  return out;
}

FailureOr<SmallVector<Value>> NodeContext::fail(const Twine &message) {
  emitError(loc) << "ONNX node '" << node.name() << "' (" << node.op_type()
                 << "): " << message;
  return failure();
}

//===----------------------------------------------------------------------===//
// OnnxOpTable
//===----------------------------------------------------------------------===//

void OnnxOpTable::add(StringRef domain, StringRef op,
                      std::initializer_list<int> versions,
                      OnnxOpHandler handler) {
  auto &byVersion = entries[{domain.str(), op.str()}];
  for (int v : versions)
    byVersion[v] = handler;
}

const OnnxOpHandler *OnnxOpTable::lookup(StringRef domain, StringRef op,
                                         int64_t opset, int &since) const {
  auto it = entries.find({domain.str(), op.str()});
  if (it == entries.end())
    return nullptr;
  // The entry in force is the newest since-version not above the opset.
  auto v = it->second.upper_bound((int)opset);
  if (v == it->second.begin())
    return nullptr;
  --v;
  since = v->first;
  return &v->second;
}

std::optional<int> OnnxOpTable::lowestVersion(StringRef domain,
                                              StringRef op) const {
  auto it = entries.find({domain.str(), op.str()});
  if (it == entries.end() || it->second.empty())
    return std::nullopt;
  return it->second.begin()->first;
}

std::vector<std::string> OnnxOpTable::list() const {
  std::vector<std::string> out;
  for (const auto &[key, byVersion] : entries)
    for (const auto &[version, handler] : byVersion)
      out.push_back((key.first.empty() ? std::string("ai.onnx") : key.first) +
                    " " + key.second + " " + std::to_string(version));
  return out;
}

const OnnxOpTable &kiln::getOnnxOpTable() {
  static const OnnxOpTable table = [] {
    OnnxOpTable t;
    registerElementwiseOps(t);
    registerShapeOps(t);
    registerReductionOps(t);
    registerLinearAlgebraOps(t);
    registerNormalizationOps(t);
    return t;
  }();
  return table;
}
