//===- PackedWeights.cpp - Dense values of packed llm weights -------------===//
//
// An independent implementation of the packed formats' definition (the
// runtime's host kernels are the other), so that the reference
// interpreter can run quantized and 2:4-sparse modules as the oracle.
//
//===----------------------------------------------------------------------===//

#include "kiln/Reference/PackedWeights.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "llvm/ADT/APFloat.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace kiln;

namespace {

/// Element i of a float part of width `type` at byte `offset`.
float floatAt(const HostTensor &bytes, int64_t offset, Type type, int64_t i) {
  auto fl = cast<FloatType>(type);
  unsigned width = fl.getWidth() / 8;
  uint64_t raw = 0;
  for (unsigned b = 0; b < width; ++b)
    raw |= (uint64_t)(bytes.i[offset + i * width + b] & 0xff) << (8 * b);
  APFloat v(fl.getFloatSemantics(), APInt(fl.getWidth(), raw));
  bool lost = false;
  v.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
  return v.convertToFloat();
}

float fp8e4m3(uint8_t v) {
  int sign = v >> 7, exponent = (v >> 3) & 15, mantissa = v & 7;
  if (exponent == 15 && mantissa == 7)
    return std::numeric_limits<float>::quiet_NaN();
  float magnitude = exponent == 0
                        ? std::ldexp((float)mantissa, -9)
                        : std::ldexp((float)(8 + mantissa), exponent - 10);
  return sign ? -magnitude : magnitude;
}

} // namespace

bool kiln::isPackedWeightType(Type type) {
  return isa<llm::QuantizedWeightType, llm::SparseWeightType>(type);
}

bool kiln::decodePackedWeight(Type type, const HostTensor &bytes, bool nk,
                              HostTensor &out, std::string &error) {
  int64_t k, n, total;
  if (auto q = dyn_cast<llm::QuantizedWeightType>(type)) {
    k = q.getK();
    n = q.getN();
    total = llm::getQuantizedLayout(q).total;
  } else if (auto s = dyn_cast<llm::SparseWeightType>(type)) {
    k = s.getK();
    n = s.getN();
    total = llm::getSparseLayout(s).total;
  } else {
    error = "not a packed weight type";
    return false;
  }
  if (bytes.isFloat() || bytes.numElements() != total) {
    error = "packed weight bytes " + bytes.shapeString() + " do not hold its " +
            std::to_string(total) + " bytes";
    return false;
  }
  std::vector<float> w(n * k, 0.0f); // [N, K]
  auto byte = [&](int64_t at) { return (uint8_t)(bytes.i[at] & 0xff); };
  if (auto q = dyn_cast<llm::QuantizedWeightType>(type)) {
    llm::QuantizedLayout layout = llm::getQuantizedLayout(q);
    int64_t bits = q.getBits(), group = q.getGroup(), groups = k / group;
    bool fp8 = q.getFormat() == "fp8e4m3";
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        int64_t bit = (r * k + c) * bits;
        unsigned u = (byte(layout.packed.offset + bit / 8) >> (bit % 8)) &
                     ((1u << bits) - 1);
        int64_t g = r * groups + c / group;
        float scale = floatAt(bytes, layout.scales.offset, q.getScaleType(), g);
        if (fp8) {
          w[r * k + c] = scale * fp8e4m3((uint8_t)u);
          continue;
        }
        float zero = q.getZeroPoint()
                         ? (float)byte(layout.zeroPoints.offset + g)
                         : (float)(1 << (bits - 1));
        w[r * k + c] = scale * ((float)u - zero);
      }
  } else {
    auto s = cast<llm::SparseWeightType>(type);
    llm::SparseLayout layout = llm::getSparseLayout(s);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < k / 4; ++g) {
        uint8_t nibble =
            (byte(layout.meta.offset + r * ((k / 4 + 1) / 2) + g / 2) >>
             (4 * (g % 2))) &
            15;
        for (int j = 0; j < 2; ++j) {
          int64_t pos = j ? nibble >> 2 : nibble & 3;
          w[r * k + 4 * g + pos] +=
              floatAt(bytes, layout.values.offset, s.getElementType(),
                      r * (k / 2) + 2 * g + j);
        }
      }
  }
  out = HostTensor(DType::F32, nk ? std::vector<int64_t>{n, k}
                                  : std::vector<int64_t>{k, n});
  if (nk) {
    out.f = std::move(w);
    return true;
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      out.f[c * n + r] = w[r * k + c];
  return true;
}
