//===- Half.h - IEEE fp16 and bfloat16 <-> fp32 conversions ---------------===//
//
// Weights and the KV cache are stored in half precision; the host device
// computes in fp32. Plain bit manipulation (C++17 has no std::float16_t),
// rounding to nearest even as hardware conversions do; NaN stays NaN.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_HALF_H
#define KILN_RUNTIME_HALF_H

#include <cstdint>
#include <cstring>

namespace kiln::runtime {

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

/// IEEE binary16 -> fp32 (exact).
inline float halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) // inf or NaN
    return bitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return bitsToFloat(sign);
    // Subnormal: mantissa * 2^-24.
    float value = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -value : value;
  }
  return bitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// fp32 -> IEEE binary16, round to nearest even; overflow gives inf.
inline uint16_t floatToHalf(float f) {
  uint32_t u = floatBits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits >= 0x7f800000u) // inf or NaN (keep NaN quiet and non-zero)
    return static_cast<uint16_t>(sign | 0x7c00u |
                                 (absBits > 0x7f800000u ? 0x200u : 0u));
  if (absBits >= 0x477ff000u) // rounds to >= 65520: overflow
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (absBits < 0x38800000u) { // below the smallest normal half (2^-14)
    // Subnormal or zero: value / 2^-24, rounded to nearest even.
    float value = bitsToFloat(absBits) * 16777216.0f;
    uint32_t q = static_cast<uint32_t>(value);
    float rest = value - static_cast<float>(q);
    if (rest > 0.5f || (rest == 0.5f && (q & 1u)))
      ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t exponent = (absBits >> 23) - 112;
  uint32_t mantissa = absBits & 0x7fffffu;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
    ++half; // may carry into the exponent, which is the right result
  return static_cast<uint16_t>(sign | half);
}

/// bfloat16 -> fp32 (exact).
inline float bf16ToFloat(uint16_t b) {
  return bitsToFloat(static_cast<uint32_t>(b) << 16);
}

/// fp32 -> bfloat16, round to nearest even.
inline uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

} // namespace kiln::runtime

#endif // KILN_RUNTIME_HALF_H
