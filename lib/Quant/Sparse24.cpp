//===- Sparse24.cpp - 2:4 pruning by magnitude, Wanda or SparseGPT --------===//

#include "kiln/Quant/QuantMath.h"

#include "ErrorFeedback.h"

#include <algorithm>
#include <cmath>

using namespace kiln::quant;
using kiln::quant::detail::errorFeedback;

namespace {

/// The two kept positions of four scores (highest first; ties: lower
/// position), in increasing order.
std::pair<int, int> keepTwo(const float *score) {
  int order[4] = {0, 1, 2, 3};
  std::sort(order, order + 4, [&](int a, int b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  });
  return {std::min(order[0], order[1]), std::max(order[0], order[1])};
}

void setMask(kiln::quant::SparseWeight &s, int64_t k, int64_t row, int64_t g,
             std::pair<int, int> kept, float a, float b) {
  s.values[row * (k / 2) + 2 * g] = a;
  s.values[row * (k / 2) + 2 * g + 1] = b;
  uint8_t nibble = static_cast<uint8_t>(kept.first | (kept.second << 2));
  s.meta[row * (k / 8) + g / 2] |= nibble << (4 * (g % 2));
}

} // namespace

SparseWeight kiln::quant::prune24(const std::vector<float> &w, int64_t n,
                                  int64_t k, const std::vector<float> &score) {
  SparseWeight s;
  s.values.assign(n * (k / 2), 0.0f);
  s.meta.assign(n * (k / 8), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      auto kept = keepTwo(score.data() + r * k + 4 * g);
      const float *v = w.data() + r * k + 4 * g;
      setMask(s, k, r, g, kept, v[kept.first], v[kept.second]);
    }
  return s;
}

SparseWeight kiln::quant::prune24SparseGPT(const std::vector<float> &w,
                                           int64_t n, int64_t k,
                                           const std::vector<double> &u) {
  SparseWeight out;
  std::vector<float> work = w;
  // The two kept positions of every group, chosen when the group starts.
  std::vector<std::pair<int, int>> kept(n * (k / 4));
  errorFeedback(
      work, n, k, u,
      [&](int64_t c, const std::vector<float> &cur) {
        if (c % 4 != 0)
          return;
        for (int64_t r = 0; r < n; ++r) {
          float score[4];
          for (int j = 0; j < 4; ++j) {
            double d = u[(c + j) * k + c + j];
            float x = cur[r * k + c + j];
            score[j] = static_cast<float>(x * x / (d * d));
          }
          kept[r * (k / 4) + c / 4] = keepTwo(score);
        }
      },
      [&](int64_t r, int64_t c, float x) {
        auto [a, b] = kept[r * (k / 4) + c / 4];
        int j = static_cast<int>(c % 4);
        return j == a || j == b ? x : 0.0f;
      });
  out.values.assign(n * (k / 2), 0.0f);
  out.meta.assign(n * (k / 8), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      auto pair = kept[r * (k / 4) + g];
      setMask(out, k, r, g, pair, work[r * k + 4 * g + pair.first],
              work[r * k + 4 * g + pair.second]);
    }
  return out;
}

std::vector<float> kiln::quant::densify(const SparseWeight &s, int64_t n,
                                        int64_t k) {
  std::vector<float> w(n * k, 0.0f);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      uint8_t nibble = (s.meta[r * (k / 8) + g / 2] >> (4 * (g % 2))) & 15;
      w[r * k + 4 * g + (nibble & 3)] = s.values[r * (k / 2) + 2 * g];
      w[r * k + 4 * g + (nibble >> 2)] += s.values[r * (k / 2) + 2 * g + 1];
    }
  return w;
}
