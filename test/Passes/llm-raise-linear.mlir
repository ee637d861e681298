// RUN: kiln-opt %s -split-input-file -llm-raise-linear | FileCheck %s

// CHECK-LABEL: func @linear_kn
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x64xf32>)
// CHECK: %[[W:.*]] = llm.weight "w"
// CHECK: %[[Y:.*]] = llm.linear %[[X]], %[[W]] : (tensor<?x?x64xf32>, tensor<64x32xf32>) -> tensor<?x?x32xf32>
// CHECK-NEXT: return %[[Y]]
func.func @linear_kn(%x: tensor<?x?x64xf32>) -> tensor<?x?x32xf32> {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 8192>) : tensor<64x32xf32>
  %y = llm.matmul %x, %w : (tensor<?x?x64xf32>, tensor<64x32xf32>) -> tensor<?x?x32xf32>
  return %y : tensor<?x?x32xf32>
}

// -----

// The Hugging Face [N, K] layout through a transpose (Gemm with transB, or a
// tied lm_head), with a bias added on the left.
// CHECK-LABEL: func @linear_nk_bias
// CHECK-SAME: (%[[X:.*]]: tensor<3x64xf32>)
// CHECK-DAG: %[[W:.*]] = llm.weight "w"
// CHECK-DAG: %[[B:.*]] = llm.weight "b"
// CHECK: %[[Y:.*]] = llm.linear %[[X]], %[[W]], %[[B]] {transpose_weight} : (tensor<3x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<3x32xf32>
// CHECK-NEXT: return %[[Y]]
func.func @linear_nk_bias(%x: tensor<3x64xf32>) -> tensor<3x32xf32> {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 8192>) : tensor<32x64xf32>
  %b = llm.weight "b"(#llm.external_data<path = "w.bin", offset = 8192, length = 128>) : tensor<32xf32>
  %t = llm.transpose %w {perm = array<i64: 1, 0>} : (tensor<32x64xf32>) -> tensor<64x32xf32>
  %m = llm.matmul %x, %t : (tensor<3x64xf32>, tensor<64x32xf32>) -> tensor<3x32xf32>
  %y = llm.add %b, %m : (tensor<32xf32>, tensor<3x32xf32>) -> tensor<3x32xf32>
  return %y : tensor<3x32xf32>
}

// -----

// A small bias imported as an inline constant is a bias too.
// CHECK-LABEL: func @linear_constant_bias
// CHECK: %[[Y:.*]] = llm.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x4xf32>, tensor<4x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: return %[[Y]]
func.func @linear_constant_bias(%x: tensor<2x4xf32>) -> tensor<2x8xf32> {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 128>) : tensor<4x8xf32>
  %b = llm.constant dense<0.5> : tensor<8xf32> : tensor<8xf32>
  %m = llm.matmul %x, %w : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
  %y = llm.add %m, %b : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// -----

// Negative: a bias of another width broadcasts; a linear with two uses
// keeps its add; a matmul of two activations or of a constant is no linear.
// CHECK-LABEL: func @not_linear
// CHECK: %[[L:.*]] = llm.linear
// CHECK: llm.add %[[L]]
// CHECK: llm.add %[[L]]
// CHECK: llm.matmul
// CHECK: llm.matmul
func.func @not_linear(%x: tensor<2x4xf32>, %a: tensor<4x8xf32>, %b1: tensor<1xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 128>) : tensor<4x8xf32>
  %c = llm.constant dense<1.0> : tensor<4x8xf32> : tensor<4x8xf32>
  %m = llm.matmul %x, %w : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
  %y1 = llm.add %m, %b1 : (tensor<2x8xf32>, tensor<1xf32>) -> tensor<2x8xf32>
  %y2 = llm.add %m, %m : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %y3 = llm.matmul %x, %a : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
  %y4 = llm.matmul %x, %c : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
  return %y1, %y2, %y3, %y4 : tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>
}

// -----

// Negative: a transpose other than [1, 0] of a 3-D weight.
// CHECK-LABEL: func @not_linear_batched_weight
// CHECK-NOT: llm.linear
func.func @not_linear_batched_weight(%x: tensor<2x3x4xf32>) -> tensor<2x3x8xf32> {
  %w = llm.weight "w"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<2x8x4xf32>
  %t = llm.transpose %w {perm = array<i64: 0, 2, 1>} : (tensor<2x8x4xf32>) -> tensor<2x4x8xf32>
  %y = llm.matmul %x, %t : (tensor<2x3x4xf32>, tensor<2x4x8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

// CHECK-LABEL: func @embedding
// CHECK-SAME: (%[[IDS:.*]]: tensor<?x?xi64>)
// CHECK: %[[T:.*]] = llm.weight "embed"
// CHECK: %[[E:.*]] = llm.embedding %[[T]][%[[IDS]]] : (tensor<512x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
// CHECK-NEXT: return %[[E]]
func.func @embedding(%ids: tensor<?x?xi64>) -> tensor<?x?x64xf32> {
  %t = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 131072>) : tensor<512x64xf32>
  %e = llm.gather %t, %ids : (tensor<512x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
  return %e : tensor<?x?x64xf32>
}

// -----

// Negative: a gather along axis 1 picks columns, not rows.
// CHECK-LABEL: func @not_embedding
// CHECK-NOT: llm.embedding
func.func @not_embedding(%ids: tensor<3xi64>) -> tensor<512x3xf32> {
  %t = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 131072>) : tensor<512x64xf32>
  %e = llm.gather %t, %ids {axis = 1 : i64} : (tensor<512x64xf32>, tensor<3xi64>) -> tensor<512x3xf32>
  return %e : tensor<512x3xf32>
}
