// RUN: kiln-opt %s -split-input-file -llm-raise-attention | FileCheck %s

// The dynamo export: sqrt(scale) on q and on k^T, repeat_kv of k and v, an
// additive mask selecting between finite constants, and the isnan guard
// (dropped: the mask cannot make a row fully -inf).
// CHECK-LABEL: func @attention_dynamo_gqa
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x?x16xf32>, %[[K:[^:]*]]: tensor<?x2x?x16xf32>, %[[V:[^:]*]]: tensor<?x2x?x16xf32>, %[[C:[^:]*]]: tensor<?x1x?x?xi1>)
// CHECK: %[[M:.*]] = llm.where %[[C]]
// CHECK: %[[A:.*]] = llm.attention %[[Q]], %[[K]], %[[V]] mask %[[M]] {kv_heads = 2 : i64, num_heads = 4 : i64, scale = 2.500000e-01 : f32} : (tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x16xf32>
// CHECK-NOT: llm.isnan
// CHECK: return %[[A]]
func.func @attention_dynamo_gqa(%q: tensor<?x4x?x16xf32>, %k: tensor<?x2x?x16xf32>, %v: tensor<?x2x?x16xf32>, %cond: tensor<?x1x?x?xi1>) -> tensor<?x4x?x16xf32> {
  %two = llm.constant dense<2> : tensor<1xi64> : tensor<1xi64>
  %four = llm.constant dense<4> : tensor<1xi64> : tensor<1xi64>
  %d = llm.constant dense<16> : tensor<1xi64> : tensor<1xi64>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %zero = llm.constant dense<0.0> : tensor<f32> : tensor<f32>
  %min = llm.constant dense<-3.40282347E+38> : tensor<f32> : tensor<f32>
  %b = llm.shape %k {end = 1 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %t = llm.shape %k {start = 2 : i64, end = 3 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %s5 = llm.concat %b, %two, %two, %t, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %s4 = llm.concat %b, %four, %t, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = llm.unsqueeze %k, %two : (tensor<?x2x?x16xf32>, tensor<1xi64>) -> tensor<?x2x1x?x16xf32>
  %ke = llm.expand %ku, %s5 : (tensor<?x2x1x?x16xf32>, tensor<5xi64>) -> tensor<?x2x2x?x16xf32>
  %kr = llm.reshape %ke, %s4 {allowzero = 1 : i64} : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
  %vb = llm.shape %v {end = 1 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %vt = llm.shape %v {start = 2 : i64, end = 3 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %v5 = llm.concat %vb, %two, %two, %vt, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %v4 = llm.concat %vb, %four, %vt, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %vu = llm.unsqueeze %v, %two : (tensor<?x2x?x16xf32>, tensor<1xi64>) -> tensor<?x2x1x?x16xf32>
  %ve = llm.expand %vu, %v5 : (tensor<?x2x1x?x16xf32>, tensor<5xi64>) -> tensor<?x2x2x?x16xf32>
  %vr = llm.reshape %ve, %v4 {allowzero = 1 : i64} : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
  %kt = llm.transpose %kr {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x16xf32>) -> tensor<?x4x16x?xf32>
  %qs = llm.mul %q, %half : (tensor<?x4x?x16xf32>, tensor<f32>) -> tensor<?x4x?x16xf32>
  %ks = llm.mul %kt, %half : (tensor<?x4x16x?xf32>, tensor<f32>) -> tensor<?x4x16x?xf32>
  %s = llm.matmul %qs, %ks : (tensor<?x4x?x16xf32>, tensor<?x4x16x?xf32>) -> tensor<?x4x?x?xf32>
  %m = llm.where %cond, %zero, %min : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  %a = llm.add %s, %m : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = llm.softmax %a : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %n = llm.isnan %p : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xi1>
  %g = llm.where %n, %zero, %p : (tensor<?x4x?x?xi1>, tensor<f32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = llm.matmul %g, %vr : (tensor<?x4x?x?xf32>, tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  return %o : tensor<?x4x?x16xf32>
}

// -----

// TorchScript: the scores divided by sqrt(d), a -inf mask on the left of the
// add: a fully masked row is NaN in the softmax and zeroed by the guard,
// which stays on the attention output.
// CHECK-LABEL: func @attention_inf_mask
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<2x4x3x16xf32>, %[[K:[^:]*]]: tensor<2x4x8x16xf32>, %[[V:[^:]*]]: tensor<2x4x8x16xf32>, %[[C:[^:]*]]: tensor<2x1x3x8xi1>)
// CHECK: %[[M:.*]] = llm.where %[[C]]
// CHECK: %[[A:.*]] = llm.attention %[[Q]], %[[K]], %[[V]] mask %[[M]] {kv_heads = 4 : i64, num_heads = 4 : i64, scale = 2.500000e-01 : f32}
// CHECK: %[[N:.*]] = llm.isnan %[[A]]
// CHECK: %[[G:.*]] = llm.where %[[N]], %{{.*}}, %[[A]]
// CHECK: return %[[G]]
func.func @attention_inf_mask(%q: tensor<2x4x3x16xf32>, %k: tensor<2x4x8x16xf32>, %v: tensor<2x4x8x16xf32>, %cond: tensor<2x1x3x8xi1>) -> tensor<2x4x3x16xf32> {
  %four = llm.constant dense<4.0> : tensor<f32> : tensor<f32>
  %zero = llm.constant dense<0.0> : tensor<1xf32> : tensor<1xf32>
  %inf = llm.constant dense<0xFF800000> : tensor<1xf32> : tensor<1xf32>
  %kt = llm.transpose %k {perm = array<i64: 0, 1, 3, 2>} : (tensor<2x4x8x16xf32>) -> tensor<2x4x16x8xf32>
  %s = llm.matmul %q, %kt : (tensor<2x4x3x16xf32>, tensor<2x4x16x8xf32>) -> tensor<2x4x3x8xf32>
  %sd = llm.div %s, %four : (tensor<2x4x3x8xf32>, tensor<f32>) -> tensor<2x4x3x8xf32>
  %m = llm.where %cond, %zero, %inf : (tensor<2x1x3x8xi1>, tensor<1xf32>, tensor<1xf32>) -> tensor<2x1x3x8xf32>
  %a = llm.add %m, %sd : (tensor<2x1x3x8xf32>, tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  %p = llm.softmax %a {axis = 3 : i64} : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  %n = llm.isnan %p : (tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xi1>
  %g = llm.where %n, %zero, %p : (tensor<2x4x3x8xi1>, tensor<1xf32>, tensor<2x4x3x8xf32>) -> tensor<2x4x3x8xf32>
  %o = llm.matmul %g, %v : (tensor<2x4x3x8xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x3x16xf32>
  return %o : tensor<2x4x3x16xf32>
}

// -----

// GPT-2: no mask, k^T as one transpose of the [B, S, H, D] projection.
// CHECK-LABEL: func @attention_bshd_key
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<1x4x5x8xf32>, %[[K:[^:]*]]: tensor<1x5x4x8xf32>, %[[V:[^:]*]]: tensor<1x4x5x8xf32>)
// CHECK: %[[KT:.*]] = llm.transpose %[[K]] {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x5x4x8xf32>) -> tensor<1x4x5x8xf32>
// CHECK: %[[A:.*]] = llm.attention %[[Q]], %[[KT]], %[[V]] {kv_heads = 4 : i64, num_heads = 4 : i64, scale = 0.353553385 : f32}
// CHECK-NEXT: return %[[A]]
func.func @attention_bshd_key(%q: tensor<1x4x5x8xf32>, %k: tensor<1x5x4x8xf32>, %v: tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32> {
  %c = llm.constant dense<0.353553385> : tensor<f32> : tensor<f32>
  %kt = llm.transpose %k {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x5x4x8xf32>) -> tensor<1x4x8x5xf32>
  %s = llm.matmul %q, %kt : (tensor<1x4x5x8xf32>, tensor<1x4x8x5xf32>) -> tensor<1x4x5x5xf32>
  %ss = llm.mul %s, %c : (tensor<1x4x5x5xf32>, tensor<f32>) -> tensor<1x4x5x5xf32>
  %p = llm.softmax %ss : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %o = llm.matmul %p, %v : (tensor<1x4x5x5xf32>, tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32>
  return %o : tensor<1x4x5x8xf32>
}

// -----

// dynamo with past: repeat_kv's expand takes the batch and length from other
// tensors (another layer's past), so kv is expanded by them explicitly and
// the head repetition is still absorbed.
// CHECK-LABEL: func @attention_foreign_kv_shape
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x?x16xf32>, %[[K:[^:]*]]: tensor<?x2x?x16xf32>, %[[V:[^:]*]]: tensor<?x2x?x16xf32>, %[[O:[^:]*]]: tensor<?x2x?x16xf32>)
// CHECK: %[[IDX:.*]] = llm.constant dense<[0, 1, 3, 4]>
// CHECK: %[[S5:.*]] = llm.concat
// CHECK-DAG: %[[SK:.*]] = llm.gather %[[S5]], %[[IDX]]
// CHECK-DAG: %[[KE:.*]] = llm.expand %[[K]], %[[SK]] : (tensor<?x2x?x16xf32>, tensor<4xi64>) -> tensor<?x2x?x16xf32>
// CHECK-DAG: %[[VE:.*]] = llm.expand %[[V]], %{{.*}} : (tensor<?x2x?x16xf32>, tensor<4xi64>) -> tensor<?x2x?x16xf32>
// CHECK: llm.attention %[[Q]], %[[KE]], %[[VE]] {kv_heads = 2 : i64, num_heads = 4 : i64
func.func @attention_foreign_kv_shape(%q: tensor<?x4x?x16xf32>, %k: tensor<?x2x?x16xf32>, %v: tensor<?x2x?x16xf32>, %other: tensor<?x2x?x16xf32>) -> tensor<?x4x?x16xf32> {
  %two = llm.constant dense<2> : tensor<1xi64> : tensor<1xi64>
  %four = llm.constant dense<4> : tensor<1xi64> : tensor<1xi64>
  %d = llm.constant dense<16> : tensor<1xi64> : tensor<1xi64>
  %half = llm.constant dense<0.5> : tensor<f32> : tensor<f32>
  %b = llm.shape %other {end = 1 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %t = llm.shape %other {start = 2 : i64, end = 3 : i64} : (tensor<?x2x?x16xf32>) -> tensor<1xi64>
  %s5 = llm.concat %b, %two, %two, %t, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %s4 = llm.concat %b, %four, %t, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = llm.unsqueeze %k, %two : (tensor<?x2x?x16xf32>, tensor<1xi64>) -> tensor<?x2x1x?x16xf32>
  %ke = llm.expand %ku, %s5 : (tensor<?x2x1x?x16xf32>, tensor<5xi64>) -> tensor<?x2x2x?x16xf32>
  %kr = llm.reshape %ke, %s4 {allowzero = 1 : i64} : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
  %vu = llm.unsqueeze %v, %two : (tensor<?x2x?x16xf32>, tensor<1xi64>) -> tensor<?x2x1x?x16xf32>
  %ve = llm.expand %vu, %s5 : (tensor<?x2x1x?x16xf32>, tensor<5xi64>) -> tensor<?x2x2x?x16xf32>
  %vr = llm.reshape %ve, %s4 {allowzero = 1 : i64} : (tensor<?x2x2x?x16xf32>, tensor<4xi64>) -> tensor<?x4x?x16xf32>
  %kt = llm.transpose %kr {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x16xf32>) -> tensor<?x4x16x?xf32>
  %s = llm.matmul %q, %kt : (tensor<?x4x?x16xf32>, tensor<?x4x16x?xf32>) -> tensor<?x4x?x?xf32>
  %ss = llm.mul %s, %half : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %p = llm.softmax %ss : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = llm.matmul %p, %vr : (tensor<?x4x?x?xf32>, tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  return %o : tensor<?x4x?x16xf32>
}

// -----

// Negative: the query head count is not static.
// CHECK-LABEL: func @not_attention_dynamic_heads
// CHECK-NOT: llm.attention
func.func @not_attention_dynamic_heads(%q: tensor<?x?x?x16xf32>, %k: tensor<?x?x?x16xf32>, %v: tensor<?x?x?x16xf32>) -> tensor<?x?x?x16xf32> {
  %kt = llm.transpose %k {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x?x?x16xf32>) -> tensor<?x?x16x?xf32>
  %s = llm.matmul %q, %kt : (tensor<?x?x?x16xf32>, tensor<?x?x16x?xf32>) -> tensor<?x?x?x?xf32>
  %p = llm.softmax %s : (tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %o = llm.matmul %p, %v : (tensor<?x?x?x?xf32>, tensor<?x?x?x16xf32>) -> tensor<?x?x?x16xf32>
  return %o : tensor<?x?x?x16xf32>
}

// -----

// Negative: the softmax is over the query axis; the scale is not a scalar.
// CHECK-LABEL: func @not_attention_axis_or_scale
// CHECK-NOT: llm.attention
func.func @not_attention_axis_or_scale(%q: tensor<1x4x5x8xf32>, %k: tensor<1x4x5x8xf32>, %v: tensor<1x4x5x8xf32>, %c: tensor<5xf32>) -> (tensor<1x4x5x8xf32>, tensor<1x4x5x8xf32>) {
  %kt = llm.transpose %k {perm = array<i64: 0, 1, 3, 2>} : (tensor<1x4x5x8xf32>) -> tensor<1x4x8x5xf32>
  %s = llm.matmul %q, %kt : (tensor<1x4x5x8xf32>, tensor<1x4x8x5xf32>) -> tensor<1x4x5x5xf32>
  %p = llm.softmax %s {axis = 2 : i64} : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %o = llm.matmul %p, %v : (tensor<1x4x5x5xf32>, tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32>
  %s2 = llm.mul %s, %c : (tensor<1x4x5x5xf32>, tensor<5xf32>) -> tensor<1x4x5x5xf32>
  %p2 = llm.softmax %s2 : (tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
  %o2 = llm.matmul %p2, %v : (tensor<1x4x5x5xf32>, tensor<1x4x5x8xf32>) -> tensor<1x4x5x8xf32>
  return %o, %o2 : tensor<1x4x5x8xf32>, tensor<1x4x5x8xf32>
}
