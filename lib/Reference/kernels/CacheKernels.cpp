//===- CacheKernels.cpp - Paged KV cache: writes, attention, last tokens --===//
//
// The host reference of the paged entry points (`-llm-kv-cache-layout`).
// The cache is [layers, num_blocks, 2, kv_heads, block_size, head_dim]; the
// block tables, context lengths, query start locations and slot mapping are
// those of kiln::runtime::ForwardBatch. Attention arithmetic follows the
// llm.attention kernel (fp32 dot products, softmax and weighted sum in
// double), so that a paged step reproduces the stateless model closely.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;
namespace llm = kiln::llm;

using Inputs = std::vector<const HostTensor *>;
using Outputs = std::vector<HostTensor>;

namespace {

/// The dimensions of a cache tensor, checked against the op's layer.
struct CacheDims {
  int64_t layers, blocks, kvHeads, blockSize, headDim;

  /// Offset of element (layer, block, kv, head, token-in-block, 0).
  int64_t offset(int64_t layer, int64_t block, int64_t kv, int64_t head,
                 int64_t t) const {
    return ((((layer * blocks + block) * 2 + kv) * kvHeads + head) * blockSize +
            t) *
           headDim;
  }
};

FailureOr<CacheDims> cacheDims(Operation *op, const HostTensor &cache,
                               int64_t layer) {
  if (failed(expectFloat(op, cache, "cache")))
    return failure();
  if (cache.rank() != 6 || cache.shape[2] != 2)
    return op->emitOpError() << "cache must be [layers, num_blocks, 2, "
                                "kv_heads, block_size, head_dim], got "
                             << cache.shapeString();
  CacheDims d{cache.shape[0], cache.shape[1], cache.shape[3], cache.shape[4],
              cache.shape[5]};
  if (layer < 0 || layer >= d.layers)
    return op->emitOpError() << "layer " << layer << " is outside the cache's "
                             << d.layers << " layers";
  if (d.blockSize <= 0)
    return op->emitOpError() << "cache block size must be positive";
  return d;
}

/// Checks query_start_loc against N sequences and T tokens: N + 1
/// non-decreasing entries from 0 to T.
LogicalResult checkQueryStartLoc(Operation *op, const std::vector<int64_t> &qsl,
                                 int64_t numSeqs, int64_t numTokens) {
  if ((int64_t)qsl.size() != numSeqs + 1)
    return op->emitOpError() << "query_start_loc has " << qsl.size()
                             << " entries for " << numSeqs << " sequences";
  if (qsl.front() != 0 || qsl.back() != numTokens)
    return op->emitOpError()
           << "query_start_loc must run from 0 to the " << numTokens
           << " tokens, got " << qsl.front() << ".." << qsl.back();
  for (int64_t s = 0; s < numSeqs; ++s)
    if (qsl[s + 1] < qsl[s])
      return op->emitOpError() << "query_start_loc decreases at sequence " << s;
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// llm.kv_cache_write
//===----------------------------------------------------------------------===//

static LogicalResult kvCacheWriteKernel(Operation *op, const Inputs &inputs,
                                        Outputs &outputs) {
  auto write = cast<llm::KVCacheWriteOp>(op);
  const HostTensor &cache = *inputs[0], &k = *inputs[1], &v = *inputs[2],
                   &slots = *inputs[3];
  int64_t layer = write.getLayer();
  auto dims = cacheDims(op, cache, layer);
  if (failed(dims) || failed(expectFloat(op, k, "key")) ||
      failed(expectFloat(op, v, "value")))
    return failure();
  if (slots.isFloat() || slots.rank() != 1)
    return op->emitOpError()
           << "slot_mapping must be a vector of integers, got "
           << slots.shapeString();
  int64_t T = slots.shape[0];
  for (const HostTensor *t : {&k, &v})
    if (t->rank() != 3 || t->shape[0] != T || t->shape[1] != dims->kvHeads ||
        t->shape[2] != dims->headDim)
      return op->emitOpError()
             << "cannot write key " << k.shapeString() << " and value "
             << v.shapeString() << " of " << T << " tokens into cache "
             << cache.shapeString();
  HostTensor out = cache;
  out.dtype = outputs[0].dtype;
  int64_t numSlots = dims->blocks * dims->blockSize, D = dims->headDim;
  for (int64_t t = 0; t < T; ++t) {
    int64_t slot = slots.i[t];
    if (slot < 0)
      continue; // a padding token
    if (slot >= numSlots)
      return op->emitOpError()
             << "slot " << slot << " of token " << t
             << " is outside the cache's " << numSlots << " slots";
    int64_t block = slot / dims->blockSize, offset = slot % dims->blockSize;
    for (int64_t h = 0; h < dims->kvHeads; ++h)
      for (int64_t kv = 0; kv < 2; ++kv) {
        const float *src = (kv ? v : k).f.data() + (t * dims->kvHeads + h) * D;
        int64_t dst = dims->offset(layer, block, kv, h, offset);
        for (int64_t d = 0; d < D; ++d)
          out.set(dst + d, src[d]);
      }
  }
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// llm.paged_attention
//===----------------------------------------------------------------------===//

static LogicalResult pagedAttentionKernel(Operation *op, const Inputs &inputs,
                                          Outputs &outputs) {
  auto attn = cast<llm::PagedAttentionOp>(op);
  const HostTensor &q = *inputs[0], &cache = *inputs[1], &tables = *inputs[2],
                   &contextLens = *inputs[3], &starts = *inputs[4];
  int64_t layer = attn.getLayer();
  auto dims = cacheDims(op, cache, layer);
  if (failed(dims) || failed(expectFloat(op, q, "query")))
    return failure();
  int64_t heads = attn.getNumHeads(), kvHeads = attn.getKvHeads();
  int64_t D = dims->headDim, B = dims->blockSize;
  if (q.rank() != 3 || q.shape[1] != heads || q.shape[2] != D ||
      kvHeads != dims->kvHeads || kvHeads <= 0 || heads % kvHeads != 0)
    return op->emitOpError() << "cannot attend with query " << q.shapeString()
                             << " over cache " << cache.shapeString() << " ("
                             << heads << " heads, " << kvHeads << " KV heads)";
  if (tables.isFloat() || tables.rank() != 2 || contextLens.isFloat() ||
      contextLens.rank() != 1 || starts.isFloat() || starts.rank() != 1)
    return op->emitOpError() << "block_tables, context_lens and "
                                "query_start_loc must be integer tensors of "
                                "rank 2, 1 and 1";
  int64_t T = q.shape[0], N = contextLens.shape[0];
  int64_t maxBlocks = tables.shape[1];
  if (tables.shape[0] != N)
    return op->emitOpError() << "block_tables has " << tables.shape[0]
                             << " rows for " << N << " sequences";
  std::vector<int64_t> qsl = toInt64s(starts);
  if (failed(checkQueryStartLoc(op, qsl, N, T)))
    return failure();

  float scale = attn.getScale().convertToFloat();
  std::optional<uint64_t> window = attn.getSlidingWindow();
  std::optional<APFloat> softcap = attn.getSoftcap();
  double cap = softcap ? softcap->convertToDouble() : 0.0;
  int64_t group = heads / kvHeads;
  std::vector<float> y(T * heads * D, 0.0f);
  std::vector<double> scores, acc(D);
  std::vector<int64_t> rowOffset; // cache offset of K of position j, head 0
  for (int64_t s = 0; s < N; ++s) {
    int64_t ctx = contextLens.i[s], numNew = qsl[s + 1] - qsl[s];
    if (numNew == 0)
      continue;
    if (ctx < numNew)
      return op->emitOpError() << "sequence " << s << " appends " << numNew
                               << " tokens but its context length is " << ctx;
    if ((ctx + B - 1) / B > maxBlocks)
      return op->emitOpError() << "sequence " << s << " of " << ctx
                               << " tokens needs more than the " << maxBlocks
                               << " blocks of its block table";
    rowOffset.resize(ctx);
    for (int64_t j = 0; j < ctx; ++j) {
      int64_t block = tables.i[s * maxBlocks + j / B];
      if (block < 0 || block >= dims->blocks)
        return op->emitOpError()
               << "block " << block << " of sequence " << s
               << " is outside the cache's " << dims->blocks << " blocks";
      rowOffset[j] = dims->offset(layer, block, 0, 0, j % B);
    }
    // K of (position j, head h) is at rowOffset[j] + h * B * D; V follows
    // the K half of the block at + kvHeads * B * D.
    int64_t headStride = B * D, valueOffset = kvHeads * B * D;
    scores.resize(ctx);
    for (int64_t t = qsl[s]; t < qsl[s + 1]; ++t) {
      int64_t pos = ctx - qsl[s + 1] + t; // the token's position
      int64_t first =
          window ? std::max<int64_t>(0, pos - (int64_t)*window + 1) : 0;
      for (int64_t h = 0; h < heads; ++h) {
        int64_t kvh = h / group;
        const float *qi = q.f.data() + (t * heads + h) * D;
        double mx = -INFINITY;
        for (int64_t j = first; j <= pos; ++j) {
          const float *kj = cache.f.data() + rowOffset[j] + kvh * headStride;
          float dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += qi[d] * kj[d];
          double sc = (double)(dot * scale);
          if (softcap)
            sc = cap * std::tanh(sc / cap);
          scores[j] = sc;
          mx = std::max(mx, sc);
        }
        double sum = 0;
        for (int64_t j = first; j <= pos; ++j) {
          scores[j] = std::exp(scores[j] - mx);
          sum += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = first; j <= pos; ++j) {
          if (scores[j] == 0)
            continue;
          double p = scores[j] / sum;
          const float *vj =
              cache.f.data() + rowOffset[j] + valueOffset + kvh * headStride;
          for (int64_t d = 0; d < D; ++d)
            acc[d] += p * vj[d];
        }
        float *yi = y.data() + (t * heads + h) * D;
        for (int64_t d = 0; d < D; ++d)
          yi[d] = (float)acc[d];
      }
    }
  }
  HostTensor out(outputs[0].dtype, {T, heads, D});
  if (out.dtype == DType::F32)
    out.f = std::move(y);
  else
    for (int64_t k = 0; k < (int64_t)y.size(); ++k)
      out.set(k, y[k]);
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// llm.gather_last_tokens
//===----------------------------------------------------------------------===//

static LogicalResult gatherLastTokensKernel(Operation *op, const Inputs &inputs,
                                            Outputs &outputs) {
  const HostTensor &x = *inputs[0], &starts = *inputs[1];
  if (x.rank() < 1 || starts.isFloat() || starts.rank() != 1 ||
      starts.shape[0] < 1)
    return op->emitOpError()
           << "cannot gather the last tokens of " << x.shapeString()
           << " with query_start_loc " << starts.shapeString();
  int64_t T = x.shape[0], N = starts.shape[0] - 1;
  std::vector<int64_t> qsl = toInt64s(starts);
  if (failed(checkQueryStartLoc(op, qsl, N, T)))
    return failure();
  int64_t row = T ? x.numElements() / T : 0;
  std::vector<int64_t> shape = x.shape;
  shape[0] = N;
  HostTensor out(x.dtype, shape);
  for (int64_t s = 0; s < N; ++s) {
    if (qsl[s + 1] == qsl[s])
      return op->emitOpError() << "sequence " << s << " has no token";
    int64_t src = (qsl[s + 1] - 1) * row;
    if (x.isFloat())
      std::copy_n(x.f.begin() + src, row, out.f.begin() + s * row);
    else
      std::copy_n(x.i.begin() + src, row, out.i.begin() + s * row);
  }
  outputs[0] = std::move(out);
  return success();
}

void kiln::reference::registerCacheKernels(KernelRegistry &registry) {
  registry.add("llm.kv_cache_write", kvCacheWriteKernel);
  registry.add("llm.paged_attention", pagedAttentionKernel);
  registry.add("llm.gather_last_tokens", gatherLastTokensKernel);
}
