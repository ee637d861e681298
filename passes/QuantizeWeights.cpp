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

#include "AwqScaling.h"
#include "PackedWeights.h"

#include "kiln/Dialect/LLM/Transforms/Passes.h"
#include "kiln/Quant/Calibration.h"
#include "kiln/Quant/QuantMath.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

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
  /// f32 scales for f32 weights, bf16 for bf16, f16 otherwise.
  Type scaleTypeOf(const MatrixWeight &w) {
    WeightOp op = w.op;
    Type elem = cast<RankedTensorType>(op.getType()).getElementType();
    return elem.isF32() || elem.isBF16() ? elem
                                         : Float16Type::get(&getContext());
  }
  /// The options as a QuantSpec for weights of `k` inputs, scales stored
  /// as `scaleType` (AWQ's search: a group of 0 is per channel).
  q::QuantSpec specFor(int64_t k, Type scaleType = {}) {
    q::QuantSpec spec;
    spec.bits = bits;
    spec.group = groupSize == 0 ? k : groupSize;
    spec.zeroPoint = zeroPoint;
    spec.fp8 = format == "fp8e4m3";
    if (scaleType)
      spec.roundScale = [scaleType](float f) {
        return roundToType(f, scaleType);
      };
    return spec;
  }
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
  if (method != "rtn" && method != "gptq" && method != "awq") {
    module.emitError() << "method=" << StringRef(method)
                       << " is not supported (expected rtn, gptq or awq)";
    return signalPassFailure();
  }
  if (method != "rtn" && !stats) {
    module.emitError() << "method=" << StringRef(method)
                       << " needs calibration statistics "
                          "(kiln-compile --calibration-text FILE)";
    return signalPassFailure();
  }
  if (method == "awq" && fp8) {
    module.emitError() << "method=awq scales integer grids; format=fp8e4m3 "
                          "takes method=rtn";
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
  if (module->hasAttr(kDummyWeightsAttr)) {
    // kiln-compile --dummy-weights: the weights have no bytes to read
    // (graph-only exports benchmarked at scale); only the packed types and
    // byte ranges matter, and the runtime draws the bytes at load.
    if (method != "rtn") {
      module.emitError() << "method=" << StringRef(method)
                         << " reads the weights' values; dummy weights take "
                            "method=rtn";
      return signalPassFailure();
    }
    llvm::StringMap<std::pair<Type, int64_t>> planned;
    int64_t offset = 0;
    for (MatrixWeight &w : *weights) {
      auto [it, fresh] = planned.try_emplace(w.op.getName());
      if (fresh) {
        it->second.first = QuantizedWeightType::get(
            &getContext(), w.k, w.n, bits, specFor(w.k).group, scaleTypeOf(w),
            zeroPoint, fp8 ? "fp8e4m3" : "int");
        it->second.second = offset;
        offset +=
            (getQuantizedLayout(cast<QuantizedWeightType>(it->second.first))
                 .total +
             63) /
            64 * 64;
      }
      auto type = cast<QuantizedWeightType>(it->second.first);
      replaceWithPacked(w, type, writer.path(), it->second.second,
                        getQuantizedLayout(type).total);
    }
    return;
  }

  // Every weight's [N, K] values, rescaled first by AWQ.
  WeightValues values;
  llvm::StringSet<> read;
  for (MatrixWeight &w : *weights) {
    if (!read.insert(w.op.getName()).second)
      continue;
    auto v = readMatrix(w);
    if (failed(v))
      return signalPassFailure();
    values[w.op] = std::move(*v);
  }
  llvm::DenseMap<Operation *, std::vector<double>> importance;
  if (method == "awq") {
    int64_t scaled = 0;
    if (failed(applyAwqScaling(module, *weights, *stats, specFor(0), writer,
                               values, importance, scaled)))
      return signalPassFailure();
  }

  // One packed copy per name when several functions read the same weight.
  llvm::StringMap<std::pair<Type, std::pair<int64_t, int64_t>>> done;
  struct Factor {
    std::vector<int64_t> order;
    std::vector<double> factor, importance;
  };
  llvm::DenseMap<const q::InputStats *, Factor> factors;
  for (MatrixWeight &w : *weights) {
    StringRef name = w.op.getName();
    if (auto it = done.find(name); it != done.end()) {
      replaceWithPacked(w, it->second.first, writer.path(),
                        it->second.second.first, it->second.second.second);
      continue;
    }
    std::vector<float> *matrix = &values[w.op];
    Type scaleType = scaleTypeOf(w);
    q::QuantSpec spec = specFor(w.k, scaleType);
    q::PackedWeight packed;
    if (method == "gptq") {
      auto it = stats->byWeight.find(name.str());
      if (it == stats->byWeight.end() || it->second->features != w.k) {
        w.op.emitError() << "method=gptq: no calibration statistics for '"
                         << name << "' (" << w.k << " input features)";
        return signalPassFailure();
      }
      // One act order and factorization per input (q/k/v and gate/up
      // share theirs).
      const q::InputStats &in = *it->second;
      Factor &f = factors[&in];
      std::string error;
      if (f.factor.empty()) {
        f.order = q::actOrder(in.xxt, w.k);
        if (!q::inverseHessianFactor(q::permuted(in.xxt, w.k, f.order), w.k,
                                     0.01, f.factor, error)) {
          w.op.emitError() << "method=gptq failed for '" << name
                           << "': " << error;
          return signalPassFailure();
        }
        f.importance.resize(w.k);
        for (int64_t c = 0; c < w.k; ++c)
          f.importance[c] = in.xxt[c * w.k + c];
      }
      packed = q::quantizeGPTQActOrder(*matrix, w.n, w.k, spec, f.factor,
                                       f.order, f.importance);
    } else {
      auto imp = importance.find(w.op);
      packed = imp != importance.end()
                   ? q::quantizeClipped(*matrix, w.n, w.k, spec, imp->second)
                   : q::quantizeRTN(*matrix, w.n, w.k, spec);
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
