//===- CudaDriver.cpp - Opening libcuda.so.1 ------------------------------===//

#include "CudaDriver.h"

#include <dlfcn.h>
#include <mutex>

namespace kiln::runtime::cuda {

/// CUDA_ERROR_OUT_OF_MEMORY.
static constexpr CUresult kOutOfMemory = 2;

std::string Driver::describe(CUresult result) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    name = "CUDA_ERROR_UNKNOWN";
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    text = "unknown error";
  return std::string(name) + " (" + std::to_string(result) + "): " + text;
}

Status Driver::check(CUresult result, const char *what) const {
  if (result == CUDA_SUCCESS)
    return Status::ok();
  return makeError(result == kOutOfMemory ? StatusCode::ResourceExhausted
                                          : StatusCode::Internal,
                   what, ": ", describe(result));
}

namespace {

struct Loaded {
  Driver driver{};
  Status status;
};

Loaded load() {
  Loaded out;
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  std::string why = lib ? "" : dlerror();
  if (!lib)
    lib = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    out.status = makeError(StatusCode::Unimplemented,
                           "no CUDA driver on this machine (cannot open "
                           "libcuda.so.1: ",
                           why,
                           "); use --device host");
    return out;
  }
  Driver &d = out.driver;
  std::string missing;
  auto resolve = [&](auto &fn, const char *symbol) {
    void *p = dlsym(lib, symbol);
    if (!p)
      missing += std::string(missing.empty() ? "" : ", ") + symbol;
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  resolve(d.cuInit, "cuInit");
  resolve(d.cuGetErrorName, "cuGetErrorName");
  resolve(d.cuGetErrorString, "cuGetErrorString");
  resolve(d.cuDeviceGetCount, "cuDeviceGetCount");
  resolve(d.cuDeviceGet, "cuDeviceGet");
  resolve(d.cuDeviceGetName, "cuDeviceGetName");
  resolve(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  resolve(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  resolve(d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  resolve(d.cuCtxSetCurrent, "cuCtxSetCurrent");
  resolve(d.cuCtxSynchronize, "cuCtxSynchronize");
  resolve(d.cuModuleLoadData, "cuModuleLoadData");
  resolve(d.cuModuleUnload, "cuModuleUnload");
  resolve(d.cuModuleGetFunction, "cuModuleGetFunction");
  resolve(d.cuFuncSetAttribute, "cuFuncSetAttribute");
  resolve(d.cuMemAlloc, "cuMemAlloc_v2");
  resolve(d.cuMemFree, "cuMemFree_v2");
  resolve(d.cuMemGetInfo, "cuMemGetInfo_v2");
  resolve(d.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  resolve(d.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  resolve(d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  resolve(d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  resolve(d.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  resolve(d.cuMemsetD8Async, "cuMemsetD8Async");
  resolve(d.cuMemcpy2DAsync, "cuMemcpy2DAsync_v2");
  resolve(d.cuMemHostAlloc, "cuMemHostAlloc");
  resolve(d.cuMemFreeHost, "cuMemFreeHost");
  resolve(d.cuStreamCreate, "cuStreamCreate");
  resolve(d.cuStreamDestroy, "cuStreamDestroy_v2");
  resolve(d.cuStreamSynchronize, "cuStreamSynchronize");
  resolve(d.cuEventCreate, "cuEventCreate");
  resolve(d.cuEventDestroy, "cuEventDestroy_v2");
  resolve(d.cuEventRecord, "cuEventRecord");
  resolve(d.cuEventSynchronize, "cuEventSynchronize");
  resolve(d.cuEventElapsedTime, "cuEventElapsedTime");
  resolve(d.cuStreamBeginCapture, "cuStreamBeginCapture_v2");
  resolve(d.cuStreamEndCapture, "cuStreamEndCapture");
  resolve(d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
  resolve(d.cuGraphLaunch, "cuGraphLaunch");
  resolve(d.cuGraphExecDestroy, "cuGraphExecDestroy");
  resolve(d.cuGraphDestroy, "cuGraphDestroy");
  resolve(d.cuLaunchKernel, "cuLaunchKernel");
  d.cuLaunchKernelEx = reinterpret_cast<decltype(d.cuLaunchKernelEx)>(
      dlsym(lib, "cuLaunchKernelEx"));
  if (!missing.empty()) {
    out.status = makeError(StatusCode::Unimplemented,
                           "the CUDA driver lacks ", missing,
                           " (too old a driver)");
    return out;
  }
  CUresult init = d.cuInit(0);
  if (init != CUDA_SUCCESS)
    out.status = makeError(StatusCode::Unimplemented,
                           "the CUDA driver did not initialize: ",
                           d.describe(init));
  return out;
}

} // namespace

StatusOr<const Driver *> loadDriver() {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.status.isOk())
    return loaded.status;
  return &loaded.driver;
}

} // namespace kiln::runtime::cuda
