//===- RotaryTableKernel.cpp - Rotary cos/sin table generator -------------===//
//
// cos and sin of pos * inv_freq for the step's positions. inv_freq and the
// attention scaling are constants of the model, baked into the kernel (a
// select chain picks a thread's frequency; the table is at most a few dozen
// values). The angle is the fp32 product the reference computes; it is
// reduced modulo 2*pi in double precision (exact enough for any position a
// context holds), and cos.approx/sin.approx.f32 evaluate the reduced angle
// (absolute error about 2^-20.5 on [-pi, pi]), so no libdevice is needed.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/RotaryTableKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

#include <cmath>
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace kiln::codegen;

std::vector<float> kiln::codegen::defaultInvFreq(int64_t rotaryDim,
                                                 double base) {
  std::vector<float> invFreq;
  for (int64_t i = 0; i < rotaryDim / 2; ++i)
    invFreq.push_back(
        static_cast<float>(1.0 / std::pow(base, double(2 * i) / rotaryDim)));
  return invFreq;
}

FailureOr<KernelSpec>
kiln::codegen::buildRotaryTableKernel(OpBuilder &builder,
                                      gpu::GPUModuleOp module,
                                      const RotaryTableOptions &options) {
  MLIRContext *context = builder.getContext();
  int64_t half = static_cast<int64_t>(options.invFreq.size());
  int64_t rot = 2 * half;
  // The constants are part of the code: hash them into the name so that two
  // models' tables of one width do not collide.
  std::vector<float> hashed(options.invFreq);
  hashed.push_back(options.attentionScaling);
  uint64_t hash = llvm::xxh3_64bits(llvm::ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(hashed.data()),
      hashed.size() * sizeof(float)));
  std::string name =
      llvm::formatv("rotary_table_{0}_r{1}_{2}", stringifyDType(options.dtype),
                    rot, llvm::utohexstr(hash & 0xffffffffu, /*LowerCase=*/true));
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.dtype != KernelDType::F32 && options.dtype != KernelDType::F16 &&
      options.dtype != KernelDType::BF16)
    return emitError(loc) << "rotary_table writes f32, f16 or bf16 tables";
  if (half <= 0 || rot > 1024)
    return emitError(loc) << "rotary_table needs 1 to 512 inverse "
                             "frequencies, got "
                          << half;
  if (options.numTokens <= 0 || options.numTokens > 2147483647)
    return emitError(loc) << "rotary_table needs 0 < tokens < 2^31, got "
                          << options.numTokens;

  int64_t threads = roundUp(rot, kWarpSize);

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto posType = MemRefType::get({options.numTokens}, b.getI64Type());
  auto tableType = MemRefType::get({options.numTokens, rot}, elementType);
  gpu::GPUFuncOp func = b.createKernel(
      module, name, {posType, tableType, tableType},
      {ArgAccess::ReadOnly, ArgAccess::WriteOnly, ArgAccess::WriteOnly},
      threads);
  Value positions = func.getArgument(0), cosOut = func.getArgument(1),
        sinOut = func.getArgument(2);

  Type f32 = b.getF32Type(), f64 = b.getF64Type(), i64 = b.getI64Type();
  auto f64Const = [&](double v) -> Value {
    return arith::ConstantOp::create(b, f64, b.getF64FloatAttr(v));
  };

  Value token = b.blockIdX();
  Value column = b.threadIdX();
  auto body = [&] {
    Value pos = arith::IndexCastOp::create(b, i64, b.loadIndex(positions, {token}));
    Value position = arith::SIToFPOp::create(b, f32, pos);
    Value freqIndex = half > 1 ? b.remU(column, half) : b.index(0);
    Value freq = b.f32(options.invFreq[0]);
    for (int64_t j = 1; j < half; ++j)
      freq = arith::SelectOp::create(
          b, b.cmp(arith::CmpIPredicate::eq, freqIndex, j),
          b.f32(options.invFreq[j]), freq);
    Value angle = arith::MulFOp::create(b, position, freq);
    // r = angle - 2*pi * round(angle / (2*pi)), in double.
    Value wide = arith::ExtFOp::create(b, f64, angle, arith::FastMathFlagsAttr());
    Value turns = arith::MulFOp::create(b, wide, f64Const(0.5 / llvm::numbers::pi));
    Value bias = arith::SelectOp::create(
        b,
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGE, turns, f64Const(0)),
        f64Const(0.5), f64Const(-0.5));
    Value k = arith::SIToFPOp::create(
        b, f64,
        arith::FPToSIOp::create(b, i64, arith::AddFOp::create(b, turns, bias)));
    Value reduced = arith::SubFOp::create(
        b, wide, arith::MulFOp::create(b, k, f64Const(2 * llvm::numbers::pi)));
    Value r = arith::TruncFOp::create(b, f32, reduced);
    Value c = b.cosApprox(r), s = b.sinApprox(r);
    if (options.attentionScaling != 1.0f) {
      Value scaling = b.f32(options.attentionScaling);
      c = arith::MulFOp::create(b, c, scaling);
      s = arith::MulFOp::create(b, s, scaling);
    }
    if (options.dtype != KernelDType::F32) {
      c = arith::TruncFOp::create(b, elementType, c);
      s = arith::TruncFOp::create(b, elementType, s);
    }
    memref::StoreOp::create(b, c, cosOut, ValueRange{token, column});
    memref::StoreOp::create(b, s, sinOut, ValueRange{token, column});
  };
  if (threads != rot)
    b.ifThen(b.cmp(arith::CmpIPredicate::ult, column, rot), body);
  else
    body();
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "rotary_table";
  spec.name = name;
  spec.grid = {options.numTokens, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("tokens", options.numTokens);
  spec.addParam("rotary_dim", rot);
  spec.addFloatParam("attention_scaling", options.attentionScaling);
  std::string freqs;
  for (float f : options.invFreq) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", f);
    freqs += (freqs.empty() ? "" : ",") + std::string(text);
  }
  spec.addParam("inv_freq", freqs);
  spec.args = {{"positions", KernelDType::I64, {options.numTokens}, false},
               {"cos", options.dtype, {options.numTokens, rot}, true},
               {"sin", options.dtype, {options.numTokens, rot}, true}};
  return spec;
}
