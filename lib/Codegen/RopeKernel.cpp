//===- RopeKernel.cpp - Rotary position embedding generator ---------------===//
//
// The half-split rotation of the packed [T, H, D] query or key rows. One CTA
// per token; a thread takes a vector of the first half of one head's rotary
// channels and the matching vector of the second half (x1 = x[c..c+w), x2 =
// x[c+rot/2..)), with the cos and sin vectors at both places, and writes
//
//   out1 = x1 * cos1 - x2 * sin1,   out2 = x2 * cos2 + x1 * sin2
//
// in fp32. Channels past rot (partial rotary) are copied as they are. The
// vector width is the widest that divides rot/2 and D (128 bits of x when
// the shape allows).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/RopeKernel.h"

#include "KVCacheWriteEmitter.h"
#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/FormatVariadic.h"

#include <numeric>

using namespace mlir;
using namespace kiln::codegen;

/// Threads per CTA at most; a token of more vector pairs loops.
static constexpr int64_t kMaxThreads = 256;

static bool isStorage(KernelDType d) {
  return d == KernelDType::F16 || d == KernelDType::BF16;
}

FailureOr<KernelSpec>
kiln::codegen::buildRopeKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                               const RopeOptions &options) {
  MLIRContext *context = builder.getContext();
  std::string tableSuffix =
      options.tableDType == options.dtype
          ? std::string()
          : "_t" + stringifyDType(options.tableDType).str();
  bool pair = options.secondHeads > 0;
  std::string heads = std::to_string(options.numHeads) +
                      (pair ? "_" + std::to_string(options.secondHeads) : "");
  bool kv = pair && options.kvWrite;
  bool separate = kv && options.cache.kind == KVCacheKind::Separate;
  std::string name = llvm::formatv(
      "rope_{5}{0}{1}_h{2}_d{3}_r{4}{6}", stringifyDType(options.dtype),
      tableSuffix, heads, options.headDim, options.rotaryDim,
      kv     ? "pair_kv_"
      : pair ? "pair_"
             : "",
      kv ? llvm::formatv("_b{0}{1}", options.kvBlockSize,
                         separate ? "_sep" : "")
               .str()
         : std::string());
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (!isStorage(options.dtype))
    return emitError(loc) << "rope rotates f16 or bf16 rows";
  if (!isStorage(options.tableDType) && options.tableDType != KernelDType::F32)
    return emitError(loc) << "rope reads f32, f16 or bf16 cos/sin tables";
  if (options.numTokens <= 0 || options.numHeads <= 0 || options.headDim <= 0)
    return emitError(loc) << "rope needs tokens, heads and head_dim > 0, got "
                             "tokens="
                          << options.numTokens << " heads=" << options.numHeads
                          << " head_dim=" << options.headDim;
  if (options.rotaryDim <= 0 || options.rotaryDim % 2 != 0 ||
      options.rotaryDim > options.headDim)
    return emitError(loc) << "rope needs an even rotary_dim in (0, head_dim], "
                             "got rotary_dim="
                          << options.rotaryDim
                          << " head_dim=" << options.headDim;
  if (options.secondHeads < 0)
    return emitError(loc) << "rope's second input needs heads >= 0, got "
                          << options.secondHeads;
  if (options.kvWrite && !pair)
    return emitError(loc) << "rope's cache write needs a second input (the "
                             "keys)";
  if (options.numTokens > 2147483647)
    return emitError(loc) << "tokens=" << options.numTokens
                          << " exceeds the grid's x dimension";

  int64_t D = options.headDim, rot = options.rotaryDim, half = rot / 2;
  int64_t tail = D - rot;
  int64_t width = pickVectorWidth(std::gcd(half, D), options.dtype);
  int64_t pairsPerHead = half / width, tailPerHead = tail / width;
  int64_t pairs = options.numHeads * pairsPerHead;
  int64_t threads = std::min(
      kMaxThreads,
      roundUp(std::max(pairs, options.secondHeads * pairsPerHead), kWarpSize));

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  Type tableElement = getElementType(context, options.tableDType);
  auto rowsType =
      MemRefType::get({options.numTokens, options.numHeads, D}, elementType);
  auto tableType = MemRefType::get({options.numTokens, rot}, tableElement);
  auto secondType =
      MemRefType::get({options.numTokens, options.secondHeads, D}, elementType);
  SmallVector<Type> argTypes = {rowsType, tableType, tableType, rowsType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                                   ArgAccess::ReadOnly, ArgAccess::WriteOnly};
  if (pair) {
    argTypes = {rowsType,  secondType, tableType,
                tableType, rowsType,   secondType};
    access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly,  ArgAccess::ReadOnly,
              ArgAccess::ReadOnly, ArgAccess::WriteOnly, ArgAccess::WriteOnly};
  }
  FailureOr<ResolvedCacheLayout> layout;
  if (kv) {
    layout = resolvePagedCacheLayout(loc, options.cache, options.dtype,
                                     options.secondHeads, options.kvBlockSize,
                                     D, options.numTokens);
    if (failed(layout))
      return failure();
    auto cacheType = MemRefType::get({layout->bufferElements}, elementType);
    argTypes.append({secondType,
                     MemRefType::get({options.numTokens}, b.getI64Type()),
                     cacheType});
    access.append(
        {ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::WriteOnly});
    if (separate) {
      argTypes.push_back(cacheType);
      access.push_back(ArgAccess::WriteOnly);
    }
  }
  gpu::GPUFuncOp func = b.createKernel(module, name, argTypes, access, threads);
  unsigned next = 0;
  Value firstX = func.getArgument(next++);
  Value secondX = pair ? func.getArgument(next++) : Value();
  Value cosT = func.getArgument(next++), sinT = func.getArgument(next++);
  Value firstOut = func.getArgument(next++);
  Value secondOut = pair ? func.getArgument(next++) : Value();
  Value value = kv ? func.getArgument(next++) : Value();
  Value slots = kv ? func.getArgument(next++) : Value();
  Value kCache = kv ? func.getArgument(next++) : Value();
  Value vCache = separate ? func.getArgument(next++) : kCache;

  Value token = b.blockIdX();
  Value tid = b.threadIdX();
  // Runs `body(item)` for items 0..count-1 spread over the threads.
  auto forItems = [&](int64_t count, const std::function<void(Value)> &body) {
    for (int64_t s = 0; s * threads < count; ++s) {
      Value item = b.add(tid, s * threads);
      if ((s + 1) * threads > count)
        b.ifThen(b.cmp(arith::CmpIPredicate::ult, item, count),
                 [&] { body(item); });
      else
        body(item);
    }
  };
  // Rotates the heads of one input x -> out.
  auto rotate = [&](Value x, Value out, int64_t numHeads) {
    int64_t pairs = numHeads * pairsPerHead;
    int64_t copies = numHeads * tailPerHead;
    forItems(pairs, [&](Value pair) {
      Value head = pairsPerHead > 1 ? b.divU(pair, pairsPerHead) : pair;
      Value c1 = pairsPerHead > 1 ? b.mul(b.remU(pair, pairsPerHead), width)
                                  : b.index(0);
      Value c2 = b.add(c1, half);
      Value x1 = b.loadF32(x, {token, head, c1}, width);
      Value x2 = b.loadF32(x, {token, head, c2}, width);
      Value cos1 = b.loadF32(cosT, {token, c1}, width);
      Value cos2 = b.loadF32(cosT, {token, c2}, width);
      Value sin1 = b.loadF32(sinT, {token, c1}, width);
      Value sin2 = b.loadF32(sinT, {token, c2}, width);
      Value o1 = arith::SubFOp::create(b, arith::MulFOp::create(b, x1, cos1),
                                       arith::MulFOp::create(b, x2, sin1));
      Value o2 = arith::AddFOp::create(b, arith::MulFOp::create(b, x2, cos2),
                                       arith::MulFOp::create(b, x1, sin2));
      b.storeFromF32(o1, out, {token, head, c1});
      b.storeFromF32(o2, out, {token, head, c2});
    });
    if (copies > 0)
      forItems(copies, [&](Value item) {
        Value head = b.divU(item, tailPerHead);
        Value column = b.add(b.mul(b.remU(item, tailPerHead), width), rot);
        b.storeVector(b.loadVector(x, {token, head, column}, width), out,
                      {token, head, column});
      });
  };
  rotate(firstX, firstOut, options.numHeads);
  if (pair)
    rotate(secondX, secondOut, options.secondHeads);
  if (kv) {
    // The rotated keys this CTA just stored are visible to all its threads
    // after the barrier; kv_write's copy follows.
    gpu::BarrierOp::create(b);
    emitKVCacheWrite(b, *layout, options.secondHeads, D, options.kvBlockSize,
                     threads, token, secondOut, value, slots, kCache, vCache);
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = kv ? "rope_pair_kv" : pair ? "rope_pair" : "rope";
  spec.name = name;
  spec.grid = {options.numTokens, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("table_dtype", stringifyDType(options.tableDType));
  spec.addParam("tokens", options.numTokens);
  spec.addParam("heads", options.numHeads);
  spec.addParam("head_dim", D);
  spec.addParam("rotary_dim", rot);
  spec.addParam("vec", width);
  spec.args = {
      {"x", options.dtype, {options.numTokens, options.numHeads, D}, false},
      {"cos", options.tableDType, {options.numTokens, rot}, false},
      {"sin", options.tableDType, {options.numTokens, rot}, false},
      {"out", options.dtype, {options.numTokens, options.numHeads, D}, true}};
  if (pair) {
    spec.addParam("second_heads", options.secondHeads);
    spec.args.insert(spec.args.begin() + 1,
                     {"x2",
                      options.dtype,
                      {options.numTokens, options.secondHeads, D},
                      false});
    spec.args.push_back({"out2",
                         options.dtype,
                         {options.numTokens, options.secondHeads, D},
                         true});
  }
  if (kv) {
    spec.addParam("block_size", options.kvBlockSize);
    addCacheParams(spec, *layout);
    spec.args.push_back({"value",
                         options.dtype,
                         {options.numTokens, options.secondHeads, D},
                         false});
    spec.args.push_back(
        {"slot_mapping", KernelDType::I64, {options.numTokens}, false});
    addCacheArgs(spec, *layout, options.dtype, /*isOutput=*/true);
  }
  return spec;
}
