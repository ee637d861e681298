//===- PagedCacheLayout.h - Paged KV cache layout for the kernels -*- C++
//-*-===//
//
// How the paged-KV kernels (kv_write, kv_copy, paged_decode, paged_prefill)
// address the cache: by element strides, so that one generator serves
// Kiln's cache (`[num_blocks, 2, kv_heads, block_size, head_dim]` per
// layer, the `llm` dialect's layout) and separate K and V arrays
// (`[num_blocks, kv_heads, block_size, head_dim]` each, the runtime's
// KVCacheConfig.h layout), or any other strided layout. Element (block b,
// kv head h, token offset t, dim d) of K is at
//
//   b * blockStride + h * headStride + t * tokenStride + d
//
// of the K buffer; V is at the same index plus vOffset in the same buffer
// (Combined) or at the same index of a second buffer (Separate). Token
// `slot` (vLLM's slot_mapping) is block slot / block_size, offset
// slot % block_size. kv_copy also moves every layer: layer l's cache starts
// l * layerStride elements into the buffer.
//
// Each cache buffer is a kernel argument of one flat memref (the strides
// are arbitrary); its size in the memref type is that of `numBlocks` blocks
// (and `numLayers` layers), which only kv_copy's code depends on (through
// the default layer stride): the others index by block id and never by
// the size.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_PAGEDCACHELAYOUT_H
#define KILN_CODEGEN_PAGEDCACHELAYOUT_H

#include "kiln/Codegen/KernelSpec.h"

#include "mlir/IR/Location.h"
#include "mlir/Support/LLVM.h"

#include <optional>

namespace kiln {
namespace codegen {

enum class KVCacheKind {
  /// K and V of a block in one buffer, V at +vOffset (Kiln's cache).
  Combined,
  /// K and V in two buffers with the same strides.
  Separate,
};

/// "combined" or "separate".
llvm::StringRef stringifyKVCacheKind(KVCacheKind kind);
std::optional<KVCacheKind> parseKVCacheKind(llvm::StringRef name);

struct PagedCacheLayout {
  KVCacheKind kind = KVCacheKind::Combined;
  /// Blocks per layer; 0: the family's default (enough for its test shapes).
  int64_t numBlocks = 0;
  /// Element strides; 0: the kind's default. Combined: block 2*Hkv*B*D,
  /// head B*D, token D, vOffset Hkv*B*D. Separate: block Hkv*B*D, head
  /// B*D, token D.
  int64_t blockStride = 0;
  int64_t headStride = 0;
  int64_t tokenStride = 0;
  /// Combined only; -1: the default.
  int64_t vOffset = -1;
  /// kv_copy only: layers in the buffer and the elements between them
  /// (0: one layer's extent, numBlocks * blockStride for the defaults).
  int64_t numLayers = 1;
  int64_t layerStride = 0;
};

/// A layout with every field resolved, plus what the generators derive.
struct ResolvedCacheLayout : PagedCacheLayout {
  /// Elements of one cache buffer (the flat memref's size).
  int64_t bufferElements = 0;
  /// Elements per 128-bit access that every row start is aligned to (the
  /// largest power of two up to 8 dividing head_dim and every stride).
  int64_t vectorWidth = 1;

  bool separate() const { return kind == KVCacheKind::Separate; }
};

/// Fills in the defaults of `layout` for a cache of `kvHeads` heads,
/// `blockSize` tokens per block and `headDim`, checks it (positive strides,
/// rows of head_dim elements that fit their stride, a vOffset only for
/// Combined), and computes the buffer size. Emits an error at `loc` and
/// fails otherwise.
mlir::FailureOr<ResolvedCacheLayout>
resolvePagedCacheLayout(mlir::Location loc, const PagedCacheLayout &layout,
                        KernelDType dtype, int64_t kvHeads, int64_t blockSize,
                        int64_t headDim, int64_t defaultNumBlocks);

/// Appends the layout's contract fields: cache, num_blocks, block_stride,
/// head_stride, token_stride, v_offset (Combined), and with `withLayers`
/// num_layers and layer_stride.
void addCacheParams(KernelSpec &spec, const ResolvedCacheLayout &layout,
                    bool withLayers = false);

/// The cache arguments: `cache` (Combined) or `k_cache`, `v_cache`.
void addCacheArgs(KernelSpec &spec, const ResolvedCacheLayout &layout,
                  KernelDType dtype, bool isOutput);

/// Options shared by the paged-attention generators (decode and prefill).
struct PagedAttentionOptions {
  KernelDType dtype = KernelDType::F16;
  /// Query heads (Hq) and KV heads (Hkv); Hq is a multiple of Hkv, and
  /// query head h reads KV head h / (Hq / Hkv).
  int64_t numHeads = 32;
  int64_t kvHeads = 8;
  int64_t headDim = 64;
  /// Tokens per cache block and the width of a block-table row.
  int64_t blockSize = 16;
  int64_t maxBlocks = 256;
  /// Score scale; unset: 1 / sqrt(head_dim).
  std::optional<double> scale;
  /// Attend only to the last `slidingWindow` positions (0: all).
  int64_t slidingWindow = 0;
  /// Scores become softcap * tanh(score / softcap) (0: none).
  double softcap = 0;
  PagedCacheLayout cache;
  /// Tuning (0: chosen from the shape). Warps per CTA; lanes that share one
  /// key row (a power of two dividing the row's 128-bit vectors, up to 32);
  /// keys per lane per loop iteration.
  int64_t warps = 0;
  int64_t lanesPerKey = 0;
  int64_t keysPerLane = 0;
  /// Load the next tile of keys while computing this one (double-buffered
  /// in registers).
  bool prefetch = true;
};

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_PAGEDCACHELAYOUT_H
