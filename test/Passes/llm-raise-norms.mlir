// RUN: kiln-opt %s -split-input-file -llm-raise-norms | FileCheck %s

// The dynamo export: x * reciprocal(sqrt(mean(x^2) + eps)), weight on the left.
// CHECK-LABEL: func @rms_norm_dynamo
// CHECK-SAME: (%[[X:.*]]: tensor<2x5x64xf32>)
// CHECK: %[[W:.*]] = llm.weight "norm"
// CHECK: %[[R:.*]] = llm.rms_norm %[[X]], %[[W]] {epsilon = 9.99999997E-7 : f32} : (tensor<2x5x64xf32>, tensor<64xf32>) -> tensor<2x5x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @rms_norm_dynamo(%x: tensor<2x5x64xf32>) -> tensor<2x5x64xf32> {
  %w = llm.weight "norm"(#llm.external_data<path = "w.bin", offset = 0, length = 256>) : tensor<64xf32>
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %sq = llm.pow %x, %two : (tensor<2x5x64xf32>, tensor<f32>) -> tensor<2x5x64xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<2x5x64xf32>, tensor<1xi64>) -> tensor<2x5x1xf32>
  %sum = llm.add %mean, %eps : (tensor<2x5x1xf32>, tensor<f32>) -> tensor<2x5x1xf32>
  %root = llm.sqrt %sum : (tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %inv = llm.reciprocal %root : (tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %n = llm.mul %x, %inv : (tensor<2x5x64xf32>, tensor<2x5x1xf32>) -> tensor<2x5x64xf32>
  %y = llm.mul %w, %n : (tensor<64xf32>, tensor<2x5x64xf32>) -> tensor<2x5x64xf32>
  return %y : tensor<2x5x64xf32>
}

// -----

// TorchScript with Hugging Face's casts: f16 in, statistics in f32, 1 / sqrt,
// axes as the positive last axis, weight on the right. The norm reads the
// uncast f16 input.
// CHECK-LABEL: func @rms_norm_half_with_casts
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x8xf16>)
// CHECK: %[[R:.*]] = llm.rms_norm %[[X]], %{{.*}} {epsilon = 9.99999974E-6 : f32} : (tensor<?x?x8xf16>, tensor<8xf16>) -> tensor<?x?x8xf16>
// CHECK-NEXT: return %[[R]]
func.func @rms_norm_half_with_casts(%x0: tensor<?x?x8xf16>) -> tensor<?x?x8xf16> {
  %w = llm.constant dense<1.0> : tensor<8xf16> : tensor<8xf16>
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<2> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-5> : tensor<1xf32> : tensor<1xf32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %x = llm.cast %x0 : (tensor<?x?x8xf16>) -> tensor<?x?x8xf32>
  %sq = llm.pow %x, %two : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x?x1xf32>
  %sum = llm.add %eps, %mean : (tensor<1xf32>, tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %root = llm.sqrt %sum : (tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %inv = llm.div %one, %root : (tensor<f32>, tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %n = llm.mul %inv, %x : (tensor<?x?x1xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %n16 = llm.cast %n : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
  %y = llm.mul %n16, %w : (tensor<?x?x8xf16>, tensor<8xf16>) -> tensor<?x?x8xf16>
  return %y : tensor<?x?x8xf16>
}

// -----

// x / sqrt(mean(x * x) + eps), and Gemma's (1 + w) weight.
// CHECK-LABEL: func @rms_norm_div_gemma
// CHECK: llm.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32, weight_offset = 1.000000e+00 : f32}
// CHECK-NOT: llm.sqrt
func.func @rms_norm_div_gemma(%x: tensor<3x16xf32>, %w: tensor<16xf32>) -> tensor<3x16xf32> {
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %one = llm.constant dense<1.0> : tensor<f32> : tensor<f32>
  %sq = llm.mul %x, %x : (tensor<3x16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<3x1xf32>
  %sum = llm.add %mean, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %root = llm.sqrt %sum : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n = llm.div %x, %root : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  %w1 = llm.add %w, %one : (tensor<16xf32>, tensor<f32>) -> tensor<16xf32>
  %y = llm.mul %n, %w1 : (tensor<3x16xf32>, tensor<16xf32>) -> tensor<3x16xf32>
  return %y : tensor<3x16xf32>
}

// -----

// rsqrt as pow(., -0.5).
// CHECK-LABEL: func @rms_norm_pow_rsqrt
// CHECK: llm.rms_norm
// CHECK-NOT: llm.pow
func.func @rms_norm_pow_rsqrt(%x: tensor<3x16xf32>, %w: tensor<16xf32>) -> tensor<3x16xf32> {
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %half = llm.constant dense<-0.5> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %sq = llm.pow %x, %two : (tensor<3x16xf32>, tensor<f32>) -> tensor<3x16xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<3x1xf32>
  %sum = llm.add %mean, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %inv = llm.pow %sum, %half : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %n = llm.mul %x, %inv : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  %y = llm.mul %w, %n : (tensor<16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  return %y : tensor<3x16xf32>
}

// -----

// Negative: the mean is over the first axis, not the last.
// CHECK-LABEL: func @rms_norm_wrong_axis
// CHECK-NOT: llm.rms_norm
func.func @rms_norm_wrong_axis(%x: tensor<3x16xf32>, %w: tensor<16xf32>) -> tensor<3x16xf32> {
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %sq = llm.pow %x, %two : (tensor<3x16xf32>, tensor<f32>) -> tensor<3x16xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<1x16xf32>
  %sum = llm.add %mean, %eps : (tensor<1x16xf32>, tensor<f32>) -> tensor<1x16xf32>
  %root = llm.sqrt %sum : (tensor<1x16xf32>) -> tensor<1x16xf32>
  %inv = llm.reciprocal %root : (tensor<1x16xf32>) -> tensor<1x16xf32>
  %n = llm.mul %x, %inv : (tensor<3x16xf32>, tensor<1x16xf32>) -> tensor<3x16xf32>
  %y = llm.mul %w, %n : (tensor<16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  return %y : tensor<3x16xf32>
}

// -----

// Negative: the statistic is of another tensor than the one normalized.
// CHECK-LABEL: func @rms_norm_other_tensor
// CHECK-NOT: llm.rms_norm
func.func @rms_norm_other_tensor(%x: tensor<3x16xf32>, %z: tensor<3x16xf32>, %w: tensor<16xf32>) -> tensor<3x16xf32> {
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %sq = llm.pow %z, %two : (tensor<3x16xf32>, tensor<f32>) -> tensor<3x16xf32>
  %mean = llm.reduce_mean %sq axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<3x1xf32>
  %sum = llm.add %mean, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %root = llm.sqrt %sum : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %inv = llm.reciprocal %root : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n = llm.mul %x, %inv : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  %y = llm.mul %w, %n : (tensor<16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  return %y : tensor<3x16xf32>
}

// -----

// Negative: x^3 is not a square, and a weight of another size would broadcast.
// CHECK-LABEL: func @rms_norm_not_square
// CHECK-NOT: llm.rms_norm
func.func @rms_norm_not_square(%x: tensor<3x16xf32>, %w: tensor<16xf32>, %w2: tensor<1xf32>) -> (tensor<3x16xf32>, tensor<3x16xf32>) {
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %three = llm.constant dense<3.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-6> : tensor<f32> : tensor<f32>
  %cube = llm.pow %x, %three : (tensor<3x16xf32>, tensor<f32>) -> tensor<3x16xf32>
  %mean = llm.reduce_mean %cube axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<3x1xf32>
  %sum = llm.add %mean, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %root = llm.sqrt %sum : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %inv = llm.reciprocal %root : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n = llm.mul %x, %inv : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  %y = llm.mul %w, %n : (tensor<16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  %sq = llm.pow %x, %two : (tensor<3x16xf32>, tensor<f32>) -> tensor<3x16xf32>
  %mean2 = llm.reduce_mean %sq axes %axes : (tensor<3x16xf32>, tensor<1xi64>) -> tensor<3x1xf32>
  %sum2 = llm.add %mean2, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %root2 = llm.sqrt %sum2 : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %inv2 = llm.reciprocal %root2 : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n2 = llm.mul %x, %inv2 : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  %y2 = llm.mul %w2, %n2 : (tensor<1xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  return %y, %y2 : tensor<3x16xf32>, tensor<3x16xf32>
}

// -----

// LayerNorm with a bias: (x - mean) / sqrt(var + eps) * w + b.
// CHECK-LABEL: func @layer_norm_bias
// CHECK-SAME: (%[[X:.*]]: tensor<4x32xf32>, %[[W:.*]]: tensor<32xf32>, %[[B:.*]]: tensor<32xf32>)
// CHECK: %[[R:.*]] = llm.layer_norm %[[X]], %[[W]], %[[B]] {epsilon = 9.99999974E-6 : f32}
// CHECK-NEXT: return %[[R]]
func.func @layer_norm_bias(%x: tensor<4x32xf32>, %w: tensor<32xf32>, %b: tensor<32xf32>) -> tensor<4x32xf32> {
  %two = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-5> : tensor<f32> : tensor<f32>
  %mean = llm.reduce_mean %x axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %c = llm.sub %x, %mean : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %sq = llm.pow %c, %two : (tensor<4x32xf32>, tensor<f32>) -> tensor<4x32xf32>
  %var = llm.reduce_mean %sq axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %sum = llm.add %var, %eps : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
  %root = llm.sqrt %sum : (tensor<4x1xf32>) -> tensor<4x1xf32>
  %n = llm.div %c, %root : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %s = llm.mul %n, %w : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  %y = llm.add %s, %b : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// LayerNorm without a bias.
// CHECK-LABEL: func @layer_norm_no_bias
// CHECK: %[[R:.*]] = llm.layer_norm %{{[^,]*}}, %{{[^,]*}} {epsilon
// CHECK-NEXT: return %[[R]]
func.func @layer_norm_no_bias(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> tensor<4x32xf32> {
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-5> : tensor<f32> : tensor<f32>
  %mean = llm.reduce_mean %x axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %c = llm.sub %x, %mean : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %sq = llm.mul %c, %c : (tensor<4x32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
  %var = llm.reduce_mean %sq axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %sum = llm.add %var, %eps : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
  %root = llm.sqrt %sum : (tensor<4x1xf32>) -> tensor<4x1xf32>
  %inv = llm.reciprocal %root : (tensor<4x1xf32>) -> tensor<4x1xf32>
  %n = llm.mul %c, %inv : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %y = llm.mul %w, %n : (tensor<32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Negative: the variance is of the uncentered input.
// CHECK-LABEL: func @layer_norm_wrong_variance
// CHECK-NOT: llm.layer_norm
func.func @layer_norm_wrong_variance(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> tensor<4x32xf32> {
  %axes = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %eps = llm.constant dense<1.0e-5> : tensor<f32> : tensor<f32>
  %mean = llm.reduce_mean %x axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %c = llm.sub %x, %mean : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %sq = llm.mul %x, %x : (tensor<4x32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
  %var = llm.reduce_mean %sq axes %axes : (tensor<4x32xf32>, tensor<1xi64>) -> tensor<4x1xf32>
  %sum = llm.add %var, %eps : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
  %root = llm.sqrt %sum : (tensor<4x1xf32>) -> tensor<4x1xf32>
  %n = llm.div %c, %root : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
  %y = llm.mul %n, %w : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}
