//===- WeightStore.cpp - Loads the bytes behind llm.weight ----------------===//

#include "kiln/Reference/WeightStore.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Frontend/OnnxTensor.h"
#include "kiln/Reference/TensorConversion.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/raw_ostream.h"

#include <onnx/onnx_pb.h>

#include <fstream>

using namespace mlir;
using namespace kiln;

/// An ONNX model parsed once, with its tensors indexed by name: graph
/// initializers, and the outputs of Constant nodes.
struct WeightStore::OnnxFileIndex {
  onnx::ModelProto model;
  std::string dir;
  std::map<std::string, const onnx::TensorProto *> tensors;
  std::map<std::string, const onnx::AttributeProto *> constants;
};

WeightStore::WeightStore(std::string baseDir) : baseDir(std::move(baseDir)) {}
WeightStore::~WeightStore() = default;

std::string WeightStore::resolvePath(const std::string &path) const {
  if (path.empty() || path[0] == '/' || baseDir.empty())
    return path;
  return baseDir + "/" + path;
}

static std::string dirOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

WeightStore::OnnxFileIndex *WeightStore::getOnnxFile(const std::string &path,
                                                     std::string &error) {
  auto it = onnxFiles.find(path);
  if (it != onnxFiles.end())
    return it->second.get();
  auto index = std::make_unique<OnnxFileIndex>();
  if (!readModelProto(path, index->model, error))
    return nullptr;
  index->dir = dirOf(path);
  const onnx::GraphProto &graph = index->model.graph();
  for (const onnx::TensorProto &init : graph.initializer())
    index->tensors[init.name()] = &init;
  for (const onnx::NodeProto &node : graph.node()) {
    if (node.op_type() != "Constant" || node.output_size() != 1 ||
        (!node.domain().empty() && node.domain() != "ai.onnx"))
      continue;
    for (const onnx::AttributeProto &attr : node.attribute()) {
      if (attr.name() == "value" && attr.has_t())
        index->tensors.emplace(node.output(0), &attr.t());
      else if (attr.name() == "value_float" || attr.name() == "value_floats" ||
               attr.name() == "value_int" || attr.name() == "value_ints")
        index->constants.emplace(node.output(0), &attr);
    }
  }
  OnnxFileIndex *raw = index.get();
  onnxFiles[path] = std::move(index);
  return raw;
}

/// Decodes a Constant node's value_float(s)/value_int(s) attribute.
static HostTensor constantFromAttribute(const onnx::AttributeProto &attr) {
  if (attr.name() == "value_float")
    return HostTensor::scalar(attr.f(), DType::F32);
  if (attr.name() == "value_int")
    return HostTensor::fromInts({}, {attr.i()});
  if (attr.name() == "value_floats")
    return HostTensor::fromFloats({(int64_t)attr.floats_size()},
                                  std::vector<float>(attr.floats().begin(),
                                                     attr.floats().end()));
  return HostTensor::fromInts(
      {(int64_t)attr.ints_size()},
      std::vector<int64_t>(attr.ints().begin(), attr.ints().end()));
}

static std::string printed(Attribute attr) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << attr;
  return s;
}

FailureOr<const HostTensor *> WeightStore::load(Attribute source, Type type,
                                                std::string &error) {
  std::string key = printed(source) + " : " + typeString(type);
  auto cached = cache.find(key);
  if (cached != cache.end())
    return &cached->second;

  auto tensorType = dyn_cast<RankedTensorType>(type);
  std::optional<DType> dtype =
      tensorType ? dtypeFromType(tensorType.getElementType()) : std::nullopt;
  if (!tensorType || !tensorType.hasStaticShape() || !dtype) {
    error = "weights of type " + typeString(type) +
            " are not supported by the host reference (it needs a statically "
            "shaped tensor of a plain element type)";
    return failure();
  }
  HostTensor tensor(*dtype, std::vector<int64_t>(tensorType.getShape().begin(),
                                                 tensorType.getShape().end()));

  if (auto external = dyn_cast<llm::ExternalDataAttr>(source)) {
    std::string path = resolvePath(external.getPath().str());
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) {
      error = "cannot open external data file '" + path + "'";
      return failure();
    }
    int64_t fileSize = in.tellg();
    int64_t offset = external.getOffset(), length = external.getLength();
    if (offset < 0 || length < 0 || offset + length > fileSize) {
      error = "byte range [" + std::to_string(offset) + ", " +
              std::to_string(offset + length) + ") is outside '" + path +
              "' (" + std::to_string(fileSize) + " bytes)";
      return failure();
    }
    std::string bytes(length, '\0');
    in.seekg(offset);
    in.read(bytes.data(), length);
    if (!in) {
      error = "short read from '" + path + "'";
      return failure();
    }
    if (!decodeRawBytes(bytes.data(), bytes.size(), tensor, error)) {
      error = "'" + path + "': " + error;
      return failure();
    }
  } else if (auto init = dyn_cast<llm::InitializerAttr>(source)) {
    std::string path = resolvePath(init.getPath().str());
    OnnxFileIndex *index = getOnnxFile(path, error);
    if (!index)
      return failure();
    std::string name = init.getName().str();
    HostTensor stored;
    if (auto it = index->tensors.find(name); it != index->tensors.end()) {
      if (!decodeTensorProto(*it->second, index->dir, stored, error)) {
        error = "'" + path + "': " + error;
        return failure();
      }
    } else if (auto c = index->constants.find(name); c != index->constants.end()) {
      stored = constantFromAttribute(*c->second);
    } else {
      error = "'" + path + "' has no initializer or constant named '" + name +
              "'";
      return failure();
    }
    if (stored.dtype != tensor.dtype || stored.shape != tensor.shape) {
      error = "initializer '" + name + "' of '" + path + "' is " +
              stored.shapeString() + ", not " + tensor.shapeString();
      return failure();
    }
    tensor = std::move(stored);
  } else {
    error = "unknown weight source " + printed(source);
    return failure();
  }
  auto [it, inserted] = cache.emplace(key, std::move(tensor));
  (void)inserted;
  return &it->second;
}
