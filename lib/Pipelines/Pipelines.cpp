//===- Pipelines.cpp - Kiln's registered pass pipelines -------------------===//

#include "kiln/Pipelines/Pipelines.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Dialect/LLM/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void kiln::buildRaisePipeline(OpPassManager &pm) {
  OpPassManager &fn = pm.nest<func::FuncOp>();
  // Deduplicate the constants of the imported graph, then infer static
  // shapes and fold the shape arithmetic computed from them, so that the
  // patterns below can read head counts, axes and slice bounds as constants.
  fn.addPass(createCanonicalizerPass());
  fn.addPass(createCSEPass());
  fn.addPass(llm::createLLMFoldShapes());
  fn.addPass(createCSEPass());
  fn.addPass(llm::createLLMFoldShapes());
  // Leaf patterns first: norms, activations, linear layers and embeddings,
  // then the rotary embeddings and attention that read the projections, and
  // last the gated MLPs built from raised linears and activations.
  fn.addPass(llm::createLLMRaiseNorms());
  fn.addPass(llm::createLLMRaiseActivations());
  fn.addPass(llm::createLLMRaiseLinear());
  fn.addPass(llm::createLLMRaiseRope());
  fn.addPass(llm::createLLMRaiseAttention());
  fn.addPass(llm::createLLMRaiseGatedMLP());
  // Drop the shape arithmetic the raised ops no longer read, share what is
  // left, and list every generic op that remains with its reason.
  fn.addPass(llm::createLLMFoldShapes());
  fn.addPass(createCanonicalizerPass());
  fn.addPass(createCSEPass());
  fn.addPass(llm::createLLMReportUnraised());
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
  llm::registerLLMPasses();
  registerPipelines();
}
