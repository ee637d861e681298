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

void kiln::buildRaisePipeline(OpPassManager &pm, bool raiseGatedMLP) {
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
  if (raiseGatedMLP)
    fn.addPass(llm::createLLMRaiseGatedMLP());
  // Drop the shape arithmetic the raised ops no longer read, share what is
  // left, and list every generic op that remains with its reason.
  fn.addPass(llm::createLLMFoldShapes());
  fn.addPass(createCanonicalizerPass());
  fn.addPass(createCSEPass());
  fn.addPass(llm::createLLMReportUnraised());
}

void kiln::buildPagedPipeline(OpPassManager &pm, int64_t blockSize,
                              bool allLogits) {
  buildRaisePipeline(pm);
  // Replace the model function by @prefill and @decode over packed tokens
  // and the paged KV cache, then share the constants and weights the
  // rewrite re-created per use.
  llm::LLMKVCacheLayoutOptions options;
  options.blockSize = blockSize;
  options.allLogits = allLogits;
  pm.addPass(llm::createLLMKVCacheLayout(options));
  pm.nest<func::FuncOp>().addPass(createCSEPass());
}

namespace {
struct PagedPipelineOptions : public PassPipelineOptions<PagedPipelineOptions> {
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("Tokens per KV-cache block"),
                            llvm::cl::init(16)};
  Option<bool> allLogits{
      *this, "all-logits",
      llvm::cl::desc("@prefill returns the logits of every token"),
      llvm::cl::init(false)};
};
} // namespace

void kiln::registerPipelines() {
  PassPipelineRegistration<>(
      "kiln-raise-pipeline",
      "Raise an imported ONNX graph into llm model ops (what kiln-import "
      "--raise and kiln-check run)",
      [](OpPassManager &pm) { buildRaisePipeline(pm); });
  PassPipelineRegistration<PagedPipelineOptions>(
      "kiln-paged-pipeline",
      "Raise an imported ONNX graph and lay it out as @prefill/@decode entry "
      "points over a paged KV cache (what kiln-paged-check runs)",
      [](OpPassManager &pm, const PagedPipelineOptions &options) {
        buildPagedPipeline(pm, options.blockSize, options.allLogits);
      });
}

void kiln::registerAllDialects(DialectRegistry &registry) {
  registry.insert<llm::LLMDialect, func::FuncDialect>();
}

void kiln::registerAllPasses() {
  registerTransformsPasses();
  llm::registerLLMPasses();
  registerPipelines();
}
