// RUN: kiln-opt %s -verify-diagnostics -llm-speculative-decode="k=2 draft-vocab=48"
// RUN: not kiln-opt %s -llm-speculative-decode="k=0" 2>&1 | FileCheck %s --check-prefix=K0
// RUN: not kiln-opt %s -llm-speculative-decode="draft-vocab=-1" 2>&1 | FileCheck %s --check-prefix=NEG

// A draft whose vocabulary differs from the target's cannot propose its
// token ids; k must be at least 1.

// K0: error: speculative decoding needs k >= 1 drafted tokens, got 0
// NEG: error: draft-vocab must not be negative, got -1

module {
// expected-error @+1 {{the draft model's vocabulary of 48 tokens differs from the target's of 32: a draft must propose the target's token ids}}
func.func @prefill(%ids: tensor<?xi64>) -> tensor<?x32xf32> {
  %embed = llm.weight "embed"(#llm.external_data<path = "w.bin", offset = 0, length = 4096>) : tensor<32x32xf32>
  %x = llm.embedding %embed[%ids] : (tensor<32x32xf32>, tensor<?xi64>) -> tensor<?x32xf32>
  return %x : tensor<?x32xf32>
}
}
