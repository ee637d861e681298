//===- Tokenizer.h - Text <-> token ids through SentencePiece -------------===//
//
// A thin wrapper that turns SentencePiece's status into ours and keeps its
// header out of the runtime's public headers. The model comes from a file
// or from bytes (the artifact's Tokenizer section embeds it). Builds without
// SentencePiece compile a stub whose loads return Unimplemented.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_TOKENIZER_H
#define KILN_RUNTIME_TOKENIZER_H

#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class Tokenizer {
public:
  /// Loads a serialized SentencePiece model (`tokenizer.model`); NotFound
  /// for a missing file, InvalidArgument for bytes that are not a model.
  static StatusOr<std::unique_ptr<Tokenizer>>
  loadFromFile(const std::string &path);
  static StatusOr<std::unique_ptr<Tokenizer>>
  loadFromBytes(Span<const uint8_t> bytes);

  /// Whether this build links SentencePiece.
  static bool isAvailable();

  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  /// Token ids of `text`, preceded by BOS when `addBos` (and the model has
  /// one).
  StatusOr<std::vector<int32_t>> encode(std::string_view text,
                                        bool addBos = false) const;
  /// Text of `ids`; InvalidArgument for an id outside [0, vocabSize()).
  /// Control tokens (BOS/EOS) decode to nothing.
  StatusOr<std::string> decode(Span<const int32_t> ids) const;

  /// -1 when the model defines no such token.
  int32_t bosId() const;
  int32_t eosId() const;
  int32_t vocabSize() const;

private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_TOKENIZER_H
