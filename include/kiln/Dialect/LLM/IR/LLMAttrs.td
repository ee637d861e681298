//===- LLMAttrs.td - Attributes and types of the llm dialect -*- tablegen -*-===//

#ifndef KILN_DIALECT_LLM_ATTRS
#define KILN_DIALECT_LLM_ATTRS

include "kiln/Dialect/LLM/IR/LLMBase.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

//===----------------------------------------------------------------------===//
// Where a weight's bytes live
//===----------------------------------------------------------------------===//

def LLM_ExternalDataAttr : LLM_Attr<"ExternalData", "external_data"> {
  let summary = "Bytes of a weight stored in an external data file.";
  let description = [{
    Names a byte range of a file (ONNX external data). `path` is relative to
    the directory of the model the module was imported from, unless absolute.
    Example: `#llm.external_data<path = "model.onnx.data", offset = 4096,
    length = 65536>`.
  }];
  let parameters = (ins StringRefParameter<>:$path, "int64_t":$offset,
                        "int64_t":$length);
  let assemblyFormat = "`<` struct(params) `>`";
}

def LLM_InitializerAttr : LLM_Attr<"Initializer", "initializer"> {
  let summary = "Bytes of a weight stored inside an ONNX file as an initializer.";
  let description = [{
    Names a raw initializer of an ONNX model by its name: the bytes stay in
    the model file and are read when the weight is loaded. Example:
    `#llm.initializer<path = "model.onnx", name = "embed.weight">`.
  }];
  let parameters = (ins StringRefParameter<>:$path, StringRefParameter<>:$name);
  let assemblyFormat = "`<` struct(params) `>`";
}

//===----------------------------------------------------------------------===//
// Types for what later passes produce
//===----------------------------------------------------------------------===//

def LLM_QuantizedWeightType : LLM_Type<"QuantizedWeight", "qweight"> {
  let summary = "A K x N weight matrix stored as low-bit integers with group scales.";
  let description = [{
    Weight-only quantization: element (k, n) is
    `scale[n, k / group] * (q[n, k] - zero_point[n, k / group])`, with `q` of
    `bits` bits (4 or 8), `group` consecutive K elements sharing a scale
    (`group = k` means per output channel). Without zero points the integers
    are symmetric around `2^(bits-1)` as in ONNX `MatMulNBits`. With
    `format = "fp8e4m3"` (bits 8, no zero points) `q` is an fp8 e4m3 value
    and element (k, n) is `scale[n, k / group] * q[n, k]`.

    The bytes of an `llm.weight` of this type are the packed integers
    (`[n, k * bits / 8]`, two 4-bit values a byte, low nibble first), the
    scales (`[n, k / group]` of `scaleType`) and the zero points
    (`[n, k / group]` bytes), each part starting at a multiple of 64
    (`getQuantizedLayout`, docs/Quantization.md).
  }];
  let parameters = (ins "int64_t":$k, "int64_t":$n, "int64_t":$bits,
                        "int64_t":$group, "::mlir::Type":$scaleType,
                        "bool":$zeroPoint,
                        StringRefParameter<"value encoding: int or fp8e4m3",
                                           "\"int\"">:$format);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def LLM_SparseWeightType : LLM_Type<"SparseWeight", "sparse24"> {
  let summary = "A K x N weight matrix with 2:4 structured sparsity along K.";
  let description = [{
    Of every 4 consecutive K elements of a column, at most 2 are non-zero:
    the values (K/2 x N of `elementType`) and 2-bit indices are stored, the
    layout the sparse tensor cores of sm_80+ consume. The bytes of an
    `llm.weight` of this type are the kept values (`[n, k / 2]`) and the
    metadata (`[n, k / 8]` bytes: per group of four a nibble holding the two
    kept positions), each part starting at a multiple of 64
    (`getSparseLayout`, docs/Quantization.md).
  }];
  let parameters = (ins "int64_t":$k, "int64_t":$n, "::mlir::Type":$elementType);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def LLM_KVCacheType : LLM_Type<"KVCache", "kv_cache"> {
  let summary = "Paged key/value cache state of a model.";
  let description = [{
    Keys and values of `layers` layers, stored once per KV head (grouped-query
    attention is never expanded in memory) in blocks of `block` tokens:
    `[num_blocks, 2, kv_heads, block, head_dim]` per layer, addressed through
    per-sequence block tables.
  }];
  let parameters = (ins "int64_t":$layers, "int64_t":$kvHeads, "int64_t":$headDim,
                        "int64_t":$block, "::mlir::Type":$elementType);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // KILN_DIALECT_LLM_ATTRS
