//===- PagedAttentionPrefillKernel.h - Paged prefill attention --*- C++ -*-===//

#ifndef KILN_CODEGEN_PAGEDATTENTIONPREFILLKERNEL_H
#define KILN_CODEGEN_PAGEDATTENTIONPREFILLKERNEL_H

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

struct PagedPrefillOptions {
  PagedAttentionOptions attention;
  /// Packed query tokens of the step (grid x; the code does not depend on
  /// it, so the name omits it).
  int64_t numTokens = 1;
  /// Sequences: rows of block_tables, entries of context_lens;
  /// query_start_loc has numSeqs + 1.
  int64_t numSeqs = 1;
};

/// Appends `gpu.func @paged_prefill_<dtype>_h<Hq>_kv<Hkv>_d<D>_b<B>_mb<MB>
/// _s<S>[_sw<W>][_cap<C>][_sep](q, cache | k_cache, v_cache, block_tables,
/// context_lens, query_start_loc, out) kernel`: causal attention of packed
/// ragged query tokens over the paged cache (the llm.paged_attention op).
/// q and out are [T, Hq, D]; the rows of sequence s are [query_start_loc[s],
/// query_start_loc[s + 1]); its i-th row is position p = context_lens[s] -
/// (q_len[s] - i) and attends to positions 0..p (the last `window` of them
/// with a sliding window); the step's K/V must already be in the cache.
/// One CTA per (query token, KV head) with the G query heads of the group,
/// the decode kernel's fp32 online softmax (no tensor cores yet).
mlir::FailureOr<KernelSpec>
buildPagedAttentionPrefillKernel(mlir::OpBuilder &builder,
                                 mlir::gpu::GPUModuleOp module,
                                 const PagedPrefillOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_PAGEDATTENTIONPREFILLKERNEL_H
