// RUN: kiln-opt %s -split-input-file -llm-fold-shapes | FileCheck %s

// The shape of static dimensions, and gathers, slices, concats,
// (un)squeezes and casts of constants, fold to constants.
// CHECK-LABEL: func @fold_static_shape_arithmetic
// CHECK-DAG: %[[A:.*]] = llm.constant dense<[3, 64]> : tensor<2xi64>
// CHECK-DAG: %[[B:.*]] = llm.constant dense<[3, 4, 16]> : tensor<3xi64>
// CHECK-DAG: %[[C:.*]] = llm.constant dense<64> : tensor<i32>
// CHECK: return %[[A]], %[[B]], %[[C]]
func.func @fold_static_shape_arithmetic(%x: tensor<?x3x64xf32>) -> (tensor<2xi64>, tensor<*xi64>, tensor<*xi32>) {
  %c0 = llm.constant dense<0> : tensor<i64> : tensor<i64>
  %c1 = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %a0 = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %heads = llm.constant dense<[4, 16]> : tensor<2xi64> : tensor<2xi64>
  %s = llm.shape %x {start = 1 : i64} : (tensor<?x3x64xf32>) -> tensor<2xi64>
  %g = llm.gather %s, %c0 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %u = llm.unsqueeze %g, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<*xi64>
  %cat = llm.concat %u, %heads {axis = 0 : i64} : (tensor<*xi64>, tensor<2xi64>) -> tensor<*xi64>
  %sl = llm.slice %s, %c1, %c1 : (tensor<2xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<*xi64>
  %last = llm.gather %s, %c1 : (tensor<2xi64>, tensor<1xi64>) -> tensor<*xi64>
  %sq = llm.squeeze %last : (tensor<*xi64>) -> tensor<*xi64>
  %i32 = llm.cast %sq : (tensor<*xi64>) -> tensor<*xi32>
  return %s, %cat, %i32 : tensor<2xi64>, tensor<*xi64>, tensor<*xi32>
}

// -----

// Shape inference: the TorchScript head split reshape(q, [B, S, -1, 16]) with
// B and S read from q's own shape has 4 heads; the function result type
// follows the refined value.
// CHECK-LABEL: func @infer_head_split
// CHECK-SAME: -> tensor<?x4x?x16xf32>
// CHECK: llm.reshape %{{.*}}, %{{.*}} : (tensor<?x?x64xf32>, tensor<4xi64>) -> tensor<?x?x4x16xf32>
// CHECK: llm.transpose %{{.*}} {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x16xf32>) -> tensor<?x4x?x16xf32>
func.func @infer_head_split(%x: tensor<?x?x64xf32>) -> tensor<*xf32> {
  %c0 = llm.constant dense<0> : tensor<i64> : tensor<i64>
  %c1 = llm.constant dense<1> : tensor<i64> : tensor<i64>
  %axes = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %rest = llm.constant dense<[-1, 16]> : tensor<2xi64> : tensor<2xi64>
  %s = llm.shape %x : (tensor<?x?x64xf32>) -> tensor<*xi64>
  %b = llm.gather %s, %c0 : (tensor<*xi64>, tensor<i64>) -> tensor<*xi64>
  %n = llm.gather %s, %c1 : (tensor<*xi64>, tensor<i64>) -> tensor<*xi64>
  %bu = llm.unsqueeze %b, %axes : (tensor<*xi64>, tensor<1xi64>) -> tensor<*xi64>
  %nu = llm.unsqueeze %n, %axes : (tensor<*xi64>, tensor<1xi64>) -> tensor<*xi64>
  %shape = llm.concat %bu, %nu, %rest {axis = 0 : i64} : (tensor<*xi64>, tensor<*xi64>, tensor<2xi64>) -> tensor<*xi64>
  %r = llm.reshape %x, %shape : (tensor<?x?x64xf32>, tensor<*xi64>) -> tensor<*xf32>
  %t = llm.transpose %r {perm = array<i64: 0, 2, 1, 3>} : (tensor<*xf32>) -> tensor<*xf32>
  return %t : tensor<*xf32>
}

// -----

// Reshapes and expands to the operand's own shape, identity transposes,
// casts to the same type, full slices, one-input concats and products with
// a broadcast-free one return their operand.
// CHECK-LABEL: func @remove_no_ops
// CHECK-SAME: (%[[X:.*]]: tensor<?x4x16xf32>)
// CHECK-NEXT: return %[[X]], %[[X]], %[[X]], %[[X]], %[[X]], %[[X]], %[[X]]
func.func @remove_no_ops(%x: tensor<?x4x16xf32>) -> (tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>) {
  %s = llm.shape %x : (tensor<?x4x16xf32>) -> tensor<3xi64>
  %ones = llm.constant dense<[1, 4, 1]> : tensor<3xi64> : tensor<3xi64>
  %c0 = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %big = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %one = llm.constant dense<1.0> : tensor<1xf32> : tensor<1xf32>
  %r = llm.reshape %x, %s : (tensor<?x4x16xf32>, tensor<3xi64>) -> tensor<?x4x16xf32>
  %e = llm.expand %x, %ones : (tensor<?x4x16xf32>, tensor<3xi64>) -> tensor<?x4x16xf32>
  %t = llm.transpose %x {perm = array<i64: 0, 1, 2>} : (tensor<?x4x16xf32>) -> tensor<?x4x16xf32>
  %c = llm.cast %x : (tensor<?x4x16xf32>) -> tensor<?x4x16xf32>
  %sl = llm.slice %x, %c0, %big : (tensor<?x4x16xf32>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x16xf32>
  %cat = llm.concat %x {axis = 1 : i64} : (tensor<?x4x16xf32>) -> tensor<?x4x16xf32>
  %m = llm.mul %one, %x : (tensor<1xf32>, tensor<?x4x16xf32>) -> tensor<?x4x16xf32>
  return %r, %e, %t, %c, %sl, %cat, %m : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
}

// -----

// Negative: a reshape to an unknown shape, an expand that broadcasts, a
// product with a one that broadcasts, a cast to another type and the
// dynamic batch of a shape stay.
// CHECK-LABEL: func @keep_real_ops
// CHECK: llm.reshape
// CHECK: llm.expand
// CHECK: llm.mul
// CHECK: llm.cast
// CHECK: llm.shape
func.func @keep_real_ops(%x: tensor<?x4x16xf32>, %shape: tensor<3xi64>) -> (tensor<?x?x?xf32>, tensor<?x4x16xf32>, tensor<2x?x4x16xf32>, tensor<?x4x16xf16>, tensor<1xi64>) {
  %two = llm.constant dense<[2, 1, 1]> : tensor<3xi64> : tensor<3xi64>
  %one = llm.constant dense<1.0> : tensor<2x1x1x1xf32> : tensor<2x1x1x1xf32>
  %r = llm.reshape %x, %shape : (tensor<?x4x16xf32>, tensor<3xi64>) -> tensor<?x?x?xf32>
  %e = llm.expand %x, %two : (tensor<?x4x16xf32>, tensor<3xi64>) -> tensor<?x4x16xf32>
  %m = llm.mul %x, %one : (tensor<?x4x16xf32>, tensor<2x1x1x1xf32>) -> tensor<2x?x4x16xf32>
  %c = llm.cast %x : (tensor<?x4x16xf32>) -> tensor<?x4x16xf16>
  %b = llm.shape %x {end = 1 : i64} : (tensor<?x4x16xf32>) -> tensor<1xi64>
  return %r, %e, %m, %c, %b : tensor<?x?x?xf32>, tensor<?x4x16xf32>, tensor<2x?x4x16xf32>, tensor<?x4x16xf16>, tensor<1xi64>
}

// -----

// The dynamo export of k.transpose(-2, -1): reshape to [-1, S, D],
// transpose [0, 2, 1], reshape to [B, H, D, S] with every size read from k.
// CHECK-LABEL: func @reshape_transpose_reshape
// CHECK-SAME: (%[[K:.*]]: tensor<?x4x?x16xf32>)
// CHECK: %[[T:.*]] = llm.transpose %[[K]] {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x16xf32>) -> tensor<?x4x16x?xf32>
// CHECK-NEXT: return %[[T]]
func.func @reshape_transpose_reshape(%k: tensor<?x4x?x16xf32>) -> tensor<?x?x?x?xf32> {
  %m1 = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %m2 = llm.constant dense<-2> : tensor<1xi64> : tensor<1xi64>
  %lo = llm.constant dense<-9223372036854775808> : tensor<1xi64> : tensor<1xi64>
  %hi = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %s = llm.shape %k : (tensor<?x4x?x16xf32>) -> tensor<4xi64>
  %d = llm.slice %s, %m1, %hi : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %n = llm.slice %s, %m2, %m1 : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %lead = llm.slice %s, %lo, %m2 : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %s1 = llm.concat %m1, %n, %d {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %r1 = llm.reshape %k, %s1 : (tensor<?x4x?x16xf32>, tensor<3xi64>) -> tensor<?x?x?xf32>
  %t = llm.transpose %r1 {perm = array<i64: 0, 2, 1>} : (tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s2 = llm.concat %lead, %d, %n {axis = 0 : i64} : (tensor<2xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %r2 = llm.reshape %t, %s2 : (tensor<?x?x?xf32>, tensor<4xi64>) -> tensor<?x?x?x?xf32>
  return %r2 : tensor<?x?x?x?xf32>
}

// -----

// TorchScript's expand target where(shape == -1, 1, shape): dimensions are
// never -1, so the target is the operand's own shape and the expand goes.
// CHECK-LABEL: func @torchscript_expand_target
// CHECK-SAME: (%[[X:.*]]: tensor<?x2x1x?x16xf32>)
// CHECK-NEXT: return %[[X]]
func.func @torchscript_expand_target(%x: tensor<?x2x1x?x16xf32>) -> tensor<?x2x1x?x16xf32> {
  %m1 = llm.constant dense<-1> : tensor<5xi64> : tensor<5xi64>
  %ones = llm.constant dense<1> : tensor<5xi64> : tensor<5xi64>
  %s = llm.shape %x : (tensor<?x2x1x?x16xf32>) -> tensor<5xi64>
  %eq = llm.equal %s, %m1 : (tensor<5xi64>, tensor<5xi64>) -> tensor<5xi1>
  %w = llm.where %eq, %ones, %s : (tensor<5xi1>, tensor<5xi64>, tensor<5xi64>) -> tensor<5xi64>
  %e = llm.expand %x, %w : (tensor<?x2x1x?x16xf32>, tensor<5xi64>) -> tensor<?x2x1x?x16xf32>
  return %e : tensor<?x2x1x?x16xf32>
}

// -----

// Integer arithmetic, comparisons, where, range and constant_of_shape of
// constants fold; f32 arithmetic folds in single precision.
// CHECK-LABEL: func @fold_arithmetic
// CHECK-DAG: llm.constant dense<[2, 3]> : tensor<2xi64>
// CHECK-DAG: llm.constant dense<[0, 1, 2, 3]> : tensor<4xi64>
// CHECK-DAG: llm.constant dense<true> : tensor<2xi1>
// CHECK-DAG: llm.constant dense<0.333333343> : tensor<f32>
// CHECK-DAG: llm.constant dense<7> : tensor<2x2xi64>
// CHECK-NOT: llm.div
// CHECK-NOT: llm.range
func.func @fold_arithmetic() -> (tensor<*xi64>, tensor<*xi64>, tensor<*xi1>, tensor<*xf32>, tensor<*xi64>) {
  %a = llm.constant dense<[4, 6]> : tensor<2xi64> : tensor<2xi64>
  %two = llm.constant dense<2> : tensor<i64> : tensor<i64>
  %zero = llm.constant dense<0> : tensor<i64> : tensor<i64>
  %four = llm.constant dense<4> : tensor<i64> : tensor<i64>
  %one = llm.constant dense<1> : tensor<i64> : tensor<i64>
  %f1 = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %f3 = llm.constant dense<3.0> : tensor<f32> : tensor<f32>
  %shape = llm.constant dense<[2, 2]> : tensor<2xi64> : tensor<2xi64>
  %d = llm.div %a, %two : (tensor<2xi64>, tensor<i64>) -> tensor<*xi64>
  %r = llm.range %zero, %four, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<*xi64>
  %lt = llm.less %d, %four : (tensor<*xi64>, tensor<i64>) -> tensor<*xi1>
  %q = llm.div %f1, %f3 : (tensor<f32>, tensor<f32>) -> tensor<*xf32>
  %c = llm.constant_of_shape %shape {value = dense<7> : tensor<1xi64>} : (tensor<2xi64>) -> tensor<*xi64>
  return %d, %r, %lt, %q, %c : tensor<*xi64>, tensor<*xi64>, tensor<*xi1>, tensor<*xf32>, tensor<*xi64>
}

// -----

// Negative: constants above max-fold-elements stay computed.
// CHECK-LABEL: func @no_large_fold
// CHECK: llm.constant_of_shape
func.func @no_large_fold() -> tensor<*xf32> {
  %shape = llm.constant dense<[64, 64]> : tensor<2xi64> : tensor<2xi64>
  %c = llm.constant_of_shape %shape {value = dense<0.0> : tensor<1xf32>} : (tensor<2xi64>) -> tensor<*xf32>
  return %c : tensor<*xf32>
}

// -----

// An activation's result type follows its refined operand.
// CHECK-LABEL: func @activation_follows_operand
// CHECK: %[[M:.*]] = llm.matmul %{{.*}}, %{{.*}} : (tensor<?x16xf32>, tensor<16x24xf32>) -> tensor<?x24xf32>
// CHECK: llm.gelu %[[M]] : tensor<?x24xf32>
func.func @activation_follows_operand(%x: tensor<?x16xf32>, %w: tensor<16x24xf32>) -> tensor<*xf32> {
  %m = llm.matmul %x, %w : (tensor<?x16xf32>, tensor<16x24xf32>) -> tensor<*xf32>
  %g = llm.gelu %m : tensor<*xf32>
  return %g : tensor<*xf32>
}
