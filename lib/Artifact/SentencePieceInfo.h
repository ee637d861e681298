//===- SentencePieceInfo.h - What the config needs from a tokenizer -------===//

#ifndef KILN_LIB_ARTIFACT_SENTENCEPIECEINFO_H
#define KILN_LIB_ARTIFACT_SENTENCEPIECEINFO_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

struct SentencePieceInfo {
  int32_t vocabSize = 0;
  /// -1 when the model has no such control piece.
  int32_t bosId = -1, eosId = -1;
};

/// Reads a serialized sentencepiece.ModelProto; nullopt (and `error`) for
/// bytes that are not one.
std::optional<SentencePieceInfo>
readSentencePieceInfo(const std::vector<uint8_t> &bytes, std::string &error);

} // namespace kiln

#endif // KILN_LIB_ARTIFACT_SENTENCEPIECEINFO_H
