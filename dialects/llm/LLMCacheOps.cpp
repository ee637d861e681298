//===- LLMCacheOps.cpp - Verifiers of the paged KV-cache ops --------------===//
//
// llm.kv_cache_write, llm.paged_attention and llm.gather_last_tokens: the
// static parts of the cache layout [layers, num_blocks, 2, kv_heads,
// block_size, head_dim] and of the packed [T, heads, head_dim] activations
// must agree; dynamic dimensions are checked by the kernels at run time.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace kiln::llm;

namespace {

/// Dimension `i` of `type`, dynamic when unranked or unknown.
int64_t dimOf(Type type, int64_t i) {
  auto ranked = dyn_cast<RankedTensorType>(type);
  if (!ranked || i >= ranked.getRank())
    return ShapedType::kDynamic;
  return ranked.getDimSize(i);
}

LogicalResult expectRank(Operation *op, StringRef what, Type type,
                         int64_t rank) {
  auto ranked = dyn_cast<RankedTensorType>(type);
  if (ranked && ranked.getRank() != rank)
    return op->emitOpError()
           << what << " must have rank " << rank << ", got " << type;
  return success();
}

LogicalResult expectSameDim(Operation *op, StringRef what, int64_t a,
                            int64_t b) {
  if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
    return op->emitOpError() << what << " mismatch: " << a << " vs " << b;
  return success();
}

LogicalResult expectIntegers(Operation *op, StringRef what, Value v) {
  if (!isa<IntegerType>(getElementTypeOrSelf(v.getType())))
    return op->emitOpError()
           << what << " must be integers, got " << v.getType();
  return success();
}

/// Checks the cache operand: rank 6, K/V dimension 2, positive static sizes,
/// float elements, and `layer` within its layers.
LogicalResult verifyCache(Operation *op, Value cache, int64_t layer) {
  auto type = cast<RankedTensorType>(cache.getType());
  if (type.getRank() != 6)
    return op->emitOpError()
           << "cache must be [layers, num_blocks, 2, kv_heads, block_size, "
              "head_dim], got "
           << type;
  if (!isa<FloatType>(type.getElementType()))
    return op->emitOpError()
           << "cache elements must be floats, got " << type.getElementType();
  if (failed(expectSameDim(op, "cache K/V dimension", type.getDimSize(2), 2)))
    return failure();
  for (int64_t d : {0, 3, 4, 5})
    if (type.getDimSize(d) == 0)
      return op->emitOpError()
             << "cache dimension " << d << " must not be empty";
  int64_t layers = type.getDimSize(0);
  if (layer < 0 || (!ShapedType::isDynamic(layers) && layer >= layers))
    return op->emitOpError() << "layer " << layer << " is outside the cache's "
                             << layers << " layers";
  return success();
}

} // namespace

LogicalResult KVCacheWriteOp::verify() {
  if (failed(verifyCache(*this, getCache(), getLayer())))
    return failure();
  Type cache = getCache().getType();
  for (auto [what, v] :
       {std::pair<StringRef, Value>{"key", getKey()}, {"value", getValue()}}) {
    if (failed(expectRank(*this, what, v.getType(), 3)) ||
        failed(expectSameDim(*this, (what + " heads").str(),
                             dimOf(v.getType(), 1), dimOf(cache, 3))) ||
        failed(expectSameDim(*this, (what + " head size").str(),
                             dimOf(v.getType(), 2), dimOf(cache, 5))) ||
        failed(expectSameDim(*this, (what + " tokens").str(),
                             dimOf(v.getType(), 0),
                             dimOf(getSlotMapping().getType(), 0))))
      return failure();
    if (getElementTypeOrSelf(v.getType()) != getElementTypeOrSelf(cache))
      return emitOpError() << what << " element type "
                           << getElementTypeOrSelf(v.getType())
                           << " differs from the cache's "
                           << getElementTypeOrSelf(cache);
  }
  if (failed(expectRank(*this, "slot_mapping", getSlotMapping().getType(), 1)))
    return failure();
  return expectIntegers(*this, "slot_mapping", getSlotMapping());
}

LogicalResult PagedAttentionOp::verify() {
  if (failed(verifyCache(*this, getCache(), getLayer())))
    return failure();
  Type cache = getCache().getType(), query = getQuery().getType();
  int64_t heads = getNumHeads(), kvHeads = getKvHeads();
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
    return emitOpError() << "num_heads (" << heads
                         << ") must be a positive multiple of kv_heads ("
                         << kvHeads << ")";
  if (failed(expectRank(*this, "query", query, 3)) ||
      failed(expectRank(*this, "result", getType(), 3)) ||
      failed(expectSameDim(*this, "query heads", dimOf(query, 1), heads)) ||
      failed(
          expectSameDim(*this, "cache kv_heads", dimOf(cache, 3), kvHeads)) ||
      failed(expectSameDim(*this, "query/cache head size", dimOf(query, 2),
                           dimOf(cache, 5))) ||
      failed(
          expectSameDim(*this, "result heads", dimOf(getType(), 1), heads)) ||
      failed(expectSameDim(*this, "result head size", dimOf(getType(), 2),
                           dimOf(cache, 5))) ||
      failed(expectSameDim(*this, "result tokens", dimOf(getType(), 0),
                           dimOf(query, 0))))
    return failure();
  if (failed(
          expectRank(*this, "block_tables", getBlockTables().getType(), 2)) ||
      failed(
          expectRank(*this, "context_lens", getContextLens().getType(), 1)) ||
      failed(expectRank(*this, "query_start_loc", getQueryStartLoc().getType(),
                        1)) ||
      failed(expectIntegers(*this, "block_tables", getBlockTables())) ||
      failed(expectIntegers(*this, "context_lens", getContextLens())) ||
      failed(expectIntegers(*this, "query_start_loc", getQueryStartLoc())))
    return failure();
  int64_t seqs = dimOf(getContextLens().getType(), 0);
  int64_t starts = dimOf(getQueryStartLoc().getType(), 0);
  if (failed(expectSameDim(*this, "block_tables rows",
                           dimOf(getBlockTables().getType(), 0), seqs)) ||
      failed(expectSameDim(*this, "query_start_loc entries", starts,
                           ShapedType::isDynamic(seqs) ? seqs : seqs + 1)))
    return failure();
  if (auto window = getSlidingWindow(); window && *window <= 0)
    return emitOpError() << "sliding_window must be positive";
  if (auto cap = getSoftcap(); cap && cap->convertToFloat() <= 0)
    return emitOpError() << "softcap must be positive";
  return success();
}

LogicalResult GatherLastTokensOp::verify() {
  Type input = getInput().getType(), result = getType();
  auto in = dyn_cast<RankedTensorType>(input);
  auto out = dyn_cast<RankedTensorType>(result);
  if (in && in.getRank() < 1)
    return emitOpError() << "input must have rank >= 1";
  if (failed(expectRank(*this, "query_start_loc", getQueryStartLoc().getType(),
                        1)) ||
      failed(expectIntegers(*this, "query_start_loc", getQueryStartLoc())))
    return failure();
  if (in && out) {
    if (in.getRank() != out.getRank())
      return emitOpError() << "result rank " << out.getRank()
                           << " differs from input rank " << in.getRank();
    for (int64_t d = 1; d < in.getRank(); ++d)
      if (failed(expectSameDim(*this, "row size", in.getDimSize(d),
                               out.getDimSize(d))))
        return failure();
  }
  int64_t starts = dimOf(getQueryStartLoc().getType(), 0);
  if (!ShapedType::isDynamic(starts))
    return expectSameDim(*this, "result rows", dimOf(result, 0), starts - 1);
  return success();
}
