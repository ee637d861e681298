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
// (gemv: cycle through copies of W, paged_decode through copies of the
// cache, totalling this much so that they come from HBM rather than L2; 0
// disables), --ctx-min/--ctx-max (paged_decode's timed context lengths;
// default max_blocks * block_size / 4 .. max_blocks * block_size),
// --device=0, --verbose=1 (the driver's JIT log when it compiles PTX).
//
// qgemv (int8, int4, fp8; CUDA-core and tensor-core variants) and
// qgemv_multi (each of its weights) run on random codes, scales and zero
// points against the fp64 product of the decoded W.
//
// sgemv and smatmul (2:4 weights) run on random values with valid
// metadata and are compared with the dense product of the expanded W
// (smatmul on a ragged tile: rows past T must stay NaN).
//
// matmul (the dense GEMM, mma.sync or wgmma) runs x [rows, K] from the
// contract's x (override args= and grid= for several row tiles) over T =
// rows - 3 rows against the fp64 product, rows past T must stay NaN, and
// reports TFLOP/s; a grouped one (n=N_N1..) checks every member's y.
//
// A gemv with the add + norm prologue (add_norm=1: gemv, gemv_multi,
// gemv_gated) checks the stored sum and normalized row and each output
// against fp64 products with the rounded normalized row; with the rope +
// cache epilogue (rope=1) q and k against those products rounded and
// rotated, and the cache slot's keys and values against y1 and y2.
//
// embedding must copy rows bit for bit (and write zeros for ids outside
// [-V, V)), cast must round exactly as the host does; rotary_table and rope
// are compared with the tolerance (rotary_table at positions up to 1e6).
//
// The paged-KV families (kv_write, kv_copy, paged_decode, paged_prefill)
// allocate every argument with the size the contract's `args=` declares.
// kv_write and kv_copy must reproduce the expected cache bit for bit. The
// attention kernels run on caches that hold NaN everywhere but the
// sequences' cached positions, behind shuffled block tables, over ragged
// context lengths (1, around a block, not multiples of the block size, the
// maximum, around the sliding window, 0); decode's split-K scratch starts
// as NaN and its counters must be back at zero after every launch.
//
// Prints indented detail lines (each comparison, the timing: median of
// single launches timed by CUDA events, mean of back-to-back launches,
// bandwidth) and then one line per kernel:
//
//   PASS <name>: rel_err=.. time=..us (b2b ..us) .. GB/s <what>; regs=..
//
// repeated in a summary at the end. Exits non-zero on a failure of any
// kind.
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
#include <functional>
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
  /// An integer that may be 0 or negative (window=0, v_offset, ...).
  int64_t anyInteger(const std::string &key) const {
    const std::string &text = get(key);
    char *end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0')
      die("'" + key + "=" + text + "' is not an integer");
    return value;
  }
  int64_t integerOr(const std::string &key, int64_t fallback) const {
    return has(key) ? anyInteger(key) : fallback;
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
  /// paged_decode's timed run: context lengths drawn from [ctxMin, ctxMax]
  /// (0: a quarter of, and all of, max_blocks * block_size).
  int64_t ctxMin = 0;
  int64_t ctxMax = 0;
};

/// What the check of one kernel found: the summary line's fields.
struct Result {
  bool pass = true;
  double relErr = 0;
  /// Extra facts for the summary ("mismatches=0", the timed shape).
  std::string notes;
  double medianUs = 0, meanUs = 0;
  double medianGBs = 0;
  std::string bytesLabel;
};

/// One `name:type[AxB]:flags` entry of the contract's `args=` list.
struct ArgDesc {
  std::string name, type;
  size_t count = 1;
  bool out = false, scratch = false, zeroed = false;

  size_t elementBytes() const {
    if (type == "u8")
      return 1;
    if (type == "f16" || type == "bf16")
      return 2;
    if (type == "f32" || type == "i32")
      return 4;
    if (type == "i64")
      return 8;
    die("unknown argument type '" + type + "' of " + name);
  }
  size_t bytes() const { return count * elementBytes(); }
};

std::vector<ArgDesc> parseArgs(const std::string &text) {
  std::vector<ArgDesc> args;
  std::stringstream stream(text);
  std::string entry;
  while (std::getline(stream, entry, ',')) {
    ArgDesc arg;
    size_t colon = entry.find(':'), open = entry.find('['),
           close = entry.find(']');
    if (colon == std::string::npos || open == std::string::npos ||
        close == std::string::npos || open < colon || close < open)
      die("cannot read the argument '" + entry + "' of args=");
    arg.name = entry.substr(0, colon);
    arg.type = entry.substr(colon + 1, open - colon - 1);
    std::stringstream dims(entry.substr(open + 1, close - open - 1));
    std::string dim;
    while (std::getline(dims, dim, 'x'))
      arg.count *= static_cast<size_t>(std::strtoull(dim.c_str(), nullptr, 10));
    std::string flags = entry.substr(close + 1);
    arg.out = flags.find(":out") != std::string::npos;
    arg.zeroed = flags.find(":zeroed") != std::string::npos;
    arg.scratch = arg.zeroed || flags.find(":scratch") != std::string::npos;
    args.push_back(arg);
  }
  return args;
}

/// splitmix64: fast enough to fill caches of hundreds of megabytes.
struct FastRng {
  uint64_t state;
  explicit FastRng(uint64_t seed) : state(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(next() >> 40) * 0x1p-24f;
  }
  /// Uniform in [0, n).
  int64_t below(int64_t n) {
    return static_cast<int64_t>(next() % uint64_t(n));
  }
  template <typename T> void shuffle(std::vector<T> &v) {
    for (size_t i = v.size(); i > 1; --i)
      std::swap(v[i - 1], v[below(static_cast<int64_t>(i))]);
  }
};

/// A paged cache as the contract describes it (see PagedCacheLayout.h):
/// element (layer, block, head, token, d) of K or V.
struct CacheGeom {
  bool separate = false;
  int64_t numBlocks = 0, blockStride = 0, headStride = 0, tokenStride = 0;
  int64_t vOffset = 0, numLayers = 1, layerStride = 0;
  int64_t kvHeads = 0, headDim = 0, blockSize = 0;
  int64_t elements = 0; // per buffer

  explicit CacheGeom(const Spec &spec) {
    const std::string &kind = spec.get("cache");
    if (kind != "combined" && kind != "separate")
      die("unknown cache layout '" + kind + "'");
    separate = kind == "separate";
    numBlocks = spec.integer("num_blocks");
    blockStride = spec.integer("block_stride");
    headStride = spec.integer("head_stride");
    tokenStride = spec.integer("token_stride");
    vOffset = separate ? 0 : spec.integer("v_offset");
    numLayers = spec.integerOr("num_layers", 1);
    layerStride = spec.integerOr("layer_stride", 0);
    kvHeads = spec.integer("kv_heads");
    headDim = spec.integer("head_dim");
    blockSize = spec.integer("block_size");
    int64_t perLayer = (numBlocks - 1) * blockStride +
                       (kvHeads - 1) * headStride +
                       (blockSize - 1) * tokenStride + headDim + vOffset;
    elements = (numLayers - 1) * layerStride + perLayer;
  }
  size_t index(int64_t layer, int64_t block, int64_t head, int64_t token,
               int64_t d, bool isV) const {
    return static_cast<size_t>(layer * layerStride + block * blockStride +
                               head * headStride + token * tokenStride + d +
                               (isV && !separate ? vOffset : 0));
  }
  int buffer(bool isV) const { return separate && isV ? 1 : 0; }
  int buffers() const { return separate ? 2 : 1; }
};

/// Bits of a NaN in both f16 and bf16.
constexpr uint16_t kNaNBits = 0x7fff;

class Checker {
public:
  Checker(const Spec &spec, const Options &options, CUfunction function)
      : spec(spec), options(options), function(function), rng(options.seed),
        fast(options.seed) {
    const std::string &dtype = spec.has("dtype") ? spec.get("dtype") : "f16";
    if (dtype == "f16")
      bf16 = false;
    else if (dtype == "bf16")
      bf16 = true;
    else if (dtype == "f32" && spec.get("family") == "rotary_table")
      bf16 = false;
    else
      die("unsupported dtype '" + dtype + "'");
    spec.dims("grid", grid);
    spec.dims("block", block);
    smem = spec.has("smem")
               ? static_cast<unsigned>(std::stoul(spec.get("smem")))
               : 0;
  }

  /// Runs the kernel, checks it, times it.
  Result run();

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
  uint16_t randomBits(float lo, float hi) {
    return store(fast.uniform(lo, hi));
  }

  std::unique_ptr<DeviceBuffer> upload(const HostTensor &t) {
    auto buffer = std::make_unique<DeviceBuffer>(t.bits.size() * 2);
    check(cuMemcpyHtoD(buffer->ptr, t.bits.data(), buffer->bytes),
          "cuMemcpyHtoD");
    return buffer;
  }
  template <typename T>
  void put(const DeviceBuffer &buffer, const std::vector<T> &host) {
    if (host.size() * sizeof(T) != buffer.bytes)
      die("internal: host data of " + std::to_string(host.size() * sizeof(T)) +
          " bytes for a buffer of " + std::to_string(buffer.bytes));
    check(cuMemcpyHtoD(buffer.ptr, host.data(), buffer.bytes), "cuMemcpyHtoD");
  }
  template <typename T> std::vector<T> get(const DeviceBuffer &buffer) {
    std::vector<T> host(buffer.bytes / sizeof(T));
    check(cuMemcpyDtoH(host.data(), buffer.ptr, buffer.bytes), "cuMemcpyDtoH");
    return host;
  }
  std::vector<float> download(const DeviceBuffer &buffer) {
    std::vector<uint16_t> bits = get<uint16_t>(buffer);
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
  void launchOnce(std::vector<CUdeviceptr> &pointers) {
    launch(pointers);
    check(cuCtxSynchronize(), ("running " + spec.get("name")).c_str());
  }

  /// Relative error of `out` against `ref`; prints a detail line and
  /// returns false (and counts) on a non-finite value or too large an error.
  bool compare(const std::vector<float> &out, const std::vector<double> &ref,
               const std::string &what, double *relErr);
  /// Bitwise comparison of a cache buffer with its expected contents.
  bool compareBits(const std::vector<uint16_t> &out,
                   const std::vector<uint16_t> &ref, const std::string &what,
                   double *relErr);
  /// `argSets` are the argument lists to cycle through (several when inputs
  /// are rotated so that they come from HBM); `bytes` is what one launch
  /// must move, `label` names it.
  void time(std::vector<std::vector<CUdeviceptr>> &argSets, double bytes,
            const char *label, double extraBytes);

  /// The contract's arguments, each allocated with its declared size.
  struct Buffers {
    std::vector<ArgDesc> descs;
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    DeviceBuffer &operator[](const std::string &name) {
      for (size_t i = 0; i < descs.size(); ++i)
        if (descs[i].name == name)
          return *buffers[i];
      die("the contract has no argument '" + name + "'");
    }
    bool has(const std::string &name) const {
      for (const ArgDesc &d : descs)
        if (d.name == name)
          return true;
      return false;
    }
    std::vector<CUdeviceptr> pointers() const {
      std::vector<CUdeviceptr> ptrs;
      for (const auto &b : buffers)
        ptrs.push_back(b->ptr);
      return ptrs;
    }
  };
  Buffers allocateArgs();
  /// Argument sets whose cache buffers are copies (of `bytes` together),
  /// enough to span --rotate-mb so that the cache comes from HBM.
  std::vector<std::vector<CUdeviceptr>>
  rotateCaches(Buffers &args, std::vector<std::unique_ptr<DeviceBuffer>> &keep);

  Result runKVWrite();
  Result runKVCopy();
  Result runPagedDecode();
  Result runPagedPrefill();
  Result runClassic();
  Result runDecodeStep();
  /// Exact (bitwise) comparison of fp32 views of an output.
  bool compareExact(const std::vector<float> &out,
                    const std::vector<float> &ref, const std::string &what);

  const Spec &spec;
  const Options &options;
  CUfunction function;
  std::mt19937 rng;
  FastRng fast;
  bool bf16 = false;
  unsigned grid[3], block[3], smem = 0;
  Result result;
};

bool Checker::compare(const std::vector<float> &out,
                      const std::vector<double> &ref, const std::string &what,
                      double *relErrOut) {
  double diff = 0, norm = 0, maxAbs = 0;
  size_t nans = 0, worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      if (nans == 0)
        worst = i;
      ++nans;
      continue;
    }
    double d = out[i] - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
    if (std::fabs(d) > maxAbs && nans == 0) {
      maxAbs = std::fabs(d);
      worst = i;
    }
  }
  double rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  bool pass = nans == 0 && rel < options.tolerance;
  std::printf("  %s %s: rel_err=%.3e max_abs_err=%.3e (at %zu: got %.6g, ref "
              "%.6g) nonfinite=%zu elements=%zu\n",
              pass ? "ok" : "BAD", what.c_str(), rel, maxAbs, worst,
              out.empty() ? 0.0 : out[worst], ref.empty() ? 0.0 : ref[worst],
              nans, out.size());
  if (relErrOut)
    *relErrOut = std::max(*relErrOut, nans ? INFINITY : rel);
  if (!pass)
    result.pass = false;
  return pass;
}

bool Checker::compareBits(const std::vector<uint16_t> &out,
                          const std::vector<uint16_t> &ref,
                          const std::string &what, double *relErrOut) {
  size_t mismatches = 0, first = 0;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    double r = load(ref[i]), o = load(out[i]);
    if (std::isfinite(r))
      norm += r * r;
    if (out[i] != ref[i]) {
      if (mismatches++ == 0)
        first = i;
      diff +=
          std::isfinite(o) && std::isfinite(r) ? (o - r) * (o - r) : INFINITY;
    }
  }
  double rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  bool pass = mismatches == 0;
  std::printf("  %s %s: mismatches=%zu of %zu elements, rel_err=%.3e",
              pass ? "ok" : "BAD", what.c_str(), mismatches, out.size(), rel);
  if (!pass)
    std::printf(" (first at %zu: got 0x%04x, expected 0x%04x)", first,
                out[first], ref[first]);
  std::printf("\n");
  if (relErrOut)
    *relErrOut = std::max(*relErrOut, rel);
  result.notes += (result.notes.empty() ? "" : " ") + what +
                  " mismatches=" + std::to_string(mismatches);
  if (!pass)
    result.pass = false;
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

  std::printf("  time: median %.2f us (%.1f GB/s %s), back-to-back mean "
              "%.2f us (%.1f GB/s); all buffers %.1f GB/s; %zu argument "
              "set(s) rotated, %d launches\n",
              median * 1e6, bytes / median * 1e-9, label, mean * 1e6,
              bytes / mean * 1e-9, (bytes + extraBytes) / median * 1e-9,
              argSets.size(), options.iters);
  result.medianUs = median * 1e6;
  result.meanUs = mean * 1e6;
  result.medianGBs = bytes / median * 1e-9;
  result.bytesLabel = label;
  cuEventDestroy(start);
  cuEventDestroy(stop);
}

Checker::Buffers Checker::allocateArgs() {
  Buffers args;
  args.descs = parseArgs(spec.get("args"));
  for (const ArgDesc &desc : args.descs) {
    args.buffers.push_back(std::make_unique<DeviceBuffer>(desc.bytes()));
    // Scratch starts as NaN (the kernel must write before it reads),
    // counters at zero (the contract's :zeroed).
    if (desc.zeroed)
      check(cuMemsetD8(args.buffers.back()->ptr, 0, desc.bytes()),
            "cuMemsetD8");
    else if (desc.scratch)
      check(
          cuMemsetD32(args.buffers.back()->ptr, 0x7fffffffu, desc.bytes() / 4),
          "cuMemsetD32");
  }
  return args;
}

std::vector<std::vector<CUdeviceptr>>
Checker::rotateCaches(Buffers &args,
                      std::vector<std::unique_ptr<DeviceBuffer>> &keep) {
  std::vector<std::vector<CUdeviceptr>> sets = {args.pointers()};
  std::vector<size_t> caches;
  size_t bytes = 0;
  for (size_t i = 0; i < args.descs.size(); ++i)
    if (args.descs[i].name.find("cache") != std::string::npos) {
      caches.push_back(i);
      bytes += args.descs[i].bytes();
    }
  size_t want = static_cast<size_t>(options.rotateMB * 1024 * 1024);
  size_t count = bytes && want > bytes ? (want + bytes - 1) / bytes : 1;
  count = std::min<size_t>(count, 1024);
  for (size_t c = 1; c < count; ++c) {
    std::vector<CUdeviceptr> set = sets[0];
    for (size_t i : caches) {
      keep.push_back(std::make_unique<DeviceBuffer>(args.descs[i].bytes()));
      check(cuMemcpyDtoD(keep.back()->ptr, args.buffers[i]->ptr,
                         args.descs[i].bytes()),
            "cuMemcpyDtoD");
      set[i] = keep.back()->ptr;
    }
    sets.push_back(set);
  }
  return sets;
}

//===----------------------------------------------------------------------===//
// kv_write
//===----------------------------------------------------------------------===//

Result Checker::runKVWrite() {
  CacheGeom geom(spec);
  int64_t tokens = spec.integer("tokens");
  int64_t hkv = geom.kvHeads, dim = geom.headDim, bs = geom.blockSize;
  Buffers args = allocateArgs();
  int64_t slotsTotal = geom.numBlocks * bs;
  if (tokens > slotsTotal)
    die("kv_write: " + std::to_string(tokens) + " tokens need more than the " +
        std::to_string(geom.numBlocks) + " blocks of the cache");
  // Distinct random slots; with 4 or more tokens every fifth is skipped
  // (slot -1).
  std::vector<int64_t> slots;
  {
    std::vector<int64_t> all;
    if (slotsTotal <= (int64_t(1) << 24)) {
      all.resize(slotsTotal);
      for (int64_t i = 0; i < slotsTotal; ++i)
        all[i] = i;
      fast.shuffle(all);
      all.resize(tokens);
    } else {
      std::map<int64_t, bool> used;
      while (static_cast<int64_t>(all.size()) < tokens) {
        int64_t s = fast.below(slotsTotal);
        if (!used[s]) {
          used[s] = true;
          all.push_back(s);
        }
      }
    }
    slots = all;
    if (tokens >= 4)
      for (int64_t t = 3; t < tokens; t += 5)
        slots[t] = -1;
  }
  std::vector<uint16_t> key(tokens * hkv * dim), value(key.size());
  for (auto &k : key)
    k = randomBits(-2, 2);
  for (auto &v : value)
    v = randomBits(-2, 2);
  std::vector<std::vector<uint16_t>> cache(
      geom.buffers(), std::vector<uint16_t>(geom.elements));
  for (auto &buffer : cache)
    for (auto &e : buffer)
      e = randomBits(-1, 1);
  std::vector<std::vector<uint16_t>> ref = cache;
  int64_t written = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] < 0)
      continue;
    ++written;
    int64_t blockId = slots[t] / bs, offset = slots[t] % bs;
    for (int64_t h = 0; h < hkv; ++h)
      for (int64_t d = 0; d < dim; ++d) {
        size_t src = (t * hkv + h) * dim + d;
        ref[geom.buffer(false)][geom.index(0, blockId, h, offset, d, false)] =
            key[src];
        ref[geom.buffer(true)][geom.index(0, blockId, h, offset, d, true)] =
            value[src];
      }
  }
  put(args["key"], key);
  put(args["value"], value);
  put(args["slot_mapping"], slots);
  const char *names[2] = {geom.separate ? "k_cache" : "cache", "v_cache"};
  for (int i = 0; i < geom.buffers(); ++i)
    put(args[names[i]], cache[i]);
  std::vector<CUdeviceptr> pointers = args.pointers();
  launchOnce(pointers);
  for (int i = 0; i < geom.buffers(); ++i)
    compareBits(get<uint16_t>(args[names[i]]), ref[i], names[i],
                &result.relErr);
  result.notes += " tokens=" + std::to_string(tokens) +
                  " skipped=" + std::to_string(tokens - written);
  std::vector<std::vector<CUdeviceptr>> sets = {pointers};
  time(sets, 2.0 * 2 * written * hkv * dim * 2, "K/V read+write", 8.0 * tokens);
  return result;
}

//===----------------------------------------------------------------------===//
// kv_copy
//===----------------------------------------------------------------------===//

Result Checker::runKVCopy() {
  CacheGeom geom(spec);
  int64_t copies = spec.integer("copies");
  int64_t hkv = geom.kvHeads, dim = geom.headDim, bs = geom.blockSize;
  if (geom.numBlocks < 2 * copies)
    die("kv_copy: " + std::to_string(copies) +
        " copies need 2 * copies "
        "distinct blocks, the cache has " +
        std::to_string(geom.numBlocks));
  Buffers args = allocateArgs();
  std::vector<int32_t> perm(geom.numBlocks);
  for (int64_t i = 0; i < geom.numBlocks; ++i)
    perm[i] = static_cast<int32_t>(i);
  fast.shuffle(perm);
  // Token counts: full, partial, one, skipped (0 and -1), then random.
  std::vector<int32_t> special = {int32_t(std::max<int64_t>(1, bs - 1)),
                                  int32_t(bs),
                                  1,
                                  0,
                                  int32_t(bs / 2 + 1),
                                  -1};
  std::vector<int32_t> list(copies * 3);
  int64_t rows = 0;
  for (int64_t c = 0; c < copies; ++c) {
    int32_t n = c < static_cast<int64_t>(special.size())
                    ? special[c]
                    : static_cast<int32_t>(1 + fast.below(bs));
    list[c * 3 + 0] = perm[copies + c]; // src
    list[c * 3 + 1] = perm[c];          // dst
    list[c * 3 + 2] = n;
    rows += std::max<int64_t>(0, std::min<int64_t>(n, bs));
  }
  std::vector<std::vector<uint16_t>> cache(
      geom.buffers(), std::vector<uint16_t>(geom.elements));
  for (auto &buffer : cache)
    for (auto &e : buffer)
      e = randomBits(-1, 1);
  std::vector<std::vector<uint16_t>> ref = cache;
  for (int64_t c = 0; c < copies; ++c) {
    int64_t n = std::min<int64_t>(list[c * 3 + 2], bs);
    for (int64_t l = 0; l < geom.numLayers; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int64_t h = 0; h < hkv; ++h)
          for (int64_t t = 0; t < n; ++t)
            for (int64_t d = 0; d < dim; ++d)
              ref[geom.buffer(kv)]
                 [geom.index(l, list[c * 3 + 1], h, t, d, kv)] =
                     cache[geom.buffer(kv)]
                          [geom.index(l, list[c * 3 + 0], h, t, d, kv)];
  }
  put(args["copies"], list);
  const char *names[2] = {geom.separate ? "k_cache" : "cache", "v_cache"};
  for (int i = 0; i < geom.buffers(); ++i)
    put(args[names[i]], cache[i]);
  std::vector<CUdeviceptr> pointers = args.pointers();
  launchOnce(pointers);
  for (int i = 0; i < geom.buffers(); ++i)
    compareBits(get<uint16_t>(args[names[i]]), ref[i], names[i],
                &result.relErr);
  result.notes += " copies=" + std::to_string(copies) +
                  " layers=" + std::to_string(geom.numLayers);
  std::vector<std::vector<CUdeviceptr>> sets = {pointers};
  time(sets, 2.0 * 2 * rows * geom.numLayers * hkv * dim * 2, "K/V read+write",
       12.0 * copies);
  return result;
}

//===----------------------------------------------------------------------===//
// Paged attention
//===----------------------------------------------------------------------===//

namespace {
/// Shapes and attention parameters of a paged_decode/prefill contract.
struct AttentionShape {
  int64_t heads, kvHeads, dim, bs, maxBlocks;
  double scale, softcap;
  int64_t window;
  explicit AttentionShape(const Spec &spec)
      : heads(spec.integer("heads")), kvHeads(spec.integer("kv_heads")),
        dim(spec.integer("head_dim")), bs(spec.integer("block_size")),
        maxBlocks(spec.integer("max_blocks")), scale(spec.real("scale")),
        softcap(spec.has("softcap") ? spec.real("softcap") : 0),
        window(spec.integerOr("window", 0)) {}
  int64_t maxContext() const { return maxBlocks * bs; }
};

/// Host copy of a paged cache and block tables for one trial.
struct PagedState {
  std::vector<std::vector<uint16_t>> cache; // per buffer
  std::vector<int32_t> tables;              // [seqs, maxBlocks]
};
} // namespace

/// Fills `state` for sequences of the given context lengths: shuffled
/// distinct block ids (padding entries 0, the runtime's kPaddingBlockId),
/// random K and V at every cached position and NaN everywhere else, so that
/// a kernel reading past a sequence's context produces NaN.
static void buildPagedState(PagedState &state, const CacheGeom &geom,
                            const AttentionShape &shape,
                            const std::vector<int32_t> &ctx, FastRng &fast,
                            const std::function<uint16_t()> &value) {
  int64_t seqs = static_cast<int64_t>(ctx.size());
  state.cache.assign(geom.buffers(),
                     std::vector<uint16_t>(geom.elements, kNaNBits));
  state.tables.assign(seqs * shape.maxBlocks, 0);
  std::vector<int32_t> perm(geom.numBlocks);
  for (int64_t i = 0; i < geom.numBlocks; ++i)
    perm[i] = static_cast<int32_t>(i);
  fast.shuffle(perm);
  int64_t next = 0;
  for (int64_t s = 0; s < seqs; ++s) {
    int64_t blocks = (ctx[s] + shape.bs - 1) / shape.bs;
    if (next + blocks > geom.numBlocks)
      die("the contexts need more than the cache's " +
          std::to_string(geom.numBlocks) +
          " blocks (generate with a larger --num-blocks)");
    for (int64_t j = 0; j < blocks; ++j)
      state.tables[s * shape.maxBlocks + j] = perm[next++];
    for (int64_t pos = 0; pos < ctx[s]; ++pos) {
      int64_t blockId = state.tables[s * shape.maxBlocks + pos / shape.bs];
      for (int kv = 0; kv < 2; ++kv)
        for (int64_t h = 0; h < shape.kvHeads; ++h)
          for (int64_t d = 0; d < shape.dim; ++d)
            state.cache[geom.buffer(kv)]
                       [geom.index(0, blockId, h, pos % shape.bs, d, kv)] =
                value();
    }
  }
}

/// out[h, :] of one query row over positions [begin, end) of sequence `s`.
template <typename Load>
static void referenceRow(const AttentionShape &shape, const CacheGeom &geom,
                         const PagedState &state, int64_t s, int64_t begin,
                         int64_t end, const float *q, double *out,
                         const Load &load) {
  int64_t group = shape.heads / shape.kvHeads;
  std::vector<double> scores;
  for (int64_t h = 0; h < shape.heads; ++h) {
    int64_t kvh = h / group;
    double *o = out + h * shape.dim;
    std::fill(o, o + shape.dim, 0.0);
    if (end <= begin)
      continue;
    scores.assign(end - begin, 0.0);
    double top = -INFINITY;
    for (int64_t j = begin; j < end; ++j) {
      int64_t blockId = state.tables[s * shape.maxBlocks + j / shape.bs];
      size_t base = geom.index(0, blockId, kvh, j % shape.bs, 0, false);
      const uint16_t *k = &state.cache[geom.buffer(false)][base];
      double dot = 0;
      for (int64_t d = 0; d < shape.dim; ++d)
        dot += double(q[h * shape.dim + d]) * load(k[d]);
      double sc = dot * shape.scale;
      if (shape.softcap)
        sc = shape.softcap * std::tanh(sc / shape.softcap);
      scores[j - begin] = sc;
      top = std::max(top, sc);
    }
    double sum = 0;
    for (int64_t j = begin; j < end; ++j) {
      double p = std::exp(scores[j - begin] - top);
      sum += p;
      int64_t blockId = state.tables[s * shape.maxBlocks + j / shape.bs];
      size_t base = geom.index(0, blockId, kvh, j % shape.bs, 0, true);
      const uint16_t *v = &state.cache[geom.buffer(true)][base];
      for (int64_t d = 0; d < shape.dim; ++d)
        o[d] += p * load(v[d]);
    }
    for (int64_t d = 0; d < shape.dim; ++d)
      o[d] /= sum;
  }
}

Result Checker::runPagedDecode() {
  CacheGeom geom(spec);
  AttentionShape shape(spec);
  int64_t seqs = spec.integer("seqs");
  int64_t maxCtx = shape.maxContext();
  Buffers args = allocateArgs();
  const char *names[2] = {geom.separate ? "k_cache" : "cache", "v_cache"};
  auto loadBits = [&](uint16_t bits) { return double(load(bits)); };
  auto value = [&] { return randomBits(-1, 1); };

  // One trial: upload, launch, compare with the fp64 reference.
  PagedState state;
  std::vector<float> qValues;
  std::vector<double> ref;
  auto trial = [&](const std::vector<int32_t> &ctx, const std::string &what) {
    buildPagedState(state, geom, shape, ctx, fast, value);
    std::vector<uint16_t> q(seqs * shape.heads * shape.dim);
    qValues.resize(q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = randomBits(-1, 1);
      qValues[i] = load(q[i]);
    }
    put(args["q"], q);
    for (int i = 0; i < geom.buffers(); ++i)
      put(args[names[i]], state.cache[i]);
    put(args["block_tables"], state.tables);
    put(args["context_lens"], ctx);
    check(cuMemsetD16(args["out"].ptr, kNaNBits, args["out"].bytes / 2),
          "cuMemsetD16");
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    ref.assign(q.size(), 0.0);
    for (int64_t s = 0; s < seqs; ++s) {
      int64_t begin =
          shape.window ? std::max<int64_t>(0, ctx[s] - shape.window) : 0;
      referenceRow(shape, geom, state, s, begin, ctx[s],
                   &qValues[s * shape.heads * shape.dim],
                   &ref[s * shape.heads * shape.dim], loadBits);
    }
    compare(download(args["out"]), ref, what, &result.relErr);
  };

  // Ragged lengths: 1, around a block, several blocks, not multiples of
  // the block size, the maximum, around the window, and 0 (a padded row,
  // zero output), spread over the sequences of as many launches as needed.
  int64_t bs = shape.bs;
  std::vector<int64_t> special = {
      1,          bs - 1, bs,         bs + 1,         2 * bs + 3,
      5 * bs + 7, maxCtx, maxCtx - 1, maxCtx / 2 + 5, 0};
  if (shape.window)
    for (int64_t w : {shape.window - 1, shape.window, shape.window + 1,
                      shape.window + bs + 3})
      special.push_back(w);
  std::vector<int32_t> lengths;
  for (int64_t len : special)
    if (len >= 0 && len <= maxCtx &&
        std::find(lengths.begin(), lengths.end(), len) == lengths.end())
      lengths.push_back(static_cast<int32_t>(len));
  int64_t trials = (static_cast<int64_t>(lengths.size()) + seqs - 1) / seqs;
  for (int64_t t = 0; t < trials; ++t) {
    std::vector<int32_t> ctx(seqs);
    std::string what = "ragged ctx {";
    for (int64_t s = 0; s < seqs; ++s) {
      size_t k = t * seqs + s;
      ctx[s] = k < lengths.size()
                   ? lengths[k]
                   : static_cast<int32_t>(1 + fast.below(maxCtx));
      if (s < 12)
        what += (s ? "," : "") + std::to_string(ctx[s]);
    }
    what += seqs > 12 ? ",...}" : "}";
    trial(ctx, what);
  }

  // The timed shape: lengths in [ctxMin, ctxMax], checked as well.
  int64_t hi = options.ctxMax ? std::min(options.ctxMax, maxCtx) : maxCtx;
  int64_t lo = options.ctxMin ? std::min(options.ctxMin, hi)
                              : std::max<int64_t>(1, hi / 4);
  std::vector<int32_t> ctx(seqs);
  double kvBytes = 0;
  for (int64_t s = 0; s < seqs; ++s) {
    ctx[s] = static_cast<int32_t>(lo + fast.below(hi - lo + 1));
    int64_t read =
        shape.window ? std::min<int64_t>(ctx[s], shape.window) : ctx[s];
    kvBytes += 2.0 * read * shape.kvHeads * shape.dim * 2;
  }
  trial(ctx, "timed ctx " + std::to_string(lo) + ".." + std::to_string(hi));
  char notes[128];
  std::snprintf(notes, sizeof(notes), "N=%lld ctx=%lld..%lld KV=%.1fMB",
                (long long)seqs, (long long)lo, (long long)hi, kvBytes / 1e6);
  result.notes = notes;

  std::vector<std::unique_ptr<DeviceBuffer>> keep;
  std::vector<std::vector<CUdeviceptr>> sets = rotateCaches(args, keep);
  time(sets, kvBytes, "of KV read",
       4.0 * seqs * shape.heads * shape.dim + 4.0 * seqs * shape.maxBlocks);
  // After every launch: still the reference (the split-K counters and
  // partials are reused), and the counters back at zero.
  compare(download(args["out"]), ref, "after timing", &result.relErr);
  if (args.has("counters")) {
    std::vector<int32_t> counters = get<int32_t>(args["counters"]);
    size_t nonzero = 0;
    for (int32_t c : counters)
      nonzero += c != 0;
    std::printf("  %s split-K counters: %zu of %zu not reset to zero\n",
                nonzero ? "BAD" : "ok", nonzero, counters.size());
    if (nonzero)
      result.pass = false;
  }
  return result;
}

Result Checker::runPagedPrefill() {
  CacheGeom geom(spec);
  AttentionShape shape(spec);
  int64_t tokens = spec.integer("tokens"), seqs = spec.integer("seqs");
  int64_t maxCtx = shape.maxContext();
  if (tokens - (seqs - 1) > maxCtx)
    die("paged_prefill: " + std::to_string(tokens) + " tokens over " +
        std::to_string(seqs) +
        " sequences can exceed max_blocks * "
        "block_size = " +
        std::to_string(maxCtx));
  Buffers args = allocateArgs();
  const char *names[2] = {geom.separate ? "k_cache" : "cache", "v_cache"};
  auto loadBits = [&](uint16_t bits) { return double(load(bits)); };
  auto value = [&] { return randomBits(-1, 1); };

  PagedState state;
  double kvRowBytes = 0;
  auto trial = [&](int which) {
    // Query lengths: every sequence at least one token; the first trial
    // gives the first sequence half of the rest (a long prompt chunk).
    std::vector<int32_t> qlen(seqs, 1);
    int64_t extra = tokens - seqs;
    if (which == 0 && seqs > 1) {
      qlen[0] += static_cast<int32_t>(extra / 2);
      extra -= extra / 2;
    }
    for (int64_t i = 0; i < extra; ++i)
      ++qlen[fast.below(seqs)];
    // Cached context before the step: none (a fresh prompt) for the first
    // sequence of the first trial, one short of a block for the second,
    // random otherwise; capped so that the context fits the block table.
    std::vector<int32_t> ctx(seqs), starts(seqs + 1, 0);
    for (int64_t s = 0; s < seqs; ++s) {
      int64_t room = maxCtx - qlen[s];
      int64_t prior = room > 0 ? fast.below(room + 1) : 0;
      if (which == 0 && s == 0)
        prior = 0;
      if (which == 0 && s == 1)
        prior = std::min<int64_t>(room, shape.bs - 1);
      ctx[s] = static_cast<int32_t>(prior + qlen[s]);
      starts[s + 1] = starts[s] + qlen[s];
    }
    buildPagedState(state, geom, shape, ctx, fast, value);
    std::vector<uint16_t> q(tokens * shape.heads * shape.dim);
    std::vector<float> qValues(q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = randomBits(-1, 1);
      qValues[i] = load(q[i]);
    }
    put(args["q"], q);
    for (int i = 0; i < geom.buffers(); ++i)
      put(args[names[i]], state.cache[i]);
    put(args["block_tables"], state.tables);
    put(args["context_lens"], ctx);
    put(args["query_start_loc"], starts);
    check(cuMemsetD16(args["out"].ptr, kNaNBits, args["out"].bytes / 2),
          "cuMemsetD16");
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    std::vector<double> ref(q.size(), 0.0);
    kvRowBytes = 0;
    for (int64_t s = 0; s < seqs; ++s)
      for (int64_t i = 0; i < qlen[s]; ++i) {
        int64_t t = starts[s] + i;
        int64_t end = ctx[s] - qlen[s] + i + 1;
        int64_t begin =
            shape.window ? std::max<int64_t>(0, end - shape.window) : 0;
        kvRowBytes += 2.0 * (end - begin) * shape.kvHeads * shape.dim * 2;
        referenceRow(shape, geom, state, s, begin, end,
                     &qValues[t * shape.heads * shape.dim],
                     &ref[t * shape.heads * shape.dim], loadBits);
      }
    std::string what = "trial " + std::to_string(which) + " q_lens {";
    for (int64_t s = 0; s < std::min<int64_t>(seqs, 8); ++s)
      what += (s ? "," : "") + std::to_string(qlen[s]) + "/" +
              std::to_string(ctx[s]);
    what += seqs > 8 ? ",...} (q_len/ctx)" : "} (q_len/ctx)";
    compare(download(args["out"]), ref, what, &result.relErr);
  };
  for (int which = 0; which < 3; ++which)
    trial(which);
  result.notes = "T=" + std::to_string(tokens) + " S=" + std::to_string(seqs);
  std::vector<std::vector<CUdeviceptr>> sets = {args.pointers()};
  // Every CTA streams its own keys: the bytes its loads request (most hit
  // L2), not HBM traffic.
  time(sets, kvRowBytes, "of K/V rows loaded, mostly L2",
       4.0 * tokens * shape.heads * shape.dim);
  return result;
}

//===----------------------------------------------------------------------===//
// RMSNorm, GEMV, elementwise
//===----------------------------------------------------------------------===//

Result Checker::runClassic() {
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
  check(cuMemsetD16(out->ptr, kNaNBits, out->bytes / 2), "cuMemsetD16");
  launchOnce(args);
  compare(download(*out), ref, "output", &result.relErr);

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
  return result;
}

//===----------------------------------------------------------------------===//
// Embedding, rotary table, rope, cast (the decode steps around attention)
//===----------------------------------------------------------------------===//

/// `value` rounded to `type` (f32, f16 or bf16).
float roundTo(const std::string &type, float value) {
  if (type == "f16")
    return halfToFloat(floatToHalf(value));
  if (type == "bf16")
    return bf16ToFloat(floatToBF16(value));
  return value;
}

/// The row counts a multi-weight kernel's `n` lists ("4096_1024_1024").
std::vector<int64_t> memberRows(const std::string &n) {
  std::vector<int64_t> rows;
  std::stringstream list(n);
  for (std::string part; std::getline(list, part, '_');)
    rows.push_back(std::stoll(part));
  return rows;
}

/// One row of the residual add + RMSNorm as add_rms_norm computes it:
/// sum = x + residual rounded to `type`, normed = sum * rsqrt(mean(sum^2) +
/// eps) * gamma in fp64; `sum` and `normed` receive k values each.
void addNormReference(const std::string &type, const float *x,
                      const float *residual, const std::vector<float> &gamma,
                      int64_t k, double eps, double *sum, double *normed) {
  double squares = 0;
  for (int64_t i = 0; i < k; ++i) {
    sum[i] = roundTo(type, x[i] + residual[i]);
    squares += sum[i] * sum[i];
  }
  double rstd = 1.0 / std::sqrt(squares / double(k) + eps);
  for (int64_t i = 0; i < k; ++i)
    normed[i] = sum[i] * rstd * gamma[i];
}

bool Checker::compareExact(const std::vector<float> &out,
                           const std::vector<float> &ref,
                           const std::string &what) {
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (std::memcmp(&out[i], &ref[i], sizeof(float)) != 0)
      if (mismatches++ == 0)
        first = i;
  bool pass = mismatches == 0;
  std::printf("  %s %s: mismatches=%zu of %zu elements", pass ? "ok" : "BAD",
              what.c_str(), mismatches, out.size());
  if (!pass)
    std::printf(" (first at %zu: got %.9g, expected %.9g)", first, out[first],
                ref[first]);
  std::printf("\n");
  if (!pass) {
    result.pass = false;
    result.relErr = INFINITY;
  }
  result.notes = "mismatches=" + std::to_string(mismatches);
  return pass;
}

Result Checker::runDecodeStep() {
  const std::string &family = spec.get("family");
  Buffers args = allocateArgs();
  auto typeOf = [&](const std::string &name) -> std::string {
    for (const ArgDesc &d : args.descs)
      if (d.name == name)
        return d.type;
    die("the contract has no argument '" + name + "'");
  };
  // Rounds `values` to the argument's type in place and uploads them.
  auto upload = [&](const std::string &name, std::vector<float> &values) {
    std::string type = typeOf(name);
    if (type == "f32") {
      put(args[name], values);
      return;
    }
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      bits[i] = type == "f16" ? floatToHalf(values[i]) : floatToBF16(values[i]);
      values[i] = type == "f16" ? halfToFloat(bits[i]) : bf16ToFloat(bits[i]);
    }
    put(args[name], bits);
  };
  auto fetch = [&](const std::string &name) {
    std::string type = typeOf(name);
    if (type == "f32")
      return get<float>(args[name]);
    std::vector<uint16_t> bits = get<uint16_t>(args[name]);
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i)
      values[i] = type == "f16" ? halfToFloat(bits[i]) : bf16ToFloat(bits[i]);
    return values;
  };
  auto uniform = [&](size_t count, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(count);
    for (float &x : v)
      x = dist(rng);
    return v;
  };
  // Outputs start as NaN (all-ones bits in every type).
  for (size_t i = 0; i < args.descs.size(); ++i)
    if (args.descs[i].out)
      check(cuMemsetD8(args.buffers[i]->ptr, 0xff, args.descs[i].bytes()),
            "cuMemsetD8");
  double movedBytes = 0;
  double matmulFlops = 0; // matmul: its floating-point operations

  if (family == "embedding") {
    int64_t tokens = spec.integer("tokens"), vocab = spec.integer("vocab"),
            hidden = spec.integer("hidden");
    std::vector<float> table = uniform(vocab * hidden, -2.f, 2.f);
    upload("table", table);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    std::vector<int64_t> ids(tokens);
    for (int64_t &id : ids)
      id = pick(rng);
    // Both ends, an id from the end, and out-of-range ids (zeros).
    const int64_t special[] = {vocab - 1, 0, -1, vocab, -vocab - 1, -vocab};
    for (int64_t t = 0; t < tokens && t < 6; ++t)
      ids[t] = special[t];
    put(args["ids"], ids);
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    std::vector<float> ref(tokens * hidden, 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      int64_t row = ids[t] < 0 ? ids[t] + vocab : ids[t];
      if (row >= 0 && row < vocab)
        std::copy_n(&table[row * hidden], hidden, &ref[t * hidden]);
    }
    compareExact(fetch("out"), ref, "rows (ids incl. -1, V, -V-1)");
    movedBytes = 2.0 * 2 * tokens * hidden + 8.0 * tokens;
  } else if (family == "rotary_table") {
    int64_t tokens = spec.integer("tokens"), rot = spec.integer("rotary_dim");
    double scaling = spec.real("attention_scaling");
    std::vector<float> invFreq;
    std::stringstream freqs(spec.get("inv_freq"));
    std::string part;
    while (std::getline(freqs, part, ','))
      invFreq.push_back(std::strtof(part.c_str(), nullptr));
    if (int64_t(invFreq.size()) * 2 != rot)
      die("inv_freq has " + std::to_string(invFreq.size()) +
          " values for rotary_dim " + std::to_string(rot));
    std::uniform_int_distribution<int64_t> pick(0, 131071);
    std::vector<int64_t> pos(tokens);
    for (int64_t &p : pos)
      p = pick(rng);
    const int64_t special[] = {0, 1, 131071, 8191, 1000000};
    for (int64_t t = 0; t < tokens && t < 5; ++t)
      pos[t] = special[t];
    put(args["positions"], pos);
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    std::string type = typeOf("cos");
    std::vector<double> refCos(tokens * rot), refSin(tokens * rot);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t i = 0; i < rot; ++i) {
        float angle = static_cast<float>(pos[t]) * invFreq[i % (rot / 2)];
        refCos[t * rot + i] = roundTo(
            type, static_cast<float>(std::cos(double(angle))) * float(scaling));
        refSin[t * rot + i] = roundTo(
            type, static_cast<float>(std::sin(double(angle))) * float(scaling));
      }
    compare(fetch("cos"), refCos, "cos (positions incl. 0, 131071, 1e6)",
            &result.relErr);
    compare(fetch("sin"), refSin, "sin", &result.relErr);
    movedBytes =
        8.0 * tokens + 2.0 * tokens * rot * args.descs[1].elementBytes();
  } else if (family == "rope") {
    int64_t tokens = spec.integer("tokens"), heads = spec.integer("heads"),
            dim = spec.integer("head_dim"), rot = spec.integer("rotary_dim");
    int64_t half = rot / 2;
    std::vector<float> x = uniform(tokens * heads * dim, -2.f, 2.f);
    upload("x", x);
    std::vector<float> angles = uniform(tokens * half, -3.2f, 3.2f);
    std::vector<float> cosT(tokens * rot), sinT(tokens * rot);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t i = 0; i < rot; ++i) {
        float a = angles[t * half + i % half];
        cosT[t * rot + i] = std::cos(a);
        sinT[t * rot + i] = std::sin(a);
      }
    upload("cos", cosT);
    upload("sin", sinT);
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    std::vector<double> ref(x.begin(), x.end());
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const float *in = &x[(t * heads + h) * dim];
        for (int64_t i = 0; i < rot; ++i) {
          double rotated = i < half ? -in[i + half] : in[i - half];
          ref[(t * heads + h) * dim + i] =
              double(in[i]) * cosT[t * rot + i] + rotated * sinT[t * rot + i];
        }
      }
    std::vector<float> out = fetch("out");
    compare(out, ref, "rotated rows", &result.relErr);
    // The pass-through channels are copies.
    if (rot < dim) {
      std::vector<float> tailOut, tailRef;
      for (int64_t r = 0; r < tokens * heads; ++r)
        for (int64_t i = rot; i < dim; ++i) {
          tailOut.push_back(out[r * dim + i]);
          tailRef.push_back(x[r * dim + i]);
        }
      compareExact(tailOut, tailRef, "pass-through channels");
    }
    movedBytes = 2.0 * 2 * tokens * heads * dim +
                 2.0 * tokens * rot * args.descs[1].elementBytes();
  } else if (family == "qgemv" || family == "qgemv_multi") {
    // Packed W (docs/Quantization.md): code i of a row is byte i (8 bits)
    // or nibble i % 2 of byte i / 2, low first (4 bits); w = scale * (u -
    // z), z the group's zero point or 2^(bits - 1); fp8: w = scale *
    // e4m3(u). Both the CUDA-core and the tensor-core (mma=1) variants;
    // qgemv_multi: n lists each weight's rows ("4096_1024_1024"), weight i
    // > 0 has arguments packed<i>, scales<i>, [zeros<i>,] y<i>.
    std::vector<int64_t> rowsOf = memberRows(spec.get("n"));
    int64_t k = spec.integer("k");
    int64_t bits = spec.integer("bits"), group = spec.integer("group_size");
    bool fp8 = spec.has("format") && spec.get("format") == "fp8e4m3";
    int64_t R = spec.has("tokens") ? spec.integer("tokens") : 1;
    int64_t groups = k / group, rowBytes = k * bits / 8;
    std::uniform_int_distribution<int> byteDist(0, 255);
    std::vector<float> x = uniform(R * k, -1.f, 1.f);
    upload("x", x);
    if (args.has("step"))
      put(args["step"], std::vector<int32_t>{int32_t(R), 0, 0, 0});
    // With the add + norm prologue (add_norm=1, one row) the products meet
    // normed = (x + residual) * rsqrt(mean(h^2) + eps) * norm_weight as the
    // storage type rounds it; sum and normed are checked too.
    bool addNorm = spec.has("add_norm");
    std::vector<double> sumRef, normedRef;
    std::vector<float> xUsed = x;
    if (addNorm) {
      std::string type = typeOf("x");
      std::vector<float> res = uniform(k, -1.f, 1.f),
                         gamma = uniform(k, 0.5f, 1.5f);
      upload("residual", res);
      upload("norm_weight", gamma);
      sumRef.resize(k);
      normedRef.resize(k);
      addNormReference(type, x.data(), res.data(), gamma, k,
                       std::stod(spec.get("eps")), sumRef.data(),
                       normedRef.data());
      for (int64_t i = 0; i < k; ++i)
        xUsed[i] = roundTo(type, float(normedRef[i]));
    }
    auto e4m3 = [](uint8_t v) {
      int exponent = (v >> 3) & 15, mantissa = v & 7;
      double magnitude = exponent == 0
                             ? std::ldexp(double(mantissa), -9)
                             : std::ldexp(double(8 + mantissa), exponent - 10);
      return (v & 0x80) ? -magnitude : magnitude;
    };
    struct Member {
      int64_t n;
      std::string suffix;
      std::vector<uint8_t> packed, zeros;
      std::vector<float> scales, bias;
    };
    std::vector<Member> members;
    for (size_t m = 0; m < rowsOf.size(); ++m) {
      Member w{rowsOf[m], m ? std::to_string(m) : "", {}, {}, {}, {}};
      w.packed.resize(w.n * rowBytes);
      for (uint8_t &b : w.packed) {
        b = static_cast<uint8_t>(byteDist(rng));
        if (fp8 && (b & 0x7f) == 0x7f)
          b &= 0xfe; // no NaN codes
      }
      put(args["packed" + w.suffix], w.packed);
      w.scales = uniform(w.n * groups, 0.01f, 0.05f);
      upload("scales" + w.suffix, w.scales);
      if (args.has("zeros" + w.suffix)) {
        w.zeros.resize(w.n * groups);
        for (uint8_t &z : w.zeros)
          z = static_cast<uint8_t>(byteDist(rng) % (1 << bits));
        put(args["zeros" + w.suffix], w.zeros);
      }
      if (args.has("bias")) {
        w.bias = uniform(w.n, -1.f, 1.f);
        upload("bias", w.bias);
      }
      members.push_back(std::move(w));
    }
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    if (addNorm) {
      compare(fetch("sum"), sumRef, "sum (x + residual, rounded)",
              &result.relErr);
      compare(fetch("normed"), normedRef, "normed", &result.relErr);
    }
    movedBytes = 0;
    for (const Member &w : members) {
      int64_t n = w.n;
      std::vector<double> ref(R * n, 0.0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < k; ++i) {
          int64_t g = i / group;
          uint8_t byte = w.packed[r * rowBytes + (bits == 8 ? i : i / 2)];
          unsigned u = bits == 8 ? byte : (byte >> (4 * (i % 2))) & 15;
          double z = w.zeros.empty() ? double(1 << (bits - 1))
                                     : double(w.zeros[r * groups + g]);
          double v =
              w.scales[r * groups + g] * (fp8 ? e4m3(byte) : double(u) - z);
          for (int64_t t = 0; t < R; ++t)
            ref[t * n + r] += double(xUsed[t * k + i]) * v;
        }
      if (!w.bias.empty())
        for (int64_t t = 0; t < R; ++t)
          for (int64_t r = 0; r < n; ++r)
            ref[t * n + r] += w.bias[r];
      double relErr = 0;
      compare(fetch("y" + w.suffix), ref,
              "qgemv" + w.suffix + " b" + std::to_string(bits) +
                  (fp8 ? " fp8" : "") + (spec.has("mma") ? " mma" : "") +
                  " R=" + std::to_string(R),
              &relErr);
      result.relErr = std::max(result.relErr, relErr);
      movedBytes += double(n * rowBytes);
    }
  } else if (family == "sgemv" || family == "smatmul") {
    // 2:4 W [N, K]: values [N, K/2] (a group's two kept entries in order),
    // metadata [N, K/8] (nibble g % 2 of byte g / 2: first | second << 2,
    // first < second, as Kiln's packer writes them). The reference is the
    // dense product with W expanded.
    int64_t n = spec.integer("n"), k = spec.integer("k");
    bool tiled = family == "smatmul";
    int64_t rowsCap = tiled || spec.has("tokens") ? spec.integer("tokens") : 1;
    // A ragged last tile: fewer rows than the launch's tile when tiled.
    int64_t T = tiled ? std::max<int64_t>(1, rowsCap - 3) : rowsCap;
    static const uint8_t pairs[6] = {0x4, 0x8, 0xC, 0x9, 0xD, 0xE};
    std::uniform_int_distribution<int> pick(0, 5);
    std::vector<uint8_t> meta(n * k / 8);
    for (uint8_t &byte : meta)
      byte = static_cast<uint8_t>(pairs[pick(rng)] | pairs[pick(rng)] << 4);
    std::vector<float> values = uniform(n * k / 2, -1.f, 1.f);
    std::vector<float> x = uniform(rowsCap * k, -1.f, 1.f);
    upload("values", values);
    upload("x", x);
    put(args["meta"], meta);
    if (spec.has("bias") || args.has("bias")) {
      std::vector<float> bias = uniform(n, -1.f, 1.f);
      upload("bias", bias);
    }
    if (args.has("step"))
      put(args["step"], std::vector<int32_t>{int32_t(T), 0, 0, 0});
    std::vector<double> dense(n * k, 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < k / 4; ++g) {
        int nibble = (meta[r * (k / 8) + g / 2] >> (4 * (g % 2))) & 15;
        dense[r * k + 4 * g + (nibble & 3)] = values[r * (k / 2) + 2 * g];
        dense[r * k + 4 * g + (nibble >> 2)] = values[r * (k / 2) + 2 * g + 1];
      }
    std::vector<CUdeviceptr> pointers = args.pointers();
    // smatmul covers grid.y = ceil(T / tokens) tiles: one here.
    launchOnce(pointers);
    std::vector<float> out = fetch("y");
    std::vector<double> ref(T * n, 0.0);
    std::vector<float> got(T * n);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < n; ++r) {
        double sum = 0;
        for (int64_t i = 0; i < k; ++i)
          sum += double(x[t * k + i]) * dense[r * k + i];
        ref[t * n + r] = sum;
        got[t * n + r] = out[t * n + r];
      }
    compare(got, ref, family + " T=" + std::to_string(T), &result.relErr);
    // Rows past T must stay untouched (NaN).
    for (int64_t i = T * n; i < static_cast<int64_t>(out.size()); ++i)
      if (!std::isnan(out[i])) {
        std::printf("  BAD %s wrote row %lld past T=%lld\n", family.c_str(),
                    (long long)(i / n), (long long)T);
        result.pass = false;
        break;
      }
    movedBytes = double(n * k / 2 * 2 + n * k / 8);
  } else if ((family == "gemv_gated" || family == "gemv_multi") &&
             spec.has("tokens")) {
    // Row-chunked gated gate/up or multi-weight gemv (a batched decode or
    // speculative verify step): x [R, K] with T = R - 3 live rows, so the
    // rows past T must stay NaN; each member's y [R, n_i] against fp64
    // products, silu(gate) * up of the rounded products when gated. With
    // the add + norm prologue (add_norm=1) the products take each row's
    // normed = round(x + residual) * rsqrt(mean(h^2) + eps) * norm_weight,
    // rounded, and sum and normed are checked too.
    std::vector<int64_t> members = memberRows(spec.get("n"));
    int64_t k = spec.integer("k"), R = spec.integer("tokens");
    int64_t T = std::max<int64_t>(1, R - 3);
    bool gated = family == "gemv_gated";
    std::string type = typeOf("x");
    std::vector<float> x = uniform(R * k, -1.f, 1.f);
    upload("x", x);
    put(args["step"], std::vector<int32_t>{int32_t(T), 0, 0, 0});
    bool addNorm = spec.has("add_norm");
    std::vector<double> sumRef, normedRef;
    if (addNorm) {
      double eps = std::stod(spec.get("eps"));
      std::vector<float> res = uniform(R * k, -1.f, 1.f),
                         gamma = uniform(k, 0.5f, 1.5f);
      upload("residual", res);
      upload("norm_weight", gamma);
      sumRef.resize(T * k);
      normedRef.resize(T * k);
      for (int64_t t = 0; t < T; ++t) {
        addNormReference(type, &x[t * k], &res[t * k], gamma, k, eps,
                         &sumRef[t * k], &normedRef[t * k]);
        // The products below read the normalized rows as stored.
        for (int64_t i = 0; i < k; ++i)
          x[t * k + i] = roundTo(type, float(normedRef[t * k + i]));
      }
    }
    std::vector<std::string> weightNames;
    for (size_t i = 0; i < members.size(); ++i)
      weightNames.push_back(i ? "w" + std::to_string(i) : "w");
    if (gated)
      weightNames.push_back("w_up");
    std::vector<std::vector<float>> ws;
    for (size_t i = 0; i < weightNames.size(); ++i) {
      ws.push_back(uniform(members[gated ? 0 : i] * k, -1.f, 1.f));
      upload(weightNames[i], ws.back());
    }
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    // The live rows of an output [R, n] against `ref`; the rest must stay
    // NaN.
    auto compareRows = [&](const std::string &name,
                           const std::vector<double> &ref, int64_t n) {
      std::vector<float> got = fetch(name);
      std::vector<float> live(got.begin(), got.begin() + T * n);
      compare(live, ref, family + " " + name + " T=" + std::to_string(T),
              &result.relErr);
      for (int64_t e = T * n; e < static_cast<int64_t>(got.size()); ++e)
        if (!std::isnan(got[e])) {
          std::printf("  BAD %s wrote %s row %lld past T=%lld\n",
                      family.c_str(), name.c_str(), (long long)(e / n),
                      (long long)T);
          result.pass = false;
          break;
        }
    };
    if (addNorm) {
      compareRows("sum", sumRef, k);
      compareRows("normed", normedRef, k);
    }
    auto dot = [&](const std::vector<float> &w, int64_t t, int64_t row) {
      double total = 0;
      for (int64_t i = 0; i < k; ++i)
        total += double(x[t * k + i]) * double(w[row * k + i]);
      return total;
    };
    double weightBytes = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      int64_t n = members[i];
      std::string name = i ? "y" + std::to_string(i) : "y";
      std::vector<double> yRef(T * n);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t row = 0; row < n; ++row) {
          double g = dot(ws[i], t, row);
          if (gated) {
            double gate = roundTo(type, float(g));
            double up = roundTo(type, float(dot(ws[1], t, row)));
            g = gate / (1.0 + std::exp(-gate)) * up;
          }
          yRef[t * n + row] = g;
        }
      compareRows(name, yRef, n);
      weightBytes += double(n) * k * 2 * (gated ? 2 : 1);
    }
    movedBytes = weightBytes;
  } else if (spec.has("add_norm")) {
    // A gemv (one row; multi-weight or gated gate/up) with the residual add
    // and RMSNorm in its prologue: h = x + residual rounded to the storage
    // type (checked against `sum`), normed = h * rsqrt(mean(h^2) + eps) *
    // norm_weight rounded (checked against `normed`), then each weight's
    // products with the rounded normed row (fp64), or silu(gate) * up.
    std::vector<int64_t> members = memberRows(spec.get("n"));
    int64_t k = spec.integer("k");
    double eps = std::stod(spec.get("eps"));
    bool gated = family == "gemv_gated";
    std::string type = typeOf("x");
    std::vector<float> x = uniform(k, -1.f, 1.f), res = uniform(k, -1.f, 1.f),
                       gamma = uniform(k, 0.5f, 1.5f);
    upload("x", x);
    upload("residual", res);
    upload("norm_weight", gamma);
    std::vector<double> hRef(k), normedRef(k);
    addNormReference(type, x.data(), res.data(), gamma, k, eps, hRef.data(),
                     normedRef.data());
    std::vector<float> normedRounded(k);
    for (int64_t i = 0; i < k; ++i)
      normedRounded[i] = roundTo(type, float(normedRef[i]));
    auto memberName = [](const char *base, size_t i) {
      return i ? base + std::to_string(i) : std::string(base);
    };
    std::vector<std::vector<float>> ws;
    std::vector<std::string> weightNames;
    for (size_t i = 0; i < members.size(); ++i)
      weightNames.push_back(memberName("w", i));
    if (gated)
      weightNames.push_back("w_up");
    for (size_t i = 0; i < weightNames.size(); ++i) {
      ws.push_back(uniform(members[gated ? 0 : i] * k, -1.f, 1.f));
      upload(weightNames[i], ws.back());
    }
    // With the rope + cache epilogue (rope=1: q, k, v): random cos/sin
    // rows and a slot inside block 0.
    bool rope = spec.has("rope");
    int64_t headDim = rope ? spec.integer("head_dim") : 0;
    int64_t slot = rope ? spec.integer("block_size") / 2 + 1 : 0;
    std::vector<float> cosRow, sinRow;
    if (rope) {
      cosRow = uniform(headDim, -1.f, 1.f);
      sinRow = uniform(headDim, -1.f, 1.f);
      upload("cos", cosRow);
      upload("sin", sinRow);
      put(args["slot_mapping"], std::vector<int64_t>{slot});
    }
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    compare(fetch("sum"), hRef, "sum (x + residual, rounded)", &result.relErr);
    compare(fetch("normed"), normedRef, "normed", &result.relErr);
    auto dot = [&](const std::vector<float> &w, int64_t row) {
      double total = 0;
      for (int64_t i = 0; i < k; ++i)
        total += double(normedRounded[i]) * double(w[row * k + i]);
      return total;
    };
    double weightBytes = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      int64_t n = members[i];
      std::vector<double> yRef(n);
      for (int64_t row = 0; row < n; ++row) {
        double g = dot(ws[i], row);
        if (gated) {
          double gate = roundTo(type, float(g));
          double up = roundTo(type, float(dot(ws[1], row)));
          g = gate / (1.0 + std::exp(-gate)) * up;
        }
        yRef[row] = g;
      }
      if (rope && i < 2) {
        // q and k: the products rounded as the gemv stores them, then the
        // half-split rotation of each head.
        std::vector<double> rounded(n);
        for (int64_t row = 0; row < n; ++row)
          rounded[row] = roundTo(type, float(yRef[row]));
        int64_t half = headDim / 2;
        for (int64_t row = 0; row < n; ++row) {
          int64_t c = row % headDim;
          double partner = rounded[c < half ? row + half : row - half];
          yRef[row] = c < half ? rounded[row] * cosRow[c] - partner * sinRow[c]
                               : rounded[row] * cosRow[c] + partner * sinRow[c];
        }
      }
      compare(fetch(memberName("y", i)), yRef, "gemv " + memberName("y", i),
              &result.relErr);
      weightBytes += double(n) * k * 2 * (gated ? 2 : 1);
    }
    if (rope) {
      // The slot's keys and values in the cache equal y1 and y2 bit for bit.
      std::vector<float> cache = fetch("cache"), k1 = fetch("y1"),
                         v1 = fetch("y2");
      int64_t at = slot * spec.integer("token_stride");
      int64_t bad = 0;
      for (int64_t r = 0; r < members[1]; ++r) {
        int64_t e =
            at + (r / headDim) * spec.integer("head_stride") + r % headDim;
        bad += cache[e] != k1[r];
        bad += cache[e + spec.integer("v_offset")] != v1[r];
      }
      std::printf("  %s cache slot %lld: %lld of %lld keys and values differ "
                  "from y1 and y2\n",
                  bad ? "BAD" : "ok", (long long)slot, (long long)bad,
                  (long long)(2 * members[1]));
      result.pass = result.pass && bad == 0;
    }
    movedBytes = weightBytes + 5.0 * k * 2;
  } else if (family == "matmul") {
    // Dense GEMM (mma.sync or wgmma): x [rows, K] with rows from the
    // contract's x (override args= and grid= for several row tiles), T =
    // rows - 3 so the last tile is ragged; fp64 reference of x . W^T. A
    // grouped GEMM lists each member's N ("2048_512_512"); member i > 0
    // reads w<i> and writes y<i>, each checked on its own.
    std::vector<int64_t> members = memberRows(spec.get("n"));
    int64_t k = spec.integer("k");
    int64_t tile = spec.integer("tokens");
    int64_t rows = 0;
    for (const ArgDesc &d : args.descs)
      if (d.name == "x")
        rows = static_cast<int64_t>(d.count) / k;
    int64_t T = std::max<int64_t>(1, rows - 3);
    unsigned grid[3];
    spec.dims("grid", grid);
    if (int64_t(grid[1]) * tile < T)
      die("matmul: grid.y=" + std::to_string(grid[1]) + " tiles of " +
          std::to_string(tile) + " rows do not cover T=" + std::to_string(T));
    auto memberName = [](const char *base, size_t i) {
      return i ? base + std::to_string(i) : std::string(base);
    };
    std::vector<float> x = uniform(rows * k, -1.f, 1.f);
    upload("x", x);
    std::vector<std::vector<float>> ws;
    for (size_t i = 0; i < members.size(); ++i) {
      ws.push_back(uniform(members[i] * k, -1.f, 1.f));
      upload(memberName("w", i), ws.back());
    }
    std::vector<float> bias;
    if (args.has("bias")) {
      bias = uniform(members[0], -1.f, 1.f);
      upload("bias", bias);
    }
    put(args["step"], std::vector<int32_t>{int32_t(T), 0, 0, 0});
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    int64_t totalN = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      int64_t n = members[i];
      totalN += n;
      std::vector<float> out = fetch(memberName("y", i));
      // Large products: every stride-th row (and the last tile's), so the
      // fp64 reference stays within ~4 G multiply-adds.
      int64_t stride = std::max<int64_t>(
          1, static_cast<int64_t>(double(T) * n * k / 4e9) + 1);
      std::vector<double> ref;
      std::vector<float> got;
      for (int64_t t = 0; t < T; ++t) {
        if (t % stride && t < T - tile)
          continue;
        for (int64_t r = 0; r < n; ++r) {
          double sum = bias.empty() ? 0.0 : double(bias[r]);
          const float *xr = &x[t * k], *wr = &ws[i][r * k];
          for (int64_t e = 0; e < k; ++e)
            sum += double(xr[e]) * double(wr[e]);
          ref.push_back(sum);
          got.push_back(out[t * n + r]);
        }
      }
      double relErr = 0;
      compare(got, ref,
              "matmul " + memberName("y", i) + " T=" + std::to_string(T) +
                  " (rows checked: every " + std::to_string(stride) +
                  ", the last tile all)" +
                  (spec.has("wgmma") ? " wgmma" : " mma.sync"),
              &relErr);
      result.relErr = std::max(result.relErr, relErr);
      for (int64_t e = T * n; e < static_cast<int64_t>(out.size()); ++e)
        if (!std::isnan(out[e])) {
          std::printf("  BAD matmul %s wrote row %lld past T=%lld\n",
                      memberName("y", i).c_str(), (long long)(e / n),
                      (long long)T);
          result.pass = false;
          break;
        }
    }
    size_t yBytes = typeOf("y") == "f32" ? 4 : 2;
    movedBytes = double((rows + totalN) * k * 2) + double(T * totalN) * yBytes;
    matmulFlops = 2.0 * double(T) * double(totalN) * double(k);
  } else if (family == "cast") {
    int64_t size = spec.integer("size");
    std::vector<float> x = uniform(size, -300.f, 300.f);
    for (int64_t i = 0; i < size; i += 7)
      x[i] *= 1e-6f; // small values: f16 subnormals
    upload("x", x);
    std::vector<CUdeviceptr> pointers = args.pointers();
    launchOnce(pointers);
    std::string to = typeOf("out");
    std::vector<float> ref(size);
    for (int64_t i = 0; i < size; ++i)
      ref[i] = roundTo(to, x[i]);
    compareExact(fetch("out"), ref, "cast " + typeOf("x") + " -> " + to);
    movedBytes = double(args.descs[0].bytes() + args.descs[1].bytes());
  } else {
    die("unknown family '" + family + "'");
  }
  std::vector<std::vector<CUdeviceptr>> sets = {args.pointers()};
  time(sets, movedBytes, "read+write", 0);
  if (matmulFlops > 0)
    std::printf("  matmul: %.1f TFLOP/s (median), %.1f TFLOP/s (back to "
                "back)\n",
                matmulFlops / result.medianUs * 1e-6,
                matmulFlops / result.meanUs * 1e-6);
  return result;
}

Result Checker::run() {
  const std::string &family = spec.get("family");
  if (family == "kv_write")
    return runKVWrite();
  if (family == "kv_copy")
    return runKVCopy();
  if (family == "paged_decode")
    return runPagedDecode();
  if (family == "paged_prefill")
    return runPagedPrefill();
  if (family == "embedding" || family == "rotary_table" || family == "rope" ||
      family == "cast" || family == "qgemv" || family == "qgemv_multi" ||
      family == "sgemv" || family == "smatmul" || family == "matmul" ||
      spec.has("add_norm") ||
      ((family == "gemv_gated" || family == "gemv_multi") &&
       spec.has("tokens")))
    return runDecodeStep();
  return runClassic();
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
                  "[--ctx-min=N] [--ctx-max=N] "
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
    else if (key == "ctx-min")
      options.ctxMin = std::atoll(value.c_str());
    else if (key == "ctx-max")
      options.ctxMax = std::atoll(value.c_str());
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
  std::vector<std::string> summary;
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
    // Dynamic workgroup memory beyond 48 KB (the GEMMs' pipelines) must be
    // opted into, as the runtime's CUDA device does.
    if (spec.has("smem") && std::stoul(spec.get("smem")) > 48 * 1024)
      check(cuFuncSetAttribute(function,
                               CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                               static_cast<int>(std::stoul(spec.get("smem")))),
            "cuFuncSetAttribute(max dynamic shared memory)");
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
    Result result = checker.run();
    if (!result.pass)
      ++failures;
    char line[512];
    std::snprintf(line, sizeof(line),
                  "%s %s (%s): rel_err=%.2e time=%.2fus (b2b %.2fus) %.1f "
                  "GB/s %s; regs=%d%s%s",
                  result.pass ? "PASS" : "FAIL", spec.get("name").c_str(),
                  path.c_str(), result.relErr, result.medianUs, result.meanUs,
                  result.medianGBs, result.bytesLabel.c_str(), registers,
                  result.notes.empty() ? "" : "; ", result.notes.c_str());
    std::printf("%s\n", line);
    summary.push_back(line);
    cuModuleUnload(module);
  }
  std::printf("\n== summary: %zu checked, %d failed\n", files.size(), failures);
  for (const std::string &line : summary)
    std::printf("%s\n", line.c_str());
  cuDevicePrimaryCtxRelease(device);
  return failures ? 1 : 0;
}
