//===- QuantDecode.h - Packed low-bit codes to fp32 ----------*- C++ -*-===//
//
// Private to lib/Codegen. The decode of 16 bytes of packed codes that the
// quantized GEMV and the dequantize kernel share (so both compute the same
// weights): the load is 4 little-endian words; code i of word j (i <
// 32 / bits) is weight (32 / bits) * j + i. Each code becomes an exact fp32
// without an int-to-float conversion (a quarter-rate instruction): (word >>
// bits * i) & mask | 0x4B000000 is the float 2^23 + u, and subtracting
// 2^23 + z leaves u - z.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_QUANTDECODE_H
#define KILN_LIB_CODEGEN_QUANTDECODE_H

#include "KernelBuilder.h"
#include "kiln/Codegen/QuantGemvKernel.h"

namespace kiln {
namespace codegen {

/// Bytes of codes one 16-byte load (one decodeCodes call) covers.
constexpr int64_t kCodeLoadBytes = 16;

/// Checks what a packed layout must be for the decode (`family` names the
/// kernel in the errors): f16/bf16 activations, f16/bf16/f32 scales, 4 or 8
/// bits, k and the group size multiples of the weights one load covers, the
/// group dividing k, and fp8 codes 8 bits without zero points. Returns the
/// weights per load.
mlir::FailureOr<int64_t> checkPackedLayout(mlir::Location loc,
                                           llvm::StringRef family,
                                           const QuantGemvOptions &o);

/// 2^23: the float whose mantissa holds a code.
constexpr float kCodeMagic = 8388608.0f;

/// The fp32 offset to subtract from 2^23 + u: 2^23 + z for a zero point
/// `zero` (an f32 value), else 2^23 + 2^(bits-1) (symmetric).
mlir::Value codeOffset(KernelBuilder &b, mlir::Value zero, int64_t bits);

/// u - z of the codes in `codes` (vector<16xi8>): 32 / bits vectors of 4
/// f32, vector i holding code position i of the 4 words (weights
/// (32 / bits) * j + i for j = 0..3).
llvm::SmallVector<mlir::Value> decodeCodes(KernelBuilder &b, mlir::Value codes,
                                           mlir::Value offset, int64_t bits);

/// What fp8 values decodeFp8Codes returns must be multiplied by.
constexpr float kFp8DecodeScale = 256.0f;

/// The fp8 e4m3 bytes of `codes` (vector<16xi8>), laid out as decodeCodes'
/// 8-bit result, each divided by kFp8DecodeScale: byte b becomes the f16
/// bit pattern (b & 0x7f) << 7 | (b & 0x80) << 8 -- e4m3's exponent and
/// mantissa in f16's fields, whose exponent bias is 8 larger, so normals
/// and subnormals alike come out exactly 2^-8 times their value -- and is
/// widened to fp32 (exact). Code 0x7f (NaN, which the quantizer writes only
/// for a NaN weight) reads as 480.
llvm::SmallVector<mlir::Value> decodeFp8Codes(KernelBuilder &b,
                                              mlir::Value codes);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_QUANTDECODE_H
