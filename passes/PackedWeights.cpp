//===- PackedWeights.cpp - What weight-packing passes share ---------------===//

#include "PackedWeights.h"
#include "RaiseUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

using namespace mlir;
using namespace kiln::llm;

/// True when `op`'s result reaches a func.return through casts and
/// reshapes only: the output projection (LM head), whatever its weight is
/// named (exporters often name it val_N).
static bool feedsReturn(Operation *op) {
  for (Operation *user : op->getUsers()) {
    if (isa<func::ReturnOp>(user))
      return true;
    if (isa<CastOp, ReshapeOp>(user) && feedsReturn(user))
      return true;
  }
  return false;
}

FailureOr<std::vector<MatrixWeight>>
kiln::llm::collectMatrixWeights(ModuleOp module, ArrayRef<std::string> skip) {
  bool skipHead = llvm::is_contained(skip, "lm_head");
  std::vector<MatrixWeight> weights;
  llvm::DenseMap<Operation *, size_t> index;
  bool failedAny = false;
  auto note = [&](Operation *user, unsigned operand, bool transposed) {
    auto weight = user->getOperand(operand).getDefiningOp<WeightOp>();
    auto type = weight ? dyn_cast<RankedTensorType>(weight.getType())
                       : RankedTensorType();
    if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
        !isa<FloatType>(type.getElementType()))
      return;
    StringRef name = weight.getName();
    if (skipHead && feedsReturn(user))
      return;
    for (const std::string &s : skip)
      if (!s.empty() && name.contains(s))
        return;
    auto [it, inserted] = index.try_emplace(weight, weights.size());
    if (inserted) {
      MatrixWeight w;
      w.op = weight;
      w.transposed = transposed;
      w.k = type.getDimSize(transposed ? 1 : 0);
      w.n = type.getDimSize(transposed ? 0 : 1);
      weights.push_back(w);
    }
    MatrixWeight &w = weights[it->second];
    if (w.transposed != transposed) {
      weight.emitError() << "weight '" << name
                         << "' is read both as [K, N] and as [N, K]";
      failedAny = true;
    }
    w.uses.push_back({user, operand});
  };
  module.walk([&](Operation *op) {
    if (auto linear = dyn_cast<LinearOp>(op))
      note(op, 1, linear.getTransposeWeight());
    else if (auto mlp = dyn_cast<GatedMLPOp>(op))
      for (unsigned i = 1; i <= 3; ++i)
        note(op, i, mlp.getTransposeWeights());
  });
  if (failedAny)
    return failure();
  return weights;
}

FailureOr<std::vector<float>> kiln::llm::readMatrix(const MatrixWeight &w) {
  SmallVector<float> values;
  std::string why;
  WeightOp op = w.op;
  if (failed(readWeightFloats(op, values, why))) {
    op.emitError() << "cannot read weight '" << op.getName() << "': " << why;
    return failure();
  }
  std::vector<float> nk(w.n * w.k);
  for (int64_t r = 0; r < w.n; ++r)
    for (int64_t c = 0; c < w.k; ++c)
      nk[r * w.k + c] =
          w.transposed ? values[r * w.k + c] : values[c * w.n + r];
  return nk;
}

LogicalResult PackedDataWriter::open(ModuleOp module, StringRef path,
                                     StringRef option) {
  if (path.empty())
    return module.emitError()
           << option << ": no data-file given for the packed weights";
  auto resolved = resolveModelPath(module, path);
  if (!resolved)
    return module.emitError() << option << ": data-file '" << path
                              << "' is relative and the module has no "
                                 "llm.model_dir";
  given = path.str();
  this->resolved = *resolved;
  out.open(this->resolved, std::ios::binary | std::ios::trunc);
  if (!out)
    return module.emitError()
           << option << ": cannot write data-file '" << this->resolved << "'";
  return success();
}

FailureOr<int64_t> PackedDataWriter::append(Operation *at,
                                            const std::vector<uint8_t> &bytes) {
  int64_t offset = (size + 63) / 64 * 64;
  static const char zeros[64] = {};
  out.write(zeros, offset - size);
  out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  out.flush();
  if (!out)
    return at->emitError() << "cannot write data-file '" << resolved << "'";
  size = offset + bytes.size();
  return offset;
}

void kiln::llm::replaceWithPacked(MatrixWeight &w, Type type, StringRef path,
                                  int64_t offset, int64_t length) {
  OpBuilder b(w.op);
  auto source = ExternalDataAttr::get(b.getContext(), path, offset, length);
  auto packed =
      WeightOp::create(b, w.op.getLoc(), type, w.op.getNameAttr(), source);
  for (auto [user, operand] : w.uses)
    user->setOperand(operand, packed.getResult());
  if (w.op.use_empty())
    w.op.erase();
}

float kiln::llm::roundToType(float f, Type type) {
  auto fl = dyn_cast<FloatType>(type);
  if (!fl || fl.isF32())
    return f;
  bool lost = false;
  APFloat v(f);
  v.convert(fl.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
  v.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
  return v.convertToFloat();
}

std::vector<uint8_t> kiln::llm::encodeFloats(const std::vector<float> &values,
                                             Type type) {
  auto fl = cast<FloatType>(type);
  int64_t width = fl.getWidth() / 8;
  std::vector<uint8_t> bytes(values.size() * width);
  for (size_t i = 0; i < values.size(); ++i) {
    bool lost = false;
    APFloat v(values[i]);
    v.convert(fl.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
    uint64_t raw = v.bitcastToAPInt().getZExtValue();
    std::memcpy(bytes.data() + i * width, &raw, width);
  }
  return bytes;
}
