//===- PagedKVCacheTest.cpp - Sequences, page tables, copy-on-write -------===//
//
// Block ids are deterministic (the pool hands out 0, 1, 2, ... and reuses
// the most recently freed block first), so tests state exact tables. The
// last test replays random operations against a simulated device memory to
// check that every sequence reads back exactly its own tokens.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/PagedKVCache.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

using namespace kiln::runtime;

namespace {

using Blocks = std::vector<BlockId>;

/// 2 layers, 2 KV heads of 8, f16, 4-token blocks, 8 blocks.
KVCacheConfig smallConfig(int32_t numBlocks = 8) {
  KVCacheConfig config;
  config.numLayers = 2;
  config.numKVHeads = 2;
  config.headDim = 8;
  config.blockSize = 4;
  config.numBlocks = numBlocks;
  config.elementBytes = 2;
  return config;
}

PagedKVCache makeCache(int32_t numBlocks = 8) {
  StatusOr<PagedKVCache> cache = PagedKVCache::create(smallConfig(numBlocks));
  EXPECT_TRUE(cache.isOk()) << cache.status();
  return std::move(cache).value();
}

/// Runs one step appending `lengths` tokens; returns the step's batch.
ForwardBatch step(PagedKVCache &cache, std::vector<int64_t> ids,
                  std::vector<int32_t> lengths) {
  Status s = cache.beginForward(ids, lengths);
  EXPECT_TRUE(s.isOk()) << s;
  ForwardBatch batch = cache.forwardBatch();
  EXPECT_TRUE(cache.endForward().isOk());
  return batch;
}

Blocks blocksOf(const PagedKVCache &cache, int64_t seq) {
  StatusOr<Blocks> table = cache.blockTable(seq);
  EXPECT_TRUE(table.isOk()) << table.status();
  return table.isOk() ? *table : Blocks();
}

int32_t lengthOf(const PagedKVCache &cache, int64_t seq) {
  StatusOr<int32_t> length = cache.length(seq);
  EXPECT_TRUE(length.isOk()) << length.status();
  return length.isOk() ? *length : -1;
}

//===----------------------------------------------------------------------===//
// Configuration
//===----------------------------------------------------------------------===//

TEST(KVCacheConfigTest, KvBytesPerToken) {
  EXPECT_EQ(smallConfig().kvBytesPerToken(), 2 * 2 * 2 * 8 * 2);
  EXPECT_EQ(smallConfig().blockBytesPerLayer(), 2 * 4 * 8 * 2);
  EXPECT_EQ(smallConfig().totalBytes(), 8 * 4 * 128);
  // Llama-3-8B: 32 layers, 8 KV heads of 128, f16 -> 128 KiB per token.
  KVCacheConfig llama;
  llama.numLayers = 32;
  llama.numKVHeads = 8;
  llama.headDim = 128;
  llama.numBlocks = 1;
  EXPECT_EQ(llama.kvBytesPerToken(), 131072);
  PagedKVCache cache = makeCache();
  EXPECT_EQ(cache.kvBytesPerToken(), 128);
}

TEST(KVCacheConfigTest, RejectsNonPositiveFields) {
  KVCacheConfig config = smallConfig();
  config.blockSize = 0;
  StatusOr<PagedKVCache> cache = PagedKVCache::create(config);
  ASSERT_FALSE(cache.isOk());
  EXPECT_EQ(cache.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(cache.status().message(),
            "KV cache block_size must be positive, got 0");
}

//===----------------------------------------------------------------------===//
// Sequences
//===----------------------------------------------------------------------===//

TEST(PagedKVCacheTest, AddAndRemoveSequences) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  EXPECT_TRUE(cache.hasSequence(1));
  EXPECT_EQ(lengthOf(cache, 1), 0);
  Status dup = cache.addSequence(1);
  EXPECT_EQ(dup.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(dup.message(), "sequence 1 already exists");
  Status unknown = cache.removeSequence(9);
  EXPECT_EQ(unknown.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(unknown.message(), "unknown sequence 9");
  EXPECT_EQ(cache.length(9).status().message(), "unknown sequence 9");
  EXPECT_EQ(cache.blockTable(9).status().code(), StatusCode::InvalidArgument);

  step(cache, {1}, {6});
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1}));
  EXPECT_EQ(cache.numFreeBlocks(), 6);
  ASSERT_TRUE(cache.removeSequence(1).isOk());
  EXPECT_FALSE(cache.hasSequence(1));
  EXPECT_EQ(cache.numFreeBlocks(), 8);
}

TEST(PagedKVCacheTest, PopNReleasesEmptiedBlocks) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {10});
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1, 2}));
  ASSERT_TRUE(cache.popN(1, 1).isOk()); // 9 tokens: block 2 still used
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1, 2}));
  EXPECT_EQ(cache.numFreeBlocks(), 5);
  ASSERT_TRUE(cache.popN(1, 1).isOk()); // 8 tokens: block 2 empties
  EXPECT_EQ(lengthOf(cache, 1), 8);
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1}));
  EXPECT_EQ(cache.numFreeBlocks(), 6);
  EXPECT_EQ(cache.allocator().refCount(2), 0);

  // Speculative decoding: verify 5 tokens, accept 2, roll back 3.
  ForwardBatch verify = step(cache, {1}, {5});
  EXPECT_EQ(verify.positions, (std::vector<int32_t>{8, 9, 10, 11, 12}));
  EXPECT_EQ(lengthOf(cache, 1), 13);
  EXPECT_EQ(blocksOf(cache, 1).size(), 4u);
  ASSERT_TRUE(cache.popN(1, 3).isOk());
  EXPECT_EQ(lengthOf(cache, 1), 10);
  EXPECT_EQ(blocksOf(cache, 1).size(), 3u);

  Status tooMany = cache.popN(1, 11);
  EXPECT_EQ(tooMany.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(tooMany.message(),
            "cannot pop 11 tokens from sequence 1 of length 10");
  EXPECT_EQ(cache.popN(1, -1).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(cache.popN(4, 1).message(), "unknown sequence 4");
  ASSERT_TRUE(cache.popN(1, 10).isOk());
  EXPECT_TRUE(blocksOf(cache, 1).empty());
  EXPECT_EQ(cache.numFreeBlocks(), 8);
}

//===----------------------------------------------------------------------===//
// Forks and copy-on-write
//===----------------------------------------------------------------------===//

TEST(PagedKVCacheTest, ForkSharesFullBlocksAndCopiesThePartialOne) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {10}); // blocks 0, 1 full; block 2 holds 2 tokens
  ASSERT_TRUE(cache.forkSequence(1, 2).isOk());
  EXPECT_EQ(lengthOf(cache, 2), 10);
  EXPECT_EQ(blocksOf(cache, 2), (Blocks{0, 1, 3}));
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1, 2}));
  const BlockAllocator &pool = cache.allocator();
  EXPECT_EQ(pool.refCount(0), 2);
  EXPECT_EQ(pool.refCount(1), 2);
  EXPECT_EQ(pool.refCount(2), 2); // the parent and the pending copy
  EXPECT_EQ(pool.refCount(3), 1);
  EXPECT_EQ(cache.pendingCopies(), (std::vector<BlockCopy>{{2, 3, 2}}));

  // A fork at a block boundary shares without copying.
  ASSERT_TRUE(cache.forkSequence(1, 3, 8).isOk());
  EXPECT_EQ(blocksOf(cache, 3), (Blocks{0, 1}));
  EXPECT_EQ(pool.refCount(0), 3);
  EXPECT_EQ(cache.pendingCopies().size(), 1u);

  // The next step carries the copy; the child writes after the copied rows.
  ASSERT_TRUE(cache.beginForward({2}, {1}).isOk());
  EXPECT_TRUE(cache.pendingCopies().empty());
  EXPECT_EQ(cache.forwardBatch().copies, (std::vector<BlockCopy>{{2, 3, 2}}));
  EXPECT_EQ(cache.forwardBatch().slotMapping,
            (std::vector<int64_t>{3 * 4 + 2}));
  ASSERT_TRUE(cache.endForward().isOk());
  EXPECT_EQ(pool.refCount(2), 1); // the copy's hold is gone
}

TEST(PagedKVCacheTest, ForkRejectsBadArguments) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.addSequence(2).isOk());
  step(cache, {1}, {10});
  Status past = cache.forkSequence(1, 5, 11);
  EXPECT_EQ(past.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(past.message(),
            "fork position 11 is past the length 10 of parent sequence 1");
  EXPECT_EQ(cache.forkSequence(7, 5).message(), "unknown sequence 7");
  EXPECT_EQ(cache.forkSequence(1, 2).message(),
            "cannot fork into sequence 2: it already exists");
  EXPECT_EQ(cache.forkSequence(1, 1).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(cache.forkSequence(1, 5, -2).code(), StatusCode::InvalidArgument);
  EXPECT_FALSE(cache.hasSequence(5));
  EXPECT_EQ(cache.numFreeBlocks(), 5);
}

TEST(PagedKVCacheTest, ForkWithoutFreeBlockChangesNothing) {
  PagedKVCache cache = makeCache(3);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {10}); // all three blocks
  Status s = cache.forkSequence(1, 2);
  EXPECT_EQ(s.code(), StatusCode::ResourceExhausted);
  EXPECT_EQ(s.message(), "out of KV blocks: need 1, 0 free of 3");
  EXPECT_FALSE(cache.hasSequence(2));
  for (BlockId b : {0, 1, 2})
    EXPECT_EQ(cache.allocator().refCount(b), 1);
  EXPECT_TRUE(cache.pendingCopies().empty());
  // At a block boundary no block is needed.
  EXPECT_TRUE(cache.forkSequence(1, 2, 8).isOk());
}

TEST(PagedKVCacheTest, RefCountsThroughForkAndRemove) {
  PagedKVCache cache = makeCache();
  const BlockAllocator &pool = cache.allocator();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {8});
  ASSERT_TRUE(cache.forkSequence(1, 2).isOk());
  EXPECT_EQ(blocksOf(cache, 2), (Blocks{0, 1}));
  EXPECT_EQ(pool.refCount(0), 2);
  ASSERT_TRUE(cache.removeSequence(1).isOk());
  EXPECT_EQ(pool.refCount(0), 1);
  EXPECT_EQ(pool.refCount(1), 1);
  EXPECT_EQ(cache.numFreeBlocks(), 6);
  ASSERT_TRUE(cache.removeSequence(2).isOk());
  EXPECT_EQ(cache.numFreeBlocks(), 8);

  // A removed child drops its pending copy, and the copy's hold on the
  // parent's block goes with it.
  ASSERT_TRUE(cache.addSequence(3).isOk());
  step(cache, {3}, {6});
  Blocks parent = blocksOf(cache, 3);
  ASSERT_TRUE(cache.forkSequence(3, 4).isOk());
  ASSERT_EQ(cache.pendingCopies().size(), 1u);
  ASSERT_TRUE(cache.removeSequence(3).isOk());
  EXPECT_EQ(pool.refCount(parent[1]), 1); // held for the copy
  EXPECT_EQ(pool.refCount(parent[0]), 1); // held by the child
  ASSERT_TRUE(cache.removeSequence(4).isOk());
  EXPECT_TRUE(cache.pendingCopies().empty());
  EXPECT_EQ(cache.numFreeBlocks(), 8);
}

TEST(PagedKVCacheTest, AppendIntoSharedPartialBlockCopiesOnWrite) {
  PagedKVCache cache = makeCache();
  const BlockAllocator &pool = cache.allocator();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {8});
  ASSERT_TRUE(cache.forkSequence(1, 2).isOk()); // shares blocks 0 and 1
  // Roll the child back into block 1, which the parent still fills.
  ASSERT_TRUE(cache.popN(2, 2).isOk());
  EXPECT_EQ(blocksOf(cache, 2), (Blocks{0, 1}));
  EXPECT_EQ(pool.refCount(1), 2);

  ASSERT_TRUE(cache.beginForward({2}, {1}).isOk());
  const ForwardBatch &batch = cache.forwardBatch();
  EXPECT_EQ(batch.copies, (std::vector<BlockCopy>{{1, 2, 2}}));
  EXPECT_EQ(batch.slotMapping, (std::vector<int64_t>{2 * 4 + 2}));
  EXPECT_EQ(blocksOf(cache, 2), (Blocks{0, 2}));
  EXPECT_EQ(pool.refCount(1), 2); // the parent and the copy
  ASSERT_TRUE(cache.endForward().isOk());
  EXPECT_EQ(pool.refCount(1), 1);
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1}));
  EXPECT_EQ(lengthOf(cache, 1), 8);

  // Appending after a full shared block needs no copy.
  ASSERT_TRUE(cache.forkSequence(1, 3).isOk());
  ForwardBatch next = step(cache, {3}, {1});
  EXPECT_TRUE(next.copies.empty());
  EXPECT_EQ(pool.refCount(0), 3);
  EXPECT_EQ(pool.refCount(1), 2);
}

TEST(PagedKVCacheTest, PendingCopyDoesNotForceCopyOnWrite) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  step(cache, {1}, {6});
  ASSERT_TRUE(cache.forkSequence(1, 2).isOk()); // copy {1 -> 2, 2 rows}
  // The parent alone writes block 1 (the copy only reads rows 0-1, before
  // the step's writes), so its append goes in place.
  ForwardBatch batch = step(cache, {1, 2}, {1, 1});
  EXPECT_EQ(batch.copies, (std::vector<BlockCopy>{{1, 2, 2}}));
  EXPECT_EQ(batch.slotMapping, (std::vector<int64_t>{1 * 4 + 2, 2 * 4 + 2}));
  EXPECT_EQ(blocksOf(cache, 1), (Blocks{0, 1}));
  EXPECT_EQ(cache.numFreeBlocks(), 5);
}

//===----------------------------------------------------------------------===//
// Forward steps
//===----------------------------------------------------------------------===//

TEST(PagedKVCacheTest, SlotMappingForRaggedBatch) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(10).isOk());
  ASSERT_TRUE(cache.addSequence(30).isOk());
  step(cache, {10, 30}, {3, 9}); // 10: [0]; 30: [1, 2, 3]
  ASSERT_TRUE(cache.addSequence(20).isOk());

  ASSERT_TRUE(cache.beginForward({10, 20, 30}, {2, 5, 1}).isOk());
  const ForwardBatch &b = cache.forwardBatch();
  EXPECT_EQ(b.numSequences(), 3);
  EXPECT_EQ(b.numTokens(), 8);
  EXPECT_EQ(b.blockSize, 4);
  EXPECT_EQ(b.seqIds, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(b.queryStartLoc, (std::vector<int32_t>{0, 2, 7, 8}));
  EXPECT_EQ(b.contextLengths, (std::vector<int32_t>{5, 5, 10}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{3, 4, 0, 1, 2, 3, 4, 9}));
  // 10 gets block 4 for position 4; 20 gets blocks 5 and 6; 30 writes
  // position 9 at offset 1 of its third block (3).
  EXPECT_EQ(b.slotMapping,
            (std::vector<int64_t>{3, 16, 20, 21, 22, 23, 24, 13}));
  EXPECT_EQ(b.maxBlocksPerSequence, 3);
  const BlockId P = kPaddingBlockId;
  EXPECT_EQ(b.blockTables, (Blocks{0, 4, P, 5, 6, P, 1, 2, 3}));
  EXPECT_EQ(b.block(2, 1), 2);
  EXPECT_TRUE(b.copies.empty());
  ASSERT_TRUE(cache.endForward().isOk());
  EXPECT_TRUE(cache.forwardBatch().seqIds.empty());
}

TEST(PagedKVCacheTest, BeginForwardIsAllOrNothing) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.addSequence(2).isOk());
  step(cache, {1}, {22}); // 6 blocks, 2 free
  Blocks before = blocksOf(cache, 1);

  // Sequence 1 needs 1 block (22 -> 26 tokens), sequence 2 needs 2.
  Status s = cache.beginForward({1, 2}, {4, 8});
  EXPECT_EQ(s.code(), StatusCode::ResourceExhausted);
  EXPECT_EQ(s.message(), "out of KV blocks: need 3, 2 free of 8");
  EXPECT_FALSE(cache.inForward());
  EXPECT_EQ(lengthOf(cache, 1), 22);
  EXPECT_EQ(lengthOf(cache, 2), 0);
  EXPECT_EQ(blocksOf(cache, 1), before);
  EXPECT_TRUE(blocksOf(cache, 2).empty());
  EXPECT_EQ(cache.numFreeBlocks(), 2);

  // Invalid batches are rejected before anything changes as well.
  EXPECT_EQ(cache.beginForward({1, 9}, {1, 1}).message(), "unknown sequence 9");
  EXPECT_EQ(cache.beginForward({1, 1}, {1, 1}).message(),
            "sequence 1 appears twice in the forward batch");
  EXPECT_EQ(cache.beginForward({1, 2}, {1, 0}).message(),
            "append length 0 of sequence 2 must be positive");
  EXPECT_EQ(cache.beginForward({1, 2}, {1}).code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(cache.beginForward({}, {}).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(lengthOf(cache, 1), 22);
  EXPECT_EQ(cache.numFreeBlocks(), 2);

  // What fits goes through.
  ASSERT_TRUE(cache.beginForward({1, 2}, {2, 4}).isOk());
  EXPECT_EQ(cache.numFreeBlocks(), 1);
}

TEST(PagedKVCacheTest, StepProtocolIsEnforced) {
  PagedKVCache cache = makeCache();
  ASSERT_TRUE(cache.addSequence(1).isOk());
  EXPECT_EQ(cache.endForward().code(), StatusCode::FailedPrecondition);
  ASSERT_TRUE(cache.beginForward({1}, {3}).isOk());
  EXPECT_EQ(cache.beginForward({1}, {1}).code(),
            StatusCode::FailedPrecondition);
  Status remove = cache.removeSequence(1);
  EXPECT_EQ(remove.code(), StatusCode::FailedPrecondition);
  EXPECT_EQ(remove.message(), "cannot remove a sequence while a forward step "
                              "is in progress (call endForward first)");
  EXPECT_EQ(cache.popN(1, 1).code(), StatusCode::FailedPrecondition);
  EXPECT_EQ(cache.forkSequence(1, 2).code(), StatusCode::FailedPrecondition);
  EXPECT_TRUE(cache.addSequence(2).isOk()); // harmless mid-step
  ASSERT_TRUE(cache.endForward().isOk());
  EXPECT_TRUE(cache.popN(1, 1).isOk());
}

//===----------------------------------------------------------------------===//
// Random operations against a simulated device
//===----------------------------------------------------------------------===//

/// Device memory of one token row per slot; a token's "KV" is its value.
struct FakeDevice {
  std::vector<int64_t> slots;
  void apply(const ForwardBatch &batch, const std::vector<int64_t> &tokens) {
    for (const BlockCopy &c : batch.copies)
      for (int32_t t = 0; t < c.numTokens; ++t)
        slots[c.dst * batch.blockSize + t] = slots[c.src * batch.blockSize + t];
    for (size_t j = 0; j < tokens.size(); ++j)
      slots[batch.slotMapping[j]] = tokens[j];
  }
};

TEST(PagedKVCacheTest, RandomOperationsKeepEverySequenceIntact) {
  const int32_t numBlocks = 24, blockSize = 4;
  PagedKVCache cache = makeCache(numBlocks);
  FakeDevice device{std::vector<int64_t>(numBlocks * blockSize, -1)};
  std::map<int64_t, std::vector<int64_t>> truth; // tokens per sequence
  std::mt19937_64 rng(1234);
  int64_t nextSeq = 0, nextToken = 1000;
  // What the run exercised, so that a change of seed cannot quietly turn
  // it into a test of nothing.
  int forks = 0, copies = 0, exhausted = 0, steps = 0;
  auto pick = [&]() {
    auto it = truth.begin();
    std::advance(it, rng() % truth.size());
    return it->first;
  };

  for (int iter = 0; iter < 3000; ++iter) {
    int op = rng() % 6;
    // Keep a handful of sequences and some free blocks, so that steps and
    // forks mostly succeed and still sometimes run out.
    if (truth.size() > 6 || (cache.numFreeBlocks() < 3 && truth.size() > 1))
      op = 1;
    if (truth.empty() || op == 0) {
      ASSERT_TRUE(cache.addSequence(nextSeq).isOk());
      truth[nextSeq++] = {};
    } else if (op == 1) {
      int64_t seq = pick();
      ASSERT_TRUE(cache.removeSequence(seq).isOk());
      truth.erase(seq);
    } else if (op == 2) {
      int64_t parent = pick();
      int32_t pos = rng() % (truth[parent].size() + 1);
      Status s = cache.forkSequence(parent, nextSeq, pos);
      if (s.isOk()) {
        truth[nextSeq++].assign(truth[parent].begin(),
                                truth[parent].begin() + pos);
        ++forks;
      } else {
        ASSERT_EQ(s.code(), StatusCode::ResourceExhausted) << s;
        ++exhausted;
      }
    } else if (op == 3) {
      int64_t seq = pick();
      int32_t n = rng() % (truth[seq].size() + 1);
      ASSERT_TRUE(cache.popN(seq, n).isOk());
      truth[seq].resize(truth[seq].size() - n);
    } else {
      std::vector<int64_t> ids;
      std::vector<int32_t> lengths;
      for (auto &[seq, tokens] : truth)
        if (rng() % 2) {
          ids.push_back(seq);
          lengths.push_back(1 + rng() % 6);
        }
      if (ids.empty())
        continue;
      Status s = cache.beginForward(ids, lengths);
      if (!s.isOk()) {
        ASSERT_EQ(s.code(), StatusCode::ResourceExhausted) << s;
        ++exhausted;
        continue;
      }
      ++steps;
      copies += cache.forwardBatch().copies.size();
      std::vector<int64_t> tokens;
      for (size_t i = 0; i < ids.size(); ++i)
        for (int32_t j = 0; j < lengths[i]; ++j) {
          tokens.push_back(nextToken);
          truth[ids[i]].push_back(nextToken++);
        }
      device.apply(cache.forwardBatch(), tokens);
      ASSERT_TRUE(cache.endForward().isOk());
      // After a step every copy has run: each sequence reads its tokens.
      for (auto &[seq, want] : truth) {
        Blocks blocks = blocksOf(cache, seq);
        ASSERT_EQ(blocks.size(), (want.size() + blockSize - 1) / blockSize);
        for (size_t p = 0; p < want.size(); ++p)
          ASSERT_EQ(
              device.slots[blocks[p / blockSize] * blockSize + p % blockSize],
              want[p])
              << "sequence " << seq << " position " << p << " iter " << iter;
      }
    }

    // Reference counts are exactly the holders: tables plus pending copies.
    std::vector<int32_t> holders(numBlocks, 0);
    for (auto &[seq, tokens] : truth) {
      ASSERT_EQ(lengthOf(cache, seq), int32_t(tokens.size()));
      for (BlockId b : blocksOf(cache, seq))
        ++holders[b];
    }
    for (const BlockCopy &c : cache.pendingCopies())
      ++holders[c.src];
    int32_t free = 0;
    for (BlockId b = 0; b < numBlocks; ++b) {
      ASSERT_EQ(cache.allocator().refCount(b), holders[b]) << "block " << b;
      free += holders[b] == 0;
    }
    ASSERT_EQ(cache.numFreeBlocks(), free);
  }
  EXPECT_GT(forks, 100);
  EXPECT_GT(copies, 50);
  EXPECT_GT(exhausted, 5);
  EXPECT_GT(steps, 300);
  std::printf("random run: %d forks, %d steps, %d copies, %d exhausted\n",
              forks, steps, copies, exhausted);
}

} // namespace
