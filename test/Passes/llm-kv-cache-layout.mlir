// RUN: kiln-opt %s -split-input-file -verify-diagnostics -llm-kv-cache-layout | FileCheck %s
// RUN: kiln-opt %s -split-input-file -verify-diagnostics -llm-kv-cache-layout="block-size=4 all-logits=true" | FileCheck %s --check-prefix=ALL

// A raised Llama-style layer (GQA 2:1, rope, gated MLP) becomes @prefill and
// @decode over packed tokens: the head transposes vanish, the rotary table
// reads `positions`, attention writes the cache then reads it through the
// block tables, and @prefill selects the last token of each sequence before
// the final norm and the LM head.

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[TOK:.*]]: tensor<?xi64> {llm.name = "tokens"}, %[[POS:.*]]: tensor<?xi64> {llm.name = "positions"}, %[[QSL:.*]]: tensor<?xi32> {llm.name = "query_start_loc"}, %[[BT:.*]]: tensor<?x?xi32> {llm.name = "block_tables"}, %[[CL:.*]]: tensor<?xi32> {llm.name = "context_lens"}, %[[SLOT:.*]]: tensor<?xi64> {llm.name = "slot_mapping"}, %[[CACHE:.*]]: tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"})
// CHECK-SAME: -> (tensor<?x32xf32> {llm.name = "logits"}, tensor<1x?x2x1x16x8xf32> {llm.name = "kv_cache"})
// CHECK-SAME: attributes {llm.logits = "last"}
// CHECK: %[[COS:.*]], %[[SIN:.*]] = llm.rotary_table %[[POS]] {{.*}} : (tensor<?xi64>) -> (tensor<?x8xf32>, tensor<?x8xf32>)
// CHECK: %[[X:.*]] = llm.embedding %{{.*}}[%[[TOK]]] : (tensor<32x16xf32>, tensor<?xi64>) -> tensor<?x16xf32>
// CHECK: %[[H:.*]] = llm.rms_norm %[[X]]
// CHECK: %[[Q:.*]] = llm.linear %[[H]], %{{.*}} : (tensor<?x16xf32>, tensor<16x16xf32>) -> tensor<?x16xf32>
// CHECK: %[[QS:.*]] = llm.constant dense<[-1, 2, 8]> : tensor<3xi64> : tensor<3xi64>
// CHECK: %[[Q3:.*]] = llm.reshape %[[Q]], %[[QS]] : (tensor<?x16xf32>, tensor<3xi64>) -> tensor<?x2x8xf32>
// CHECK: %[[K3:.*]] = llm.reshape {{.*}} -> tensor<?x1x8xf32>
// CHECK: %[[V3:.*]] = llm.reshape {{.*}} -> tensor<?x1x8xf32>
// CHECK: %[[QR:.*]] = llm.rope %[[Q3]], %[[COS]], %[[SIN]] {rotary_dim = 8 : i64} : (tensor<?x2x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x2x8xf32>
// CHECK: %[[KR:.*]] = llm.rope %[[K3]], %[[COS]], %[[SIN]]
// CHECK: %[[C1:.*]] = llm.kv_cache_write %[[CACHE]], %[[KR]], %[[V3]], %[[SLOT]] {layer = 0 : i64} : (tensor<1x?x2x1x16x8xf32>, tensor<?x1x8xf32>, tensor<?x1x8xf32>, tensor<?xi64>) -> tensor<1x?x2x1x16x8xf32>
// CHECK: %[[A:.*]] = llm.paged_attention %[[QR]], %[[C1]], %[[BT]], %[[CL]], %[[QSL]] {kv_heads = 1 : i64, layer = 0 : i64, num_heads = 2 : i64, scale = 0.353553385 : f32} : (tensor<?x2x8xf32>, tensor<1x?x2x1x16x8xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x2x8xf32>
// CHECK: %[[AM:.*]] = llm.reshape %[[A]], %{{.*}} : (tensor<?x2x8xf32>, tensor<2xi64>) -> tensor<?x16xf32>
// CHECK: %[[O:.*]] = llm.linear %[[AM]]
// CHECK: %[[R1:.*]] = llm.add %[[X]], %[[O]] : (tensor<?x16xf32>, tensor<?x16xf32>) -> tensor<?x16xf32>
// CHECK: llm.gated_mlp {{.*}} -> tensor<?x16xf32>
// CHECK: %[[R2:.*]] = llm.add %[[R1]]
// CHECK: %[[LAST:.*]] = llm.gather_last_tokens %[[R2]], %[[QSL]] : (tensor<?x16xf32>, tensor<?xi32>) -> tensor<?x16xf32>
// CHECK: %[[F:.*]] = llm.rms_norm %[[LAST]]
// CHECK: %[[LOGITS:.*]] = llm.linear %[[F]], %{{.*}} : (tensor<?x16xf32>, tensor<16x32xf32>) -> tensor<?x32xf32>
// CHECK: return %[[LOGITS]], %[[C1]] : tensor<?x32xf32>, tensor<1x?x2x1x16x8xf32>

// CHECK-LABEL: func.func @decode
// CHECK-SAME: attributes {llm.logits = "all"}
// CHECK-NOT: llm.gather_last_tokens
// CHECK: llm.kv_cache_write
// CHECK: llm.paged_attention
// CHECK-NOT: llm.gather_last_tokens
// CHECK: return
// CHECK-NOT: func.func @main

// ALL-LABEL: func.func @prefill
// ALL-SAME: tensor<1x?x2x1x4x8xf32> {llm.name = "kv_cache"}
// ALL-SAME: attributes {llm.logits = "all"}
// ALL-NOT: llm.gather_last_tokens
// ALL: return
// ALL-LABEL: func.func @decode

func.func @main(%ids: tensor<?x?xi64> {llm.name = "input_ids"}) -> (tensor<?x?x32xf32> {llm.name = "logits"}) {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 2048>) : tensor<32x16xf32>
  %n1 = llm.weight "n1"(#llm.external_data<path = "w.bin", offset = 0, length = 64>) : tensor<16xf32>
  %wq = llm.weight "q"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<16x16xf32>
  %wk = llm.weight "k"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wv = llm.weight "v"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wo = llm.weight "o"(#llm.external_data<path = "w.bin", offset = 0, length = 1024>) : tensor<16x16xf32>
  %n2 = llm.weight "n2"(#llm.external_data<path = "w.bin", offset = 0, length = 64>) : tensor<16xf32>
  %wg = llm.weight "gate"(#llm.external_data<path = "w.bin", offset = 0, length = 2048>) : tensor<16x32xf32>
  %wu = llm.weight "up"(#llm.external_data<path = "w.bin", offset = 0, length = 2048>) : tensor<16x32xf32>
  %wd = llm.weight "down"(#llm.external_data<path = "w.bin", offset = 0, length = 2048>) : tensor<32x16xf32>
  %nf = llm.weight "norm"(#llm.external_data<path = "w.bin", offset = 0, length = 64>) : tensor<16xf32>
  %head = llm.weight "lm_head"(#llm.external_data<path = "w.bin", offset = 0, length = 2048>) : tensor<16x32xf32>
  %zero = llm.constant dense<0> : tensor<i64> : tensor<i64>
  %one = llm.constant dense<1> : tensor<i64> : tensor<i64>
  %axis0 = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %qshape = llm.constant dense<[0, 0, 2, 8]> : tensor<4xi64> : tensor<4xi64>
  %kvshape = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %oshape = llm.constant dense<[0, 0, 16]> : tensor<3xi64> : tensor<3xi64>
  // Positions 0..S-1 from the shape of the ids.
  %s1 = llm.shape %ids {start = 1 : i64, end = 2 : i64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s = llm.squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %range = llm.range %zero, %s, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pos = llm.unsqueeze %range, %axis0 : (tensor<?xi64>, tensor<1xi64>) -> tensor<1x?xi64>
  %cos, %sin = llm.rotary_table %pos {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001>} : (tensor<1x?xi64>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>)
  %x = llm.embedding %embed[%ids] : (tensor<32x16xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
  %h = llm.rms_norm %x, %n1 {epsilon = 1.0e-6 : f32} : (tensor<?x?x16xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
  %q = llm.linear %h, %wq : (tensor<?x?x16xf32>, tensor<16x16xf32>) -> tensor<?x?x16xf32>
  %q4 = llm.reshape %q, %qshape : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %k = llm.linear %h, %wk : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %kvshape : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %v = llm.linear %h, %wv : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %kvshape : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %qr = llm.rope %qt, %cos, %sin {rotary_dim = 8 : i64} : (tensor<?x2x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %kr = llm.rope %kt, %cos, %sin {rotary_dim = 8 : i64} : (tensor<?x1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<?x1x?x8xf32>
  %a = llm.attention %qr, %kr, %vt {causal = true, kv_heads = 1 : i64, num_heads = 2 : i64, scale = 0.353553385 : f32} : (tensor<?x2x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x2x?x8xf32>) -> tensor<?x?x2x8xf32>
  %am = llm.reshape %at, %oshape : (tensor<?x?x2x8xf32>, tensor<3xi64>) -> tensor<?x?x16xf32>
  %o = llm.linear %am, %wo : (tensor<?x?x16xf32>, tensor<16x16xf32>) -> tensor<?x?x16xf32>
  %r1 = llm.add %x, %o : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %h2 = llm.rms_norm %r1, %n2 {epsilon = 1.0e-6 : f32} : (tensor<?x?x16xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
  %m = llm.gated_mlp %h2, %wg, %wu, %wd {activation = "silu"} : (tensor<?x?x16xf32>, tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x16xf32>) -> tensor<?x?x16xf32>
  %r2 = llm.add %r1, %m : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %f = llm.rms_norm %r2, %nf {epsilon = 1.0e-6 : f32} : (tensor<?x?x16xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
  %logits = llm.linear %f, %head : (tensor<?x?x16xf32>, tensor<16x32xf32>) -> tensor<?x?x32xf32>
  return %logits : tensor<?x?x32xf32>
}

// -----

// A with-past export at batch 1: the past/present concatenations, the
// additive mask and the NaN guard are dropped; fused q/k/v slices (Phi-3)
// and a scaled embedding (Gemma) are re-created on the packed rows, and the
// presents are no results any more.

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: tensor<1x?x2x1x16x8xf16> {llm.name = "kv_cache"}
// CHECK-SAME: -> (tensor<?x16xf16> {llm.name = "logits"}, tensor<1x?x2x1x16x8xf16> {llm.name = "kv_cache"})
// CHECK: %[[X:.*]] = llm.embedding %{{.*}}[%{{.*}}] : (tensor<16x8xf16>, tensor<?xi64>) -> tensor<?x8xf16>
// CHECK: %[[XS:.*]] = llm.mul %[[X]], %{{.*}} : (tensor<?x8xf16>, tensor<f16>) -> tensor<?x8xf16>
// CHECK: %[[QKV:.*]] = llm.linear %[[XS]], %{{.*}} : (tensor<?x8xf16>, tensor<8x24xf16>) -> tensor<?x24xf16>
// CHECK: %[[AX:.*]] = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
// CHECK: %[[Q:.*]] = llm.slice %[[QKV]], %{{.*}}, %{{.*}} axes %[[AX]] : (tensor<?x24xf16>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x8xf16>
// CHECK: llm.kv_cache_write
// CHECK: %[[A:.*]] = llm.paged_attention
// CHECK-NOT: llm.isnan
// CHECK-NOT: llm.where
// CHECK: llm.gather_last_tokens
// CHECK: return %{{.*}}, %{{.*}} : tensor<?x16xf16>, tensor<1x?x2x1x16x8xf16>

func.func @main(%ids: tensor<1x?xi64> {llm.name = "input_ids"}, %mask_in: tensor<1x?xi64> {llm.name = "attention_mask"},
                %pk: tensor<1x1x?x8xf16> {llm.name = "past_key_values.0.key"}, %pv: tensor<1x1x?x8xf16> {llm.name = "past_key_values.0.value"})
    -> (tensor<1x?x16xf16> {llm.name = "logits"}, tensor<1x1x?x8xf16> {llm.name = "present.0.key"}, tensor<1x1x?x8xf16> {llm.name = "present.0.value"}) {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<16x8xf16>
  %wqkv = llm.weight "qkv"(#llm.external_data<path = "w.bin", offset = 0, length = 384>) : tensor<8x24xf16>
  %head = llm.weight "lm_head"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x16xf16>
  %scale = llm.constant dense<2.828> : tensor<f16> : tensor<f16>
  %zero = llm.constant dense<0.0> : tensor<f16> : tensor<f16>
  %axes = llm.constant dense<2> : tensor<1xi64> : tensor<1xi64>
  %b0 = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %b8 = llm.constant dense<8> : tensor<1xi64> : tensor<1xi64>
  %b16 = llm.constant dense<16> : tensor<1xi64> : tensor<1xi64>
  %b24 = llm.constant dense<24> : tensor<1xi64> : tensor<1xi64>
  %shape4 = llm.constant dense<[1, -1, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %shape3 = llm.constant dense<[1, -1, 8]> : tensor<3xi64> : tensor<3xi64>
  %mf = llm.cast %mask_in : (tensor<1x?xi64>) -> tensor<1x?xf16>
  %mask = llm.reshape %mf, %shape4 : (tensor<1x?xf16>, tensor<4xi64>) -> tensor<1x1x1x?xf16>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf16>, tensor<1x?xi64>) -> tensor<1x?x8xf16>
  %xs = llm.mul %x, %scale : (tensor<1x?x8xf16>, tensor<f16>) -> tensor<1x?x8xf16>
  %qkv = llm.linear %xs, %wqkv : (tensor<1x?x8xf16>, tensor<8x24xf16>) -> tensor<1x?x24xf16>
  %q = llm.slice %qkv, %b0, %b8 axes %axes : (tensor<1x?x24xf16>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1x?x8xf16>
  %k = llm.slice %qkv, %b8, %b16 axes %axes : (tensor<1x?x24xf16>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1x?x8xf16>
  %v = llm.slice %qkv, %b16, %b24 axes %axes : (tensor<1x?x24xf16>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1x?x8xf16>
  %q4 = llm.reshape %q, %shape4 : (tensor<1x?x8xf16>, tensor<4xi64>) -> tensor<1x?x1x8xf16>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x?x1x8xf16>) -> tensor<1x1x?x8xf16>
  %k4 = llm.reshape %k, %shape4 : (tensor<1x?x8xf16>, tensor<4xi64>) -> tensor<1x?x1x8xf16>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x?x1x8xf16>) -> tensor<1x1x?x8xf16>
  %v4 = llm.reshape %v, %shape4 : (tensor<1x?x8xf16>, tensor<4xi64>) -> tensor<1x?x1x8xf16>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x?x1x8xf16>) -> tensor<1x1x?x8xf16>
  %kc = llm.concat %pk, %kt {axis = -2 : i64} : (tensor<1x1x?x8xf16>, tensor<1x1x?x8xf16>) -> tensor<1x1x?x8xf16>
  %vc = llm.concat %pv, %vt {axis = -2 : i64} : (tensor<1x1x?x8xf16>, tensor<1x1x?x8xf16>) -> tensor<1x1x?x8xf16>
  %a = llm.attention %qt, %kc, %vc mask %mask {kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.353553385 : f32} : (tensor<1x1x?x8xf16>, tensor<1x1x?x8xf16>, tensor<1x1x?x8xf16>, tensor<1x1x1x?xf16>) -> tensor<1x1x?x8xf16>
  %nan = llm.isnan %a : (tensor<1x1x?x8xf16>) -> tensor<1x1x?x8xi1>
  %g = llm.where %nan, %zero, %a : (tensor<1x1x?x8xi1>, tensor<f16>, tensor<1x1x?x8xf16>) -> tensor<1x1x?x8xf16>
  %at = llm.transpose %g {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x1x?x8xf16>) -> tensor<1x?x1x8xf16>
  %am = llm.reshape %at, %shape3 : (tensor<1x?x1x8xf16>, tensor<3xi64>) -> tensor<1x?x8xf16>
  %r = llm.add %xs, %am : (tensor<1x?x8xf16>, tensor<1x?x8xf16>) -> tensor<1x?x8xf16>
  %logits = llm.linear %r, %head : (tensor<1x?x8xf16>, tensor<8x16xf16>) -> tensor<1x?x16xf16>
  return %logits, %kc, %vc : tensor<1x?x16xf16>, tensor<1x1x?x8xf16>, tensor<1x1x?x8xf16>
}

// -----

// Attention that is neither causal nor masked cannot use the causal paged kernel.
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wq = llm.weight "wq"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wk = llm.weight "wk"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wv = llm.weight "wv"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %s4 = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %s3 = llm.constant dense<[0, 0, 8]> : tensor<3xi64> : tensor<3xi64>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = llm.linear %x, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %q4 = llm.reshape %q, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %k = llm.linear %x, %wk : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %v = llm.linear %x, %wv : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  // expected-error @+1 {{cannot be laid out for the paged KV cache: expected causal attention (a mask or causal = true)}}
  %a = llm.attention %qt, %kt, %vt {kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.35 : f32} : (tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x1x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x1x?x8xf32>) -> tensor<?x?x1x8xf32>
  %am = llm.reshape %at, %s3 : (tensor<?x?x1x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %am, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %logits : tensor<?x?x16xf32>
}

// -----

// A padding mask computed from the token ids is not causal.
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wq = llm.weight "wq"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wk = llm.weight "wk"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wv = llm.weight "wv"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %s4 = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %s3 = llm.constant dense<[0, 0, 8]> : tensor<3xi64> : tensor<3xi64>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = llm.linear %x, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %q4 = llm.reshape %q, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %k = llm.linear %x, %wk : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %v = llm.linear %x, %wv : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %zero = llm.constant dense<0> : tensor<i64> : tensor<i64>
  %ninf = llm.constant dense<-1.0e+30> : tensor<f32> : tensor<f32>
  %fzero = llm.constant dense<0.0> : tensor<f32> : tensor<f32>
  %pad = llm.equal %ids, %zero : (tensor<?x?xi64>, tensor<i64>) -> tensor<?x?xi1>
  %m2 = llm.where %pad, %ninf, %fzero : (tensor<?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x?xf32>
  %mshape = llm.constant dense<[0, 1, 1, -1]> : tensor<4xi64> : tensor<4xi64>
  %mask = llm.reshape %m2, %mshape : (tensor<?x?xf32>, tensor<4xi64>) -> tensor<?x1x1x?xf32>
  // expected-error @+1 {{expected a causal attention mask, got one computed from the token ids (a padding mask?)}}
  %a = llm.attention %qt, %kt, %vt mask %mask {kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.35 : f32} : (tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x1x?xf32>) -> tensor<?x1x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x1x?x8xf32>) -> tensor<?x?x1x8xf32>
  %am = llm.reshape %at, %s3 : (tensor<?x?x1x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %am, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %logits : tensor<?x?x16xf32>
}

// -----

// A slice along the sequence mixes tokens.
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x1x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wq = llm.weight "wq"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wk = llm.weight "wk"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wv = llm.weight "wv"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %s4 = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %s3 = llm.constant dense<[0, 0, 8]> : tensor<3xi64> : tensor<3xi64>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = llm.linear %x, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %q4 = llm.reshape %q, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %k = llm.linear %x, %wk : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %v = llm.linear %x, %wv : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %a = llm.attention %qt, %kt, %vt {causal = true, kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.35 : f32} : (tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x1x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x1x?x8xf32>) -> tensor<?x?x1x8xf32>
  %am = llm.reshape %at, %s3 : (tensor<?x?x1x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %am, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %st = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %en = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %ax = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  // expected-error @+1 {{expected a slice along non-token axes given as constants}}
  %last = llm.slice %logits, %st, %en axes %ax : (tensor<?x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x1x16xf32>
  return %last : tensor<?x1x16xf32>
}

// -----

// A cumulative sum over the sequence has no packed form.
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wq = llm.weight "wq"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wk = llm.weight "wk"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wv = llm.weight "wv"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %s4 = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %s3 = llm.constant dense<[0, 0, 8]> : tensor<3xi64> : tensor<3xi64>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = llm.linear %x, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %q4 = llm.reshape %q, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %k = llm.linear %x, %wk : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %kt = llm.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %v = llm.linear %x, %wv : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %a = llm.attention %qt, %kt, %vt {causal = true, kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.35 : f32} : (tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x1x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x1x?x8xf32>) -> tensor<?x?x1x8xf32>
  %am = llm.reshape %at, %s3 : (tensor<?x?x1x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %am, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %ax = llm.constant dense<1> : tensor<i64> : tensor<i64>
  // expected-error @+1 {{expected per-token ops (norms, linear layers, MLPs, activations, elementwise arithmetic, casts), head reshapes and transposes, rotary embeddings or attention on the path from the token ids to the logits}}
  %c = llm.cumsum %logits, %ax : (tensor<?x?x16xf32>, tensor<i64>) -> tensor<?x?x16xf32>
  return %c : tensor<?x?x16xf32>
}

// -----

// Only the head transposes are layout changes the packed form absorbs.
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %wq = llm.weight "wq"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wk = llm.weight "wk"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %wv = llm.weight "wv"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<8x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %s4 = llm.constant dense<[0, 0, 1, 8]> : tensor<4xi64> : tensor<4xi64>
  %s3 = llm.constant dense<[0, 0, 8]> : tensor<3xi64> : tensor<3xi64>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = llm.linear %x, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %q4 = llm.reshape %q, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %qt = llm.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %k = llm.linear %x, %wk : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k4 = llm.reshape %k, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  // expected-error @+1 {{expected the [0, 2, 1, 3] transpose between [B, S, heads, head_dim] and [B, heads, S, head_dim]}}
  %kt = llm.transpose %k4 {perm = array<i64: 2, 0, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x?x1x8xf32>
  %v = llm.linear %x, %wv : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %v4 = llm.reshape %v, %s4 : (tensor<?x?x8xf32>, tensor<4xi64>) -> tensor<?x?x1x8xf32>
  %vt = llm.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x1x8xf32>) -> tensor<?x1x?x8xf32>
  %a = llm.attention %qt, %kt, %vt {causal = true, kv_heads = 1 : i64, num_heads = 1 : i64, scale = 0.35 : f32} : (tensor<?x1x?x8xf32>, tensor<?x?x1x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x1x?x8xf32>
  %at = llm.transpose %a {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x1x?x8xf32>) -> tensor<?x?x1x8xf32>
  %am = llm.reshape %at, %s3 : (tensor<?x?x1x8xf32>, tensor<3xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %am, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %logits : tensor<?x?x16xf32>
}

// -----

// A model without attention is not a decoder this pass lays out.
// expected-error @+1 {{expected at least one llm.attention on the path to the logits (run the raise pipeline first)}}
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %head = llm.weight "head"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<8x16xf32>
  %x = llm.embedding %embed[%ids] : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %logits = llm.linear %x, %head : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %logits : tensor<?x?x16xf32>
}

// -----

// An unraised model (the embedding still a gather) has no token embedding.
// expected-error @+1 {{expected one function argument of token ids read by llm.embedding, found 0 (run the raise pipeline first)}}
func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 512>) : tensor<16x8xf32>
  %x = llm.gather %embed, %ids : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  return %x : tensor<?x?x8xf32>
}

// -----

// Running the pass twice is an error, not a silent no-op.
// expected-error @+1 {{a @prefill already exists: the module is laid out for the paged KV cache already}}
func.func @prefill() {
  return
}
func.func @main() -> () {
  return
}
