// RUN: kiln-opt %s -split-input-file -llm-raise-gated-mlp | FileCheck %s

// CHECK-LABEL: func @swiglu
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x64xf32>)
// CHECK-DAG: %[[G:.*]] = llm.weight "gate"
// CHECK-DAG: %[[U:.*]] = llm.weight "up"
// CHECK-DAG: %[[D:.*]] = llm.weight "down"
// CHECK: %[[Y:.*]] = llm.gated_mlp %[[X]], %[[G]], %[[U]], %[[D]] {activation = "silu"} : (tensor<?x?x64xf32>, tensor<64x128xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
// CHECK-NEXT: return %[[Y]]
func.func @swiglu(%x: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %wg = llm.weight "gate"(#llm.external_data<path = "w.bin", offset = 0, length = 32768>) : tensor<64x128xf32>
  %wu = llm.weight "up"(#llm.external_data<path = "w.bin", offset = 32768, length = 32768>) : tensor<64x128xf32>
  %wd = llm.weight "down"(#llm.external_data<path = "w.bin", offset = 65536, length = 32768>) : tensor<128x64xf32>
  %g = llm.linear %x, %wg : (tensor<?x?x64xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  %a = llm.silu %g : tensor<?x?x128xf32>
  %u = llm.linear %x, %wu : (tensor<?x?x64xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  %m = llm.mul %a, %u : (tensor<?x?x128xf32>, tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
  %y = llm.linear %m, %wd : (tensor<?x?x128xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  return %y : tensor<?x?x64xf32>
}

// -----

// GeGLU with Hugging Face [N, K] weights and the product commuted.
// CHECK-LABEL: func @geglu_transposed
// CHECK: llm.gated_mlp %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {activation = "gelu_tanh", transpose_weights}
func.func @geglu_transposed(%x: tensor<2x64xf32>) -> tensor<2x64xf32> {
  %wg = llm.weight "gate"(#llm.external_data<path = "w.bin", offset = 0, length = 32768>) : tensor<128x64xf32>
  %wu = llm.weight "up"(#llm.external_data<path = "w.bin", offset = 32768, length = 32768>) : tensor<128x64xf32>
  %wd = llm.weight "down"(#llm.external_data<path = "w.bin", offset = 65536, length = 32768>) : tensor<64x128xf32>
  %g = llm.linear %x, %wg {transpose_weight} : (tensor<2x64xf32>, tensor<128x64xf32>) -> tensor<2x128xf32>
  %a = llm.gelu_tanh %g : tensor<2x128xf32>
  %u = llm.linear %x, %wu {transpose_weight} : (tensor<2x64xf32>, tensor<128x64xf32>) -> tensor<2x128xf32>
  %m = llm.mul %u, %a : (tensor<2x128xf32>, tensor<2x128xf32>) -> tensor<2x128xf32>
  %y = llm.linear %m, %wd {transpose_weight} : (tensor<2x128xf32>, tensor<64x128xf32>) -> tensor<2x64xf32>
  return %y : tensor<2x64xf32>
}

// -----

// Negative: the up projection has a bias; the gate reads another input; the
// activation output is used twice; the layouts differ.
// CHECK-LABEL: func @not_gated_mlp
// CHECK-NOT: llm.gated_mlp
func.func @not_gated_mlp(%x: tensor<2x64xf32>, %z: tensor<2x64xf32>, %b: tensor<128xf32>) -> (tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x128xf32>, tensor<2x64xf32>) {
  %wg = llm.weight "gate"(#llm.external_data<path = "w.bin", offset = 0, length = 32768>) : tensor<64x128xf32>
  %wu = llm.weight "up"(#llm.external_data<path = "w.bin", offset = 32768, length = 32768>) : tensor<64x128xf32>
  %wd = llm.weight "down"(#llm.external_data<path = "w.bin", offset = 65536, length = 32768>) : tensor<128x64xf32>
  %wt = llm.weight "upT"(#llm.external_data<path = "w.bin", offset = 98304, length = 32768>) : tensor<128x64xf32>
  // A bias on up.
  %g1 = llm.linear %x, %wg : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %a1 = llm.silu %g1 : tensor<2x128xf32>
  %u1 = llm.linear %x, %wu, %b : (tensor<2x64xf32>, tensor<64x128xf32>, tensor<128xf32>) -> tensor<2x128xf32>
  %m1 = llm.mul %a1, %u1 : (tensor<2x128xf32>, tensor<2x128xf32>) -> tensor<2x128xf32>
  %y1 = llm.linear %m1, %wd : (tensor<2x128xf32>, tensor<128x64xf32>) -> tensor<2x64xf32>
  // Another input for the gate.
  %g2 = llm.linear %z, %wg : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %a2 = llm.silu %g2 : tensor<2x128xf32>
  %u2 = llm.linear %x, %wu : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %m2 = llm.mul %a2, %u2 : (tensor<2x128xf32>, tensor<2x128xf32>) -> tensor<2x128xf32>
  %y2 = llm.linear %m2, %wd : (tensor<2x128xf32>, tensor<128x64xf32>) -> tensor<2x64xf32>
  // The activation is also returned.
  %g3 = llm.linear %x, %wg : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %a3 = llm.silu %g3 : tensor<2x128xf32>
  %u3 = llm.linear %x, %wu : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %m3 = llm.mul %a3, %u3 : (tensor<2x128xf32>, tensor<2x128xf32>) -> tensor<2x128xf32>
  %y3 = llm.linear %m3, %wd : (tensor<2x128xf32>, tensor<128x64xf32>) -> tensor<2x64xf32>
  // Up in the [N, K] layout, gate and down in [K, N].
  %g4 = llm.linear %x, %wg : (tensor<2x64xf32>, tensor<64x128xf32>) -> tensor<2x128xf32>
  %a4 = llm.silu %g4 : tensor<2x128xf32>
  %u4 = llm.linear %x, %wt {transpose_weight} : (tensor<2x64xf32>, tensor<128x64xf32>) -> tensor<2x128xf32>
  %m4 = llm.mul %a4, %u4 : (tensor<2x128xf32>, tensor<2x128xf32>) -> tensor<2x128xf32>
  %y4 = llm.linear %m4, %wd : (tensor<2x128xf32>, tensor<128x64xf32>) -> tensor<2x64xf32>
  return %y1, %y2, %y3, %a3, %y4 : tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x128xf32>, tensor<2x64xf32>
}
