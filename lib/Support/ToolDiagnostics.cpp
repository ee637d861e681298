//===- ToolDiagnostics.cpp - How Kiln's tools print diagnostics -----------===//

#include "kiln/Support/ToolDiagnostics.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Location.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace kiln;

/// Renders a location as "file: node 'name'" (import) or "file:line:col".
static void printLocation(Location loc, llvm::raw_ostream &os) {
  if (auto name = dyn_cast<NameLoc>(loc)) {
    if (auto file = dyn_cast<FileLineColLoc>(name.getChildLoc())) {
      os << file.getFilename().getValue() << ": ";
      if (file.getLine() > 0)
        os << file.getLine() << ":" << file.getColumn() << ": ";
    }
    os << "'" << name.getName().getValue() << "': ";
    return;
  }
  if (auto file = dyn_cast<FileLineColLoc>(loc)) {
    os << file.getFilename().getValue();
    if (file.getLine() > 0)
      os << ":" << file.getLine() << ":" << file.getColumn();
    os << ": ";
    return;
  }
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    if (!fused.getLocations().empty())
      printLocation(fused.getLocations().front(), os);
    return;
  }
  if (auto callSite = dyn_cast<CallSiteLoc>(loc)) {
    printLocation(callSite.getCallee(), os);
    return;
  }
}

static const char *severityName(DiagnosticSeverity severity) {
  switch (severity) {
  case DiagnosticSeverity::Error: return "error";
  case DiagnosticSeverity::Warning: return "warning";
  case DiagnosticSeverity::Note: return "note";
  case DiagnosticSeverity::Remark: return "remark";
  }
  return "error";
}

ToolDiagnosticHandler::ToolDiagnosticHandler(MLIRContext *context,
                                             llvm::StringRef toolName)
    : ScopedDiagnosticHandler(context), tool(toolName.str()) {
  setHandler([this](Diagnostic &diag) {
    auto &os = llvm::errs();
    os << tool << ": ";
    printLocation(diag.getLocation(), os);
    os << severityName(diag.getSeverity()) << ": " << diag << "\n";
    for (Diagnostic &note : diag.getNotes()) {
      os << tool << ": ";
      printLocation(note.getLocation(), os);
      os << "note: " << note << "\n";
    }
    return success();
  });
}
