//===- kiln-import.cpp - Print the llm module of an ONNX model ------------===//
//
//   kiln-import model.onnx [--raise] [-o out.mlir] [--list-ops]
//
// Imports an ONNX model and prints it as llm dialect IR; with --raise, after
// the raising pipeline (what kiln-compile --emit=llm prints).
//
//===----------------------------------------------------------------------===//

#include "kiln/Frontend/OnnxImporter.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Support/ToolDiagnostics.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include "mlir/IR/Diagnostics.h"

using namespace llvm;

static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"));
static cl::opt<std::string> outputPath("o", cl::desc("Output file"),
                                       cl::value_desc("path"), cl::init("-"));
static cl::opt<bool> raise("raise",
                           cl::desc("Run the raising pipeline after import"));
static cl::opt<bool> dummyWeights(
    "dummy-weights",
    cl::desc("Keep only the layout of the weights: external data files need "
             "not exist (graph-only exports)"));
static cl::opt<bool> listOps("list-ops",
                             cl::desc("List the supported (op, since-version) "
                                      "table entries and exit"));

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "Kiln ONNX importer\n");
  if (listOps) {
    for (const std::string &entry : kiln::listSupportedOnnxOps())
      outs() << entry << "\n";
    return 0;
  }
  if (inputPath.empty()) {
    errs() << "kiln-import: no input model given\n";
    return 2;
  }
  mlir::DialectRegistry registry;
  kiln::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  kiln::ToolDiagnosticHandler diagnostics(&context, "kiln-import");
  mlir::OwningOpRef<mlir::ModuleOp> module =
      kiln::importOnnxModel(inputPath, &context, [] {
        kiln::OnnxImportOptions options;
        options.requireExternalData = !dummyWeights;
        return options;
      }());
  if (!module)
    return 1;
  if (raise) {
    mlir::PassManager pm(&context);
    kiln::buildRaisePipeline(pm);
    if (mlir::failed(pm.run(*module)))
      return 1;
  }
  std::string error;
  auto output = mlir::openOutputFile(outputPath, &error);
  if (!output) {
    errs() << "kiln-import: " << error << "\n";
    return 1;
  }
  module->print(output->os());
  output->keep();
  return 0;
}
