//===- FlashPrefillKernel.h - Tensor-core prefill attention -*- C++ -*-===//

#ifndef KILN_CODEGEN_FLASHPREFILLKERNEL_H
#define KILN_CODEGEN_FLASHPREFILLKERNEL_H

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

struct FlashPrefillOptions {
  PagedAttentionOptions attention;
  /// Query rows per CTA (16 per warp) and keys per pipeline stage.
  int64_t queryTile = 64;
  int64_t keyTile = 64;
};

/// Appends `gpu.func @flash_prefill_<dtype>_h<Hq>_kv<Hkv>_d<D>_b<B>_mb<MB>
/// _q<QT>k<KT>[_sep](q, cache | k_cache, v_cache, block_tables,
/// context_lens, query_start_loc, out) kernel`: the causal attention of one
/// sequence's appended query rows over the paged cache, as paged_prefill
/// computes it for one sequence (same arguments, so a device launches
/// either per sequence), on the tensor cores. CTA (x, h) takes query rows
/// [x * QT, + QT) of query head h; each warp 16 rows. Per key tile of KT
/// positions (a two-stage cp.async pipeline from the block table's blocks
/// into padded workgroup tiles): S = Q K^T with mma.sync m16n8k16 (Q's
/// fragments stay in registers), the causal mask, an fp32 online softmax
/// in base 2 per row (the max shared by the 4 lanes of a row), P rounded to
/// the input type and O += P V with the same mma (V through ldmatrix.trans).
/// Grid x scales with ceil(rows / QT) (`tokens` = QT).
///
/// Sliding windows and logit soft-capping are not supported (paged_prefill
/// serves them); head_dim must be a multiple of 16 up to 256 and every
/// cache row 16-byte aligned.
mlir::FailureOr<KernelSpec>
buildFlashPrefillKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                        const FlashPrefillOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_FLASHPREFILLKERNEL_H
