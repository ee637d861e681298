//===- SpeculativeAcceptance.h - Which drafted tokens a target keeps ------===//
//
// Speculative decoding proposes K tokens cheaply (a draft model, or n-gram
// prompt lookup) and scores all of them with the target model in one pass
// (K + 1 rows of logits: after the context, after each drafted prefix).
// These functions decide, per sequence, how many drafted tokens survive and
// which token the target adds after them, so that the output is exactly
// what the target alone would produce:
//
// - greedy: the longest prefix of drafts equal to the target's argmax, then
//   the target's argmax after that prefix (token-for-token identical to
//   plain greedy decoding);
// - sampling: the rejection rule of Leviathan et al. (2023) and Chen et al.
//   (2023): draft i, drawn from q_i, is accepted with probability
//   min(1, p_i(d) / q_i(d)); at the first rejection the sequence takes a
//   token from normalize(max(0, p_i - q_i)) and stops; after K acceptances
//   it takes a bonus token from p_K. Every emitted token then follows the
//   target's distribution p exactly, whatever q is.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPECULATIVEACCEPTANCE_H
#define KILN_RUNTIME_SPECULATIVEACCEPTANCE_H

#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

/// The outcome of verifying one sequence's K drafted tokens.
struct Acceptance {
  /// Leading drafted tokens kept, 0..K.
  int32_t accepted = 0;
  /// What the sequence gains: the kept drafts, then the target's token (the
  /// correction at the first rejection, or the bonus after K acceptances);
  /// accepted + 1 tokens.
  std::vector<int32_t> tokens;
};

/// Greedy acceptance. `targetTokens` are the target's argmax tokens after
/// the context and after each drafted prefix: draft.size() + 1 entries.
/// InvalidArgument when the sizes disagree.
StatusOr<Acceptance> acceptGreedy(Span<const int32_t> draft,
                                  Span<const int32_t> targetTokens);

/// Rejection-sampling acceptance. `q` holds the K draft distributions the
/// drafts were drawn from and `p` the K + 1 target distributions
/// (Sampler::distribution of the target's logits), row-major, `vocab`
/// probabilities a row; the random draws come from `sampler` (the
/// request's own stream). InvalidArgument for sizes that disagree, a draft
/// outside the vocabulary or one its q gives no probability.
StatusOr<Acceptance> acceptSampled(Span<const int32_t> draft,
                                   Span<const double> q, Span<const double> p,
                                   int32_t vocab, Sampler &sampler);

/// normalize(max(0, p - q)) without the normalization (Sampler::sampleFrom
/// takes weights): where rejection sampling draws a correction from.
void residualWeights(Span<const double> p, Span<const double> q,
                     std::vector<double> &weights);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SPECULATIVEACCEPTANCE_H
