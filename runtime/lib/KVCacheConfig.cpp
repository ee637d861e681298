//===- KVCacheConfig.cpp - Paged KV cache shape validation ----------------===//

#include "kiln/runtime/KVCacheConfig.h"

#include <limits>

namespace kiln::runtime {

Status KVCacheConfig::validate() const {
  struct Field {
    const char *name;
    int32_t value;
  };
  for (Field f :
       {Field{"num_layers", numLayers}, Field{"kv_heads", numKVHeads},
        Field{"head_dim", headDim}, Field{"block_size", blockSize},
        Field{"num_blocks", numBlocks}, Field{"element_bytes", elementBytes}}) {
    if (f.value <= 0)
      return makeError(StatusCode::InvalidArgument, "KV cache ", f.name,
                       " must be positive, got ", f.value);
  }
  // Every factor is below 2^31, so checking the running product against the
  // int64 limit before each multiplication rules out overflow.
  const int64_t limit = std::numeric_limits<int64_t>::max();
  int64_t bytes = 2;
  for (int64_t factor :
       {int64_t(numLayers), int64_t(numKVHeads), int64_t(headDim),
        int64_t(elementBytes), int64_t(blockSize), int64_t(numBlocks)}) {
    if (bytes > limit / factor)
      return makeError(StatusCode::InvalidArgument,
                       "KV cache size overflows 64-bit byte counts");
    bytes *= factor;
  }
  return Status::ok();
}

int64_t KVCacheConfig::kvBytesPerToken() const {
  return 2 * int64_t(numLayers) * numKVHeads * headDim * elementBytes;
}

int64_t KVCacheConfig::blockBytesPerLayer() const {
  return int64_t(numKVHeads) * blockSize * headDim * elementBytes;
}

int64_t KVCacheConfig::totalBytes() const {
  return int64_t(numBlocks) * blockSize * kvBytesPerToken();
}

} // namespace kiln::runtime
