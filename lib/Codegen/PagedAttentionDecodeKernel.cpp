//===- PagedAttentionDecodeKernel.cpp - Paged decode attention ------------===//
//
// One query token per sequence. CTA (s, y[, z]) reads context_lens[s],
// attends with the query heads of KV head y (all G of the group unless
// they would not fit in registers) to positions [0, ctx) -- the last
// `window` of them with a sliding window, and only partition z's slice
// with split-K -- and writes out[s, heads of y, :].
//
// Split-K (partitionSize > 0) for batches too small to fill the GPU: each
// partition's CTA stores its unnormalized state (max, sum, acc per query
// head) in `partials`, fences, and bumps the (s, y) counter; the CTA that
// brings it to the number of partitions of s resets it to zero and merges
// the partials (flash-decoding's reduction, without a second launch).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/PagedAttentionDecodeKernel.h"

#include "PagedAttentionCore.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// The automatic split: CTAs to aim for at maximum context (about four per
/// SM of an H100), and the shortest partition worth a CTA. Measured on an
/// H200 with the Llama-3.2-1B shape (Hkv = 8, D = 64, 4096 positions): the
/// best of 64..2048-position partitions were 128 for N = 1, 512 for N = 8
/// and 1024-2048 for N = 32, which this rule picks.
static constexpr int64_t kAutoTargetCtas = 512;
static constexpr int64_t kAutoMinPartition = 128;

FailureOr<KernelSpec> kiln::codegen::buildPagedAttentionDecodeKernel(
    OpBuilder &builder, gpu::GPUModuleOp module,
    const PagedDecodeOptions &options) {
  MLIRContext *context = builder.getContext();
  const PagedAttentionOptions &o = options.attention;
  std::string base = llvm::formatv(
      "paged_decode_{0}_h{1}_kv{2}_d{3}_b{4}_mb{5}", stringifyDType(o.dtype),
      o.numHeads, o.kvHeads, o.headDim, o.blockSize, o.maxBlocks);
  Location loc = NameLoc::get(StringAttr::get(context, base));

  if (options.numSeqs <= 0 || options.numSeqs > 2147483647)
    return emitError(loc) << "paged_decode needs 0 < seqs < 2^31, got "
                          << options.numSeqs;
  FailureOr<AttentionConfig> config =
      resolveAttentionConfig(loc, o, options.numSeqs * o.maxBlocks);
  if (failed(config))
    return failure();
  const AttentionConfig &c = *config;
  int64_t n = options.numSeqs, heads = o.numHeads, dim = o.headDim;
  int64_t slots = o.kvHeads * c.headChunks; // grid y
  int64_t maxContext = o.maxBlocks * o.blockSize;

  int64_t partitionSize = options.partitionSize;
  if (partitionSize == kAutoPartitionSize) {
    // About kAutoTargetCtas CTAs when every context is at the maximum, with
    // partitions of at least kAutoMinPartition positions; none when the
    // batch alone is enough.
    int64_t parts = ceilDiv(kAutoTargetCtas, n * slots);
    partitionSize = std::max(roundUp(ceilDiv(maxContext, parts), c.warpTile),
                             roundUp(kAutoMinPartition, c.warpTile));
    if (partitionSize >= maxContext)
      partitionSize = 0;
  }
  if (partitionSize)
    base += llvm::formatv("_p{0}", partitionSize);
  std::string name = base + attentionNameSuffix(c);
  loc = NameLoc::get(StringAttr::get(context, name));

  bool split = partitionSize != 0;
  int64_t partitions = 1;
  if (split) {
    if (partitionSize < 0 || partitionSize % c.warpTile != 0)
      return emitError(loc)
             << "partition size must be a positive multiple of "
                "the warp tile of "
             << c.warpTile << " keys (or -1: auto), got " << partitionSize;
    partitions = ceilDiv(maxContext, partitionSize);
    if (partitions > 65535)
      return emitError(loc)
             << partitions << " partitions exceed the grid's z dimension";
  }
  // A partial record: acc [headsPerCta, D], m, l [headsPerCta], rounded to
  // 16 bytes so that every record starts aligned.
  int64_t recordFloats = roundUp(c.headsPerCta * (dim + 2), 4);
  int64_t partialFloats = n * slots * partitions * recordFloats;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  auto qType = MemRefType::get({n, heads, dim}, elementType);
  auto cacheType = MemRefType::get({c.cache.bufferElements}, elementType);
  auto tablesType = MemRefType::get({n, o.maxBlocks}, b.getI32Type());
  auto lensType = MemRefType::get({n}, b.getI32Type());
  SmallVector<Type> argTypes = {qType, cacheType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly};
  if (c.cache.separate()) {
    argTypes.push_back(cacheType);
    access.push_back(ArgAccess::ReadOnly);
  }
  argTypes.append({tablesType, lensType, qType});
  access.append(
      {ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::WriteOnly});
  if (split) {
    argTypes.push_back(MemRefType::get({partialFloats}, b.getF32Type()));
    argTypes.push_back(MemRefType::get({n * slots}, b.getI32Type()));
    access.append({ArgAccess::ReadWrite, ArgAccess::ReadWrite});
  }
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  SmallVector<Type> workgroupTypes = {MemRefType::get(
      {c.stateFloats}, b.getF32Type(), MemRefLayoutAttrInterface(), workgroup)};
  if (split)
    workgroupTypes.push_back(MemRefType::get(
        {1}, b.getI32Type(), MemRefLayoutAttrInterface(), workgroup));
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, c.threads, workgroupTypes);
  unsigned arg = 0;
  Value q = func.getArgument(arg++);
  Value kCache = func.getArgument(arg++);
  Value vCache = c.cache.separate() ? func.getArgument(arg++) : kCache;
  Value tables = func.getArgument(arg++);
  Value lens = func.getArgument(arg++);
  Value out = func.getArgument(arg++);
  Value partials = split ? func.getArgument(arg++) : Value();
  Value counters = split ? func.getArgument(arg++) : Value();
  Value state = func.getWorkgroupAttributions()[0];
  Value flag = split ? Value(func.getWorkgroupAttributions()[1]) : Value();

  AttentionEmitter emitter(b, c, q, kCache, vCache, tables, state);
  AttentionEmitter::Work work;
  work.seq = work.qRow = b.blockIdX();
  Value slot = b.blockIdY();
  emitter.splitHeadIndex(slot, work);
  Value ctx = b.maxS(b.loadIndex(lens, {work.seq}), b.index(0));
  Value windowBegin =
      o.slidingWindow ? b.maxS(b.sub(ctx, b.index(o.slidingWindow)), b.index(0))
                      : b.index(0);
  bool maskBelowBegin = o.slidingWindow != 0;

  auto storeOut = [&](const AttentionEmitter::Result &r) {
    b.storeFromF32(emitter.normalize(r.acc, r.l), out,
                   {work.qRow, b.add(work.firstHead, r.g), r.column});
  };

  // The context length, block tables and earlier positions' K/V are read
  // before the wait (PagedAttentionCore.h: prefetchRows): at batch 1 the
  // kernel is a chain of dependent loads (length, table, K/V), which then
  // overlaps the q/k/v projection instead of following it.
  if (!split) {
    work.begin = windowBegin;
    work.end = ctx;
    emitter.prefetchRows(work);
    b.waitForPriorGrids();
    emitter.accumulate(work, maskBelowBegin);
    emitter.forEachResult(storeOut);
    gpu::ReturnOp::create(b);
  } else {
    Value part = b.blockIdZ();
    int64_t size = partitionSize;
    // Partitions of this sequence: at least one, so that an empty context
    // still writes its (zero) output.
    Value parts = b.maxS(b.divU(b.add(ctx, size - 1), size), b.index(1));
    b.ifThen(b.cmp(arith::CmpIPredicate::ult, part, parts), [&] {
      Value partBegin = b.mul(part, size);
      work.begin = b.maxS(windowBegin, partBegin);
      work.end = b.minS(b.add(partBegin, size), ctx);
      emitter.prefetchRows(work);
      b.waitForPriorGrids();
      emitter.accumulate(work, maskBelowBegin);

      Value single = b.cmp(arith::CmpIPredicate::eq, parts, 1);
      auto ifOp = scf::IfOp::create(b, TypeRange{}, single,
                                    /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        emitter.forEachResult(storeOut);
      }
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.elseBlock());

      Value counter = b.add(b.mul(work.seq, slots), slot);
      Value records = b.mul(counter, partitions);
      int64_t mOffset = c.headsPerCta * dim;
      int64_t lOffset = mOffset + c.headsPerCta;
      int64_t accAlign = 4 * std::min<int64_t>(4, c.vec);
      auto recordOf = [&](Value z) {
        return b.mul(b.add(records, z), recordFloats);
      };
      // This partition's state.
      Value mine = recordOf(part);
      emitter.forEachResult([&](const AttentionEmitter::Result &r) {
        b.storeVector(r.acc, partials,
                      {b.add(mine, b.add(b.mul(r.g, dim), r.column))},
                      accAlign);
        b.ifThen(b.cmp(arith::CmpIPredicate::eq, r.column, 0), [&] {
          memref::StoreOp::create(b, r.m, partials,
                                  b.add(mine, b.add(r.g, mOffset)));
          memref::StoreOp::create(b, r.l, partials,
                                  b.add(mine, b.add(r.g, lOffset)));
        });
      });
      // Publish it, and count the arrivals.
      b.fenceGpu();
      gpu::BarrierOp::create(b);
      Value zeroIndex = b.index(0);
      b.ifThen(b.cmp(arith::CmpIPredicate::eq, emitter.tid(), 0), [&] {
        Value one = arith::ConstantIntOp::create(b, b.getI32Type(), 1);
        Value before = memref::AtomicRMWOp::create(
            b, arith::AtomicRMWKind::addi, one, counters, ValueRange{counter});
        Value lastArrival =
            b.cmp(arith::CmpIPredicate::eq,
                  arith::IndexCastOp::create(b, b.getIndexType(), before),
                  b.sub(parts, b.index(1)));
        b.ifThen(lastArrival, [&] {
          memref::StoreOp::create(
              b, arith::ConstantIntOp::create(b, b.getI32Type(), 0), counters,
              ValueRange{counter});
        });
        memref::StoreOp::create(
            b, arith::ExtUIOp::create(b, b.getI32Type(), lastArrival), flag,
            ValueRange{zeroIndex});
      });
      gpu::BarrierOp::create(b);
      Value isLast =
          b.cmp(arith::CmpIPredicate::ne,
                arith::IndexCastOp::create(
                    b, b.getIndexType(),
                    memref::LoadOp::create(b, flag, ValueRange{zeroIndex})),
                0);
      b.ifThen(isLast, [&] {
        b.fenceGpu();
        int64_t items = c.headsPerCta * c.vectorsPerRow;
        for (int64_t r = 0; r < ceilDiv(items, c.threads); ++r) {
          Value item = b.add(emitter.tid(), r * c.threads);
          auto combine = [&] {
            Value g = b.divU(item, c.vectorsPerRow);
            Value column = b.mul(b.remU(item, c.vectorsPerRow), c.vec);
            Value accOffset = b.add(b.mul(g, dim), column);
            SmallVector<Value> init = {b.f32(kNoScore), b.f32(0.0),
                                       b.f32Splat(0.0, c.vec)};
            auto loop = scf::ForOp::create(
                b, b.index(0), parts, b.index(1), init,
                [&](OpBuilder &, Location, Value z, ValueRange carried) {
                  Value record = recordOf(z);
                  Value m2 = memref::LoadOp::create(
                      b, partials, b.add(record, b.add(g, mOffset)));
                  Value l2 = memref::LoadOp::create(
                      b, partials, b.add(record, b.add(g, lOffset)));
                  Value acc2 = b.loadVector(
                      partials, {b.add(record, accOffset)}, c.vec, accAlign);
                  Value m = carried[0], l = carried[1], acc = carried[2];
                  emitter.merge(m, l, acc, m2, l2, acc2);
                  scf::YieldOp::create(b, ValueRange{m, l, acc});
                });
            b.storeFromF32(
                emitter.normalize(loop.getResult(2), loop.getResult(1)), out,
                {work.qRow, b.add(work.firstHead, g), column});
          };
          if ((r + 1) * c.threads > items)
            b.ifThen(b.cmp(arith::CmpIPredicate::ult, item, items), combine);
          else
            combine();
        }
      });
    });
    gpu::ReturnOp::create(b);
  }

  KernelSpec spec;
  spec.family = "paged_decode";
  spec.name = name;
  spec.grid = {n, slots, partitions};
  spec.block = {c.threads, 1, 1};
  spec.addParam("seqs", n);
  addAttentionParams(spec, c);
  spec.addParam("partition_size", partitionSize);
  spec.addParam("partitions", partitions);
  spec.args = {{"q", o.dtype, {n, heads, dim}, false}};
  addCacheArgs(spec, c.cache, o.dtype, /*isOutput=*/false);
  spec.args.push_back(
      {"block_tables", KernelDType::I32, {n, o.maxBlocks}, false});
  spec.args.push_back({"context_lens", KernelDType::I32, {n}, false});
  spec.args.push_back({"out", o.dtype, {n, heads, dim}, true});
  if (split) {
    spec.args.push_back(
        {"partials", KernelDType::F32, {partialFloats}, false, true, false});
    spec.args.push_back(
        {"counters", KernelDType::I32, {n * slots}, false, true, true});
  }
  return spec;
}
