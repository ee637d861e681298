//===- MappedFile.h - A read-only memory map of a whole file --------------===//
//
// Artifacts embed weights (gigabytes), so the reader maps the file instead
// of copying it: pages are read on first touch and stay shared with the
// page cache.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MAPPEDFILE_H
#define KILN_RUNTIME_MAPPEDFILE_H

#include "kiln/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::runtime {

class MappedFile {
public:
  /// Maps `path`; NotFound if it does not exist. An empty file maps to an
  /// empty range.
  static StatusOr<MappedFile> open(const std::string &path);

  MappedFile() = default;
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

private:
  void unmap();

  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

/// A Status for a failed file operation from errno: NotFound for a missing
/// file, Internal otherwise; the message names the operation and the path.
Status fileError(const char *operation, const std::string &path, int err);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_MAPPEDFILE_H
