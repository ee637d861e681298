//===- LLMTypes.cpp - Verifiers of llm types ------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

using namespace mlir;
using namespace kiln::llm;

LogicalResult
QuantizedWeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                            int64_t k, int64_t n, int64_t bits, int64_t group,
                            Type scaleType, bool zeroPoint, StringRef format) {
  if (k <= 0 || n <= 0)
    return emitError() << "quantized weight needs positive k and n, got " << k
                       << "x" << n;
  if (bits != 2 && bits != 4 && bits != 8)
    return emitError() << "quantized weight bits must be 2, 4 or 8, got "
                       << bits;
  if (group <= 0 || (group != k && group % 16 != 0))
    return emitError() << "quantization group must be k (per channel) or a "
                          "positive multiple of 16, got "
                       << group;
  if (!isa<FloatType>(scaleType))
    return emitError() << "quantization scales must be floats, got "
                       << scaleType;
  if (format != "int" && format != "fp8e4m3")
    return emitError() << "quantized weight format must be int or fp8e4m3, "
                          "got '"
                       << format << "'";
  if (format == "fp8e4m3" && (bits != 8 || zeroPoint))
    return emitError() << "fp8e4m3 weights have 8 bits and no zero points";
  return success();
}

/// Parts start at multiples of 64 so that a device can use them in place.
static int64_t align64(int64_t n) { return (n + 63) / 64 * 64; }

QuantizedLayout kiln::llm::getQuantizedLayout(QuantizedWeightType type) {
  int64_t n = type.getN(), k = type.getK(), groups = k / type.getGroup();
  QuantizedLayout layout;
  layout.packed = {0, n * ((k * type.getBits() + 7) / 8)};
  layout.scales = {
      align64(layout.packed.bytes),
      n * groups * (int64_t)type.getScaleType().getIntOrFloatBitWidth() / 8};
  int64_t end = layout.scales.offset + layout.scales.bytes;
  if (type.getZeroPoint()) {
    layout.zeroPoints = {align64(end), n * groups};
    end = layout.zeroPoints.offset + layout.zeroPoints.bytes;
  }
  layout.total = end;
  return layout;
}

SparseLayout kiln::llm::getSparseLayout(SparseWeightType type) {
  int64_t n = type.getN(), k = type.getK();
  SparseLayout layout;
  layout.values = {
      0,
      n * (k / 2) * (int64_t)type.getElementType().getIntOrFloatBitWidth() / 8};
  layout.meta = {align64(layout.values.bytes), n * ((k / 4 + 1) / 2)};
  layout.total = layout.meta.offset + layout.meta.bytes;
  return layout;
}

LogicalResult
SparseWeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                         int64_t k, int64_t n, Type elementType) {
  if (k <= 0 || n <= 0 || k % 4 != 0)
    return emitError() << "2:4-sparse weight needs k a positive multiple of 4, "
                          "got "
                       << k << "x" << n;
  if (!isa<FloatType>(elementType))
    return emitError() << "2:4-sparse weight values must be floats, got "
                       << elementType;
  return success();
}

LogicalResult KVCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t layers, int64_t kvHeads,
                                  int64_t headDim, int64_t block,
                                  Type elementType) {
  if (layers <= 0 || kvHeads <= 0 || headDim <= 0)
    return emitError() << "kv cache needs positive layers, kv_heads and "
                          "head_dim";
  if (block <= 0 || (block & (block - 1)) != 0)
    return emitError() << "kv cache block size must be a power of two, got "
                       << block;
  if (!isa<FloatType>(elementType))
    return emitError() << "kv cache elements must be floats, got "
                       << elementType;
  return success();
}
