//===- PagedAttentionDecodeKernel.h - Paged decode attention ----*- C++ -*-===//

#ifndef KILN_CODEGEN_PAGEDATTENTIONDECODEKERNEL_H
#define KILN_CODEGEN_PAGEDATTENTIONDECODEKERNEL_H

#include "kiln/Codegen/KernelSpec.h"
#include "kiln/Codegen/PagedCacheLayout.h"

#include "mlir/Support/LLVM.h"

namespace mlir {
class OpBuilder;
namespace gpu {
class GPUModuleOp;
} // namespace gpu
} // namespace mlir

namespace kiln {
namespace codegen {

/// PagedDecodeOptions::partitionSize that picks the split from the shape.
constexpr int64_t kAutoPartitionSize = -1;

struct PagedDecodeOptions {
  PagedAttentionOptions attention;
  /// Sequences of the batch, one query token each (grid x; the code does
  /// not depend on it, so the name omits it). A sequence with context
  /// length 0 gets a zero output, so a batch can be padded to a bucket.
  int64_t numSeqs = 1;
  /// Split-K: cached positions per partition, a multiple of the warp tile
  /// (0: one CTA per sequence and KV head; kAutoPartitionSize: chosen from
  /// the batch so that the grid has about 512 CTAs at maximum context, or
  /// no split when the batch alone gives that many). With P = ceil(max_blocks *
  /// block_size / partitionSize) partitions, CTA (s, h, z) attends to
  /// positions [z * partitionSize, (z + 1) * partitionSize) of its context,
  /// writes its partial state to `partials`, and the last CTA of (s, h) to
  /// arrive (an atomic counter) merges them into the output. CTAs past a
  /// sequence's context exit at once; a context of one partition skips the
  /// workspace.
  int64_t partitionSize = 0;
};

/// Appends `gpu.func @paged_decode_<dtype>_h<Hq>_kv<Hkv>_d<D>_b<B>_mb<MB>
/// [_p<P>][_sw<W>][_cap<C>][_sep](q, cache | k_cache, v_cache,
/// block_tables, context_lens, out [, partials, counters]) kernel`:
///
///   out[s, h, :] = softmax_j(scale * q[s, h, :] . K[s, j, h / G, :]) V[...]
///
/// over positions j < context_lens[s] (and >= context_lens[s] - window),
/// position j in block block_tables[s, j / B] at offset j % B. q and out are
/// [N, Hq, D]; block_tables [N, MB] i32; context_lens [N] i32. One CTA per
/// (sequence, KV head[, partition]) computes the G = Hq / Hkv query heads of
/// the group, so each K/V row is read once; fp32 online softmax over tiles
/// of keys, 128-bit K/V loads (see lib/Codegen/PagedAttentionCore.h).
/// `partials` ([N * Hkv * P * R] f32) and `counters` ([N * Hkv] i32, zero
/// before the first launch and left zero) exist only with a partition size.
mlir::FailureOr<KernelSpec>
buildPagedAttentionDecodeKernel(mlir::OpBuilder &builder,
                                mlir::gpu::GPUModuleOp module,
                                const PagedDecodeOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_PAGEDATTENTIONDECODEKERNEL_H
