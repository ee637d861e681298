//===- TensorProto.h - Read an ONNX TensorProto without protobuf ----------===//
//
// kiln-run links only the runtime, so the test data of `--check DIR`
// (DIR/test_data_set_*/input_0.pb and output_0.pb, serialized
// onnx.TensorProto) is read with this small wire-format decoder: dims,
// data_type, name and the element fields (raw_data, float_data,
// int32_data, int64_data, double_data) for the numeric types.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_TENSORPROTO_H
#define KILN_TOOLS_KILN_RUN_TENSORPROTO_H

#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::tools {

struct Tensor {
  std::string name;
  int32_t dataType = 0;
  std::vector<int64_t> dims;
  /// Elements of float types (FLOAT, FLOAT16, BFLOAT16, DOUBLE).
  std::vector<float> floats;
  /// Elements of integer types (INT32, INT64, ...).
  std::vector<int64_t> ints;

  bool isFloat() const;
  int64_t numElements() const;
};

/// Parses the TensorProto in `path`.
runtime::StatusOr<Tensor> readTensorProto(const std::string &path);

} // namespace kiln::tools

#endif // KILN_TOOLS_KILN_RUN_TENSORPROTO_H
