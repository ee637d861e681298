//===- CalibrationRunner.cpp - Collect calibration statistics -------------===//
//
// The interpreter's observer sees every op's results; a result that is the
// input of llm.linear ops is folded into that input's x x^T right away, so
// no activation outlives its op. Linears that read one value (q/k/v,
// gate/up) share one accumulator.
//
//===----------------------------------------------------------------------===//

#include "kiln/Quant/CalibrationRunner.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Reference/Interpreter.h"

#include "llvm/ADT/DenseMap.h"

#include <cmath>

using namespace mlir;
using namespace kiln;

FailureOr<quant::CalibrationStats>
kiln::collectCalibrationStats(func::FuncOp model,
                              const std::vector<std::vector<int64_t>> &windows,
                              WeightStore &store) {
  if (model.getNumArguments() != 1)
    return model.emitError() << "calibration runs models whose only input "
                                "is the token ids, this one takes "
                             << model.getNumArguments();
  llvm::DenseMap<Value, std::shared_ptr<quant::InputStats>> inputs;
  quant::CalibrationStats stats;
  model.walk([&](llm::LinearOp linear) {
    auto weight = linear.getWeight().getDefiningOp<llm::WeightOp>();
    auto type = dyn_cast<RankedTensorType>(linear.getInput().getType());
    if (!weight || !type || type.getRank() < 1 ||
        type.isDynamicDim(type.getRank() - 1))
      return;
    auto &in = inputs[linear.getInput()];
    if (!in) {
      in = std::make_shared<quant::InputStats>();
      in->features = type.getDimSize(type.getRank() - 1);
      in->xxt.assign(in->features * in->features, 0.0);
      in->absSum.assign(in->features, 0.0);
    }
    stats.byWeight[weight.getName().str()] = in;
  });

  auto accumulate = [&](Value v, const HostTensor &t) {
    auto it = inputs.find(v);
    if (it == inputs.end() || !t.isFloat())
      return;
    quant::InputStats &in = *it->second;
    int64_t k = in.features, rows = t.numElements() / k;
    std::vector<double> x(k);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < k; ++i) {
        x[i] = t.f[r * k + i];
        in.absSum[i] += std::fabs(x[i]);
      }
      // Upper triangle only; mirrored once at the end.
      for (int64_t i = 0; i < k; ++i) {
        double xi = x[i];
        double *row = in.xxt.data() + i * k;
        for (int64_t j = i; j < k; ++j)
          row[j] += xi * x[j];
      }
    }
    in.tokens += rows;
  };

  Interpreter interpreter(store);
  interpreter.setObserver(
      [&](Operation *op, const std::vector<HostTensor> &results) {
        for (auto [i, result] : llvm::enumerate(op->getResults()))
          accumulate(result, results[i]);
      });
  std::vector<HostTensor> outputs;
  for (const std::vector<int64_t> &ids : windows) {
    HostTensor input =
        HostTensor::fromInts({1, (int64_t)ids.size()}, ids, DType::I64);
    for (BlockArgument arg : model.getArguments())
      accumulate(arg, input);
    if (failed(interpreter.run(model, {input}, outputs)))
      return failure();
    stats.tokens += ids.size();
  }
  for (auto &[v, in] : inputs) {
    int64_t k = in->features;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < i; ++j)
        in->xxt[i * k + j] = in->xxt[j * k + i];
  }
  return stats;
}
