//===- Status.h - Error status returned by every fallible runtime call ----===//
//
// The runtime is built without exceptions and never aborts on bad input: a
// call that can fail returns a Status (or a StatusOr<T> carrying its result),
// as IREE's runtime does with iree_status_t. Messages are short phrases
// that name what was wrong ("unknown sequence 7"), so that a tool
// can print them as they are.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_STATUS_H
#define KILN_RUNTIME_STATUS_H

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>

namespace kiln::runtime {

/// The error classes, a subset of absl/IREE's canonical codes.
enum class StatusCode {
  Ok = 0,
  InvalidArgument,    ///< The caller passed something malformed.
  OutOfRange,         ///< A value past the end of a valid range.
  ResourceExhausted,  ///< A fixed pool (KV blocks, memory) ran out.
  DataLoss,           ///< Stored bytes are corrupt or truncated.
  NotFound,           ///< A named file, section or entry does not exist.
  FailedPrecondition, ///< The object is in the wrong state for the call.
  Unimplemented,      ///< Not supported by this build or format version.
  Internal,           ///< A broken invariant or an OS failure.
};

/// "INVALID_ARGUMENT" and so on, for messages.
const char *statusCodeName(StatusCode code);

/// A code and a message; the default-constructed Status is OK.
class [[nodiscard]] Status {
public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  /// The OK status (a named constructor, reads better than `Status()`).
  static Status ok() { return Status(); }

  bool isOk() const { return code_ == StatusCode::Ok; }
  StatusCode code() const { return code_; }
  const std::string &message() const { return message_; }

  /// "INVALID_ARGUMENT: unknown sequence 7", or "OK".
  std::string toString() const;

  /// Marks a status as deliberately dropped.
  void ignoreError() const {}

private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

std::ostream &operator<<(std::ostream &os, const Status &status);

/// Builds an error status whose message is the streamed `parts`, so that
/// callers can write `makeError(StatusCode::X, "need ", n, " blocks")`.
template <typename... Parts>
Status makeError(StatusCode code, const Parts &...parts) {
  std::ostringstream os;
  (os << ... << parts);
  return Status(code, os.str());
}

/// A T or an error status. Reading the value of an error is a programming
/// error: it prints the status and aborts (there are no exceptions to throw).
template <typename T> class [[nodiscard]] StatusOr {
public:
  /// Implicit so that `return value;` and `return status;` both work.
  StatusOr(T value) : value_(std::move(value)) {}
  StatusOr(Status status) : status_(std::move(status)) {
    // An OK status carries no value; keep the invariant "ok <=> value".
    if (status_.isOk())
      status_ = Status(StatusCode::Internal,
                       "StatusOr constructed from an OK status without value");
  }

  bool isOk() const { return value_.has_value(); }
  const Status &status() const { return status_; }

  T &value() & { return checkedValue(); }
  const T &value() const & {
    return const_cast<StatusOr *>(this)->checkedValue();
  }
  T &&value() && { return std::move(checkedValue()); }
  T &operator*() & { return checkedValue(); }
  const T &operator*() const & { return value(); }
  T *operator->() { return &checkedValue(); }
  const T *operator->() const { return &value(); }

private:
  T &checkedValue() {
    if (!value_) {
      std::fprintf(stderr, "kiln runtime: value of an error StatusOr: %s\n",
                   status_.toString().c_str());
      std::abort();
    }
    return *value_;
  }

  Status status_;
  std::optional<T> value_;
};

} // namespace kiln::runtime

/// Returns the status of `expr` from the enclosing function if it is an error.
#define KILN_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    ::kiln::runtime::Status kilnStatus_ = (expr);                              \
    if (!kilnStatus_.isOk())                                                   \
      return kilnStatus_;                                                      \
  } while (false)

#define KILN_STATUS_CONCAT_INNER(a, b) a##b
#define KILN_STATUS_CONCAT(a, b) KILN_STATUS_CONCAT_INNER(a, b)

/// `KILN_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value or
/// returns f()'s error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr)                                       \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_STATUS_CONCAT(kilnStatusOr_, __LINE__), lhs, \
                             expr)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                             \
  auto tmp = (expr);                                                           \
  if (!tmp.isOk())                                                             \
    return tmp.status();                                                       \
  lhs = std::move(tmp).value()

#endif // KILN_RUNTIME_STATUS_H
