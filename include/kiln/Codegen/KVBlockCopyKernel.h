//===- KVBlockCopyKernel.h - Paged KV copy-on-write generator ---*- C++ -*-===//

#ifndef KILN_CODEGEN_KVBLOCKCOPYKERNEL_H
#define KILN_CODEGEN_KVBLOCKCOPYKERNEL_H

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

struct KVBlockCopyOptions {
  KernelDType dtype = KernelDType::F16;
  /// Rows of the copy list (grid x; the code does not depend on it, so the
  /// name omits it). A list padded with n = 0 entries serves fewer copies.
  int64_t numCopies = 1;
  int64_t kvHeads = 8;
  int64_t headDim = 64;
  int64_t blockSize = 16;
  /// numLayers and layerStride say where each layer's cache starts;
  /// numBlocks 0: 2 * numCopies.
  PagedCacheLayout cache;
};

/// Appends `gpu.func @kv_copy_<dtype>_l<L>_kv<Hkv>_d<D>_b<B>_nb<NB>[_sep](
/// copies, cache | k_cache, v_cache) kernel` to `module`: for each row
/// (src, dst, n) of `copies` ([C, 3] i32), every layer, KV head and K/V,
/// copies token rows 0..n-1 of block src to block dst (runtime BlockCopy,
/// applied before a step's KV writes). n <= 0 skips the row; n is clamped
/// to the block size. The copies of one launch run concurrently: no
/// destination may be another row's source or destination. One CTA per
/// (copy, layer); every thread moves 128-bit vectors of K and V.
mlir::FailureOr<KernelSpec>
buildKVBlockCopyKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                       const KVBlockCopyOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_KVBLOCKCOPYKERNEL_H
