// RUN: kiln-opt %s -split-input-file -verify-diagnostics -llm-speculative-decode="k=3 draft-vocab=32" | FileCheck %s
// RUN: kiln-opt %s -split-input-file -verify-diagnostics -llm-speculative-decode | FileCheck %s --check-prefix=NGRAM

// @verify is @prefill without the last-token selection: the final norm and
// the LM head run on every appended row (the last committed token and the
// k drafts of each sequence), over the same paged cache. @prefill stays.

// CHECK: module attributes {llm.speculative = {draft = "model", k = 3 : i64}}
// CHECK-LABEL: func.func @prefill
// CHECK-SAME: attributes {llm.logits = "last"}
// CHECK: llm.gather_last_tokens
// CHECK-LABEL: func.func @verify
// CHECK-SAME: (%[[TOK:.*]]: tensor<?xi64> {llm.name = "tokens"}, {{.*}}, %[[CACHE:.*]]: tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"})
// CHECK-SAME: -> (tensor<?x32xf32> {llm.name = "logits"}, tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"})
// CHECK-SAME: attributes {llm.logits = "all", llm.verify_tokens = 4 : i64}
// CHECK-NOT: llm.gather_last_tokens
// CHECK: %[[X:.*]] = llm.embedding %{{.*}}[%[[TOK]]]
// CHECK: %[[C:.*]] = llm.kv_cache_write %[[CACHE]]
// CHECK: %[[A:.*]] = llm.paged_attention %{{.*}}, %[[C]]
// CHECK: %[[AF:.*]] = llm.reshape %[[A]]
// CHECK: %[[F:.*]] = llm.rms_norm %[[AF]]
// CHECK: %[[L:.*]] = llm.linear %[[F]], %{{.*}} : (tensor<?x8xf32>, tensor<8x32xf32>) -> tensor<?x32xf32>
// CHECK: return %[[L]], %[[C]]
// CHECK-LABEL: func.func @decode

// NGRAM: module attributes {llm.speculative = {draft = "ngram", k = 4 : i64}}
// NGRAM: func.func @verify
// NGRAM-SAME: llm.verify_tokens = 5 : i64

module {
func.func @prefill(%tokens: tensor<?xi64> {llm.name = "tokens"}, %positions: tensor<?xi64> {llm.name = "positions"}, %qsl: tensor<?xi32> {llm.name = "query_start_loc"}, %bt: tensor<?x?xi32> {llm.name = "block_tables"}, %cl: tensor<?xi32> {llm.name = "context_lens"}, %slots: tensor<?xi64> {llm.name = "slot_mapping"}, %cache: tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"}) -> (tensor<?x32xf32> {llm.name = "logits"}, tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"}) attributes {llm.logits = "last"} {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<32x8xf32>
  %norm = llm.weight "norm"(#llm.external_data<path = "w.bin", offset = 0, length = 32>) : tensor<8xf32>
  %head = llm.weight "lm_head"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<8x32xf32>
  %shape = llm.constant dense<[-1, 1, 8]> : tensor<3xi64> : tensor<3xi64>
  %flat = llm.constant dense<[-1, 8]> : tensor<2xi64> : tensor<2xi64>
  %x = llm.embedding %embed[%tokens] : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %x3 = llm.reshape %x, %shape : (tensor<?x8xf32>, tensor<3xi64>) -> tensor<?x1x8xf32>
  %c = llm.kv_cache_write %cache, %x3, %x3, %slots {layer = 0 : i64} : (tensor<1x?x2x1x16x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?xi64>) -> tensor<1x?x2x1x16x8xf32>
  %a3 = llm.paged_attention %x3, %c, %bt, %cl, %qsl {kv_heads = 1 : i64, layer = 0 : i64, num_heads = 1 : i64, scale = 0.353553385 : f32} : (tensor<?x1x8xf32>, tensor<1x?x2x1x16x8xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x1x8xf32>
  %a = llm.reshape %a3, %flat : (tensor<?x1x8xf32>, tensor<2xi64>) -> tensor<?x8xf32>
  %last = llm.gather_last_tokens %a, %qsl : (tensor<?x8xf32>, tensor<?xi32>) -> tensor<?x8xf32>
  %f = llm.rms_norm %last, %norm {epsilon = 1.0e-6 : f32} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %logits = llm.linear %f, %head : (tensor<?x8xf32>, tensor<8x32xf32>) -> tensor<?x32xf32>
  return %logits, %c : tensor<?x32xf32>, tensor<1x?x2x1x16x8xf32>
}
func.func @decode(%tokens: tensor<?xi64> {llm.name = "tokens"}) -> (tensor<?x32xf32> {llm.name = "logits"}) attributes {llm.logits = "all"} {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<32x8xf32>
  %head = llm.weight "lm_head"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<8x32xf32>
  %x = llm.embedding %embed[%tokens] : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %logits = llm.linear %x, %head : (tensor<?x8xf32>, tensor<8x32xf32>) -> tensor<?x32xf32>
  return %logits : tensor<?x32xf32>
}
}

// -----

// expected-error @+1 {{expected a @prefill over the paged KV cache to build @verify from (run -llm-kv-cache-layout first)}}
module {
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?xi64> {
  return %ids : tensor<?x?xi64>
}
}

// -----

module {
// expected-error @+1 {{a @verify already exists: the module is set up for speculative decoding already}}
func.func @verify(%ids: tensor<?xi64>) -> tensor<?xi64> {
  return %ids : tensor<?xi64>
}
}

// -----

module {
// expected-error @+1 {{expected @prefill to return [rows, vocab] logits first}}
func.func @prefill(%ids: tensor<?xi64>) -> tensor<?xi64> {
  return %ids : tensor<?xi64>
}
}
