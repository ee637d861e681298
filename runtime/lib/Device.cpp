//===- Device.cpp - Choosing and opening a device -------------------------===//

#include "kiln/runtime/Device.h"
#include "kiln/runtime/HostDevice.h"

#include "CudaDevice.h"

#include <cstdlib>

namespace kiln::runtime {

Device::~Device() = default;

StatusOr<std::unique_ptr<Device>> createDevice(std::string_view kind) {
  if (kind == "host")
    return std::unique_ptr<Device>(new HostDevice());
  if (kind == "host:storage")
    return std::unique_ptr<Device>(new HostDevice(/*roundToStorage=*/true));
  if (kind == "cuda")
    return CudaDevice::open(0);
  if (kind.substr(0, 5) == "cuda:") {
    std::string digits(kind.substr(5));
    char *end = nullptr;
    long ordinal = std::strtol(digits.c_str(), &end, 10);
    if (digits.empty() || *end || ordinal < 0)
      return makeError(StatusCode::InvalidArgument, "bad device '", kind,
                       "' (expected cuda:N)");
    return CudaDevice::open(static_cast<int>(ordinal));
  }
  return makeError(StatusCode::InvalidArgument, "unknown device '", kind,
                   "' (expected host, host:storage, cuda, cuda:N or auto)");
}

StatusOr<std::unique_ptr<Device>>
openPreparedDevice(std::string_view kind, std::shared_ptr<const Model> model,
                   const KVCacheConfig &cache, std::string *note) {
  if (kind == "auto") {
    StatusOr<std::unique_ptr<Device>> gpu = createDevice("cuda");
    Status why = gpu.isOk() ? (*gpu)->prepare(model, cache) : gpu.status();
    if (why.isOk())
      return std::move(gpu).value();
    if (note)
      *note = "the host device, since the CUDA device is not available: " +
              why.message();
    kind = "host";
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Device> device, createDevice(kind));
  KILN_RETURN_IF_ERROR(device->prepare(std::move(model), cache));
  return device;
}

} // namespace kiln::runtime
