//===- ModelConfig.h - Model hyper-parameters stored in an artifact -------===//
//
// The shapes and token ids the runtime needs before it looks at any kernel:
// to size the KV cache, check prompts against the context length, and stop
// at EOS. Stored in the artifact's Config section as versioned text, one
// `key=value` per line, so that `strings model.kiln` shows it:
//
//   kiln_model_config=1
//   vocab_size=4096
//   ...
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MODELCONFIG_H
#define KILN_RUNTIME_MODELCONFIG_H

#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::runtime {

struct ModelConfig {
  /// Version of the text format; bumped when keys change meaning. Version 2
  /// added block_size; version 1 text still reads (block_size 16).
  static constexpr int kFormatVersion = 2;

  int32_t vocabSize = 0;
  int32_t bosTokenId = -1;
  int32_t eosTokenId = -1;
  int32_t contextLength = 0;
  int32_t numLayers = 0;
  int32_t numHeads = 0;
  int32_t numKVHeads = 0;
  int32_t headDim = 0;
  int32_t hiddenSize = 0;
  int32_t intermediateSize = 0;
  double ropeTheta = 10000.0;
  /// Weight storage type: "f32", "f16" or "bf16".
  std::string dtype = "f16";
  /// Tokens per KV-cache block the launch plan was laid out for.
  int32_t blockSize = 16;

  /// InvalidArgument naming the first bad field: sizes (and block_size) must
  /// be positive,
  /// token ids inside the vocabulary, num_heads a multiple of kv_heads,
  /// head_dim even (RoPE rotates pairs), rope_theta positive and finite.
  Status validate() const;

  /// The Config section text. Doubles print in shortest round-trip form.
  std::string serialize() const;

  /// Parses and validates Config text. InvalidArgument (with the line
  /// number) for a wrong version line, malformed line, unknown or duplicate
  /// key, bad number, or missing key.
  static StatusOr<ModelConfig> deserialize(std::string_view text);

  bool operator==(const ModelConfig &o) const;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_MODELCONFIG_H
