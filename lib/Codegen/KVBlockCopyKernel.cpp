//===- KVBlockCopyKernel.cpp - Paged KV copy-on-write generator -----------===//
//
// Copy-on-write of partially filled blocks (a fork, or an append into a
// block still shared): CTA (c, l) copies the first n token rows of every KV
// head, K and V, of layer l from block src to block dst of copy c. Thread i
// owns the 128-bit vectors i, i + threads, ... of the block's
// [kv_heads, block_size, head_dim / vec] rows: all its loads are issued
// before its stores, and vectors of tokens >= n are neither loaded nor
// stored (the tail of dst keeps what it held).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/KVBlockCopyKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

static constexpr int64_t kMaxThreads = 256;

FailureOr<KernelSpec>
kiln::codegen::buildKVBlockCopyKernel(OpBuilder &builder,
                                      gpu::GPUModuleOp module,
                                      const KVBlockCopyOptions &options) {
  MLIRContext *context = builder.getContext();
  bool separate = options.cache.kind == KVCacheKind::Separate;
  int64_t numBlocks =
      options.cache.numBlocks ? options.cache.numBlocks : 2 * options.numCopies;
  std::string name = llvm::formatv(
      "kv_copy_{0}_l{1}_kv{2}_d{3}_b{4}_nb{5}{6}",
      stringifyDType(options.dtype), options.cache.numLayers, options.kvHeads,
      options.headDim, options.blockSize, numBlocks, separate ? "_sep" : "");
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.dtype != KernelDType::F16 && options.dtype != KernelDType::BF16)
    return emitError(loc) << "kv_copy moves f16 or bf16";
  if (options.numCopies <= 0 || options.kvHeads <= 0 || options.headDim <= 0 ||
      options.blockSize <= 0)
    return emitError(loc) << "kv_copy needs copies, kv_heads, head_dim and "
                             "block_size > 0, got copies="
                          << options.numCopies
                          << " kv_heads=" << options.kvHeads
                          << " head_dim=" << options.headDim
                          << " block_size=" << options.blockSize;
  if (options.numCopies > 2147483647 || options.cache.numLayers > 65535)
    return emitError(loc) << "copies=" << options.numCopies
                          << " layers=" << options.cache.numLayers
                          << " exceed the grid (x < 2^31, y < 65536)";
  PagedCacheLayout requested = options.cache;
  requested.numBlocks = numBlocks;
  FailureOr<ResolvedCacheLayout> layout =
      resolvePagedCacheLayout(loc, requested, options.dtype, options.kvHeads,
                              options.blockSize, options.headDim, numBlocks);
  if (failed(layout))
    return failure();

  int64_t width = layout->vectorWidth;
  int64_t vectorsPerRow = options.headDim / width;
  int64_t vectorsPerHead = options.blockSize * vectorsPerRow;
  int64_t vectorsPerBlock = options.kvHeads * vectorsPerHead;
  int64_t threads = std::min(kMaxThreads, roundUp(vectorsPerBlock, kWarpSize));
  int64_t steps = ceilDiv(vectorsPerBlock, threads);

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto copiesType = MemRefType::get({options.numCopies, 3}, b.getI32Type());
  auto cacheType = MemRefType::get({layout->bufferElements}, elementType);
  SmallVector<Type> argTypes = {copiesType, cacheType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadWrite};
  if (separate) {
    argTypes.push_back(cacheType);
    access.push_back(ArgAccess::ReadWrite);
  }
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  Value copies = func.getArgument(0), kCache = func.getArgument(1),
        vCache = separate ? func.getArgument(2) : kCache;
  int64_t vOffset = separate ? 0 : layout->vOffset;

  Value copy = b.blockIdX();
  Value layer = b.blockIdY();
  Value tid = b.threadIdX();
  Value src = b.loadIndex(copies, {copy, b.index(0)});
  Value dst = b.loadIndex(copies, {copy, b.index(1)});
  Value count = b.loadIndex(copies, {copy, b.index(2)});
  Value layerBase = b.mul(layer, layout->layerStride);
  Value srcBase = b.add(layerBase, b.mul(src, layout->blockStride));
  Value dstBase = b.add(layerBase, b.mul(dst, layout->blockStride));

  // Per step: the vector's offset within a block and whether it is copied
  // (its token is below n, and it exists when the last step is partial).
  SmallVector<Value> offsets, copied;
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = b.add(tid, s * threads);
    Value head = b.divU(vector, vectorsPerHead);
    Value token = b.remU(b.divU(vector, vectorsPerRow), options.blockSize);
    Value column = b.mul(b.remU(vector, vectorsPerRow), width);
    offsets.push_back(b.add(b.add(b.mul(head, layout->headStride),
                                  b.mul(token, layout->tokenStride)),
                            column));
    Value cond = b.cmp(arith::CmpIPredicate::slt, token, count);
    if ((s + 1) * threads > vectorsPerBlock)
      cond = b.andI(cond,
                    b.cmp(arith::CmpIPredicate::ult, vector, vectorsPerBlock));
    copied.push_back(cond);
  }
  auto vectorType = VectorType::get({width}, elementType);
  auto zero = [&] {
    return arith::ConstantOp::create(
               b, vectorType,
               DenseElementsAttr::get(vectorType, b.getZeroAttr(elementType)))
        .getResult();
  };
  SmallVector<Value> ks, vs;
  for (int64_t s = 0; s < steps; ++s) {
    Value from = b.add(srcBase, offsets[s]);
    ks.push_back(b.ifElse(
        copied[s], [&] { return b.loadVector(kCache, {from}, width); }, zero));
    vs.push_back(b.ifElse(
        copied[s],
        [&] {
          return b.loadVector(vCache, {vOffset ? b.add(from, vOffset) : from},
                              width);
        },
        zero));
  }
  for (int64_t s = 0; s < steps; ++s) {
    b.ifThen(copied[s], [&] {
      Value to = b.add(dstBase, offsets[s]);
      b.storeVector(ks[s], kCache, {to});
      b.storeVector(vs[s], vCache, {vOffset ? b.add(to, vOffset) : to});
    });
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "kv_copy";
  spec.name = name;
  spec.grid = {options.numCopies, layout->numLayers, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("copies", options.numCopies);
  spec.addParam("kv_heads", options.kvHeads);
  spec.addParam("head_dim", options.headDim);
  spec.addParam("block_size", options.blockSize);
  addCacheParams(spec, *layout, /*withLayers=*/true);
  spec.addParam("vec", width);
  spec.args = {{"copies", KernelDType::I32, {options.numCopies, 3}, false}};
  addCacheArgs(spec, *layout, options.dtype, /*isOutput=*/true);
  return spec;
}
