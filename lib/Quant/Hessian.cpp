//===- Hessian.cpp - The inverse-Hessian factor of GPTQ and SparseGPT -----===//
//
// H is damped, inverted through its Cholesky factor, and the upper
// Cholesky factor U of H^-1 drives the column-by-column error feedback (the
// formulation of the reference implementations, which avoids ever
// updating H^-1 itself).
//
//===----------------------------------------------------------------------===//

#include "kiln/Quant/QuantMath.h"

#include <cmath>

using namespace kiln::quant;

bool kiln::quant::inverseHessianFactor(std::vector<double> h, int64_t k,
                                       double damp, std::vector<double> &u,
                                       std::string &error) {
  for (int64_t i = 0; i < k; ++i)
    if (h[i * k + i] == 0)
      h[i * k + i] = 1;
  double mean = 0;
  for (int64_t i = 0; i < k; ++i)
    mean += h[i * k + i];
  mean /= k;
  auto cholesky = [k](std::vector<double> &a) {
    // In place, lower triangle; false when not positive definite.
    for (int64_t j = 0; j < k; ++j) {
      double d = a[j * k + j];
      for (int64_t p = 0; p < j; ++p)
        d -= a[j * k + p] * a[j * k + p];
      if (!(d > 0))
        return false;
      d = std::sqrt(d);
      a[j * k + j] = d;
      for (int64_t i = j + 1; i < k; ++i) {
        double s = a[i * k + j];
        for (int64_t p = 0; p < j; ++p)
          s -= a[i * k + p] * a[j * k + p];
        a[i * k + j] = s / d;
      }
    }
    return true;
  };
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10) {
    std::vector<double> l = h;
    for (int64_t i = 0; i < k; ++i)
      l[i * k + i] += damp * mean;
    if (!cholesky(l))
      continue;
    // Linv = L^-1 (lower), then H^-1 = Linv^T Linv.
    // Linv = L^-1 (lower) by forward substitution, row by row, then
    // H^-1 = Linv^T Linv accumulated as a sum of outer products of Linv's
    // rows (row-major friendly).
    std::vector<double> linv(k * k, 0.0);
    for (int64_t i = 0; i < k; ++i) {
      double *row = linv.data() + i * k;
      row[i] = 1.0;
      for (int64_t p = 0; p < i; ++p) {
        double lip = l[i * k + p];
        if (lip == 0)
          continue;
        const double *prow = linv.data() + p * k;
        for (int64_t j = 0; j <= p; ++j)
          row[j] -= lip * prow[j];
      }
      double d = l[i * k + i];
      for (int64_t j = 0; j <= i; ++j)
        row[j] /= d;
    }
    std::vector<double> inv(k * k, 0.0);
    for (int64_t p = 0; p < k; ++p) {
      const double *prow = linv.data() + p * k;
      for (int64_t i = 0; i <= p; ++i) {
        double a = prow[i];
        double *irow = inv.data() + i * k;
        for (int64_t j = 0; j <= i; ++j)
          irow[j] += a * prow[j];
      }
    }
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < i; ++j)
        inv[j * k + i] = inv[i * k + j];
    if (!cholesky(inv))
      continue;
    u.assign(k * k, 0.0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j <= i; ++j)
        u[j * k + i] = inv[i * k + j];
    return true;
  }
  error = "the calibration Hessian is not positive definite even with "
          "dampening";
  return false;
}
