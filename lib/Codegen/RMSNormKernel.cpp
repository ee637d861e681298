//===- RMSNormKernel.cpp - RMSNorm kernel generator -----------------------===//
//
// One thread block per row. Thread t of T owns the 128-bit vectors t, t+T,
// t+2T, ... of its row: it loads them once, widened to fp32, keeps them in
// registers for the second phase, and accumulates their squares. The block
// sum goes to every thread (KernelBuilder::blockSum), which then scales its
// vectors by rsqrt(mean + eps) and the weight and stores them.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/RMSNormKernel.h"

#include "KernelBuilder.h"
#include "NormRowEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace kiln::codegen;

static std::string formatDouble(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

FailureOr<KernelSpec>
kiln::codegen::buildRMSNormKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                                  const RMSNormOptions &options) {
  MLIRContext *context = builder.getContext();
  std::string name =
      llvm::formatv("{0}rms_norm_{1}_{2}", options.residual ? "add_" : "",
                    stringifyDType(options.dtype), options.hidden);
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.rows <= 0 || options.hidden <= 0)
    return emitError(loc) << "rms_norm needs rows > 0 and hidden > 0, got rows="
                          << options.rows << " hidden=" << options.hidden;
  if (!std::isfinite(options.epsilon) || options.epsilon < 0)
    return emitError(loc) << "rms_norm epsilon must be finite and >= 0, got "
                          << options.epsilon;
  if (options.blockSize != 0 &&
      (options.blockSize % kWarpSize != 0 || options.blockSize > 1024))
    return emitError(loc) << "block size must be a multiple of 32 up to 1024, "
                             "got "
                          << options.blockSize;

  FailureOr<NormShape> shape =
      normShape(loc, options.hidden, options.dtype, options.blockSize);
  if (failed(shape))
    return failure();
  int64_t width = shape->width, threads = shape->threads, steps = shape->steps;
  if (options.rows > 2147483647)
    return emitError(loc) << "rows=" << options.rows
                          << " exceeds the grid's x dimension";
  int64_t numWarps = threads / kWarpSize;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto rowsType = MemRefType::get({options.rows, options.hidden}, elementType);
  auto weightType = MemRefType::get({options.hidden}, elementType);
  SmallVector<Type> workgroup;
  if (numWarps > 1)
    workgroup.push_back(MemRefType::get(
        {numWarps}, b.getF32Type(), MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup)));
  SmallVector<Type> argTypes = {rowsType, weightType, rowsType};
  SmallVector<ArgAccess> access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                                   ArgAccess::WriteOnly};
  if (options.residual) {
    // (x, residual, weight, sum, out)
    argTypes = {rowsType, rowsType, weightType, rowsType, rowsType};
    access = {ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::ReadOnly,
              ArgAccess::WriteOnly, ArgAccess::WriteOnly};
  }
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, threads, workgroup);
  unsigned next = 0;
  Value x = func.getArgument(next++);
  Value residual = options.residual ? func.getArgument(next++) : Value();
  Value weight = func.getArgument(next++);
  Value sumOut = options.residual ? func.getArgument(next++) : Value();
  Value out = func.getArgument(next++);
  Value scratch =
      numWarps > 1 ? Value(func.getWorkgroupAttributions()[0]) : Value();

  NormRow r;
  r.x = x;
  r.residual = residual;
  r.weight = weight;
  r.sum = sumOut;
  r.out = out;
  r.row = b.blockIdX();
  r.tid = b.threadIdX();
  r.threads = threads;
  r.blockWarps = numWarps;
  r.scratch = scratch;
  r.hidden = options.hidden;
  r.epsilon = options.epsilon;
  r.elementType = elementType;
  emitNormRow(b, r, *shape);
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = options.residual ? "add_rms_norm" : "rms_norm";
  spec.name = name;
  spec.grid = {options.rows, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("rows", options.rows);
  spec.addParam("hidden", options.hidden);
  spec.addParam("eps", formatDouble(options.epsilon));
  spec.addParam("vec", width);
  spec.addParam("steps", steps);
  spec.args = {{"x", options.dtype, {options.rows, options.hidden}, false}};
  if (options.residual)
    spec.args.push_back(
        {"residual", options.dtype, {options.rows, options.hidden}, false});
  spec.args.push_back({"weight", options.dtype, {options.hidden}, false});
  if (options.residual)
    spec.args.push_back(
        {"sum", options.dtype, {options.rows, options.hidden}, true});
  spec.args.push_back(
      {"out", options.dtype, {options.rows, options.hidden}, true});
  return spec;
}
