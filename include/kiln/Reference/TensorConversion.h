//===- TensorConversion.h - HostTensor <-> MLIR types and attributes -*- C++ -*-===//
//
// Conversions between the host reference executor's tensors and MLIR: element
// types to DTypes and back, and ElementsAttr constants to HostTensors and
// back. The importer uses them to fold constants; the interpreter to read
// `llm.constant` and to check inputs against function signatures.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_TENSORCONVERSION_H
#define KILN_REFERENCE_TENSORCONVERSION_H

#include "kiln/Reference/HostTensor.h"

#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Types.h"

#include <optional>
#include <string>

namespace kiln {

/// The DType of an MLIR element type: f32, f16, bf16, f64, i1 (Bool), and
/// integers of 8/16/32/64 bits (signless and signed are signed, unsigned are
/// unsigned). nullopt for anything else (index, other widths, complex...).
std::optional<DType> dtypeFromType(mlir::Type elementType);

/// The element type of a DType: f32/f16/bf16/f64, i1 for Bool, signless
/// i8..i64 for signed integers, ui8..ui64 for unsigned ones.
mlir::Type typeFromDType(DType dtype, mlir::MLIRContext *context);

/// "tensor<1x?xi64>"-style text of a type, for messages.
std::string typeString(mlir::Type type);

/// Converts a constant to a host tensor. Supports DenseElementsAttr (splat
/// or not) of every element type dtypeFromType knows. Returns false with
/// `error` set otherwise.
bool hostTensorFromElementsAttr(mlir::ElementsAttr attr, HostTensor &out,
                                std::string &error);

/// Converts a host tensor to a DenseElementsAttr of type
/// `tensor<shape x typeFromDType(dtype)>`.
mlir::DenseElementsAttr elementsAttrFromHostTensor(const HostTensor &tensor,
                                                   mlir::MLIRContext *context);

/// Same, with an explicit element type (e.g. si64 rather than i64); it must
/// map to a DType (the values are converted to it).
mlir::DenseElementsAttr elementsAttrFromHostTensor(const HostTensor &tensor,
                                                   mlir::Type elementType);

} // namespace kiln

#endif // KILN_REFERENCE_TENSORCONVERSION_H
