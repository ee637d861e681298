//===- ByteStream.h - Bounds-checked binary encoding (private) ------------===//
//
// The LaunchPlan and WeightRefs payloads are sequences of little-endian
// integers, floats, length-prefixed strings and arrays. The reader never
// reads past its end: the first overrun (or oversized count) latches an
// error and every later read returns zeros, so a decoder checks `ok()` once
// per record and turns the first failure into a DataLoss status.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_BYTESTREAM_H
#define KILN_RUNTIME_LIB_BYTESTREAM_H

#include "ByteIO.h"

#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace kiln::runtime {

class ByteWriter {
public:
  template <typename T> void put(T value) {
    size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    byteio::writeLE<T>(bytes_.data() + at, value);
  }
  void u8(uint8_t v) { put<uint8_t>(v); }
  void u16(uint16_t v) { put<uint16_t>(v); }
  void u32(uint32_t v) { put<uint32_t>(v); }
  void u64(uint64_t v) { put<uint64_t>(v); }
  void i64(int64_t v) { put<uint64_t>(static_cast<uint64_t>(v)); }
  void f32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    put<uint32_t>(u);
  }
  void str(const std::string &s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  void raw(const void *data, size_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  std::vector<uint8_t> take() { return std::move(bytes_); }

private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
public:
  explicit ByteReader(Span<const uint8_t> bytes) : bytes_(bytes) {}

  bool ok() const { return error_.empty(); }
  const std::string &error() const { return error_; }
  size_t offset() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  bool atEnd() const { return pos_ == bytes_.size(); }

  /// Latches the first error (later ones keep the first message).
  void fail(const std::string &what) {
    if (error_.empty())
      error_ = what + " at byte " + std::to_string(pos_);
  }

  template <typename T> T get(const char *what) {
    if (!ok() || remaining() < sizeof(T)) {
      fail(std::string("truncated ") + what);
      return T();
    }
    T value = byteio::readLE<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return value;
  }
  uint8_t u8(const char *what) { return get<uint8_t>(what); }
  uint16_t u16(const char *what) { return get<uint16_t>(what); }
  uint32_t u32(const char *what) { return get<uint32_t>(what); }
  uint64_t u64(const char *what) { return get<uint64_t>(what); }
  int64_t i64(const char *what) {
    return static_cast<int64_t>(get<uint64_t>(what));
  }
  float f32(const char *what) {
    uint32_t u = get<uint32_t>(what);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  /// A count of items of at least `minItemBytes` each: rejected before any
  /// allocation when the remaining bytes cannot hold them.
  uint32_t count(const char *what, size_t minItemBytes) {
    uint32_t n = u32(what);
    if (ok() && minItemBytes && n > remaining() / minItemBytes) {
      fail(std::string(what) + " " + std::to_string(n) +
           " exceeds the remaining bytes");
      return 0;
    }
    return ok() ? n : 0;
  }
  std::string str(const char *what) {
    uint32_t n = count(what, 1);
    if (!ok())
      return std::string();
    std::string s(reinterpret_cast<const char *>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> blob(const char *what) {
    uint64_t n = u64(what);
    if (!ok() || n > remaining()) {
      fail(std::string("truncated ") + what);
      return {};
    }
    std::vector<uint8_t> out(bytes_.data() + pos_, bytes_.data() + pos_ + n);
    pos_ += n;
    return out;
  }

private:
  Span<const uint8_t> bytes_;
  size_t pos_ = 0;
  std::string error_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_LIB_BYTESTREAM_H
