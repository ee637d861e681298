//===- Sampler.cpp - Next-token choice from a row of logits ---------------===//

#include "kiln/runtime/Sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace kiln::runtime {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || std::isinf(temperature))
    return makeError(StatusCode::InvalidArgument, "temperature ", temperature,
                     " must be a finite value >= 0");
  if (topK < 0)
    return makeError(StatusCode::InvalidArgument, "top_k ", topK,
                     " must be >= 0 (0 disables it)");
  if (!(topP > 0.0f && topP <= 1.0f))
    return makeError(StatusCode::InvalidArgument, "top_p ", topP,
                     " must lie in (0, 1]");
  return Status::ok();
}

/// Rejects rows a softmax cannot handle; returns the number of finite logits.
static StatusOr<size_t> checkLogits(Span<const float> logits) {
  if (logits.empty())
    return makeError(StatusCode::InvalidArgument, "empty logits");
  size_t finite = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    float v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      return makeError(StatusCode::InvalidArgument, "logit ", i, " is ", v);
    finite += std::isfinite(v);
  }
  if (finite == 0)
    return makeError(StatusCode::InvalidArgument,
                     "every logit is -inf: no token can be chosen");
  return finite;
}

StatusOr<int32_t> Sampler::greedy(Span<const float> logits) {
  StatusOr<size_t> checked = checkLogits(logits);
  if (!checked.isOk())
    return checked.status();
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) // strict: the first maximum wins ties
      best = i;
  return static_cast<int32_t>(best);
}

double Sampler::nextUniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

/// The tokens `params` leaves candidates (after top-k and top-p, most
/// likely first) and their unnormalized softmax weights of logit /
/// temperature. One function for sample() and distribution(), so that the
/// distribution speculative decoding reasons about is the one sampled from.
static Status candidateWeights(Span<const float> logits,
                               const SamplingParams &params,
                               std::vector<int32_t> &order,
                               std::vector<double> &weights, double &total) {
  KILN_ASSIGN_OR_RETURN(size_t numFinite, checkLogits(logits));

  // Candidates, most likely first and the lower index first on ties, so
  // that top-k = 1 and a tiny top-p both reduce to greedy.
  order.clear();
  order.reserve(numFinite);
  for (size_t i = 0; i < logits.size(); ++i)
    if (std::isfinite(logits[i]))
      order.push_back(static_cast<int32_t>(i));
  auto moreLikely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  size_t keep = order.size();
  if (params.topK > 0 && size_t(params.topK) < keep) {
    keep = params.topK;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                      moreLikely);
    order.resize(keep);
  } else if (params.topP < 1.0f) {
    std::sort(order.begin(), order.end(), moreLikely);
  }

  // Softmax of logit / temperature over the candidates, in double so that
  // sums over large vocabularies stay accurate.
  float maxLogit = logits[order.front()];
  for (int32_t i : order)
    maxLogit = std::max(maxLogit, logits[i]);
  weights.assign(order.size(), 0.0);
  total = 0.0;
  for (size_t j = 0; j < order.size(); ++j) {
    weights[j] = std::exp((double(logits[order[j]]) - double(maxLogit)) /
                          params.temperature);
    total += weights[j];
  }

  if (params.topP < 1.0f) {
    // The smallest prefix whose mass reaches topP: keep token j while the
    // mass before it is below topP (so the most likely token always stays).
    double before = 0.0;
    size_t kept = 0;
    while (kept < order.size() && before < params.topP * total) {
      before += weights[kept];
      ++kept;
    }
    weights.resize(kept);
    order.resize(kept);
    total = before;
  }
  return Status::ok();
}

StatusOr<int32_t> Sampler::sample(Span<const float> logits,
                                  const SamplingParams &params) {
  KILN_RETURN_IF_ERROR(params.validate());
  if (params.isGreedy())
    return greedy(logits);
  std::vector<int32_t> order;
  std::vector<double> weights;
  double total = 0.0;
  KILN_RETURN_IF_ERROR(candidateWeights(logits, params, order, weights, total));

  double u = nextUniform() * total;
  double cumulative = 0.0;
  for (size_t j = 0; j < weights.size(); ++j) {
    cumulative += weights[j];
    if (u < cumulative)
      return order[j];
  }
  // Rounding can leave u at the very top of the range.
  return order[weights.size() - 1];
}

Status Sampler::distribution(Span<const float> logits,
                             const SamplingParams &params,
                             std::vector<double> &probs) {
  KILN_RETURN_IF_ERROR(params.validate());
  probs.assign(logits.size(), 0.0);
  if (params.isGreedy()) {
    KILN_ASSIGN_OR_RETURN(int32_t best, greedy(logits));
    probs[best] = 1.0;
    return Status::ok();
  }
  std::vector<int32_t> order;
  std::vector<double> weights;
  double total = 0.0;
  KILN_RETURN_IF_ERROR(candidateWeights(logits, params, order, weights, total));
  for (size_t j = 0; j < weights.size(); ++j)
    probs[order[j]] = weights[j] / total;
  return Status::ok();
}

StatusOr<int32_t> Sampler::sampleFrom(Span<const double> weights) {
  double total = 0.0;
  int32_t last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] >= 0.0) || std::isinf(weights[i]))
      return makeError(StatusCode::InvalidArgument, "weight ", i, " is ",
                       weights[i]);
    total += weights[i];
    if (weights[i] > 0.0)
      last = static_cast<int32_t>(i);
  }
  if (last < 0)
    return makeError(StatusCode::InvalidArgument,
                     "no positive weight: nothing can be drawn");
  double u = nextUniform() * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < weights.size(); ++i) {
    cumulative += weights[i];
    if (u < cumulative && weights[i] > 0.0)
      return static_cast<int32_t>(i);
  }
  // Rounding can leave u at the very top of the range.
  return last;
}

} // namespace kiln::runtime
