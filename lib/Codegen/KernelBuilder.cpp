//===- KernelBuilder.cpp - Shared pieces of Kiln's kernel generators ------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace kiln::codegen;

int64_t kiln::codegen::pickVectorWidth(int64_t extent, KernelDType dtype) {
  int64_t width = kVectorBytes / getElementBytes(dtype);
  while (width > 1 && extent % width != 0)
    width /= 2;
  return width;
}

//===----------------------------------------------------------------------===//
// Kernel skeleton and constants
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp
KernelBuilder::createKernel(gpu::GPUModuleOp module, StringRef name,
                            ArrayRef<Type> argTypes, ArrayRef<ArgAccess> access,
                            int64_t blockSize, ArrayRef<Type> workgroupTypes) {
  Block *body = module.getBody();
  if (body->mightHaveTerminator())
    setInsertionPoint(body->getTerminator());
  else
    setInsertionPointToEnd(body);

  auto type = getFunctionType(argTypes, {});
  auto func = gpu::GPUFuncOp::create(*this, name, type, workgroupTypes);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), getUnitAttr());
  // .reqntid rather than known_block_size's .maxntid: the reductions size
  // their scratch by the block, so a smaller block must fail to launch.
  func->setAttr("nvvm.reqntid",
                getDenseI32ArrayAttr({static_cast<int32_t>(blockSize), 1, 1}));
  for (auto [i, use] : llvm::enumerate(access)) {
    func.setArgAttr(i, LLVM::LLVMDialect::getNoAliasAttrName(), getUnitAttr());
    if (use != ArgAccess::ReadWrite)
      func.setArgAttr(i,
                      use == ArgAccess::ReadOnly
                          ? LLVM::LLVMDialect::getReadonlyAttrName()
                          : LLVM::LLVMDialect::getWriteOnlyAttrName(),
                      getUnitAttr());
  }
  setInsertionPointToStart(&func.getBody().front());
  return func;
}

Value KernelBuilder::index(int64_t value) {
  return arith::ConstantIndexOp::create(*this, value);
}

Value KernelBuilder::f32(double value) {
  return arith::ConstantFloatOp::create(*this, getF32Type(),
                                        APFloat(static_cast<float>(value)));
}

Value KernelBuilder::f32Splat(double value, int64_t width) {
  auto type = VectorType::get({width}, getF32Type());
  return arith::ConstantOp::create(
      *this, type,
      DenseElementsAttr::get(
          type, getF32FloatAttr(static_cast<float>(value)).getValue()));
}

Value KernelBuilder::threadIdX() {
  return gpu::ThreadIdOp::create(*this, gpu::Dimension::x);
}

Value KernelBuilder::blockIdX() {
  return gpu::BlockIdOp::create(*this, gpu::Dimension::x);
}

Value KernelBuilder::blockIdY() {
  return gpu::BlockIdOp::create(*this, gpu::Dimension::y);
}

Value KernelBuilder::blockIdZ() {
  return gpu::BlockIdOp::create(*this, gpu::Dimension::z);
}

Value KernelBuilder::add(Value a, Value b) {
  return arith::AddIOp::create(*this, a, b);
}
Value KernelBuilder::sub(Value a, Value b) {
  return arith::SubIOp::create(*this, a, b);
}
Value KernelBuilder::mul(Value a, Value b) {
  return arith::MulIOp::create(*this, a, b);
}
Value KernelBuilder::divU(Value a, int64_t b) {
  return arith::DivUIOp::create(*this, a, index(b));
}
Value KernelBuilder::remU(Value a, int64_t b) {
  return arith::RemUIOp::create(*this, a, index(b));
}
Value KernelBuilder::minS(Value a, Value b) {
  return arith::MinSIOp::create(*this, a, b);
}
Value KernelBuilder::maxS(Value a, Value b) {
  return arith::MaxSIOp::create(*this, a, b);
}
Value KernelBuilder::cmp(arith::CmpIPredicate predicate, Value a, Value b) {
  return arith::CmpIOp::create(*this, predicate, a, b);
}
Value KernelBuilder::andI(Value a, Value b) {
  return arith::AndIOp::create(*this, a, b);
}

Value KernelBuilder::loadIndex(Value memref, ValueRange indices) {
  // With its natural alignment: NVPTX otherwise splits an i64 load of a
  // bare pointer into two 32-bit loads.
  Type elementType = cast<MemRefType>(memref.getType()).getElementType();
  Value loaded = memref::LoadOp::create(
      *this, memref, indices, /*nontemporal=*/false,
      llvm::MaybeAlign(elementType.getIntOrFloatBitWidth() / 8));
  return arith::IndexCastOp::create(*this, getIndexType(), loaded);
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

/// Alignment of a `width`-element access at an index that is a multiple of
/// `width` into a buffer aligned to at least 16 bytes (cuMemAlloc gives 256).
static llvm::MaybeAlign accessAlignment(Type elementType, int64_t width) {
  return llvm::MaybeAlign(width * elementType.getIntOrFloatBitWidth() / 8);
}

Value KernelBuilder::loadF32(Value memref, ValueRange indices, int64_t width) {
  Type elementType = cast<MemRefType>(memref.getType()).getElementType();
  auto vectorType = VectorType::get({width}, elementType);
  Value loaded = vector::LoadOp::create(*this, vectorType, memref, indices,
                                        /*nontemporal=*/false,
                                        accessAlignment(elementType, width));
  if (elementType.isF32())
    return loaded;
  // Spelled out: the overload without fastmath takes a TypeRange, which
  // would point at a temporary Type.
  return arith::ExtFOp::create(*this, VectorType::get({width}, getF32Type()),
                               loaded, arith::FastMathFlagsAttr());
}

void KernelBuilder::storeFromF32(Value value, Value memref,
                                 ValueRange indices) {
  Type elementType = cast<MemRefType>(memref.getType()).getElementType();
  int64_t width = cast<VectorType>(value.getType()).getNumElements();
  Value narrowed =
      elementType.isF32()
          ? value
          : arith::TruncFOp::create(
                *this, VectorType::get({width}, elementType), value)
                .getResult();
  vector::StoreOp::create(*this, narrowed, memref, indices,
                          /*nontemporal=*/false,
                          accessAlignment(elementType, width));
}

Value KernelBuilder::loadVector(Value memref, ValueRange indices, int64_t width,
                                int64_t alignBytes) {
  Type elementType = cast<MemRefType>(memref.getType()).getElementType();
  return vector::LoadOp::create(
      *this, VectorType::get({width}, elementType), memref, indices,
      /*nontemporal=*/false,
      alignBytes ? llvm::MaybeAlign(alignBytes)
                 : accessAlignment(elementType, width));
}

void KernelBuilder::storeVector(Value value, Value memref, ValueRange indices,
                                int64_t alignBytes) {
  Type elementType = cast<MemRefType>(memref.getType()).getElementType();
  int64_t width = cast<VectorType>(value.getType()).getNumElements();
  vector::StoreOp::create(*this, value, memref, indices,
                          /*nontemporal=*/false,
                          alignBytes ? llvm::MaybeAlign(alignBytes)
                                     : accessAlignment(elementType, width));
}

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

SmallVector<Value> KernelBuilder::walkLaneVectors(Value lane, int64_t count,
                                                  int64_t unroll,
                                                  SmallVector<Value> accs,
                                                  const LaneStep &step) {
  int64_t fullSteps = count / kWarpSize;
  int64_t tailLanes = count % kWarpSize;
  auto vectorsFrom = [&](Value base, int64_t steps) {
    SmallVector<Value> vectors;
    for (int64_t s = 0; s < steps; ++s)
      vectors.push_back(add(base, s * kWarpSize));
    return vectors;
  };
  int64_t chunks = fullSteps > unroll ? fullSteps / unroll : 0;
  int64_t done = 0;
  if (chunks > 0) {
    int64_t chunkVectors = unroll * kWarpSize;
    auto loop = scf::ForOp::create(
        *this, index(0), index(chunks * chunkVectors), index(chunkVectors),
        accs, [&](OpBuilder &, Location, Value offset, ValueRange carried) {
          scf::YieldOp::create(
              *this, step(vectorsFrom(add(lane, offset), unroll),
                          SmallVector<Value>(carried.begin(), carried.end())));
        });
    accs.assign(loop.getResults().begin(), loop.getResults().end());
    done = chunks * unroll;
  }
  if (fullSteps > done)
    accs =
        step(vectorsFrom(add(lane, done * kWarpSize), fullSteps - done), accs);
  if (tailLanes > 0) {
    SmallVector<Type> types;
    for (Value acc : accs)
      types.push_back(acc.getType());
    auto ifOp = scf::IfOp::create(
        *this, types, cmp(arith::CmpIPredicate::ult, lane, index(tailLanes)),
        /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(*this);
      setInsertionPointToStart(&ifOp.getThenRegion().front());
      scf::YieldOp::create(
          *this, step(vectorsFrom(add(lane, fullSteps * kWarpSize), 1), accs));
      setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(*this, accs);
    }
    accs.assign(ifOp.getResults().begin(), ifOp.getResults().end());
  }
  return accs;
}

void KernelBuilder::ifThen(Value cond, const std::function<void()> &then) {
  auto ifOp = scf::IfOp::create(*this, TypeRange{}, cond,
                                /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(*this);
  setInsertionPointToStart(ifOp.thenBlock());
  then();
}

Value KernelBuilder::ifElse(Value cond, const std::function<Value()> &then,
                            const std::function<Value()> &otherwise) {
  // The region builders run on this builder, positioned in the new blocks;
  // scf.if infers its result type from the yields.
  auto yieldOf = [this](const std::function<Value()> &fn) {
    return [this, &fn](OpBuilder &, Location) {
      Value value = fn();
      scf::YieldOp::create(*this, value);
    };
  };
  auto ifOp = scf::IfOp::create(*this, cond, yieldOf(then), yieldOf(otherwise));
  return ifOp.getResult(0);
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

Value KernelBuilder::shuffleXor(Value value, int64_t offset) {
  return gpu::ShuffleOp::create(*this, value, offset, kWarpSize,
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

Value KernelBuilder::warpReduce(Value value, int64_t lanes,
                                const std::function<Value(Value, Value)> &fn) {
  for (int64_t offset = lanes / 2; offset >= 1; offset /= 2)
    value = fn(value, shuffleXor(value, offset));
  return value;
}

Value KernelBuilder::warpSum(Value value, int64_t lanes) {
  return warpReduce(value, lanes, [&](Value a, Value b) {
    return arith::AddFOp::create(*this, a, b).getResult();
  });
}

Value KernelBuilder::blockSum(Value value, Value threadId, int64_t numWarps,
                              Value scratch) {
  value = warpSum(value);
  if (numWarps == 1)
    return value;
  Value warpSize = index(kWarpSize);
  Value lane = arith::RemUIOp::create(*this, threadId, warpSize);
  Value warp = arith::DivUIOp::create(*this, threadId, warpSize);
  Value isLeader =
      arith::CmpIOp::create(*this, arith::CmpIPredicate::eq, lane, index(0));
  ifThen(isLeader,
         [&] { memref::StoreOp::create(*this, value, scratch, warp); });
  gpu::BarrierOp::create(*this);
  // Every group of `group` lanes (a power of two >= numWarps) reads all the
  // per-warp sums, zeros past numWarps, so that the butterfly within the
  // group leaves the total in every lane of every warp with no second
  // barrier.
  int64_t group = static_cast<int64_t>(llvm::PowerOf2Ceil(numWarps));
  Value groupLane = arith::RemUIOp::create(*this, lane, index(group));
  Value slot = arith::MinUIOp::create(*this, groupLane, index(numWarps - 1));
  Value partial = memref::LoadOp::create(*this, scratch, slot);
  Value inRange = arith::CmpIOp::create(*this, arith::CmpIPredicate::ult,
                                        groupLane, index(numWarps));
  partial = arith::SelectOp::create(*this, inRange, partial, f32(0.0));
  return warpSum(partial, group);
}

//===----------------------------------------------------------------------===//
// Math
//===----------------------------------------------------------------------===//

Value KernelBuilder::mapElements(Value vector,
                                 const std::function<Value(Value)> &fn) {
  auto type = cast<VectorType>(vector.getType());
  SmallVector<Value> results;
  for (int64_t i = 0, e = type.getNumElements(); i < e; ++i)
    results.push_back(fn(vector::ExtractOp::create(*this, vector, i)));
  return vector::FromElementsOp::create(*this, type, results);
}

/// Calls an NVPTX intrinsic on one f32. These stay LLVM intrinsics through
/// the lowering, where math.rsqrt / math.exp2 would become libdevice calls
/// that need CUDA's libdevice.10.bc at compile time.
static Value callF32Intrinsic(KernelBuilder &b, StringRef name, Value x) {
  return LLVM::CallIntrinsicOp::create(b, b.getF32Type(), b.getStringAttr(name),
                                       ValueRange{x})
      ->getResult(0);
}

Value KernelBuilder::rsqrtApprox(Value scalar) {
  return callF32Intrinsic(*this, "llvm.nvvm.rsqrt.approx.f", scalar);
}

KernelBuilder::ClampedRows KernelBuilder::clampedRows(Value base, int64_t count,
                                                      Value last) {
  ClampedRows out;
  for (int64_t i = 0; i < count; ++i) {
    Value row = add(base, i);
    out.rows.push_back(row);
    out.loadRows.push_back(
        last ? arith::MinUIOp::create(*this, row, last).getResult() : row);
  }
  return out;
}

Value KernelBuilder::stepRows(Value step) {
  return arith::IndexCastOp::create(
      *this, getIndexType(),
      memref::LoadOp::create(*this, step, ValueRange{index(0)}));
}

KernelBuilder::TokenChunk KernelBuilder::tokenChunk(Value step, int64_t count) {
  TokenChunk chunk;
  chunk.numRows = stepRows(step);
  static_cast<ClampedRows &>(chunk) =
      clampedRows(mul(blockIdY(), count), count, sub(chunk.numRows, index(1)));
  return chunk;
}

Value KernelBuilder::siluMul(Value a, Value bv) {
  auto vector = dyn_cast<VectorType>(a.getType());
  auto splat = [&](double v) {
    return vector ? f32Splat(v, vector.getNumElements()) : f32(v);
  };
  Value scaled = arith::MulFOp::create(*this, a, splat(-llvm::numbers::log2e));
  Value exp = vector
                  ? mapElements(scaled, [&](Value e) { return exp2Approx(e); })
                  : exp2Approx(scaled);
  Value denominator = arith::AddFOp::create(*this, exp, splat(1.0));
  Value product = arith::MulFOp::create(*this, a, bv);
  return arith::DivFOp::create(*this, product, denominator);
}

Value KernelBuilder::exp2Approx(Value scalar) {
  return callF32Intrinsic(*this, "llvm.nvvm.ex2.approx.f32", scalar);
}

Value KernelBuilder::cosApprox(Value scalar) {
  return callF32Intrinsic(*this, "llvm.nvvm.cos.approx.f", scalar);
}

Value KernelBuilder::sinApprox(Value scalar) {
  return callF32Intrinsic(*this, "llvm.nvvm.sin.approx.f", scalar);
}

Value KernelBuilder::tanhApprox(Value scalar) {
  // LLVM 20+ has no llvm.nvvm.tanh.approx.f32; NVPTX selects tanh.approx.f32
  // for llvm.tanh.f32 with the afn flag (sm_75+, PTX 7.0+).
  return LLVM::CallIntrinsicOp::create(
             *this, TypeRange{getF32Type()}, getStringAttr("llvm.tanh.f32"),
             ValueRange{scalar},
             LLVM::FastmathFlagsAttr::get(getContext(),
                                          LLVM::FastmathFlags::afn))
      ->getResult(0);
}

void KernelBuilder::fenceGpu() {
  LLVM::CallIntrinsicOp::create(*this, getStringAttr("llvm.nvvm.membar.gl"),
                                ValueRange{});
}

void KernelBuilder::prefetchL2(Value memref, Value linearIndex) {
  auto type = cast<MemRefType>(memref.getType());
  int64_t elementBytes = type.getElementTypeBitWidth() / 8;
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(*this, memref);
  Value address = add(base, mul(linearIndex, elementBytes));
  Value address64 = arith::IndexCastUIOp::create(*this, getI64Type(), address);
  Value pointer = LLVM::IntToPtrOp::create(
      *this, LLVM::LLVMPointerType::get(getContext(), /*addressSpace=*/1),
      address64);
  NVVM::PrefetchOp::create(*this,
                           NVVM::PrefetchCacheLevelAttr::get(
                               getContext(), NVVM::PrefetchCacheLevel::L2),
                           /*evictPriority=*/nullptr, pointer,
                           /*predicate=*/Value());
}

Value KernelBuilder::pinI32(Value value) {
  return LLVM::InlineAsmOp::create(
             *this, getI32Type(), ValueRange{value}, "mov.b32 $0, $1;", "=r,r",
             /*has_side_effects=*/false,
             /*is_align_stack=*/false, LLVM::TailCallKind::None,
             LLVM::AsmDialectAttr(), ArrayAttr())
      .getResult(0);
}

void KernelBuilder::waitForPriorGrids() {
  NVVM::GriddepcontrolOp::create(*this, NVVM::GridDepActionKind::wait);
  NVVM::GriddepcontrolOp::create(*this,
                                 NVVM::GridDepActionKind::launch_dependents);
}
