// 2:4 magnitude pruning: kept values [32, 32] f32 at 0, metadata [32, 8]
// at 4096; the head (K = 32) at the next multiple of 64.
// RUN: rm -rf %t && mkdir -p %t && %python %S/Inputs/write_weights.py %t
// RUN: sed "s|MODEL_DIR|%t|" %s > %t/in.mlir
// RUN: kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-sparsify-2to4{data-file=s.packed})' | FileCheck %s
// RUN: not kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-sparsify-2to4{method=wanda data-file=s.packed})' 2>&1 | FileCheck %s --check-prefix=WANDA
// RUN: not kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-sparsify-2to4{method=random data-file=s.packed})' 2>&1 | FileCheck %s --check-prefix=METHOD

// CHECK: llm.weight "proj.weight"(#llm.external_data<path = "s.packed", offset = 0, length = 4352>) : !llm.sparse24<k = 64, n = 32, elementType = f32>
// CHECK: llm.weight "head.weight"(#llm.external_data<path = "s.packed", offset = 4352, length = 1088>) : !llm.sparse24<k = 32, n = 16, elementType = f32>
// WANDA: error: method=wanda needs calibration statistics (kiln-compile --calibration-text FILE)
// METHOD: error: method=random is not supported (expected magnitude, wanda or sparsegpt)

module attributes {llm.model_dir = "MODEL_DIR"} {
  func.func @main(%x: tensor<2x64xf32>) -> tensor<2x16xf32> {
    %w = llm.weight "proj.weight"(#llm.external_data<path = "w.bin", offset = 0, length = 8192>) : tensor<32x64xf32>
    %h = llm.weight "head.weight"(#llm.external_data<path = "w.bin", offset = 8192, length = 2048>) : tensor<32x16xf32>
    %y = llm.linear %x, %w {transpose_weight} : (tensor<2x64xf32>, tensor<32x64xf32>) -> tensor<2x32xf32>
    %z = llm.linear %y, %h : (tensor<2x32xf32>, tensor<32x16xf32>) -> tensor<2x16xf32>
    return %z : tensor<2x16xf32>
  }
}
