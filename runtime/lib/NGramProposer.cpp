//===- NGramProposer.cpp - Draft tokens by prompt lookup ------------------===//

#include "kiln/runtime/NGramProposer.h"

#include <algorithm>

namespace kiln::runtime {

std::vector<int32_t> proposeByNGram(Span<const int32_t> tokens, int32_t k,
                                    const NGramOptions &options) {
  std::vector<int32_t> proposal;
  int64_t size = static_cast<int64_t>(tokens.size());
  if (k <= 0 || options.minN < 1)
    return proposal;
  for (int64_t n = std::min<int64_t>(options.maxN, size - 1); n >= options.minN;
       --n) {
    const int32_t *suffix = tokens.data() + size - n;
    // Most recent first: recent context predicts the continuation best. A
    // match may overlap the suffix (runs like "a a a"); starting at most at
    // size - n - 1 leaves at least one token after it to propose.
    for (int64_t start = size - n - 1; start >= 0; --start) {
      if (!std::equal(suffix, suffix + n, tokens.data() + start))
        continue;
      int64_t from = start + n;
      int64_t count = std::min<int64_t>(k, size - from);
      proposal.assign(tokens.data() + from, tokens.data() + from + count);
      return proposal;
    }
  }
  return proposal;
}

} // namespace kiln::runtime
