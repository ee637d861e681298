//===- WeightStore.h - Loads the bytes behind llm.weight --------*- C++ -*-===//
//
// Implemented in the KilnWeightStore library (it reads ONNX files through
// KilnOnnxFrontend); the interpreter only calls `load` through the vtable,
// so KilnReference does not depend on it. Link KilnWeightStore wherever a
// WeightStore is constructed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_WEIGHTSTORE_H
#define KILN_REFERENCE_WEIGHTSTORE_H

#include "kiln/Reference/HostTensor.h"

#include "mlir/IR/Attributes.h"
#include "mlir/IR/Types.h"
#include "mlir/Support/LogicalResult.h"

#include <map>
#include <memory>
#include <string>

namespace kiln {

/// Resolves `#llm.external_data` and `#llm.initializer` sources into host
/// tensors. Relative paths are resolved against `baseDir` (the directory of
/// the imported model, recorded on the module as `llm.model_dir`). Loaded
/// tensors are cached by source so that a weight used twice is read once.
class WeightStore {
public:
  explicit WeightStore(std::string baseDir);
  virtual ~WeightStore();

  /// Loads the weight of type `type` (a statically shaped tensor) from
  /// `source`. On failure, `error` says what went wrong (missing file, short
  /// read, unknown initializer, a stored tensor of another shape or element
  /// type). The tensor lives as long as the store.
  virtual mlir::FailureOr<const HostTensor *>
  load(mlir::Attribute source, mlir::Type type, std::string &error);

  const std::string &getBaseDir() const { return baseDir; }

  /// Resolves `path` against the base directory (absolute paths unchanged).
  std::string resolvePath(const std::string &path) const;

private:
  struct OnnxFileIndex;
  /// The parsed ONNX model at `path` (resolved), indexed once.
  OnnxFileIndex *getOnnxFile(const std::string &path, std::string &error);

  std::string baseDir;
  std::map<std::string, std::unique_ptr<OnnxFileIndex>> onnxFiles;
  std::map<std::string, HostTensor> cache;
};

} // namespace kiln

#endif // KILN_REFERENCE_WEIGHTSTORE_H
