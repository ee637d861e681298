//===- EmbeddingKernel.cpp - Embedding (row gather) generator -------------===//
//
// One CTA per token reads the token's id once; its threads copy 128-bit
// vectors of the table row to the output row (no conversion). An id out of
// range selects zeros instead of a load (the row index is clamped to 0 so
// that the load stays in bounds).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/EmbeddingKernel.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace kiln::codegen;

/// Threads per CTA at most; a longer row loops.
static constexpr int64_t kMaxThreads = 256;

FailureOr<KernelSpec>
kiln::codegen::buildEmbeddingKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                                    const EmbeddingOptions &options) {
  MLIRContext *context = builder.getContext();
  std::string name =
      llvm::formatv("embedding_{0}_v{1}_h{2}", stringifyDType(options.dtype),
                    options.vocab, options.hidden);
  Location loc = NameLoc::get(StringAttr::get(context, name));

  if (options.dtype != KernelDType::F16 && options.dtype != KernelDType::BF16)
    return emitError(loc) << "embedding gathers f16 or bf16 rows";
  if (options.numTokens <= 0 || options.vocab <= 0 || options.hidden <= 0)
    return emitError(loc) << "embedding needs tokens, vocab and hidden > 0, "
                             "got tokens="
                          << options.numTokens << " vocab=" << options.vocab
                          << " hidden=" << options.hidden;
  if (options.numTokens > 2147483647)
    return emitError(loc) << "tokens=" << options.numTokens
                          << " exceeds the grid's x dimension";

  int64_t width = pickVectorWidth(options.hidden, options.dtype);
  int64_t vectorsPerRow = options.hidden / width;
  int64_t threads = std::min(kMaxThreads, roundUp(vectorsPerRow, kWarpSize));
  int64_t steps = ceilDiv(vectorsPerRow, threads);

  KernelBuilder b(loc, builder);
  Type elementType = getElementType(context, options.dtype);
  auto tableType =
      MemRefType::get({options.vocab, options.hidden}, elementType);
  auto idsType = MemRefType::get({options.numTokens}, b.getI64Type());
  auto outType =
      MemRefType::get({options.numTokens, options.hidden}, elementType);
  gpu::GPUFuncOp func = b.createKernel(
      module, name, {tableType, idsType, outType},
      {ArgAccess::ReadOnly, ArgAccess::ReadOnly, ArgAccess::WriteOnly},
      threads);
  Value table = func.getArgument(0), ids = func.getArgument(1),
        out = func.getArgument(2);

  Value token = b.blockIdX();
  Value tid = b.threadIdX();
  Value id = b.loadIndex(ids, {token});
  // -V <= id < 0 counts from the end; anything else outside [0, V) gives a
  // negative or too large row, which the unsigned compare rejects.
  Value row = arith::SelectOp::create(b, b.cmp(arith::CmpIPredicate::slt, id, 0),
                                      b.add(id, options.vocab), id);
  Value valid = b.cmp(arith::CmpIPredicate::ult, row, options.vocab);
  Value safeRow = arith::SelectOp::create(b, valid, row, b.index(0));
  auto vectorType = VectorType::get({width}, elementType);
  Value zeros = arith::ConstantOp::create(
      b, vectorType,
      DenseElementsAttr::get(vectorType, b.getZeroAttr(elementType)));
  for (int64_t s = 0; s < steps; ++s) {
    Value vector = b.add(tid, s * threads);
    auto copy = [&] {
      Value column = b.mul(vector, width);
      Value v = b.loadVector(table, {safeRow, column}, width);
      v = arith::SelectOp::create(b, valid, v, zeros);
      b.storeVector(v, out, {token, column});
    };
    if ((s + 1) * threads > vectorsPerRow)
      b.ifThen(b.cmp(arith::CmpIPredicate::ult, vector, vectorsPerRow), copy);
    else
      copy();
  }
  gpu::ReturnOp::create(b);

  KernelSpec spec;
  spec.family = "embedding";
  spec.name = name;
  spec.grid = {options.numTokens, 1, 1};
  spec.block = {threads, 1, 1};
  spec.addParam("dtype", stringifyDType(options.dtype));
  spec.addParam("tokens", options.numTokens);
  spec.addParam("vocab", options.vocab);
  spec.addParam("hidden", options.hidden);
  spec.addParam("vec", width);
  spec.args = {{"table", options.dtype, {options.vocab, options.hidden}, false},
               {"ids", KernelDType::I64, {options.numTokens}, false},
               {"out",
                options.dtype,
                {options.numTokens, options.hidden},
                true}};
  return spec;
}
