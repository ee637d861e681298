// RUN: kiln-opt %s -split-input-file -verify-diagnostics
// Every verifier of the llm dialect rejects what it must, with its message.

func.func @weight_bad_source() {
  // expected-error @+1 {{source must be #llm.external_data or #llm.initializer}}
  %w = llm.weight "w" ("somewhere") : tensor<4xf32>
  return
}

// -----

func.func @weight_length_mismatch() {
  // expected-error @+1 {{external data holds 8 bytes but 'tensor<4xf32>' needs 16}}
  %w = llm.weight "w" (#llm.external_data<path = "d", offset = 0, length = 8>) : tensor<4xf32>
  return
}

// -----

func.func @rms_norm_size(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{normalized size mismatch: 8 vs 4}}
  %y = llm.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : (tensor<2x8xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @embedding_float_ids(%t: tensor<16x8xf32>, %ids: tensor<4xf32>) {
  // expected-error @+1 {{ids must be integers}}
  %y = llm.embedding %t[%ids] : (tensor<16x8xf32>, tensor<4xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_k_mismatch(%x: tensor<2x8xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{weight input features mismatch: 8 vs 4}}
  %y = llm.linear %x, %w : (tensor<2x8xf32>, tensor<4x16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @attention_gqa(%q: tensor<1x6x4x8xf32>, %k: tensor<1x4x4x8xf32>) {
  // expected-error @+1 {{num_heads (6) must be a positive multiple of kv_heads (4)}}
  %y = llm.attention %q, %k, %k {kv_heads = 4 : i64, num_heads = 6 : i64, scale = 1.0 : f32} : (tensor<1x6x4x8xf32>, tensor<1x4x4x8xf32>, tensor<1x4x4x8xf32>) -> tensor<1x6x4x8xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<1x4x4x8xf32>, %k: tensor<1x2x4x16xf32>) {
  // expected-error @+1 {{query/key head size mismatch: 8 vs 16}}
  %y = llm.attention %q, %k, %k {kv_heads = 2 : i64, num_heads = 4 : i64, scale = 1.0 : f32} : (tensor<1x4x4x8xf32>, tensor<1x2x4x16xf32>, tensor<1x2x4x16xf32>) -> tensor<1x4x4x8xf32>
  return
}

// -----

func.func @rope_odd(%x: tensor<1x2x4x8xf32>, %c: tensor<1x4x3xf32>) {
  // expected-error @+1 {{rotary_dim must be positive and even, got 3}}
  %y = llm.rope %x, %c, %c {rotary_dim = 3 : i64} : (tensor<1x2x4x8xf32>, tensor<1x4x3xf32>, tensor<1x4x3xf32>) -> tensor<1x2x4x8xf32>
  return
}

// -----

func.func @gated_mlp_activation(%x: tensor<2x8xf32>, %w: tensor<8x8xf32>) {
  // expected-error @+1 {{activation must be silu, gelu or gelu_tanh, got 'tanh'}}
  %y = llm.gated_mlp %x, %w, %w, %w {activation = "tanh"} : (tensor<2x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @broadcast(%a: tensor<2x3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{operands are not broadcastable}}
  %y = llm.add %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @compare_result(%a: tensor<2xf32>) {
  // expected-error @+1 {{comparison must yield i1}}
  %y = llm.less %a, %a : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @transpose_perm(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{perm must be a permutation of 0..1}}
  %y = llm.transpose %a {perm = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @matmul_k(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) {
  // expected-error @+1 {{contraction dimension mismatch: 3 vs 4}}
  %y = llm.matmul %a, %b : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  return
}

// -----

func.func @nbits(%a: tensor<2x64xf32>, %b: tensor<8x2x16xui8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{bits must be 2, 4 or 8, got 3}}
  %y = llm.matmul_nbits %a, %b, %s {K = 64 : i64, N = 8 : i64, bits = 3 : i64, block_size = 32 : i64} : (tensor<2x64xf32>, tensor<8x2x16xui8>, tensor<16xf32>) -> tensor<2x8xf32>
  return
}

// -----

// expected-error @+1 {{quantized weight bits must be 2, 4 or 8, got 5}}
func.func private @qweight_bits(!llm.qweight<k = 64, n = 32, bits = 5, group = 32, scaleType = f16, zeroPoint = false>)

// -----

// expected-error @+1 {{fp8e4m3 weights have 8 bits and no zero points}}
func.func private @qweight_fp8(!llm.qweight<k = 64, n = 32, bits = 4, group = 64, scaleType = f16, zeroPoint = false, format = "fp8e4m3">)

// -----

// expected-error @+1 {{quantized weight format must be int or fp8e4m3, got 'nf4'}}
func.func private @qweight_format(!llm.qweight<k = 64, n = 32, bits = 4, group = 64, scaleType = f16, zeroPoint = false, format = "nf4">)

// -----

func.func @qweight_bytes() {
  // 64 x 32 4-bit codes (1024 bytes), 32 x 2 f16 scales at 1024 (128 bytes).
  // expected-error @+1 {{external data holds 1024 bytes but the packed '!llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f16, zeroPoint = false>' needs 1152}}
  %w = llm.weight "w" (#llm.external_data<path = "q.packed", offset = 0, length = 1024>) : !llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f16, zeroPoint = false>
  return
}

// -----

func.func @sparse_bytes() {
  // 32 x 32 f16 values (2048 bytes), 32 x 8 metadata bytes at 2048.
  // expected-error @+1 {{external data holds 2048 bytes but the packed '!llm.sparse24<k = 64, n = 32, elementType = f16>' needs 2304}}
  %w = llm.weight "w" (#llm.external_data<path = "s.packed", offset = 0, length = 2048>) : !llm.sparse24<k = 64, n = 32, elementType = f16>
  return
}

// -----

// expected-error @+1 {{kv cache block size must be a power of two, got 12}}
func.func private @kv_block(!llm.kv_cache<layers = 2, kvHeads = 2, headDim = 64, block = 12, elementType = f16>)

// -----

func.func @kv_write_layout(%c: tensor<2x?x16x8xf32>, %k: tensor<?x2x8xf32>, %s: tensor<?xi64>) {
  // expected-error @+1 {{cache must be [layers, num_blocks, 2, kv_heads, block_size, head_dim]}}
  %y = llm.kv_cache_write %c, %k, %k, %s {layer = 0 : i64} : (tensor<2x?x16x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?xi64>) -> tensor<2x?x16x8xf32>
  return
}

// -----

func.func @kv_write_layer(%c: tensor<2x?x2x2x16x8xf32>, %k: tensor<?x2x8xf32>, %s: tensor<?xi64>) {
  // expected-error @+1 {{layer 2 is outside the cache's 2 layers}}
  %y = llm.kv_cache_write %c, %k, %k, %s {layer = 2 : i64} : (tensor<2x?x2x2x16x8xf32>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?xi64>) -> tensor<2x?x2x2x16x8xf32>
  return
}

// -----

func.func @kv_write_heads(%c: tensor<2x?x2x2x16x8xf32>, %k: tensor<?x4x8xf32>, %s: tensor<?xi64>) {
  // expected-error @+1 {{key heads mismatch: 4 vs 2}}
  %y = llm.kv_cache_write %c, %k, %k, %s {layer = 0 : i64} : (tensor<2x?x2x2x16x8xf32>, tensor<?x4x8xf32>, tensor<?x4x8xf32>, tensor<?xi64>) -> tensor<2x?x2x2x16x8xf32>
  return
}

// -----

func.func @kv_write_dtype(%c: tensor<2x?x2x2x16x8xf16>, %k: tensor<?x2x8xf32>, %s: tensor<?xi64>) {
  // expected-error @+1 {{key element type 'f32' differs from the cache's 'f16'}}
  %y = llm.kv_cache_write %c, %k, %k, %s {layer = 0 : i64} : (tensor<2x?x2x2x16x8xf16>, tensor<?x2x8xf32>, tensor<?x2x8xf32>, tensor<?xi64>) -> tensor<2x?x2x2x16x8xf16>
  return
}

// -----

func.func @paged_attention_gqa(%q: tensor<?x6x8xf32>, %c: tensor<1x?x2x4x16x8xf32>, %t: tensor<?x?xi32>, %l: tensor<?xi32>) {
  // expected-error @+1 {{num_heads (6) must be a positive multiple of kv_heads (4)}}
  %y = llm.paged_attention %q, %c, %t, %l, %l {kv_heads = 4 : i64, layer = 0 : i64, num_heads = 6 : i64, scale = 1.0 : f32} : (tensor<?x6x8xf32>, tensor<1x?x2x4x16x8xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x6x8xf32>
  return
}

// -----

func.func @paged_attention_starts(%q: tensor<?x4x8xf32>, %c: tensor<1x?x2x2x16x8xf32>, %t: tensor<3x?xi32>, %l: tensor<3xi32>) {
  // expected-error @+1 {{query_start_loc entries mismatch: 3 vs 4}}
  %y = llm.paged_attention %q, %c, %t, %l, %l {kv_heads = 2 : i64, layer = 0 : i64, num_heads = 4 : i64, scale = 1.0 : f32} : (tensor<?x4x8xf32>, tensor<1x?x2x2x16x8xf32>, tensor<3x?xi32>, tensor<3xi32>, tensor<3xi32>) -> tensor<?x4x8xf32>
  return
}

// -----

func.func @gather_last_rows(%x: tensor<?x32xf32>, %qsl: tensor<4xi32>) {
  // expected-error @+1 {{result rows mismatch: 2 vs 3}}
  %y = llm.gather_last_tokens %x, %qsl : (tensor<?x32xf32>, tensor<4xi32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @rope_rank(%x: tensor<2x8xf32>, %c: tensor<2x8xf32>) {
  // expected-error @+1 {{input must have rank 4 ([B, H, S, D]) or 3 ([T, H, D])}}
  %y = llm.rope %x, %c, %c {rotary_dim = 8 : i64} : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @scatter_nd_reduction(%d: tensor<4x6xf32>, %i: tensor<2x1xi64>, %u: tensor<2x6xf32>) {
  // expected-error @+1 {{reduction must be none, add, mul, max or min, got 'sum'}}
  %y = llm.scatter_nd %d, %i, %u {reduction = "sum"} : (tensor<4x6xf32>, tensor<2x1xi64>, tensor<2x6xf32>) -> tensor<4x6xf32>
  return
}

// -----

func.func @scatter_nd_updates_rank(%d: tensor<4x6xf32>, %i: tensor<2x1xi64>, %u: tensor<2xf32>) {
  // expected-error @+1 {{updates must have rank 2}}
  %y = llm.scatter_nd %d, %i, %u : (tensor<4x6xf32>, tensor<2x1xi64>, tensor<2xf32>) -> tensor<4x6xf32>
  return
}

// -----

func.func @scatter_elements_float_indices(%d: tensor<4x6xf32>, %i: tensor<4x2xf32>, %u: tensor<4x2xf32>) {
  // expected-error @+1 {{indices must have integer elements}}
  %y = llm.scatter_elements %d, %i, %u {axis = 1 : i64} : (tensor<4x6xf32>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x6xf32>
  return
}

// -----

func.func @pad_mode(%d: tensor<4x6xf32>, %p: tensor<4xi64>) {
  // expected-error @+1 {{mode must be constant, reflect, edge or wrap, got 'mirror'}}
  %y = llm.pad %d, %p {mode = "mirror"} : (tensor<4x6xf32>, tensor<4xi64>) -> tensor<*xf32>
  return
}
