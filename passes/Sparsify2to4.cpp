//===- Sparsify2to4.cpp - -llm-sparsify-2to4 ------------------------------===//
//
// 2:4 structured pruning of linear layers and gated MLPs: of every four
// consecutive input weights of an output channel two are kept, chosen by
// magnitude, Wanda's |w| * ||x|| or SparseGPT (kiln::quant), and stored
// compressed (kept values + 2-bit positions, the !llm.sparse24 layout of
// docs/Quantization.md) in the data file the ops are re-pointed at.
//
//===----------------------------------------------------------------------===//

#include "PackedWeights.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"
#include "kiln/Quant/Calibration.h"
#include "kiln/Quant/QuantMath.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>

namespace kiln::llm {
#define GEN_PASS_DEF_LLMSPARSIFY2TO4
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;
namespace q = kiln::quant;

namespace {

struct Sparsify2to4
    : public kiln::llm::impl::LLMSparsify2to4Base<Sparsify2to4> {
  using Base::Base;
  Sparsify2to4(const LLMSparsify2to4Options &options,
               std::shared_ptr<const q::CalibrationStats> stats)
      : Base(options), stats(std::move(stats)) {}

  void runOnOperation() override;

private:
  std::shared_ptr<const q::CalibrationStats> stats;
};

void Sparsify2to4::runOnOperation() {
  ModuleOp module = getOperation();
  if (method != "magnitude" && method != "wanda" && method != "sparsegpt") {
    module.emitError() << "method=" << StringRef(method)
                       << " is not supported (expected magnitude, wanda or "
                          "sparsegpt)";
    return signalPassFailure();
  }
  bool calibrated = method != "magnitude";
  if (calibrated && !stats) {
    module.emitError() << "method=" << StringRef(method)
                       << " needs calibration statistics (kiln-compile "
                          "--calibration-text FILE)";
    return signalPassFailure();
  }
  auto weights = collectMatrixWeights(module, skip);
  if (failed(weights))
    return signalPassFailure();
  for (MatrixWeight &w : *weights)
    if (w.k % 8 != 0) {
      w.op.emitError() << "2:4 sparsity needs input features that are a "
                          "multiple of 8 (two groups of four per metadata "
                          "byte), but '"
                       << w.op.getName() << "' has " << w.k;
      return signalPassFailure();
    }
  PackedDataWriter writer;
  if (failed(writer.open(module, dataFile, "llm-sparsify-2to4")))
    return signalPassFailure();

  if (module->hasAttr(kDummyWeightsAttr)) {
    // kiln-compile --dummy-weights: no values to prune (graph-only exports
    // benchmarked at scale); only the compressed types and byte ranges
    // matter, and the runtime draws values and valid metadata at load.
    if (calibrated) {
      module.emitError() << "method=" << StringRef(method)
                         << " reads the weights' values; dummy weights take "
                            "method=magnitude";
      return signalPassFailure();
    }
    llvm::StringMap<std::pair<Type, int64_t>> planned;
    int64_t offset = 0;
    for (MatrixWeight &w : *weights) {
      auto [it, fresh] = planned.try_emplace(w.op.getName());
      Type elem = cast<RankedTensorType>(w.op.getType()).getElementType();
      auto type = SparseWeightType::get(&getContext(), w.k, w.n, elem);
      if (fresh) {
        it->second = {type, offset};
        offset += (getSparseLayout(type).total + 63) / 64 * 64;
      }
      replaceWithPacked(w, type, writer.path(), it->second.second,
                        getSparseLayout(type).total);
    }
    return;
  }

  llvm::StringMap<std::pair<Type, std::pair<int64_t, int64_t>>> done;
  llvm::DenseMap<const q::InputStats *, std::vector<double>> factors;
  for (MatrixWeight &w : *weights) {
    StringRef name = w.op.getName();
    if (auto it = done.find(name); it != done.end()) {
      replaceWithPacked(w, it->second.first, writer.path(),
                        it->second.second.first, it->second.second.second);
      continue;
    }
    auto values = readMatrix(w);
    if (failed(values))
      return signalPassFailure();
    const q::InputStats *input = nullptr;
    if (calibrated) {
      auto it = stats->byWeight.find(name.str());
      if (it == stats->byWeight.end() || it->second->features != w.k) {
        w.op.emitError() << "method=" << StringRef(method)
                         << ": no calibration statistics for '" << name << "' ("
                         << w.k << " input features)";
        return signalPassFailure();
      }
      input = it->second.get();
    }
    q::SparseWeight sparse;
    if (method == "sparsegpt") {
      std::vector<double> &factor = factors[input];
      std::string error;
      if (factor.empty() &&
          !q::inverseHessianFactor(input->xxt, w.k, 0.01, factor, error)) {
        w.op.emitError() << "method=sparsegpt failed for '" << name
                         << "': " << error;
        return signalPassFailure();
      }
      sparse = q::prune24SparseGPT(*values, w.n, w.k, factor);
    } else {
      std::vector<float> score(values->size());
      for (int64_t r = 0; r < w.n; ++r)
        for (int64_t c = 0; c < w.k; ++c) {
          float norm =
              input ? std::sqrt(static_cast<float>(input->xxt[c * w.k + c]))
                    : 1.0f;
          score[r * w.k + c] = std::fabs((*values)[r * w.k + c]) * norm;
        }
      sparse = q::prune24(*values, w.n, w.k, score);
    }

    Type elem = cast<RankedTensorType>(w.op.getType()).getElementType();
    auto type = SparseWeightType::get(&getContext(), w.k, w.n, elem);
    SparseLayout layout = getSparseLayout(type);
    std::vector<uint8_t> bytes(layout.total, 0);
    int64_t width = elem.getIntOrFloatBitWidth() / 8;
    for (size_t i = 0; i < sparse.values.size(); ++i) {
      bool lost = false;
      APFloat v(sparse.values[i]);
      v.convert(cast<FloatType>(elem).getFloatSemantics(),
                APFloat::rmNearestTiesToEven, &lost);
      uint64_t raw = v.bitcastToAPInt().getZExtValue();
      std::memcpy(bytes.data() + layout.values.offset + i * width, &raw, width);
    }
    std::copy(sparse.meta.begin(), sparse.meta.end(),
              bytes.begin() + layout.meta.offset);
    auto offset = writer.append(w.op, bytes);
    if (failed(offset))
      return signalPassFailure();
    done[name] = {type, {*offset, layout.total}};
    replaceWithPacked(w, type, writer.path(), *offset, layout.total);
  }
}

} // namespace

std::unique_ptr<Pass> kiln::llm::createLLMSparsify2to4(
    const LLMSparsify2to4Options &options,
    std::shared_ptr<const q::CalibrationStats> stats) {
  return std::make_unique<Sparsify2to4>(options, std::move(stats));
}
