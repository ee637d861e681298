//===- TensorCoreOps.h - Shared mma.sync m16n8k16 pieces ----*- C++ -*-===//
//
// Private to lib/Codegen. The warp-level tensor-core operations of the GEMM
// and flash-attention kernels: one m16n8k16 mma with fp32 accumulators on
// f16 or bf16 fragments, and ldmatrix loads of A and B fragments from
// workgroup tiles. Fragments are the nvgpu dialect's vector shapes: A
// vector<4x2xT> (a0..a3: rows 0-7 | 8-15 x K 0-7, then rows 0-7 | 8-15 x K
// 8-15), B vector<2x2xT> (K 0-7, K 8-15 of one n column per lane group),
// C vector<2x2xf32> (row lane/4 and lane/4 + 8, columns 2 * (lane % 4) +
// {0, 1}).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_CODEGEN_TENSORCOREOPS_H
#define KILN_LIB_CODEGEN_TENSORCOREOPS_H

#include "KernelBuilder.h"

namespace kiln {
namespace codegen {

/// acc + a * b on the tensor cores (mma.sync.m16n8k16.row.col.f32). f16
/// goes through nvgpu.mma.sync; bf16 (which it cannot type) through
/// nvvm.mma.sync on the fragments packed into i32 registers.
mlir::Value mmaM16N8K16(KernelBuilder &b, mlir::Value a, mlir::Value bFrag,
                        mlir::Value acc);

/// acc + sparse(a, meta) * b (mma.sp.sync.m16n8k32 with
/// fp32 accumulators): `a` is the compressed 16 x 16 half of a 2:4 sparse
/// 16 x 32 A in the dense A fragment layout (vector<4x2xT>), `bFrag` the
/// 32 x 8 B as vector<4x2xT> (K 0-7, 8-15, 16-23, 24-31 of one n column per
/// lane group: two m16n8k16 B fragments), `meta` the i32 of 2-bit kept
/// positions: lanes with lane % 4 == 0 give K 0-15 and lanes with
/// lane % 4 == 1 K 16-31, of row lane / 4 in the low 16 bits and of row
/// lane / 4 + 8 in the high 16 (sparsity selector 0).
mlir::Value mmaSpM16N8K32(KernelBuilder &b, mlir::Value a, mlir::Value bFrag,
                          mlir::Value acc, mlir::Value meta);

/// A zero accumulator fragment (vector<2x2xf32>).
mlir::Value zeroAccumulator(KernelBuilder &b);

/// The A fragment of rows [row0, row0 + 16) and K columns [col0, col0 + 16)
/// of the row-major workgroup tile `tile` (ldmatrix.x4); `prefix` indexes
/// the leading dimensions (a pipeline stage).
mlir::Value loadAFragment(KernelBuilder &b, mlir::Value tile,
                          mlir::ValueRange prefix, mlir::Value lane,
                          mlir::Value row0, mlir::Value col0);

/// The B fragment of n columns [n0, n0 + 8) and K rows [k0, k0 + 16) from
/// a tile stored n-major ([n][k], e.g. W or K of attention): ldmatrix.x2.
mlir::Value loadBFragmentNK(KernelBuilder &b, mlir::Value tile,
                            mlir::ValueRange prefix, mlir::Value lane,
                            mlir::Value n0, mlir::Value k0);

/// The m16n8k32 B fragment (mma.sp's): n columns [n0, n0 + 8) and K rows
/// [k0, k0 + 32) from an n-major tile in one ldmatrix.x4, vector<4x2>.
mlir::Value loadBFragmentNK32(KernelBuilder &b, mlir::Value tile,
                              mlir::ValueRange prefix, mlir::Value lane,
                              mlir::Value n0, mlir::Value k0);

/// The same fragment from a tile stored k-major ([k][n], e.g. V of
/// attention): ldmatrix.x2.trans.
mlir::Value loadBFragmentKN(KernelBuilder &b, mlir::Value tile,
                            mlir::ValueRange prefix, mlir::Value lane,
                            mlir::Value k0, mlir::Value n0);

} // namespace codegen
} // namespace kiln

#endif // KILN_LIB_CODEGEN_TENSORCOREOPS_H
