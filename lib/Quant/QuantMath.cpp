//===- QuantMath.cpp - Weight quantization to the QuantLinear format ------===//
//
// Round-to-nearest (with an optional clipping search), GPTQ (natural order
// with dynamic groups, or act order with static groups), fp8 e4m3
// encoding and AWQ's scale search. 2:4 pruning is in Sparse24.cpp, the
// inverse-Hessian factor in Hessian.cpp.
//
//===----------------------------------------------------------------------===//

#include "kiln/Quant/QuantMath.h"

#include "ErrorFeedback.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace kiln::quant;
using kiln::quant::detail::errorFeedback;

namespace {

/// Scale and zero point of one group of values.
struct GroupParams {
  float scale = 1.0f;
  float zero = 0.0f; ///< In integer units (u = q + zero).
};

int64_t groupOf(const QuantSpec &spec, int64_t k) {
  return spec.group > 0 ? spec.group : k;
}

/// `ratio` < 1 clips the range (the largest magnitudes saturate).
GroupParams groupParams(const float *v, int64_t count, int64_t stride,
                        const QuantSpec &spec, float ratio = 1.0f) {
  GroupParams p;
  if (spec.fp8) {
    float maxAbs = 0;
    for (int64_t i = 0; i < count; ++i)
      maxAbs = std::max(maxAbs, std::fabs(v[i * stride]));
    p.scale = spec.roundScale(maxAbs > 0 ? maxAbs / 448.0f : 1.0f);
    return p;
  }
  if (!spec.zeroPoint) {
    float maxAbs = 0;
    for (int64_t i = 0; i < count; ++i)
      maxAbs = std::max(maxAbs, ratio * std::fabs(v[i * stride]));
    float qmax = static_cast<float>((1 << (spec.bits - 1)) - 1);
    p.scale = spec.roundScale(maxAbs > 0 ? maxAbs / qmax : 1.0f);
    p.zero = static_cast<float>(1 << (spec.bits - 1));
    return p;
  }
  // The range always holds 0, so that zeros (and padding) stay exact.
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < count; ++i) {
    lo = std::min(lo, ratio * v[i * stride]);
    hi = std::max(hi, ratio * v[i * stride]);
  }
  float levels = static_cast<float>((1 << spec.bits) - 1);
  p.scale = spec.roundScale(hi > lo ? (hi - lo) / levels : 1.0f);
  if (p.scale == 0)
    p.scale = 1.0f;
  p.zero = std::clamp(std::nearbyint(-lo / p.scale), 0.0f, levels);
  return p;
}

/// The stored code of `x` under `p` (an integer u or an fp8 byte).
uint8_t encode(float x, const GroupParams &p, const QuantSpec &spec) {
  if (spec.fp8)
    return floatToFp8e4m3(x / p.scale);
  float hi = spec.zeroPoint ? static_cast<float>((1 << spec.bits) - 1)
                            : 2 * p.zero - 1;
  float lo = spec.zeroPoint ? 0.0f : 1.0f;
  return static_cast<uint8_t>(
      std::clamp(std::nearbyint(x / p.scale) + p.zero, lo, hi));
}

float decode(uint8_t u, const GroupParams &p, const QuantSpec &spec) {
  if (spec.fp8)
    return p.scale * fp8e4m3ToFloatRef(u);
  return p.scale * (static_cast<float>(u) - p.zero);
}

/// The clipping of the group's range (ratios 1, 0.95, ..., 0.55) whose
/// rounding error weighted by `importance` (H's diagonal: how much each
/// input moves the output) is least.
GroupParams clippedGroupParams(const float *v, int64_t count,
                               const QuantSpec &spec,
                               const double *importance) {
  GroupParams best = groupParams(v, count, 1, spec);
  if (spec.fp8)
    return best;
  double bestError = INFINITY;
  for (int step = 0; step < 10; ++step) {
    float ratio = 1.0f - 0.05f * step;
    GroupParams p = groupParams(v, count, 1, spec, ratio);
    double e = 0;
    for (int64_t i = 0; i < count; ++i) {
      double d = v[i] - decode(encode(v[i], p, spec), p, spec);
      e += importance[i] * d * d;
    }
    if (e < bestError) {
      bestError = e;
      best = p;
    }
  }
  return best;
}

void store(PackedWeight &out, int64_t k, const QuantSpec &spec, int64_t row,
           int64_t col, uint8_t u) {
  int64_t rowBytes = k * spec.bits / 8;
  if (spec.bits == 8) {
    out.packed[row * rowBytes + col] = u;
    return;
  }
  uint8_t &byte = out.packed[row * rowBytes + col / 2];
  byte = col % 2 ? (byte & 0x0f) | (u << 4) : (byte & 0xf0) | (u & 0x0f);
}

void allocate(PackedWeight &out, int64_t n, int64_t k, const QuantSpec &spec) {
  int64_t groups = k / groupOf(spec, k);
  out.packed.assign(n * k * spec.bits / 8, 0);
  out.scales.assign(n * groups, 0.0f);
  out.zeroPoints.assign(spec.zeroPoint ? n * groups : 0, 0);
}

void setParams(PackedWeight &out, const QuantSpec &spec, int64_t index,
               const GroupParams &p) {
  out.scales[index] = p.scale;
  if (spec.zeroPoint)
    out.zeroPoints[index] = static_cast<uint8_t>(p.zero);
}

/// U, upper triangular with U^T U = (H + damp * mean(diag H) * I)^-1;
/// H's dead columns (zero diagonal) get a unit diagonal first. Retries
/// with ten times the dampening while a factorization fails.
} // namespace

float kiln::quant::fp8e4m3ToFloatRef(uint8_t v) {
  int sign = v >> 7, exponent = (v >> 3) & 15, mantissa = v & 7;
  if (exponent == 15 && mantissa == 7)
    return std::numeric_limits<float>::quiet_NaN();
  float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                  : std::ldexp(static_cast<float>(8 + mantissa),
                                               exponent - 10);
  return sign ? -magnitude : magnitude;
}

uint8_t kiln::quant::floatToFp8e4m3(float f) {
  // Positive codes 0x00..0x7e are increasing in value: binary search, then
  // the nearer neighbour (the even code on a tie).
  static const std::vector<float> table = [] {
    std::vector<float> t(127);
    for (int c = 0; c < 127; ++c)
      t[c] = fp8e4m3ToFloatRef(static_cast<uint8_t>(c));
    return t;
  }();
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (std::isnan(a))
    return 0x7f;
  if (a >= table[126])
    return sign | 126;
  int hi = static_cast<int>(std::lower_bound(table.begin(), table.end(), a) -
                            table.begin());
  if (hi == 0 || table[hi] == a)
    return sign | hi;
  int lo = hi - 1;
  float dl = a - table[lo], dh = table[hi] - a;
  int code = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
  return sign | code;
}

PackedWeight kiln::quant::quantizeRTN(const std::vector<float> &w, int64_t n,
                                      int64_t k, const QuantSpec &spec) {
  PackedWeight out;
  allocate(out, n, k, spec);
  int64_t group = groupOf(spec, k), groups = k / group;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float *v = w.data() + r * k + g * group;
      GroupParams p = groupParams(v, group, 1, spec);
      setParams(out, spec, r * groups + g, p);
      for (int64_t i = 0; i < group; ++i)
        store(out, k, spec, r, g * group + i, encode(v[i], p, spec));
    }
  return out;
}

PackedWeight
kiln::quant::quantizeClipped(const std::vector<float> &w, int64_t n, int64_t k,
                             const QuantSpec &spec,
                             const std::vector<double> &importance) {
  PackedWeight out;
  allocate(out, n, k, spec);
  int64_t group = groupOf(spec, k), groups = k / group;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float *v = w.data() + r * k + g * group;
      GroupParams p =
          clippedGroupParams(v, group, spec, importance.data() + g * group);
      setParams(out, spec, r * groups + g, p);
      for (int64_t i = 0; i < group; ++i)
        store(out, k, spec, r, g * group + i, encode(v[i], p, spec));
    }
  return out;
}

PackedWeight kiln::quant::quantizeGPTQ(const std::vector<float> &w,
                                       int64_t n, int64_t k,
                                       const QuantSpec &spec,
                                       const std::vector<double> &u) {
  PackedWeight out;
  allocate(out, n, k, spec);
  int64_t group = groupOf(spec, k), groups = k / group;
  std::vector<float> work = w;
  std::vector<GroupParams> params(n);
  errorFeedback(
      work, n, k, u,
      [&](int64_t c, const std::vector<float> &cur) {
        if (c % group != 0)
          return;
        for (int64_t r = 0; r < n; ++r) {
          params[r] = groupParams(cur.data() + r * k + c, group, 1, spec);
          setParams(out, spec, r * groups + c / group, params[r]);
        }
      },
      [&](int64_t r, int64_t c, float x) {
        uint8_t code = encode(x, params[r], spec);
        store(out, k, spec, r, c, code);
        return decode(code, params[r], spec);
      });
  return out;
}

std::vector<int64_t> kiln::quant::actOrder(const std::vector<double> &h,
                                           int64_t k) {
  std::vector<int64_t> order(k);
  for (int64_t c = 0; c < k; ++c)
    order[c] = c;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    double da = h[a * k + a], db = h[b * k + b];
    return da > db || (da == db && a < b);
  });
  return order;
}

std::vector<double> kiln::quant::permuted(const std::vector<double> &h,
                                          int64_t k,
                                          const std::vector<int64_t> &order) {
  std::vector<double> p(k * k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      p[i * k + j] = h[order[i] * k + order[j]];
  return p;
}

PackedWeight kiln::quant::quantizeGPTQActOrder(
    const std::vector<float> &w, int64_t n, int64_t k, const QuantSpec &spec,
    const std::vector<double> &u, const std::vector<int64_t> &order,
    const std::vector<double> &importance) {
  PackedWeight out;
  allocate(out, n, k, spec);
  int64_t group = groupOf(spec, k), groups = k / group;
  // Static groups: each group's parameters from the original weights, so
  // that the columns of a group may be quantized in any order.
  std::vector<GroupParams> params(n * groups);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      params[r * groups + g] =
          clippedGroupParams(w.data() + r * k + g * group, group, spec,
                             importance.data() + g * group);
      setParams(out, spec, r * groups + g, params[r * groups + g]);
    }
  std::vector<float> work(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      work[r * k + c] = w[r * k + order[c]];
  errorFeedback(
      work, n, k, u, [](int64_t, const std::vector<float> &) {},
      [&](int64_t r, int64_t c, float x) {
        int64_t col = order[c];
        const GroupParams &p = params[r * groups + col / group];
        uint8_t code = encode(x, p, spec);
        store(out, k, spec, r, col, code);
        return decode(code, p, spec);
      });
  return out;
}

float kiln::quant::dequantizedAt(const PackedWeight &p, int64_t k,
                                 const QuantSpec &spec, int64_t row,
                                 int64_t col) {
  int64_t group = groupOf(spec, k), groups = k / group;
  int64_t index = row * groups + col / group;
  GroupParams gp;
  gp.scale = p.scales[index];
  gp.zero = spec.zeroPoint ? p.zeroPoints[index]
                           : static_cast<float>(1 << (spec.bits - 1));
  int64_t rowBytes = k * spec.bits / 8;
  uint8_t u =
      spec.bits == 8
          ? p.packed[row * rowBytes + col]
          : (p.packed[row * rowBytes + col / 2] >> (4 * (col % 2))) & 15;
  return decode(u, gp, spec);
}

std::vector<float>
kiln::quant::awqScales(const std::vector<const std::vector<float> *> &weights,
                       const std::vector<int64_t> &rows, int64_t k,
                       const QuantSpec &spec, const std::vector<double> &h,
                       const std::vector<double> &absMean, int grid) {
  // Output error of quantizing with scales s: sum over rows of d^T H d.
  // Output error of quantizing with scales s: sum over rows of d^T H d,
  // with the rows' d held transposed ([K, rows]) so that the inner loop
  // runs over rows (vectorizable, no reduction).
  auto error = [&](const std::vector<float> &s) {
    double total = 0;
    for (size_t w = 0; w < weights.size(); ++w) {
      int64_t n = rows[w];
      std::vector<float> scaled(*weights[w]);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
          scaled[r * k + c] *= s[c];
      PackedWeight q = quantizeRTN(scaled, n, k, spec);
      std::vector<double> dt(k * n), acc(n);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
          dt[c * n + r] =
              (*weights[w])[r * k + c] - dequantizedAt(q, k, spec, r, c) / s[c];
      for (int64_t i = 0; i < k; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0);
        const double *hrow = h.data() + i * k;
        for (int64_t j = 0; j < k; ++j) {
          double hij = hrow[j];
          const double *dj = dt.data() + j * n;
          for (int64_t r = 0; r < n; ++r)
            acc[r] += hij * dj[r];
        }
        const double *di = dt.data() + i * n;
        for (int64_t r = 0; r < n; ++r)
          total += di[r] * acc[r];
      }
    }
    return total;
  };
  std::vector<float> best(k, 1.0f);
  double bestError = error(best);
  for (int step = 1; step < grid; ++step) {
    double alpha = static_cast<double>(step) / grid;
    std::vector<double> raw(k);
    double lo = INFINITY, hi = 0;
    for (int64_t c = 0; c < k; ++c) {
      raw[c] = std::pow(std::max(absMean[c], 1e-8), alpha);
      lo = std::min(lo, raw[c]);
      hi = std::max(hi, raw[c]);
    }
    double norm = std::sqrt(lo * hi);
    std::vector<float> s(k);
    for (int64_t c = 0; c < k; ++c)
      s[c] = static_cast<float>(raw[c] / norm);
    double e = error(s);
    if (e < bestError) {
      bestError = e;
      best = s;
    }
  }
  return best;
}
