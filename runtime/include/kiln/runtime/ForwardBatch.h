//===- ForwardBatch.h - Flattened page tables for one forward step --------===//
//
// What PagedKVCache::beginForward hands the kernels of one step: a ragged
// batch of sequences, each appending some tokens (a prompt chunk for prefill,
// one token for decode, k+1 for speculative verification). The arrays are
// the device inputs as vLLM and FlashInfer name them; all are row-major.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_FORWARDBATCH_H
#define KILN_RUNTIME_FORWARDBATCH_H

#include "kiln/runtime/BlockTable.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

/// Value of the unused tail of a block-table row. A real block id (not -1)
/// so that a kernel reading a padded entry stays in bounds; kernels read
/// only the first ceil(contextLengths[i] / blockSize) entries of row i.
constexpr BlockId kPaddingBlockId = 0;

struct ForwardBatch {
  int32_t blockSize = 0;
  /// Sequence ids in batch order (the order the caller passed).
  std::vector<int64_t> seqIds;
  /// Appended tokens per sequence.
  std::vector<int32_t> appendLengths;
  /// Width of each block-table row: the most blocks any sequence holds.
  int32_t maxBlocksPerSequence = 0;
  /// [numSequences, maxBlocksPerSequence] block ids, padded with
  /// kPaddingBlockId.
  std::vector<BlockId> blockTables;
  /// [numSequences] tokens in the cache after this step (context + appended);
  /// the attention length of the sequence's last query token.
  std::vector<int32_t> contextLengths;
  /// [numSequences + 1] prefix sums of appendLengths (vLLM query_start_loc,
  /// FlashInfer qo_indptr): the rows of sequence i in the step's token-major
  /// activations are [queryStartLoc[i], queryStartLoc[i+1]).
  std::vector<int32_t> queryStartLoc;
  /// [numTokens] position of each appended token in its sequence (for RoPE).
  std::vector<int32_t> positions;
  /// [numTokens] slot of each appended token: block * blockSize + offset.
  /// The KV write of token j goes to slotMapping[j].
  std::vector<int64_t> slotMapping;
  /// Copy-on-write copies to apply, in order, before any KV write.
  std::vector<BlockCopy> copies;

  int32_t numSequences() const { return static_cast<int32_t>(seqIds.size()); }
  int32_t numTokens() const { return static_cast<int32_t>(positions.size()); }
  /// Block-table entry (sequence i, logical block j).
  BlockId block(int32_t i, int32_t j) const {
    return blockTables[static_cast<size_t>(i) * maxBlocksPerSequence + j];
  }
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_FORWARDBATCH_H
