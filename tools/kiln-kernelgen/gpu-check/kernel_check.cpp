//===- kernel_check.cpp - Run Kiln's generated kernels on a GPU -----------===//
//
// A standalone program for the GPU machine (it needs only CUDA's driver
// library, never LLVM or MLIR): loads a PTX or cubin file that
// kiln-kernelgen wrote, launches its kernel on random inputs, compares the
// output with an fp32/fp64 CPU reference and times it.
//
//   kernel_check rms.ptx                      # launch contract read from the
//                                             # `// kiln.kernel` line
//   kernel_check --family=gemv --name=gemv_f16_n1024_k384 --n=1024 --k=384
//                --grid=256 --block=128 gemv.cubin
//
// Every `--key=value` that is not an option below overrides (or, for a
// cubin, supplies) a field of the launch contract: family, name, grid,
// block, smem, dtype, rows, hidden, eps, n, k, size. `kiln-kernelgen
// --emit=spec` prints the contract of a kernel.
//
// Options: --iters=100 (timed launches), --warmup=10, --seed=1,
// --tolerance=1e-2 (largest ||out - ref|| / ||ref||), --rotate-mb=256
// (gemv: cycle through copies of W totalling this much so that W comes from
// HBM rather than L2; 0 disables), --device=0, --verbose=1 (the driver's
// JIT log when it compiles PTX).
//
// Prints one PASS/FAIL line per kernel with the relative error, then the
// timing (median of single launches timed by CUDA events, and the mean of
// back-to-back launches) and the achieved bandwidth. Exits non-zero on a
// failure of any kind.
//
//===----------------------------------------------------------------------===//

#include <cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

[[noreturn]] void die(const std::string &message) {
  std::fflush(stdout);
  std::fprintf(stderr, "kernel_check: error: %s\n", message.c_str());
  std::exit(2);
}

void check(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return;
  const char *name = nullptr, *text = nullptr;
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &text);
  die(std::string(what) + ": " + (name ? name : "?") + " (" +
      (text ? text : "?") + ")");
}

//===----------------------------------------------------------------------===//
// Half-precision conversions (round to nearest even), host side
//===----------------------------------------------------------------------===//

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

float floatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

uint16_t floatToHalf(float value) {
  uint32_t f = bitsOf(value);
  uint32_t sign = (f >> 16) & 0x8000u;
  uint32_t magnitude = f & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) // inf or nan
    return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u);
  if (magnitude >= 0x477ff000u) // rounds past the largest half
    return sign | 0x7c00u;
  if (magnitude < 0x38800000u) {                     // subnormal half (or zero)
    float scaled = floatOf(magnitude) * 16777216.0f; // * 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  if (exponent == 31)
    return floatOf(sign | 0x7f800000u | (mantissa << 13));
  return floatOf(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t floatToBF16(float value) {
  uint32_t f = bitsOf(value);
  if ((f & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((f >> 16) | 0x40u);
  return static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

float bf16ToFloat(uint16_t b) {
  return floatOf(static_cast<uint32_t>(b) << 16);
}

//===----------------------------------------------------------------------===//
// The launch contract
//===----------------------------------------------------------------------===//

struct Spec {
  std::map<std::string, std::string> fields;

  bool has(const std::string &key) const { return fields.count(key) != 0; }
  const std::string &get(const std::string &key) const {
    auto it = fields.find(key);
    if (it == fields.end())
      die("the launch contract has no '" + key + "' (pass --" + key +
          "=..., see kiln-kernelgen --emit=spec)");
    return it->second;
  }
  int64_t integer(const std::string &key) const {
    const std::string &text = get(key);
    char *end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || value <= 0)
      die("'" + key + "=" + text + "' is not a positive integer");
    return value;
  }
  double real(const std::string &key) const {
    return std::strtod(get(key).c_str(), nullptr);
  }
  /// "X,Y,Z" or "X".
  void dims(const std::string &key, unsigned out[3]) const {
    std::stringstream stream(get(key));
    std::string part;
    for (int i = 0; i < 3; ++i) {
      out[i] = 1;
      if (std::getline(stream, part, ','))
        out[i] = static_cast<unsigned>(std::strtoul(part.c_str(), nullptr, 10));
      if (out[i] == 0)
        die("'" + key + "=" + get(key) + "' has a zero dimension");
    }
  }

  /// Reads `key=value` tokens (the format of KernelSpec::str()).
  void parse(const std::string &line) {
    std::stringstream stream(line);
    std::string token;
    while (stream >> token) {
      size_t eq = token.find('=');
      if (eq != std::string::npos)
        fields[token.substr(0, eq)] = token.substr(eq + 1);
    }
  }
};

//===----------------------------------------------------------------------===//
// Device buffers
//===----------------------------------------------------------------------===//

struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t size) : bytes(size) {
    check(cuMemAlloc(&ptr, size), "cuMemAlloc");
  }
  ~DeviceBuffer() {
    if (ptr)
      cuMemFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
};

/// Host values in the kernel's storage type, and their exact fp32 values.
struct HostTensor {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};

struct Options {
  int iters = 100;
  int warmup = 10;
  unsigned seed = 1;
  double tolerance = 1e-2;
  double rotateMB = 256;
  int device = 0;
  bool verbose = false;
};

class Checker {
public:
  Checker(const Spec &spec, const Options &options, CUfunction function)
      : spec(spec), options(options), function(function), rng(options.seed) {
    const std::string &dtype = spec.has("dtype") ? spec.get("dtype") : "f16";
    if (dtype == "f16")
      bf16 = false;
    else if (dtype == "bf16")
      bf16 = true;
    else
      die("unsupported dtype '" + dtype + "'");
    spec.dims("grid", grid);
    spec.dims("block", block);
    smem = spec.has("smem")
               ? static_cast<unsigned>(std::stoul(spec.get("smem")))
               : 0;
  }

  /// Runs the kernel once, checks it, times it. Returns true when it passes.
  bool run();

private:
  HostTensor random(size_t count, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    HostTensor t;
    t.bits.resize(count);
    t.values.resize(count);
    for (size_t i = 0; i < count; ++i) {
      t.bits[i] = store(dist(rng));
      t.values[i] = load(t.bits[i]);
    }
    return t;
  }
  uint16_t store(float v) const {
    return bf16 ? floatToBF16(v) : floatToHalf(v);
  }
  float load(uint16_t b) const {
    return bf16 ? bf16ToFloat(b) : halfToFloat(b);
  }

  std::unique_ptr<DeviceBuffer> upload(const HostTensor &t) {
    auto buffer = std::make_unique<DeviceBuffer>(t.bits.size() * 2);
    check(cuMemcpyHtoD(buffer->ptr, t.bits.data(), buffer->bytes),
          "cuMemcpyHtoD");
    return buffer;
  }
  std::vector<float> download(const DeviceBuffer &buffer) {
    std::vector<uint16_t> bits(buffer.bytes / 2);
    check(cuMemcpyDtoH(bits.data(), buffer.ptr, buffer.bytes), "cuMemcpyDtoH");
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i)
      values[i] = load(bits[i]);
    return values;
  }

  void launch(std::vector<CUdeviceptr> &pointers, CUstream stream = nullptr) {
    std::vector<void *> params;
    for (CUdeviceptr &p : pointers)
      params.push_back(&p);
    check(cuLaunchKernel(function, grid[0], grid[1], grid[2], block[0],
                         block[1], block[2], smem, stream, params.data(),
                         nullptr),
          "cuLaunchKernel");
  }

  bool compare(const std::vector<float> &out, const std::vector<double> &ref);
  /// `argSets` are the argument lists to cycle through (one unless W is
  /// rotated); `bytes` is what one launch must move, `label` names it.
  void time(std::vector<std::vector<CUdeviceptr>> &argSets, double bytes,
            const char *label, double extraBytes);

  const Spec &spec;
  const Options &options;
  CUfunction function;
  std::mt19937 rng;
  bool bf16 = false;
  unsigned grid[3], block[3], smem = 0;
};

bool Checker::compare(const std::vector<float> &out,
                      const std::vector<double> &ref) {
  double diff = 0, norm = 0, maxAbs = 0;
  size_t nans = 0, worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      ++nans;
      continue;
    }
    double d = out[i] - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
    if (std::fabs(d) > maxAbs) {
      maxAbs = std::fabs(d);
      worst = i;
    }
  }
  double rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  bool pass = nans == 0 && rel < options.tolerance;
  std::printf("%s %s: rel_err=%.3e max_abs_err=%.3e (at %zu: got %.6g, ref "
              "%.6g) nonfinite=%zu elements=%zu\n",
              pass ? "PASS" : "FAIL", spec.get("name").c_str(), rel, maxAbs,
              worst, out.empty() ? 0.0 : out[worst],
              ref.empty() ? 0.0 : ref[worst], nans, out.size());
  return pass;
}

void Checker::time(std::vector<std::vector<CUdeviceptr>> &argSets, double bytes,
                   const char *label, double extraBytes) {
  CUevent start, stop;
  check(cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  size_t next = 0;
  auto nextArgs = [&]() -> std::vector<CUdeviceptr> & {
    std::vector<CUdeviceptr> &args = argSets[next];
    next = (next + 1) % argSets.size();
    return args;
  };
  for (int i = 0; i < options.warmup; ++i)
    launch(nextArgs());
  check(cuCtxSynchronize(), "warm-up");

  std::vector<float> times;
  for (int i = 0; i < options.iters; ++i) {
    std::vector<CUdeviceptr> &args = nextArgs();
    check(cuEventRecord(start, nullptr), "cuEventRecord");
    launch(args);
    check(cuEventRecord(stop, nullptr), "cuEventRecord");
    check(cuEventSynchronize(stop), "cuEventSynchronize");
    float ms = 0;
    check(cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2] * 1e-3;

  check(cuEventRecord(start, nullptr), "cuEventRecord");
  for (int i = 0; i < options.iters; ++i)
    launch(nextArgs());
  check(cuEventRecord(stop, nullptr), "cuEventRecord");
  check(cuEventSynchronize(stop), "cuEventSynchronize");
  float totalMs = 0;
  check(cuEventElapsedTime(&totalMs, start, stop), "cuEventElapsedTime");
  double mean = totalMs * 1e-3 / options.iters;

  std::printf("  time %s: median %.2f us (%.1f GB/s %s), back-to-back mean "
              "%.2f us (%.1f GB/s); all buffers %.1f GB/s; %zu argument "
              "set(s) rotated, %d launches\n",
              spec.get("name").c_str(), median * 1e6, bytes / median * 1e-9,
              label, mean * 1e6, bytes / mean * 1e-9,
              (bytes + extraBytes) / median * 1e-9, argSets.size(),
              options.iters);
  cuEventDestroy(start);
  cuEventDestroy(stop);
}

bool Checker::run() {
  const std::string &family = spec.get("family");
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<double> ref;
  std::unique_ptr<DeviceBuffer> out;
  std::vector<CUdeviceptr> args;
  double movedBytes = 0;

  if (family == "rms_norm") {
    int64_t rows = spec.integer("rows"), hidden = spec.integer("hidden");
    double eps = spec.has("eps") ? spec.real("eps") : 1e-5;
    if (grid[0] != rows)
      die("rms_norm launches one block per row: grid " +
          std::to_string(grid[0]) + " != rows " + std::to_string(rows));
    HostTensor x = random(rows * hidden, -2.f, 2.f);
    HostTensor w = random(hidden, 0.5f, 1.5f);
    buffers.push_back(upload(x));
    buffers.push_back(upload(w));
    out = std::make_unique<DeviceBuffer>(rows * hidden * 2);
    ref.resize(rows * hidden);
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < hidden; ++i)
        sum += double(x.values[r * hidden + i]) * x.values[r * hidden + i];
      double rstd = 1.0 / std::sqrt(sum / hidden + eps);
      for (int64_t i = 0; i < hidden; ++i)
        ref[r * hidden + i] = x.values[r * hidden + i] * rstd * w.values[i];
    }
    movedBytes = 2.0 * (2 * rows * hidden + hidden);
  } else if (family == "gemv") {
    int64_t n = spec.integer("n"), k = spec.integer("k");
    HostTensor x = random(k, -1.f, 1.f);
    HostTensor w = random(n * k, -1.f, 1.f);
    buffers.push_back(upload(x));
    buffers.push_back(upload(w));
    out = std::make_unique<DeviceBuffer>(n * 2);
    ref.resize(n);
    for (int64_t row = 0; row < n; ++row) {
      double sum = 0;
      for (int64_t i = 0; i < k; ++i)
        sum += double(x.values[i]) * w.values[row * k + i];
      ref[row] = sum;
    }
    movedBytes = 2.0 * n * k;
  } else if (family == "silu_mul" || family == "residual_add") {
    int64_t size = spec.integer("size");
    bool silu = family == "silu_mul";
    HostTensor a = silu ? random(size, -8.f, 8.f) : random(size, -2.f, 2.f);
    HostTensor b = random(size, -2.f, 2.f);
    buffers.push_back(upload(a));
    buffers.push_back(upload(b));
    out = std::make_unique<DeviceBuffer>(size * 2);
    ref.resize(size);
    for (int64_t i = 0; i < size; ++i) {
      double av = a.values[i], bv = b.values[i];
      ref[i] = silu ? av / (1.0 + std::exp(-av)) * bv : av + bv;
    }
    movedBytes = 2.0 * 3 * size;
  } else {
    die("unknown family '" + family + "'");
  }
  for (auto &buffer : buffers)
    args.push_back(buffer->ptr);
  args.push_back(out->ptr);

  // Poison the output so that elements the kernel skips show up as NaN.
  check(cuMemsetD16(out->ptr, 0x7fff, out->bytes / 2), "cuMemsetD16");
  launch(args);
  check(cuCtxSynchronize(), ("running " + spec.get("name")).c_str());
  bool pass = compare(download(*out), ref);

  std::vector<std::vector<CUdeviceptr>> argSets = {args};
  std::vector<std::unique_ptr<DeviceBuffer>> copies;
  if (family == "gemv") {
    // Cycle through copies of W so that each launch reads W from HBM (H100's
    // L2 is 50 MB); x stays shared, as it would in a model.
    size_t wBytes = buffers[1]->bytes;
    size_t want = static_cast<size_t>(options.rotateMB * 1024 * 1024);
    size_t count = want > wBytes ? (want + wBytes - 1) / wBytes : 1;
    count = std::min<size_t>(count, 4096);
    for (size_t i = 1; i < count; ++i) {
      copies.push_back(std::make_unique<DeviceBuffer>(wBytes));
      check(cuMemcpyDtoD(copies.back()->ptr, buffers[1]->ptr, wBytes),
            "cuMemcpyDtoD");
      std::vector<CUdeviceptr> rotated = args;
      rotated[1] = copies.back()->ptr;
      argSets.push_back(rotated);
    }
    double n = spec.integer("n"), k = spec.integer("k");
    time(argSets, movedBytes, "of W", 2.0 * (n + k));
  } else {
    time(argSets, movedBytes, "read+write", 0);
  }
  return pass;
}

std::string readFile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    die("cannot read " + path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  Spec overrides;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::printf("usage: kernel_check [--iters=N] [--warmup=N] [--seed=N] "
                  "[--tolerance=X] [--rotate-mb=X] [--device=N] [--verbose=1] "
                  "[--<contract key>=value...] FILE.ptx|FILE.cubin...\n");
      return 0;
    }
    if (arg.rfind("--", 0) != 0) {
      files.push_back(arg);
      continue;
    }
    size_t eq = arg.find('=');
    if (eq == std::string::npos)
      die("expected --key=value, got " + arg);
    std::string key = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    if (key == "iters")
      options.iters = std::max(1, std::atoi(value.c_str()));
    else if (key == "warmup")
      options.warmup = std::max(0, std::atoi(value.c_str()));
    else if (key == "seed")
      options.seed =
          static_cast<unsigned>(std::strtoul(value.c_str(), nullptr, 10));
    else if (key == "tolerance")
      options.tolerance = std::strtod(value.c_str(), nullptr);
    else if (key == "rotate-mb")
      options.rotateMB = std::strtod(value.c_str(), nullptr);
    else if (key == "device")
      options.device = std::atoi(value.c_str());
    else if (key == "verbose")
      options.verbose = value != "0" && value != "false";
    else if (key == "spec")
      overrides.parse(value);
    else
      overrides.fields[key] = value;
  }
  if (files.empty())
    die("no PTX or cubin file given (--help for usage)");

  check(cuInit(0), "cuInit");
  CUdevice device;
  check(cuDeviceGet(&device, options.device), "cuDeviceGet");
  CUcontext context;
  check(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  char deviceName[256] = {0};
  cuDeviceGetName(deviceName, sizeof(deviceName), device);
  int driver = 0;
  cuDriverGetVersion(&driver);
  std::printf("device %d: %s, driver API %d\n", options.device, deviceName,
              driver);

  int failures = 0;
  for (const std::string &path : files) {
    std::string image = readFile(path);
    Spec spec;
    const std::string marker = "// kiln.kernel ";
    if (image.rfind(marker, 0) == 0)
      spec.parse(image.substr(marker.size(), image.find('\n') - marker.size()));
    for (const auto &[key, value] : overrides.fields)
      spec.fields[key] = value;

    char jitLog[8192] = {0}, jitErrors[8192] = {0};
    CUjit_option jitOptions[] = {
        CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
        CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        CU_JIT_LOG_VERBOSE};
    void *jitValues[] = {jitLog, reinterpret_cast<void *>(sizeof(jitLog)),
                         jitErrors, reinterpret_cast<void *>(sizeof(jitErrors)),
                         reinterpret_cast<void *>(options.verbose ? 1 : 0)};
    CUmodule module;
    CUresult loaded =
        cuModuleLoadDataEx(&module, image.c_str(), 5, jitOptions, jitValues);
    if (loaded != CUDA_SUCCESS) {
      std::fprintf(stderr, "%s\n", jitErrors);
      check(loaded, ("cuModuleLoadDataEx " + path).c_str());
    }
    if (options.verbose && jitLog[0])
      std::printf("  jit (%s): %s\n", path.c_str(), jitLog);
    CUfunction function;
    check(cuModuleGetFunction(&function, module, spec.get("name").c_str()),
          ("cuModuleGetFunction " + spec.get("name")).c_str());
    int registers = 0, localBytes = 0;
    cuFuncGetAttribute(&registers, CU_FUNC_ATTRIBUTE_NUM_REGS, function);
    cuFuncGetAttribute(&localBytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
                       function);
    std::printf("%s (%s): family=%s grid=%s block=%s registers=%d "
                "local_bytes=%d\n",
                spec.get("name").c_str(), path.c_str(),
                spec.get("family").c_str(), spec.get("grid").c_str(),
                spec.get("block").c_str(), registers, localBytes);
    Checker checker(spec, options, function);
    if (!checker.run())
      ++failures;
    cuModuleUnload(module);
  }
  std::printf("%zu checked, %d failed\n", files.size(), failures);
  cuDevicePrimaryCtxRelease(device);
  return failures ? 1 : 0;
}
