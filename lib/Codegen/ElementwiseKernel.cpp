//===- ElementwiseKernel.cpp - Fused elementwise kernel generator ---------===//
//
// One 128-bit vector per thread, a flat grid over the tensor. SiLU(a) * b is
// a * b / (1 + 2^(-a * log2(e))) in fp32 with ex2.approx, so a saturates
// cleanly: a -> -inf gives -0, a -> +inf gives a * b.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/ElementwiseKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace kiln::codegen;

static constexpr int64_t kDefaultBlockSize = 256;

llvm::StringRef kiln::codegen::stringifyElementwiseOp(ElementwiseOp op) {
  switch (op) {
  case ElementwiseOp::SiluMul:
    return "silu_mul";
  case ElementwiseOp::Add:
    return "residual_add";
  case ElementwiseOp::Mul:
    return "mul";
  case ElementwiseOp::Silu:
    return "silu";
  }
  return "silu_mul";
}

std::optional<ElementwiseOp>
kiln::codegen::parseElementwiseOp(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<ElementwiseOp>>(name)
      .Cases({"silu_mul", "swiglu"}, ElementwiseOp::SiluMul)
      .Cases({"residual_add", "add"}, ElementwiseOp::Add)
      .Case("mul", ElementwiseOp::Mul)
      .Case("silu", ElementwiseOp::Silu)
      .Default(std::nullopt);
}

FailureOr<KernelSpec>
kiln::codegen::buildElementwiseKernel(OpBuilder &builder,
                                      gpu::GPUModuleOp module,
                                      const ElementwiseOptions &options) {
  MLIRContext *context = builder.getContext();
  StringRef family = stringifyElementwiseOp(options.op);
  std::string name = llvm::formatv("{0}_{1}_{2}", family,
                                   stringifyDType(options.dtype), options.size);
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.size <= 0)
    return emitError(loc) << family << " needs size > 0, got " << options.size;
  if (options.blockSize != 0 &&
      (options.blockSize % kWarpSize != 0 || options.blockSize > 1024))
    return emitError(loc) << "block size must be a multiple of 32 up to 1024, "
                             "got "
                          << options.blockSize;

  int64_t width = pickVectorWidth(options.size, options.dtype);
  int64_t numVectors = options.size / width;
  int64_t threads =
      options.blockSize
          ? options.blockSize
          : std::min(kDefaultBlockSize, roundUp(numVectors, kWarpSize));
  int64_t blocks = ceilDiv(numVectors, threads);
  if (blocks > 2147483647)
    return emitError(loc) << "size=" << options.size
                          << " exceeds the grid's x dimension";

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto type = MemRefType::get({options.size}, elementType);
  bool unary = options.op == ElementwiseOp::Silu;
  gpu::GPUFuncOp func =
      unary
          ? b.createKernel(module, name, {type, type},
                           {ArgAccess::ReadOnly, ArgAccess::WriteOnly}, threads)
          : b.createKernel(module, name, {type, type, type},
                           {ArgAccess::ReadOnly, ArgAccess::ReadOnly,
                            ArgAccess::WriteOnly},
                           threads);
  Value lhs = func.getArgument(0), rhs = unary ? Value() : func.getArgument(1),
        out = func.getArgument(unary ? 1 : 2);

  Value vector = arith::AddIOp::create(
      b, arith::MulIOp::create(b, b.blockIdX(), b.index(threads)),
      b.threadIdX());
  auto body = [&] {
    Value column = arith::MulIOp::create(b, vector, b.index(width));
    Value a = b.loadF32(lhs, {column}, width);
    Value c = unary ? b.f32Splat(1.0, width) : b.loadF32(rhs, {column}, width);
    Value result;
    switch (options.op) {
    case ElementwiseOp::SiluMul:
    case ElementwiseOp::Silu: // silu(x) * 1
      result = b.siluMul(a, c);
      break;
    case ElementwiseOp::Add:
      result = arith::AddFOp::create(b, a, c);
      break;
    case ElementwiseOp::Mul:
      result = arith::MulFOp::create(b, a, c);
      break;
    }
    b.storeFromF32(result, out, {column});
  };
  if (blocks * threads != numVectors)
    b.ifThen(arith::CmpIOp::create(b, arith::CmpIPredicate::ult, vector,
                                   b.index(numVectors)),
             body);
  else
    body();
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = family.str();
  spec.name = name;
  spec.grid = {blocks, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("size", options.size);
  spec.addParam("vec", width);
  bool silu = options.op == ElementwiseOp::SiluMul;
  if (unary)
    spec.args = {{"x", options.dtype, {options.size}, false},
                 {"out", options.dtype, {options.size}, true}};
  else
    spec.args = {{silu ? "gate" : "a", options.dtype, {options.size}, false},
                 {silu ? "up" : "b", options.dtype, {options.size}, false},
                 {"out", options.dtype, {options.size}, true}};
  return spec;
}
