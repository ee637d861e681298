//===- SpeculationConfig.h - The Speculation section ----------------------===//
//
// What kiln-compile --draft / --speculate-ngram records about speculative
// decoding, as versioned key=value text like the Config section:
//
//   kiln_speculation=1
//   k=4
//   draft=model          (model: the artifact carries "draft.*" sections;
//                         ngram: prompt lookup, no draft model)
//
// The runtime takes K from here unless told otherwise (K stays adjustable
// at run time).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPECULATIONCONFIG_H
#define KILN_RUNTIME_SPECULATIONCONFIG_H

#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::runtime {

struct SpeculationConfig {
  static constexpr int kFormatVersion = 1;
  int32_t k = 4;
  /// True: a draft model is carried; false: n-gram prompt lookup.
  bool draftModel = true;

  std::string serialize() const;
  /// DataLoss for malformed text, unknown or missing keys, K < 1, another
  /// draft kind; Unimplemented for another version.
  static StatusOr<SpeculationConfig> deserialize(std::string_view text);
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SPECULATIONCONFIG_H
