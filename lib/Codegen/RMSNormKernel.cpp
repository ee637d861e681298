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

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace kiln::codegen;

/// Vectors each thread keeps in registers; past this the row needs a larger
/// block (or a multi-pass kernel, not written yet).
static constexpr int64_t kMaxStepsPerThread = 16;
/// Vectors per thread the automatic block size aims for: enough loads in
/// flight per thread without leaving most of a small row's block idle. The
/// block is the next power of two (odd warp counts such as 5 made ptxas
/// trade registers for spills).
static constexpr int64_t kTargetStepsPerThread = 4;

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

  int64_t width = pickVectorWidth(options.hidden, options.dtype);
  int64_t numVectors = options.hidden / width;
  int64_t threads =
      options.blockSize
          ? options.blockSize
          : std::clamp<int64_t>(
                llvm::PowerOf2Ceil(ceilDiv(numVectors, kTargetStepsPerThread)),
                kWarpSize, 1024);
  int64_t steps = ceilDiv(numVectors, threads);
  if (steps > kMaxStepsPerThread)
    return emitError(loc) << "hidden=" << options.hidden << " needs " << steps
                          << " vectors of " << width
                          << " per thread with a block of " << threads
                          << " threads (at most " << kMaxStepsPerThread
                          << "); use a larger block size";
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

  Value row = b.blockIdX();
  Value tid = b.threadIdX();
  Value vectorWidth = b.index(width);
  Value vectorCount = b.index(numVectors);

  // The column of step `s` for this thread, and whether the step is in the
  // row (only the last step of a row that does not fill the block can miss).
  auto vectorOf = [&](int64_t s) {
    return arith::AddIOp::create(b, tid, b.index(s * threads)).getResult();
  };
  auto columnOf = [&](Value vector) {
    return arith::MulIOp::create(b, vector, vectorWidth).getResult();
  };
  auto stepIsPartial = [&](int64_t s) {
    return (s + 1) * threads > numVectors;
  };

  // Phase 1: load the row slice, widen to fp32, sum the squares.
  SmallVector<Value> values;
  Value squares = b.f32Splat(0.0, width);
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = vectorOf(s);
    auto load = [&]() -> Value {
      Value column = columnOf(vector);
      Value v = b.loadF32(x, {row, column}, width);
      if (!residual)
        return v;
      // h rounded to the storage type, stored, and used as rounded.
      Value h = arith::AddFOp::create(
          b, v, b.loadF32(residual, {row, column}, width));
      b.storeFromF32(h, sumOut, {row, column});
      auto narrow = VectorType::get({width}, elementType);
      Value rounded = arith::TruncFOp::create(b, narrow, h);
      return arith::ExtFOp::create(b, VectorType::get({width}, b.getF32Type()),
                                   rounded)
          .getResult();
    };
    Value value;
    if (stepIsPartial(s)) {
      Value inRow = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, vector,
                                          vectorCount);
      value = b.ifElse(inRow, load, [&] { return b.f32Splat(0.0, width); });
    } else {
      value = load();
    }
    values.push_back(value);
    squares = vector::FMAOp::create(b, value, value, squares);
  }
  Value sum =
      vector::ReductionOp::create(b, vector::CombiningKind::ADD, squares);
  sum = b.blockSum(sum, tid, numWarps, scratch);

  // rstd = rsqrt(sum / hidden + eps), the same in every thread.
  Value mean = arith::DivFOp::create(b, sum, b.f32(options.hidden));
  Value rstd = b.rsqrtApprox(
      arith::AddFOp::create(b, mean, b.f32(options.epsilon)).getResult());
  Value rstdSplat = vector::BroadcastOp::create(
      b, VectorType::get({width}, b.getF32Type()), rstd);

  // Phase 2: out = x * rstd * weight.
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = vectorOf(s);
    auto scaleAndStore = [&] {
      Value column = columnOf(vector);
      Value w = b.loadF32(weight, {column}, width);
      Value normed = arith::MulFOp::create(b, values[s], rstdSplat);
      b.storeFromF32(arith::MulFOp::create(b, normed, w), out, {row, column});
    };
    if (stepIsPartial(s))
      b.ifThen(arith::CmpIOp::create(b, arith::CmpIPredicate::ult, vector,
                                     vectorCount),
               scaleAndStore);
    else
      scaleAndStore();
  }
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
