//===- PagedAttentionPrefillKernel.cpp - Paged prefill attention ----------===//
//
// Causal attention of a step's packed, ragged query tokens (prompt chunks,
// speculative tokens) over the paged cache. CTA (t, y) finds the sequence
// s of token t -- every warp counts the entries of query_start_loc[1..S]
// that are <= t, one entry per lane and a shuffle sum, so no barrier is
// needed -- derives the token's position p = context_lens[s] -
// (query_start_loc[s + 1] - t), and runs the decode CTA over positions
// [0, p] (the last `window` of them with a sliding window).
//
// This is the straightforward version: each CTA streams its own keys, so a
// long prompt reads K/V once per query token (mostly from L2). Tiling query
// tokens per CTA and tensor-core (wgmma) score and output products are the
// later optimizations.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/PagedAttentionPrefillKernel.h"

#include "PagedAttentionCore.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

FailureOr<KernelSpec> kiln::codegen::buildPagedAttentionPrefillKernel(
    OpBuilder &builder, gpu::GPUModuleOp module,
    const PagedPrefillOptions &options) {
  MLIRContext *context = builder.getContext();
  const PagedAttentionOptions &o = options.attention;
  std::string base =
      llvm::formatv("paged_prefill_{0}_h{1}_kv{2}_d{3}_b{4}_mb{5}_s{6}",
                    stringifyDType(o.dtype), o.numHeads, o.kvHeads, o.headDim,
                    o.blockSize, o.maxBlocks, options.numSeqs);
  Location loc = NameLoc::get(StringAttr::get(context, base));

  if (options.numSeqs <= 0 || options.numTokens < options.numSeqs ||
      options.numTokens > 2147483647)
    return emitError(loc) << "paged_prefill needs 0 < seqs <= tokens < 2^31 "
                             "(every sequence has a query token), got seqs="
                          << options.numSeqs << " tokens=" << options.numTokens;
  FailureOr<AttentionConfig> config =
      resolveAttentionConfig(loc, o, options.numSeqs * o.maxBlocks);
  if (failed(config))
    return failure();
  const AttentionConfig &c = *config;
  std::string name = base + attentionNameSuffix(c);
  loc = NameLoc::get(StringAttr::get(context, name));

  int64_t t = options.numTokens, s = options.numSeqs;
  int64_t heads = o.numHeads, dim = o.headDim;
  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  auto qType = MemRefType::get({t, heads, dim}, elementType);
  auto cacheType = MemRefType::get({c.cache.bufferElements}, elementType);
  auto tablesType = MemRefType::get({s, o.maxBlocks}, b.getI32Type());
  auto lensType = MemRefType::get({s}, b.getI32Type());
  auto startsType = MemRefType::get({s + 1}, b.getI32Type());
  SmallVector<Type> argTypes = {qType, cacheType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly};
  if (c.cache.separate()) {
    argTypes.push_back(cacheType);
    access.push_back(ArgAccess::ReadOnly);
  }
  argTypes.append({tablesType, lensType, startsType, qType});
  access.append({ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                 ArgAccess::WriteOnly});
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, c.threads,
                     {MemRefType::get({c.stateFloats}, b.getF32Type(),
                                      MemRefLayoutAttrInterface(), workgroup)});
  unsigned arg = 0;
  Value q = func.getArgument(arg++);
  Value kCache = func.getArgument(arg++);
  Value vCache = c.cache.separate() ? func.getArgument(arg++) : kCache;
  Value tables = func.getArgument(arg++);
  Value lens = func.getArgument(arg++);
  Value starts = func.getArgument(arg++);
  Value out = func.getArgument(arg++);
  Value state = func.getWorkgroupAttributions()[0];

  AttentionEmitter emitter(b, c, q, kCache, vCache, tables, state);
  AttentionEmitter::Work work;
  Value token = b.blockIdX();
  work.qRow = token;
  emitter.splitHeadIndex(b.blockIdY(), work);

  // The token's sequence: how many of query_start_loc[1..S] are <= token.
  Value lane = b.remU(emitter.tid(), kWarpSize);
  Type i32 = b.getI32Type();
  Value zero32 = arith::ConstantIntOp::create(b, i32, 0);
  Value one32 = arith::ConstantIntOp::create(b, i32, 1);
  auto count = scf::ForOp::create(
      b, b.index(0), b.index(s), b.index(kWarpSize), ValueRange{zero32},
      [&](OpBuilder &, Location, Value chunk, ValueRange carried) {
        Value entry = b.add(b.add(chunk, lane), 1);
        Value inList = b.cmp(arith::CmpIPredicate::ule, entry, s);
        Value start = b.loadIndex(
            starts, {arith::MinUIOp::create(b, entry, b.index(s)).getResult()});
        Value hit =
            b.andI(inList, b.cmp(arith::CmpIPredicate::sle, start, token));
        Value add = arith::SelectOp::create(b, hit, one32, zero32);
        Value sum = arith::AddIOp::create(b, carried[0], add);
        scf::YieldOp::create(b, ValueRange{sum});
      });
  Value hits =
      b.warpReduce(count.getResult(0), kWarpSize, [&](Value x, Value y) {
        return arith::AddIOp::create(b, x, y).getResult();
      });
  // Clamped so that a malformed query_start_loc cannot index past the lists.
  work.seq = arith::MinUIOp::create(
      b, arith::IndexCastOp::create(b, b.getIndexType(), hits), b.index(s - 1));
  Value seqEnd = b.loadIndex(starts, {b.add(work.seq, 1)});
  Value ctx = b.maxS(b.loadIndex(lens, {work.seq}), b.index(0));
  // Positions 0..p: end = p + 1 = ctx - (seqEnd - token) + 1, within [0, ctx].
  Value end = b.add(b.sub(ctx, b.sub(seqEnd, token)), b.index(1));
  work.end = b.maxS(b.minS(end, ctx), b.index(0));
  work.begin =
      o.slidingWindow
          ? b.maxS(b.sub(work.end, b.index(o.slidingWindow)), b.index(0))
          : b.index(0);
  emitter.accumulate(work, /*maskBelowBegin=*/o.slidingWindow != 0);
  emitter.forEachResult([&](const AttentionEmitter::Result &r) {
    b.storeFromF32(emitter.normalize(r.acc, r.l), out,
                   {work.qRow, b.add(work.firstHead, r.g), r.column});
  });
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "paged_prefill";
  spec.name = name;
  spec.grid = {t, o.kvHeads * c.headChunks, 1};
  spec.block = {c.threads, 1, 1};
  spec.addParam("tokens", t);
  spec.addParam("seqs", s);
  addAttentionParams(spec, c);
  spec.args = {{"q", o.dtype, {t, heads, dim}, false}};
  addCacheArgs(spec, c.cache, o.dtype, /*isOutput=*/false);
  spec.args.push_back(
      {"block_tables", KernelDType::I32, {s, o.maxBlocks}, false});
  spec.args.push_back({"context_lens", KernelDType::I32, {s}, false});
  spec.args.push_back({"query_start_loc", KernelDType::I32, {s + 1}, false});
  spec.args.push_back({"out", o.dtype, {t, heads, dim}, true});
  return spec;
}
