//===- KVCacheWriteEmitter.h - One token's K/V rows into the paged cache -*- C++ -*-===//
//
// Private to lib/Codegen. The body of kv_write, also emitted at the end of
// the fused rope_pair_kv kernel (which writes the rotated keys it just
// produced): the CTA's threads copy token `token`'s 128-bit vectors of key
// and value [T, Hkv, D] to the slot's cache rows; a negative slot skips
// the token.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_KVCACHEWRITEEMITTER_H
#define KILN_LIB_CODEGEN_KVCACHEWRITEEMITTER_H

#include "KernelBuilder.h"

#include "kiln/Codegen/PagedCacheLayout.h"

namespace kiln {
namespace codegen {

void emitKVCacheWrite(KernelBuilder &b, const ResolvedCacheLayout &layout,
                      int64_t kvHeads, int64_t headDim, int64_t blockSize,
                      int64_t threads, mlir::Value token, mlir::Value key,
                      mlir::Value value, mlir::Value slots, mlir::Value kCache,
                      mlir::Value vCache);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_KVCACHEWRITEEMITTER_H
