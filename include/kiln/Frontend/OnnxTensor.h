//===- OnnxTensor.h - ONNX TensorProto decoding -----------------*- C++ -*-===//

#ifndef KILN_FRONTEND_ONNXTENSOR_H
#define KILN_FRONTEND_ONNXTENSOR_H

#include "kiln/Reference/HostTensor.h"

#include <optional>
#include <string>

namespace onnx {
class TensorProto;
class ModelProto;
} // namespace onnx

namespace kiln {

/// The host dtype of an ONNX TensorProto data type; nullopt if unsupported
/// (strings, complex, 4-bit and 8-bit float types).
std::optional<DType> dtypeFromOnnx(int32_t onnxType);

/// Where an external-data tensor's bytes are: `length` < 0 when the model
/// leaves it implicit (the whole tensor).
struct ExternalDataRef {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
};

/// Reads the location/offset/length entries of an external-data tensor.
/// Returns false with `error` set when the location is missing or an offset
/// or length is not a non-negative integer.
bool readExternalDataRef(const onnx::TensorProto &proto, ExternalDataRef &ref,
                         std::string &error);

/// Decodes `proto` (raw_data, typed fields or external data resolved against
/// `baseDir`) into `out`. Returns false with `error` set on bad or missing
/// data; never aborts.
bool decodeTensorProto(const onnx::TensorProto &proto, const std::string &baseDir,
                       HostTensor &out, std::string &error);

/// Decodes raw little-endian bytes of `dtype` into `out` (shape preset).
bool decodeRawBytes(const char *bytes, size_t size, HostTensor &out,
                    std::string &error);

/// Reads a serialized TensorProto file (input_N.pb / output_N.pb).
bool readTensorProtoFile(const std::string &path, HostTensor &out,
                         std::string *name, std::string &error);

/// Reads and parses an ONNX model file. Returns false with `error` set when
/// the file is missing, truncated or not an ONNX model.
bool readModelProto(const std::string &path, onnx::ModelProto &model,
                    std::string &error);

} // namespace kiln

#endif // KILN_FRONTEND_ONNXTENSOR_H
