//===- HostQuantKernels.cpp - Quantized and 2:4-sparse matrix products ----===//
//
// The host device is the reference for the packed weight formats
// (docs/Quantization.md), so these kernels decode them by their definition:
// every element of the weight is widened to fp32 exactly as the format
// says (scale * (u - zero point), scale * fp8(u), or the kept value of a
// 2:4 group) into a [K, N] scratch matrix that the ordinary fp32 matrix
// product then reads. Decoding costs O(N K), the product O(M N K): for the
// prefill windows that dominate perplexity runs it is noise, and for a
// decode step it is the same pass over the weight a GPU kernel makes.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Half.h"
#include "kiln/runtime/HostKernels.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace kiln::runtime::host {

namespace {

/// Element i of a float vector stored as f32, f16 or bf16.
float loadFloat(const WeightRef &w, int64_t i) {
  switch (w.dtype) {
  case DType::F16: {
    uint16_t h;
    std::memcpy(&h, static_cast<const uint8_t *>(w.data) + 2 * i, 2);
    return halfToFloat(h);
  }
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, static_cast<const uint8_t *>(w.data) + 2 * i, 2);
    return bf16ToFloat(h);
  }
  default: {
    float f;
    std::memcpy(&f, static_cast<const uint8_t *>(w.data) + 4 * i, 4);
    return f;
  }
  }
}

} // namespace

float fp8e4m3ToFloat(uint8_t v) {
  int sign = v >> 7, exponent = (v >> 3) & 15, mantissa = v & 7;
  if (exponent == 15 && mantissa == 7)
    return std::numeric_limits<float>::quiet_NaN();
  float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                  : std::ldexp(static_cast<float>(8 + mantissa),
                                               exponent - 10);
  return sign ? -magnitude : magnitude;
}

void dequantize(const QuantWeightRef &w, int64_t k, int64_t n, float *out) {
  int64_t groups = k / w.group, rowBytes = k * w.bits / 8;
  float fp8[256];
  if (w.format == QuantFormat::FP8E4M3)
    for (int v = 0; v < 256; ++v)
      fp8[v] = fp8e4m3ToFloat(static_cast<uint8_t>(v));
  float offset = static_cast<float>(1 << (w.bits - 1));
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t *row = w.packed + j * rowBytes;
    for (int64_t g = 0; g < groups; ++g) {
      float scale = loadFloat(w.scales, j * groups + g);
      float zero = w.zeroPoints
                       ? static_cast<float>(w.zeroPoints[j * groups + g])
                       : offset;
      for (int64_t i = g * w.group; i < (g + 1) * w.group; ++i) {
        float value;
        if (w.format == QuantFormat::FP8E4M3) {
          value = fp8[row[i]];
          out[i * n + j] = scale * value;
          continue;
        }
        unsigned u = w.bits == 8 ? row[i] : (row[i / 2] >> (4 * (i % 2))) & 15;
        out[i * n + j] = scale * (static_cast<float>(u) - zero);
      }
    }
  }
}

void quantLinear(const float *x, int64_t m, int64_t k, const QuantWeightRef &w,
                 int64_t n, const float *bias, float *y,
                 std::vector<float> &scratch) {
  scratch.resize(static_cast<size_t>(k * n));
  dequantize(w, k, n, scratch.data());
  matmul(x, m, k, WeightRef(scratch.data()), n, bias, y);
}

void densify24(const SparseWeightRef &w, int64_t k, int64_t n, float *out) {
  std::memset(out, 0, static_cast<size_t>(k * n) * sizeof(float));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t g = 0; g < k / 4; ++g) {
      uint8_t nibble = (w.meta[j * (k / 8) + g / 2] >> (4 * (g % 2))) & 15;
      int64_t first = nibble & 3, second = nibble >> 2;
      out[(4 * g + first) * n + j] = loadFloat(w.values, j * (k / 2) + 2 * g);
      out[(4 * g + second) * n + j] +=
          loadFloat(w.values, j * (k / 2) + 2 * g + 1);
    }
}

void sparseLinear(const float *x, int64_t m, int64_t k,
                  const SparseWeightRef &w, int64_t n, const float *bias,
                  float *y, std::vector<float> &scratch) {
  scratch.resize(static_cast<size_t>(k * n));
  densify24(w, k, n, scratch.data());
  matmul(x, m, k, WeightRef(scratch.data()), n, bias, y);
}

} // namespace kiln::runtime::host
