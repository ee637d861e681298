//===- PagedKVCache.h - Sequences, page tables and copy-on-write ----------===//
//
// The host-side bookkeeping of a paged KV cache, after TVM/MLC's kv_state.h:
// AddSequence, RemoveSequence, ForkSequence(parent, child, fork_pos), PopN,
// BeginForward(seq_ids, append_lengths), EndForward. It decides which block
// and slot every token's K and V live in (see KVCacheConfig.h for the
// layout) and which blocks must be copied; a device (CUDA or the host
// reference) owns the memory and performs the copies and writes.
//
// Sharing: a fork shares the parent's full blocks by reference count. A
// partially filled block is never written by two sequences: the fork copies
// it at once (a pending copy), and an append into a partial block that is
// still shared (e.g. after PopN back into a shared block) copies it first.
//
// Copies: fork records a pending copy; the next beginForward moves pending
// copies and its own copy-on-writes into the step's ForwardBatch::copies,
// which the device applies before the step's KV writes. The source of a
// copy stays allocated until that step's endForward, so its id is not
// reused while the copy may still read it. A copy whose destination is
// freed before it ran (the child was removed) is dropped.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_PAGEDKVCACHE_H
#define KILN_RUNTIME_PAGEDKVCACHE_H

#include "kiln/runtime/BlockAllocator.h"
#include "kiln/runtime/BlockTable.h"
#include "kiln/runtime/ForwardBatch.h"
#include "kiln/runtime/KVCacheConfig.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace kiln::runtime {

class PagedKVCache {
public:
  /// A cache with config.numBlocks free blocks; InvalidArgument if the
  /// config does not validate.
  static StatusOr<PagedKVCache> create(const KVCacheConfig &config);

  const KVCacheConfig &config() const { return config_; }
  int64_t kvBytesPerToken() const { return config_.kvBytesPerToken(); }

  //===--------------------------------------------------------------------===//
  // Sequences
  //===--------------------------------------------------------------------===//

  /// Adds an empty sequence. InvalidArgument if `seqId` exists.
  Status addSequence(int64_t seqId);

  /// Removes a sequence and releases its blocks.
  Status removeSequence(int64_t seqId);

  /// Creates `childId` holding the first `forkPos` tokens of `parentId`
  /// (forkPos == -1: all of them). Full blocks are shared; a partial block
  /// at forkPos gets a fresh block and a pending copy. ResourceExhausted
  /// (and no change) if that block cannot be allocated.
  Status forkSequence(int64_t parentId, int64_t childId, int32_t forkPos = -1);

  /// Drops the last `n` tokens of a sequence (rejected speculative tokens)
  /// and releases the blocks that no longer hold any of its tokens.
  Status popN(int64_t seqId, int32_t n);

  //===--------------------------------------------------------------------===//
  // Forward steps
  //===--------------------------------------------------------------------===//

  /// Reserves room for appendLengths[i] (>= 1) new tokens in seqIds[i],
  /// grows the sequences' lengths and builds the step's ForwardBatch. All or
  /// nothing: on any error (ResourceExhausted included) nothing changes.
  /// Sequences may not be removed, forked or popped until endForward.
  Status beginForward(Span<const int64_t> seqIds,
                      Span<const int32_t> appendLengths);

  /// Ends the step (the device has applied its copies and writes).
  Status endForward();

  bool inForward() const { return inForward_; }
  /// The current step's arrays; empty outside beginForward/endForward.
  const ForwardBatch &forwardBatch() const { return batch_; }

  //===--------------------------------------------------------------------===//
  // Queries
  //===--------------------------------------------------------------------===//

  bool hasSequence(int64_t seqId) const { return sequences_.count(seqId); }
  int32_t numSequences() const {
    return static_cast<int32_t>(sequences_.size());
  }
  StatusOr<std::vector<BlockId>> blockTable(int64_t seqId) const;
  StatusOr<int32_t> length(int64_t seqId) const;
  /// Copies recorded by forks and not yet handed to a step.
  const std::vector<BlockCopy> &pendingCopies() const { return pendingCopies_; }
  const BlockAllocator &allocator() const { return allocator_; }
  int32_t numFreeBlocks() const { return allocator_.numFree(); }

private:
  explicit PagedKVCache(const KVCacheConfig &config);

  StatusOr<BlockTable *> lookup(int64_t seqId);
  StatusOr<const BlockTable *> lookup(int64_t seqId) const;
  Status checkNotInForward(const char *operation) const;

  /// Holders of `block` that may write it: sequences, not pending copies.
  int32_t writers(BlockId block) const {
    return allocator_.refCount(block) - copyPins_[block];
  }
  /// Records a copy; it holds a reference to (and pins) its source.
  void addCopyHold(BlockId src);
  /// Releases one reference; if that frees the block, drops the pending
  /// copies into it and releases their sources in turn.
  Status releaseBlock(BlockId block);

  KVCacheConfig config_;
  BlockAllocator allocator_;
  std::unordered_map<int64_t, BlockTable> sequences_;
  std::vector<BlockCopy> pendingCopies_;
  /// Per block: references held by copies (pending or in the current step).
  std::vector<int32_t> copyPins_;
  bool inForward_ = false;
  ForwardBatch batch_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_PAGEDKVCACHE_H
