//===- ErrorFeedback.h - The column loop of GPTQ and SparseGPT --*- C++ -*-===//
//
// Internal to lib/Quant. Both methods walk the columns of W in order,
// round (or prune) each one and spread its error over the columns not yet
// processed through the upper Cholesky factor U of the inverse Hessian
// (kiln::quant::inverseHessianFactor), in blocks with lazy updates.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_QUANT_ERRORFEEDBACK_H
#define KILN_LIB_QUANT_ERRORFEEDBACK_H

#include <algorithm>
#include <cstdint>
#include <vector>

namespace kiln::quant::detail {

/// The column loop GPTQ and SparseGPT share: `round(row, col, w)` returns
/// the value column `col` of `row` becomes; `startColumn(col, W)` is called
/// before each column (group scales, masks). W is updated in place.
template <typename Start, typename Round>
void errorFeedback(std::vector<float> &w, int64_t n, int64_t k,
                   const std::vector<double> &u, Start startColumn,
                   Round round) {
  const int64_t block = 128;
  std::vector<double> err(n * block);
  for (int64_t b0 = 0; b0 < k; b0 += block) {
    int64_t b1 = std::min(k, b0 + block);
    for (int64_t c = b0; c < b1; ++c) {
      startColumn(c, w);
      double d = u[c * k + c];
      for (int64_t r = 0; r < n; ++r) {
        float q = round(r, c, w[r * k + c]);
        double e = (w[r * k + c] - q) / d;
        w[r * k + c] = q;
        err[r * block + (c - b0)] = e;
        for (int64_t j = c + 1; j < b1; ++j)
          w[r * k + j] -= static_cast<float>(e * u[c * k + j]);
      }
    }
    // Lazy batch update of the columns after the block, summed in double
    // over the block's columns (rows of U read contiguously).
    std::vector<double> acc(k);
    for (int64_t r = 0; r < n; ++r) {
      std::fill(acc.begin() + b1, acc.end(), 0.0);
      for (int64_t c = b0; c < b1; ++c) {
        double e = err[r * block + (c - b0)];
        const double *urow = u.data() + c * k;
        for (int64_t j = b1; j < k; ++j)
          acc[j] += e * urow[j];
      }
      for (int64_t j = b1; j < k; ++j)
        w[r * k + j] -= static_cast<float>(acc[j]);
    }
  }
}

} // namespace kiln::quant::detail

#endif // KILN_LIB_QUANT_ERRORFEEDBACK_H
