//===- Pipelines.h - Kiln's registered pass pipelines -----------*- C++ -*-===//

#ifndef KILN_PIPELINES_PIPELINES_H
#define KILN_PIPELINES_PIPELINES_H

#include <cstdint>

namespace mlir {
class OpPassManager;
class DialectRegistry;
} // namespace mlir

namespace kiln {

/// Raises an imported module (generic ONNX-semantics llm ops) into model
/// ops: folds shape arithmetic, then raises norms, activations, linear
/// layers, rotary embeddings, attention and MLPs. `kiln-opt
/// --kiln-raise-pipeline` runs the same passes.
/// Without `raiseGatedMLP` the MLP stays three llm.linear ops around the
/// activation (calibration reads the down projection's input).
void buildRaisePipeline(mlir::OpPassManager &pm, bool raiseGatedMLP = true);

/// The raise pipeline followed by -llm-kv-cache-layout: @prefill and
/// @decode over packed tokens and a paged KV cache of `blockSize`-token
/// blocks (`kiln-opt --kiln-paged-pipeline="block-size=16 all-logits=0"`).
void buildPagedPipeline(mlir::OpPassManager &pm, int64_t blockSize = 16,
                        bool allLogits = false);

/// Registers the pipelines with the global pass registry.
void registerPipelines();

/// Registers every dialect Kiln's tools need.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Registers every pass and pipeline (for kiln-opt).
void registerAllPasses();

} // namespace kiln

#endif // KILN_PIPELINES_PIPELINES_H
