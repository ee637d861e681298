//===- LLMGenericOps.td - ONNX-semantics ops of llm ---------*- tablegen -*-===//
//
// Ops with the semantics of their ONNX namesakes (numpy broadcasting, ONNX
// attribute meanings, the operand order of the newest opset). They hold what
// the raising passes do not turn into model ops. Attributes other than the
// declared ones (for example `alpha` of `llm.elu`) follow the ONNX op's
// attribute of the same name.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_LLM_GENERIC_OPS
#define KILN_DIALECT_LLM_GENERIC_OPS

class LLM_GenericOp<string mnemonic, list<Trait> traits = []>
    : LLM_Op<mnemonic, !listconcat([Pure], traits)> {
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

class LLM_UnaryOp<string mnemonic, string onnxName>
    : LLM_GenericOp<mnemonic, [SameOperandsAndResultShape]> {
  let summary = "Elementwise " # onnxName # " with the semantics of the ONNX op of that name.";
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
}

class LLM_BinaryOp<string mnemonic, string onnxName> : LLM_GenericOp<mnemonic> {
  let summary = "Elementwise " # onnxName # " with numpy broadcasting, as ONNX defines it.";
  let arguments = (ins AnyTensor:$lhs, AnyTensor:$rhs);
  let results = (outs AnyTensor:$result);
  let hasVerifier = 1;
}

def LLM_NegOp : LLM_UnaryOp<"neg", "Neg">;
def LLM_ExpOp : LLM_UnaryOp<"exp", "Exp">;
def LLM_LogOp : LLM_UnaryOp<"log", "Log">;
def LLM_SqrtOp : LLM_UnaryOp<"sqrt", "Sqrt">;
def LLM_ReciprocalOp : LLM_UnaryOp<"reciprocal", "Reciprocal">;
def LLM_AbsOp : LLM_UnaryOp<"abs", "Abs">;
def LLM_SigmoidOp : LLM_UnaryOp<"sigmoid", "Sigmoid">;
def LLM_TanhOp : LLM_UnaryOp<"tanh", "Tanh">;
def LLM_CosOp : LLM_UnaryOp<"cos", "Cos">;
def LLM_SinOp : LLM_UnaryOp<"sin", "Sin">;
def LLM_TanOp : LLM_UnaryOp<"tan", "Tan">;
def LLM_ErfOp : LLM_UnaryOp<"erf", "Erf">;
def LLM_FloorOp : LLM_UnaryOp<"floor", "Floor">;
def LLM_CeilOp : LLM_UnaryOp<"ceil", "Ceil">;
def LLM_RoundOp : LLM_UnaryOp<"round", "Round">;
def LLM_SignOp : LLM_UnaryOp<"sign", "Sign">;
def LLM_SoftplusOp : LLM_UnaryOp<"softplus", "Softplus">;
def LLM_SoftsignOp : LLM_UnaryOp<"softsign", "Softsign">;
def LLM_AsinOp : LLM_UnaryOp<"asin", "Asin">;
def LLM_AcosOp : LLM_UnaryOp<"acos", "Acos">;
def LLM_AtanOp : LLM_UnaryOp<"atan", "Atan">;
def LLM_SinhOp : LLM_UnaryOp<"sinh", "Sinh">;
def LLM_CoshOp : LLM_UnaryOp<"cosh", "Cosh">;
def LLM_AsinhOp : LLM_UnaryOp<"asinh", "Asinh">;
def LLM_AcoshOp : LLM_UnaryOp<"acosh", "Acosh">;
def LLM_AtanhOp : LLM_UnaryOp<"atanh", "Atanh">;
def LLM_EluOp : LLM_UnaryOp<"elu", "Elu">;
def LLM_SeluOp : LLM_UnaryOp<"selu", "Selu">;
def LLM_LeakyReluOp : LLM_UnaryOp<"leaky_relu", "LeakyRelu">;
def LLM_HardSigmoidOp : LLM_UnaryOp<"hard_sigmoid", "HardSigmoid">;
def LLM_HardSwishOp : LLM_UnaryOp<"hard_swish", "HardSwish">;
def LLM_CeluOp : LLM_UnaryOp<"celu", "Celu">;
def LLM_MishOp : LLM_UnaryOp<"mish", "Mish">;
def LLM_ThresholdedReluOp : LLM_UnaryOp<"thresholded_relu", "ThresholdedRelu">;
def LLM_NotOp : LLM_UnaryOp<"not", "Not">;
def LLM_IsNaNOp : LLM_UnaryOp<"isnan", "IsNaN">;
def LLM_IsInfOp : LLM_UnaryOp<"isinf", "IsInf">;
def LLM_BitwiseNotOp : LLM_UnaryOp<"bitwise_not", "BitwiseNot">;
def LLM_ShrinkOp : LLM_UnaryOp<"shrink", "Shrink">;

def LLM_AddOp : LLM_BinaryOp<"add", "Add">;
def LLM_SubOp : LLM_BinaryOp<"sub", "Sub">;
def LLM_MulOp : LLM_BinaryOp<"mul", "Mul">;
def LLM_DivOp : LLM_BinaryOp<"div", "Div">;
def LLM_PowOp : LLM_BinaryOp<"pow", "Pow">;
def LLM_MaxOp : LLM_BinaryOp<"max", "Max">;
def LLM_MinOp : LLM_BinaryOp<"min", "Min">;
def LLM_ModOp : LLM_BinaryOp<"mod", "Mod">;
def LLM_AndOp : LLM_BinaryOp<"and", "And">;
def LLM_OrOp : LLM_BinaryOp<"or", "Or">;
def LLM_XorOp : LLM_BinaryOp<"xor", "Xor">;
def LLM_EqualOp : LLM_BinaryOp<"equal", "Equal">;
def LLM_LessOp : LLM_BinaryOp<"less", "Less">;
def LLM_LessOrEqualOp : LLM_BinaryOp<"less_or_equal", "LessOrEqual">;
def LLM_GreaterOp : LLM_BinaryOp<"greater", "Greater">;
def LLM_GreaterOrEqualOp : LLM_BinaryOp<"greater_or_equal", "GreaterOrEqual">;
def LLM_PReluOp : LLM_BinaryOp<"prelu", "PRelu">;
def LLM_BitwiseAndOp : LLM_BinaryOp<"bitwise_and", "BitwiseAnd">;
def LLM_BitwiseOrOp : LLM_BinaryOp<"bitwise_or", "BitwiseOr">;
def LLM_BitwiseXorOp : LLM_BinaryOp<"bitwise_xor", "BitwiseXor">;

def LLM_WhereOp : LLM_GenericOp<"where"> {
  let summary = "Selects from two tensors by a boolean condition, with broadcasting.";
  let arguments = (ins AnyTensor:$condition, AnyTensor:$x, AnyTensor:$y);
  let results = (outs AnyTensor:$result);
}

def LLM_CastOp : LLM_GenericOp<"cast"> {
  let summary = "Converts elements to the result's element type as ONNX Cast does.";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<I64Attr, "1">:$saturate);
  let results = (outs AnyTensor:$result);
}

def LLM_MatMulOp : LLM_GenericOp<"matmul"> {
  let summary = "Batched matrix product with numpy broadcasting of the batch dimensions.";
  let arguments = (ins AnyTensor:$lhs, AnyTensor:$rhs);
  let results = (outs AnyTensor:$result);
  let hasVerifier = 1;
}

def LLM_MatMulNBitsOp : LLM_GenericOp<"matmul_nbits"> {
  let summary = "Matrix product with a block-quantized weight (com.microsoft MatMulNBits).";
  let description = [{
    `b` holds `N x ceil(K / block_size) x (block_size * bits / 8)` packed
    unsigned integers, `scales` one scale per block, `zero_points` (optional)
    packed zero points; without them the zero point is `2^(bits-1)`.
  }];
  let arguments = (ins AnyTensor:$a, AnyTensor:$b, AnyTensor:$scales,
                       Optional<AnyTensor>:$zero_points, I64Attr:$K, I64Attr:$N,
                       I64Attr:$bits, I64Attr:$block_size);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $a `,` $b `,` $scales (`zero_points` $zero_points^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

class LLM_ReduceOp<string mnemonic, string onnxName> : LLM_GenericOp<mnemonic> {
  let summary = onnxName # " over `axes` (all axes when absent) as ONNX defines it.";
  let arguments = (ins AnyTensor:$data, Optional<AnyTensor>:$axes,
                       DefaultValuedAttr<I64Attr, "1">:$keepdims,
                       DefaultValuedAttr<I64Attr, "0">:$noop_with_empty_axes);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$data (`axes` $axes^)? attr-dict `:` functional-type(operands, results)";
}
def LLM_ReduceSumOp : LLM_ReduceOp<"reduce_sum", "ReduceSum">;
def LLM_ReduceMeanOp : LLM_ReduceOp<"reduce_mean", "ReduceMean">;
def LLM_ReduceMaxOp : LLM_ReduceOp<"reduce_max", "ReduceMax">;
def LLM_ReduceMinOp : LLM_ReduceOp<"reduce_min", "ReduceMin">;
def LLM_ReduceProdOp : LLM_ReduceOp<"reduce_prod", "ReduceProd">;
def LLM_ReduceL1Op : LLM_ReduceOp<"reduce_l1", "ReduceL1">;
def LLM_ReduceL2Op : LLM_ReduceOp<"reduce_l2", "ReduceL2">;
def LLM_ReduceSumSquareOp : LLM_ReduceOp<"reduce_sum_square", "ReduceSumSquare">;
def LLM_ReduceLogSumOp : LLM_ReduceOp<"reduce_log_sum", "ReduceLogSum">;
def LLM_ReduceLogSumExpOp : LLM_ReduceOp<"reduce_log_sum_exp", "ReduceLogSumExp">;

class LLM_ArgReduceOp<string mnemonic, string onnxName> : LLM_GenericOp<mnemonic> {
  let summary = "Index of the " # onnxName # " along an axis.";
  let arguments = (ins AnyTensor:$data, DefaultValuedAttr<I64Attr, "0">:$axis,
                       DefaultValuedAttr<I64Attr, "1">:$keepdims,
                       DefaultValuedAttr<I64Attr, "0">:$select_last_index);
  let results = (outs AnyTensor:$result);
}
def LLM_ArgMaxOp : LLM_ArgReduceOp<"argmax", "maximum">;
def LLM_ArgMinOp : LLM_ArgReduceOp<"argmin", "minimum">;

def LLM_SoftmaxOp : LLM_GenericOp<"softmax"> {
  let summary = "Softmax along one axis (ONNX opset 13 semantics).";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs AnyTensor:$result);
}
def LLM_LogSoftmaxOp : LLM_GenericOp<"log_softmax"> {
  let summary = "Log of the softmax along one axis (ONNX opset 13 semantics).";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_TransposeOp : LLM_GenericOp<"transpose"> {
  let summary = "Permutes the dimensions of a tensor.";
  let arguments = (ins AnyTensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs AnyTensor:$result);
  let hasVerifier = 1;
}

def LLM_ReshapeOp : LLM_GenericOp<"reshape"> {
  let summary = "Reshapes to a run-time shape (0 copies a dimension unless allowzero, -1 infers).";
  let arguments = (ins AnyTensor:$data, AnyTensor:$shape,
                       DefaultValuedAttr<I64Attr, "0">:$allowzero);
  let results = (outs AnyTensor:$result);
}

def LLM_ExpandOp : LLM_GenericOp<"expand"> {
  let summary = "Broadcasts a tensor to a run-time shape.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$shape);
  let results = (outs AnyTensor:$result);
}

def LLM_ConcatOp : LLM_GenericOp<"concat"> {
  let summary = "Concatenates tensors along an axis.";
  let arguments = (ins Variadic<AnyTensor>:$inputs, I64Attr:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_SliceOp : LLM_GenericOp<"slice", [AttrSizedOperandSegments]> {
  let summary = "Strided slice with run-time starts, ends, axes and steps.";
  let arguments = (ins AnyTensor:$data, AnyTensor:$starts, AnyTensor:$ends,
                       Optional<AnyTensor>:$axes, Optional<AnyTensor>:$steps);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $data `,` $starts `,` $ends (`axes` $axes^)? (`steps` $steps^)? attr-dict `:` functional-type(operands, results)
  }];
}

def LLM_GatherOp : LLM_GenericOp<"gather"> {
  let summary = "Gathers slices along an axis by (possibly negative) indices.";
  let arguments = (ins AnyTensor:$data, AnyTensor:$indices, DefaultValuedAttr<I64Attr, "0">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_GatherElementsOp : LLM_GenericOp<"gather_elements"> {
  let summary = "Gathers single elements along an axis (ONNX GatherElements).";
  let arguments = (ins AnyTensor:$data, AnyTensor:$indices, DefaultValuedAttr<I64Attr, "0">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_GatherNDOp : LLM_GenericOp<"gather_nd"> {
  let summary = "Gathers slices addressed by index tuples (ONNX GatherND).";
  let arguments = (ins AnyTensor:$data, AnyTensor:$indices, DefaultValuedAttr<I64Attr, "0">:$batch_dims);
  let results = (outs AnyTensor:$result);
}

def LLM_SqueezeOp : LLM_GenericOp<"squeeze"> {
  let summary = "Removes size-1 dimensions (the given axes, or all of them).";
  let arguments = (ins AnyTensor:$data, Optional<AnyTensor>:$axes);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$data (`axes` $axes^)? attr-dict `:` functional-type(operands, results)";
}

def LLM_UnsqueezeOp : LLM_GenericOp<"unsqueeze"> {
  let summary = "Inserts size-1 dimensions at the given axes of the result.";
  let arguments = (ins AnyTensor:$data, AnyTensor:$axes);
  let results = (outs AnyTensor:$result);
}

def LLM_ShapeOp : LLM_GenericOp<"shape"> {
  let summary = "The shape of a tensor as a 1-D int64 tensor, optionally a [start, end) slice of it.";
  let arguments = (ins AnyTensor:$data, DefaultValuedAttr<I64Attr, "0">:$start, OptionalAttr<I64Attr>:$end);
  let results = (outs AnyTensor:$result);
}

def LLM_SizeOp : LLM_GenericOp<"size"> {
  let summary = "The number of elements of a tensor as an int64 scalar.";
  let arguments = (ins AnyTensor:$data);
  let results = (outs AnyTensor:$result);
}

def LLM_RangeOp : LLM_GenericOp<"range"> {
  let summary = "The arithmetic sequence start, start + delta, ... below limit.";
  let arguments = (ins AnyTensor:$start, AnyTensor:$limit, AnyTensor:$delta);
  let results = (outs AnyTensor:$result);
}

def LLM_CumSumOp : LLM_GenericOp<"cumsum"> {
  let summary = "Cumulative sum along a run-time axis, optionally exclusive or reversed.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$axis,
                       DefaultValuedAttr<I64Attr, "0">:$exclusive,
                       DefaultValuedAttr<I64Attr, "0">:$reverse);
  let results = (outs AnyTensor:$result);
}

def LLM_ConstantOfShapeOp : LLM_GenericOp<"constant_of_shape"> {
  let summary = "A tensor of a run-time shape filled with one value.";
  let arguments = (ins AnyTensor:$shape, ElementsAttr:$value);
  let results = (outs AnyTensor:$result);
}

def LLM_FlattenOp : LLM_GenericOp<"flatten"> {
  let summary = "Flattens into a matrix at an axis.";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<I64Attr, "1">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_SplitOp : LLM_GenericOp<"split"> {
  let summary = "Splits a tensor along an axis into parts of the given or equal sizes.";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$split,
                       DefaultValuedAttr<I64Attr, "0">:$axis);
  let results = (outs Variadic<AnyTensor>:$results);
  let assemblyFormat = "$input (`sizes` $split^)? attr-dict `:` functional-type(operands, results)";
}

def LLM_TriluOp : LLM_GenericOp<"trilu"> {
  let summary = "Keeps the upper or lower triangle of the last two dimensions.";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$k,
                       DefaultValuedAttr<I64Attr, "1">:$upper);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input (`k` $k^)? attr-dict `:` functional-type(operands, results)";
}

def LLM_TileOp : LLM_GenericOp<"tile"> {
  let summary = "Repeats a tensor along each dimension.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$repeats);
  let results = (outs AnyTensor:$result);
}

def LLM_ClipOp : LLM_GenericOp<"clip", [AttrSizedOperandSegments]> {
  let summary = "Clamps elements into [min, max]; absent bounds are unbounded.";
  let arguments = (ins AnyTensor:$input, Optional<AnyTensor>:$min, Optional<AnyTensor>:$max);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$input (`min` $min^)? (`max` $max^)? attr-dict `:` functional-type(operands, results)";
}

def LLM_IdentityOp : LLM_GenericOp<"identity"> {
  let summary = "Returns its operand; kept only where a graph output aliases a graph input.";
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
}

def LLM_HardmaxOp : LLM_GenericOp<"hardmax"> {
  let summary = "One-hot of the first maximum along one axis (ONNX opset 13 semantics).";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_TopKOp : LLM_GenericOp<"topk"> {
  let summary = "The k largest (or smallest) elements along an axis and their indices, ties by lower index.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$k,
                       DefaultValuedAttr<I64Attr, "-1">:$axis,
                       DefaultValuedAttr<I64Attr, "1">:$largest,
                       DefaultValuedAttr<I64Attr, "1">:$sorted);
  let results = (outs AnyTensor:$values, AnyTensor:$indices);
}

def LLM_ScatterNDOp : LLM_GenericOp<"scatter_nd"> {
  let summary = "Copies data and writes updates at the slices addressed by index tuples (ONNX ScatterND).";
  let description = [{
    `reduction` is `none` (assign), `add`, `mul`, `max` or `min`; updates
    are applied in index order.
  }];
  let arguments = (ins AnyTensor:$data, AnyTensor:$indices, AnyTensor:$updates,
                       DefaultValuedAttr<StrAttr, "\"none\"">:$reduction);
  let results = (outs AnyTensor:$result);
  let hasVerifier = 1;
}

def LLM_ScatterElementsOp : LLM_GenericOp<"scatter_elements"> {
  let summary = "Copies data and writes single updates along an axis (ONNX ScatterElements).";
  let arguments = (ins AnyTensor:$data, AnyTensor:$indices, AnyTensor:$updates,
                       DefaultValuedAttr<I64Attr, "0">:$axis,
                       DefaultValuedAttr<StrAttr, "\"none\"">:$reduction);
  let results = (outs AnyTensor:$result);
  let hasVerifier = 1;
}

def LLM_PadOp : LLM_GenericOp<"pad", [AttrSizedOperandSegments]> {
  let summary = "Pads (or crops, for negative pads) with a constant, reflected, edge or wrapped values.";
  let description = [{
    `pads` lists the begin pads of each axis of `axes` (all axes when absent)
    then their end pads, as ONNX Pad-19 does; `mode` is `constant`,
    `reflect`, `edge` or `wrap`.
  }];
  let arguments = (ins AnyTensor:$data, AnyTensor:$pads,
                       Optional<AnyTensor>:$constant_value, Optional<AnyTensor>:$axes,
                       DefaultValuedAttr<StrAttr, "\"constant\"">:$mode);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = [{
    $data `,` $pads (`value` $constant_value^)? (`axes` $axes^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def LLM_OneHotOp : LLM_GenericOp<"one_hot"> {
  let summary = "One-hot encodes indices with depth classes and [off, on] values at a new axis.";
  let arguments = (ins AnyTensor:$indices, AnyTensor:$depth, AnyTensor:$values,
                       DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_NonZeroOp : LLM_GenericOp<"nonzero"> {
  let summary = "The indices of the non-zero elements as a [rank x count] int64 tensor, in row-major order.";
  let arguments = (ins AnyTensor:$input);
  let results = (outs AnyTensor:$result);
}

def LLM_CompressOp : LLM_GenericOp<"compress"> {
  let summary = "Keeps the slices along an axis (of the flattened input when absent) where condition is true.";
  let arguments = (ins AnyTensor:$input, AnyTensor:$condition, OptionalAttr<I64Attr>:$axis);
  let results = (outs AnyTensor:$result);
}

def LLM_EinsumOp : LLM_GenericOp<"einsum"> {
  let summary = "Einstein summation over the operands by an ONNX Einsum equation.";
  let arguments = (ins Variadic<AnyTensor>:$inputs, StrAttr:$equation);
  let results = (outs AnyTensor:$result);
}

#endif // KILN_DIALECT_LLM_GENERIC_OPS
