// RUN: kiln-opt %s -split-input-file -llm-raise-rope | FileCheck %s

// Hugging Face's rotate_half application.
// CHECK-LABEL: func @rope
// CHECK-SAME: (%[[X:.*]]: tensor<?x4x?x16xf32>, %[[COS:.*]]: tensor<1x?x16xf32>, %[[SIN:.*]]: tensor<1x?x16xf32>)
// CHECK: %[[R:.*]] = llm.rope %[[X]], %[[COS]], %[[SIN]] {rotary_dim = 16 : i64} : (tensor<?x4x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>) -> tensor<?x4x?x16xf32>
// CHECK-NEXT: return %[[R]]
func.func @rope(%x: tensor<?x4x?x16xf32>, %cos: tensor<1x?x16xf32>, %sin: tensor<1x?x16xf32>) -> tensor<?x4x?x16xf32> {
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %zero = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %half = llm.constant dense<8> : tensor<1xi64> : tensor<1xi64>
  %big = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %last = llm.constant dense<3> : tensor<1xi64> : tensor<1xi64>
  %c = llm.unsqueeze %cos, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %s = llm.unsqueeze %sin, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %xc = llm.mul %x, %c : (tensor<?x4x?x16xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x16xf32>
  %lo = llm.slice %x, %zero, %half axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %hi = llm.slice %x, %half, %big axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %neg = llm.neg %hi : (tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %rot = llm.concat %neg, %lo {axis = -1 : i64} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x16xf32>
  %rs = llm.mul %rot, %s : (tensor<?x4x?x16xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x16xf32>
  %y = llm.add %xc, %rs : (tensor<?x4x?x16xf32>, tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  return %y : tensor<?x4x?x16xf32>
}

// -----

// Negative: the halves are swapped (concat(x1, -x2) is not rotate_half).
// CHECK-LABEL: func @not_rope_swapped
// CHECK-NOT: llm.rope
func.func @not_rope_swapped(%x: tensor<?x4x?x16xf32>, %cos: tensor<1x?x16xf32>, %sin: tensor<1x?x16xf32>) -> tensor<?x4x?x16xf32> {
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %zero = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %half = llm.constant dense<8> : tensor<1xi64> : tensor<1xi64>
  %big = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %last = llm.constant dense<3> : tensor<1xi64> : tensor<1xi64>
  %c = llm.unsqueeze %cos, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %s = llm.unsqueeze %sin, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %xc = llm.mul %x, %c : (tensor<?x4x?x16xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x16xf32>
  %lo = llm.slice %x, %zero, %half axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %hi = llm.slice %x, %half, %big axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %neg = llm.neg %lo : (tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %rot = llm.concat %neg, %hi {axis = -1 : i64} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x16xf32>
  %rs = llm.mul %rot, %s : (tensor<?x4x?x16xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x16xf32>
  %y = llm.add %xc, %rs : (tensor<?x4x?x16xf32>, tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  return %y : tensor<?x4x?x16xf32>
}

// -----

// Negative: the tables are broadcast along the heads at dimension 2, and the
// head size is not static.
// CHECK-LABEL: func @not_rope_layout
// CHECK-NOT: llm.rope
func.func @not_rope_layout(%x: tensor<?x4x?x16xf32>, %cos: tensor<1x?x16xf32>, %sin: tensor<1x?x16xf32>, %d: tensor<?x4x?x?xf32>) -> (tensor<?x4x?x16xf32>, tensor<?x4x?x?xf32>) {
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %two = llm.constant dense<2> : tensor<1xi64> : tensor<1xi64>
  %zero = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %half = llm.constant dense<8> : tensor<1xi64> : tensor<1xi64>
  %big = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %last = llm.constant dense<3> : tensor<1xi64> : tensor<1xi64>
  %c = llm.unsqueeze %cos, %two : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x?x1x16xf32>
  %s = llm.unsqueeze %sin, %two : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x?x1x16xf32>
  %xc = llm.mul %x, %c : (tensor<?x4x?x16xf32>, tensor<1x?x1x16xf32>) -> tensor<?x4x?x16xf32>
  %lo = llm.slice %x, %zero, %half axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %hi = llm.slice %x, %half, %big axes %last steps %one : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %neg = llm.neg %hi : (tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %rot = llm.concat %neg, %lo {axis = -1 : i64} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x16xf32>
  %rs = llm.mul %rot, %s : (tensor<?x4x?x16xf32>, tensor<1x?x1x16xf32>) -> tensor<?x4x?x16xf32>
  %y = llm.add %xc, %rs : (tensor<?x4x?x16xf32>, tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  // The same on a head size that is not static.
  %c2 = llm.unsqueeze %cos, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %s2 = llm.unsqueeze %sin, %one : (tensor<1x?x16xf32>, tensor<1xi64>) -> tensor<1x1x?x16xf32>
  %dc = llm.mul %d, %c2 : (tensor<?x4x?x?xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x?xf32>
  %dlo = llm.slice %d, %zero, %half axes %last steps %one : (tensor<?x4x?x?xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x?xf32>
  %dhi = llm.slice %d, %half, %big axes %last steps %one : (tensor<?x4x?x?xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x?xf32>
  %dneg = llm.neg %dhi : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %drot = llm.concat %dneg, %dlo {axis = -1 : i64} : (tensor<?x4x?x?xf32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %drs = llm.mul %drot, %s2 : (tensor<?x4x?x?xf32>, tensor<1x1x?x16xf32>) -> tensor<?x4x?x?xf32>
  %dy = llm.add %dc, %drs : (tensor<?x4x?x?xf32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  return %y, %dy : tensor<?x4x?x16xf32>, tensor<?x4x?x?xf32>
}

// -----

// The table of the dynamo export: inv_freq[None, :, None] @ float(p)[:, None, :],
// transposed, concatenated with itself; theta 10000 is recovered.
// CHECK-LABEL: func @rotary_table
// CHECK-SAME: (%[[P:.*]]: tensor<?x?xi64>)
// CHECK: %[[C:.*]], %[[S:.*]] = llm.rotary_table %[[P]] {inv_freq = array<f32: 1.000000e+00, 0.316227764, 1.000000e-01, 0.0316227786, 0.00999999977, 0.00316227786, 1.000000e-03, 3.16227786E-4>, theta = 1.000000e+04 : f64} : (tensor<?x?xi64>) -> (tensor<?x?x16xf32>, tensor<?x?x16xf32>)
// CHECK-NEXT: return %[[C]], %[[S]]
func.func @rotary_table(%p: tensor<?x?xi64>) -> (tensor<?x?x16xf32>, tensor<?x?x16xf32>) {
  %inv = llm.constant dense<[[[1.000000e+00], [0.316227764], [1.000000e-01], [0.0316227786], [0.00999999977], [0.00316227786], [1.000000e-03], [3.16227786E-4]]]> : tensor<1x8x1xf32> : tensor<1x8x1xf32>
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %u = llm.unsqueeze %p, %one : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %f = llm.cast %u : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %m = llm.matmul %inv, %f : (tensor<1x8x1xf32>, tensor<?x1x?xf32>) -> tensor<?x8x?xf32>
  %t = llm.transpose %m {perm = array<i64: 0, 2, 1>} : (tensor<?x8x?xf32>) -> tensor<?x?x8xf32>
  %e = llm.concat %t, %t {axis = -1 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x16xf32>
  %cos = llm.cos %e : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %sin = llm.sin %e : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  return %cos, %sin : tensor<?x?x16xf32>, tensor<?x?x16xf32>
}

// -----

// An attention scaling multiplies both tables; inverse frequencies that are
// not a plain theta series (llama3 scaling) give no theta. The inv_freq is
// expanded to the batch of the positions (TorchScript).
// CHECK-LABEL: func @rotary_table_scaled
// CHECK: %[[C:.*]], %[[S:.*]] = llm.rotary_table %{{.*}} {attention_scaling = 1.250000e+00 : f32, inv_freq = array<f32: 1.000000e+00, 1.000000e-01, 1.000000e-03, 9.99999974E-5>}
// CHECK-NOT: theta
// CHECK-NEXT: return %[[C]], %[[S]]
func.func @rotary_table_scaled(%p: tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>) {
  %inv = llm.constant dense<[[[1.0], [0.1], [0.001], [0.0001]]]> : tensor<1x4x1xf32> : tensor<1x4x1xf32>
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %shp = llm.shape %p {end = 1 : i64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %ones = llm.constant dense<1> : tensor<2xi64> : tensor<2xi64>
  %target = llm.concat %shp, %ones {axis = 0 : i64} : (tensor<1xi64>, tensor<2xi64>) -> tensor<3xi64>
  %scale = llm.constant dense<1.25> : tensor<f32> : tensor<f32>
  %ie = llm.expand %inv, %target : (tensor<1x4x1xf32>, tensor<3xi64>) -> tensor<?x4x1xf32>
  %u = llm.unsqueeze %p, %one : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %f = llm.cast %u : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %m = llm.matmul %ie, %f : (tensor<?x4x1xf32>, tensor<?x1x?xf32>) -> tensor<?x4x?xf32>
  %t = llm.transpose %m {perm = array<i64: 0, 2, 1>} : (tensor<?x4x?xf32>) -> tensor<?x?x4xf32>
  %e = llm.concat %t, %t {axis = -1 : i64} : (tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  %cos = llm.cos %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %sin = llm.sin %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %cs = llm.mul %cos, %scale : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %ss = llm.mul %sin, %scale : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  return %cs, %ss : tensor<?x?x8xf32>, tensor<?x?x8xf32>
}

// -----

// Casts of both tables to f16 (Hugging Face's `cos.to(x.dtype)`) fold into
// a table of f16 results.
// CHECK-LABEL: func @rotary_table_cast
// CHECK: %[[C:.*]], %[[S:.*]] = llm.rotary_table %{{.*}} : (tensor<?x?xi64>) -> (tensor<?x?x8xf16>, tensor<?x?x8xf16>)
// CHECK-NOT: llm.cast
// CHECK: return %[[C]], %[[S]]
func.func @rotary_table_cast(%p: tensor<?x?xi64>) -> (tensor<?x?x8xf16>, tensor<?x?x8xf16>) {
  %inv = llm.constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32> : tensor<1x4x1xf32>
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %u = llm.unsqueeze %p, %one : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %f = llm.cast %u : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %m = llm.matmul %inv, %f : (tensor<1x4x1xf32>, tensor<?x1x?xf32>) -> tensor<?x4x?xf32>
  %t = llm.transpose %m {perm = array<i64: 0, 2, 1>} : (tensor<?x4x?xf32>) -> tensor<?x?x4xf32>
  %e = llm.concat %t, %t {axis = -1 : i64} : (tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  %cos = llm.cos %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %sin = llm.sin %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %ch = llm.cast %cos : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
  %sh = llm.cast %sin : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
  return %ch, %sh : tensor<?x?x8xf16>, tensor<?x?x8xf16>
}

// -----

// Negative: the fp32 sin table is also returned, so the table stays fp32
// and the casts stay.
// CHECK-LABEL: func @rotary_table_cast_kept
// CHECK: llm.rotary_table %{{.*}} : (tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>)
// CHECK-COUNT-2: llm.cast %{{.*}} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
func.func @rotary_table_cast_kept(%p: tensor<?x?xi64>) -> (tensor<?x?x8xf16>, tensor<?x?x8xf16>, tensor<?x?x8xf32>) {
  %inv = llm.constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32> : tensor<1x4x1xf32>
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %u = llm.unsqueeze %p, %one : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %f = llm.cast %u : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %m = llm.matmul %inv, %f : (tensor<1x4x1xf32>, tensor<?x1x?xf32>) -> tensor<?x4x?xf32>
  %t = llm.transpose %m {perm = array<i64: 0, 2, 1>} : (tensor<?x4x?xf32>) -> tensor<?x?x4xf32>
  %e = llm.concat %t, %t {axis = -1 : i64} : (tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  %cos = llm.cos %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %sin = llm.sin %e : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %ch = llm.cast %cos : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
  %sh = llm.cast %sin : (tensor<?x?x8xf32>) -> tensor<?x?x8xf16>
  return %ch, %sh, %sin : tensor<?x?x8xf16>, tensor<?x?x8xf16>, tensor<?x?x8xf32>
}

// -----

// Negative: an inv_freq weight that cannot be read (no such file), and angles
// that are not transposed.
// CHECK-LABEL: func @not_rotary_table
// CHECK-NOT: llm.rotary_table
func.func @not_rotary_table(%p: tensor<?x?xi64>) -> (tensor<?x?x16xf32>, tensor<?x8x?xf32>) {
  %inv = llm.weight "inv_freq"(#llm.external_data<path = "/nonexistent/kiln-test.bin", offset = 0, length = 32>) : tensor<1x8x1xf32>
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %u = llm.unsqueeze %p, %one : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %f = llm.cast %u : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %m = llm.matmul %inv, %f : (tensor<1x8x1xf32>, tensor<?x1x?xf32>) -> tensor<?x8x?xf32>
  %t = llm.transpose %m {perm = array<i64: 0, 2, 1>} : (tensor<?x8x?xf32>) -> tensor<?x?x8xf32>
  %e = llm.concat %t, %t {axis = -1 : i64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x16xf32>
  %cos = llm.cos %e : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %e2 = llm.concat %m, %m {axis = -1 : i64} : (tensor<?x8x?xf32>, tensor<?x8x?xf32>) -> tensor<?x8x?xf32>
  %cos2 = llm.cos %e2 : (tensor<?x8x?xf32>) -> tensor<?x8x?xf32>
  return %cos, %cos2 : tensor<?x?x16xf32>, tensor<?x8x?xf32>
}

// -----

// Partial rotary embeddings: the first 8 of 16 channels rotate, the rest pass.
// CHECK-LABEL: func @partial_rope
// CHECK-SAME: (%[[X:.*]]: tensor<?x4x?x16xf32>, %[[COS:.*]]: tensor<1x?x8xf32>, %[[SIN:.*]]: tensor<1x?x8xf32>)
// CHECK: %[[R:.*]] = llm.rope %[[X]], %[[COS]], %[[SIN]] {rotary_dim = 8 : i64} : (tensor<?x4x?x16xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<?x4x?x16xf32>
// CHECK-NEXT: return %[[R]]
func.func @partial_rope(%x: tensor<?x4x?x16xf32>, %cos: tensor<1x?x8xf32>, %sin: tensor<1x?x8xf32>) -> tensor<?x4x?x16xf32> {
  %one = llm.constant dense<1> : tensor<1xi64> : tensor<1xi64>
  %zero = llm.constant dense<0> : tensor<1xi64> : tensor<1xi64>
  %four = llm.constant dense<4> : tensor<1xi64> : tensor<1xi64>
  %eight = llm.constant dense<8> : tensor<1xi64> : tensor<1xi64>
  %big = llm.constant dense<9223372036854775807> : tensor<1xi64> : tensor<1xi64>
  %last = llm.constant dense<-1> : tensor<1xi64> : tensor<1xi64>
  %xr = llm.slice %x, %zero, %eight axes %last : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %xp = llm.slice %x, %eight, %big axes %last : (tensor<?x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x8xf32>
  %c = llm.unsqueeze %cos, %one : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %s = llm.unsqueeze %sin, %one : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %xc = llm.mul %xr, %c : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %lo = llm.slice %xr, %zero, %four axes %last : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %hi = llm.slice %xr, %four, %big axes %last : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %neg = llm.neg %hi : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %rot = llm.concat %neg, %lo {axis = -1 : i64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %rs = llm.mul %rot, %s : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %y = llm.add %xc, %rs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %out = llm.concat %y, %xp {axis = -1 : i64} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x16xf32>
  return %out : tensor<?x4x?x16xf32>
}
