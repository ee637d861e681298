// RUN: kiln-opt %s --verify-diagnostics --pass-pipeline='builtin.module(llm-sparsify-2to4{data-file=%t.packed})'

module attributes {llm.model_dir = "."} {
  func.func @main(%x: tensor<2x12xf16>) -> tensor<2x32xf16> {
    // expected-error@+1 {{2:4 sparsity needs input features that are a multiple of 8 (two groups of four per metadata byte), but 'w' has 12}}
    %w = llm.weight "w" (#llm.external_data<path = "missing.bin", offset = 0, length = 768>) : tensor<12x32xf16>
    %y = llm.linear %x, %w : (tensor<2x12xf16>, tensor<12x32xf16>) -> tensor<2x32xf16>
    return %y : tensor<2x32xf16>
  }
}
