//===- BlockAllocator.h - Reference-counted pool of KV cache blocks -------===//
//
// The paged KV cache carves its device memory into a fixed number of blocks
// (pages) of `block_size` tokens each. Blocks are shared between sequences
// forked from a common prefix, so each carries a reference count: a block
// returns to the free list when its last holder releases it. The allocator
// only hands out ids; it never touches the memory behind them.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_BLOCKALLOCATOR_H
#define KILN_RUNTIME_BLOCKALLOCATOR_H

#include "kiln/runtime/Status.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

/// Index of a block in [0, numBlocks). int32 because kernels take int32
/// block tables.
using BlockId = int32_t;

class BlockAllocator {
public:
  /// A pool of `numBlocks` free blocks (numBlocks >= 0).
  explicit BlockAllocator(int32_t numBlocks);

  /// Allocates `count` blocks, each with reference count 1, and appends
  /// their ids to `out`. All or nothing: if fewer than `count` are free it
  /// returns ResourceExhausted and changes neither the pool nor `out`.
  Status allocate(int32_t count, std::vector<BlockId> &out);

  /// One block with reference count 1.
  StatusOr<BlockId> allocateOne();

  /// Adds a holder to an allocated block (sharing it with a fork).
  Status retain(BlockId block);

  /// Drops a holder; the block becomes free when the count reaches zero.
  /// `outFreed`, if given, is set to whether that happened.
  Status release(BlockId block, bool *outFreed = nullptr);

  /// 0 for a free block or an id out of range.
  int32_t refCount(BlockId block) const;
  bool isShared(BlockId block) const { return refCount(block) > 1; }

  int32_t numBlocks() const { return static_cast<int32_t>(refCounts_.size()); }
  int32_t numFree() const { return static_cast<int32_t>(freeList_.size()); }
  int32_t numUsed() const { return numBlocks() - numFree(); }

  /// The ResourceExhausted status for a request of `needed` blocks,
  /// shared with callers that check capacity before allocating.
  Status exhaustedError(int64_t needed) const;

private:
  Status checkAllocated(BlockId block, const char *operation) const;

  std::vector<int32_t> refCounts_;
  /// A stack: the most recently freed block is reused first, which keeps
  /// the working set of blocks small. Initially pops 0, 1, 2, ...
  std::vector<BlockId> freeList_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_BLOCKALLOCATOR_H
