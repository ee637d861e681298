//===- QuantGemvSignature.cpp - The qgemv kernels' one contract -----------===//

#include "QuantGemvSignature.h"

#include "kiln/Codegen/GemvKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

std::string kiln::codegen::quantGemvName(const QuantGemvOptions &o,
                                         StringRef suffix) {
  std::string rows = std::to_string(o.n);
  for (int64_t more : o.moreN)
    rows += "_" + std::to_string(more);
  return llvm::formatv(
      "qgemv_{0}{1}_n{2}_k{3}_b{4}_g{5}{6}{7}{8}{9}{10}{11}",
      o.moreN.empty() ? "" : "multi_", stringifyDType(o.dtype), rows, o.k,
      o.bits, o.groupSize,
      o.fp8         ? "_fp8"
      : o.zeroPoint ? "_zp"
                    : "",
      o.bias ? "_bias" : "", o.addNormPrologue ? "_addnorm" : "",
      o.outputDType && *o.outputDType != o.dtype
          ? "_o" + stringifyDType(*o.outputDType).str()
          : std::string(),
      o.tokens > 1 ? "_t" + std::to_string(o.tokens) : "", suffix);
}

QuantGemvArgs kiln::codegen::createQuantGemvKernel(
    KernelBuilder &b, gpu::GPUModuleOp module, StringRef name,
    const QuantGemvOptions &o, int64_t threads, ArrayRef<Type> workgroup) {
  MLIRContext *context = b.getContext();
  bool chunked = o.tokens > 1;
  int64_t rowBytes = o.k * o.bits / 8;
  int64_t groups = o.k / o.groupSize;
  Type elementType = getElementType(context, o.dtype);
  Type outType = getElementType(context, o.outputDType.value_or(o.dtype));
  auto xType = chunked ? MemRefType::get({kGemvMaxRows, o.k}, elementType)
                       : MemRefType::get({o.k}, elementType);
  auto yType = chunked ? MemRefType::get({kGemvMaxRows, o.n}, outType)
                       : MemRefType::get({o.n}, outType);
  SmallVector<Type> argTypes = {xType};
  if (o.addNormPrologue)
    argTypes.append({xType, xType}); // residual, norm_weight
  argTypes.append(
      {MemRefType::get({o.n, rowBytes}, b.getI8Type()),
       MemRefType::get({o.n, groups}, getElementType(context, o.scaleDType))});
  if (o.zeroPoint)
    argTypes.push_back(MemRefType::get({o.n, groups}, b.getI8Type()));
  if (o.bias)
    argTypes.push_back(MemRefType::get({o.n}, elementType));
  argTypes.push_back(yType);
  SmallVector<ArgAccess> access(argTypes.size(), ArgAccess::ReadOnly);
  access.back() = ArgAccess::WriteOnly;
  for (int64_t n : o.moreN) {
    argTypes.push_back(MemRefType::get({n, rowBytes}, b.getI8Type()));
    argTypes.push_back(
        MemRefType::get({n, groups}, getElementType(context, o.scaleDType)));
    if (o.zeroPoint)
      argTypes.push_back(MemRefType::get({n, groups}, b.getI8Type()));
    argTypes.push_back(MemRefType::get({n}, outType));
    access.resize(argTypes.size(), ArgAccess::ReadOnly);
    access.back() = ArgAccess::WriteOnly;
  }
  if (chunked) {
    argTypes.push_back(MemRefType::get({4}, b.getI32Type()));
    access.push_back(ArgAccess::ReadOnly);
  }
  if (o.addNormPrologue) {
    argTypes.append({xType, xType}); // sum, normed
    access.append({ArgAccess::WriteOnly, ArgAccess::WriteOnly});
  }
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, threads, workgroup);
  QuantGemvArgs args;
  unsigned next = 0;
  args.x = func.getArgument(next++);
  if (o.addNormPrologue) {
    args.residual = func.getArgument(next++);
    args.normWeight = func.getArgument(next++);
  }
  args.packed = func.getArgument(next++);
  args.scales = func.getArgument(next++);
  if (o.zeroPoint)
    args.zeros = func.getArgument(next++);
  if (o.bias)
    args.bias = func.getArgument(next++);
  args.y = func.getArgument(next++);
  for (size_t i = 0; i < o.moreN.size(); ++i) {
    QuantGemvArgs more;
    more.x = args.x;
    more.packed = func.getArgument(next++);
    more.scales = func.getArgument(next++);
    if (o.zeroPoint)
      more.zeros = func.getArgument(next++);
    more.y = func.getArgument(next++);
    args.more.push_back(more);
  }
  if (chunked)
    args.step = func.getArgument(next++);
  if (o.addNormPrologue) {
    args.sum = func.getArgument(next++);
    args.normed = func.getArgument(next++);
  }
  return args;
}

LogicalResult kiln::codegen::verifyQuantGemvMulti(Location loc,
                                                  const QuantGemvOptions &o) {
  if (!o.moreN.empty() && (o.tokens > 1 || o.bias || o.moreN.size() > 3))
    return emitError(loc) << "qgemv_multi takes one row, at most 4 weights "
                             "and no bias";
  for (int64_t more : o.moreN)
    if (more <= 0)
      return emitError(loc) << "qgemv_multi needs every n > 0, got " << more;
  if (o.addNormPrologue &&
      (o.tokens > 1 || o.bias || o.outputDType.value_or(o.dtype) != o.dtype))
    return emitError(loc) << "the add + norm prologue takes one row, no bias "
                             "and writes the activations' type";
  return success();
}

void kiln::codegen::storeQuantGemvOutput(KernelBuilder &b, Value value, Value y,
                                         ValueRange indices) {
  Type outType = cast<MemRefType>(y.getType()).getElementType();
  if (value.getType() != outType)
    value = arith::TruncFOp::create(b, outType, value);
  memref::StoreOp::create(b, value, y, indices);
}

void kiln::codegen::forEachQuantWeight(
    KernelBuilder &b, const QuantGemvOptions &o, const QuantGemvArgs &all,
    function_ref<int64_t(int64_t)> blocksOf,
    function_ref<void(const QuantGemvArgs &, int64_t, Value)> body) {
  if (o.moreN.empty()) {
    body(all, o.n, b.blockIdX());
    return;
  }
  SmallVector<QuantGemvArgs> members = {all};
  members.append(all.more.begin(), all.more.end());
  SmallVector<int64_t> rows = {o.n};
  rows.append(o.moreN.begin(), o.moreN.end());
  Value block = b.blockIdX();
  int64_t first = 0;
  for (auto [member, n] : llvm::zip(members, rows)) {
    int64_t count = blocksOf(n);
    Value inRange =
        b.andI(b.cmp(arith::CmpIPredicate::uge, block, b.index(first)),
               b.cmp(arith::CmpIPredicate::ult, block, b.index(first + count)));
    b.ifThen(inRange, [&, first = first, n = n, &member = member] {
      body(member, n, b.sub(block, b.index(first)));
    });
    first += count;
  }
}

void kiln::codegen::addPackedLayoutParams(KernelSpec &spec,
                                          const QuantGemvOptions &o) {
  spec.addParam("dtype", stringifyDType(o.dtype));
  if (o.moreN.empty()) {
    spec.addParam("n", o.n);
  } else {
    // qgemv_multi: every weight's rows, as the device looks the kernel up.
    std::string rows = std::to_string(o.n);
    for (int64_t more : o.moreN)
      rows += "_" + std::to_string(more);
    spec.addParam("n", rows);
  }
  spec.addParam("k", o.k);
  spec.addParam("bits", o.bits);
  spec.addParam("group_size", o.groupSize);
  spec.addParam("scale_dtype", stringifyDType(o.scaleDType));
}

void kiln::codegen::addPackedWeightArgs(KernelSpec &spec,
                                        const QuantGemvOptions &o) {
  int64_t groups = o.k / o.groupSize;
  spec.args.push_back(
      {"packed", KernelDType::U8, {o.n, o.k * o.bits / 8}, false});
  spec.args.push_back({"scales", o.scaleDType, {o.n, groups}, false});
  if (o.zeroPoint)
    spec.args.push_back({"zeros", KernelDType::U8, {o.n, groups}, false});
}

KernelSpec kiln::codegen::describeQuantGemv(const QuantGemvOptions &o,
                                            StringRef name, int64_t gridX,
                                            int64_t threads) {
  bool chunked = o.tokens > 1;
  int64_t R = o.tokens;
  KernelSpec spec;
  spec.family = o.moreN.empty() ? "qgemv" : "qgemv_multi";
  spec.name = name.str();
  spec.grid = {gridX, 1, 1};
  spec.block = {threads, 1, 1};
  addPackedLayoutParams(spec, o);
  if (o.tensorCores) {
    spec.addParam("mma", 1);
    spec.addParam("k_split", o.kSplit);
    if (o.minWarpsPerSM)
      spec.addParam("min_warps_per_sm", o.minWarpsPerSM);
  } else {
    spec.addParam("rows_per_warp", o.rowsPerWarp);
  }
  spec.addParam("unroll", o.unroll);
  if (o.zeroPoint)
    spec.addParam("zero_point", 1);
  if (o.fp8)
    spec.addParam("format", "fp8e4m3");
  if (o.bias)
    spec.addParam("bias", 1);
  KernelDType outDType = o.outputDType.value_or(o.dtype);
  if (outDType != o.dtype)
    spec.addParam("out_dtype", stringifyDType(outDType));
  if (chunked)
    spec.addParam("tokens", R);
  if (o.addNormPrologue) {
    spec.addParam("add_norm", 1);
    spec.addFloatParam("eps", o.normEpsilon);
  }
  spec.args = {
      {"x", o.dtype,
       chunked ? SmallVector<int64_t>{R, o.k} : SmallVector<int64_t>{o.k},
       false}};
  if (o.addNormPrologue) {
    spec.args.push_back({"residual", o.dtype, {o.k}, false});
    spec.args.push_back({"norm_weight", o.dtype, {o.k}, false});
  }
  addPackedWeightArgs(spec, o);
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  spec.args.push_back(
      {"y", outDType,
       chunked ? SmallVector<int64_t>{R, o.n} : SmallVector<int64_t>{o.n},
       true});
  // qgemv_multi: weight i's arguments carry the suffix i (packed1, ...).
  for (auto [i, n] : llvm::enumerate(o.moreN)) {
    std::string suffix = std::to_string(i + 1);
    QuantGemvOptions member = o;
    member.n = n;
    size_t first = spec.args.size();
    addPackedWeightArgs(spec, member);
    for (size_t a = first; a < spec.args.size(); ++a)
      spec.args[a].name += suffix;
    spec.args.push_back({"y" + suffix, outDType, {n}, true});
  }
  if (chunked)
    spec.args.push_back({"step", KernelDType::I32, {4}, false});
  if (o.addNormPrologue) {
    spec.args.push_back({"sum", o.dtype, {o.k}, true});
    spec.args.push_back({"normed", o.dtype, {o.k}, true});
  }
  return spec;
}
