//===- Calibration.h - Activation statistics of linear layers ----*- C++
//-*-===//
//
// What calibrated quantization and pruning (GPTQ, Wanda, SparseGPT) know
// about a model's activations: for each weight of a linear layer, the sum
// over calibration tokens of x x^T of the inputs it multiplies (its
// Hessian, up to a factor). Weights that read one input (q/k/v, gate/up)
// share it. Filled by collectCalibrationStats (lib/Quant, which runs the
// host reference interpreter); read by -llm-quantize-weights and
// -llm-sparsify-2to4.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_QUANT_CALIBRATION_H
#define KILN_QUANT_CALIBRATION_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kiln::quant {

struct InputStats {
  int64_t features = 0;
  int64_t tokens = 0;
  /// sum of x x^T, [features, features] row-major.
  std::vector<double> xxt;
  /// sum of |x| per feature (AWQ's activation magnitudes).
  std::vector<double> absSum;
};

struct CalibrationStats {
  /// By llm.weight name.
  std::map<std::string, std::shared_ptr<const InputStats>> byWeight;
  int64_t tokens = 0;
};

} // namespace kiln::quant

#endif // KILN_QUANT_CALIBRATION_H
