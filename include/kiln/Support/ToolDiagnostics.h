//===- ToolDiagnostics.h - How Kiln's tools print diagnostics ---*- C++ -*-===//

#ifndef KILN_SUPPORT_TOOLDIAGNOSTICS_H
#define KILN_SUPPORT_TOOLDIAGNOSTICS_H

#include "mlir/IR/Diagnostics.h"

namespace kiln {

/// Prints every diagnostic of `context` to stderr as
/// `<tool>: <file>: node '<name>': error: <message>`, the location being
/// the ONNX node (NameLoc) and model file (FileLineColLoc) the importer
/// attaches, or `<file>:<line>:<col>` for MLIR text. Notes follow their
/// diagnostic.
class ToolDiagnosticHandler : public mlir::ScopedDiagnosticHandler {
public:
  ToolDiagnosticHandler(mlir::MLIRContext *context, llvm::StringRef tool);

private:
  std::string tool;
};

} // namespace kiln

#endif // KILN_SUPPORT_TOOLDIAGNOSTICS_H
