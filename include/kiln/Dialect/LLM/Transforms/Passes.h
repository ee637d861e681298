//===- Passes.h - Raising passes of the llm dialect -------------*- C++ -*-===//
//
// The passes that raise an imported ONNX graph into llm model ops, and the
// `populate*Patterns` functions they wrap.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_TRANSFORMS_PASSES_H
#define KILN_DIALECT_LLM_TRANSFORMS_PASSES_H

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace kiln::quant {
struct CalibrationStats;
} // namespace kiln::quant

namespace kiln::llm {

/// Module attribute kiln-compile sets with --dummy-weights: the weights have
/// no bytes, so -llm-quantize-weights plans packed types and byte ranges
/// without reading or writing data (the runtime draws dummy bytes).
constexpr llvm::StringLiteral kDummyWeightsAttr = "llm.dummy_weights";

#define GEN_PASS_DECL
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"

/// -llm-quantize-weights and -llm-sparsify-2to4 with the calibration
/// statistics their calibrated methods (gptq; wanda, sparsegpt) read.
std::unique_ptr<mlir::Pass>
createLLMQuantizeWeights(const LLMQuantizeWeightsOptions &options,
                         std::shared_ptr<const quant::CalibrationStats> stats);
std::unique_ptr<mlir::Pass>
createLLMSparsify2to4(const LLMSparsify2to4Options &options,
                      std::shared_ptr<const quant::CalibrationStats> stats);

/// Shape inference and folding of shape arithmetic; `maxFoldElements`
/// bounds the size of the constants it creates.
void populateFoldShapesPatterns(mlir::RewritePatternSet &patterns,
                                int64_t maxFoldElements = 1024);
/// llm.rms_norm and llm.layer_norm from their decompositions.
void populateRaiseNormsPatterns(mlir::RewritePatternSet &patterns);
/// llm.silu, llm.gelu and llm.gelu_tanh from their decompositions.
void populateRaiseActivationsPatterns(mlir::RewritePatternSet &patterns,
                                      double tolerance = 1e-4);
/// llm.linear and llm.embedding from matmuls and gathers of weights.
void populateRaiseLinearPatterns(mlir::RewritePatternSet &patterns);
/// llm.rope and llm.rotary_table; with `readWeights`, inverse frequencies
/// kept as `llm.weight`s are read from their external data or ONNX file.
void populateRaiseRopePatterns(mlir::RewritePatternSet &patterns,
                               bool readWeights = true);
/// llm.attention from softmax(q k^T * scale + mask) v.
void populateRaiseAttentionPatterns(mlir::RewritePatternSet &patterns);
/// llm.gated_mlp from three linears around an activation.
void populateRaiseGatedMLPPatterns(mlir::RewritePatternSet &patterns);

/// Registers every llm pass with the global pass registry
/// (`registerLLMPasses()`, and one `register<Pass>()` per pass).
#define GEN_PASS_REGISTRATION
#include "kiln/Dialect/LLM/Transforms/Passes.h.inc"

} // namespace kiln::llm

#endif // KILN_DIALECT_LLM_TRANSFORMS_PASSES_H
