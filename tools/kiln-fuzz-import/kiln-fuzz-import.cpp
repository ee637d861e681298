//===- kiln-fuzz-import.cpp - libFuzzer target on the ONNX importer -------===//
//
// Feeds arbitrary bytes to the importer as a serialized ONNX model and, when
// they import, verifies and prints the module. Any crash, sanitizer report
// or abort is a bug: bad input must end in a diagnostic. Build with
// -DKILN_BUILD_FUZZERS=ON using clang-22 (tools/scripts/fuzz-importer.sh).
//
//===----------------------------------------------------------------------===//

#include "kiln/Frontend/OnnxImporter.h"
#include "kiln/Pipelines/Pipelines.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry registry = [] {
    mlir::DialectRegistry r;
    kiln::registerAllDialects(r);
    return r;
  }();
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  // Diagnostics are expected for almost every input; swallow them.
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
    return mlir::success();
  });
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  auto module = kiln::importOnnxModelFromBytes(bytes, "/tmp/kiln-fuzz/model.onnx",
                                               &context);
  if (module) {
    if (mlir::failed(mlir::verify(*module)))
      __builtin_trap(); // the importer must only return verified modules
    std::string text;
    llvm::raw_string_ostream os(text);
    module->print(os);
  }
  return 0;
}
