//===- Pipelines.cpp - Kiln's registered pass pipelines -------------------===//

#include "kiln/Pipelines/Pipelines.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void kiln::buildRaisePipeline(OpPassManager &pm) {
  // Fold what the imported graph computes from constants, and share
  // duplicated subexpressions, before pattern matching.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void kiln::registerPipelines() {
  PassPipelineRegistration<>(
      "kiln-raise-pipeline",
      "Raise an imported ONNX graph into llm model ops (what kiln-import "
      "--raise and kiln-check run)",
      [](OpPassManager &pm) { buildRaisePipeline(pm); });
}

void kiln::registerAllDialects(DialectRegistry &registry) {
  registry.insert<llm::LLMDialect, func::FuncDialect>();
}

void kiln::registerAllPasses() {
  registerTransformsPasses();
  registerPipelines();
}
