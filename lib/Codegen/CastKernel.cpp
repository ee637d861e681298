//===- CastKernel.cpp - Elementwise float cast generator ------------------===//
//
// The plans cast the fp32 rotary tables to the activations' type (and may
// cast other tensors between f32, f16 and bf16). One vector per thread over
// a flat grid, as the elementwise kernels: widened to fp32 after the load
// (exact), rounded once before the store.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/CastKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

static constexpr int64_t kDefaultBlockSize = 256;

static bool isFloatType(KernelDType d) {
  return d == KernelDType::F32 || d == KernelDType::F16 ||
         d == KernelDType::BF16;
}

FailureOr<KernelSpec>
kiln::codegen::buildCastKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                               const CastOptions &options) {
  MLIRContext *context = builder.getContext();
  std::string name =
      llvm::formatv("cast_{0}_{1}_{2}", stringifyDType(options.from),
                    stringifyDType(options.to), options.size);
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (!isFloatType(options.from) || !isFloatType(options.to) ||
      options.from == options.to)
    return emitError(loc) << "cast converts between two different types of "
                             "f32, f16 and bf16, got "
                          << stringifyDType(options.from) << " -> "
                          << stringifyDType(options.to);
  if (options.size <= 0)
    return emitError(loc) << "cast needs size > 0, got " << options.size;

  // 128 bits of the wider type per thread.
  KernelDType wider = getElementBytes(options.from) >=
                              getElementBytes(options.to)
                          ? options.from
                          : options.to;
  int64_t width = pickVectorWidth(options.size, wider);
  int64_t numVectors = options.size / width;
  int64_t threads = std::min(kDefaultBlockSize, roundUp(numVectors, kWarpSize));
  int64_t blocks = ceilDiv(numVectors, threads);
  if (blocks > 2147483647)
    return emitError(loc) << "size=" << options.size
                          << " exceeds the grid's x dimension";

  KernelBuilder b(loc, builder);
  auto inType =
      MemRefType::get({options.size}, getElementType(context, options.from));
  auto outType =
      MemRefType::get({options.size}, getElementType(context, options.to));
  gpu::GPUFuncOp func =
      b.createKernel(module, name, {inType, outType},
                     {ArgAccess::ReadOnly, ArgAccess::WriteOnly}, threads);
  Value in = func.getArgument(0), out = func.getArgument(1);

  Value vector = b.add(b.mul(b.blockIdX(), threads), b.threadIdX());
  auto body = [&] {
    Value column = b.mul(vector, width);
    b.storeFromF32(b.loadF32(in, {column}, width), out, {column});
  };
  if (blocks * threads != numVectors)
    b.ifThen(b.cmp(arith::CmpIPredicate::ult, vector, numVectors), body);
  else
    body();
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "cast";
  spec.name = name;
  spec.grid = {blocks, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("from", stringifyDType(options.from));
  spec.addParam("to", stringifyDType(options.to));
  spec.addParam("size", options.size);
  spec.addParam("vec", width);
  spec.args = {{"x", options.from, {options.size}, false},
               {"out", options.to, {options.size}, true}};
  return spec;
}
