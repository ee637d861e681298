//===- OnnxOpTable.h - (op, since-version) table of the importer -*- C++ -*-===//
//
// One entry per (domain, op type, since-version), as torch-mlir's
// OnnxToTorch does: the importer picks, for each node, the entry with the
// highest since-version not above the model's opset for the node's domain.
// Entries are registered per op family (Elementwise, Shape, Reduction,
// LinearAlgebra, Normalization, Quantized), one file each.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_FRONTEND_ONNX_ONNXOPTABLE_H
#define KILN_LIB_FRONTEND_ONNX_ONNXOPTABLE_H

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SmallVector.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace onnx {
class NodeProto;
class AttributeProto;
class TensorProto;
} // namespace onnx

namespace kiln {

/// What a table entry sees of the node it converts, with helpers that bind
/// attributes and operands and fail with a located diagnostic.
class NodeContext {
public:
  NodeContext(const onnx::NodeProto &node, mlir::OpBuilder &builder,
              mlir::Location loc, int64_t opset,
              llvm::SmallVector<mlir::Value> inputs,
              std::function<mlir::Type(unsigned, mlir::Type)> resultTypeFn,
              std::function<mlir::Value(const onnx::TensorProto &)> tensorFn)
      : node(node), builder(builder), loc(loc), opset(opset),
        inputs(std::move(inputs)), resultTypeFn(std::move(resultTypeFn)),
        tensorFn(std::move(tensorFn)) {}

  const onnx::NodeProto &node;
  mlir::OpBuilder &builder;
  mlir::Location loc;
  int64_t opset;
  llvm::SmallVector<mlir::Value> inputs;

  /// Input `i`, or a null Value when it is absent (empty name or missing).
  mlir::Value input(unsigned i) const {
    return i < inputs.size() ? inputs[i] : mlir::Value();
  }
  unsigned numOutputs() const;
  const onnx::AttributeProto *attr(llvm::StringRef name) const;
  int64_t attrInt(llvm::StringRef name, int64_t def) const;
  float attrFloat(llvm::StringRef name, float def) const;
  std::string attrString(llvm::StringRef name, llvm::StringRef def) const;
  std::optional<std::vector<int64_t>> attrInts(llvm::StringRef name) const;

  /// The type of output `i`: its value_info shape when the graph has one,
  /// else an unranked tensor of `elementType`.
  mlir::Type resultType(unsigned i, mlir::Type elementType) const {
    return resultTypeFn(i, elementType);
  }
  mlir::Type elementTypeOf(mlir::Value v) const;
  /// A 1-D i64 constant (or a 0-D one with `scalar`).
  mlir::Value constantI64(llvm::ArrayRef<int64_t> values, bool scalar = false);
  /// A 0-D constant of element type `elementType` (float or integer).
  mlir::Value constantScalar(mlir::Type elementType, double value);
  /// The constant tensor of `proto` (inline or as a weight).
  mlir::Value constantTensor(const onnx::TensorProto &proto) {
    return tensorFn(proto);
  }
  /// The integer values of `v` if it is an `llm.constant`.
  std::optional<std::vector<int64_t>> constantInts(mlir::Value v) const;

  /// Creates llm op `OpT` with the given result types, operands and
  /// attributes (inherent ones become properties).
  template <typename OpT>
  mlir::Value create(mlir::Type resultType, mlir::ValueRange operands,
                     llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    return OpT::create(builder, loc, mlir::TypeRange{resultType}, operands,
                       attrs)
        ->getResult(0);
  }
  mlir::NamedAttribute i64Attr(llvm::StringRef name, int64_t v) {
    return builder.getNamedAttr(name, builder.getI64IntegerAttr(v));
  }
  mlir::NamedAttribute f32Attr(llvm::StringRef name, float v) {
    return builder.getNamedAttr(name, builder.getF32FloatAttr(v));
  }

  /// Emits "ONNX node 'name' (Op): message" at the node and fails.
  mlir::FailureOr<llvm::SmallVector<mlir::Value>> fail(const llvm::Twine &message);

private:
  std::function<mlir::Type(unsigned, mlir::Type)> resultTypeFn;
  std::function<mlir::Value(const onnx::TensorProto &)> tensorFn;
};

using OnnxOpHandler =
    std::function<mlir::FailureOr<llvm::SmallVector<mlir::Value>>(NodeContext &)>;

class OnnxOpTable {
public:
  /// Registers `handler` for `op` of `domain` ("" is ai.onnx) for each of
  /// the since-versions `versions` (one table entry per version).
  void add(llvm::StringRef domain, llvm::StringRef op,
           std::initializer_list<int> versions, OnnxOpHandler handler);
  /// The entry for `op` at `opset`, or null; `since` gets its version.
  const OnnxOpHandler *lookup(llvm::StringRef domain, llvm::StringRef op,
                              int64_t opset, int &since) const;
  /// The lowest since-version registered for `op`, if any.
  std::optional<int> lowestVersion(llvm::StringRef domain, llvm::StringRef op) const;
  std::vector<std::string> list() const;

private:
  std::map<std::pair<std::string, std::string>, std::map<int, OnnxOpHandler>> entries;
};

/// The MLIR element type of an ONNX data type, or null when unsupported.
mlir::Type elementTypeFromOnnx(int32_t onnxType, mlir::MLIRContext *ctx);

void registerElementwiseOps(OnnxOpTable &table);
void registerShapeOps(OnnxOpTable &table);
void registerReductionOps(OnnxOpTable &table);
void registerLinearAlgebraOps(OnnxOpTable &table);
void registerNormalizationOps(OnnxOpTable &table);

/// The table with every family registered (built once).
const OnnxOpTable &getOnnxOpTable();

} // namespace kiln

#endif // KILN_LIB_FRONTEND_ONNX_ONNXOPTABLE_H
