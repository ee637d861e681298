//===- Passes.td - Raising passes of the llm dialect -------*- tablegen -*-===//
//
// The passes that turn an imported ONNX graph (generic llm ops with ONNX
// semantics) into llm model ops. Each pass is a thin wrapper around a
// `populate<Name>Patterns` function that kiln-opt, the raise pipeline and
// unit tests share.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_TRANSFORMS_PASSES
#define KILN_DIALECT_LLM_TRANSFORMS_PASSES

include "mlir/Pass/PassBase.td"

def LLMFoldShapes : Pass<"llm-fold-shapes", "::mlir::func::FuncOp"> {
  let summary = "Infers static shapes and folds the shape arithmetic of an imported graph.";
  let description = [{
    Refines the result types of generic ops from their operands (ONNX shape
    inference: broadcasting, matmul, reshape with a known shape vector,
    slices and gathers with constant parameters, ...), then folds what
    becomes constant: `llm.shape` of static dimensions, gathers, slices,
    concats, (un)squeezes, casts and integer arithmetic of constants, and
    shape vectors whose every element is a known constant. Reshapes,
    expands, transposes, slices, casts and concats that provably return
    their input are removed, as are the multiply-by-one and the
    reshape/transpose/reshape sequence the dynamo exporter emits for a
    transpose of the last two dimensions. Dead ops are erased. The
    function's result types follow the refined types of the returned values.

    Only small tensors are folded (`max-fold-elements`), so that masks of a
    static size do not turn into large inline constants.
  }];
  let options = [
    Option<"maxFoldElements", "max-fold-elements", "int64_t", "1024",
           "Largest number of elements a folded constant may have">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseNorms : Pass<"llm-raise-norms", "::mlir::func::FuncOp"> {
  let summary = "Raises decomposed RMSNorm and LayerNorm chains into llm.rms_norm and llm.layer_norm.";
  let description = [{
    Matches `x * reciprocal(sqrt(mean(x^2, -1) + eps)) * weight`, with the
    reciprocal written as `1 / sqrt`, a division by the square root or
    `pow(., -0.5)`, `x^2` written as `x * x`, the weight on either side of
    the product, the Gemma form `(1 + weight)` (weight_offset = 1), and the
    Cast to f32 and back that Hugging Face inserts around the statistics of
    half-precision models. LayerNorm is matched as
    `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * weight (+ bias)`.
    The reduction must be over the last axis only, with keepdims, and the
    weight a 1-D tensor of the normalized size.
  }];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseActivations : Pass<"llm-raise-activations", "::mlir::func::FuncOp"> {
  let summary = "Raises decomposed SiLU and GELU activations into llm.silu, llm.gelu and llm.gelu_tanh.";
  let description = [{
    `x * sigmoid(x)` becomes `llm.silu`; `0.5 * x * (1 + erf(x / sqrt(2)))`
    (in any association of the product, with the division written as a
    multiplication by 1/sqrt(2)) becomes `llm.gelu`; and
    `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))` becomes
    `llm.gelu_tanh`. Constants must match to `tolerance` (relative).
  }];
  let options = [
    Option<"tolerance", "tolerance", "double", "1e-4",
           "Relative tolerance on the constants of the GELU formulas">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseLinear : Pass<"llm-raise-linear", "::mlir::func::FuncOp"> {
  let summary = "Raises matmuls and gathers of weights into llm.linear and llm.embedding.";
  let description = [{
    `llm.matmul(x, W)` with `W` a rank-2 `llm.weight` becomes `llm.linear`
    (`W` in the K x N layout); `llm.matmul(x, llm.transpose(W, [1, 0]))`
    becomes `llm.linear {transpose_weight}` on the untransposed weight (the
    Hugging Face N x K layout). An `llm.add` of the result and a 1-D bias of
    N elements (a weight or constant) becomes the bias operand. A gather
    along axis 0 of a rank-2 weight by integer ids becomes `llm.embedding`.
  }];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseRope : Pass<"llm-raise-rope", "::mlir::func::FuncOp"> {
  let summary = "Raises rotary position embeddings into llm.rope and llm.rotary_table.";
  let description = [{
    The rotate-half form `x * cos + concat(-x[..., D/2:], x[..., :D/2]) * sin`
    with `cos`/`sin` of shape `[B, S, D]` unsqueezed at dimension 1 becomes
    `llm.rope` (rotary_dim = D); `concat(rope(x[..., :r]), x[..., r:])`
    (partial rotary embeddings) becomes `llm.rope` of x with rotary_dim = r.
    The table computation of Hugging Face's rotary embedding module,
    `cos/sin(concat(f, f))` with
    `f = transpose(inv_freq[:, None] @ float(positions)[:, None, :])` and an
    optional `attention_scaling` factor, becomes `llm.rotary_table`; when
    inv_freq was broadcast to a batch read from another tensor, the
    positions are expanded the same way. The inverse frequencies are read
    from an `llm.constant`, or, when `read-weights` is set, from the
    external data file or the ONNX initializer behind an `llm.weight`;
    `theta` is recorded when they form the plain `theta^(-2i/dim)` series.
    An fp32 table whose results are read only by casts to one of f16 and
    bf16 yields that type itself (the casts are folded away).
  }];
  let options = [
    Option<"readWeights", "read-weights", "bool", "true",
           "Read inverse frequencies stored as external-data weights">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseAttention : Pass<"llm-raise-attention", "::mlir::func::FuncOp"> {
  let summary = "Raises scaled dot-product attention into llm.attention.";
  let description = [{
    Matches `softmax(q' @ k'^T (* scale) + mask, -1) @ v` where the scale is
    applied to the product, or to q and k separately (as the dynamo exporter
    does with sqrt(scale) each), as a multiplication or a division by a
    constant, and k^T is a [0, 1, 3, 2] transpose of k or one transpose of
    the [B, S, H, D] projection. The grouped-query expansion of k and v
    (`repeat_kv`: unsqueeze, expand, reshape) is absorbed, so that
    `llm.attention` reads K/V with kv_heads heads; when the expand's batch
    or length is read from another tensor than k/v (dynamo reads another
    layer's past), k/v are expanded by those explicitly so that the result
    stays exact. `num_heads` and `kv_heads` come from static shapes; when
    they are not static the pattern does not fire. The additive mask stays
    an operand. The `where(isnan(p), 0, p)` guard of the exporters is
    dropped when the mask is provably finite and otherwise kept on the
    attention output, where it zeroes the same fully masked rows.
  }];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMRaiseGatedMLP : Pass<"llm-raise-gated-mlp", "::mlir::func::FuncOp"> {
  let summary = "Raises down(act(gate(x)) * up(x)) into llm.gated_mlp.";
  let description = [{
    Matches three bias-free `llm.linear` ops of one input and one weight
    layout around an `llm.silu`, `llm.gelu` or `llm.gelu_tanh` activation
    and an elementwise product, each intermediate value used once.
  }];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMReportUnraised : Pass<"llm-report-unraised", "::mlir::func::FuncOp"> {
  let summary = "Lists the generic ops left after raising, with the reason each was not raised.";
  let description = [{
    Emits one remark on each function that still holds generic (ONNX
    semantics) ops, listing them grouped by op name with counts and the
    reason category of each: `shape arithmetic` (integer shape
    computations), `mask building` (boolean and mask values feeding
    attention), `rotary table` (cos/sin computations not raised),
    `head layout` (reshapes and transposes of activations), `kv cache`
    (concatenation of past keys/values), `residual connection`,
    `dtype conversion`, `quantized matmul` (no model-op form yet) or
    `unmatched arithmetic`. With `fail-on-unraised` the remark is an error
    and the pass fails.
  }];
  let options = [
    Option<"failOnUnraised", "fail-on-unraised", "bool", "false",
           "Report left generic ops as an error and fail">
  ];
}

def LLMKVCacheLayout : Pass<"llm-kv-cache-layout", "::mlir::ModuleOp"> {
  let summary = "Rewrites a raised model into prefill and decode entry points over a paged KV cache.";
  let description = [{
    Replaces the model function (`@main`: stateless `input_ids -> logits`,
    or with past/present key-value inputs and outputs) by two functions over
    packed tokens and a paged KV cache, with the argument conventions of the
    runtime's `ForwardBatch`:

    ```
    func.func @prefill(%tokens: tensor<?xi64>, %positions: tensor<?xi64>,
                       %query_start_loc: tensor<?xi32>,
                       %block_tables: tensor<?x?xi32>,
                       %context_lens: tensor<?xi32>,
                       %slot_mapping: tensor<?xi64>,
                       %kv_cache: tensor<L x ? x 2 x Hkv x block x D x dtype>)
        -> (tensor<?xVxf..>, tensor<L x ? x 2 x Hkv x block x D x dtype>)
    func.func @decode(...same arguments...) -> (...same results...)
    ```

    The `T` tokens of `N` sequences are packed token-major (`[T, hidden]`,
    heads as `[T, H, D]`); batch and sequence length are never baked in, so
    a model exported at batch 1 serves any number of sequences. Each
    `llm.attention` becomes `llm.kv_cache_write` of the step's keys and
    values at `slot_mapping` followed by `llm.paged_attention` over the
    sequence's block table (layer `l` is the `l`-th attention of the
    function); rotary tables read `positions`, position embeddings too.
    `@prefill` returns the logits of the last token of each sequence
    (`[N, V]`, selected by `llm.gather_last_tokens` before the final norm
    and LM head) or, with `all-logits`, of every token (`[T, V]`); `@decode`
    takes one token per sequence (`query_start_loc = [0, 1, ..., N]`) and
    returns `[N, V]`.

    The rewrite follows every value from the token ids to the logits and
    re-creates each op in packed form: model ops, casts, elementwise
    arithmetic with weights or constants, residual additions, reshapes that
    keep token rows, the `[0, 2, 1, 3]` head transposes, last-axis splits
    and slices (fused projections), rotary embeddings and attention. The
    attention mask, the shape arithmetic and the past/present
    concatenations are dropped: paged attention is causal by construction.
    Anything else on that path (a slice along the sequence, a mask that reads
    the token ids, non-causal attention) fails with an error at the op that
    says what was expected.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "16",
           "Tokens per KV-cache block">,
    Option<"allLogits", "all-logits", "bool", "false",
           "@prefill returns the logits of every token instead of the last "
           "token of each sequence">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect",
                           "::mlir::func::FuncDialect"];
}

def LLMSpeculativeDecode : Pass<"llm-speculative-decode", "::mlir::ModuleOp"> {
  let summary = "Adds the @verify entry point that scores drafted tokens for speculative decoding.";
  let description = [{
    Speculative decoding drafts `k` tokens per sequence (a small draft
    model, or n-gram prompt lookup; the runtime's SpeculativeEngine runs the
    proposal loop, one draft @decode per drafted token) and scores them with
    the target in one pass over its paged KV cache: each sequence appends
    its last committed token and its `k` drafts (`k + 1` rows) on top of its
    cached context and needs the logits of every row, to accept the longest
    agreeing prefix (greedy) or to apply the rejection-sampling rule.

    This pass builds that entry point, `@verify`, from the laid-out
    `@prefill` (output of `-llm-kv-cache-layout`): the same arguments and
    cache, with the `llm.gather_last_tokens` selection removed so that the
    final norm and LM head run on every row (`[T, vocab]` logits,
    `llm.logits = "all"`). Rows already in the cache are not recomputed:
    paged attention is causal per sequence over its whole context. The
    module records `llm.speculative = {k, draft}` (`draft`: "model", or
    "ngram" with no draft model), which kiln-compile carries into the
    artifact as the default K. With `draft-vocab`, the draft model's
    vocabulary must equal the target's (both score the same token ids).
  }];
  let options = [
    Option<"k", "k", "int64_t", "4",
           "Tokens drafted per sequence and step (@verify scores k + 1)">,
    Option<"draftVocab", "draft-vocab", "int64_t", "0",
           "Vocabulary size of the draft model; 0 means n-gram prompt "
           "lookup (no draft model)">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect",
                           "::mlir::func::FuncDialect"];
}

def LLMQuantizeWeights : Pass<"llm-quantize-weights", "::mlir::ModuleOp"> {
  let summary = "Quantizes the weights of linear layers and gated MLPs into packed low-bit form.";
  let description = [{
    Every dense weight of an `llm.linear` or `llm.gated_mlp` (a 2-D float
    `llm.weight`) whose name contains none of the `skip` substrings is
    quantized and re-emitted as an `llm.weight` of type `!llm.qweight` whose
    bytes (packed integers or fp8 values, scales, zero points: the layout of
    docs/Quantization.md) are appended to `data-file`; the op reads the new
    weight. A weight also read by another op (a tied embedding) keeps its
    dense definition for that op.

    `bits` is 8 or 4; `group-size` is the number of input features sharing
    a scale (0: one scale per output channel); `zero-point` stores an
    unsigned zero point per group instead of the symmetric code.
    `format=fp8e4m3` stores fp8 values with per-channel scales (bits 8, no
    group, no zero points). `method` is `rtn` (round to nearest), `gptq`
    (second-order error feedback) or `awq` (activation-aware scales folded
    into the producing RMSNorm or up projection, then rounding); the last
    two need calibration statistics (kiln-compile `--calibration-text`). A combination the kernels cannot serve (a group
    that does not divide the input features, fp8 with groups or zero
    points, 4-bit rows of an odd length) is an error naming the options.
  }];
  let options = [
    Option<"bits", "bits", "int64_t", "8", "Bits per weight: 8 or 4">,
    Option<"groupSize", "group-size", "int64_t", "0",
           "Input features per scale (0: per output channel)">,
    Option<"zeroPoint", "zero-point", "bool", "false",
           "Asymmetric quantization with a zero point per group">,
    Option<"format", "format", "std::string", "\"int\"",
           "Value encoding: int or fp8e4m3">,
    Option<"method", "method", "std::string", "\"rtn\"",
           "rtn, gptq or awq (the latter two calibrated)">,
    ListOption<"skip", "skip", "std::string",
               "Weights whose name contains one of these are kept dense; "
               "lm_head also keeps the output projection (the linear whose "
               "result is returned)">,
    Option<"dataFile", "data-file", "std::string", "\"\"",
           "File the packed bytes are written to (relative paths resolve "
           "against the model's directory)">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

def LLMSparsify2to4 : Pass<"llm-sparsify-2to4", "::mlir::ModuleOp"> {
  let summary = "Prunes the weights of linear layers and gated MLPs to 2:4 sparsity and compresses them.";
  let description = [{
    Every dense weight of an `llm.linear` or `llm.gated_mlp` whose name
    contains none of the `skip` substrings keeps two of every four
    consecutive input weights of each output channel and is re-emitted as
    an `llm.weight` of type `!llm.sparse24` whose bytes (the kept values and
    2-bit position metadata, docs/Quantization.md) are appended to
    `data-file`. `method` chooses what is kept: `magnitude` (largest |w|),
    `wanda` (largest |w| * ||x||, calibrated) or `sparsegpt` (calibrated
    second-order pruning with error feedback). The input features must be
    a multiple of 8.
  }];
  let options = [
    Option<"method", "method", "std::string", "\"magnitude\"",
           "magnitude, wanda or sparsegpt (the latter two calibrated)">,
    ListOption<"skip", "skip", "std::string",
               "Weights whose name contains one of these are kept dense; "
               "lm_head also keeps the output projection (the linear whose "
               "result is returned)">,
    Option<"dataFile", "data-file", "std::string", "\"\"",
           "File the compressed bytes are written to">
  ];
  let dependentDialects = ["::kiln::llm::LLMDialect"];
}

#endif // KILN_DIALECT_LLM_TRANSFORMS_PASSES
