//===- OnnxImporter.cpp - ONNX graph to llm dialect -----------------------===//
//
// Walks an ONNX graph in order: graph inputs become function arguments,
// initializers become `llm.constant` (small) or `llm.weight` (referenced by
// file and offset or by initializer name), and each node is converted by its
// (op, since-version) table entry. Graph outputs are returned.
//
//===----------------------------------------------------------------------===//

#include "kiln/Frontend/OnnxImporter.h"

#include "OnnxOpTable.h"
#include "kiln/Frontend/OnnxTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <set>

using namespace mlir;
using namespace kiln;

namespace {

/// Builds the dense attribute of a decoded tensor for `type`.
DenseElementsAttr toElementsAttr(const HostTensor &t, RankedTensorType type) {
  Type elem = type.getElementType();
  if (auto ft = dyn_cast<FloatType>(elem)) {
    SmallVector<APFloat> values;
    values.reserve(t.f.size());
    for (float v : t.f) {
      APFloat x(v);
      bool lost;
      x.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      values.push_back(x);
    }
    return DenseElementsAttr::get(type, values);
  }
  unsigned width = elem.getIntOrFloatBitWidth();
  SmallVector<APInt> values;
  values.reserve(t.i.size());
  for (int64_t v : t.i)
    values.push_back(APInt(width, (uint64_t)v, /*isSigned=*/true,
                           /*implicitTrunc=*/true));
  return DenseElementsAttr::get(type, values);
}

/// The dimensions of an ONNX shape: symbolic or absent ones are dynamic.
SmallVector<int64_t> shapeOf(const onnx::TensorShapeProto &shape) {
  SmallVector<int64_t> dims;
  for (const auto &d : shape.dim())
    dims.push_back(d.has_dim_value() && d.dim_value() >= 0
                       ? d.dim_value()
                       : ShapedType::kDynamic);
  return dims;
}

class GraphImporter {
public:
  GraphImporter(const std::string &path, MLIRContext *ctx,
                const OnnxImportOptions &options)
      : ctx(ctx), builder(ctx), path(path), options(options) {
    // Weights are found relative to the model, wherever the tool runs.
    SmallString<256> dir(llvm::sys::path::parent_path(path));
    if (dir.empty())
      dir = ".";
    llvm::sys::fs::make_absolute(dir);
    llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
    baseDir = dir.str().str();
    fileName = llvm::sys::path::filename(path).str();
  }

  /// Imports the model file at `path`.
  OwningOpRef<ModuleOp> run();
  /// Imports a model already in memory (`path` still names it and anchors
  /// relative external data).
  OwningOpRef<ModuleOp> runOnBytes(llvm::StringRef bytes);

private:
  OwningOpRef<ModuleOp> importParsedModel();
  Location fileLoc() { return FileLineColLoc::get(ctx, fileName, 0, 0); }
  Location nodeLoc(const onnx::NodeProto &node);
  Type tensorTypeOf(const onnx::TypeProto &type, Location loc);
  Value importTensor(const onnx::TensorProto &proto, StringRef name,
                     Location loc);
  LogicalResult importNode(const onnx::NodeProto &node);
  int64_t opsetOf(StringRef domain) const;

  MLIRContext *ctx;
  OpBuilder builder;
  std::string path, baseDir, fileName;
  OnnxImportOptions options;
  onnx::ModelProto model;
  std::map<std::string, int64_t> opsets;
  llvm::StringMap<Value> values;
  llvm::StringMap<const onnx::TypeProto *> typeInfo;
  bool failedTensor = false;
};

} // namespace

Location GraphImporter::nodeLoc(const onnx::NodeProto &node) {
  std::string name = node.name();
  if (name.empty() && node.output_size())
    name = node.output(0);
  return NameLoc::get(StringAttr::get(ctx, name), fileLoc());
}

int64_t GraphImporter::opsetOf(StringRef domain) const {
  std::string d = domain == "ai.onnx" ? "" : domain.str();
  auto it = opsets.find(d);
  return it == opsets.end() ? -1 : it->second;
}

Type GraphImporter::tensorTypeOf(const onnx::TypeProto &type, Location loc) {
  if (!type.has_tensor_type()) {
    emitError(loc) << "only tensor values are supported (sequences, maps and "
                      "optionals are not)";
    return nullptr;
  }
  const auto &tt = type.tensor_type();
  Type elem = elementTypeFromOnnx(tt.elem_type(), ctx);
  if (!elem) {
    emitError(loc) << "unsupported ONNX element type " << tt.elem_type();
    return nullptr;
  }
  if (!tt.has_shape())
    return UnrankedTensorType::get(elem);
  return RankedTensorType::get(shapeOf(tt.shape()), elem);
}

Value GraphImporter::importTensor(const onnx::TensorProto &proto,
                                  StringRef name, Location loc) {
  Type elem = elementTypeFromOnnx(proto.data_type(), ctx);
  if (!elem) {
    emitError(loc) << "tensor '" << name << "' has unsupported data type "
                   << proto.data_type();
    return nullptr;
  }
  SmallVector<int64_t> shape(proto.dims().begin(), proto.dims().end());
  // Corrupt files can claim any dimensions: refuse negative ones and element
  // counts past 2^40 before anything multiplies them.
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      emitError(loc) << "tensor '" << name << "' has a negative dimension";
      return nullptr;
    }
    if (d > 0 && count > (int64_t(1) << 40) / d) {
      emitError(loc) << "tensor '" << name << "' is implausibly large";
      return nullptr;
    }
    count *= d;
  }
  auto type = RankedTensorType::get(shape, elem);
  int64_t numElements = type.getNumElements();

  // External data stays where it is: the weight names the byte range.
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    ExternalDataRef ref;
    std::string error;
    if (!readExternalDataRef(proto, ref, error)) {
      emitError(loc) << error;
      return nullptr;
    }
    const std::string &location = ref.location;
    int64_t offset = ref.offset, length = ref.length;
    int64_t bytes = (numElements * elem.getIntOrFloatBitWidth() + 7) / 8;
    if (length < 0)
      length = bytes;
    // Check the bytes are there now: a missing or short data file is an
    // import error, not a surprise when the weights are first read.
    std::string dataPath = llvm::sys::path::is_absolute(location)
                               ? location
                               : baseDir + "/" + location;
    uint64_t fileSize = 0;
    if (!options.requireExternalData) {
      // Layout only: the bytes are never read.
    } else if (llvm::sys::fs::file_size(dataPath, fileSize)) {
      emitError(loc) << "external data file '" << dataPath << "' of tensor '"
                     << name << "' does not exist or cannot be read";
      return nullptr;
    } else if (offset < 0 || (uint64_t)(offset + length) > fileSize) {
      emitError(loc) << "tensor '" << name << "' reads bytes [" << offset
                     << ", " << offset + length << ") of '" << dataPath
                     << "', which has " << fileSize << " bytes";
      return nullptr;
    }
    auto source = llm::ExternalDataAttr::get(ctx, location, offset, length);
    auto weight = llm::WeightOp::create(builder, loc, type, name, source);
    if (failed(mlir::verify(weight)))
      return nullptr;
    return weight;
  }

  bool isInt = isa<IntegerType>(elem);
  if (numElements <= options.inlineElementLimit ||
      (isInt && numElements <= options.inlineIntegerLimit)) {
    HostTensor host;
    std::string error;
    if (!decodeTensorProto(proto, baseDir, host, error)) {
      emitError(loc) << error;
      return nullptr;
    }
    return llm::ConstantOp::create(builder, loc, type,
                                   toElementsAttr(host, type));
  }
  auto source = llm::InitializerAttr::get(ctx, fileName, name);
  return llm::WeightOp::create(builder, loc, type, name, source);
}

LogicalResult GraphImporter::importNode(const onnx::NodeProto &node) {
  Location loc = nodeLoc(node);
  int64_t opset = opsetOf(node.domain());
  std::string domainName = node.domain().empty() ? "ai.onnx" : node.domain();
  if (opset < 0)
    return emitError(loc) << "ONNX node '" << node.name() << "' ("
                          << node.op_type() << ") uses domain '" << domainName
                          << "' that the model does not import";
  const OnnxOpTable &table = getOnnxOpTable();
  int since = 0;
  const OnnxOpHandler *handler =
      table.lookup(node.domain(), node.op_type(), opset, since);
  if (!handler) {
    if (auto lowest = table.lowestVersion(node.domain(), node.op_type()))
      return emitError(loc) << "ONNX op '" << node.op_type() << "' is supported "
                            << "from opset " << *lowest << "; the model uses "
                            << domainName << " opset " << opset;
    return emitError(loc) << "unsupported ONNX op '" << node.op_type()
                          << "' (domain " << domainName << ", opset " << opset
                          << ") in node '" << node.name() << "'";
  }
  for (const auto &a : node.attribute())
    if (a.type() == onnx::AttributeProto::GRAPH ||
        a.type() == onnx::AttributeProto::GRAPHS)
      return emitError(loc) << "ONNX op '" << node.op_type()
                            << "' with subgraphs (control flow) is unsupported";

  SmallVector<Value> inputs;
  for (const std::string &name : node.input()) {
    if (name.empty()) {
      inputs.push_back(Value());
      continue;
    }
    auto it = values.find(name);
    if (it == values.end())
      return emitError(loc) << "ONNX node '" << node.name() << "' ("
                            << node.op_type() << ") reads '" << name
                            << "', which no earlier node, input or "
                               "initializer defines";
    inputs.push_back(it->second);
  }

  auto resultTypeFn = [&](unsigned i, Type elem) -> Type {
    if (i < (unsigned)node.output_size()) {
      auto it = typeInfo.find(node.output(i));
      if (it != typeInfo.end() && it->second->has_tensor_type()) {
        const auto &tt = it->second->tensor_type();
        Type infoElem = elementTypeFromOnnx(tt.elem_type(), ctx);
        if (infoElem && tt.has_shape())
          return RankedTensorType::get(shapeOf(tt.shape()), infoElem);
        if (infoElem)
          elem = infoElem;
      }
    }
    return UnrankedTensorType::get(elem);
  };
  auto tensorFn = [&](const onnx::TensorProto &proto) -> Value {
    // A tensor attribute is found again by its node's output name (the
    // tensor's own name need not be unique in the graph).
    std::string name = node.output_size() ? node.output(0) : proto.name();
    Value v = importTensor(proto, name, loc);
    if (!v)
      failedTensor = true;
    return v;
  };
  NodeContext context(node, builder, loc, opset, std::move(inputs),
                      resultTypeFn, tensorFn);
  FailureOr<SmallVector<Value>> results = (*handler)(context);
  if (failed(results) || failedTensor)
    return failure();
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty())
      continue;
    if (i >= (int)results->size())
      return emitError(loc) << "ONNX node '" << node.name() << "' ("
                            << node.op_type() << "): output " << i
                            << " is not supported";
    if (values.count(node.output(i)))
      return emitError(loc) << "ONNX node '" << node.name() << "' ("
                            << node.op_type() << ") redefines '"
                            << node.output(i) << "'";
    values[node.output(i)] = (*results)[i];
  }
  return success();
}

OwningOpRef<ModuleOp> GraphImporter::run() {
  std::string error;
  if (!readModelProto(path, model, error)) {
    emitError(fileLoc()) << error;
    return nullptr;
  }
  return importParsedModel();
}

OwningOpRef<ModuleOp> GraphImporter::runOnBytes(llvm::StringRef bytes) {
  if (bytes.empty() || !model.ParseFromArray(bytes.data(), (int)bytes.size()) ||
      !model.has_graph()) {
    emitError(fileLoc()) << "'" << path
                         << "' is not a valid ONNX model (protobuf parse "
                            "failed: truncated or corrupt file)";
    return nullptr;
  }
  return importParsedModel();
}

OwningOpRef<ModuleOp> GraphImporter::importParsedModel() {
  for (const auto &op : model.opset_import())
    opsets[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  if (!opsets.count(""))
    opsets[""] = 1; // ONNX: an absent default domain means opset 1.
  const onnx::GraphProto &graph = model.graph();

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc());
  (*module)->setAttr("llm.model_dir", builder.getStringAttr(baseDir));
  (*module)->setAttr("llm.source", builder.getStringAttr(fileName));
  (*module)->setAttr("llm.opset", builder.getI64IntegerAttr(opsets[""]));
  if (!graph.name().empty())
    (*module)->setAttr("llm.graph_name", builder.getStringAttr(graph.name()));

  for (const auto &vi : graph.value_info())
    typeInfo[vi.name()] = &vi.type();
  for (const auto &vi : graph.output())
    typeInfo[vi.name()] = &vi.type();

  std::set<std::string> initializerNames;
  for (const auto &init : graph.initializer())
    initializerNames.insert(init.name());

  // Graph inputs that are also initializers are constants with a default
  // (pre-IR-4 models): they are not arguments.
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  for (const auto &in : graph.input()) {
    if (initializerNames.count(in.name()))
      continue;
    Location loc = NameLoc::get(builder.getStringAttr(in.name()), fileLoc());
    Type t = tensorTypeOf(in.type(), loc);
    if (!t)
      return nullptr;
    argTypes.push_back(t);
    argNames.push_back(in.name());
  }

  builder.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(builder, fileLoc(), options.entryName,
                                   builder.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(argNames)) {
    func.setArgAttr(i, "llm.name", builder.getStringAttr(name));
    values[name] = entry->getArgument(i);
  }
  builder.setInsertionPointToStart(entry);

  for (const auto &init : graph.initializer()) {
    Location loc = NameLoc::get(builder.getStringAttr(init.name()), fileLoc());
    // ONNX graphs are in SSA form: a second definition is a malformed model.
    if (values.count(init.name())) {
      emitError(loc) << "initializer '" << init.name()
                     << "' redefines a value of the graph";
      return nullptr;
    }
    Value v = importTensor(init, init.name(), loc);
    if (!v)
      return nullptr;
    values[init.name()] = v;
  }
  for (const auto &node : graph.node())
    if (failed(importNode(node)))
      return nullptr;

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : graph.output()) {
    auto it = values.find(out.name());
    if (it == values.end()) {
      emitError(fileLoc()) << "graph output '" << out.name()
                           << "' is not produced by any node";
      return nullptr;
    }
    results.push_back(it->second);
    resultTypes.push_back(it->second.getType());
  }
  func::ReturnOp::create(builder, fileLoc(), results);
  func.setFunctionType(builder.getFunctionType(argTypes, resultTypes));
  for (auto [i, out] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, "llm.name", builder.getStringAttr(out.name()));

  if (failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> kiln::importOnnxModel(const std::string &path,
                                            MLIRContext *context,
                                            const OnnxImportOptions &options) {
  context->loadDialect<llm::LLMDialect, func::FuncDialect>();
  return GraphImporter(path, context, options).run();
}

OwningOpRef<ModuleOp>
kiln::importOnnxModelFromBytes(llvm::StringRef bytes, const std::string &path,
                               MLIRContext *context,
                               const OnnxImportOptions &options) {
  context->loadDialect<llm::LLMDialect, func::FuncDialect>();
  return GraphImporter(path, context, options).runOnBytes(bytes);
}

std::vector<std::string> kiln::listSupportedOnnxOps() {
  return getOnnxOpTable().list();
}
