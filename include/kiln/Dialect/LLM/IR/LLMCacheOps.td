//===- LLMCacheOps.td - Paged KV-cache ops of the llm dialect -*- tablegen -*-===//
//
// The ops of the entry points `-llm-kv-cache-layout` produces: a step's
// tokens are packed token-major ([T, hidden], heads as [T, H, D]) over a
// ragged batch of sequences, and keys/values live in a paged cache addressed
// by the runtime's block tables and slot mapping (runtime/include/kiln/
// runtime/ForwardBatch.h names the same arrays).
//
// The cache is one tensor `[layers, num_blocks, 2, kv_heads, block_size,
// head_dim]`: index 0 of the third dimension holds keys, 1 values; a token's
// slot is `block * block_size + offset`. Ops take and return it by value; the
// runtime updates it in place.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_CACHE_OPS
#define KILN_DIALECT_LLM_CACHE_OPS

def LLM_KVCacheWriteOp : LLM_Op<"kv_cache_write",
    [Pure, AllTypesMatch<["cache", "result"]>]> {
  let summary = "Writes the keys and values of a step's tokens into the paged KV cache of one layer.";
  let description = [{
    `cache` is `[layers, num_blocks, 2, kv_heads, block_size, head_dim]`,
    `key` and `value` are `[T, kv_heads, head_dim]` (the packed tokens of the
    step, grouped-query heads stored once), `slot_mapping` is `[T]` integers:
    token `t` is written to block `slot_mapping[t] / block_size`, offset
    `slot_mapping[t] % block_size` of layer `layer` (a negative slot skips
    the token, vLLM's padding convention). The result is the updated cache
    (value semantics; the runtime performs the write in place).

    ```mlir
    %c1 = llm.kv_cache_write %c0, %k, %v, %slots {layer = 0 : i64}
        : (tensor<2x?x2x2x16x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>,
           tensor<?xi64>) -> tensor<2x?x2x2x16x8xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$cache, AnyTensor:$key, AnyTensor:$value,
                       AnyTensor:$slot_mapping, I64Attr:$layer);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $cache `,` $key `,` $value `,` $slot_mapping attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def LLM_PagedAttentionOp : LLM_Op<"paged_attention", [Pure]> {
  let summary = "Causal grouped-query attention of packed query tokens over the paged KV cache.";
  let description = [{
    `query` is `[T, num_heads, head_dim]`, the packed tokens of `N`
    sequences: the rows of sequence `s` are
    `[query_start_loc[s], query_start_loc[s + 1])` (`query_start_loc` has
    `N + 1` entries). `context_lens[s]` is the sequence's length after this
    step, so the `n` query rows of `s` are its last `n` tokens: row `t` has
    position `p = context_lens[s] - query_start_loc[s + 1] + t`. It attends to
    the cached positions `0..p` of `s` (and only the last `sliding_window`
    of them when set): position `j` lives in block
    `block_tables[s, j / block_size]` at offset `j % block_size` of layer
    `layer` of `cache` (`[layers, num_blocks, 2, kv_heads, block_size,
    head_dim]`). The step's own keys and values must already be written
    (`llm.kv_cache_write`). Query head `h` reads KV head
    `h / (num_heads / kv_heads)`; scores are `scale * q . k`, then
    `softcap * tanh(score / softcap)` when `softcap` is set. The result is
    `[T, num_heads, head_dim]`.
  }];
  let arguments = (ins AnyTensor:$query, AnyRankedTensor:$cache,
                       AnyTensor:$block_tables, AnyTensor:$context_lens,
                       AnyTensor:$query_start_loc, I64Attr:$layer,
                       F32Attr:$scale, I64Attr:$num_heads, I64Attr:$kv_heads,
                       OptionalAttr<I64Attr>:$sliding_window,
                       OptionalAttr<F32Attr>:$softcap);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $query `,` $cache `,` $block_tables `,` $context_lens `,` $query_start_loc attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def LLM_GatherLastTokensOp : LLM_Op<"gather_last_tokens", [Pure]> {
  let summary = "Selects the row of the last token of each sequence from packed token-major rows.";
  let description = [{
    `input` is `[T, ...]` (packed tokens), `query_start_loc` the `N + 1`
    prefix sums of the sequences' token counts; row `s` of the `[N, ...]`
    result is row `query_start_loc[s + 1] - 1` of `input`. The prefill entry
    point applies it before the final norm and LM head, so that logits are
    computed only for the tokens whose next token is sampled.
  }];
  let arguments = (ins AnyTensor:$input, AnyTensor:$query_start_loc);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input `,` $query_start_loc attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_DIALECT_LLM_CACHE_OPS
