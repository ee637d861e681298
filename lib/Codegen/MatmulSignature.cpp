//===- MatmulSignature.cpp - The prefill GEMMs' one contract --------------===//

#include "MatmulSignature.h"

#include "kiln/Codegen/GemvKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace kiln::codegen;

MatmulArgs
kiln::codegen::createMatmulKernel(KernelBuilder &b, gpu::GPUModuleOp module,
                                  StringRef name, const MatmulOptions &o,
                                  int64_t threads) {
  MLIRContext *context = b.getContext();
  Type elementType = getElementType(context, o.dtype);
  Type outElementType =
      getElementType(context, o.outputDType.value_or(o.dtype));
  bool split = o.splitK > 1;
  SmallVector<Type> argTypes = {
      MemRefType::get({kGemvMaxRows, o.k}, elementType)};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly};
  for (int64_t n : o.allN()) {
    argTypes.push_back(MemRefType::get({n, o.k}, elementType));
    access.push_back(ArgAccess::ReadOnly);
  }
  if (o.bias) {
    argTypes.push_back(MemRefType::get({o.n}, elementType));
    access.push_back(ArgAccess::ReadOnly);
  }
  for (int64_t n : o.allN()) {
    argTypes.push_back(MemRefType::get({kGemvMaxRows, n}, outElementType));
    access.push_back(ArgAccess::WriteOnly);
  }
  argTypes.push_back(MemRefType::get({4}, b.getI32Type()));
  access.push_back(ArgAccess::ReadOnly);
  if (split) {
    // Per row tile, splitK fp32 partial tiles and one arrival counter per
    // column tile (sized for the most rows a step may have).
    int64_t maxRowTiles = kGemvMaxRows / o.tileM;
    argTypes.append(
        {MemRefType::get({maxRowTiles * o.splitK * o.tileM * o.totalN()},
                         b.getF32Type()),
         MemRefType::get({maxRowTiles * (o.totalN() / o.tileN)},
                         b.getI32Type())});
    access.append({ArgAccess::ReadWrite, ArgAccess::ReadWrite});
  }
  SmallVector<Type> workgroup;
  if (split)
    workgroup.push_back(MemRefType::get(
        {1}, b.getI32Type(), MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup)));
  MatmulArgs args;
  args.func =
      b.createKernel(module, name, argTypes, access, threads, workgroup);
  if (split)
    args.splitFlag = args.func.getWorkgroupAttributions()[0];
  unsigned next = 0;
  args.x = args.func.getArgument(next++);
  args.w = args.func.getArgument(next++);
  for (size_t i = 0; i < o.moreN.size(); ++i)
    args.moreW.push_back(args.func.getArgument(next++));
  if (o.bias)
    args.bias = args.func.getArgument(next++);
  args.y = args.func.getArgument(next++);
  for (size_t i = 0; i < o.moreN.size(); ++i)
    args.moreY.push_back(args.func.getArgument(next++));
  args.step = args.func.getArgument(next++);
  if (split) {
    args.partials = args.func.getArgument(next++);
    args.counters = args.func.getArgument(next++);
  }
  return args;
}

KernelSpec
kiln::codegen::describeMatmul(const MatmulOptions &o, StringRef name,
                              int64_t threads, int64_t sharedBytes,
                              function_ref<void(KernelSpec &)> variantParams) {
  KernelDType outDType = o.outputDType.value_or(o.dtype);
  int64_t tilesN = o.totalN() / o.tileN;
  std::string allN;
  for (int64_t n : o.allN())
    allN += (allN.empty() ? "" : "_") + std::to_string(n);
  KernelSpec spec;
  spec.family = "matmul";
  spec.name = name.str();
  spec.grid = {tilesN, 1, o.splitK};
  spec.block = {threads, 1, 1};
  spec.dynamicSharedBytes = sharedBytes;
  spec.addParam("dtype", stringifyDType(o.dtype));
  if (o.moreN.empty())
    spec.addParam("n", o.n);
  else
    spec.addParam("n", allN);
  spec.addParam("k", o.k);
  spec.addParam("tokens", o.tileM);
  spec.addParam("tile_n", o.tileN);
  spec.addParam("tile_k", o.tileK);
  variantParams(spec);
  if (o.bias)
    spec.addParam("bias", 1);
  if (outDType != o.dtype)
    spec.addParam("out_dtype", stringifyDType(outDType));
  // Members after the first: w1, y1, w2, y2...
  auto member = [](const char *base, size_t i) {
    return i ? base + std::to_string(i) : std::string(base);
  };
  SmallVector<int64_t, 3> members = o.allN();
  spec.args = {{"x", o.dtype, {o.tileM, o.k}, false}};
  for (auto [i, n] : llvm::enumerate(members))
    spec.args.push_back({member("w", i), o.dtype, {n, o.k}, false});
  if (o.bias)
    spec.args.push_back({"bias", o.dtype, {o.n}, false});
  for (auto [i, n] : llvm::enumerate(members))
    spec.args.push_back({member("y", i), outDType, {o.tileM, n}, true});
  spec.args.push_back({"step", KernelDType::I32, {4}, false});
  if (o.splitK > 1) {
    // Per row tile of tileM rows: the device multiplies by the row tiles.
    spec.args.push_back({"partials",
                         KernelDType::F32,
                         {o.splitK * o.tileM * o.totalN()},
                         false,
                         true,
                         false});
    spec.args.push_back(
        {"counters", KernelDType::I32, {tilesN}, false, true, true});
  }
  return spec;
}

Value kiln::codegen::splitKArrival(KernelBuilder &b, Value counters,
                                   Value tile, Value flag, Value tid,
                                   int64_t splitK) {
  b.fenceGpu();
  gpu::BarrierOp::create(b);
  Type i32 = b.getI32Type();
  Value zeroIndex = b.index(0);
  b.ifThen(b.cmp(arith::CmpIPredicate::eq, tid, 0), [&] {
    Value one = arith::ConstantIntOp::create(b, i32, 1);
    Value before = memref::AtomicRMWOp::create(
        b, arith::AtomicRMWKind::addi, one, counters, ValueRange{tile});
    Value last = arith::CmpIOp::create(
        b, arith::CmpIPredicate::eq, before,
        arith::ConstantIntOp::create(b, i32, splitK - 1));
    b.ifThen(last, [&] {
      memref::StoreOp::create(b, arith::ConstantIntOp::create(b, i32, 0),
                              counters, ValueRange{tile});
    });
    memref::StoreOp::create(b, arith::ExtUIOp::create(b, i32, last), flag,
                            ValueRange{zeroIndex});
  });
  gpu::BarrierOp::create(b);
  return arith::CmpIOp::create(
      b, arith::CmpIPredicate::ne,
      memref::LoadOp::create(b, flag, ValueRange{zeroIndex}),
      arith::ConstantIntOp::create(b, i32, 0));
}
