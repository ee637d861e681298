//===- LLMDialect.h - The llm dialect ---------------------------*- C++ -*-===//
//
// Include this header to use the llm dialect: it brings the dialect, its
// attributes, types and ops.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_IR_LLMDIALECT_H
#define KILN_DIALECT_LLM_IR_LLMDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "kiln/Dialect/LLM/IR/LLMAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/LLM/IR/LLMTypes.h.inc"

#define GET_OP_CLASSES
#include "kiln/Dialect/LLM/IR/LLMOps.h.inc"

namespace kiln::llm {
/// True for the model ops (embedding, norms, rope, linear, attention, MLP,
/// activations, the paged KV-cache ops) and for weights and constants: what a fully raised model
/// body consists of. Generic ONNX-semantics ops answer false.
bool isRaisedOp(mlir::Operation *op);

/// A part of a packed weight's bytes: [offset, offset + bytes).
struct PackedPart {
  int64_t offset = 0, bytes = 0;
};
/// Where the packed integers, scales and zero points (bytes 0 without zero
/// points) of a !llm.qweight lie in its weight's bytes.
struct QuantizedLayout {
  PackedPart packed, scales, zeroPoints;
  int64_t total = 0;
};
QuantizedLayout getQuantizedLayout(QuantizedWeightType type);
/// Where the kept values and the metadata of a !llm.sparse24 lie.
struct SparseLayout {
  PackedPart values, meta;
  int64_t total = 0;
};
SparseLayout getSparseLayout(SparseWeightType type);
} // namespace kiln::llm

#endif // KILN_DIALECT_LLM_IR_LLMDIALECT_H
