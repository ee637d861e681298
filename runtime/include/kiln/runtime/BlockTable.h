//===- BlockTable.h - One sequence's pages in the paged KV cache ----------===//
//
// A sequence of `length` tokens owns ceil(length / block_size) blocks; token
// i lives in blocks[i / block_size] at offset i % block_size. Only the last
// block can be partially filled. Blocks may be shared with other sequences
// (prefix sharing after a fork); the allocator's reference count says so.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_BLOCKTABLE_H
#define KILN_RUNTIME_BLOCKTABLE_H

#include "kiln/runtime/BlockAllocator.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

/// Blocks needed to hold `tokens` tokens.
inline int64_t blocksForTokens(int64_t tokens, int32_t blockSize) {
  return (tokens + blockSize - 1) / blockSize;
}

struct BlockTable {
  /// Block ids in token order; size() == blocksForTokens(length).
  std::vector<BlockId> blocks;
  int32_t length = 0;

  /// Tokens in the last block, 0 when it is full (or there is none), i.e.
  /// when the next token starts a new block.
  int32_t tokensInPartialBlock(int32_t blockSize) const {
    return length % blockSize;
  }
};

/// A copy of the first `numTokens` token rows of block `src` into block `dst`,
/// for every layer and for both K and V (copy-on-write of a shared partial
/// block). The device applies a step's copies in order, before any KV write
/// of that step: a later copy may read a block an earlier one wrote.
struct BlockCopy {
  BlockId src = 0;
  BlockId dst = 0;
  int32_t numTokens = 0;

  bool operator==(const BlockCopy &o) const {
    return src == o.src && dst == o.dst && numTokens == o.numTokens;
  }
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_BLOCKTABLE_H
