//===- BlockAllocatorTest.cpp - Reference-counted KV block pool -----------===//

#include "kiln/runtime/BlockAllocator.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

TEST(BlockAllocatorTest, AllocatesInOrderAndCountsFree) {
  BlockAllocator pool(4);
  EXPECT_EQ(pool.numBlocks(), 4);
  EXPECT_EQ(pool.numFree(), 4);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(pool.allocate(3, blocks).isOk());
  EXPECT_EQ(blocks, (std::vector<BlockId>{0, 1, 2}));
  EXPECT_EQ(pool.numFree(), 1);
  EXPECT_EQ(pool.numUsed(), 3);
  for (BlockId b : blocks)
    EXPECT_EQ(pool.refCount(b), 1);
  EXPECT_EQ(pool.refCount(3), 0);
}

TEST(BlockAllocatorTest, ExhaustionLeavesStateUnchanged) {
  BlockAllocator pool(4);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(pool.allocate(3, blocks).isOk());
  std::vector<BlockId> more = {42};
  Status s = pool.allocate(2, more);
  EXPECT_EQ(s.code(), StatusCode::ResourceExhausted);
  EXPECT_EQ(s.message(), "out of KV blocks: need 2, 1 free of 4");
  EXPECT_EQ(more, (std::vector<BlockId>{42}));
  EXPECT_EQ(pool.numFree(), 1);
  EXPECT_EQ(pool.refCount(3), 0);
  // The one free block is still there to take.
  StatusOr<BlockId> last = pool.allocateOne();
  ASSERT_TRUE(last.isOk());
  EXPECT_EQ(*last, 3);
  EXPECT_EQ(pool.allocateOne().status().message(),
            "out of KV blocks: need 1, 0 free of 4");
}

TEST(BlockAllocatorTest, RetainReleaseAndReuse) {
  BlockAllocator pool(3);
  std::vector<BlockId> blocks;
  ASSERT_TRUE(pool.allocate(2, blocks).isOk());
  ASSERT_TRUE(pool.retain(0).isOk());
  EXPECT_EQ(pool.refCount(0), 2);
  EXPECT_TRUE(pool.isShared(0));
  bool freed = true;
  ASSERT_TRUE(pool.release(0, &freed).isOk());
  EXPECT_FALSE(freed);
  EXPECT_EQ(pool.numFree(), 1);
  ASSERT_TRUE(pool.release(0, &freed).isOk());
  EXPECT_TRUE(freed);
  EXPECT_EQ(pool.numFree(), 2);
  // The most recently freed block is handed out first.
  StatusOr<BlockId> again = pool.allocateOne();
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(*again, 0);
}

TEST(BlockAllocatorTest, RejectsBadIdsAndDoubleRelease) {
  BlockAllocator pool(2);
  EXPECT_EQ(pool.retain(5).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(pool.release(-1).code(), StatusCode::InvalidArgument);
  Status s = pool.release(1);
  EXPECT_EQ(s.code(), StatusCode::FailedPrecondition);
  EXPECT_EQ(s.message(), "cannot release block 1: it is free");
  std::vector<BlockId> out;
  EXPECT_EQ(pool.allocate(-1, out).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(pool.numFree(), 2);
}

} // namespace
