// The packed weights go to the data file; the ops read !llm.qweight
// weights over its bytes (packed codes at 0, scales at the next multiple
// of 64, zero points after them). skip=lm_head keeps the output
// projection (the linear whose result is returned) dense.
// RUN: rm -rf %t && mkdir -p %t && %python %S/Inputs/write_weights.py %t
// RUN: sed "s|MODEL_DIR|%t|" %s > %t/in.mlir
// RUN: kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-quantize-weights{bits=4 group-size=32 data-file=q4.packed skip=lm_head})' | FileCheck %s --check-prefix=INT4
// RUN: kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-quantize-weights{bits=8 zero-point=1 data-file=q8.packed})' | FileCheck %s --check-prefix=INT8
// RUN: kiln-opt %t/in.mlir --pass-pipeline='builtin.module(llm-quantize-weights{format=fp8e4m3 data-file=f8.packed})' | FileCheck %s --check-prefix=FP8
// RUN: %python -c "import os; print(os.path.getsize('%t/q4.packed'), os.path.getsize('%t/q8.packed'), os.path.getsize('%t/f8.packed'))" | FileCheck %s --check-prefix=SIZES

// INT4: llm.weight "proj.weight"(#llm.external_data<path = "q4.packed", offset = 0, length = 1280>) : !llm.qweight<k = 64, n = 32, bits = 4, group = 32, scaleType = f32, zeroPoint = false>
// INT4: llm.weight "head.weight"(#llm.external_data<path = "w.bin", offset = 8192, length = 2048>) : tensor<32x16xf32>
// INT4: llm.linear %arg0, %{{.*}} {transpose_weight} : (tensor<2x64xf32>, !llm.qweight<{{.*}}>) -> tensor<2x32xf32>
// INT4: llm.linear %{{.*}}, %{{.*}} : (tensor<2x32xf32>, tensor<32x16xf32>) -> tensor<2x16xf32>

// 8 bits, per channel, zero points: 2048 codes, 32 scales at 2048, 32 zero
// points at 2176; the head at the next multiple of 64 (2240).
// INT8: llm.weight "proj.weight"(#llm.external_data<path = "q8.packed", offset = 0, length = 2208>) : !llm.qweight<k = 64, n = 32, bits = 8, group = 64, scaleType = f32, zeroPoint = true>
// INT8: llm.weight "head.weight"(#llm.external_data<path = "q8.packed", offset = 2240, length = 592>) : !llm.qweight<k = 32, n = 16, bits = 8, group = 32, scaleType = f32, zeroPoint = true>

// FP8: !llm.qweight<k = 64, n = 32, bits = 8, group = 64, scaleType = f32, zeroPoint = false, format = "fp8e4m3">

// SIZES: 1280 2832 2752

module attributes {llm.model_dir = "MODEL_DIR"} {
  func.func @main(%x: tensor<2x64xf32>) -> tensor<2x16xf32> {
    %w = llm.weight "proj.weight"(#llm.external_data<path = "w.bin", offset = 0, length = 8192>) : tensor<32x64xf32>
    %h = llm.weight "head.weight"(#llm.external_data<path = "w.bin", offset = 8192, length = 2048>) : tensor<32x16xf32>
    %y = llm.linear %x, %w {transpose_weight} : (tensor<2x64xf32>, tensor<32x64xf32>) -> tensor<2x32xf32>
    %z = llm.linear %y, %h : (tensor<2x32xf32>, tensor<32x16xf32>) -> tensor<2x16xf32>
    return %z : tensor<2x16xf32>
  }
}
