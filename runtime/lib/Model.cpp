//===- Model.cpp - Loading a .kiln artifact -------------------------------===//

#include "kiln/runtime/Model.h"
#include "kiln/runtime/Crc32.h"
#include "kiln/runtime/Half.h"

#include <cstdio>
#include <map>
#include <random>

namespace kiln::runtime {

static std::string hex32(uint32_t v) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%08x", v);
  return buffer;
}

static std::string dirName(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

/// The 2:4 metadata nibbles (first | second << 2) with first < second.
constexpr uint8_t kOrderedPairs[6] = {0x4, 0x8, 0xC, 0x9, 0xD, 0xE};

std::vector<uint8_t> dummyWeightBytes(const WeightInfo &info) {
  // Uniform in center +- 0.05 (1 for vectors: norm scales), drawn from a
  // table of 256 values with one random byte each: an 8B model's 16 GB
  // are generated in seconds (a 64-bit splitmix draw feeds 8 elements).
  int64_t n = info.numElements();
  int64_t width = dtypeBytes(info.dtype);
  std::vector<uint8_t> out(static_cast<size_t>(info.numBytes()));
  float center = info.shape.size() == 1 ? 1.0f : 0.0f;
  uint8_t table[256][4];
  for (int v = 0; v < 256; ++v) {
    float x = center + (static_cast<float>(v) / 255.0f * 2.0f - 1.0f) * 0.05f;
    uint16_t h = info.dtype == DType::F16 ? floatToHalf(x) : floatToBf16(x);
    if (info.dtype == DType::U8)
      // Packed low-bit data: any byte is a valid integer pair, but fp8's
      // NaN patterns (0x7f, 0xff) must not appear, and 2:4 metadata needs
      // each nibble to hold two distinct positions in increasing order
      // (the sparse tensor cores' form): both nibbles are one of the six
      // such patterns, which never makes 0x7f or 0xff.
      table[v][0] = static_cast<uint8_t>(kOrderedPairs[v % 6] |
                                         kOrderedPairs[(v / 6) % 6] << 4);
    else if (width == 2)
      std::memcpy(table[v], &h, 2);
    else
      std::memcpy(table[v], &x, 4);
  }
  uint64_t state = info.seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  uint8_t *p = out.data();
  for (int64_t k = 0; k < n; k += 8) {
    uint64_t r = next();
    for (int64_t j = 0; j < 8 && k + j < n; ++j, r >>= 8)
      std::memcpy(p + (k + j) * width, table[r & 255], width);
  }
  return out;
}

int64_t Model::totalWeightBytes() const {
  int64_t total = 0;
  for (const WeightInfo &w : weights_.weights)
    total += w.numBytes();
  return total;
}

bool Model::hasDummyWeights() const {
  for (const WeightInfo &w : weights_.weights)
    if (w.storage == WeightStorage::Dummy)
      return true;
  return false;
}

Status Model::resolveWeights(const std::string &baseDir,
                             Span<const uint8_t> weightsSection,
                             const ModelLoadOptions &options) {
  KILN_RETURN_IF_ERROR(weights_.validate(weightsSection.size()));
  std::map<std::string, size_t> fileIndex;
  weightBytes_.resize(weights_.size());
  for (size_t i = 0; i < weights_.size(); ++i) {
    const WeightInfo &w = weights_[i];
    switch (w.storage) {
    case WeightStorage::Embedded:
      weightBytes_[i] = Span<const uint8_t>(weightsSection.data() + w.offset,
                                            w.length);
      break;
    case WeightStorage::Dummy:
      ownedBytes_.push_back(dummyWeightBytes(w));
      weightBytes_[i] = Span<const uint8_t>(ownedBytes_.back().data(),
                                            ownedBytes_.back().size());
      break;
    case WeightStorage::External: {
      std::string path =
          w.path[0] == '/' ? w.path : baseDir + "/" + w.path;
      auto it = fileIndex.find(path);
      if (it == fileIndex.end()) {
        StatusOr<MappedFile> file = MappedFile::open(path);
        if (!file.isOk())
          return Status(file.status().code(),
                        "weight '" + w.name + "': " + file.status().message());
        files_.push_back(std::move(file).value());
        it = fileIndex.emplace(path, files_.size() - 1).first;
      }
      const MappedFile &file = files_[it->second];
      if (w.offset > file.size() || w.length > file.size() - w.offset)
        return makeError(StatusCode::DataLoss, "weight '", w.name,
                         "': bytes [", w.offset, ", ", w.offset + w.length,
                         ") lie outside '", path, "' of ", file.size(),
                         " bytes");
      const uint8_t *data = file.data() + w.offset;
      if (options.verifyChecksums) {
        uint32_t crc = crc32(data, w.length);
        if (crc != w.crc32)
          return makeError(StatusCode::DataLoss, "weight '", w.name,
                           "': checksum mismatch of '", path, "' bytes [",
                           w.offset, ", ", w.offset + w.length, "): stored ",
                           hex32(w.crc32), ", computed ", hex32(crc),
                           " (the file changed after kiln-compile)");
      }
      weightBytes_[i] = Span<const uint8_t>(data, w.length);
      break;
    }
    }
  }
  return Status::ok();
}

static std::string_view asText(Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char *>(bytes.data()),
                          bytes.size());
}

/// The section of `kind` of one model of the artifact: for the main model
/// (part "") the one named `name` (kiln-compile's name), else the first of
/// its kind; for a part, the one named "<part>.<name>".
static const SectionInfo *findPartSection(const ArtifactReader &reader,
                                          std::string_view part,
                                          SectionKind kind,
                                          std::string_view name) {
  if (part.empty()) {
    const SectionInfo *named = reader.findSection(name);
    return named && named->kind == kind ? named : reader.findSection(kind);
  }
  std::string full = std::string(part) + "." + std::string(name);
  const SectionInfo *named = reader.findSection(full);
  return named && named->kind == kind ? named : nullptr;
}

StatusOr<std::shared_ptr<const Model>>
Model::fromReader(ArtifactReader reader, const std::string &baseDir,
                  const ModelLoadOptions &options) {
  std::shared_ptr<Model> model(new Model());
  std::string_view part = options.part;
  auto required = [&](SectionKind kind,
                      std::string_view name) -> StatusOr<Span<const uint8_t>> {
    if (const SectionInfo *info = findPartSection(reader, part, kind, name))
      return reader.payload(*info);
    if (part.empty())
      return reader.sectionData(kind); // its usual "no section" error
    return makeError(StatusCode::NotFound, "the artifact has no '", part, ".",
                     name, "' section (", sectionKindName(kind),
                     "): it carries no ", part, " model");
  };
  KILN_ASSIGN_OR_RETURN(Span<const uint8_t> configBytes,
                        required(SectionKind::Config, "config"));
  KILN_ASSIGN_OR_RETURN(model->config_,
                        ModelConfig::deserialize(asText(configBytes)));
  KILN_ASSIGN_OR_RETURN(Span<const uint8_t> tableBytes,
                        required(SectionKind::WeightRefs, "weight_refs"));
  KILN_ASSIGN_OR_RETURN(model->weights_,
                        WeightTable::deserialize(tableBytes));
  KILN_ASSIGN_OR_RETURN(Span<const uint8_t> planBytes,
                        required(SectionKind::LaunchPlan, "launch_plan"));
  KILN_ASSIGN_OR_RETURN(model->plan_, LaunchPlan::deserialize(planBytes));
  KILN_RETURN_IF_ERROR(model->plan_.validate(model->weights_, model->config_));
  if (const SectionInfo *k =
          findPartSection(reader, part, SectionKind::Kernels, "kernels")) {
    KILN_ASSIGN_OR_RETURN(KernelTable kernels,
                          KernelTable::deserialize(reader.payload(*k)));
    model->kernels_ = std::move(kernels);
  }
  if (part.empty())
    if (const SectionInfo *spec =
            reader.findSection(SectionKind::Speculation)) {
      KILN_ASSIGN_OR_RETURN(
          SpeculationConfig speculation,
          SpeculationConfig::deserialize(asText(reader.payload(*spec))));
      model->speculation_ = speculation;
    }
  // One tokenizer serves every model of an artifact (kiln-compile checks
  // that a draft's matches the target's).
  if (const SectionInfo *tok = reader.findSection(SectionKind::Tokenizer))
    model->tokenizer_ = reader.payload(*tok);
  Span<const uint8_t> weightsSection;
  if (const SectionInfo *w =
          findPartSection(reader, part, SectionKind::Weights, "weights"))
    weightsSection = reader.payload(*w);
  model->reader_.emplace(std::move(reader));
  // Spans into the reader stay valid: its bytes did not move (a mapped
  // file, or a vector whose buffer moved with it).
  KILN_RETURN_IF_ERROR(
      model->resolveWeights(baseDir, weightsSection, options));
  return std::shared_ptr<const Model>(std::move(model));
}

StatusOr<std::shared_ptr<const Model>>
Model::load(const std::string &path, const ModelLoadOptions &options) {
  KILN_ASSIGN_OR_RETURN(ArtifactReader reader, ArtifactReader::openFile(path));
  StatusOr<std::shared_ptr<const Model>> model =
      fromReader(std::move(reader), dirName(path), options);
  if (!model.isOk())
    return Status(model.status().code(),
                  "'" + path + "': " + model.status().message());
  return model;
}

StatusOr<bool> Model::hasPart(const std::string &path, std::string_view part) {
  KILN_ASSIGN_OR_RETURN(ArtifactReader reader, ArtifactReader::openFile(path));
  return findPartSection(reader, part, SectionKind::Config, "config") !=
         nullptr;
}

StatusOr<std::shared_ptr<const Model>>
Model::fromParts(ModelConfig config, LaunchPlan plan, WeightTable weights,
                 std::vector<std::vector<uint8_t>> weightData) {
  std::shared_ptr<Model> model(new Model());
  KILN_RETURN_IF_ERROR(config.validate());
  KILN_RETURN_IF_ERROR(weights.validate(UINT64_MAX));
  KILN_RETURN_IF_ERROR(plan.validate(weights, config));
  if (weightData.size() != weights.size())
    return makeError(StatusCode::InvalidArgument, weightData.size(),
                     " weight buffers for ", weights.size(), " weights");
  model->config_ = std::move(config);
  model->plan_ = std::move(plan);
  model->weights_ = std::move(weights);
  model->ownedBytes_ = std::move(weightData);
  model->weightBytes_.resize(model->weights_.size());
  for (size_t i = 0; i < model->weights_.size(); ++i) {
    const WeightInfo &w = model->weights_[i];
    std::vector<uint8_t> &bytes = model->ownedBytes_[i];
    if (w.storage == WeightStorage::Dummy)
      bytes = dummyWeightBytes(w);
    if ((int64_t)bytes.size() != w.numBytes())
      return makeError(StatusCode::InvalidArgument, "weight '", w.name,
                       "': ", bytes.size(), " bytes for ", w.numBytes());
    model->weightBytes_[i] = Span<const uint8_t>(bytes.data(), bytes.size());
  }
  return std::shared_ptr<const Model>(std::move(model));
}

} // namespace kiln::runtime
