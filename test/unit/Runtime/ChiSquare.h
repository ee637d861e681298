//===- ChiSquare.h - Chi-square p-values for distribution tests -----------===//
//
// The tests of speculative sampling compare token frequencies with the
// target's probabilities; a chi-square statistic with df degrees of
// freedom has the survival function Q(df / 2, chi2 / 2).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_RUNTIME_CHISQUARE_H
#define KILN_TEST_UNIT_RUNTIME_CHISQUARE_H

#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::runtime::testing {

/// Regularized upper incomplete gamma Q(a, x) (Numerical Recipes' gser and
/// gcf): the chi-square survival function is Q(df / 2, chi2 / 2).
inline double upperGammaQ(double a, double x) {
  if (x <= 0)
    return 1.0;
  double lnPrefix = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 1000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::fabs(term) < std::fabs(sum) * 1e-15)
        break;
    }
    return 1.0 - sum * std::exp(lnPrefix);
  }
  double b = x + 1 - a, c = 1e300, d = 1.0 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < 1e-300)
      d = 1e-300;
    c = b + an / c;
    if (std::fabs(c) < 1e-300)
      c = 1e-300;
    d = 1.0 / d;
    double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < 1e-15)
      break;
  }
  return std::exp(lnPrefix) * h;
}

/// The p-value of `counts` against `probs` (cells with zero probability
/// must have zero counts and are left out of the degrees of freedom).
inline double chiSquarePValue(const std::vector<int64_t> &counts,
                              const std::vector<double> &probs) {
  int64_t total = 0;
  for (int64_t c : counts)
    total += c;
  double chi2 = 0.0;
  int cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] <= 0.0) {
      if (counts[i] > 0)
        return 0.0;
      continue;
    }
    double expected = total * probs[i];
    double diff = counts[i] - expected;
    chi2 += diff * diff / expected;
    ++cells;
  }
  return upperGammaQ((cells - 1) / 2.0, chi2 / 2);
}

} // namespace kiln::runtime::testing

#endif // KILN_TEST_UNIT_RUNTIME_CHISQUARE_H
