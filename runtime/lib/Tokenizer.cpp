//===- Tokenizer.cpp - SentencePiece-backed tokenizer ---------------------===//

#include "kiln/runtime/Tokenizer.h"
#include "kiln/runtime/MappedFile.h"

#include <sentencepiece_processor.h>

namespace kiln::runtime {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

bool Tokenizer::isAvailable() { return true; }

/// SentencePiece's codes are absl's; keep the message, map the class.
static Status fromSentencePiece(const sentencepiece::util::Status &status,
                                const std::string &context) {
  using SpCode = sentencepiece::util::StatusCode;
  StatusCode code = StatusCode::Internal;
  switch (status.code()) {
  case SpCode::kInvalidArgument:
    code = StatusCode::InvalidArgument;
    break;
  case SpCode::kNotFound:
    code = StatusCode::NotFound;
    break;
  case SpCode::kOutOfRange:
    code = StatusCode::OutOfRange;
    break;
  case SpCode::kUnimplemented:
    code = StatusCode::Unimplemented;
    break;
  default:
    break;
  }
  return Status(code, context + ": " + status.message());
}

StatusOr<std::unique_ptr<Tokenizer>>
Tokenizer::loadFromBytes(Span<const uint8_t> bytes) {
  if (bytes.empty())
    return makeError(StatusCode::InvalidArgument,
                     "empty SentencePiece tokenizer model");
  auto impl = std::make_unique<Impl>();
  auto status = impl->processor.LoadFromSerializedProto(std::string_view(
      reinterpret_cast<const char *>(bytes.data()), bytes.size()));
  if (!status.ok()) {
    Status s = fromSentencePiece(status, "cannot load SentencePiece model");
    // Garbage bytes fail protobuf parsing, which SentencePiece reports as
    // "internal"; to the caller they are a bad argument.
    if (s.code() == StatusCode::Internal)
      s = Status(StatusCode::InvalidArgument, s.message());
    return s;
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

StatusOr<std::unique_ptr<Tokenizer>>
Tokenizer::loadFromFile(const std::string &path) {
  KILN_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      loadFromBytes(Span<const uint8_t>(file.data(), file.size()));
  if (!tokenizer.isOk())
    return Status(tokenizer.status().code(),
                  "'" + path + "': " + tokenizer.status().message());
  return tokenizer;
}

StatusOr<std::vector<int32_t>> Tokenizer::encode(std::string_view text,
                                                 bool addBos) const {
  std::vector<int> pieces;
  auto status = impl_->processor.Encode(text, &pieces);
  if (!status.ok())
    return fromSentencePiece(status, "cannot encode text");
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 1);
  if (addBos && bosId() >= 0)
    ids.push_back(bosId());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

StatusOr<std::string> Tokenizer::decode(Span<const int32_t> ids) const {
  const int32_t vocab = vocabSize();
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      return makeError(StatusCode::InvalidArgument, "token id ", ids[i],
                       " at index ", i, " is outside the vocabulary [0, ",
                       vocab, ")");
  std::string text;
  auto status =
      impl_->processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok())
    return fromSentencePiece(status, "cannot decode tokens");
  return text;
}

int32_t Tokenizer::bosId() const { return impl_->processor.bos_id(); }
int32_t Tokenizer::eosId() const { return impl_->processor.eos_id(); }
int32_t Tokenizer::vocabSize() const { return impl_->processor.GetPieceSize(); }

} // namespace kiln::runtime
