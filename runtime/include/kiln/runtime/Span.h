//===- Span.h - A non-owning view of contiguous elements ------------------===//
//
// C++17 has no std::span and the runtime may not use llvm::ArrayRef, so this
// is the minimal read-only view the runtime's APIs take (logits, token ids,
// section payloads).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPAN_H
#define KILN_RUNTIME_SPAN_H

#include <cstddef>
#include <initializer_list>
#include <type_traits>
#include <vector>

namespace kiln::runtime {

/// A pointer and a count; T is usually const-qualified.
template <typename T> class Span {
public:
  Span() = default;
  Span(T *data, size_t size) : data_(data), size_(size) {}
  template <typename U, typename A>
  Span(const std::vector<U, A> &v) : data_(v.data()), size_(v.size()) {}
  template <typename U, typename A>
  Span(std::vector<U, A> &v) : data_(v.data()), size_(v.size()) {}
  /// Valid only for the full expression that holds the braces, as with
  /// llvm::ArrayRef (hence GCC's lifetime warning, silenced as LLVM does).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  Span(std::initializer_list<std::remove_const_t<T>> list)
      : data_(list.begin()), size_(list.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  T *data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T *begin() const { return data_; }
  T *end() const { return data_ + size_; }
  T &operator[](size_t i) const { return data_[i]; }

private:
  T *data_ = nullptr;
  size_t size_ = 0;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SPAN_H
