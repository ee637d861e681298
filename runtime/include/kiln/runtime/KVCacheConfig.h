//===- KVCacheConfig.h - Shape of the paged KV cache and its memory layout ===//
//
// Memory layout (what the device allocates and the attention kernels index),
// the layout of the compiler's `kv_cache` argument (-llm-kv-cache-layout):
//
//   [num_layers, num_blocks, 2 (K, V), kv_heads, block_size, head_dim]
//
// Element (layer l, block b, K/V c, head h, token t, dim d) lives at
// ((((l * num_blocks + b) * 2 + c) * kv_heads + h) * block_size + t)
// * head_dim + d. With grouped-query attention the cache holds the kv_heads
// KV heads once; the query heads of a group read the same KV head, so nothing
// is stored per query head. Head-major inside a block keeps a head's
// block_size x head_dim tile contiguous, which is the tile a decode kernel
// loads per (sequence, kv head, block); K and V of a block sit side by side
// so that a copy-on-write moves one contiguous 2 x kv_heads tile set.
//
// A token's "slot" is block * block_size + t (vLLM's slot_mapping), the
// index of its row in the cache viewed as [num_blocks * block_size] tokens.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KVCACHECONFIG_H
#define KILN_RUNTIME_KVCACHECONFIG_H

#include "kiln/runtime/Status.h"

#include <cstdint>

namespace kiln::runtime {

struct KVCacheConfig {
  int32_t numLayers = 0;
  int32_t numKVHeads = 0;
  int32_t headDim = 0;
  /// Tokens per block; 16 as in vLLM: small enough to waste little on the
  /// last block of a sequence, large enough for a kernel tile.
  int32_t blockSize = 16;
  int32_t numBlocks = 0;
  /// Bytes per cached element: 2 for f16/bf16, 1 for fp8, 4 for f32.
  int32_t elementBytes = 2;

  /// Checks every field is positive and the pool size fits in int64 bytes.
  Status validate() const;

  /// K and V of one token over every layer:
  /// 2 * num_layers * kv_heads * head_dim * element_bytes.
  int64_t kvBytesPerToken() const;

  /// One layer's K (or V) of one block: kv_heads * block_size * head_dim *
  /// element_bytes; the unit a copy-on-write moves per layer and per K/V.
  int64_t blockBytesPerLayer() const;

  /// The whole cache: num_blocks * block_size * kvBytesPerToken().
  int64_t totalBytes() const;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_KVCACHECONFIG_H
