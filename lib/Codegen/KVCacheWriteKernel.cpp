//===- KVCacheWriteKernel.cpp - Paged KV cache write generator ------------===//
//
// The step's new keys and values go to their slots in the paged cache. One
// CTA per token reads the token's slot once; its threads each move 128-bit
// vectors of K and V straight from the packed [T, Hkv, D] rows to the
// cache rows (no conversion, so the cache holds exactly the projected
// values). A negative slot skips the token.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/KVCacheWriteKernel.h"

#include "KernelBuilder.h"
#include "KVCacheWriteEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// Threads per CTA at most; a token of more vectors loops.
static constexpr int64_t kMaxThreads = 256;

FailureOr<KernelSpec>
kiln::codegen::buildKVCacheWriteKernel(OpBuilder &builder,
                                       gpu::GPUModuleOp module,
                                       const KVCacheWriteOptions &options) {
  MLIRContext *context = builder.getContext();
  bool separate = options.cache.kind == KVCacheKind::Separate;
  std::string name =
      llvm::formatv("kv_write_{0}_kv{1}_d{2}_b{3}{4}",
                    stringifyDType(options.dtype), options.kvHeads,
                    options.headDim, options.blockSize, separate ? "_sep" : "");
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.dtype != KernelDType::F16 && options.dtype != KernelDType::BF16)
    return emitError(loc) << "kv_write stores f16 or bf16";
  if (options.numTokens <= 0 || options.kvHeads <= 0 || options.headDim <= 0 ||
      options.blockSize <= 0)
    return emitError(loc) << "kv_write needs tokens, kv_heads, head_dim and "
                             "block_size > 0, got tokens="
                          << options.numTokens
                          << " kv_heads=" << options.kvHeads
                          << " head_dim=" << options.headDim
                          << " block_size=" << options.blockSize;
  if (options.numTokens > 2147483647)
    return emitError(loc) << "tokens=" << options.numTokens
                          << " exceeds the grid's x dimension";
  FailureOr<ResolvedCacheLayout> layout = resolvePagedCacheLayout(
      loc, options.cache, options.dtype, options.kvHeads, options.blockSize,
      options.headDim, options.numTokens);
  if (failed(layout))
    return failure();

  int64_t width = layout->vectorWidth;
  int64_t vectorsPerRow = options.headDim / width;
  int64_t vectorsPerToken = options.kvHeads * vectorsPerRow;
  int64_t threads = std::min(kMaxThreads, roundUp(vectorsPerToken, kWarpSize));

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto rowsType = MemRefType::get(
      {options.numTokens, options.kvHeads, options.headDim}, elementType);
  auto slotType = MemRefType::get({options.numTokens}, b.getI64Type());
  auto cacheType = MemRefType::get({layout->bufferElements}, elementType);
  SmallVector<Type> argTypes = {rowsType, rowsType, slotType, cacheType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                                   ArgAccess::ReadOnly, ArgAccess::WriteOnly};
  if (separate) {
    argTypes.push_back(cacheType);
    access.push_back(ArgAccess::WriteOnly);
  }
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  Value key = func.getArgument(0), value = func.getArgument(1),
        slots = func.getArgument(2), kCache = func.getArgument(3),
        vCache = separate ? func.getArgument(4) : kCache;

  emitKVCacheWrite(b, *layout, options.kvHeads, options.headDim,
                   options.blockSize, threads, b.blockIdX(), key, value, slots,
                   kCache, vCache);
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "kv_write";
  spec.name = name;
  spec.grid = {options.numTokens, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("tokens", options.numTokens);
  spec.addParam("kv_heads", options.kvHeads);
  spec.addParam("head_dim", options.headDim);
  spec.addParam("block_size", options.blockSize);
  addCacheParams(spec, *layout);
  spec.addParam("vec", width);
  spec.args = {{"key",
                options.dtype,
                {options.numTokens, options.kvHeads, options.headDim},
                false},
               {"value",
                options.dtype,
                {options.numTokens, options.kvHeads, options.headDim},
                false},
               {"slot_mapping", KernelDType::I64, {options.numTokens}, false}};
  addCacheArgs(spec, *layout, options.dtype, /*isOutput=*/true);
  return spec;
}

void kiln::codegen::emitKVCacheWrite(KernelBuilder &b,
                                     const ResolvedCacheLayout &layout,
                                     int64_t kvHeads, int64_t headDim,
                                     int64_t blockSize, int64_t threads,
                                     Value token, Value key, Value value,
                                     Value slots, Value kCache, Value vCache) {
  int64_t width = layout.vectorWidth;
  int64_t vectorsPerRow = headDim / width;
  int64_t vectorsPerToken = kvHeads * vectorsPerRow;
  int64_t steps = ceilDiv(vectorsPerToken, threads);
  int64_t vOffset = layout.separate() ? 0 : layout.vOffset;
  Value tid = b.threadIdX();
  Value slot = b.loadIndex(slots, {token});
  b.ifThen(b.cmp(arith::CmpIPredicate::sge, slot, 0), [&] {
    // Slots are non-negative here, so unsigned division is exact.
    Value block = b.divU(slot, blockSize);
    Value offset = b.remU(slot, blockSize);
    Value base = b.add(b.mul(block, layout.blockStride),
                       b.mul(offset, layout.tokenStride));
    for (int64_t s = 0; s < steps; ++s) {
      Value vector = b.add(tid, s * threads);
      auto copy = [&] {
        Value head = b.divU(vector, vectorsPerRow);
        Value column = b.mul(b.remU(vector, vectorsPerRow), width);
        Value k = b.loadVector(key, {token, head, column}, width);
        Value v = b.loadVector(value, {token, head, column}, width);
        Value dst = b.add(b.add(base, b.mul(head, layout.headStride)), column);
        b.storeVector(k, kCache, {dst});
        b.storeVector(v, vCache, {vOffset ? b.add(dst, vOffset) : dst});
      };
      if ((s + 1) * threads > vectorsPerToken)
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, vector, vectorsPerToken),
                 copy);
      else
        copy();
    }
  });
}
