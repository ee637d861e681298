// RUN: kiln-opt %s -split-input-file -llm-raise-activations | FileCheck %s

// CHECK-LABEL: func @silu
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>)
// CHECK: %[[A:.*]] = llm.silu %[[X]] : tensor<2x8xf32>
// CHECK: %[[B:.*]] = llm.silu %[[X]] : tensor<2x8xf32>
// CHECK: return %[[A]], %[[B]]
func.func @silu(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
  %s = llm.sigmoid %x : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %a = llm.mul %x, %s : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %b = llm.mul %s, %x : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %a, %b : tensor<2x8xf32>, tensor<2x8xf32>
}

// -----

// Negative: the sigmoid is of another tensor.
// CHECK-LABEL: func @not_silu
// CHECK-NOT: llm.silu
func.func @not_silu(%x: tensor<2x8xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %s = llm.sigmoid %y : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %a = llm.mul %x, %s : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %a : tensor<2x8xf32>
}

// -----

// 0.5 * x * (1 + erf(x / sqrt(2))), as torch.nn.GELU exports.
// CHECK-LABEL: func @gelu_erf_div
// CHECK-SAME: (%[[X:.*]]: tensor<4x16xf32>)
// CHECK: %[[G:.*]] = llm.gelu %[[X]] : tensor<4x16xf32>
// CHECK-NEXT: return %[[G]]
func.func @gelu_erf_div(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %sqrt2 = llm.constant dense<1.41421354> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %d = llm.div %x, %sqrt2 : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %e = llm.erf %d : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %e, %one : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %h = llm.mul %x, %half : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %y = llm.mul %h, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// The same with x * (1/sqrt(2)) and the half applied last.
// CHECK-LABEL: func @gelu_erf_mul
// CHECK: llm.gelu
// CHECK-NOT: llm.erf
func.func @gelu_erf_mul(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %k = llm.constant dense<0.707106769> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %d = llm.mul %k, %x : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %e = llm.erf %d : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %one, %e : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %xp = llm.mul %x, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %y = llm.mul %xp, %half : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// Negative: the constant is not one half.
// CHECK-LABEL: func @not_gelu_scale
// CHECK-NOT: llm.gelu
func.func @not_gelu_scale(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %sqrt2 = llm.constant dense<1.41421354> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %c = llm.constant dense<0.6> : tensor<f32> : tensor<f32>
  %d = llm.div %x, %sqrt2 : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %e = llm.erf %d : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %e, %one : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %h = llm.mul %x, %c : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %y = llm.mul %h, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// Negative: the erf is of another tensor.
// CHECK-LABEL: func @not_gelu_other
// CHECK-NOT: llm.gelu
func.func @not_gelu_other(%x: tensor<4x16xf32>, %z: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %sqrt2 = llm.constant dense<1.41421354> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %d = llm.div %z, %sqrt2 : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %e = llm.erf %d : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %e, %one : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %h = llm.mul %x, %half : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %y = llm.mul %h, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// GPT-2's gelu_new: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))).
// CHECK-LABEL: func @gelu_tanh
// CHECK-SAME: (%[[X:.*]]: tensor<4x16xf32>)
// CHECK: %[[G:.*]] = llm.gelu_tanh %[[X]] : tensor<4x16xf32>
// CHECK-NEXT: return %[[G]]
func.func @gelu_tanh(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %three = llm.constant dense<3.0> : tensor<f32> : tensor<f32>
  %c = llm.constant dense<0.044715> : tensor<f32> : tensor<f32>
  %k = llm.constant dense<0.797884583> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %cube = llm.pow %x, %three : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %cc = llm.mul %cube, %c : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %in = llm.add %x, %cc : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %z = llm.mul %in, %k : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %t = llm.tanh %z : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %t, %one : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %h = llm.mul %half, %x : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %y = llm.mul %h, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// x^3 as x * (x * x).
// CHECK-LABEL: func @gelu_tanh_product_cube
// CHECK: llm.gelu_tanh
// CHECK-NOT: llm.tanh
func.func @gelu_tanh_product_cube(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %c = llm.constant dense<0.044715> : tensor<f32> : tensor<f32>
  %k = llm.constant dense<0.797884583> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %sq = llm.mul %x, %x : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %cube = llm.mul %x, %sq : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %cc = llm.mul %c, %cube : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %in = llm.add %cc, %x : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %z = llm.mul %k, %in : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %t = llm.tanh %z : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %one, %t : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %xp = llm.mul %x, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %y = llm.mul %xp, %half : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// Negative: the cubic coefficient is wrong.
// CHECK-LABEL: func @not_gelu_tanh
// CHECK-NOT: llm.gelu_tanh
func.func @not_gelu_tanh(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %three = llm.constant dense<3.0> : tensor<f32> : tensor<f32>
  %c = llm.constant dense<0.05> : tensor<f32> : tensor<f32>
  %k = llm.constant dense<0.797884583> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %cube = llm.pow %x, %three : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %cc = llm.mul %cube, %c : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %in = llm.add %x, %cc : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %z = llm.mul %in, %k : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %t = llm.tanh %z : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %p = llm.add %t, %one : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
  %h = llm.mul %half, %x : (tensor<f32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %y = llm.mul %h, %p : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
