//===- LLMBase.td - The llm dialect definition -------------*- tablegen -*-===//
//
// The `llm` dialect describes decoder-only language models at the level that
// serving optimizations reason about: embeddings, norms, rotary embeddings,
// linear layers, grouped-query attention and gated MLPs. Ops that carry plain
// ONNX semantics (elementwise math, shape manipulation) live in the same
// dialect so that one interpreter and one set of passes see the whole model.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_BASE
#define KILN_DIALECT_LLM_BASE

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def LLM_Dialect : Dialect {
  let name = "llm";
  let cppNamespace = "::kiln::llm";
  let summary = "Decoder-only large language models as a compiler sees them.";
  let description = [{
    The `llm` dialect has two layers. *Model ops* (`llm.embedding`,
    `llm.rms_norm`, `llm.rope`, `llm.linear`, `llm.attention`,
    `llm.gated_mlp`, ...) name the building blocks of decoder LLMs; the
    optimization passes and the code generator work on them. *Generic ops*
    (`llm.add`, `llm.reshape`, `llm.gather`, ...) carry ONNX semantics for the
    parts of a graph that do not raise (mask building, shape arithmetic); the
    raising passes report every generic op left in a model body.

    Weights are `llm.weight` ops that reference their bytes by file and
    offset (ONNX external data) or by initializer name, so a module prints in
    kilobytes whatever the size of the model.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasConstantMaterializer = 1;
}

class LLM_Op<string mnemonic, list<Trait> traits = []>
    : Op<LLM_Dialect, mnemonic, traits>;

class LLM_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<LLM_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

class LLM_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<LLM_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

#endif // KILN_DIALECT_LLM_BASE
