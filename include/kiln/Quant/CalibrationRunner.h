//===- CalibrationRunner.h - Collect calibration statistics -----*- C++ -*-===//
//
// Runs a raised model on calibration tokens with the host reference
// interpreter and accumulates the input statistics of every linear layer
// (kiln::quant::CalibrationStats).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_QUANT_CALIBRATIONRUNNER_H
#define KILN_QUANT_CALIBRATIONRUNNER_H

#include "kiln/Quant/Calibration.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LogicalResult.h"

#include <vector>

namespace kiln {

class WeightStore;

/// Runs `model` (a raised, not laid-out model function taking input ids
/// [1, S] as its only input; gated MLPs left as linears, so that the down
/// projection's input is a value) on each window of `windows` and sums
/// x x^T of the input of every llm.linear, by weight name. Fails with a
/// diagnostic when the model cannot be run.
mlir::FailureOr<quant::CalibrationStats>
collectCalibrationStats(mlir::func::FuncOp model,
                        const std::vector<std::vector<int64_t>> &windows,
                        WeightStore &store);

} // namespace kiln

#endif // KILN_QUANT_CALIBRATIONRUNNER_H
