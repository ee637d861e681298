//===- LLMOps.td - Operations of the llm dialect -------------*- tablegen -*-===//

#ifndef KILN_DIALECT_LLM_OPS
#define KILN_DIALECT_LLM_OPS

include "kiln/Dialect/LLM/IR/LLMBase.td"
include "kiln/Dialect/LLM/IR/LLMAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def LLM_WeightLike : AnyTypeOf<[AnyTensor, LLM_QuantizedWeightType,
                                LLM_SparseWeightType]>;

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

def LLM_WeightOp : LLM_Op<"weight", [Pure]> {
  let summary = "A named model parameter whose bytes live outside the IR.";
  let description = [{
    Yields the parameter `name`, whose bytes are found through `source`
    (`#llm.external_data` or `#llm.initializer`). The IR carries the name,
    shape and element type only, so a multi-gigabyte model prints in a few
    kilobytes.

    ```mlir
    %w = llm.weight "lm_head.weight" (#llm.external_data<path = "model.onnx.data",
             offset = 0, length = 131072>) : tensor<512x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, AnyAttr:$source);
  let results = (outs LLM_WeightLike:$result);
  let assemblyFormat = "$name `(` $source `)` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def LLM_ConstantOp : LLM_Op<"constant", [Pure, ConstantLike]> {
  let summary = "A small tensor constant written inline in the IR.";
  let description = [{
    Shape arithmetic, axes and scalars of an imported graph. Large tensors are
    `llm.weight` ops instead, so that their bytes stay out of the IR text.
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
  let hasFolder = 1;
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

def LLM_EmbeddingOp : LLM_Op<"embedding", [Pure]> {
  let summary = "Looks up the rows of an embedding table for token ids.";
  let description = [{
    `table` is `[vocab, hidden]`, `ids` any integer tensor; the result has the
    shape of `ids` followed by `hidden`.
  }];
  let arguments = (ins AnyTensor:$table, AnyTensor:$ids);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$table `[` $ids `]` attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_RMSNormOp : LLM_Op<"rms_norm", [Pure]> {
  let summary = "Root-mean-square normalization over the last dimension, scaled by a weight.";
  let description = [{
    `y = x / sqrt(mean(x^2, -1) + epsilon) * (weight + weight_offset)`.
    `weight_offset` is 1 for Gemma, whose weights are stored minus one.
  }];
  let arguments = (ins AnyTensor:$input, AnyTensor:$weight, F32Attr:$epsilon,
                       DefaultValuedAttr<F32Attr, "0.0">:$weight_offset);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_LayerNormOp : LLM_Op<"layer_norm", [Pure]> {
  let summary = "Layer normalization over the last dimension with weight and optional bias.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$weight, Optional<AnyTensor>:$bias,
                       F32Attr:$epsilon);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_RotaryTableOp : LLM_Op<"rotary_table", [Pure]> {
  let summary = "Builds the cos and sin tables of rotary embeddings for position ids.";
  let description = [{
    For positions `p` of shape `[B, S]` (or `[T]`, the packed tokens of the
    paged entry points) and the inverse frequencies `inv_freq`
    (`rotary_dim / 2` of them), yields `cos` and `sin` of shape
    `[B, S, rotary_dim]` (`[T, rotary_dim]`):
    `angle[b, s, i] = p[b, s] * inv_freq[i mod rotary_dim/2]`,
    times `attention_scaling`. `theta` is set when `inv_freq` is the plain
    `theta^(-2i/rotary_dim)` series (no llama3/yarn scaling).
  }];
  let arguments = (ins AnyTensor:$positions, DenseF32ArrayAttr:$inv_freq,
                       DefaultValuedAttr<F32Attr, "1.0">:$attention_scaling,
                       OptionalAttr<F64Attr>:$theta);
  let results = (outs AnyTensor:$cos, AnyTensor:$sin);
  let assemblyFormat = "$positions attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_RopeOp : LLM_Op<"rope", [Pure]> {
  let summary = "Applies rotary position embeddings to queries or keys.";
  let description = [{
    `input` is `[B, H, S, D]`, `cos` and `sin` are `[B, S, rotary_dim]`; or,
    in the packed form of the paged entry points, `input` is `[T, H, D]` and
    `cos`/`sin` are `[T, rotary_dim]`. The first `rotary_dim` channels are
    rotated in the half-split (GPT-NeoX/Llama) convention:
    `y = x * cos + rotate_half(x) * sin`; the rest pass through.
  }];
  let arguments = (ins AnyTensor:$input, AnyTensor:$cos, AnyTensor:$sin,
                       I64Attr:$rotary_dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `,` $cos `,` $sin attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_LinearOp : LLM_Op<"linear", [Pure]> {
  let summary = "A dense layer: the input times a weight matrix, plus an optional bias.";
  let description = [{
    `y = x @ W + b` over the last dimension of `x`. `W` is `[K, N]`, or
    `[N, K]` with `transpose_weight` (the Hugging Face layout); it may be a
    quantized (`!llm.qweight`) or 2:4-sparse (`!llm.sparse24`) weight.
  }];
  let arguments = (ins AnyTensor:$input, LLM_WeightLike:$weight,
                       Optional<AnyTensor>:$bias, UnitAttr:$transpose_weight);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLM_AttentionOp : LLM_Op<"attention", [Pure]> {
  let summary = "Scaled dot-product attention with grouped-query key/value heads.";
  let description = [{
    `query` is `[B, num_heads, S, D]`; `key` and `value` are
    `[B, kv_heads, T, D]` with `num_heads` a multiple of `kv_heads` (query
    head `h` reads KV head `h / (num_heads / kv_heads)`). With `causal`, query
    `i` sees keys `j <= i + T - S`; `sliding_window` further limits it to the
    last `window` keys; `mask` (broadcastable to `[B, num_heads, S, T]`) is
    added to the scores. `softcap` applies `c * tanh(s / c)` to the scores.
  }];
  let arguments = (ins AnyTensor:$query, AnyTensor:$key, AnyTensor:$value,
                       Optional<AnyTensor>:$mask, F32Attr:$scale,
                       I64Attr:$num_heads, I64Attr:$kv_heads,
                       DefaultValuedAttr<BoolAttr, "false">:$causal,
                       OptionalAttr<I64Attr>:$sliding_window,
                       OptionalAttr<F32Attr>:$softcap);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`mask` $mask^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def LLM_GatedMLPOp : LLM_Op<"gated_mlp", [Pure]> {
  let summary = "A gated feed-forward block: down(act(gate(x)) * up(x)).";
  let description = [{
    The SwiGLU/GeGLU MLP of Llama-family models. Weights are `[K, N]`, or
    `[N, K]` with `transpose_weights`; `activation` is `silu`, `gelu` or
    `gelu_tanh`.
  }];
  let arguments = (ins AnyTensor:$input, LLM_WeightLike:$gate_weight,
                       LLM_WeightLike:$up_weight, LLM_WeightLike:$down_weight,
                       StrAttr:$activation, UnitAttr:$transpose_weights);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $gate_weight `,` $up_weight `,` $down_weight attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

class LLM_ActivationOp<string mnemonic, string what>
    : LLM_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = what;
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def LLM_SiLUOp : LLM_ActivationOp<"silu", "The SiLU (swish) activation x * sigmoid(x).">;
def LLM_GeluOp : LLM_ActivationOp<"gelu", "The exact GELU activation x * Phi(x).">;
def LLM_GeluTanhOp : LLM_ActivationOp<"gelu_tanh", "The tanh approximation of GELU.">;
def LLM_ReluOp : LLM_ActivationOp<"relu", "The rectified linear unit max(x, 0).">;

include "kiln/Dialect/LLM/IR/LLMCacheOps.td"
include "kiln/Dialect/LLM/IR/LLMGenericOps.td"

#endif // KILN_DIALECT_LLM_OPS
