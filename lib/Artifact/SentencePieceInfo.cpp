//===- SentencePieceInfo.cpp - Vocabulary size and BOS/EOS of a tokenizer -===//
//
// The compiler reads what the config needs from a SentencePiece model
// without libsentencepiece: Debian's build of it carries its own protobuf
// runtime, which aborts when loaded into a process that also links the
// system protobuf (as every tool with the ONNX importer does). So this is
// a minimal protobuf wire-format walk over sentencepiece.ModelProto:
// `pieces` (field 1: piece = 1, type = 3) and `trainer_spec` (field 2:
// bos_piece = 46, eos_piece = 47). As SentencePieceProcessor::bos_id() does,
// the BOS id is the id of the bos piece ("<s>" by default) when that piece
// is a control symbol, else -1; EOS likewise ("</s>").
//
//===----------------------------------------------------------------------===//

#include "SentencePieceInfo.h"

#include <cstring>

namespace kiln {

namespace {

struct Reader {
  const uint8_t *p, *end;
  bool ok = true;

  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end)
        break;
      uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80))
        return v;
    }
    ok = false;
    return 0;
  }
  bool bytes(const uint8_t *&data, size_t &size) {
    uint64_t n = varint();
    if (!ok || n > uint64_t(end - p))
      return ok = false;
    data = p;
    size = n;
    p += n;
    return true;
  }
  void skip(int type) {
    size_t n = 0;
    const uint8_t *d;
    switch (type) {
    case 0:
      varint();
      return;
    case 1:
      n = 8;
      break;
    case 2:
      bytes(d, n);
      return;
    case 5:
      n = 4;
      break;
    default:
      ok = false;
      return;
    }
    if (size_t(end - p) < n)
      ok = false;
    else
      p += n;
  }
};

} // namespace

std::optional<SentencePieceInfo>
readSentencePieceInfo(const std::vector<uint8_t> &bytes, std::string &error) {
  Reader r{bytes.data(), bytes.data() + bytes.size()};
  std::vector<std::string> pieces;
  std::vector<int> types;
  std::string bosPiece = "<s>", eosPiece = "</s>";
  while (!r.done() && r.ok) {
    uint64_t key = r.varint();
    int field = int(key >> 3), type = int(key & 7);
    if (field == 1 && type == 2) {
      const uint8_t *d;
      size_t n;
      if (!r.bytes(d, n))
        break;
      Reader piece{d, d + n};
      std::string text;
      int pieceType = 1; // NORMAL
      while (!piece.done() && piece.ok) {
        uint64_t k = piece.varint();
        int f = int(k >> 3), t = int(k & 7);
        const uint8_t *s;
        size_t len;
        if (f == 1 && t == 2 && piece.bytes(s, len))
          text.assign(reinterpret_cast<const char *>(s), len);
        else if (f == 3 && t == 0)
          pieceType = int(piece.varint());
        else
          piece.skip(t);
      }
      r.ok &= piece.ok;
      pieces.push_back(text);
      types.push_back(pieceType);
    } else if (field == 2 && type == 2) {
      const uint8_t *d;
      size_t n;
      if (!r.bytes(d, n))
        break;
      Reader spec{d, d + n};
      while (!spec.done() && spec.ok) {
        uint64_t k = spec.varint();
        int f = int(k >> 3), t = int(k & 7);
        const uint8_t *s;
        size_t len;
        if ((f == 46 || f == 47) && t == 2 && spec.bytes(s, len))
          (f == 46 ? bosPiece : eosPiece)
              .assign(reinterpret_cast<const char *>(s), len);
        else
          spec.skip(t);
      }
      r.ok &= spec.ok;
    } else {
      r.skip(type);
    }
  }
  if (!r.ok || pieces.empty()) {
    error = "not a SentencePiece model";
    return std::nullopt;
  }
  SentencePieceInfo info;
  info.vocabSize = int32_t(pieces.size());
  const int kControl = 3;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (types[i] != kControl)
      continue;
    if (pieces[i] == bosPiece && info.bosId < 0)
      info.bosId = int32_t(i);
    if (pieces[i] == eosPiece && info.eosId < 0)
      info.eosId = int32_t(i);
  }
  return info;
}

} // namespace kiln
