//===- QuantDequantKernel.cpp - Packed weights to a dense W for a GEMM ----===//
//
// Prefill over quantized weights: the row-chunked qgemv decodes every code
// once per 8 token rows, which for a 512-token prompt means 64 passes of
// decode math over W. Instead a step of many rows decodes W once into a
// dense scratch matrix and runs the tensor-core GEMM on it; the scratch
// (N * K elements) is reused by every QuantLinear step.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/QuantGemvKernel.h"

#include "KernelBuilder.h"
#include "QuantDecode.h"
#include "QuantGemvSignature.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

static constexpr int64_t kThreads = 256;

FailureOr<KernelSpec> kiln::codegen::buildQuantDequantKernel(
    OpBuilder &builder, gpu::GPUModuleOp module, const QuantGemvOptions &o) {
  MLIRContext *context = builder.getContext();
  std::string name =
      llvm::formatv("qdequant_{0}_n{1}_k{2}_b{3}_g{4}{5}",
                    stringifyDType(o.dtype), o.n, o.k, o.bits, o.groupSize,
                    o.fp8         ? "_fp8"
                    : o.zeroPoint ? "_zp"
                                  : "");
  Location loc = NameLoc::get(StringAttr::get(context, name));
  FailureOr<int64_t> checked = checkPackedLayout(loc, "qdequant", o);
  if (failed(checked))
    return failure();
  int64_t perLoad = *checked;
  int64_t rowBytes = o.k * o.bits / 8;
  int64_t loadsPerRow = rowBytes / kCodeLoadBytes;
  int64_t loads = o.n * loadsPerRow;
  int64_t blocks = ceilDiv(loads, kThreads);
  if (blocks > 2147483647)
    return emitError(loc) << "n * k exceeds the grid's x dimension";
  int64_t groups = o.k / o.groupSize;
  int64_t codesPerWord = 32 / o.bits;

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, o.dtype);
  Type f32 = b.getF32Type();
  auto packedType = MemRefType::get({o.n, rowBytes}, b.getI8Type());
  auto scalesType =
      MemRefType::get({o.n, groups}, getElementType(context, o.scaleDType));
  auto zerosType = MemRefType::get({o.n, groups}, b.getI8Type());
  auto wType = MemRefType::get({o.n, o.k}, elementType);
  SmallVector<Type> argTypes = {packedType, scalesType};
  if (o.zeroPoint)
    argTypes.push_back(zerosType);
  argTypes.push_back(wType);
  SmallVector<ArgAccess> access(argTypes.size(), ArgAccess::ReadOnly);
  access.back() = ArgAccess::WriteOnly;
  gpu::GPUFuncOp func =
      b.createKernel(module, name, argTypes, access, kThreads);
  unsigned next = 0;
  Value packed = func.getArgument(next++), scales = func.getArgument(next++);
  Value zeros = o.zeroPoint ? func.getArgument(next++) : Value();
  Value w = func.getArgument(next++);

  Value load = b.add(b.mul(b.blockIdX(), kThreads), b.threadIdX());
  b.ifThen(b.cmp(arith::CmpIPredicate::ult, load, loads), [&] {
    Value row = b.divU(load, loadsPerRow);
    Value v = b.remU(load, loadsPerRow);
    Value column = b.mul(v, perLoad);
    Value group = b.divU(column, o.groupSize);
    Value codes =
        b.loadVector(packed, {row, b.mul(v, kCodeLoadBytes)}, kCodeLoadBytes);
    Value scale = memref::LoadOp::create(b, scales, ValueRange{row, group});
    if (scale.getType() != f32)
      scale = arith::ExtFOp::create(b, f32, scale);
    Value zero;
    if (zeros)
      zero = arith::UIToFPOp::create(
          b, f32, memref::LoadOp::create(b, zeros, ValueRange{row, group}));
    SmallVector<Value> decoded =
        o.fp8 ? decodeFp8Codes(b, codes)
              : decodeCodes(b, codes, codeOffset(b, zero, o.bits), o.bits);
    // fp8 codes decode 2^-8 times their value (QuantDecode.h).
    if (o.fp8)
      scale = arith::MulFOp::create(b, scale, b.f32(kFp8DecodeScale));
    // Back to weight order: weight j * codesPerWord + i is lane j of code
    // position i.
    SmallVector<Value> weights(perLoad);
    for (int64_t i = 0; i < codesPerWord; ++i)
      for (int64_t j = 0; j < 4; ++j)
        weights[j * codesPerWord + i] = arith::MulFOp::create(
            b, vector::ExtractOp::create(b, decoded[i], ArrayRef<int64_t>{j}),
            scale);
    Value dense = vector::FromElementsOp::create(
        b, VectorType::get({perLoad}, f32), weights);
    b.storeFromF32(dense, w, {row, column});
  });
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "qdequant";
  spec.name = name;
  spec.grid = {blocks, 1, 1};
  spec.block = {kThreads, 1, 1};
  addPackedLayoutParams(spec, o);
  if (o.zeroPoint)
    spec.addParam("zero_point", 1);
  if (o.fp8)
    spec.addParam("format", "fp8e4m3");
  addPackedWeightArgs(spec, o);
  spec.args.push_back({"w", o.dtype, {o.n, o.k}, true});
  return spec;
}
