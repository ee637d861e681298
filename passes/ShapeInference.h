//===- ShapeInference.h - ONNX shape inference of generic llm ops -*- C++
//-*-===//
//
// Exporters leave many values without a shape (TorchScript writes no
// value_info at all; dynamo loses the shapes of values computed through
// Shape/Concat/Reshape). The raising patterns prove their preconditions from
// static dimensions, so -llm-fold-shapes refines result types with the
// shapes ONNX semantics give them.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_SHAPEINFERENCE_H
#define KILN_PASSES_SHAPEINFERENCE_H

#include "mlir/IR/Operation.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>

namespace kiln::llm {

/// The shape (ShapedType::kDynamic for unknown dimensions) that ONNX
/// semantics give result `index` of the generic op `op`, from its operand
/// types and constant operands; nullopt when even the rank is unknown or the
/// operands are inconsistent.
std::optional<llvm::SmallVector<int64_t>> inferResultShape(mlir::Operation *op,
                                                           unsigned index);

/// `declared` with the static information of `inferred` added, or a null
/// type when that adds nothing or the two contradict each other.
mlir::Type refineTensorType(mlir::Type declared,
                            llvm::ArrayRef<int64_t> inferred);

} // namespace kiln::llm

#endif // KILN_PASSES_SHAPEINFERENCE_H
