//===- SpeculationConfig.cpp - The Speculation section --------------------===//

#include "kiln/runtime/SpeculationConfig.h"

#include <cstdlib>
#include <map>

namespace kiln::runtime {

std::string SpeculationConfig::serialize() const {
  return "kiln_speculation=" + std::to_string(kFormatVersion) +
         "\nk=" + std::to_string(k) +
         "\ndraft=" + (draftModel ? "model" : "ngram") + "\n";
}

StatusOr<SpeculationConfig>
SpeculationConfig::deserialize(std::string_view text) {
  std::map<std::string, std::string> values;
  std::string first;
  size_t lineNo = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? "" : text.substr(end + 1);
    ++lineNo;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return makeError(StatusCode::DataLoss, "speculation section: line ",
                       lineNo, " is not key=value");
    std::string key(line.substr(0, eq));
    if (lineNo == 1)
      first = key;
    if (!values.emplace(key, std::string(line.substr(eq + 1))).second)
      return makeError(StatusCode::DataLoss, "speculation section: duplicate ",
                       "key '", key, "'");
  }
  if (first != "kiln_speculation")
    return makeError(StatusCode::DataLoss,
                     "speculation section: expected kiln_speculation=1 first");
  if (values["kiln_speculation"] != std::to_string(kFormatVersion))
    return makeError(StatusCode::Unimplemented, "speculation section version ",
                     values["kiln_speculation"], " (this runtime reads ",
                     kFormatVersion, ")");
  SpeculationConfig config;
  for (const auto &[key, value] : values) {
    if (key == "kiln_speculation")
      continue;
    if (key == "k") {
      char *end = nullptr;
      long k = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end || k < 1 || k > 1024)
        return makeError(StatusCode::DataLoss, "speculation section: k '",
                         value, "' is not an integer in [1, 1024]");
      config.k = static_cast<int32_t>(k);
    } else if (key == "draft") {
      if (value != "model" && value != "ngram")
        return makeError(StatusCode::DataLoss, "speculation section: draft '",
                         value, "' is neither model nor ngram");
      config.draftModel = value == "model";
    } else {
      return makeError(StatusCode::DataLoss,
                       "speculation section: unknown "
                       "key '",
                       key, "'");
    }
  }
  if (!values.count("k") || !values.count("draft"))
    return makeError(StatusCode::DataLoss,
                     "speculation section: k and draft are required");
  return config;
}

} // namespace kiln::runtime
