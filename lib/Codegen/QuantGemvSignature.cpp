//===- QuantGemvSignature.cpp - The qgemv kernels' one contract -----------===//

#include "QuantGemvSignature.h"

#include "kiln/Codegen/GemvKernel.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

std::string kiln::codegen::quantGemvName(const QuantGemvOptions &o,
                                         StringRef suffix) {
  return llvm::formatv("qgemv_{0}_n{1}_k{2}_b{3}_g{4}{5}{6}{7}{8}",
                       stringifyDType(o.dtype), o.n, o.k, o.bits, o.groupSize,
                       o.fp8         ? "_fp8"
                       : o.zeroPoint ? "_zp"
                                     : "",
                       o.bias ? "_bias" : "",
                       o.tokens > 1 ? "_t" + std::to_string(o.tokens) : "",
                       suffix);
}

QuantGemvArgs kiln::codegen::createQuantGemvKernel(
    KernelBuilder &b, gpu::GPUModuleOp module, StringRef name,
    const QuantGemvOptions &o, int64_t threads, ArrayRef<Type> workgroup) {
  MLIRContext *context = b.getContext();
  bool chunked = o.tokens > 1;
  int64_t rowBytes = o.k * o.bits / 8;
  int64_t groups = o.k / o.groupSize;
  Type elementType = getElementType(context, o.dtype);
  auto xType = chunked ? MemRefType::get({kGemvMaxRows, o.k}, elementType)
                       : MemRefType::get({o.k}, elementType);
  auto yType = chunked ? MemRefType::get({kGemvMaxRows, o.n}, elementType)
                       : MemRefType::get({o.n}, elementType);
  SmallVector<Type> argTypes = {
      xType, MemRefType::get({o.n, rowBytes}, b.getI8Type()),
      MemRefType::get({o.n, groups}, getElementType(context, o.scaleDType))};
  if (o.zeroPoint)
    argTypes.push_back(MemRefType::get({o.n, groups}, b.getI8Type()));
  if (o.bias)
    argTypes.push_back(MemRefType::get({o.n}, elementType));
  argTypes.push_back(yType);
  SmallVector<ArgAccess> access(argTypes.size(), ArgAccess::ReadOnly);
  access.back() = ArgAccess::WriteOnly;
  if (chunked) {
    argTypes.push_back(MemRefType::get({4}, b.getI32Type()));
    access.push_back(ArgAccess::ReadOnly);
  }
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, threads, workgroup);
  QuantGemvArgs args;
  unsigned next = 0;
  args.x = func.getArgument(next++);
  args.packed = func.getArgument(next++);
  args.scales = func.getArgument(next++);
  if (o.zeroPoint)
    args.zeros = func.getArgument(next++);
  if (o.bias)
    args.bias = func.getArgument(next++);
  args.y = func.getArgument(next++);
  if (chunked)
    args.step = func.getArgument(next++);
  return args;
}

void kiln::codegen::addPackedLayoutParams(KernelSpec &spec,
                                          const QuantGemvOptions &o) {
  spec.addParam("dtype", stringifyDType(o.dtype));
  spec.addParam("n", o.n);
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
  spec.family = "qgemv";
  spec.name = name.str();
  spec.grid = {gridX, 1, 1};
  spec.block = {threads, 1, 1};
  addPackedLayoutParams(spec, o);
  if (o.tensorCores) {
    spec.addParam("mma", 1);
    spec.addParam("k_split", o.kSplit);
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
  if (chunked)
    spec.addParam("tokens", R);
  spec.args = {
      {"x", o.dtype,
       chunked ? SmallVector<int64_t>{R, o.k} : SmallVector<int64_t>{o.k},
       false}};
  addPackedWeightArgs(spec, o);
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  spec.args.push_back(
      {"y", o.dtype,
       chunked ? SmallVector<int64_t>{R, o.n} : SmallVector<int64_t>{o.n},
       true});
  if (chunked)
    spec.args.push_back({"step", KernelDType::I32, {4}, false});
  return spec;
}
