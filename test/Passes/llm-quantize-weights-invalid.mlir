// Combinations no kernel serves are refused with the options named.
// RUN: kiln-opt %s --verify-diagnostics --pass-pipeline='builtin.module(llm-quantize-weights{bits=4 group-size=48 data-file=%t.packed})'
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights{bits=8 group-size=8 data-file=%t.packed})' 2>&1 | FileCheck %s --check-prefix=G8
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights{bits=3 data-file=%t.packed})' 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights{format=fp8e4m3 group-size=32 data-file=%t.packed})' 2>&1 | FileCheck %s --check-prefix=FP8
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights{method=gptq data-file=%t.packed})' 2>&1 | FileCheck %s --check-prefix=GPTQ
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights{method=hqq data-file=%t.packed})' 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not kiln-opt %s --pass-pipeline='builtin.module(llm-quantize-weights)' 2>&1 | FileCheck %s --check-prefix=FILE

// G8: error: group-size=8 is not a multiple of 16 (the kernels' group granularity)
// BITS: error: bits=3 is not supported (expected 8 or 4)
// FP8: error: format=fp8e4m3 takes bits=8, per-channel scales (group-size=0) and no zero-point
// GPTQ: error: method=gptq needs calibration statistics (kiln-compile --calibration-text FILE)
// METHOD: error: method=hqq is not supported (expected rtn, gptq or awq)
// FILE: error: llm-quantize-weights: no data-file given for the packed weights

module attributes {llm.model_dir = "."} {
  func.func @main(%x: tensor<2x64xf16>) -> tensor<2x32xf16> {
    // expected-error@+1 {{group-size=48 does not divide the 64 input features of 'w'}}
    %w = llm.weight "w" (#llm.external_data<path = "missing.bin", offset = 0, length = 4096>) : tensor<64x32xf16>
    %y = llm.linear %x, %w : (tensor<2x64xf16>, tensor<64x32xf16>) -> tensor<2x32xf16>
    return %y : tensor<2x32xf16>
  }
}
