//===- ModelConfig.cpp - key=value text form of the model config ----------===//

#include "kiln/runtime/ModelConfig.h"

#include <charconv>
#include <cmath>
#include <map>

namespace kiln::runtime {

namespace {
/// The integer fields, in the order they are written.
struct IntField {
  const char *key;
  int32_t ModelConfig::*member;
};
constexpr IntField kIntFields[] = {
    {"vocab_size", &ModelConfig::vocabSize},
    {"bos_token_id", &ModelConfig::bosTokenId},
    {"eos_token_id", &ModelConfig::eosTokenId},
    {"context_length", &ModelConfig::contextLength},
    {"num_layers", &ModelConfig::numLayers},
    {"num_heads", &ModelConfig::numHeads},
    {"num_kv_heads", &ModelConfig::numKVHeads},
    {"head_dim", &ModelConfig::headDim},
    {"hidden_size", &ModelConfig::hiddenSize},
    {"intermediate_size", &ModelConfig::intermediateSize},
};
constexpr const char *kVersionKey = "kiln_model_config";
constexpr const char *kRopeThetaKey = "rope_theta";
constexpr const char *kDtypeKey = "dtype";
constexpr const char *kBlockSizeKey = "block_size";
constexpr const char *kDtypes[] = {"f32", "f16", "bf16"};
} // namespace

Status ModelConfig::validate() const {
  for (const IntField &f : kIntFields) {
    if (f.member == &ModelConfig::bosTokenId ||
        f.member == &ModelConfig::eosTokenId)
      continue;
    if (this->*f.member <= 0)
      return makeError(StatusCode::InvalidArgument, "model config ", f.key,
                       " must be positive, got ", this->*f.member);
  }
  if (bosTokenId < 0 || bosTokenId >= vocabSize)
    return makeError(StatusCode::InvalidArgument, "model config bos_token_id ",
                     bosTokenId, " is outside the vocabulary [0, ", vocabSize,
                     ")");
  if (eosTokenId < 0 || eosTokenId >= vocabSize)
    return makeError(StatusCode::InvalidArgument, "model config eos_token_id ",
                     eosTokenId, " is outside the vocabulary [0, ", vocabSize,
                     ")");
  if (numHeads % numKVHeads != 0)
    return makeError(StatusCode::InvalidArgument, "model config num_heads ",
                     numHeads, " is not a multiple of num_kv_heads ",
                     numKVHeads);
  if (headDim % 2 != 0)
    return makeError(StatusCode::InvalidArgument, "model config head_dim ",
                     headDim, " must be even for rotary embeddings");
  if (!(ropeTheta > 0.0) || !std::isfinite(ropeTheta))
    return makeError(StatusCode::InvalidArgument, "model config rope_theta ",
                     ropeTheta, " must be positive and finite");
  if (blockSize <= 0)
    return makeError(StatusCode::InvalidArgument,
                     "model config block_size must be positive, got ",
                     blockSize);
  for (const char *known : kDtypes)
    if (dtype == known)
      return Status::ok();
  return makeError(StatusCode::InvalidArgument, "model config dtype '", dtype,
                   "' is not one of f32, f16, bf16");
}

std::string ModelConfig::serialize() const {
  std::string out =
      std::string(kVersionKey) + "=" + std::to_string(kFormatVersion) + "\n";
  for (const IntField &f : kIntFields)
    out += std::string(f.key) + "=" + std::to_string(this->*f.member) + "\n";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), ropeTheta);
  out +=
      std::string(kRopeThetaKey) + "=" + std::string(buffer, result.ptr) + "\n";
  out += std::string(kDtypeKey) + "=" + dtype + "\n";
  out += std::string(kBlockSizeKey) + "=" + std::to_string(blockSize) + "\n";
  return out;
}

static Status lineError(size_t line, const std::string &what) {
  return makeError(StatusCode::InvalidArgument, "model config line ", line,
                   ": ", what);
}

StatusOr<ModelConfig> ModelConfig::deserialize(std::string_view text) {
  // Split into key -> (value, line number), rejecting malformed lines.
  std::map<std::string, std::pair<std::string, size_t>, std::less<>> entries;
  size_t lineNo = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineNo;
    if (line.empty())
      continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return lineError(lineNo,
                       "expected key=value, got '" + std::string(line) + "'");
    std::string key(line.substr(0, eq));
    if (lineNo == 1 && key != kVersionKey)
      return lineError(1, std::string("expected '") + kVersionKey +
                              "=<version>' first");
    if (!entries
             .emplace(key,
                      std::make_pair(std::string(line.substr(eq + 1)), lineNo))
             .second)
      return lineError(lineNo, "duplicate key '" + key + "'");
  }
  if (entries.find(kVersionKey) == entries.end())
    return makeError(StatusCode::InvalidArgument,
                     "model config is empty or lacks its version line");

  auto parseInt = [&](const std::string &key, int32_t &out) -> Status {
    auto it = entries.find(key);
    if (it == entries.end())
      return makeError(StatusCode::InvalidArgument, "model config lacks '", key,
                       "'");
    const std::string &v = it->second.first;
    auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size())
      return lineError(it->second.second, "value '" + v + "' of '" + key +
                                              "' is not a 32-bit integer");
    entries.erase(it);
    return Status::ok();
  };

  int32_t version = 0;
  KILN_RETURN_IF_ERROR(parseInt(kVersionKey, version));
  if (version != 1 && version != kFormatVersion)
    return makeError(StatusCode::InvalidArgument,
                     "unsupported model config version ", version,
                     " (this runtime reads versions 1 to ", kFormatVersion,
                     ")");

  ModelConfig config;
  for (const IntField &f : kIntFields)
    KILN_RETURN_IF_ERROR(parseInt(f.key, config.*f.member));

  auto theta = entries.find(kRopeThetaKey);
  if (theta == entries.end())
    return makeError(StatusCode::InvalidArgument, "model config lacks '",
                     kRopeThetaKey, "'");
  const std::string &tv = theta->second.first;
  auto r = std::from_chars(tv.data(), tv.data() + tv.size(), config.ropeTheta);
  if (r.ec != std::errc() || r.ptr != tv.data() + tv.size())
    return lineError(theta->second.second,
                     "value '" + tv + "' of 'rope_theta' is not a number");
  entries.erase(theta);

  auto dtype = entries.find(kDtypeKey);
  if (dtype == entries.end())
    return makeError(StatusCode::InvalidArgument, "model config lacks '",
                     kDtypeKey, "'");
  config.dtype = dtype->second.first;
  entries.erase(dtype);

  // Version 2: the KV-cache block size (version 1 artifacts used 16).
  if (version >= 2)
    KILN_RETURN_IF_ERROR(parseInt(kBlockSizeKey, config.blockSize));

  // Keys are strict within a version: an unknown one is a typo or a newer
  // format, and silently ignoring either would misconfigure the model.
  if (!entries.empty())
    return lineError(entries.begin()->second.second,
                     "unknown key '" + entries.begin()->first + "'");

  KILN_RETURN_IF_ERROR(config.validate());
  return config;
}

bool ModelConfig::operator==(const ModelConfig &o) const {
  for (const IntField &f : kIntFields)
    if (this->*f.member != o.*f.member)
      return false;
  return ropeTheta == o.ropeTheta && dtype == o.dtype &&
         blockSize == o.blockSize;
}

} // namespace kiln::runtime
