//===- KVCacheWriteKernel.h - Paged KV cache write generator ----*- C++ -*-===//

#ifndef KILN_CODEGEN_KVCACHEWRITEKERNEL_H
#define KILN_CODEGEN_KVCACHEWRITEKERNEL_H

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

struct KVCacheWriteOptions {
  KernelDType dtype = KernelDType::F16;
  /// New tokens of the step (rows of key, value and slot_mapping). The code
  /// does not depend on it (one CTA per token), so the name omits it.
  int64_t numTokens = 1;
  int64_t kvHeads = 8;
  int64_t headDim = 64;
  int64_t blockSize = 16;
  /// numBlocks 0: numTokens (the type's size only).
  PagedCacheLayout cache;
};

/// Appends `gpu.func @kv_write_<dtype>_kv<Hkv>_d<D>_b<B>[_sep](key, value,
/// slot_mapping, cache | k_cache, v_cache) kernel` to `module`:
///
///   for t, h: K[slot[t] / B, h, slot[t] % B, :] = key[t, h, :]
///             V[slot[t] / B, h, slot[t] % B, :] = value[t, h, :]
///
/// key and value are [T, Hkv, D], slot_mapping [T] i64 (a negative slot
/// skips the token, vLLM's padding), the cache laid out as `cache` says.
/// One CTA per token; each thread copies 128-bit vectors of K and V (no
/// conversion). Emits an error at the kernel's location and fails when the
/// options cannot be met.
mlir::FailureOr<KernelSpec>
buildKVCacheWriteKernel(mlir::OpBuilder &builder, mlir::gpu::GPUModuleOp module,
                        const KVCacheWriteOptions &options);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_KVCACHEWRITEKERNEL_H
