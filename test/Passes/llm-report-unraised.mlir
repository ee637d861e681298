// RUN: kiln-opt %s -split-input-file -llm-report-unraised -verify-diagnostics | FileCheck %s --check-prefix=IR
// RUN: not kiln-opt %s -split-input-file -llm-report-unraised=fail-on-unraised=true 2>&1 >/dev/null | FileCheck %s --check-prefix=FAIL

// The report lists each generic op name with its count and the reason of
// each, in the order the ops first appear; it leaves the IR unchanged.
// IR-LABEL: func @leftovers
// IR: llm.attention
// IR: llm.matmul_nbits
// FAIL: error: 9 generic ops left unraised in @leftovers:
// FAIL-NEXT: llm.shape x1 (shape arithmetic: 1)
// FAIL-NEXT: llm.less x1 (mask building: 1)
// FAIL-NEXT: llm.where x1 (mask building: 1)
// FAIL-NEXT: llm.transpose x1 (head layout: 1)
// FAIL-NEXT: llm.reshape x1 (head layout: 1)
// FAIL-NEXT: llm.add x2 (residual connection: 1, unmatched arithmetic: 1)
// FAIL-NEXT: llm.cast x1 (dtype conversion: 1)
// FAIL-NEXT: llm.matmul_nbits x1 (quantized matmul: 1)
// expected-remark @below {{9 generic ops left unraised in @leftovers:}}
func.func @leftovers(%x: tensor<2x5x64xf32>, %q: tensor<2x4x5x16xf32>, %k: tensor<2x2x5x16xf32>, %pos: tensor<1x5x1xi64>, %a: tensor<2x64xf16>, %b: tensor<8x2x16xui8>, %s: tensor<16xf16>) -> (tensor<4xi64>, tensor<2x5x64xf32>, tensor<2x5x64xf32>, tensor<2x64xf32>, tensor<2x8xf16>) {
  %zero = llm.constant dense<0.0> : tensor<f32> : tensor<f32>
  %min = llm.constant dense<-3.40282347E+38> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %shape3 = llm.constant dense<[2, 5, 64]> : tensor<3xi64> : tensor<3xi64>
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 16384>) : tensor<64x64xf32>
  %shp = llm.shape %q : (tensor<2x4x5x16xf32>) -> tensor<4xi64>
  %lt = llm.less %pos, %pos : (tensor<1x5x1xi64>, tensor<1x5x1xi64>) -> tensor<1x5x1xi1>
  %mask = llm.where %lt, %zero, %min : (tensor<1x5x1xi1>, tensor<f32>, tensor<f32>) -> tensor<1x5x1xf32>
  %att = llm.attention %q, %k, %k mask %mask {kv_heads = 2 : i64, num_heads = 4 : i64, scale = 2.500000e-01 : f32} : (tensor<2x4x5x16xf32>, tensor<2x2x5x16xf32>, tensor<2x2x5x16xf32>, tensor<1x5x1xf32>) -> tensor<2x4x5x16xf32>
  %t = llm.transpose %att {perm = array<i64: 0, 2, 1, 3>} : (tensor<2x4x5x16xf32>) -> tensor<2x5x4x16xf32>
  %r = llm.reshape %t, %shape3 : (tensor<2x5x4x16xf32>, tensor<3xi64>) -> tensor<2x5x64xf32>
  %lin = llm.linear %r, %w : (tensor<2x5x64xf32>, tensor<64x64xf32>) -> tensor<2x5x64xf32>
  %res = llm.add %x, %lin : (tensor<2x5x64xf32>, tensor<2x5x64xf32>) -> tensor<2x5x64xf32>
  %plus = llm.add %x, %one : (tensor<2x5x64xf32>, tensor<f32>) -> tensor<2x5x64xf32>
  %c = llm.cast %a : (tensor<2x64xf16>) -> tensor<2x64xf32>
  %mm = llm.matmul_nbits %a, %b, %s {K = 64 : i64, N = 8 : i64, bits = 4 : i64, block_size = 32 : i64} : (tensor<2x64xf16>, tensor<8x2x16xui8>, tensor<16xf16>) -> tensor<2x8xf16>
  return %shp, %res, %plus, %c, %mm : tensor<4xi64>, tensor<2x5x64xf32>, tensor<2x5x64xf32>, tensor<2x64xf32>, tensor<2x8xf16>
}

// -----

// Nothing generic left: no remark, and no error with fail-on-unraised.
// IR-LABEL: func @all_raised
// FAIL-NOT: left unraised in @all_raised
func.func @all_raised(%x: tensor<2x64xf32>) -> tensor<2x64xf32> {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 16384>) : tensor<64x64xf32>
  %y = llm.linear %x, %w : (tensor<2x64xf32>, tensor<64x64xf32>) -> tensor<2x64xf32>
  %s = llm.silu %y : tensor<2x64xf32>
  return %s : tensor<2x64xf32>
}
