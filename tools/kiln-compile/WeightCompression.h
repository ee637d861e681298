//===- WeightCompression.h - kiln-compile's quantize/sparsify stage -*- C++
//-*-===//
//
// Between raise and layout kiln-compile may run -llm-quantize-weights or
// -llm-sparsify-2to4 over the raised model, after collecting calibration
// statistics on the host reference for the calibrated methods.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNCOMPILE_WEIGHTCOMPRESSION_H
#define KILN_TOOLS_KILNCOMPILE_WEIGHTCOMPRESSION_H

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace kiln {

struct CompressionOptions {
  std::string quantize;   ///< "", int8, int4 or fp8
  int64_t groupSize = -1; ///< -1: 128 for int4, per channel otherwise
  bool zeroPoint = false;
  std::string quantMethod;    ///< rtn, gptq
  std::string sparsify;       ///< "" or 2:4
  std::string sparsifyMethod; ///< magnitude, wanda, sparsegpt
  std::vector<std::string> skip;
  std::string calibrationText;
  int64_t calibrationTokens = 8192, calibrationWindow = 512;
  std::string tokenizerPath;
  std::string dataFile; ///< where the packed bytes go
};

/// True when options ask for any compression.
bool wantsCompression(const CompressionOptions &options);
/// True when the chosen method reads calibration statistics.
bool needsCalibration(const CompressionOptions &options);

/// Checks the flags alone; an error message or "".
std::string checkCompressionOptions(const CompressionOptions &options);

/// Quantizes or sparsifies the raised `module`. `unraised` is a copy of the
/// imported module taken before raising (calibration raises it without
/// gated MLPs); null when no calibration is needed. `summary` describes
/// what was done.
mlir::LogicalResult compressWeights(mlir::ModuleOp module,
                                    mlir::ModuleOp unraised,
                                    const CompressionOptions &options,
                                    std::string &summary);

} // namespace kiln

#endif // KILN_TOOLS_KILNCOMPILE_WEIGHTCOMPRESSION_H
