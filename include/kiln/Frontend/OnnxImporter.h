//===- OnnxImporter.h - ONNX to llm dialect importer ------------*- C++ -*-===//

#ifndef KILN_FRONTEND_ONNXIMPORTER_H
#define KILN_FRONTEND_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace kiln {

struct OnnxImportOptions {
  /// Initializers with at most this many elements become inline
  /// `llm.constant`s; larger ones become `llm.weight` references.
  int64_t inlineElementLimit = 16;
  /// Integer initializers up to this size are inlined too: they are shape
  /// data (axes, shapes, indices) that the raising passes must see.
  int64_t inlineIntegerLimit = 1024;
  /// Check at import that every external data file exists and holds the
  /// bytes its tensors name. Off for --dummy-weights: only the layout of the
  /// weights is kept, so graph-only exports import without their data.
  bool requireExternalData = true;
  /// Name of the entry function.
  std::string entryName = "main";
};

/// Imports the ONNX model at `path` into a module holding one function whose
/// body is llm ops (before raising: the generic ONNX-semantics ops). Errors
/// (unreadable or truncated file, unsupported op or opset, malformed node)
/// are emitted as diagnostics located at the ONNX node, and yield null.
mlir::OwningOpRef<mlir::ModuleOp>
importOnnxModel(const std::string &path, mlir::MLIRContext *context,
                const OnnxImportOptions &options = {});

/// Imports a serialized ModelProto held in memory; `path` names it in
/// diagnostics and anchors relative external data (the fuzzer's entry).
mlir::OwningOpRef<mlir::ModuleOp>
importOnnxModelFromBytes(llvm::StringRef bytes, const std::string &path,
                         mlir::MLIRContext *context,
                         const OnnxImportOptions &options = {});

/// Every (domain, op, since-version) the importer has an entry for, one
/// string per entry such as "ai.onnx Add 14", for documentation and tests.
std::vector<std::string> listSupportedOnnxOps();

} // namespace kiln

#endif // KILN_FRONTEND_ONNXIMPORTER_H
