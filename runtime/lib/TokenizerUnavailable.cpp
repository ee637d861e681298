//===- TokenizerUnavailable.cpp - Tokenizer stub without SentencePiece ----===//
//
// Compiled instead of Tokenizer.cpp when SentencePiece is not installed
// (a bare GPU machine), so the runtime still builds: serving then takes
// token ids, and loading a tokenizer says why it cannot.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Tokenizer.h"

namespace kiln::runtime {

struct Tokenizer::Impl {};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

bool Tokenizer::isAvailable() { return false; }

static Status unavailable() {
  return makeError(StatusCode::Unimplemented,
                   "this runtime was built without SentencePiece");
}

StatusOr<std::unique_ptr<Tokenizer>>
Tokenizer::loadFromBytes(Span<const uint8_t>) {
  return unavailable();
}
StatusOr<std::unique_ptr<Tokenizer>>
Tokenizer::loadFromFile(const std::string &) {
  return unavailable();
}
StatusOr<std::vector<int32_t>> Tokenizer::encode(std::string_view, bool) const {
  return unavailable();
}
StatusOr<std::string> Tokenizer::decode(Span<const int32_t>) const {
  return unavailable();
}
int32_t Tokenizer::bosId() const { return -1; }
int32_t Tokenizer::eosId() const { return -1; }
int32_t Tokenizer::vocabSize() const { return 0; }

} // namespace kiln::runtime
