//===- Status.cpp - Status names and printing -----------------------------===//

#include "kiln/runtime/Status.h"

namespace kiln::runtime {

const char *statusCodeName(StatusCode code) {
  switch (code) {
  case StatusCode::Ok:
    return "OK";
  case StatusCode::InvalidArgument:
    return "INVALID_ARGUMENT";
  case StatusCode::OutOfRange:
    return "OUT_OF_RANGE";
  case StatusCode::ResourceExhausted:
    return "RESOURCE_EXHAUSTED";
  case StatusCode::DataLoss:
    return "DATA_LOSS";
  case StatusCode::NotFound:
    return "NOT_FOUND";
  case StatusCode::FailedPrecondition:
    return "FAILED_PRECONDITION";
  case StatusCode::Unimplemented:
    return "UNIMPLEMENTED";
  case StatusCode::Internal:
    return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::toString() const {
  if (isOk())
    return "OK";
  return std::string(statusCodeName(code_)) + ": " + message_;
}

std::ostream &operator<<(std::ostream &os, const Status &status) {
  return os << status.toString();
}

} // namespace kiln::runtime
