// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// Round trip of the llm model ops, weights and types through the printer
// and the parser.

// CHECK-LABEL: func @decoder_block
func.func @decoder_block(%ids: tensor<1x8xi64>, %pos: tensor<1x8xi64>) -> tensor<1x8x128xf32> {
  // CHECK: llm.weight "embed"(#llm.external_data<path = "model.onnx.data", offset = 0, length = 16384>) : tensor<128x32xf32>
  %table = llm.weight "embed" (#llm.external_data<path = "model.onnx.data", offset = 0, length = 16384>) : tensor<128x32xf32>
  // CHECK: llm.weight "norm"(#llm.initializer<path = "model.onnx", name = "norm">) : tensor<32xf32>
  %nw = llm.weight "norm" (#llm.initializer<path = "model.onnx", name = "norm">) : tensor<32xf32>
  %wq = llm.weight "wq" (#llm.initializer<path = "model.onnx", name = "wq">) : tensor<32x32xf32>
  %wk = llm.weight "wk" (#llm.initializer<path = "model.onnx", name = "wk">) : tensor<16x32xf32>
  %wg = llm.weight "wg" (#llm.initializer<path = "model.onnx", name = "wg">) : tensor<32x64xf32>
  %wu = llm.weight "wu" (#llm.initializer<path = "model.onnx", name = "wu">) : tensor<32x64xf32>
  %wd = llm.weight "wd" (#llm.initializer<path = "model.onnx", name = "wd">) : tensor<64x32xf32>
  // CHECK: llm.embedding %{{.*}}[%{{.*}}] : (tensor<128x32xf32>, tensor<1x8xi64>) -> tensor<1x8x32xf32>
  %h = llm.embedding %table[%ids] : (tensor<128x32xf32>, tensor<1x8xi64>) -> tensor<1x8x32xf32>
  // CHECK: llm.rms_norm {{.*}} {epsilon = 9.99999997E-7 : f32}
  %n = llm.rms_norm %h, %nw {epsilon = 1.0e-6 : f32} : (tensor<1x8x32xf32>, tensor<32xf32>) -> tensor<1x8x32xf32>
  // CHECK: llm.linear {{.*}} : (tensor<1x8x32xf32>, tensor<32x32xf32>) -> tensor<1x8x32xf32>
  %q = llm.linear %n, %wq : (tensor<1x8x32xf32>, tensor<32x32xf32>) -> tensor<1x8x32xf32>
  // CHECK: llm.linear {{.*}} {transpose_weight}
  %k = llm.linear %n, %wk {transpose_weight} : (tensor<1x8x32xf32>, tensor<16x32xf32>) -> tensor<1x8x16xf32>
  // CHECK: llm.rotary_table {{.*}} {inv_freq = array<f32: 1.000000e+00, 1.000000e-01>, theta = 1.000000e+02 : f64}
  %cos, %sin = llm.rotary_table %pos {inv_freq = array<f32: 1.0, 0.1>, theta = 100.0 : f64} : (tensor<1x8xi64>) -> (tensor<1x8x4xf32>, tensor<1x8x4xf32>)
  %q4 = llm.reshape %q, %pos : (tensor<1x8x32xf32>, tensor<1x8xi64>) -> tensor<1x4x8x8xf32>
  %k4 = llm.reshape %k, %pos : (tensor<1x8x16xf32>, tensor<1x8xi64>) -> tensor<1x2x8x8xf32>
  // CHECK: llm.rope {{.*}} {rotary_dim = 4 : i64}
  %qr = llm.rope %q4, %cos, %sin {rotary_dim = 4 : i64} : (tensor<1x4x8x8xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: llm.attention {{.*}} {causal = true, kv_heads = 2 : i64, num_heads = 4 : i64, scale = 0.353553385 : f32}
  %a = llm.attention %qr, %k4, %k4 {causal = true, kv_heads = 2 : i64, num_heads = 4 : i64, scale = 0.353553385 : f32} : (tensor<1x4x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: llm.gated_mlp {{.*}} {activation = "silu"}
  %m = llm.gated_mlp %n, %wg, %wu, %wd {activation = "silu"} : (tensor<1x8x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<1x8x32xf32>
  // CHECK: llm.silu %{{.*}} : tensor<1x8x32xf32>
  %s = llm.silu %m : tensor<1x8x32xf32>
  // CHECK: llm.add
  %r = llm.add %s, %h : (tensor<1x8x32xf32>, tensor<1x8x32xf32>) -> tensor<1x8x32xf32>
  %o = llm.linear %r, %table {transpose_weight} : (tensor<1x8x32xf32>, tensor<128x32xf32>) -> tensor<1x8x128xf32>
  return %o : tensor<1x8x128xf32>
}

// CHECK-LABEL: func @quantized_linear
func.func @quantized_linear(%x: tensor<2x64xf16>) -> tensor<2x32xf16> {
  // CHECK: !llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f16, zeroPoint = true>
  %w = llm.weight "w" (#llm.initializer<path = "m.onnx", name = "w">) : !llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f16, zeroPoint = true>
  %y = llm.linear %x, %w : (tensor<2x64xf16>, !llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f16, zeroPoint = true>) -> tensor<2x32xf16>
  return %y : tensor<2x32xf16>
}

// CHECK-LABEL: func @fp8_linear
func.func @fp8_linear(%x: tensor<2x64xf16>) -> tensor<2x32xf16> {
  // The default format (int) is not printed; fp8e4m3 is.
  // CHECK: llm.weight "w"(#llm.external_data<path = "w.packed", offset = 0, length = 2112>) : !llm.qweight<k = 64, n = 32, bits = 8, group = 64, scaleType = f16, zeroPoint = false, format = "fp8e4m3">
  %w = llm.weight "w" (#llm.external_data<path = "w.packed", offset = 0, length = 2112>) : !llm.qweight<k = 64, n = 32, bits = 8, group = 64, scaleType = f16, zeroPoint = false, format = "fp8e4m3">
  %y = llm.linear %x, %w : (tensor<2x64xf16>, !llm.qweight<k = 64, n = 32, bits = 8, group = 64, scaleType = f16, zeroPoint = false, format = "fp8e4m3">) -> tensor<2x32xf16>
  return %y : tensor<2x32xf16>
}

// CHECK-LABEL: func @sparse_linear
func.func @sparse_linear(%x: tensor<2x64xf16>) -> tensor<2x32xf16> {
  // CHECK: !llm.sparse24<k = 64, n = 32, elementType = f16>
  %w = llm.weight "w" (#llm.initializer<path = "m.onnx", name = "w">) : !llm.sparse24<k = 64, n = 32, elementType = f16>
  %y = llm.linear %x, %w : (tensor<2x64xf16>, !llm.sparse24<k = 64, n = 32, elementType = f16>) -> tensor<2x32xf16>
  return %y : tensor<2x32xf16>
}

// CHECK-LABEL: func @generic_ops
func.func @generic_ops(%x: tensor<2x3xf32>, %i: tensor<2xi64>) -> (tensor<?x?xf32>, tensor<2x3xi1>) {
  // CHECK: llm.constant dense<[1, -1]> : tensor<2xi64> : tensor<2xi64>
  %c = llm.constant dense<[1, -1]> : tensor<2xi64> : tensor<2xi64>
  // CHECK: llm.slice {{.*}} axes {{.*}} steps
  %s = llm.slice %x, %c, %c axes %c steps %c : (tensor<2x3xf32>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>) -> tensor<?x?xf32>
  // CHECK: llm.less_or_equal
  %le = llm.less_or_equal %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xi1>
  // CHECK: llm.reduce_mean {{.*}} axes
  %m = llm.reduce_mean %x axes %c {keepdims = 1 : i64} : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<2x1xf32>
  return %s, %le : tensor<?x?xf32>, tensor<2x3xi1>
}

// The ops of the paged entry points: packed tokens [T, H, D], a cache
// [layers, num_blocks, 2, kv_heads, block_size, head_dim].
// CHECK-LABEL: func @paged_step
func.func @paged_step(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %qsl: tensor<?xi32>, %tables: tensor<?x?xi32>,
                      %ctx: tensor<?xi32>, %slots: tensor<?xi64>, %cache: tensor<2x?x2x2x16x8xf16>,
                      %q: tensor<?x4x8xf16>, %k: tensor<?x2x8xf16>) -> (tensor<?x4x8xf16>, tensor<?x32xf16>) {
  // CHECK: llm.rotary_table {{.*}} : (tensor<?xi64>) -> (tensor<?x8xf32>, tensor<?x8xf32>)
  %cos, %sin = llm.rotary_table %pos {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001>} : (tensor<?xi64>) -> (tensor<?x8xf32>, tensor<?x8xf32>)
  // CHECK: llm.rope {{.*}} : (tensor<?x2x8xf16>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x2x8xf16>
  %kr = llm.rope %k, %cos, %sin {rotary_dim = 8 : i64} : (tensor<?x2x8xf16>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x2x8xf16>
  // CHECK: llm.kv_cache_write %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {layer = 1 : i64} : (tensor<2x?x2x2x16x8xf16>, tensor<?x2x8xf16>, tensor<?x2x8xf16>, tensor<?xi64>) -> tensor<2x?x2x2x16x8xf16>
  %c1 = llm.kv_cache_write %cache, %kr, %k, %slots {layer = 1 : i64} : (tensor<2x?x2x2x16x8xf16>, tensor<?x2x8xf16>, tensor<?x2x8xf16>, tensor<?xi64>) -> tensor<2x?x2x2x16x8xf16>
  // CHECK: llm.paged_attention {{.*}} {kv_heads = 2 : i64, layer = 1 : i64, num_heads = 4 : i64, scale = 0.353553385 : f32, sliding_window = 4 : i64, softcap = 5.000000e+01 : f32}
  %a = llm.paged_attention %q, %c1, %tables, %ctx, %qsl {kv_heads = 2 : i64, layer = 1 : i64, num_heads = 4 : i64, scale = 0.353553385 : f32, sliding_window = 4 : i64, softcap = 50.0 : f32} : (tensor<?x4x8xf16>, tensor<2x?x2x2x16x8xf16>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x4x8xf16>
  %flat = llm.reshape %a, %tokens : (tensor<?x4x8xf16>, tensor<?xi64>) -> tensor<?x32xf16>
  // CHECK: llm.gather_last_tokens {{.*}} : (tensor<?x32xf16>, tensor<?xi32>) -> tensor<?x32xf16>
  %last = llm.gather_last_tokens %flat, %qsl : (tensor<?x32xf16>, tensor<?xi32>) -> tensor<?x32xf16>
  return %a, %last : tensor<?x4x8xf16>, tensor<?x32xf16>
}
