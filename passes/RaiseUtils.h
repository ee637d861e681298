//===- RaiseUtils.h - Matching helpers of the raising passes ----*- C++ -*-===//
//
// What every raising pattern needs to prove its preconditions: constants,
// static shapes, where a dimension of a value comes from (dimension
// provenance through unsqueeze, transpose, elementwise ops, ...), and the
// symbolic value of the shape vectors the exporters compute at run time
// (`concat(shape(x)[0:1], [-1], [16])`).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_RAISEUTILS_H
#define KILN_PASSES_RAISEUTILS_H

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>

namespace kiln::llm {

//===----------------------------------------------------------------------===//
// Constants and types
//===----------------------------------------------------------------------===//

/// The elements of an integer or boolean `llm.constant` as int64 (at most
/// `maxElements` of them), or nullopt.
std::optional<llvm::SmallVector<int64_t>>
getConstantInts(mlir::Value v, int64_t maxElements = 4096);

/// The indices an ONNX Slice visits along one axis of length `n` (negative
/// start/end count from the end, then clamp as ONNX specifies); nullopt for
/// a zero step.
std::optional<llvm::SmallVector<int64_t>>
sliceIndices(int64_t n, int64_t start, int64_t end, int64_t step);

/// The value of a floating-point `llm.constant` whose elements are all
/// equal (a scalar, `[1]` or any splat), or nullopt.
std::optional<double> getSplatFloat(mlir::Value v);

/// The value of an integer or floating-point constant whose elements are
/// all equal, as a double, or nullopt.
std::optional<double> getSplatNumber(mlir::Value v);

/// True when `v` is a constant whose every element is `expected` (within
/// `relTol` relative) and which has at most `maxRank` dimensions, all 1:
/// multiplying by it cannot broadcast a tensor of rank >= maxRank.
bool isScalarConstant(mlir::Value v, double expected, double relTol = 0.0,
                      int64_t maxRank = -1);

/// The rank of `v`, or -1 when unranked.
int64_t getRank(mlir::Value v);

/// Dimension `dim` of `v` (negative counts from the back), or
/// ShapedType::kDynamic when unknown.
int64_t getStaticDim(mlir::Value v, int64_t dim);

/// Normalizes a possibly negative axis for `rank`; nullopt when out of range.
std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank);

/// The normalized constant axes of `axes` for `rank`, or nullopt.
std::optional<llvm::SmallVector<int64_t>> getConstantAxes(mlir::Value axes,
                                                          int64_t rank);

/// True when `v` is a floating-point tensor.
bool isFloatTensor(mlir::Value v);

/// True for ops that have a model-op form (embedding, norms, rope, linear,
/// attention, gated MLP, activations) or are weights or constants.
bool isModelOrParameterOp(mlir::Operation *op);

/// The values of a small float tensor as f32: an inline `llm.constant`, or,
/// with `readWeights`, an `llm.weight` read from its external data file or
/// from the ONNX file holding it as an initializer (paths resolved against
/// the module's `llm.model_dir`). On failure, `why` says why.
std::optional<llvm::SmallVector<float>>
readFloatValues(mlir::Value v, bool readWeights, std::string &why);

/// `file` resolved against the module's `llm.model_dir` unless absolute;
/// nullopt for a relative path without a model directory.
std::optional<std::string> resolveModelPath(mlir::Operation *op,
                                            llvm::StringRef file);

/// Every value of a float `llm.weight` as f32, whatever its size (what
/// readFloatValues reads for small ones). On failure, `why` says why.
mlir::LogicalResult readWeightFloats(WeightOp weight,
                                     llvm::SmallVectorImpl<float> &values,
                                     std::string &why);

//===----------------------------------------------------------------------===//
// Dimension provenance and symbolic shape vectors
//===----------------------------------------------------------------------===//

/// One element of a symbolic shape vector, or a resolved dimension: a known
/// constant, dimension `dim` of `value` (a value whose dimension could not be
/// traced further back), element `dim` of the integer vector `value` when
/// nothing more is known about it (opaque, but equal to itself wherever it is
/// copied to), or unknown.
struct SymDim {
  enum Kind { Unknown, Constant, Dim, Opaque } kind = Unknown;
  int64_t constant = 0;
  mlir::Value value;
  int64_t dim = 0;

  static SymDim unknown() { return {}; }
  static SymDim of(int64_t c) { return {Constant, c, mlir::Value(), 0}; }
  static SymDim dimOf(mlir::Value v, int64_t d) { return {Dim, 0, v, d}; }
  static SymDim elementOf(mlir::Value v, int64_t i) {
    return {Opaque, 0, v, i};
  }
  bool isConstant() const { return kind == Constant; }
  bool isConstant(int64_t c) const { return kind == Constant && constant == c; }
  bool isKnown() const { return kind != Unknown; }
  /// Provably equal (both known and the same constant or the same dim).
  bool equals(const SymDim &other) const;
};

/// Where dimension `dim` of `v` comes from: a constant when it is static,
/// else the earliest value it provably equals (followed through unsqueeze,
/// squeeze, transpose, casts, elementwise ops that do not broadcast it,
/// concat, slice, gather, reshape and expand with known shape vectors, and
/// the model ops).
SymDim resolveDim(mlir::Value v, int64_t dim);

/// True when dimension `a` of `x` and dimension `b` of `y` are provably equal.
bool dimsEqual(mlir::Value x, int64_t a, mlir::Value y, int64_t b);

/// The symbolic elements of a 0-D or 1-D integer value (shape arithmetic):
/// constants, dimensions of tensors, or unknown where neither can be proved.
/// nullopt when even the number of elements is unknown.
std::optional<llvm::SmallVector<SymDim>> getSymbolicInts(mlir::Value v);

/// True when `e` provably equals dimension `dim` of `v`.
bool symMatchesDim(const SymDim &e, mlir::Value v, int64_t dim);

/// True when `e` is known to be a non-negative value (a dimension, or a
/// constant >= 0).
bool isKnownNonNegative(const SymDim &e);

//===----------------------------------------------------------------------===//
// Pattern helpers
//===----------------------------------------------------------------------===//

/// If `op` is a binary op of type OpT with one operand satisfying `pred`,
/// returns {that operand, the other operand}.
template <typename OpT, typename Pred>
std::optional<std::pair<mlir::Value, mlir::Value>>
matchCommutative(mlir::Operation *op, Pred pred) {
  auto bin = llvm::dyn_cast_or_null<OpT>(op);
  if (!bin)
    return std::nullopt;
  if (pred(bin.getLhs()))
    return std::make_pair(bin.getLhs(), bin.getRhs());
  if (pred(bin.getRhs()))
    return std::make_pair(bin.getRhs(), bin.getLhs());
  return std::nullopt;
}

/// The defining op of `v` if it is an OpT.
template <typename OpT> OpT defOp(mlir::Value v) {
  return v ? v.getDefiningOp<OpT>() : OpT();
}

/// Looks through casts between floating-point types: returns the value the
/// chain of `llm.cast`s starts from.
mlir::Value stripFloatCasts(mlir::Value v);

/// True when every value in `values` has exactly one use.
bool allHaveOneUse(llvm::ArrayRef<mlir::Value> values);

/// Sets the result types of `func` to the types of the values it returns
/// (raising may replace a returned value by one of a more precise type).
void syncFunctionResultTypes(mlir::func::FuncOp func);

/// Runs `patterns` greedily on `func` (top-down) and syncs its result types.
mlir::LogicalResult applyRaisingPatterns(mlir::func::FuncOp func,
                                         mlir::RewritePatternSet &&patterns);

} // namespace kiln::llm

#endif // KILN_PASSES_RAISEUTILS_H
