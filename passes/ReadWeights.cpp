//===- ReadWeights.cpp - Read the values of small weights ----------------===//
//
// A few raising patterns need the values of a small parameter (the inverse
// frequencies of rotary embeddings) that the importer kept as an
// `llm.weight`. Its bytes are either a range of an external data file or an
// initializer of the ONNX file; the latter is found by walking the protobuf
// wire format (ModelProto.graph.initializer[name]) without the ONNX
// library, which the passes do not link.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace kiln::llm;

namespace {

/// A cursor over protobuf wire-format bytes.
struct WireReader {
  const uint8_t *p, *end;
  bool ok = true;

  bool atEnd() const { return !ok || p >= end; }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) {
        ok = false;
        return 0;
      }
      uint8_t byte = *p++;
      value |= (uint64_t)(byte & 0x7f) << shift;
      if (!(byte & 0x80))
        return value;
    }
    ok = false;
    return 0;
  }
  /// The payload of a length-delimited field.
  StringRef bytes() {
    uint64_t n = varint();
    if (!ok || n > (uint64_t)(end - p)) {
      ok = false;
      return {};
    }
    StringRef s((const char *)p, n);
    p += n;
    return s;
  }
  void skip(unsigned wireType) {
    switch (wireType) {
    case 0:
      varint();
      return;
    case 1:
      p += 8;
      break;
    case 2:
      bytes();
      return;
    case 5:
      p += 4;
      break;
    default:
      ok = false;
      return;
    }
    if (p > end)
      ok = false;
  }
};

WireReader readerOf(StringRef s) {
  return WireReader{(const uint8_t *)s.data(), (const uint8_t *)s.end()};
}

/// The first length-delimited field `field` of a message, or nullopt.
std::optional<StringRef> findField(StringRef message, unsigned field) {
  WireReader r = readerOf(message);
  while (!r.atEnd()) {
    uint64_t key = r.varint();
    if (!r.ok)
      break;
    if ((key >> 3) == field && (key & 7) == 2) {
      StringRef payload = r.bytes();
      if (r.ok)
        return payload;
      break;
    }
    r.skip(key & 7);
  }
  return std::nullopt;
}

/// The TensorProto named `name` among the initializers of `graph`.
std::optional<StringRef> findInitializer(StringRef graph, StringRef name) {
  WireReader r = readerOf(graph);
  while (!r.atEnd()) {
    uint64_t key = r.varint();
    if (!r.ok)
      break;
    if ((key >> 3) == 5 && (key & 7) == 2) { // GraphProto.initializer
      StringRef tensor = r.bytes();
      if (!r.ok)
        break;
      if (findField(tensor, 8) == std::optional<StringRef>(name)) // name
        return tensor;
      continue;
    }
    r.skip(key & 7);
  }
  return std::nullopt;
}

/// The little-endian raw bytes of an initializer: raw_data, or packed
/// float_data for f32.
std::optional<std::string> initializerBytes(StringRef tensor, unsigned bits) {
  if (auto raw = findField(tensor, 9)) // raw_data
    return raw->str();
  if (bits != 32)
    return std::nullopt;
  std::string out;
  WireReader r = readerOf(tensor);
  while (!r.atEnd()) {
    uint64_t key = r.varint();
    if (!r.ok)
      return std::nullopt;
    if ((key >> 3) == 4 && (key & 7) == 2) { // packed float_data
      out += r.bytes().str();
      continue;
    }
    if ((key >> 3) == 4 && (key & 7) == 5) { // one float_data element
      if (r.end - r.p < 4)
        return std::nullopt;
      out.append((const char *)r.p, 4);
      r.p += 4;
      continue;
    }
    r.skip(key & 7);
  }
  return r.ok ? std::optional<std::string>(out) : std::nullopt;
}

/// `file` resolved against the module's llm.model_dir unless absolute.
std::optional<std::string> resolvePath(Operation *op, StringRef file) {
  if (llvm::sys::path::is_absolute(file))
    return file.str();
  auto module = dyn_cast<ModuleOp>(op);
  if (!module)
    module = op->getParentOfType<ModuleOp>();
  auto dir = module ? module->getAttrOfType<StringAttr>("llm.model_dir")
                    : StringAttr();
  if (!dir)
    return std::nullopt;
  SmallString<256> path(dir.getValue());
  llvm::sys::path::append(path, file);
  return std::string(path);
}

float toF32(APFloat f) {
  bool lost = false;
  f.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
  return f.convertToFloat();
}

} // namespace

std::optional<SmallVector<float>>
kiln::llm::readFloatValues(Value v, bool readWeights, std::string &why) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  auto elem = type ? dyn_cast<FloatType>(type.getElementType()) : nullptr;
  if (!elem || !type.hasStaticShape() || type.getNumElements() > 65536 ||
      elem.getWidth() % 8 != 0) {
    why = "values are not a small static float tensor";
    return std::nullopt;
  }
  SmallVector<float> values;
  if (auto cst = defOp<ConstantOp>(v)) {
    auto dense = dyn_cast<DenseFPElementsAttr>(cst.getValue());
    if (!dense) {
      why = "constant is not dense";
      return std::nullopt;
    }
    for (const APFloat &f : dense.getValues<APFloat>())
      values.push_back(toF32(f));
    return values;
  }
  auto weight = defOp<WeightOp>(v);
  if (!weight) {
    why = "values are neither a constant nor a weight";
    return std::nullopt;
  }
  if (!readWeights) {
    why = "values are a weight and read-weights is off";
    return std::nullopt;
  }
  if (failed(readWeightFloats(weight, values, why)))
    return std::nullopt;
  return values;
}

LogicalResult kiln::llm::readWeightFloats(WeightOp weight,
                                          SmallVectorImpl<float> &values,
                                          std::string &why) {
  auto type = dyn_cast<RankedTensorType>(weight.getType());
  auto elem = type ? dyn_cast<FloatType>(type.getElementType()) : nullptr;
  if (!elem || !type.hasStaticShape() || elem.getWidth() % 8 != 0) {
    why = "the weight is not a static float tensor";
    return failure();
  }
  unsigned bits = elem.getWidth();
  int64_t size = type.getNumElements() * bits / 8;
  std::string bytes;
  if (auto external = dyn_cast<ExternalDataAttr>(weight.getSource())) {
    auto path = resolvePath(weight, external.getPath());
    if (!path || external.getLength() != size) {
      why = "cannot locate the weight's external data";
      return failure();
    }
    auto buffer =
        llvm::MemoryBuffer::getFileSlice(*path, size, external.getOffset());
    if (!buffer) {
      why = "cannot read the weight's external data file";
      return failure();
    }
    bytes = (*buffer)->getBuffer().str();
  } else if (auto init = dyn_cast<InitializerAttr>(weight.getSource())) {
    auto path = resolvePath(weight, init.getPath());
    auto buffer =
        path ? llvm::MemoryBuffer::getFile(*path, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false)
             : llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>>(
                   std::make_error_code(std::errc::invalid_argument));
    if (!buffer) {
      why = "cannot read the ONNX file holding the initializer";
      return failure();
    }
    auto graph = findField((*buffer)->getBuffer(), 7); // ModelProto.graph
    auto tensor =
        graph ? findInitializer(*graph, init.getName()) : std::nullopt;
    auto raw = tensor ? initializerBytes(*tensor, bits) : std::nullopt;
    if (!raw) {
      why = "initializer not found or not stored as raw or float data";
      return failure();
    }
    bytes = std::move(*raw);
  } else {
    why = "unknown weight source";
    return failure();
  }
  if ((int64_t)bytes.size() != size) {
    why = "weight byte size does not match its type";
    return failure();
  }
  const uint8_t *data = (const uint8_t *)bytes.data();
  values.clear();
  values.reserve(type.getNumElements());
  for (int64_t i = 0; i < type.getNumElements(); ++i) {
    uint64_t raw = 0;
    for (unsigned b = 0; b < bits / 8; ++b) // ONNX stores little-endian.
      raw |= (uint64_t)data[i * bits / 8 + b] << (8 * b);
    values.push_back(
        toF32(APFloat(elem.getFloatSemantics(), APInt(bits, raw))));
  }
  return success();
}

std::optional<std::string> kiln::llm::resolveModelPath(Operation *op,
                                                       StringRef file) {
  return resolvePath(op, file);
}
