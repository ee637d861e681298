//===- Interpreter.h - The host reference executor --------------*- C++ -*-===//
//
// Runs a `func.func` whose body is llm ops on the CPU in fp32 with plain
// C++ kernels, one per op. Weights (`llm.weight`) are read through a
// WeightStore. Errors (unknown op, shape mismatch at run time, missing weight
// file) are reported as MLIR diagnostics at the offending op and make `run`
// fail; nothing aborts.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_INTERPRETER_H
#define KILN_REFERENCE_INTERPRETER_H

#include "kiln/Reference/HostTensor.h"
#include "kiln/Reference/WeightStore.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <functional>
#include <string>
#include <vector>

namespace mlir::func {
class FuncOp;
}

namespace kiln {

class Interpreter {
public:
  explicit Interpreter(WeightStore &weights) : weights(weights) {}

  /// Runs `func` on `inputs` (one per argument, in order); fills `outputs`
  /// with one tensor per result. Fails with a diagnostic at the first op that
  /// cannot be executed.
  ///
  /// Inputs are checked against the argument types (element type, rank and
  /// static dimensions); every op's results are checked against the op's
  /// declared result types, so a wrong static shape in the IR is reported at
  /// the op that declares it. Intermediate tensors are freed after their
  /// last use.
  mlir::LogicalResult run(mlir::func::FuncOp func,
                          const std::vector<HostTensor> &inputs,
                          std::vector<HostTensor> &outputs);

  /// Called after each op has executed with its results (for debugging and
  /// per-op comparisons; `llm.weight` and `llm.constant` included).
  using Observer =
      std::function<void(mlir::Operation *op, const std::vector<HostTensor> &results)>;
  void setObserver(Observer observer) { this->observer = std::move(observer); }

  /// By default (true) fp16/bf16 values are computed and kept in fp32: the
  /// oracle for "fp16 weights, fp32 compute". With false, every result is
  /// rounded to its declared element type, as ONNX semantics (Cast to f16)
  /// and an fp16 backend would.
  void setFp32Compute(bool enabled) { fp32Compute = enabled; }

  /// True when the host reference has a kernel for ops named `opName`
  /// (e.g. "llm.add"); `llm.weight` and `func.return` count as supported.
  static bool hasKernel(llvm::StringRef opName);
  /// The names of all ops the host reference executes, sorted.
  static std::vector<std::string> supportedOps();

private:
  /// The dense fp32 matrix of a !llm.qweight or !llm.sparse24 weight, in
  /// the layout its ops read (decodePackedWeight).
  mlir::LogicalResult bindPackedWeight(llm::WeightOp weight,
                                       std::unique_ptr<HostTensor> &out);

  WeightStore &weights;
  bool fp32Compute = true;
  Observer observer;
};

} // namespace kiln

#endif // KILN_REFERENCE_INTERPRETER_H
