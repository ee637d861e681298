//===- PagedAttentionCore.h - What paged decode and prefill share -*- C++
//-*-===//
//
// Private to lib/Codegen. Both paged-attention kernels run the same CTA:
// one query row (a decode sequence's token, or one prefill token) and one
// KV head's group of query heads, over a range of cached positions
// [begin, end). They differ in how a CTA finds its row, sequence and range,
// and in what they do with the result (decode may split the context over
// several CTAs).
//
// The CTA (W warps): lane = kk * L + c. The L lanes with the same kk share
// one key row, lane c holding 128-bit vectors c, c + L, ... of it, so the
// 32 / L keys of a warp step are consecutive rows (one coalesced read).
// Each loop iteration a warp takes a tile of U steps (U * 32 / L keys;
// warps take tiles round-robin), issues all its K and V loads, forms the
// scores of its keys for each query head (a dot product per lane, then an
// L-lane shuffle butterfly), and updates its own online-softmax state (max
// m, sum l, unnormalized output acc, in fp32 and base 2). Lanes never
// communicate inside the loop beyond the dot products; at the end the
// states are merged across the warp (shuffles) and across warps (workgroup
// memory).
//
// Keys past `end` in the last tile load the row of end - 1 instead (so no
// load leaves the sequence's written positions, whatever the tail of its
// last block holds) and are masked to -inf.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_PAGEDATTENTIONCORE_H
#define KILN_LIB_CODEGEN_PAGEDATTENTIONCORE_H

#include "KernelBuilder.h"

#include "kiln/Codegen/PagedCacheLayout.h"

#include <functional>

namespace kiln {
namespace codegen {

/// The options with every choice made.
struct AttentionConfig {
  PagedAttentionOptions options;
  ResolvedCacheLayout cache;
  /// Query heads per KV head, and per CTA (a divisor of group).
  int64_t group = 1;
  int64_t headsPerCta = 1;
  int64_t headChunks = 1; // group / headsPerCta
  double scale = 1.0;
  /// Elements per vector, vectors per row, lanes per key, vectors per lane
  /// per key, keys per warp step, keys per lane per tile, keys per warp tile.
  int64_t vec = 8;
  int64_t vectorsPerRow = 8;
  int64_t lanesPerKey = 8;
  int64_t vectorsPerLane = 1;
  int64_t keysPerStep = 4;
  int64_t keysPerLane = 4;
  int64_t warpTile = 16;
  int64_t warps = 4;
  int64_t threads = 128;
  /// Whether the next tile's loads are issued before this tile's math.
  bool prefetch = true;
  /// Whether one block-table entry serves a whole warp tile.
  bool tileInOneBlock = true;
  /// fp32 words of workgroup memory for the per-warp states.
  int64_t stateFloats = 0;

  int64_t cacheVOffset() const { return cache.separate() ? 0 : cache.vOffset; }
};

/// Checks `options` and makes the tuning choices left open. `family` names
/// the kernel in errors; `defaultNumBlocks` sizes the cache's memref type.
mlir::FailureOr<AttentionConfig>
resolveAttentionConfig(mlir::Location loc, const PagedAttentionOptions &options,
                       int64_t defaultNumBlocks);

/// The shape, attention and tuning fields of the launch contract.
void addAttentionParams(KernelSpec &spec, const AttentionConfig &config);

/// Kernel-name suffix of the attention options that change the code beyond
/// the shape: `_sw<window>`, `_cap<softcap>`, `_sep`.
std::string attentionNameSuffix(const AttentionConfig &config);

/// Emits one CTA's attention into the kernel being built.
class AttentionEmitter {
public:
  /// `q` is [rows, Hq, D]; `blockTables` [seqs, maxBlocks] i32; `state` the
  /// workgroup memref of config.stateFloats f32.
  AttentionEmitter(KernelBuilder &b, const AttentionConfig &config,
                   mlir::Value q, mlir::Value kCache, mlir::Value vCache,
                   mlir::Value blockTables, mlir::Value state);

  struct Work {
    mlir::Value seq;  // row of the block table
    mlir::Value qRow; // row of q (and of the output)
    mlir::Value kvHead;
    mlir::Value firstHead; // first query head of this CTA
    mlir::Value begin;     // first position attended
    mlir::Value end;       // one past the last (at most the context length)
  };

  /// kvHead and firstHead from blockIdx.y (y = kvHead * headChunks + chunk).
  void splitHeadIndex(mlir::Value y, Work &work);

  /// Before waiting for the previous kernel: pulls the K and V rows of the
  /// first `threads` positions of [begin, end) into L2, one position a
  /// thread (its block-table entry, then each 128-byte line). Block tables
  /// and context lengths are step inputs the host writes before the step,
  /// and the cached rows before this step's token are not written by the
  /// previous kernel either (an L2 prefetch of the newest row is harmless:
  /// L2 is coherent); only q and the newest K/V need the wait.
  void prefetchRows(const Work &work);

  /// The loop over [begin, end) and the merges: leaves every warp's state
  /// in workgroup memory, followed by a barrier. `maskBelowBegin`: keys
  /// before `begin` can occur in the first tile (begin not tile-aligned).
  void accumulate(const Work &work, bool maskBelowBegin);

  /// One result vector: query head firstHead + g, columns [column, column +
  /// vec), the base-2 max `m`, sum `l` and unnormalized `acc` over the CTA.
  struct Result {
    mlir::Value g, column, m, l, acc;
  };
  /// Calls `fn` for each result vector this thread owns (threads take the
  /// headsPerCta * vectorsPerRow vectors round-robin), after accumulate.
  void forEachResult(const std::function<void(const Result &)> &fn);

  /// acc / l rounded to the output type (0 where l is 0: an empty range).
  mlir::Value normalize(mlir::Value acc, mlir::Value l);

  /// m, l, acc of two partial states merged (all base 2).
  void merge(mlir::Value &m, mlir::Value &l, mlir::Value &acc, mlir::Value m2,
             mlir::Value l2, mlir::Value acc2);

  mlir::Value tid() const { return tid_; }

private:
  KernelBuilder &b;
  const AttentionConfig &c;
  mlir::Value q, kCache, vCache, tables, state, tid_;
};

/// The initial running max: finite, so that exp2(m - max) stays 0 or 1
/// when every score so far is masked (-inf - -inf would be NaN).
constexpr double kNoScore = -1e30;

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_PAGEDATTENTIONCORE_H
