//===- PackedWeights.h - What weight-packing passes share -------*- C++ -*-===//
//
// -llm-quantize-weights and -llm-sparsify-2to4 both find the dense weights
// of linear layers and gated MLPs, read them as [N, K] matrices, write a
// packed form to a data file and re-point the ops at a new llm.weight of a
// packed type over that file's bytes.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_PACKEDWEIGHTS_H
#define KILN_PASSES_PACKEDWEIGHTS_H

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/IR/BuiltinOps.h"

#include <fstream>
#include <string>
#include <vector>

namespace kiln::llm {

/// A dense weight read as a matrix by linear layers or gated MLPs.
struct MatrixWeight {
  WeightOp op;
  /// K x N as the ops read it: [N, K] storage when `transposed`.
  int64_t k = 0, n = 0;
  bool transposed = false;
  /// The (op, operand number) pairs that read it as a matrix.
  std::vector<std::pair<mlir::Operation *, unsigned>> uses;
};

/// The matrix weights of `module`, in order of appearance, without those
/// whose name contains one of `skip`. Fails (with an error at the op) for
/// a weight read in both layouts.
mlir::FailureOr<std::vector<MatrixWeight>>
collectMatrixWeights(mlir::ModuleOp module, llvm::ArrayRef<std::string> skip);

/// The weight's values as row-major [N, K] (output channel major).
mlir::FailureOr<std::vector<float>> readMatrix(const MatrixWeight &w);

/// Appends packed weights to a data file, each at a multiple of 64.
class PackedDataWriter {
public:
  /// `path` as the option gave it; resolved against the model directory.
  mlir::LogicalResult open(mlir::ModuleOp module, llvm::StringRef path,
                           llvm::StringRef option);
  /// Writes `bytes` and returns their offset.
  mlir::FailureOr<int64_t> append(mlir::Operation *at,
                                  const std::vector<uint8_t> &bytes);
  llvm::StringRef path() const { return given; }

private:
  std::string given, resolved;
  std::ofstream out;
  int64_t size = 0;
};

/// Re-points every use of `w` at a new llm.weight `type` over `length`
/// bytes at `offset` of `path`, erasing the dense weight when unused.
void replaceWithPacked(MatrixWeight &w, mlir::Type type, llvm::StringRef path,
                       int64_t offset, int64_t length);

/// Stores `f` in `type`'s float format and widens it back (what a scale
/// stored as f16 is worth).
float roundToType(float f, mlir::Type type);

/// The little-endian bytes of `values` in float type `type`.
std::vector<uint8_t> encodeFloats(const std::vector<float> &values,
                                  mlir::Type type);

} // namespace kiln::llm

#endif // KILN_PASSES_PACKEDWEIGHTS_H
