//===- PagedKVCache.cpp - Sequences, page tables and copy-on-write --------===//

#include "kiln/runtime/PagedKVCache.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

namespace kiln::runtime {

StatusOr<PagedKVCache> PagedKVCache::create(const KVCacheConfig &config) {
  KILN_RETURN_IF_ERROR(config.validate());
  return PagedKVCache(config);
}

PagedKVCache::PagedKVCache(const KVCacheConfig &config)
    : config_(config), allocator_(config.numBlocks),
      copyPins_(config.numBlocks, 0) {}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

StatusOr<BlockTable *> PagedKVCache::lookup(int64_t seqId) {
  auto it = sequences_.find(seqId);
  if (it == sequences_.end())
    return makeError(StatusCode::InvalidArgument, "unknown sequence ", seqId);
  return &it->second;
}

StatusOr<const BlockTable *> PagedKVCache::lookup(int64_t seqId) const {
  auto it = sequences_.find(seqId);
  if (it == sequences_.end())
    return makeError(StatusCode::InvalidArgument, "unknown sequence ", seqId);
  return &it->second;
}

Status PagedKVCache::checkNotInForward(const char *operation) const {
  // The step's block tables and slot mapping are a snapshot the device is
  // reading; changing a sequence under it would leave them stale.
  if (inForward_)
    return makeError(StatusCode::FailedPrecondition, "cannot ", operation,
                     " while a forward step is in progress (call endForward "
                     "first)");
  return Status::ok();
}

void PagedKVCache::addCopyHold(BlockId src) { ++copyPins_[src]; }

Status PagedKVCache::releaseBlock(BlockId block) {
  std::vector<BlockId> work{block};
  while (!work.empty()) {
    BlockId id = work.back();
    work.pop_back();
    bool freed = false;
    KILN_RETURN_IF_ERROR(allocator_.release(id, &freed));
    if (!freed)
      continue;
    // Nobody holds the destination any more, so the copy is dead; its hold
    // on the source goes with it (which may free that block in turn).
    for (auto it = pendingCopies_.begin(); it != pendingCopies_.end();) {
      if (it->dst != id) {
        ++it;
        continue;
      }
      --copyPins_[it->src];
      work.push_back(it->src);
      it = pendingCopies_.erase(it);
    }
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Sequences
//===----------------------------------------------------------------------===//

Status PagedKVCache::addSequence(int64_t seqId) {
  if (hasSequence(seqId))
    return makeError(StatusCode::InvalidArgument, "sequence ", seqId,
                     " already exists");
  sequences_.emplace(seqId, BlockTable());
  return Status::ok();
}

Status PagedKVCache::removeSequence(int64_t seqId) {
  KILN_RETURN_IF_ERROR(checkNotInForward("remove a sequence"));
  KILN_ASSIGN_OR_RETURN(BlockTable * table, lookup(seqId));
  std::vector<BlockId> blocks = std::move(table->blocks);
  sequences_.erase(seqId);
  for (BlockId block : blocks)
    KILN_RETURN_IF_ERROR(releaseBlock(block));
  return Status::ok();
}

Status PagedKVCache::forkSequence(int64_t parentId, int64_t childId,
                                  int32_t forkPos) {
  KILN_RETURN_IF_ERROR(checkNotInForward("fork a sequence"));
  KILN_ASSIGN_OR_RETURN(const BlockTable *parent, lookup(parentId));
  if (hasSequence(childId))
    return makeError(StatusCode::InvalidArgument, "cannot fork into sequence ",
                     childId, ": it already exists");
  if (forkPos == -1)
    forkPos = parent->length;
  if (forkPos < 0)
    return makeError(StatusCode::InvalidArgument, "fork position ", forkPos,
                     " is negative (use -1 to fork the whole parent)");
  if (forkPos > parent->length)
    return makeError(StatusCode::InvalidArgument, "fork position ", forkPos,
                     " is past the length ", parent->length,
                     " of parent sequence ", parentId);

  const int32_t blockSize = config_.blockSize;
  const int32_t numFull = forkPos / blockSize;
  const int32_t partialTokens = forkPos % blockSize;

  BlockTable child;
  child.length = forkPos;
  child.blocks.assign(parent->blocks.begin(), parent->blocks.begin() + numFull);
  // Allocate first: it is the only step that can fail, so a failure leaves
  // every reference count as it was.
  if (partialTokens > 0) {
    KILN_ASSIGN_OR_RETURN(BlockId copy, allocator_.allocateOne());
    BlockId src = parent->blocks[numFull];
    KILN_RETURN_IF_ERROR(allocator_.retain(src));
    addCopyHold(src);
    pendingCopies_.push_back(BlockCopy{src, copy, partialTokens});
    child.blocks.push_back(copy);
  }
  for (int32_t i = 0; i < numFull; ++i)
    KILN_RETURN_IF_ERROR(allocator_.retain(child.blocks[i]));
  sequences_.emplace(childId, std::move(child));
  return Status::ok();
}

Status PagedKVCache::popN(int64_t seqId, int32_t n) {
  KILN_RETURN_IF_ERROR(checkNotInForward("pop tokens"));
  KILN_ASSIGN_OR_RETURN(BlockTable * table, lookup(seqId));
  if (n < 0)
    return makeError(StatusCode::InvalidArgument,
                     "cannot pop a negative "
                     "number of tokens (",
                     n, ") from sequence ", seqId);
  if (n > table->length)
    return makeError(StatusCode::InvalidArgument, "cannot pop ", n,
                     " tokens from sequence ", seqId, " of length ",
                     table->length);
  table->length -= n;
  size_t keep = blocksForTokens(table->length, config_.blockSize);
  std::vector<BlockId> dropped(table->blocks.begin() + keep,
                               table->blocks.end());
  table->blocks.resize(keep);
  for (BlockId block : dropped)
    KILN_RETURN_IF_ERROR(releaseBlock(block));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Forward steps
//===----------------------------------------------------------------------===//

Status PagedKVCache::beginForward(Span<const int64_t> seqIds,
                                  Span<const int32_t> appendLengths) {
  if (inForward_)
    return makeError(StatusCode::FailedPrecondition,
                     "beginForward called twice without endForward");
  if (seqIds.size() != appendLengths.size())
    return makeError(StatusCode::InvalidArgument, "beginForward got ",
                     seqIds.size(), " sequence ids but ", appendLengths.size(),
                     " append lengths");
  if (seqIds.empty())
    return makeError(StatusCode::InvalidArgument,
                     "beginForward got an empty batch");

  // Plan every sequence before touching anything (all or nothing).
  struct Plan {
    BlockTable *table;
    bool copyOnWrite;
    int32_t newBlocks;
  };
  const int32_t blockSize = config_.blockSize;
  std::vector<Plan> plans;
  plans.reserve(seqIds.size());
  std::unordered_set<int64_t> seen;
  int64_t needed = 0;
  for (size_t i = 0; i < seqIds.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(BlockTable * table, lookup(seqIds[i]));
    if (!seen.insert(seqIds[i]).second)
      return makeError(StatusCode::InvalidArgument, "sequence ", seqIds[i],
                       " appears twice in the forward batch");
    if (appendLengths[i] < 1)
      return makeError(StatusCode::InvalidArgument, "append length ",
                       appendLengths[i], " of sequence ", seqIds[i],
                       " must be positive");
    int64_t newLength = int64_t(table->length) + appendLengths[i];
    if (newLength > std::numeric_limits<int32_t>::max())
      return makeError(StatusCode::OutOfRange, "sequence ", seqIds[i],
                       " would grow past 2^31 - 1 tokens");
    // Writing into a partial last block that another sequence also holds
    // would clobber that sequence's view: copy it first.
    bool cow = table->tokensInPartialBlock(blockSize) > 0 &&
               writers(table->blocks.back()) > 1;
    int32_t newBlocks = static_cast<int32_t>(
        blocksForTokens(newLength, blockSize) - table->blocks.size());
    plans.push_back(Plan{table, cow, newBlocks});
    needed += newBlocks + (cow ? 1 : 0);
  }
  if (needed > allocator_.numFree())
    return allocator_.exhaustedError(needed);

  std::vector<BlockId> fresh;
  KILN_RETURN_IF_ERROR(
      allocator_.allocate(static_cast<int32_t>(needed), fresh));
  auto nextFresh = fresh.begin();

  ForwardBatch batch;
  batch.blockSize = blockSize;
  batch.seqIds.assign(seqIds.begin(), seqIds.end());
  batch.appendLengths.assign(appendLengths.begin(), appendLengths.end());
  // Fork copies first: a copy-on-write below may read a fork's destination.
  batch.copies = std::move(pendingCopies_);
  pendingCopies_.clear();
  batch.queryStartLoc.push_back(0);
  for (size_t i = 0; i < plans.size(); ++i) {
    BlockTable &table = *plans[i].table;
    if (plans[i].copyOnWrite) {
      // The sequence's reference to the shared block moves to the copy,
      // which keeps it alive until endForward.
      BlockId src = table.blocks.back();
      BlockId dst = *nextFresh++;
      addCopyHold(src);
      batch.copies.push_back(
          BlockCopy{src, dst, table.tokensInPartialBlock(blockSize)});
      table.blocks.back() = dst;
    }
    table.blocks.insert(table.blocks.end(), nextFresh,
                        nextFresh + plans[i].newBlocks);
    nextFresh += plans[i].newBlocks;

    const int32_t oldLength = table.length;
    table.length += appendLengths[i];
    for (int32_t pos = oldLength; pos < table.length; ++pos) {
      batch.positions.push_back(pos);
      batch.slotMapping.push_back(
          int64_t(table.blocks[pos / blockSize]) * blockSize + pos % blockSize);
    }
    batch.contextLengths.push_back(table.length);
    batch.queryStartLoc.push_back(batch.queryStartLoc.back() +
                                  appendLengths[i]);
    batch.maxBlocksPerSequence = std::max(
        batch.maxBlocksPerSequence, static_cast<int32_t>(table.blocks.size()));
  }

  batch.blockTables.assign(plans.size() * size_t(batch.maxBlocksPerSequence),
                           kPaddingBlockId);
  for (size_t i = 0; i < plans.size(); ++i)
    std::copy(plans[i].table->blocks.begin(), plans[i].table->blocks.end(),
              batch.blockTables.begin() + i * batch.maxBlocksPerSequence);

  batch_ = std::move(batch);
  inForward_ = true;
  return Status::ok();
}

Status PagedKVCache::endForward() {
  if (!inForward_)
    return makeError(StatusCode::FailedPrecondition,
                     "endForward called without beginForward");
  std::vector<BlockCopy> copies = std::move(batch_.copies);
  batch_ = ForwardBatch();
  inForward_ = false;
  // The device has applied the copies: drop their holds on the sources.
  for (const BlockCopy &copy : copies) {
    --copyPins_[copy.src];
    KILN_RETURN_IF_ERROR(releaseBlock(copy.src));
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Queries
//===----------------------------------------------------------------------===//

StatusOr<std::vector<BlockId>> PagedKVCache::blockTable(int64_t seqId) const {
  KILN_ASSIGN_OR_RETURN(const BlockTable *table, lookup(seqId));
  return table->blocks;
}

StatusOr<int32_t> PagedKVCache::length(int64_t seqId) const {
  KILN_ASSIGN_OR_RETURN(const BlockTable *table, lookup(seqId));
  return table->length;
}

} // namespace kiln::runtime
