//===- AwqScaling.h - AWQ's activation-aware scales for quantization -*- C++
//-*-===//

#ifndef KILN_PASSES_AWQSCALING_H
#define KILN_PASSES_AWQSCALING_H

#include "PackedWeights.h"

#include "kiln/Quant/Calibration.h"
#include "kiln/Quant/QuantMath.h"

#include "llvm/ADT/DenseMap.h"

namespace kiln::llm {

/// The [N, K] values of the weights to quantize, by their llm.weight op.
using WeightValues = llvm::DenseMap<mlir::Operation *, std::vector<float>>;

/// AWQ: for each set of weights that read one input whose producer can
/// absorb a per-feature scale (an llm.rms_norm's weight for q/k/v and
/// gate/up; a gated MLP's up projection for its down projection), picks
/// the scales s (kiln::quant::awqScales) and rewrites: the weights' columns
/// times s in `values`, the producer divided by s (a new norm weight
/// appended to `writer`, or the up rows in `values`). Weights without such
/// a producer keep s = 1. `importance` gets, for every weight with
/// statistics, the mean square of each scaled input feature (H_kk / s_k^2
/// per token), what the clipping search weighs rounding errors by.
/// `scaled` counts the sets rescaled.
mlir::LogicalResult applyAwqScaling(
    mlir::ModuleOp module, std::vector<MatrixWeight> &weights,
    const quant::CalibrationStats &stats, const quant::QuantSpec &spec,
    PackedDataWriter &writer, WeightValues &values,
    llvm::DenseMap<mlir::Operation *, std::vector<double>> &importance,
    int64_t &scaled);

} // namespace kiln::llm

#endif // KILN_PASSES_AWQSCALING_H
