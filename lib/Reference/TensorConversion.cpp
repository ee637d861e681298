//===- TensorConversion.cpp - HostTensor <-> MLIR types and attributes ----===//

#include "kiln/Reference/TensorConversion.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace kiln;

std::optional<DType> kiln::dtypeFromType(Type type) {
  if (type.isF32())
    return DType::F32;
  if (type.isF16())
    return DType::F16;
  if (type.isBF16())
    return DType::BF16;
  if (type.isF64())
    return DType::F64;
  auto intType = dyn_cast<IntegerType>(type);
  if (!intType)
    return std::nullopt;
  bool isUnsigned = intType.isUnsigned();
  switch (intType.getWidth()) {
  case 1: return DType::Bool;
  case 8: return isUnsigned ? DType::U8 : DType::I8;
  case 16: return isUnsigned ? DType::U16 : DType::I16;
  case 32: return isUnsigned ? DType::U32 : DType::I32;
  case 64: return isUnsigned ? DType::U64 : DType::I64;
  default: return std::nullopt;
  }
}

Type kiln::typeFromDType(DType dtype, MLIRContext *context) {
  Builder b(context);
  auto unsignedInt = [&](unsigned width) {
    return IntegerType::get(context, width, IntegerType::Unsigned);
  };
  switch (dtype) {
  case DType::F32: return b.getF32Type();
  case DType::F16: return b.getF16Type();
  case DType::BF16: return b.getBF16Type();
  case DType::F64: return b.getF64Type();
  case DType::I64: return b.getI64Type();
  case DType::I32: return b.getI32Type();
  case DType::I16: return b.getI16Type();
  case DType::I8: return b.getI8Type();
  case DType::U8: return unsignedInt(8);
  case DType::U16: return unsignedInt(16);
  case DType::U32: return unsignedInt(32);
  case DType::U64: return unsignedInt(64);
  case DType::Bool: return b.getI1Type();
  }
  return b.getF32Type();
}

std::string kiln::typeString(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << type;
  return s;
}

bool kiln::hostTensorFromElementsAttr(ElementsAttr attr, HostTensor &out,
                                      std::string &error) {
  auto type = dyn_cast<RankedTensorType>(attr.getType());
  if (!type || !type.hasStaticShape()) {
    error = "constant of type " + typeString(attr.getType()) +
            " has no static shape";
    return false;
  }
  auto dtype = dtypeFromType(type.getElementType());
  if (!dtype) {
    error = "constant element type " + typeString(type.getElementType()) +
            " is not supported by the host reference";
    return false;
  }
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense) {
    error = "only dense constants are supported by the host reference, got " +
            typeString(attr.getType()) + " elements of another kind";
    return false;
  }
  out = HostTensor(*dtype, std::vector<int64_t>(type.getShape().begin(),
                                                type.getShape().end()));
  int64_t n = out.numElements();
  if (out.isFloat()) {
    auto values = dense.getValues<APFloat>();
    auto it = values.begin();
    for (int64_t k = 0; k < n; ++k, ++it)
      out.set(k, (*it).convertToDouble());
    return true;
  }
  bool isUnsigned = isUnsignedDType(*dtype) || *dtype == DType::Bool;
  auto values = dense.getValues<APInt>();
  auto it = values.begin();
  for (int64_t k = 0; k < n; ++k, ++it)
    out.setInt(k, isUnsigned ? (int64_t)(*it).getZExtValue()
                             : (*it).getSExtValue());
  return true;
}

DenseElementsAttr kiln::elementsAttrFromHostTensor(const HostTensor &tensor,
                                                   MLIRContext *context) {
  return elementsAttrFromHostTensor(tensor,
                                    typeFromDType(tensor.dtype, context));
}

DenseElementsAttr kiln::elementsAttrFromHostTensor(const HostTensor &tensor,
                                                   Type elementType) {
  auto type = RankedTensorType::get(tensor.shape, elementType);
  int64_t n = tensor.numElements();
  if (auto floatType = dyn_cast<FloatType>(elementType)) {
    SmallVector<APFloat> values;
    values.reserve(n);
    for (int64_t k = 0; k < n; ++k) {
      APFloat v((double)tensor.get(k));
      bool losesInfo = false;
      v.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &losesInfo);
      values.push_back(v);
    }
    return DenseElementsAttr::get(type, values);
  }
  auto intType = cast<IntegerType>(elementType);
  unsigned width = intType.getWidth();
  SmallVector<APInt> values;
  values.reserve(n);
  for (int64_t k = 0; k < n; ++k) {
    int64_t v = tensor.isFloat() ? (int64_t)tensor.f[k] : tensor.i[k];
    if (width == 1)
      v = v != 0;
    values.push_back(APInt(width, (uint64_t)v, /*isSigned=*/false,
                           /*implicitTrunc=*/true));
  }
  return DenseElementsAttr::get(type, values);
}
