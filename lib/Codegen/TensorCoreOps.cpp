//===- TensorCoreOps.cpp - mma.sync m16n8k16 pieces the kernels share -----===//

#include "TensorCoreOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace kiln::codegen;

static SmallVector<Value> packFragment(KernelBuilder &b, Value frag) {
  auto type = cast<VectorType>(frag.getType());
  SmallVector<Value> regs;
  for (int64_t i = 0; i < type.getDimSize(0); ++i) {
    Value pair = vector::ExtractOp::create(b, frag, ArrayRef<int64_t>{i});
    Value word = vector::BitCastOp::create(
        b, VectorType::get({1}, b.getI32Type()), pair);
    regs.push_back(vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
  }
  return regs;
}

Value kiln::codegen::mmaM16N8K16(KernelBuilder &b, Value a, Value bFrag,
                                 Value acc) {
  Type element = cast<VectorType>(a.getType()).getElementType();
  if (!element.isBF16())
    return nvgpu::MmaSyncOp::create(b, a, bFrag, acc,
                                    ArrayRef<int64_t>{16, 8, 16});
  Type f32 = b.getF32Type();
  SmallVector<Value> c;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j)
      c.push_back(vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j}));
  Type resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  Value d = NVVM::MmaOp::create(
      b, resultType, packFragment(b, a), packFragment(b, bFrag), c,
      ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, d, ArrayRef<int64_t>{i}));
  return vector::FromElementsOp::create(b, acc.getType(), out);
}

Value kiln::codegen::mmaSpM16N8K32(KernelBuilder &b, Value a, Value bFrag,
                                   Value acc, Value meta) {
  Type element = cast<VectorType>(a.getType()).getElementType();
  bool bf16 = element.isBF16();
  // bf16 fragments travel as i32 registers, f16 ones as vector<2xf16>.
  auto registers = [&](Value frag) {
    if (bf16)
      return packFragment(b, frag);
    SmallVector<Value> regs;
    for (int64_t i = 0; i < cast<VectorType>(frag.getType()).getDimSize(0); ++i)
      regs.push_back(vector::ExtractOp::create(b, frag, ArrayRef<int64_t>{i}));
    return regs;
  };
  Type f32 = b.getF32Type();
  SmallVector<Value> c;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j)
      c.push_back(vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j}));
  Type resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  NVVM::MMATypes type = bf16 ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  Value selector = arith::ConstantIntOp::create(b, b.getI32Type(), 0);
  auto op = NVVM::MmaSpOp::create(b, resultType, registers(a), registers(bFrag),
                                  c, meta, selector,
                                  ArrayRef<int64_t>{16, 8, 32}, std::nullopt,
                                  std::array<NVVM::MMATypes, 2>{type, type});
  // The plain form: mma.sp::ordered_metadata (which sm_90 prefers) needs
  // PTX ISA 8.5 and Kiln lowers for 8.0. Kiln's packer writes a group's two
  // kept positions in increasing order, which both forms accept.
  op.setOrderedMetadata(false);
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(
        LLVM::ExtractValueOp::create(b, op.getResult(), ArrayRef<int64_t>{i}));
  return vector::FromElementsOp::create(b, acc.getType(), out);
}

Value kiln::codegen::zeroAccumulator(KernelBuilder &b) {
  auto type = VectorType::get({2, 2}, b.getF32Type());
  return arith::ConstantOp::create(
      b, type, DenseElementsAttr::get(type, b.getF32FloatAttr(0.0f)));
}

static Type tileElement(Value tile) {
  return cast<MemRefType>(tile.getType()).getElementType();
}

static SmallVector<Value> withPrefix(ValueRange prefix, Value row, Value col) {
  SmallVector<Value> indices(prefix.begin(), prefix.end());
  indices.push_back(row);
  indices.push_back(col);
  return indices;
}

// ldmatrix.x4: lanes 0-15 address rows row0 + lane % 16 at column col0,
// lanes 16-31 the same rows at col0 + 8 (matrices a0..a3 in order).
Value kiln::codegen::loadAFragment(KernelBuilder &b, Value tile,
                                   ValueRange prefix, Value lane, Value row0,
                                   Value col0) {
  Value row = b.add(row0, b.remU(lane, 16));
  Value col = b.add(col0, b.mul(b.divU(lane, 16), 8));
  return nvgpu::LdMatrixOp::create(
      b, VectorType::get({4, 2}, tileElement(tile)), tile,
      withPrefix(prefix, row, col), /*transpose=*/false, /*numTiles=*/4);
}

// ldmatrix.x2: lanes 0-7 address n rows n0 + lane % 8 at K column k0,
// lanes 8-15 the same rows at k0 + 8 (lanes 16-31 repeat valid addresses).
Value kiln::codegen::loadBFragmentNK(KernelBuilder &b, Value tile,
                                     ValueRange prefix, Value lane, Value n0,
                                     Value k0) {
  Value row = b.add(n0, b.remU(lane, 8));
  Value col = b.add(k0, b.mul(b.remU(b.divU(lane, 8), 2), 8));
  return nvgpu::LdMatrixOp::create(
      b, VectorType::get({2, 2}, tileElement(tile)), tile,
      withPrefix(prefix, row, col), /*transpose=*/false, /*numTiles=*/2);
}

// ldmatrix.x4: lane group i = lane / 8 addresses n rows n0 + lane % 8 at K
// column k0 + 8 i, so register i holds K [k0 + 8 i, + 8) as mma.sp's B
// operand orders it.
Value kiln::codegen::loadBFragmentNK32(KernelBuilder &b, Value tile,
                                       ValueRange prefix, Value lane, Value n0,
                                       Value k0) {
  Value row = b.add(n0, b.remU(lane, 8));
  Value col = b.add(k0, b.mul(b.divU(lane, 8), 8));
  return nvgpu::LdMatrixOp::create(
      b, VectorType::get({4, 2}, tileElement(tile)), tile,
      withPrefix(prefix, row, col), /*transpose=*/false, /*numTiles=*/4);
}

// ldmatrix.x2.trans: lanes 0-15 address K rows k0 + lane % 16 at n column
// n0; the transpose hands each lane K rows 2 * (lane % 4) + {0, 1} of n
// column lane / 4, the B fragment's layout.
Value kiln::codegen::loadBFragmentKN(KernelBuilder &b, Value tile,
                                     ValueRange prefix, Value lane, Value k0,
                                     Value n0) {
  Value row = b.add(k0, b.remU(lane, 16));
  return nvgpu::LdMatrixOp::create(
      b, VectorType::get({2, 2}, tileElement(tile)), tile,
      withPrefix(prefix, row, n0), /*transpose=*/true, /*numTiles=*/2);
}
