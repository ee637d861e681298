//===- NGramProposer.h - Draft tokens by prompt lookup --------------------===//
//
// The draft-free proposal of speculative decoding (prompt lookup decoding,
// Saxena 2023; vLLM's ngram speculator): the sequence's last n tokens are
// searched for earlier in the sequence (prompt and output), longest n
// first, most recent match first, and the tokens that followed that match
// are proposed. Code and structured text repeat themselves, so the target
// often accepts several of them; when nothing matches, nothing is proposed
// and the verification step is a plain decode step.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_NGRAMPROPOSER_H
#define KILN_RUNTIME_NGRAMPROPOSER_H

#include "kiln/runtime/Span.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

struct NGramOptions {
  /// Longest and shortest suffix searched for (minN >= 1, maxN >= minN).
  int32_t maxN = 3;
  int32_t minN = 1;
};

/// Up to `k` tokens that followed the most recent earlier occurrence of the
/// longest suffix of `tokens` (of maxN down to minN tokens) that occurs
/// earlier; empty when no suffix does (or k <= 0).
std::vector<int32_t> proposeByNGram(Span<const int32_t> tokens, int32_t k,
                                    const NGramOptions &options = {});

} // namespace kiln::runtime

#endif // KILN_RUNTIME_NGRAMPROPOSER_H
