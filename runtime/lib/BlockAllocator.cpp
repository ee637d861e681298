//===- BlockAllocator.cpp - Reference-counted pool of KV cache blocks -----===//

#include "kiln/runtime/BlockAllocator.h"

namespace kiln::runtime {

BlockAllocator::BlockAllocator(int32_t numBlocks)
    : refCounts_(numBlocks > 0 ? numBlocks : 0, 0) {
  freeList_.reserve(refCounts_.size());
  for (int32_t id = numBlocks - 1; id >= 0; --id)
    freeList_.push_back(id);
}

Status BlockAllocator::exhaustedError(int64_t needed) const {
  return makeError(StatusCode::ResourceExhausted, "out of KV blocks: need ",
                   needed, ", ", numFree(), " free of ", numBlocks());
}

Status BlockAllocator::allocate(int32_t count, std::vector<BlockId> &out) {
  if (count < 0)
    return makeError(StatusCode::InvalidArgument,
                     "cannot allocate a negative number of blocks (", count,
                     ")");
  if (count > numFree())
    return exhaustedError(count);
  out.reserve(out.size() + count);
  for (int32_t i = 0; i < count; ++i) {
    BlockId id = freeList_.back();
    freeList_.pop_back();
    refCounts_[id] = 1;
    out.push_back(id);
  }
  return Status::ok();
}

StatusOr<BlockId> BlockAllocator::allocateOne() {
  std::vector<BlockId> one;
  KILN_RETURN_IF_ERROR(allocate(1, one));
  return one.front();
}

Status BlockAllocator::checkAllocated(BlockId block,
                                      const char *operation) const {
  if (block < 0 || block >= numBlocks())
    return makeError(StatusCode::InvalidArgument, "cannot ", operation,
                     " block ", block, ": the pool has blocks 0..",
                     numBlocks() - 1);
  if (refCounts_[block] == 0)
    return makeError(StatusCode::FailedPrecondition, "cannot ", operation,
                     " block ", block, ": it is free");
  return Status::ok();
}

Status BlockAllocator::retain(BlockId block) {
  KILN_RETURN_IF_ERROR(checkAllocated(block, "retain"));
  ++refCounts_[block];
  return Status::ok();
}

Status BlockAllocator::release(BlockId block, bool *outFreed) {
  KILN_RETURN_IF_ERROR(checkAllocated(block, "release"));
  bool freed = --refCounts_[block] == 0;
  if (freed)
    freeList_.push_back(block);
  if (outFreed)
    *outFreed = freed;
  return Status::ok();
}

int32_t BlockAllocator::refCount(BlockId block) const {
  if (block < 0 || block >= numBlocks())
    return 0;
  return refCounts_[block];
}

} // namespace kiln::runtime
