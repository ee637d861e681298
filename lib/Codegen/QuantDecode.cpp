//===- QuantDecode.cpp - Packed low-bit codes to fp32, one formula --------===//

#include "QuantDecode.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace kiln::codegen;

Value kiln::codegen::codeOffset(KernelBuilder &b, Value zero, int64_t bits) {
  if (zero)
    return arith::AddFOp::create(b, zero, b.f32(kCodeMagic));
  return b.f32(kCodeMagic + double(int64_t(1) << (bits - 1)));
}

SmallVector<Value> kiln::codegen::decodeCodes(KernelBuilder &b, Value codes,
                                              Value offset, int64_t bits) {
  auto vec4F32 = VectorType::get({4}, b.getF32Type());
  auto vec4I32 = VectorType::get({4}, b.getI32Type());
  auto splatI32 = [&](int64_t v) {
    return arith::ConstantOp::create(
        b, vec4I32, DenseElementsAttr::get(vec4I32, b.getI32IntegerAttr(v)));
  };
  Value magicBits = splatI32(0x4B000000);
  Value mask = splatI32((int64_t(1) << bits) - 1);
  Value offsets = vector::BroadcastOp::create(b, vec4F32, offset);
  Value words = vector::BitCastOp::create(b, vec4I32, codes);
  SmallVector<Value> decoded;
  for (int64_t i = 0; i < 32 / bits; ++i) {
    Value shifted =
        i ? arith::ShRUIOp::create(b, words, splatI32(i * bits)).getResult()
          : words;
    Value codeBits = arith::OrIOp::create(
        b, arith::AndIOp::create(b, shifted, mask), magicBits);
    decoded.push_back(arith::SubFOp::create(
        b, vector::BitCastOp::create(b, vec4F32, codeBits), offsets));
  }
  return decoded;
}

SmallVector<Value> kiln::codegen::decodeFp8Codes(KernelBuilder &b,
                                                 Value codes) {
  auto vec4I32 = VectorType::get({4}, b.getI32Type());
  auto splatI32 = [&](int64_t v) {
    return arith::ConstantOp::create(
        b, vec4I32, DenseElementsAttr::get(vec4I32, b.getI32IntegerAttr(v)));
  };
  Value words = vector::BitCastOp::create(b, vec4I32, codes);
  SmallVector<Value> decoded;
  for (int64_t i = 0; i < 4; ++i) {
    Value byte =
        i ? arith::ShRUIOp::create(b, words, splatI32(8 * i)).getResult()
          : words;
    Value magnitude = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, byte, splatI32(0x7f)), splatI32(7));
    Value sign = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, byte, splatI32(0x80)), splatI32(8));
    Value halfBits =
        arith::TruncIOp::create(b, VectorType::get({4}, b.getI16Type()),
                                arith::OrIOp::create(b, magnitude, sign));
    Value half = vector::BitCastOp::create(
        b, VectorType::get({4}, b.getF16Type()), halfBits);
    decoded.push_back(
        arith::ExtFOp::create(b, VectorType::get({4}, b.getF32Type()), half,
                              arith::FastMathFlagsAttr()));
  }
  return decoded;
}

FailureOr<int64_t> kiln::codegen::checkPackedLayout(Location loc,
                                                    StringRef family,
                                                    const QuantGemvOptions &o) {
  KernelDType dtype = o.dtype, scaleDType = o.scaleDType;
  int64_t n = o.n, k = o.k, bits = o.bits, groupSize = o.groupSize;
  if (dtype != KernelDType::F16 && dtype != KernelDType::BF16)
    return emitError(loc) << family << " takes f16 or bf16 activations";
  if (scaleDType != KernelDType::F16 && scaleDType != KernelDType::BF16 &&
      scaleDType != KernelDType::F32)
    return emitError(loc) << family << " takes f16, bf16 or f32 scales";
  if (bits != 4 && bits != 8)
    return emitError(loc) << "bits=" << bits << ": " << family
                          << " decodes 4 or 8";
  int64_t perLoad = kCodeLoadBytes * 8 / bits;
  if (n <= 0 || k <= 0 || k % perLoad || groupSize <= 0 ||
      groupSize % perLoad || k % groupSize)
    return emitError(loc) << "k=" << k << " and group_size=" << groupSize
                          << " must be multiples of the " << perLoad
                          << " weights a 16-byte load covers (and the group "
                             "divide k)";
  if (o.fp8 && (bits != 8 || o.zeroPoint))
    return emitError(loc) << family
                          << ": fp8 e4m3 codes are 8 bits without zero points";
  return perLoad;
}
