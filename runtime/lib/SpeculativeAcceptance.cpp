//===- SpeculativeAcceptance.cpp - Which drafted tokens a target keeps ----===//

#include "kiln/runtime/SpeculativeAcceptance.h"

#include <algorithm>

namespace kiln::runtime {

StatusOr<Acceptance> acceptGreedy(Span<const int32_t> draft,
                                  Span<const int32_t> targetTokens) {
  if (targetTokens.size() != draft.size() + 1)
    return makeError(StatusCode::InvalidArgument, "greedy acceptance of ",
                     draft.size(), " drafted tokens needs ", draft.size() + 1,
                     " target tokens, got ", targetTokens.size());
  Acceptance result;
  size_t i = 0;
  while (i < draft.size() && draft[i] == targetTokens[i]) {
    result.tokens.push_back(draft[i]);
    ++i;
  }
  result.accepted = static_cast<int32_t>(i);
  // The target's own choice after the kept prefix: the correction of a
  // rejected draft, or the bonus token when every draft was kept.
  result.tokens.push_back(targetTokens[i]);
  return result;
}

void residualWeights(Span<const double> p, Span<const double> q,
                     std::vector<double> &weights) {
  weights.resize(p.size());
  for (size_t t = 0; t < p.size(); ++t)
    weights[t] = std::max(0.0, p[t] - q[t]);
}

StatusOr<Acceptance> acceptSampled(Span<const int32_t> draft,
                                   Span<const double> q, Span<const double> p,
                                   int32_t vocab, Sampler &sampler) {
  size_t k = draft.size();
  if (vocab < 1 || q.size() != k * vocab || p.size() != (k + 1) * vocab)
    return makeError(StatusCode::InvalidArgument, "sampled acceptance of ", k,
                     " drafted tokens over a vocabulary of ", vocab, " needs ",
                     k * vocab, " draft and ", (k + 1) * vocab,
                     " target probabilities, got ", q.size(), " and ",
                     p.size());
  Acceptance result;
  std::vector<double> weights;
  for (size_t i = 0; i < k; ++i) {
    int32_t d = draft[i];
    if (d < 0 || d >= vocab)
      return makeError(StatusCode::InvalidArgument, "drafted token ", i, " is ",
                       d, ", outside the vocabulary [0, ", vocab, ")");
    Span<const double> qi(q.data() + i * vocab, vocab);
    Span<const double> pi(p.data() + i * vocab, vocab);
    if (!(qi[d] > 0.0))
      return makeError(StatusCode::InvalidArgument, "drafted token ", i, " (",
                       d,
                       ") has no probability under the draft distribution "
                       "it was drawn from");
    // Accept with probability min(1, p/q): u < p/q with u uniform in [0, 1).
    if (sampler.nextUniform() * qi[d] < pi[d]) {
      result.tokens.push_back(d);
      continue;
    }
    result.accepted = static_cast<int32_t>(i);
    residualWeights(pi, qi, weights);
    StatusOr<int32_t> fix = sampler.sampleFrom(weights);
    // p <= q everywhere only when p == q up to rounding, where a rejection
    // has (near) zero probability: p itself is then the residual.
    if (!fix.isOk())
      fix = sampler.sampleFrom(pi);
    KILN_RETURN_IF_ERROR(fix.status());
    result.tokens.push_back(*fix);
    return result;
  }
  result.accepted = static_cast<int32_t>(k);
  KILN_ASSIGN_OR_RETURN(int32_t bonus, sampler.sampleFrom(Span<const double>(
                                           p.data() + k * vocab, vocab)));
  result.tokens.push_back(bonus);
  return result;
}

} // namespace kiln::runtime
