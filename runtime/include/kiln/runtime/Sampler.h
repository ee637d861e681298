//===- Sampler.h - Next-token choice from a row of logits -----------------===//
//
// Greedy, temperature, top-k and top-p (nucleus) sampling on the host, in
// the order Hugging Face applies its logits processors: temperature, then
// top-k, then top-p. A Sampler owns a seeded std::mt19937_64, so the same
// seed and the same logits give the same tokens on every platform (the
// uniform draw is computed from the raw 64-bit output rather than through
// std::uniform_real_distribution, whose algorithm the standard leaves open).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SAMPLER_H
#define KILN_RUNTIME_SAMPLER_H

#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace kiln::runtime {

struct SamplingParams {
  /// 0 means greedy; otherwise logits are divided by it before softmax.
  float temperature = 0.0f;
  /// Keep only the k most likely tokens; 0 disables the filter.
  int32_t topK = 0;
  /// Keep the smallest set of most likely tokens whose probability mass
  /// reaches topP; 1 disables the filter. Must lie in (0, 1].
  float topP = 1.0f;
  /// Keep generating after EOS (benchmarks: a fixed number of steps).
  bool ignoreEos = false;
  /// Seed of the request's own random stream (the Engine gives every
  /// request a Sampler of its own). Unset: derived from the engine's seed
  /// and the request id (request 1 gets the engine's seed itself).
  std::optional<uint64_t> seed;

  /// InvalidArgument for temperature < 0 (or NaN), topK < 0, or topP
  /// outside (0, 1].
  Status validate() const;
  bool isGreedy() const { return temperature == 0.0f; }
  /// The seed of request `id` (ids from 1) of an engine seeded with
  /// `engineSeed`: `seed` when set, else request 1 draws from the engine's
  /// seed itself (a lone request samples as the engine's single sampler
  /// did) and later ones from spread seeds. Every engine uses this rule, so
  /// a request samples alike whichever engine serves it.
  uint64_t seedFor(uint64_t engineSeed, int64_t id) const {
    return seed ? *seed
                : engineSeed +
                      static_cast<uint64_t>(id - 1) * 0x9E3779B97F4A7C15ull;
  }
};

class Sampler {
public:
  explicit Sampler(uint64_t seed) : rng_(seed) {}

  void reseed(uint64_t seed) { rng_.seed(seed); }

  /// The index of the chosen token. -inf logits are masked tokens and are
  /// never chosen; NaN or +inf logits, an empty row or a row with nothing
  /// but -inf are InvalidArgument. Greedy ignores topK/topP and does not
  /// advance the generator.
  StatusOr<int32_t> sample(Span<const float> logits,
                           const SamplingParams &params);

  /// Argmax, the lowest index on ties.
  static StatusOr<int32_t> greedy(Span<const float> logits);

  /// The distribution sample() draws from for these logits and parameters,
  /// as dense probabilities (`probs` gets logits.size() entries, zero for
  /// tokens top-k/top-p removed; greedy: one 1 at the argmax). What
  /// speculative decoding's rejection rule compares (SpeculativeAcceptance.h).
  static Status distribution(Span<const float> logits,
                             const SamplingParams &params,
                             std::vector<double> &probs);

  /// An index drawn with probability weights[i] / sum(weights) (the weights
  /// need not be normalized; zero weights are never drawn). InvalidArgument
  /// for a negative, NaN or infinite weight or no positive one.
  StatusOr<int32_t> sampleFrom(Span<const double> weights);

  /// Uniform in [0, 1) from the top 53 bits of one generator output.
  double nextUniform();

private:
  std::mt19937_64 rng_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SAMPLER_H
