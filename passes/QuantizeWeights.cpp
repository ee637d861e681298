//===- QuantizeWeights.cpp - -llm-quantize-weights ------------------------===//
//
// Weight-only quantization of linear layers and gated MLPs. The numerics
// (round to nearest, GPTQ, fp8 encoding) are kiln::quant's; this pass
// checks that the kernels can serve the requested combination, reads each
// weight, packs it in the !llm.qweight layout (packed codes, scales, zero
// points; docs/Quantization.md) into the data file and re-points the ops.
// Calibration statistics come from the driver (kiln-compile
// --calibration-text) through createLLMQuantizeWeights(options, stats).
//
//===----------------------------------------------------------------------===//

#include "PackedWeights.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"
#include "kiln/Quant/Calibration.h"
#include "kiln/Quant/QuantMath.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

namespace kiln::llm {
#define GEN_PASS_DEF_LLMQUANTIZEWEIGHTS
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"
} // namespace kiln::llm

using namespace mlir;
using namespace kiln::llm;
namespace q = kiln::quant;

namespace {

struct QuantizeWeights
    : public kiln::llm::impl::LLMQuantizeWeightsBase<QuantizeWeights> {
  using Base::Base;
  QuantizeWeights(const LLMQuantizeWeightsOptions &options,
                  std::shared_ptr<const q::CalibrationStats> stats)
      : Base(options), stats(std::move(stats)) {}

  void runOnOperation() override;

private:
  /// The options the kernels cannot serve for a weight of `k` input
  /// features, or success.
  LogicalResult checkLegal(Operation *at, StringRef name, int64_t k);

  std::shared_ptr<const q::CalibrationStats> stats;
};

LogicalResult QuantizeWeights::checkLegal(Operation *at, StringRef name,
                                          int64_t k) {
  int64_t group = groupSize == 0 ? k : groupSize;
  if (k % group != 0)
    return at->emitError() << "group-size=" << (int64_t)groupSize
                           << " does not divide the " << k
                           << " input features of '" << name << "'";
  if (group != k && group % 16 != 0)
    return at->emitError() << "group-size=" << (int64_t)groupSize
                           << " is not a multiple of 16 (the kernels' "
                              "group granularity)";
  if (bits == 4 && k % 2 != 0)
    return at->emitError() << "bits=4 packs two weights a byte, but '" << name
                           << "' has " << k << " input features (odd)";
  return success();
}

void QuantizeWeights::runOnOperation() {
  ModuleOp module = getOperation();
  // Combinations no kernel serves, whatever the weights.
  bool fp8 = format == "fp8e4m3";
  if (format != "int" && !fp8) {
    module.emitError() << "format=" << StringRef(format)
                       << " is not supported (expected int or fp8e4m3)";
    return signalPassFailure();
  }
  if (bits != 8 && bits != 4) {
    module.emitError() << "bits=" << (int64_t)bits
                       << " is not supported (expected 8 or 4)";
    return signalPassFailure();
  }
  if (fp8 && (bits != 8 || zeroPoint || groupSize != 0)) {
    module.emitError() << "format=fp8e4m3 takes bits=8, per-channel scales "
                          "(group-size=0) and no zero-point";
    return signalPassFailure();
  }
  if (groupSize < 0) {
    module.emitError() << "group-size=" << (int64_t)groupSize << " is negative";
    return signalPassFailure();
  }
  if (method != "rtn" && method != "gptq") {
    module.emitError() << "method=" << StringRef(method)
                       << " is not supported (expected rtn or gptq)";
    return signalPassFailure();
  }
  if (method == "gptq" && !stats) {
    module.emitError() << "method=gptq needs calibration statistics "
                          "(kiln-compile --calibration-text FILE)";
    return signalPassFailure();
  }

  auto weights = collectMatrixWeights(module, skip);
  if (failed(weights))
    return signalPassFailure();
  for (MatrixWeight &w : *weights)
    if (failed(checkLegal(w.op, w.op.getName(), w.k)))
      return signalPassFailure();
  PackedDataWriter writer;
  if (failed(writer.open(module, dataFile, "llm-quantize-weights")))
    return signalPassFailure();

  // One packed copy per name when several functions read the same weight.
  llvm::StringMap<std::pair<Type, std::pair<int64_t, int64_t>>> done;
  llvm::DenseMap<const q::InputStats *, std::vector<double>> factors;
  int64_t dummyOffset = 0;
  for (MatrixWeight &w : *weights) {
    StringRef name = w.op.getName();
    if (auto it = done.find(name); it != done.end()) {
      replaceWithPacked(w, it->second.first, writer.path(),
                        it->second.second.first, it->second.second.second);
      continue;
    }
    Type elem = cast<RankedTensorType>(w.op.getType()).getElementType();
    Type scaleType = elem.isF32() ? elem : Float16Type::get(&getContext());
    if (elem.isBF16())
      scaleType = elem;
    if (module->hasAttr(kDummyWeightsAttr)) {
      // kiln-compile --dummy-weights: the weights have no bytes to read
      // (graph-only exports benchmarked at scale); only the packed types
      // and byte ranges matter, the runtime draws the bytes at load.
      auto type = QuantizedWeightType::get(
          &getContext(), w.k, w.n, bits, groupSize == 0 ? w.k : groupSize,
          scaleType, zeroPoint, fp8 ? "fp8e4m3" : "int");
      int64_t length = getQuantizedLayout(type).total;
      done[name] = {type, {dummyOffset, length}};
      replaceWithPacked(w, type, writer.path(), dummyOffset, length);
      dummyOffset += (length + 63) / 64 * 64;
      continue;
    }
    auto values = readMatrix(w);
    if (failed(values))
      return signalPassFailure();
    q::QuantSpec spec;
    spec.bits = bits;
    spec.group = groupSize == 0 ? w.k : groupSize;
    spec.zeroPoint = zeroPoint;
    spec.fp8 = fp8;
    spec.roundScale = [scaleType](float f) {
      return roundToType(f, scaleType);
    };
    q::PackedWeight packed;
    if (method == "gptq") {
      auto it = stats->byWeight.find(name.str());
      if (it == stats->byWeight.end() || it->second->features != w.k) {
        w.op.emitError() << "method=gptq: no calibration statistics for '"
                         << name << "' (" << w.k << " input features)";
        return signalPassFailure();
      }
      // One factorization per input (q/k/v and gate/up share theirs).
      std::vector<double> &factor = factors[it->second.get()];
      std::string error;
      if (factor.empty() &&
          !q::inverseHessianFactor(it->second->xxt, w.k, 0.01, factor,
                                   error)) {
        w.op.emitError() << "method=gptq failed for '" << name
                         << "': " << error;
        return signalPassFailure();
      }
      packed = q::quantizeGPTQ(*values, w.n, w.k, spec, factor);
    } else {
      packed = q::quantizeRTN(*values, w.n, w.k, spec);
    }

    auto type =
        QuantizedWeightType::get(&getContext(), w.k, w.n, bits, spec.group,
                                 scaleType, zeroPoint, fp8 ? "fp8e4m3" : "int");
    QuantizedLayout layout = getQuantizedLayout(type);
    std::vector<uint8_t> bytes(layout.total, 0);
    std::copy(packed.packed.begin(), packed.packed.end(),
              bytes.begin() + layout.packed.offset);
    // Scales in their stored type, little-endian.
    int64_t width = scaleType.getIntOrFloatBitWidth() / 8;
    for (size_t i = 0; i < packed.scales.size(); ++i) {
      uint64_t raw = 0;
      if (width == 4) {
        float f = packed.scales[i];
        std::memcpy(&raw, &f, 4);
      } else {
        bool lost = false;
        APFloat v(packed.scales[i]);
        v.convert(cast<FloatType>(scaleType).getFloatSemantics(),
                  APFloat::rmNearestTiesToEven, &lost);
        raw = v.bitcastToAPInt().getZExtValue();
      }
      std::memcpy(bytes.data() + layout.scales.offset + i * width, &raw, width);
    }
    std::copy(packed.zeroPoints.begin(), packed.zeroPoints.end(),
              bytes.begin() + layout.zeroPoints.offset);
    auto offset = writer.append(w.op, bytes);
    if (failed(offset))
      return signalPassFailure();
    done[name] = {type, {*offset, layout.total}};
    replaceWithPacked(w, type, writer.path(), *offset, layout.total);
  }
}

} // namespace

std::unique_ptr<Pass> kiln::llm::createLLMQuantizeWeights(
    const LLMQuantizeWeightsOptions &options,
    std::shared_ptr<const q::CalibrationStats> stats) {
  return std::make_unique<QuantizeWeights>(options, std::move(stats));
}
