//===- PagedCacheLayout.cpp - Paged KV cache layout for the kernels -------===//

#include "kiln/Codegen/PagedCacheLayout.h"

#include "KernelBuilder.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringSwitch.h"

#include <limits>
#include <numeric>

using namespace mlir;
using namespace kiln::codegen;

llvm::StringRef kiln::codegen::stringifyKVCacheKind(KVCacheKind kind) {
  return kind == KVCacheKind::Separate ? "separate" : "combined";
}

std::optional<KVCacheKind>
kiln::codegen::parseKVCacheKind(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<KVCacheKind>>(name)
      .Case("combined", KVCacheKind::Combined)
      .Case("separate", KVCacheKind::Separate)
      .Default(std::nullopt);
}

/// a * b + c, or nullopt on int64 overflow.
static std::optional<int64_t> mulAdd(int64_t a, int64_t b, int64_t c) {
  int64_t product, sum;
  if (__builtin_mul_overflow(a, b, &product) ||
      __builtin_add_overflow(product, c, &sum))
    return std::nullopt;
  return sum;
}

FailureOr<ResolvedCacheLayout> kiln::codegen::resolvePagedCacheLayout(
    Location loc, const PagedCacheLayout &layout, KernelDType dtype,
    int64_t kvHeads, int64_t blockSize, int64_t headDim,
    int64_t defaultNumBlocks) {
  ResolvedCacheLayout r;
  static_cast<PagedCacheLayout &>(r) = layout;
  bool combined = layout.kind == KVCacheKind::Combined;
  int64_t rowsPerHead = blockSize * headDim;
  if (!r.numBlocks)
    r.numBlocks = std::max<int64_t>(defaultNumBlocks, 1);
  if (!r.tokenStride)
    r.tokenStride = headDim;
  if (!r.headStride)
    r.headStride = rowsPerHead;
  if (!r.blockStride)
    r.blockStride = (combined ? 2 : 1) * kvHeads * rowsPerHead;
  if (combined && r.vOffset < 0)
    r.vOffset = kvHeads * rowsPerHead;

  if (r.numBlocks < 1 || r.blockStride < 1 || r.headStride < 1 ||
      r.tokenStride < 1 || r.numLayers < 1 || r.layerStride < 0)
    return emitError(loc) << "cache sizes and strides must be positive, got "
                             "num_blocks="
                          << r.numBlocks << " block_stride=" << r.blockStride
                          << " head_stride=" << r.headStride
                          << " token_stride=" << r.tokenStride
                          << " num_layers=" << r.numLayers;
  if (r.tokenStride < headDim)
    return emitError(loc) << "token stride " << r.tokenStride
                          << " is shorter than a row of head_dim=" << headDim;
  if (!combined && layout.vOffset >= 0)
    return emitError(loc) << "a separate K/V cache takes no V offset";
  if (combined && r.vOffset < 1)
    return emitError(loc) << "a combined cache needs a positive V offset, got "
                          << r.vOffset;

  // Largest element index of one block (V included), then of the buffer.
  std::optional<int64_t> inBlock = mulAdd(kvHeads - 1, r.headStride, 0);
  if (inBlock)
    inBlock = mulAdd(blockSize - 1, r.tokenStride,
                     *inBlock + headDim - 1 + (combined ? r.vOffset : 0));
  std::optional<int64_t> perLayer =
      inBlock ? mulAdd(r.numBlocks - 1, r.blockStride, *inBlock + 1)
              : std::nullopt;
  if (perLayer && !r.layerStride)
    r.layerStride = roundUp(*perLayer, 8);
  std::optional<int64_t> total =
      perLayer ? mulAdd(r.numLayers - 1, r.layerStride, *perLayer)
               : std::nullopt;
  if (!total || *total > std::numeric_limits<int64_t>::max() / 8)
    return emitError(loc) << "the cache of " << r.numBlocks
                          << " blocks overflows 64-bit indexing";
  r.bufferElements = *total;

  int64_t common = std::gcd(headDim, r.tokenStride);
  common = std::gcd(common, r.headStride);
  common = std::gcd(common, r.blockStride);
  if (combined)
    common = std::gcd(common, r.vOffset);
  if (r.numLayers > 1)
    common = std::gcd(common, r.layerStride);
  r.vectorWidth = pickVectorWidth(common, dtype);
  return r;
}

void kiln::codegen::addCacheParams(KernelSpec &spec,
                                   const ResolvedCacheLayout &layout,
                                   bool withLayers) {
  spec.addParam("cache", stringifyKVCacheKind(layout.kind));
  spec.addParam("num_blocks", layout.numBlocks);
  spec.addParam("block_stride", layout.blockStride);
  spec.addParam("head_stride", layout.headStride);
  spec.addParam("token_stride", layout.tokenStride);
  if (!layout.separate())
    spec.addParam("v_offset", layout.vOffset);
  if (withLayers) {
    spec.addParam("num_layers", layout.numLayers);
    spec.addParam("layer_stride", layout.layerStride);
  }
}

void kiln::codegen::addCacheArgs(KernelSpec &spec,
                                 const ResolvedCacheLayout &layout,
                                 KernelDType dtype, bool isOutput) {
  if (layout.separate()) {
    spec.args.push_back({"k_cache", dtype, {layout.bufferElements}, isOutput});
    spec.args.push_back({"v_cache", dtype, {layout.bufferElements}, isOutput});
  } else {
    spec.args.push_back({"cache", dtype, {layout.bufferElements}, isOutput});
  }
}
