//===- WeightPacker.cpp - Where the artifact's weights live ---------------===//
//
// Reference mode (the default) keeps an exporter's external data where it
// is: the artifact records the file (relative to the artifact's directory),
// the byte range and its CRC-32, so a multi-gigabyte model compiles without
// a copy and the runtime detects a file that changed. Weights stored inside
// the .onnx protobuf (#llm.initializer: norm scales, small tensors) have no
// plain byte range and are embedded. Embed mode copies everything into the
// Weights section (64-byte aligned, so the mapped artifact can be used in
// place); dummy mode records only dtypes and shapes. A weight whose table
// dtype is not its source's element type (kiln-compile --dtype) has no
// byte range either: it is loaded, converted and embedded, and so is a
// weight dequantized from a quantized matmul's packed integers.
//
//===----------------------------------------------------------------------===//

#include "kiln/Artifact/ArtifactCompiler.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Reference/TensorConversion.h"
#include "kiln/Reference/WeightStore.h"
#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Crc32.h"
#include "kiln/runtime/Half.h"
#include "kiln/runtime/MappedFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <functional>
#include <map>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;
namespace llm = kiln::llm;

std::string kiln::relativePath(const std::string &path,
                               const std::string &base) {
  auto normalize = [](const std::string &p) {
    SmallString<256> s(p.empty() ? "." : p);
    llvm::sys::fs::make_absolute(s);
    llvm::sys::path::remove_dots(s, /*remove_dot_dot=*/true);
    return std::string(s);
  };
  std::string target = normalize(path), from = normalize(base);
  SmallVector<StringRef> a, b;
  for (auto it = llvm::sys::path::begin(target),
            end = llvm::sys::path::end(target);
       it != end; ++it)
    a.push_back(*it);
  for (auto it = llvm::sys::path::begin(from),
            end = llvm::sys::path::end(from);
       it != end; ++it)
    b.push_back(*it);
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common])
    ++common;
  SmallString<256> out;
  for (size_t i = common; i < b.size(); ++i)
    llvm::sys::path::append(out, "..");
  for (size_t i = common; i < a.size(); ++i)
    llvm::sys::path::append(out, a[i]);
  return out.empty() ? "." : std::string(out);
}

/// A stable seed per weight name (FNV-1a), so dummy artifacts are
/// reproducible.
static uint64_t nameSeed(const std::string &name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// The bytes of a host tensor in `dtype` (exact for values read from it).
static std::vector<uint8_t> encode(const HostTensor &t, rt::DType dtype) {
  if (dtype == rt::DType::U8) // packed bytes, read as integers
    return std::vector<uint8_t>(t.i.begin(), t.i.end());
  size_t n = t.f.size();
  std::vector<uint8_t> out(n * rt::dtypeBytes(dtype));
  for (size_t k = 0; k < n; ++k) {
    if (dtype == rt::DType::F32) {
      std::memcpy(out.data() + 4 * k, &t.f[k], 4);
    } else {
      uint16_t h = dtype == rt::DType::F16 ? rt::floatToHalf(t.f[k])
                                           : rt::floatToBf16(t.f[k]);
      std::memcpy(out.data() + 2 * k, &h, 2);
    }
  }
  return out;
}

/// The dense [N, K] matrix of a weight quantized as ONNX MatMulNBits
/// (the reference interpreter's dequantization); `error` on failure.
static FailureOr<std::vector<float>>
dequantize(WeightStore &store, const WeightSource &src, std::string &error) {
  const WeightSource::Quantized &q = *src.quantized;
  // A packed operand: an llm.constant's elements or a stored weight.
  std::vector<HostTensor> constants;
  constants.reserve(3);
  auto load = [&](Attribute source, Type type) -> const HostTensor * {
    if (auto elements = dyn_cast<ElementsAttr>(source)) {
      constants.emplace_back();
      if (!hostTensorFromElementsAttr(elements, constants.back(), error))
        return nullptr;
      return &constants.back();
    }
    auto loaded = store.load(source, type, error);
    return failed(loaded) ? nullptr : *loaded;
  };
  const HostTensor *b = load(src.source, src.type);
  const HostTensor *scales = b ? load(q.scales, q.scalesType) : nullptr;
  if (!b || !scales)
    return failure();
  const HostTensor *zp = nullptr;
  if (q.zeroPoints && !(zp = load(q.zeroPoints, q.zeroPointsType)))
    return failure();
  int64_t K = q.k, N = q.n, bits = q.bits, block = q.blockSize;
  int64_t blocks = (K + block - 1) / block, blob = block * bits / 8;
  int64_t zpRowBytes = (blocks * bits + 7) / 8;
  if (b->isFloat() || b->numElements() != N * blocks * blob) {
    error = "packed weight " + b->shapeString() + " must hold " +
            std::to_string(N * blocks * blob) + " bytes";
    return failure();
  }
  if (!scales->isFloat() || scales->numElements() != N * blocks) {
    error = "scales " + scales->shapeString() + " must hold " +
            std::to_string(N * blocks) + " floats";
    return failure();
  }
  if (zp &&
      zp->numElements() != (zp->isFloat() ? N * blocks : N * zpRowBytes)) {
    error = "zero points " + zp->shapeString() + " do not fit " +
            std::to_string(N) + " rows of " + std::to_string(blocks) +
            " blocks";
    return failure();
  }
  int64_t mask = (1 << bits) - 1;
  float defaultZero = static_cast<float>(1 << (bits - 1));
  std::vector<float> w(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      int64_t blk = k / block, bit = (k % block) * bits;
      int64_t byte = b->i[(n * blocks + blk) * blob + bit / 8];
      float value = static_cast<float>((byte >> (bit % 8)) & mask);
      float zero = defaultZero;
      if (zp && zp->isFloat()) {
        zero = zp->f[n * blocks + blk];
      } else if (zp) {
        int64_t zbit = blk * bits;
        zero = static_cast<float>(
            (zp->i[n * zpRowBytes + zbit / 8] >> (zbit % 8)) & mask);
      }
      w[n * K + k] = (value - zero) * scales->f[n * blocks + blk];
    }
  return w;
}

LogicalResult kiln::packWeights(ModuleOp module, WeightMode mode,
                                const std::string &modelDir,
                                const std::string &artifactPath,
                                CompiledModel &model, WeightStats &stats) {
  SmallString<256> artifactDir(artifactPath);
  llvm::sys::path::remove_filename(artifactDir);
  if (artifactDir.empty())
    artifactDir = ".";
  WeightStore store(modelDir);
  std::map<std::string, rt::MappedFile> files;
  std::vector<uint8_t> &section = model.weightsSection;
  section.clear();

  auto embed = [&](rt::WeightInfo &info, const uint8_t *data, size_t size) {
    size_t at = (section.size() + 63) / 64 * 64;
    section.resize(at + size);
    if (size)
      std::memcpy(section.data() + at, data, size);
    info.storage = rt::WeightStorage::Embedded;
    info.offset = at;
    info.length = size;
    info.crc32 = rt::crc32(data, size);
    stats.embedded += 1;
    stats.embeddedBytes += size;
  };

  for (size_t i = 0; i < model.weights.size(); ++i) {
    rt::WeightInfo &info = model.weights.weights[i];
    const WeightSource &src = model.sources[i];
    auto fail = [&](const Twine &what) {
      return module.emitError() << "weight '" << info.name << "': " << what;
    };
    if (mode == WeightMode::Dummy) {
      info.storage = rt::WeightStorage::Dummy;
      info.seed = nameSeed(info.name);
      stats.dummy += 1;
      stats.dummyBytes += info.numBytes();
      continue;
    }
    // Inline constants (operands of an imported MatMulNBits) and packed
    // zero points to unpack have no byte range to reference.
    if (!src.quantized && (src.unpackBits || isa<ElementsAttr>(src.source))) {
      std::string error;
      HostTensor constant;
      const HostTensor *t = &constant;
      if (auto elements = dyn_cast<ElementsAttr>(src.source)) {
        if (!hostTensorFromElementsAttr(elements, constant, error))
          return fail(error);
      } else {
        auto loaded = store.load(src.source, src.type, error);
        if (failed(loaded))
          return fail(error);
        t = *loaded;
      }
      std::vector<uint8_t> bytes;
      if (src.unpackBits) {
        int64_t rows = info.shape[0], cols = info.shape[1];
        int64_t bits = src.unpackBits, rowBytes = (cols * bits + 7) / 8;
        if (t->isFloat() || t->numElements() != rows * rowBytes)
          return fail("packed " + t->shapeString() + " must hold " +
                      Twine(rows * rowBytes) + " bytes");
        bytes.resize(rows * cols);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            bytes[r * cols + c] = static_cast<uint8_t>(
                (t->i[r * rowBytes + c * bits / 8] >> (c * bits % 8)) &
                ((1 << bits) - 1));
      } else {
        if (t->isFloat() != rt::isFloatDType(info.dtype) ||
            t->numElements() != info.numElements())
          return fail("loaded " + t->shapeString());
        bytes = encode(*t, info.dtype);
      }
      embed(info, bytes.data(), bytes.size());
      continue;
    }
    if (src.quantized) {
      std::string error;
      auto values = dequantize(store, src, error);
      if (failed(values))
        return fail("cannot dequantize: " + error);
      HostTensor dense;
      dense.f = std::move(*values);
      std::vector<uint8_t> bytes = encode(dense, info.dtype);
      embed(info, bytes.data(), bytes.size());
      continue;
    }
    auto srcType = dyn_cast<ShapedType>(src.type);
    bool converted =
        !srcType ||
        !(srcType.getElementType().isF32()    ? info.dtype == rt::DType::F32
          : srcType.getElementType().isF16()  ? info.dtype == rt::DType::F16
          : srcType.getElementType().isBF16() ? info.dtype == rt::DType::BF16
          // The bytes of packed weights (llm::addPackedWeight's parts).
          : srcType.getElementType().isInteger(8) ? info.dtype == rt::DType::U8
                                                  : false);
    auto external = dyn_cast<llm::ExternalDataAttr>(src.source);
    if (external && !converted) {
      std::string path = store.resolvePath(external.getPath().str());
      auto it = files.find(path);
      if (it == files.end()) {
        auto file = rt::MappedFile::open(path);
        if (!file.isOk())
          return fail(file.status().message());
        it = files.emplace(path, std::move(file).value()).first;
      }
      const rt::MappedFile &file = it->second;
      uint64_t offset = external.getOffset(), length = external.getLength();
      if ((int64_t)length != info.numBytes() || offset > file.size() ||
          length > file.size() - offset)
        return fail("bytes [" + Twine(offset) + ", " + Twine(offset + length) +
                    ") of '" + path + "' do not hold its " +
                    Twine(info.numBytes()) + " bytes");
      const uint8_t *data = file.data() + offset;
      if (mode == WeightMode::Embed) {
        embed(info, data, length);
        continue;
      }
      info.storage = rt::WeightStorage::External;
      info.path = relativePath(path, std::string(artifactDir));
      info.offset = offset;
      info.length = length;
      info.crc32 = rt::crc32(data, length);
      stats.referenced += 1;
      stats.referencedBytes += length;
      if (std::find(stats.files.begin(), stats.files.end(), info.path) ==
          stats.files.end())
        stats.files.push_back(info.path);
      continue;
    }
    // Initializers inside the .onnx and converted weights: read through
    // the weight store and stored in the table's dtype.
    std::string error;
    auto tensor = store.load(src.source, src.type, error);
    if (failed(tensor))
      return fail(error);
    if ((*tensor)->isFloat() != rt::isFloatDType(info.dtype) ||
        (*tensor)->numElements() != info.numElements())
      return fail("loaded " + (*tensor)->shapeString());
    std::vector<uint8_t> bytes = encode(**tensor, info.dtype);
    embed(info, bytes.data(), bytes.size());
  }
  rt::Status valid = model.weights.validate(section.size());
  if (!valid.isOk())
    return module.emitError() << valid.message();
  return success();
}

/// Adds one model's sections, named `prefix` + the usual name.
static bool addModelSections(rt::ArtifactWriter &writer,
                             const CompiledModel &model,
                             const std::string &prefix,
                             const std::function<bool(rt::Status)> &check) {
  if (!check(writer.addSection(rt::SectionKind::Config, prefix + "config",
                               std::string_view(model.config.serialize()))) ||
      !check(writer.addSection(rt::SectionKind::LaunchPlan,
                               prefix + "launch_plan",
                               model.plan.serialize())) ||
      !check(writer.addSection(rt::SectionKind::WeightRefs,
                               prefix + "weight_refs",
                               model.weights.serialize())))
    return false;
  bool anyEmbedded = false;
  for (const rt::WeightInfo &w : model.weights.weights)
    anyEmbedded |= w.storage == rt::WeightStorage::Embedded;
  if (anyEmbedded &&
      !check(writer.addSection(rt::SectionKind::Weights, prefix + "weights",
                               model.weightsSection)))
    return false;
  if (model.hasKernels &&
      !check(writer.addSection(rt::SectionKind::Kernels, prefix + "kernels",
                               model.kernels.serialize())))
    return false;
  return true;
}

FailureOr<uint64_t> kiln::writeArtifact(const CompiledModel &model,
                                        const std::string &path, Location loc,
                                        const CompiledModel *draft) {
  rt::ArtifactWriter writer;
  std::function<bool(rt::Status)> check = [&](rt::Status s) {
    if (!s.isOk())
      emitError(loc) << "cannot write '" << path << "': " << s.message();
    return s.isOk();
  };
  // The main model's sections come first: readers that look sections up
  // by kind (the first of each) find the target's.
  if (!addModelSections(writer, model, "", check))
    return failure();
  if (!model.tokenizer.empty() &&
      !check(writer.addSection(rt::SectionKind::Tokenizer, "tokenizer",
                               model.tokenizer)))
    return failure();
  if (!model.speculation.empty() &&
      !check(writer.addSection(rt::SectionKind::Speculation, "speculation",
                               std::string_view(model.speculation))))
    return failure();
  if (draft && !addModelSections(writer, *draft, "draft.", check))
    return failure();
  if (!check(writer.writeFile(path)))
    return failure();
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(path, size)) {
    emitError(loc) << "cannot stat '" << path << "': " << ec.message();
    return failure();
  }
  return size;
}
