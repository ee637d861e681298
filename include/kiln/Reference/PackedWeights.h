//===- PackedWeights.h - Dense values of packed llm weights -----*- C++ -*-===//
//
// The host reference's reading of `!llm.qweight` and `!llm.sparse24`
// weights (docs/Quantization.md): their bytes decoded by the formats'
// definition into the dense fp32 matrix the model ops multiply.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_PACKEDWEIGHTS_H
#define KILN_REFERENCE_PACKEDWEIGHTS_H

#include "kiln/Reference/HostTensor.h"

#include "mlir/IR/Types.h"

#include <string>

namespace kiln {

/// True for the packed weight types.
bool isPackedWeightType(mlir::Type type);

/// Decodes `bytes` (the weight's bytes as u8, the length of its layout)
/// of packed `type` into `out`: an f32 [N, K] tensor when `nk` (the layout
/// of ops with transpose_weight(s)), else [K, N]. False with `error` when
/// the bytes do not fit.
bool decodePackedWeight(mlir::Type type, const HostTensor &bytes, bool nk,
                        HostTensor &out, std::string &error);

} // namespace kiln

#endif // KILN_REFERENCE_PACKEDWEIGHTS_H
