//===- CudaDevice.cpp - Running launch plans with the generated kernels ---===//

#include "CudaDevice.h"

#include "kiln/runtime/GemmRoute.h"
#include "kiln/runtime/Half.h"
#include "kiln/runtime/StepFusion.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <set>

namespace kiln::runtime {

using namespace cuda;

//===----------------------------------------------------------------------===//
// Device memory and programs
//===----------------------------------------------------------------------===//

/// One cuMemAlloc, freed with the object.
struct CudaDevice::Memory {
  const Driver *d = nullptr;
  CUdeviceptr ptr = 0;
  size_t bytes = 0;

  ~Memory() {
    if (ptr)
      d->cuMemFree(ptr);
  }
  static StatusOr<std::unique_ptr<Memory>>
  allocate(const Driver *d, size_t bytes, const char *what) {
    auto m = std::make_unique<Memory>();
    m->d = d;
    m->bytes = bytes;
    std::string label = std::string("allocating ") + std::to_string(bytes) +
                        " bytes of device memory for " + what;
    KILN_RETURN_IF_ERROR(d->check(
        d->cuMemAlloc(&m->ptr, std::max<size_t>(bytes, 1)), label.c_str()));
    return m;
  }
  /// A device copy of `size` host bytes.
  static StatusOr<std::unique_ptr<Memory>> upload(const Driver *d,
                                                  const void *data, size_t size,
                                                  const std::string &what) {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Memory> m,
                          allocate(d, size, what.c_str()));
    KILN_RETURN_IF_ERROR(
        d->check(d->cuMemcpyHtoD(m->ptr, data, size), what.c_str()));
    return m;
  }
};

namespace {

/// The buffer of a QuantLinear step (x, packed, scales, [zero points],
/// [bias]) -> y that the argument `name` of qgemv, qgemv_multi, qdequant or
/// the GEMM over qdequant's scratch stands for; kNoBuffer for another name
/// or an operand the step does not have.
uint32_t quantLinearBuffer(const Step &s, const std::string &name) {
  if (name == "y")
    return s.results[0];
  size_t index = name == "x"        ? 0
                 : name == "packed" ? 1
                 : name == "scales" ? 2
                 : name == "zeros"  ? 3
                 : name == "bias"   ? 4
                                    : s.operands.size();
  return index < s.operands.size() ? s.operands[index] : kNoBuffer;
}

/// Where a kernel argument points.
enum class Source : uint8_t {
  Buffer,         ///< A plan buffer of the entry point (views resolved).
  Weight,         ///< Weight `id` as stored.
  WeightNK,       ///< Weight `id` transposed to [N, K].
  CacheLayer,     ///< The KV cache at layer `id`.
  Scratch,        ///< GatedMLP temporary `id` (0 gate, 1 up, 2 activation).
  BlockTables,    ///< The batch's block tables padded to the kernels' width.
  SeqStarts,      ///< [N, 2] i32 {0, append length}: one sequence's qsl.
  Partials,       ///< Split-K workspace of paged_decode.
  Counters,       ///< Split-K arrival counters (kept zero by the kernel).
  StepInfo,       ///< i32 [4] {rows, N, M, P}: id 0 with rows = T, 1 with N.
  DequantScratch, ///< Dense W decoded by qdequant for the tiled GEMM.
};

struct ArgRef {
  Source source = Source::Buffer;
  uint32_t id = 0;
  /// Bytes one row (of the step's T or N rows) advances the pointer by,
  /// for launches per row or per sequence; 0 for arguments that do not.
  int64_t tokenRowBytes = 0;
  int64_t seqRowBytes = 0;
};

struct Launch {
  uint32_t kernel = 0;
  std::vector<ArgRef> args;
  /// paged_prefill: one launch per sequence (the kernel is specialized for
  /// one sequence), grid scaled by that sequence's append length.
  bool perSequence = false;
  /// paged_prefill: the flash-attention variant (-1: none), launched per
  /// sequence instead for an append of at least flashMinRows() rows;
  /// grid.x = ceil(append length / flashRows). Its arguments advance per
  /// sequence as the paged_prefill kernel's do.
  int32_t flashKernel = -1;
  int64_t flashRows = 1;
  std::vector<ArgRef> flashArgs;
  /// What the step's rows are (the leading dimension of its result): T
  /// for token-major steps, N after GatherLastTokens.
  Sym rows =
      Sym::T; /// gemv: the row-chunked variant (-1: none), launched once with
  /// grid.y = ceil(rows / chunkRows) instead of once per row.
  int32_t chunkedKernel = -1;
  int64_t chunkRows = 1;
  std::vector<ArgRef> chunkedArgs;
  /// gemv: the tensor-core GEMM (-1: none), for steps of at least
  /// tiledMinRows() rows; grid.y = ceil(rows / tiledRows).
  int32_t tiledKernel = -1;
  int64_t tiledRows = 1;
  std::vector<ArgRef> tiledArgs;
  /// gemv: the split-K tensor-core GEMM for a few rows (-1: none), for
  /// steps of 2 to tiledMinRows() - 1 rows; grid.y = ceil(rows /
  /// skinnyRows).
  int32_t skinnyKernel = -1;
  int64_t skinnyRows = 1;
  std::vector<ArgRef> skinnyArgs;
  /// GatedMLP's gate gemv: the fused gate/up + silu gemv (-1: none), for a
  /// step of one row; the up gemv and silu_mul launches (skipWhenGated)
  /// then do not run.
  int32_t gatedKernel = -1;
  std::vector<ArgRef> gatedArgs;
  /// Its row-chunked variant (-1: none), for steps of a few rows that no
  /// few-row GEMM serves (`chunkedKernel`'s place); grid.y = ceil(rows /
  /// gatedChunkRows).
  int32_t gatedChunkedKernel = -1;
  int64_t gatedChunkRows = 1;
  std::vector<ArgRef> gatedChunkedArgs;
  /// qgemv: the kernel decoding W into the dense scratch that `tiledKernel`
  /// reads (-1: none), launched first for steps of many rows.
  int32_t dequantKernel = -1;
  std::vector<ArgRef> dequantArgs;
  bool skipWhenGated = false;
  /// GatedMLP's gate GEMM: the grouped few-row GEMM over gate and up (-1:
  /// none), for steps of 2 to tiledMinRows() - 1 rows; the up launch
  /// (isUp) then does not run, silu_mul does.
  int32_t groupedKernel = -1;
  int64_t groupedRows = 1;
  std::vector<ArgRef> groupedArgs;
  bool isUp = false;
  /// GatedMLP's gate (j == 0): with isUp and skipWhenGated, the launches a
  /// gemv with the norm in its prologue already did.
  bool isGate = false;
};

/// A GEMM over every member of shared-input linears in one launch (-1:
/// none); grid.y = ceil(rows / rows-per-tile).
struct GroupedGemm {
  int32_t kernel = -1;
  int64_t rows = 1;
  std::vector<ArgRef> args;
};

struct StepProgram {
  OpKind kind = OpKind::View;
  std::vector<Launch> launches;
  /// GatherLastTokens: copy row qsl[i+1]-1 of `gatherFrom` to row i of
  /// `gatherTo`, rows of `gatherRowBytes`.
  uint32_t gatherFrom = 0, gatherTo = 0;
  int64_t gatherRowBytes = 0;
  /// The first Linear of shared-input linears (StepFusion.h): the
  /// gemv_multi kernel that runs the group's steps of one row in one
  /// launch (-1: none), and its arguments.
  int32_t multiKernel = -1;
  std::vector<ArgRef> multiArgs;
  /// The same group's grouped GEMMs: the few-row one for steps of 2 to
  /// tiledMinRows() - 1 rows, the prefill one for more; and the row-chunked
  /// gemv_multi that stands in for the few-row one where the weights have
  /// none (small models).
  GroupedGemm groupedSkinny, groupedTiled, groupedChunked;
  /// An Add whose RMSNorm follows (StepFusion.h): the add_rms_norm kernel
  /// that computes both (-1: none), its arguments and the rows it covers.
  int32_t addNormKernel = -1;
  std::vector<ArgRef> addNormArgs;
  Sym addNormRows = Sym::T;
  /// SiLU step whose result only the next Mul reads: silu_mul over the
  /// pair (the Mul is skipped).
  int32_t siluMulKernel = -1;
  std::vector<ArgRef> siluMulArgs;
  Sym siluMulRows = Sym::T;
  /// An Add whose norm q/k/v or gate/up read (StepFusion.h): the gemv with
  /// the add and norm in its prologue (-1: none), for one-row steps; it
  /// also does the consumer's work (a GatedMLP's down gemv still runs).
  struct {
    int32_t kernel = -1;
    size_t consumer = 0;
    bool gated = false;
    std::vector<ArgRef> args;
    /// The same with the q/k rotation and the k/v cache write in its
    /// epilogue (-1: none): it also serves the Rope pair at `ropeStep`.
    int32_t ropeKernel = -1;
    size_t ropeStep = 0;
    std::vector<ArgRef> ropeArgs;
    /// The row-chunked variant without the epilogue (-1: none), for steps
    /// of a few rows that no few-row GEMM serves; grid.y = ceil(rows /
    /// chunkRows).
    int32_t chunkedKernel = -1;
    int64_t chunkRows = 1;
    std::vector<ArgRef> chunkedArgs;
  } normGemv;
  /// The first Rope of a q/k pair: the rope_pair kernel rotating both
  /// (-1: none), its arguments and rows.
  int32_t ropePairKernel = -1;
  std::vector<ArgRef> ropePairArgs;
  Sym ropePairRows = Sym::T;
  /// The other steps of such a group: the first step's index (-1: none);
  /// skipped when the group ran as one launch.
  int64_t fusedInto = -1;
};

/// KILN_SKINNY_GEMM=0 turns the split-K GEMM for a few rows off (the
/// row-chunked gemv serves those steps): measuring, bisecting.
/// Graphs kept per program for steps split into sequences (beyond it those
/// steps run eagerly).
constexpr size_t kMaxSplitGraphs = 256;

/// An RMSNorm step's epsilon as kernel contracts print it (`%.9g`, as
/// KernelSpec::addFloatParam writes it), to look fused kernels up by.
std::string epsilonParam(const Step &norm) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g",
                double(norm.getFloat(AttrKey::Epsilon)));
  return text;
}

/// Whether the environment leaves an on-by-default path on: any value of
/// `name` but "0" (the KILN_* switches for measuring and bisecting).
bool envSwitchOn(const char *name) {
  const char *v = std::getenv(name);
  return !v || std::string(v) != "0";
}

bool skinnyEnabled() {
  static const bool enabled = envSwitchOn("KILN_SKINNY_GEMM");
  return enabled;
}

} // namespace

struct CudaDevice::Program {
  const EntryPoint *entry = nullptr;
  std::vector<StepProgram> steps;
  /// Per buffer: the buffer whose memory it is (itself unless a View).
  std::vector<uint32_t> root;
  /// Per buffer: bytes of one row of dimension 0 (0 when not row-indexed).
  std::vector<int64_t> rowBytes;
  /// Constant buffers, uploaded at prepare (by buffer id).
  std::map<uint32_t, std::unique_ptr<Memory>> constants;
  int64_t scratchRowBytes[3] = {0, 0, 0};
  /// Width of the padded block tables (the attention kernels' max_blocks);
  /// 0 when no kernel reads block tables.
  int64_t tableWidth = 0;
  int64_t partialFloatsPerSeq = 0, countersPerSeq = 0;
  /// Split-K GEMMs: partial floats per token row (rows padded to the
  /// kernel's tile) and arrival counters per row tile.
  int64_t partialFloatsPerRow = 0, countersPerRowTile = 0;
  /// Bytes of the largest dense W a qdequant kernel writes, and the scratch
  /// (allocated on the first step that needs it; one W at a time).
  int64_t dequantBytes = 0;
  std::unique_ptr<Memory> dequant;

  /// No GatherLastTokens and no per-sequence launch: a step's launches
  /// depend only on (T, N) and the arena, so they can be a CUDA graph.
  bool capturable = true;
  struct Graph {
    CUgraphExec exec = nullptr;
    CUdeviceptr arena = 0, counters = 0;
    /// Kernels the graph launches (captured), for the step timer.
    int64_t launches = 0;
    void reset(const Driver *d) {
      if (exec)
        d->cuGraphExecDestroy(exec);
      exec = nullptr;
    }
  };
  std::map<std::pair<int64_t, int64_t>, Graph> graphs;
  /// Graphs of steps with per-sequence launches, by (T, N, append lengths),
  /// and the splits seen once (captured when they come again).
  std::map<std::vector<int64_t>, Graph> splitGraphs;
  std::set<std::vector<int64_t>> seenSplits;
  const Driver *driver = nullptr;
  ~Program() {
    for (auto &g : graphs)
      g.second.reset(driver);
    for (auto &g : splitGraphs)
      g.second.reset(driver);
  }

  // Per run.
  std::unique_ptr<Memory> arena, counters;
  std::vector<CUdeviceptr> ptr;
  CUdeviceptr scratch[3] = {0, 0, 0};
  CUdeviceptr tables = 0, seqStarts = 0, partials = 0, copies = 0, stepInfo = 0;
  std::vector<uint8_t> staging, output;
};

//===----------------------------------------------------------------------===//
// Opening the device
//===----------------------------------------------------------------------===//

CudaDevice::CudaDevice(const Driver *driver, int ordinal)
    : d_(driver), ordinal_(ordinal), timer_(driver) {
  graphsEnabled_ = envSwitchOn("KILN_CUDA_GRAPHS");
}

CudaDevice::~CudaDevice() {
  if (!context_)
    return;
  d_->cuCtxSetCurrent(context_);
  d_->cuCtxSynchronize();
  if (timer_.enabled() && model_)
    std::fputs(
        timer_
            .report(std::to_string(model_->config().numLayers) + "-layer model")
            .c_str(),
        stderr);
  programs_.clear();
  for (auto &staging : chainStaging_)
    d_->cuMemFreeHost(staging.first);
  chainIds_.reset();
  weights_.clear();
  transposed_.clear();
  kvCache_.reset();
  for (CUmodule m : modules_)
    d_->cuModuleUnload(m);
  if (stream_)
    d_->cuStreamDestroy(stream_);
  d_->cuDevicePrimaryCtxRelease(device_);
}

StatusOr<std::unique_ptr<Device>> CudaDevice::open(int ordinal) {
  KILN_ASSIGN_OR_RETURN(const Driver *d, loadDriver());
  int count = 0;
  KILN_RETURN_IF_ERROR(d->check(d->cuDeviceGetCount(&count), "counting GPUs"));
  if (ordinal < 0 || ordinal >= count)
    return makeError(StatusCode::NotFound, "no CUDA device ", ordinal,
                     " (this machine has ", count, ")");
  std::unique_ptr<CudaDevice> dev(new CudaDevice(d, ordinal));
  KILN_RETURN_IF_ERROR(
      d->check(d->cuDeviceGet(&dev->device_, ordinal), "cuDeviceGet"));
  char name[256] = {};
  KILN_RETURN_IF_ERROR(d->check(
      d->cuDeviceGetName(name, sizeof(name) - 1, dev->device_), "device name"));
  dev->deviceName_ = name;
  KILN_RETURN_IF_ERROR(
      d->check(d->cuDeviceGetAttribute(
                   &dev->ccMajor_, kAttrComputeCapabilityMajor, dev->device_),
               "compute capability"));
  KILN_RETURN_IF_ERROR(
      d->check(d->cuDeviceGetAttribute(
                   &dev->ccMinor_, kAttrComputeCapabilityMinor, dev->device_),
               "compute capability"));
  dev->pdl_ =
      dev->ccMajor_ >= 9 && d->cuLaunchKernelEx && envSwitchOn("KILN_PDL");
  KILN_RETURN_IF_ERROR(
      d->check(d->cuDevicePrimaryCtxRetain(&dev->context_, dev->device_),
               "creating the CUDA context"));
  KILN_RETURN_IF_ERROR(
      d->check(d->cuCtxSetCurrent(dev->context_), "cuCtxSetCurrent"));
  // CU_STREAM_NON_BLOCKING: no implicit synchronization with stream 0.
  KILN_RETURN_IF_ERROR(
      d->check(d->cuStreamCreate(&dev->stream_, 1), "creating a stream"));
  return std::unique_ptr<Device>(std::move(dev));
}

std::string CudaDevice::name() const {
  return "cuda:" + std::to_string(ordinal_) + " (" + deviceName_ + ", sm_" +
         std::to_string(ccMajor_) + std::to_string(ccMinor_) + ")";
}

//===----------------------------------------------------------------------===//
// prepare
//===----------------------------------------------------------------------===//

/// "sm_90a" -> {9, 0, true}; false for another spelling.
static bool parseTarget(const std::string &target, int &major, int &minor,
                        bool &archSpecific) {
  if (target.rfind("sm_", 0) != 0 || target.size() < 5)
    return false;
  std::string digits = target.substr(3);
  archSpecific = !digits.empty() && digits.back() == 'a';
  if (archSpecific)
    digits.pop_back();
  if (digits.size() < 2 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  major = std::stoi(digits.substr(0, digits.size() - 1));
  minor = digits.back() - '0';
  return true;
}

Status CudaDevice::loadKernels(const KernelTable &table) {
  int major = 0, minor = 0;
  bool archSpecific = false;
  if (!parseTarget(table.target, major, minor, archSpecific))
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact's kernels are for '", table.target,
                     "', not a CUDA sm_XX target");
  bool exact = major == ccMajor_ && minor == ccMinor_;
  bool newer = ccMajor_ > major || (ccMajor_ == major && ccMinor_ >= minor);
  if (archSpecific ? !exact : !newer)
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact's kernels are for ", table.target,
                     "; this GPU (", deviceName_, ") is sm_", ccMajor_,
                     ccMinor_, ": recompile with kiln-compile --target sm_",
                     ccMajor_, ccMinor_, archSpecific ? "a" : "");
  functions_.assign(table.kernels.size(), nullptr);
  argmaxKernel_ = -1;
  for (size_t i = 0; i < table.kernels.size(); ++i) {
    const KernelInfo &k = table.kernels[i];
    if (k.status != KernelStatus::Generated)
      continue;
    CUmodule module = nullptr;
    CUresult r = 1;
    if (!k.cubin.empty() && exact)
      r = d_->cuModuleLoadData(&module, k.cubin.data());
    if (r != CUDA_SUCCESS) // no cubin for this GPU: the driver JITs the PTX
      r = d_->cuModuleLoadData(&module, k.ptx.c_str());
    std::string what = "loading kernel '" + k.name + "'";
    KILN_RETURN_IF_ERROR(d_->check(r, what.c_str()));
    modules_.push_back(module);
    KILN_RETURN_IF_ERROR(d_->check(
        d_->cuModuleGetFunction(&functions_[i], module, k.name.c_str()),
        what.c_str()));
    if (k.family == "argmax" &&
        k.param("vocab") == std::to_string(model_->config().vocabSize))
      argmaxKernel_ = static_cast<int32_t>(i);
    if (k.dynamicSharedBytes > 48 * 1024)
      KILN_RETURN_IF_ERROR(d_->check(
          d_->cuFuncSetAttribute(functions_[i], kFuncAttrMaxDynamicSharedBytes,
                                 static_cast<int>(k.dynamicSharedBytes)),
          what.c_str()));
  }
  return Status::ok();
}

Status CudaDevice::prepare(std::shared_ptr<const Model> model,
                           const KVCacheConfig &cache) {
  KILN_RETURN_IF_ERROR(checkCacheFitsModel(model.get(), cache));
  const KernelTable *table = model->kernels();
  if (!table)
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact has no GPU kernels (compiled with --target "
                     "none?): recompile it with kiln-compile --target sm_90a, "
                     "or use --device host");
  KILN_RETURN_IF_ERROR(d_->check(d_->cuCtxSetCurrent(context_), "context"));
  model_ = std::move(model);
  cache_ = cache;
  const EntryPoint &first = model_->plan().entries.front();
  cacheDType_ = first.buffers[first.kvCache].dtype;
  programs_.clear();
  KILN_RETURN_IF_ERROR(loadKernels(*table));
  weights_.clear();
  transposed_.clear();
  weights_.resize(model_->weights().size());
  transposed_.resize(model_->weights().size());
  for (const EntryPoint &entry : model_->plan().entries) {
    auto program = std::make_unique<Program>();
    KILN_RETURN_IF_ERROR(buildProgram(entry, *program));
    programs_[&entry] = std::move(program);
  }
  KILN_RETURN_IF_ERROR(uploadWeights());
  KILN_ASSIGN_OR_RETURN(
      kvCache_, Memory::allocate(d_, cache.totalBytes(), "the KV cache"));
  KILN_RETURN_IF_ERROR(
      d_->check(d_->cuMemsetD8Async(kvCache_->ptr, 0, kvCache_->bytes, stream_),
                "clearing the KV cache"));
  return d_->check(d_->cuStreamSynchronize(stream_), "prepare");
}

/// Marks weights as needed (as stored) while programs are built; the
/// transposed ones are marked in transposed_ by a non-null placeholder.
Status CudaDevice::uploadWeights() {
  const WeightTable &table = model_->weights();
  for (size_t w = 0; w < table.size(); ++w) {
    bool raw = weights_[w] != nullptr, nk = transposed_[w] != nullptr;
    weights_[w].reset();
    transposed_[w].reset();
    Span<const uint8_t> bytes = model_->weightBytes(w);
    const WeightInfo &info = table[w];
    std::string what = "weight '" + info.name + "'";
    if (raw) {
      KILN_ASSIGN_OR_RETURN(
          weights_[w], Memory::upload(d_, bytes.data(), bytes.size(), what));
    }
    // Random values are random in either layout: no transpose.
    if (nk && info.storage == WeightStorage::Dummy) {
      KILN_ASSIGN_OR_RETURN(
          transposed_[w], Memory::upload(d_, bytes.data(), bytes.size(), what));
    } else if (nk) {
      // [K, N] -> [N, K], in 64 x 64 tiles of the stored type.
      int64_t rows = info.shape[0], cols = info.shape[1];
      int64_t e = dtypeBytes(info.dtype);
      std::vector<uint8_t> t(bytes.size());
      for (int64_t r0 = 0; r0 < rows; r0 += 64)
        for (int64_t c0 = 0; c0 < cols; c0 += 64)
          for (int64_t r = r0; r < std::min(rows, r0 + 64); ++r)
            for (int64_t c = c0; c < std::min(cols, c0 + 64); ++c)
              std::memcpy(&t[(c * rows + r) * e], &bytes[(r * cols + c) * e],
                          e);
      KILN_ASSIGN_OR_RETURN(
          transposed_[w],
          Memory::upload(d_, t.data(), t.size(), what + " (transposed)"));
    }
  }
  return Status::ok();
}

/// The kernel families each step kind launches, in order.
static std::vector<std::string> expectedFamilies(const Step &s, bool decode) {
  switch (s.kind) {
  case OpKind::Embedding:
    return {"embedding"};
  case OpKind::RotaryTable:
    return {"rotary_table"};
  case OpKind::Cast:
    return {"cast"};
  case OpKind::RMSNorm:
    return {"rms_norm"};
  case OpKind::Linear:
    return {"gemv"};
  case OpKind::QuantLinear:
    return {"qgemv"};
  case OpKind::SparseLinear:
    return {"sgemv"};
  case OpKind::Rope:
    return {"rope"};
  case OpKind::KVCacheWrite:
    return {"kv_write"};
  case OpKind::PagedAttention:
    return {decode ? "paged_decode" : "paged_prefill"};
  case OpKind::Add:
    return {"residual_add"};
  case OpKind::Mul:
    return {"mul"};
  case OpKind::SiLU:
    return {"silu"};
  case OpKind::GatedMLP:
    return {"gemv", "gemv", "silu_mul", "gemv"};
  default:
    return {};
  }
}

Status CudaDevice::buildProgram(const EntryPoint &entry, Program &p) {
  const KernelTable &table = *model_->kernels();
  const EntryKernels *binding = table.bindingsFor(entry.name);
  if (!binding || binding->steps.size() != entry.steps.size())
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact's kernel table does not cover entry point '",
                     entry.name, "' (recompile with this kiln-compile)");
  p.entry = &entry;
  p.driver = d_;
  size_t n = entry.buffers.size();
  p.root.resize(n);
  p.rowBytes.assign(n, 0);
  for (size_t id = 0; id < n; ++id) {
    const Buffer &b = entry.buffers[id];
    uint32_t r = static_cast<uint32_t>(id);
    while (entry.buffers[r].kind == BufferKind::View)
      r = entry.buffers[r].source;
    p.root[id] = r;
    if (!b.shape.empty() && !b.shape[0].isConstant()) {
      int64_t row = dtypeBytes(b.dtype);
      for (size_t k = 1; k < b.shape.size(); ++k)
        row *= b.shape[k].isConstant() ? b.shape[k].value : 0;
      p.rowBytes[id] = row;
    }
    if (b.kind == BufferKind::Constant) {
      KILN_ASSIGN_OR_RETURN(p.constants[id],
                            Memory::upload(d_, b.constantData.data(),
                                           b.constantData.size(),
                                           "constant %" + std::to_string(id)));
    }
  }
  bool decode = entry.name == "decode";
  // Weights are marked as needed (as stored, or transposed) by a
  // placeholder; uploadWeights allocates the marked ones.
  auto buffer = [&](uint32_t id, bool markStored = true) {
    const Buffer &b = entry.buffers[id];
    ArgRef a;
    if (b.kind == BufferKind::Weight) {
      a.source = Source::Weight;
      a.id = b.weightIndex;
      if (markStored)
        weights_[b.weightIndex].reset(new Memory());
      return a;
    }
    a.id = p.root[id];
    a.tokenRowBytes = p.rowBytes[id];
    return a;
  };
  // A weight operand: as stored, or (`nk`: the kernel reads W [N, K] and
  // the plan stores it [K, N]) its transposed copy, marked for upload.
  auto weightArg = [&](uint32_t id, bool nk) {
    ArgRef a = buffer(id, /*markStored=*/!nk);
    if (nk) {
      a.source = Source::WeightNK;
      transposed_[a.id].reset(new Memory());
    }
    return a;
  };
  // A GEMM's split-K `partials` or `counters`: the program's workspaces,
  // sized per row for the largest GEMM (they run one at a time and share
  // them).
  auto gemmSplitScratch = [&](const KernelInfo &k, const KernelArgInfo &arg) {
    ArgRef a;
    if (arg.name == "partials") {
      a.source = Source::Partials;
      p.partialFloatsPerRow =
          std::max(p.partialFloatsPerRow,
                   arg.shape[0] / int64_t(std::stoll(k.param("tokens"))));
    } else {
      a.source = Source::Counters;
      p.countersPerRowTile = std::max(p.countersPerRowTile, arg.shape[0]);
    }
    return a;
  };

  p.steps.resize(entry.steps.size());
  for (size_t i = 0; i < entry.steps.size(); ++i) {
    const Step &s = entry.steps[i];
    StepProgram &sp = p.steps[i];
    sp.kind = s.kind;
    auto where = [&] {
      return "entry point '" + entry.name + "' step #" + std::to_string(i) +
             " (" + opKindName(s.kind) + ")";
    };
    if (s.kind == OpKind::View)
      continue;
    if (s.kind == OpKind::GatherLastTokens) {
      p.capturable = false;
      sp.gatherFrom = p.root[s.operands[0]];
      sp.gatherTo = p.root[s.results[0]];
      sp.gatherRowBytes = p.rowBytes[s.operands[0]];
      continue;
    }
    const std::vector<uint32_t> &kernels = binding->steps[i];
    for (uint32_t k : kernels)
      if (table.kernels[k].status != KernelStatus::Generated)
        return makeError(StatusCode::Unimplemented, "no GPU kernel for ",
                         where(), ": ", table.kernels[k].family, " ",
                         table.kernels[k].reason);
    std::vector<std::string> families = expectedFamilies(s, decode);
    bool matches = families.size() == kernels.size();
    for (size_t j = 0; matches && j < kernels.size(); ++j)
      matches = table.kernels[kernels[j]].family == families[j];
    if (!matches || families.empty())
      return makeError(StatusCode::Unimplemented, "the CUDA device cannot run ",
                       where(), " with the kernels the artifact binds to it");
    bool transposed = s.getInt(AttrKey::TransposeWeight) != 0;
    uint32_t rowBuffer = s.results.empty() ? s.operands[1] : s.results[0];
    Sym rows = entry.buffers[rowBuffer].shape.empty()
                   ? Sym::None
                   : entry.buffers[rowBuffer].shape[0].sym;
    int32_t layer = static_cast<int32_t>(s.getInt(AttrKey::Layer));
    for (size_t j = 0; j < kernels.size(); ++j) {
      const KernelInfo &k = table.kernels[kernels[j]];
      Launch launch;
      launch.kernel = kernels[j];
      launch.perSequence = k.family == "paged_prefill";
      p.capturable &= !launch.perSequence;
      launch.rows = rows;
      auto weight = [&](uint32_t id) {
        return weightArg(id, k.weightLayout == WeightLayout::NK && !transposed);
      };
      auto scratch = [&](uint32_t slot, int64_t elements) {
        int64_t row = elements * dtypeBytes(k.args[0].dtype);
        p.scratchRowBytes[slot] = std::max(p.scratchRowBytes[slot], row);
        ArgRef a;
        a.source = Source::Scratch;
        a.id = slot;
        a.tokenRowBytes = row;
        return a;
      };
      // Binds each argument of `kk` (the step's kernel, or its row-chunked
      // variant) by name.
      auto resolve = [&](const KernelInfo &kk,
                         std::vector<ArgRef> &out) -> Status {
        for (const KernelArgInfo &arg : kk.args) {
          const std::string &nm = arg.name;
          auto op = [&](size_t idx) { return buffer(s.operands[idx]); };
          auto res = [&](size_t idx) { return buffer(s.results[idx]); };
          ArgRef a;
          bool known = true;
          // A QuantLinear step's argument; unknown when the step lacks it.
          auto quantOperand = [&](const std::string &name) {
            uint32_t id = quantLinearBuffer(s, name);
            known = id != kNoBuffer;
            return known ? buffer(id) : ArgRef();
          };
          if (nm == "step") {
            a.source = Source::StepInfo;
            a.id = rows == Sym::N ? 1 : 0;
          } else if (nm == "cache") {
            a.source = Source::CacheLayer;
            a.id = static_cast<uint32_t>(layer);
          } else if ((nm == "partials" || nm == "counters") &&
                     kk.family == "matmul") {
            a = gemmSplitScratch(kk, arg);
          } else if ((kk.family == "matmul" || kk.family == "qdequant") &&
                     s.kind == OpKind::QuantLinear) {
            // The dense W in scratch: written by qdequant, read by the GEMM.
            if (nm == "w") {
              a.source = Source::DequantScratch;
              p.dequantBytes =
                  std::max(p.dequantBytes, arg.shape[0] * arg.shape[1] *
                                               int64_t(dtypeBytes(arg.dtype)));
            } else {
              a = quantOperand(nm);
            }
          } else if (kk.family == "gemv_gated" && s.kind == OpKind::GatedMLP) {
            a = nm == "x"      ? op(0)
                : nm == "w"    ? weight(s.operands[1])
                : nm == "w_up" ? weight(s.operands[2])
                               : scratch(2, k.args[2].shape[0]);
          } else if (k.family == "gemv" && s.kind == OpKind::GatedMLP) {
            int64_t inter = k.args[2].shape[0];
            if (j == 3)
              a = nm == "x"   ? scratch(2, arg.shape[0])
                  : nm == "w" ? weight(s.operands[3])
                              : res(0);
            else
              a = nm == "x"   ? op(0)
                  : nm == "w" ? weight(s.operands[1 + j])
                              : scratch(static_cast<uint32_t>(j), inter);
          } else if (kk.family == "sgemv" || kk.family == "smatmul") {
            // (x, values, metadata, [bias]) -> y
            a = nm == "x"        ? op(0)
                : nm == "values" ? op(1)
                : nm == "meta"   ? op(2)
                : nm == "bias"   ? op(3)
                                 : res(0);
          } else if (kk.family == "qgemv") {
            a = quantOperand(nm);
          } else if (k.family == "silu_mul") {
            a = scratch(nm == "gate" ? 0 : nm == "up" ? 1 : 2, arg.shape[0]);
          } else if (k.family == "gemv") {
            a = nm == "x"      ? op(0)
                : nm == "w"    ? weight(s.operands[1])
                : nm == "bias" ? op(2)
                               : res(0);
          } else if (nm == "block_tables") {
            a.source = Source::BlockTables;
            p.tableWidth = arg.shape[1];
            a.seqRowBytes = arg.shape[1] * 4;
          } else if (nm == "partials") {
            a.source = Source::Partials;
            p.partialFloatsPerSeq =
                std::max(p.partialFloatsPerSeq, arg.shape[0]);
          } else if (nm == "counters") {
            a.source = Source::Counters;
            p.countersPerSeq = std::max(p.countersPerSeq, arg.shape[0]);
          } else if (nm == "query_start_loc") {
            a.source = Source::SeqStarts;
            a.seqRowBytes = 8;
          } else if (nm == "context_lens") {
            a = op(3);
            a.tokenRowBytes = 0;
            a.seqRowBytes = 4;
          } else if (nm == "q" || nm == "x" || nm == "table" || nm == "a" ||
                     nm == "positions") {
            a = op(0);
          } else if (nm == "weight" || nm == "ids" || nm == "b" ||
                     nm == "key") {
            a = op(1);
          } else if (nm == "value" || (nm == "cos" && s.kind == OpKind::Rope)) {
            a = s.kind == OpKind::Rope ? op(1) : op(2);
          } else if (nm == "sin" && s.kind == OpKind::Rope) {
            a = op(2);
          } else if (nm == "slot_mapping") {
            a = op(3);
          } else if (nm == "out" || nm == "cos" || nm == "y") {
            a = res(0);
          } else if (nm == "sin") {
            a = res(1);
          } else {
            known = false;
          }
          if (!known)
            return makeError(StatusCode::Unimplemented, "kernel '", kk.name,
                             "' for ", where(), " has an argument '", nm,
                             "' the CUDA device does not know");
          out.push_back(a);
        }
        return Status::ok();
      };
      KILN_RETURN_IF_ERROR(resolve(k, launch.args));
      // Row-chunked gemv and tensor-core GEMM variants index rows
      // themselves: whole buffers, no advance.
      auto variant = [&](const char *key, int32_t &index, int64_t &rows,
                         std::vector<ArgRef> &args) -> Status {
        std::string name = k.param(key);
        if (name.empty())
          return Status::ok();
        const KernelInfo *v = table.find(name);
        if (!v || v->status != KernelStatus::Generated)
          return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                           "' names a missing ", key, " variant '", name, "'");
        index = static_cast<int32_t>(v - table.kernels.data());
        // Row-chunked variants carry `tokens` (validated); qdequant has
        // no rows.
        std::string tokens = v->param("tokens");
        rows = tokens.empty() ? 1 : std::stoll(tokens);
        KILN_RETURN_IF_ERROR(resolve(*v, args));
        for (ArgRef &a : args)
          a.tokenRowBytes = 0;
        return Status::ok();
      };
      KILN_RETURN_IF_ERROR(variant("chunked", launch.chunkedKernel,
                                   launch.chunkRows, launch.chunkedArgs));
      KILN_RETURN_IF_ERROR(variant("tiled", launch.tiledKernel,
                                   launch.tiledRows, launch.tiledArgs));
      KILN_RETURN_IF_ERROR(variant("skinny", launch.skinnyKernel,
                                   launch.skinnyRows, launch.skinnyArgs));
      int64_t dequantRows = 0;
      KILN_RETURN_IF_ERROR(variant("dequant", launch.dequantKernel, dequantRows,
                                   launch.dequantArgs));
      if (std::string name = k.param("flash"); !name.empty()) {
        const KernelInfo *v = table.find(name);
        if (!v || v->status != KernelStatus::Generated)
          return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                           "' names a missing flash variant '", name, "'");
        launch.flashKernel = static_cast<int32_t>(v - table.kernels.data());
        launch.flashRows = std::stoll(v->param("tokens"));
        KILN_RETURN_IF_ERROR(resolve(*v, launch.flashArgs));
      }
      if (s.kind == OpKind::GatedMLP && j == 0 && !k.param("gated").empty()) {
        const KernelInfo *v = table.find(k.param("gated"));
        if (!v || v->status != KernelStatus::Generated)
          return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                           "' names a missing gated variant '",
                           k.param("gated"), "'");
        launch.gatedKernel = static_cast<int32_t>(v - table.kernels.data());
        KILN_RETURN_IF_ERROR(resolve(*v, launch.gatedArgs));
        KILN_RETURN_IF_ERROR(variant("gated_chunked", launch.gatedChunkedKernel,
                                     launch.gatedChunkRows,
                                     launch.gatedChunkedArgs));
      }
      // The grouped few-row GEMM over gate and up: x, w (gate), w1 (up), y
      // and y1 (the gate and up scratch rows), step and the split-K scratch.
      if (s.kind == OpKind::GatedMLP && j == 0 && !k.param("grouped").empty()) {
        const KernelInfo *v = table.find(k.param("grouped"));
        if (!v || v->status != KernelStatus::Generated)
          return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                           "' names a missing grouped variant '",
                           k.param("grouped"), "'");
        launch.groupedKernel = static_cast<int32_t>(v - table.kernels.data());
        launch.groupedRows = std::stoll(v->param("tokens"));
        int64_t inter = k.args[2].shape[0];
        for (const KernelArgInfo &arg : v->args) {
          const std::string &nm = arg.name;
          ArgRef a;
          if (nm == "x") {
            a = buffer(s.operands[0]);
          } else if (nm == "w" || nm == "w1") {
            a = weight(s.operands[nm == "w" ? 1 : 2]);
          } else if (nm == "y" || nm == "y1") {
            a = scratch(nm == "y" ? 0 : 1, inter);
          } else if (nm == "step") {
            a.source = Source::StepInfo;
            a.id = rows == Sym::N ? 1 : 0;
          } else if (nm == "partials" || nm == "counters") {
            a = gemmSplitScratch(*v, arg);
          } else {
            return makeError(StatusCode::FailedPrecondition, "kernel '",
                             v->name, "' has an argument '", nm,
                             "' the CUDA device does not know");
          }
          a.tokenRowBytes = 0;
          launch.groupedArgs.push_back(a);
        }
      }
      launch.skipWhenGated = s.kind == OpKind::GatedMLP && (j == 1 || j == 2);
      launch.isUp = s.kind == OpKind::GatedMLP && j == 1;
      launch.isGate = s.kind == OpKind::GatedMLP && j == 0;
      sp.launches.push_back(std::move(launch));
    }
  }

  // The fused kernels are looked up by family and shape parameters, and
  // their arguments bound by name to the fused steps' buffers.
  using Params = std::vector<std::pair<const char *, std::string>>;
  auto findFused = [&](const char *family,
                       const Params &params) -> const KernelInfo * {
    const KernelInfo *found = nullptr;
    for (const KernelInfo &k : table.kernels) {
      bool match = k.status == KernelStatus::Generated && k.family == family;
      for (const auto &[key, value] : params)
        match = match && k.param(key) == value;
      if (match)
        found = &k;
    }
    return found;
  };
  // The parameters a group of quantized linears' qgemv_multi is looked up
  // by: the rows of each weight, K, and the packed format.
  auto quantMultiParams = [&](const SharedInputLinears &group) -> Params {
    const Step &first = entry.steps[group.steps.front()];
    std::string rows;
    for (int64_t n : group.rows)
      rows += (rows.empty() ? "" : "_") + std::to_string(n);
    bool zeroPoints =
        first.operands.size() > 3 && first.operands[3] != kNoBuffer;
    bool fp8 = first.getInt(AttrKey::QuantFormat) ==
               static_cast<int64_t>(QuantFormat::FP8E4M3);
    return {{"n", rows},
            {"k", std::to_string(group.k)},
            {"dtype", dtypeName(entry.buffers[first.results[0]].dtype)},
            {"bits", std::to_string(first.getInt(AttrKey::Bits))},
            {"group_size", std::to_string(first.getInt(AttrKey::GroupSize))},
            {"scale_dtype", dtypeName(entry.buffers[first.operands[2]].dtype)},
            {"zero_point", zeroPoints ? "1" : ""},
            {"format", fp8 ? "fp8e4m3" : ""}};
  };
  auto bindByName = [&](const KernelInfo &k,
                        const std::function<uint32_t(const std::string &)> &of,
                        std::vector<ArgRef> &out) -> Status {
    for (const KernelArgInfo &arg : k.args) {
      uint32_t id = of(arg.name);
      if (id == kNoBuffer)
        return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                         "' has an argument '", arg.name,
                         "' the CUDA device does not know");
      out.push_back(buffer(id));
    }
    return Status::ok();
  };

  // Residual add + RMSNorm pairs with an add_rms_norm kernel of their
  // shape: one launch, for steps of any number of rows.
  for (const AddNorm &pair : findAddNorms(entry)) {
    const Step &add = entry.steps[pair.add];
    const Step &norm = entry.steps[pair.norm];
    const KernelInfo *fused =
        findFused("add_rms_norm",
                  {{"hidden", std::to_string(pair.hidden)},
                   {"dtype", dtypeName(entry.buffers[norm.results[0]].dtype)},
                   {"eps", epsilonParam(norm)}});
    if (!fused)
      continue;
    StepProgram &head = p.steps[pair.add];
    head.addNormKernel = static_cast<int32_t>(fused - table.kernels.data());
    head.addNormRows = entry.buffers[add.results[0]].shape[0].sym;
    KILN_RETURN_IF_ERROR(bindByName(
        *fused,
        [&](const std::string &name) {
          return name == "x"          ? add.operands[0]
                 : name == "residual" ? add.operands[1]
                 : name == "weight"   ? norm.operands[1]
                 : name == "sum"      ? add.results[0]
                 : name == "out"      ? norm.results[0]
                                      : kNoBuffer;
        },
        head.addNormArgs));
    p.steps[pair.norm].fusedInto = static_cast<int64_t>(pair.add);
  }

  // SiLU + Mul pairs (a quantized gated MLP's activation) with a silu_mul
  // kernel of their shape: one launch, for steps of any number of rows.
  for (const SiluMul &pair : findSiluMuls(entry)) {
    const KernelInfo *fused = findFused(
        "silu_mul", {{"dtype", dtypeName(entry.buffers[pair.out].dtype)},
                     {"size", std::to_string(pair.width)}});
    if (!fused)
      continue;
    StepProgram &head = p.steps[pair.silu];
    head.siluMulKernel = static_cast<int32_t>(fused - table.kernels.data());
    head.siluMulRows = entry.buffers[pair.out].shape[0].sym;
    KILN_RETURN_IF_ERROR(bindByName(
        *fused,
        [&](const std::string &name) {
          return name == "gate"  ? pair.gate
                 : name == "up"  ? pair.up
                 : name == "out" ? pair.out
                                 : kNoBuffer;
        },
        head.siluMulArgs));
    p.steps[pair.mul].fusedInto = static_cast<int64_t>(pair.silu);
  }

  // q/k rope pairs with a rope_pair kernel of their shapes.
  for (const RopePair &pair : findRopePairs(entry)) {
    const Step &first = entry.steps[pair.first];
    const Step &second = entry.steps[pair.second];
    const Buffer &x = entry.buffers[first.operands[0]];
    const Buffer &x2 = entry.buffers[second.operands[0]];
    // rope_pair_kv when the keys' cache write follows and the artifact has
    // one, else rope_pair.
    Params ropeParams = {
        {"dtype", dtypeName(x.dtype)},
        {"table_dtype", dtypeName(entry.buffers[first.operands[1]].dtype)},
        {"heads", std::to_string(x.shape[1].value)},
        {"second_heads", std::to_string(x2.shape[1].value)},
        {"head_dim", std::to_string(x.shape[2].value)},
        {"rotary_dim", std::to_string(first.getInt(AttrKey::RotaryDim))}};
    const KernelInfo *fused = nullptr;
    if (pair.hasKVWrite()) {
      Params kvParams = ropeParams;
      kvParams.push_back({"block_size", std::to_string(cache_.blockSize)});
      fused = findFused("rope_pair_kv", kvParams);
    }
    if (!fused)
      fused = findFused("rope_pair", ropeParams);
    if (!fused)
      continue;
    bool withKV = fused->family == "rope_pair_kv";
    StepProgram &head = p.steps[pair.first];
    head.ropePairKernel = static_cast<int32_t>(fused - table.kernels.data());
    head.ropePairRows = x.shape[0].sym;
    const Step *write = withKV ? &entry.steps[pair.kvWrite] : nullptr;
    for (const KernelArgInfo &arg : fused->args) {
      if (write && arg.name == "cache") {
        ArgRef a;
        a.source = Source::CacheLayer;
        a.id = static_cast<uint32_t>(write->getInt(AttrKey::Layer));
        head.ropePairArgs.push_back(a);
        continue;
      }
      uint32_t id = arg.name == "x"                       ? first.operands[0]
                    : arg.name == "x2"                    ? second.operands[0]
                    : arg.name == "cos"                   ? first.operands[1]
                    : arg.name == "sin"                   ? first.operands[2]
                    : arg.name == "out"                   ? first.results[0]
                    : arg.name == "out2"                  ? second.results[0]
                    : write && arg.name == "value"        ? write->operands[2]
                    : write && arg.name == "slot_mapping" ? write->operands[3]
                                                          : kNoBuffer;
      if (id == kNoBuffer)
        return makeError(StatusCode::FailedPrecondition, "kernel '",
                         fused->name, "' has an argument '", arg.name,
                         "' the CUDA device does not know");
      head.ropePairArgs.push_back(buffer(id));
    }
    p.steps[pair.second].fusedInto = static_cast<int64_t>(pair.first);
    if (withKV)
      p.steps[pair.kvWrite].fusedInto = static_cast<int64_t>(pair.first);
  }

  // Shared-input linears (q, k, v) with a gemv_multi kernel of their
  // shapes: one launch for steps of one row.
  for (const SharedInputLinears &group : findSharedInputLinears(entry)) {
    const Step &first = entry.steps[group.steps.front()];
    std::string rows;
    for (int64_t n : group.rows)
      rows += (rows.empty() ? "" : "_") + std::to_string(n);
    const KernelInfo *multi =
        findFused("gemv_multi",
                  {{"n", rows},
                   {"k", std::to_string(group.k)},
                   {"dtype", dtypeName(entry.buffers[first.operands[1]].dtype)},
                   {"add_norm", ""},
                   {"tokens", ""}});
    if (!multi)
      continue;
    StepProgram &head = p.steps[group.steps.front()];
    head.multiKernel = static_cast<int32_t>(multi - table.kernels.data());
    bool transposed = first.getInt(AttrKey::TransposeWeight) != 0;
    // x, w, w1.., y, y1..: the member's index follows the letter; the
    // grouped GEMM adds step, partials and counters (whole buffers: it
    // indexes rows itself).
    auto bindMembers = [&](const KernelInfo &k,
                           std::vector<ArgRef> &out) -> Status {
      for (const KernelArgInfo &arg : k.args) {
        ArgRef a;
        if (arg.name == "step") {
          a.source = Source::StepInfo;
          a.id = 0;
        } else if (arg.name == "partials" || arg.name == "counters") {
          a = gemmSplitScratch(k, arg);
        } else {
          // x, w, y, or w/y followed by the member's index; any other name
          // (a corrupt or foreign table) is refused below.
          bool known = (arg.name == "x" || arg.name[0] == 'w' ||
                        arg.name[0] == 'y') &&
                       arg.name.find_first_not_of("0123456789", 1) ==
                           std::string::npos &&
                       arg.name.size() <= 2;
          if (!known)
            return makeError(StatusCode::FailedPrecondition, "kernel '",
                             k.name, "' has an argument '", arg.name,
                             "' the CUDA device does not know");
          size_t member =
              arg.name.size() > 1 ? std::stoul(arg.name.substr(1)) : 0;
          if (member >= group.steps.size())
            return makeError(StatusCode::FailedPrecondition, "kernel '",
                             k.name, "' has an argument '", arg.name,
                             "' beyond its ", group.steps.size(), " linears");
          const Step &s = entry.steps[group.steps[member]];
          if (arg.name[0] == 'x') {
            a = buffer(s.operands[0]);
          } else if (arg.name[0] == 'y') {
            a = buffer(s.results[0]);
          } else {
            a = weightArg(s.operands[1],
                          k.weightLayout == WeightLayout::NK && !transposed);
          }
        }
        a.tokenRowBytes = 0;
        out.push_back(a);
      }
      return Status::ok();
    };
    KILN_RETURN_IF_ERROR(bindMembers(*multi, head.multiArgs));
    // The grouped GEMMs named by the gemv_multi kernel: `skinny` for steps
    // of 2 to tiledMinRows() - 1 rows, `tiled` for more.
    auto groupedVariant = [&](const char *key, GroupedGemm &out) -> Status {
      std::string name = multi->param(key);
      if (name.empty())
        return Status::ok();
      const KernelInfo *grouped = table.find(name);
      if (!grouped || grouped->status != KernelStatus::Generated)
        return makeError(StatusCode::FailedPrecondition, "kernel '",
                         multi->name, "' names a missing ", key, " variant '",
                         name, "'");
      out.kernel = static_cast<int32_t>(grouped - table.kernels.data());
      out.rows = std::stoll(grouped->param("tokens"));
      return bindMembers(*grouped, out.args);
    };
    KILN_RETURN_IF_ERROR(groupedVariant("skinny", head.groupedSkinny));
    KILN_RETURN_IF_ERROR(groupedVariant("tiled", head.groupedTiled));
    KILN_RETURN_IF_ERROR(groupedVariant("chunked", head.groupedChunked));
    for (size_t m = 1; m < group.steps.size(); ++m)
      p.steps[group.steps[m]].fusedInto =
          static_cast<int64_t>(group.steps.front());
  }

  // Shared-input quantized linears with a qgemv_multi kernel: the same,
  // arguments named packed, scales, [zeros], y with the member's index
  // after the first (packed1, y2, ...).
  for (const SharedInputLinears &group : findSharedInputQuantLinears(entry)) {
    Params params = quantMultiParams(group);
    params.push_back({"add_norm", ""});
    const KernelInfo *multi = findFused("qgemv_multi", params);
    if (!multi)
      continue;
    StepProgram &head = p.steps[group.steps.front()];
    head.multiKernel = static_cast<int32_t>(multi - table.kernels.data());
    auto operandOf = [&](const std::string &name) -> uint32_t {
      size_t digits = name.find_first_of("0123456789");
      size_t member =
          digits == std::string::npos ? 0 : std::stoul(name.substr(digits));
      if (member >= group.steps.size())
        return kNoBuffer;
      return quantLinearBuffer(entry.steps[group.steps[member]],
                               name.substr(0, digits));
    };
    KILN_RETURN_IF_ERROR(bindByName(*multi, operandOf, head.multiArgs));
    for (size_t m = 1; m < group.steps.size(); ++m)
      p.steps[group.steps[m]].fusedInto =
          static_cast<int64_t>(group.steps.front());
  }

  // A residual add + norm whose row q/k/v or gate/up read: the gemv with
  // the add and norm in its prologue, for steps of one row.
  for (const NormFedLinears &fed : findNormFedLinears(entry)) {
    const Step &add = entry.steps[fed.addNorm.add];
    const Step &norm = entry.steps[fed.addNorm.norm];
    const Step &consumer = entry.steps[fed.consumer];
    // CTA 0 stores the sum while the others read x and the residual.
    uint32_t sumRoot = p.root[add.results[0]];
    if (sumRoot == p.root[add.operands[0]] ||
        sumRoot == p.root[add.operands[1]])
      continue;
    bool transposed = consumer.getInt(AttrKey::TransposeWeight) != 0;
    std::string rows;
    int64_t inter = 0;
    if (fed.gated) {
      const Buffer &gate = entry.buffers[consumer.operands[1]];
      if (gate.shape.size() != 2)
        continue;
      inter = gate.shape[transposed ? 0 : 1].value;
      rows = std::to_string(inter);
    } else {
      for (int64_t n : fed.group.rows)
        rows += (rows.empty() ? "" : "_") + std::to_string(n);
    }
    Params params = {{"n", rows},
                     {"k", std::to_string(fed.addNorm.hidden)},
                     {"dtype", dtypeName(entry.buffers[norm.results[0]].dtype)},
                     {"tokens", ""},
                     {"add_norm", "1"},
                     {"eps", epsilonParam(norm)},
                     {"rope", ""}};
    const KernelInfo *fused =
        findFused(fed.gated ? "gemv_gated" : "gemv_multi", params);
    if (!fused)
      continue;
    StepProgram &head = p.steps[fed.addNorm.add];
    head.normGemv.kernel = static_cast<int32_t>(fused - table.kernels.data());
    head.normGemv.consumer = fed.consumer;
    head.normGemv.gated = fed.gated;
    p.steps[fed.addNorm.norm].fusedInto = static_cast<int64_t>(fed.addNorm.add);
    // The arguments of `k`; with `rope`, y and y1 are the Rope pair's
    // (rotated) results and the rotation's and cache write's inputs follow.
    auto bindArgs = [&](const KernelInfo &k, const RopePair *rope,
                        std::vector<ArgRef> &out) -> Status {
      const Step *ropeQ = rope ? &entry.steps[rope->first] : nullptr;
      const Step *ropeK = rope ? &entry.steps[rope->second] : nullptr;
      const Step *write = rope ? &entry.steps[rope->kvWrite] : nullptr;
      auto weight = [&](uint32_t id) {
        return weightArg(id, k.weightLayout == WeightLayout::NK && !transposed);
      };
      for (const KernelArgInfo &arg : k.args) {
        const std::string &nm = arg.name;
        size_t member = nm.size() == 2 && std::isdigit(nm[1]) ? nm[1] - '0' : 0;
        ArgRef a;
        if (nm == "step") {
          a.source = Source::StepInfo;
          a.id = 0;
        } else if (nm == "x" || nm == "residual" || nm == "sum" ||
                   nm == "normed" || nm == "norm_weight") {
          a = buffer(nm == "x"          ? add.operands[0]
                     : nm == "residual" ? add.operands[1]
                     : nm == "sum"      ? add.results[0]
                     : nm == "normed"   ? norm.results[0]
                                        : norm.operands[1]);
        } else if (fed.gated && (nm == "w" || nm == "w_up")) {
          a = weight(consumer.operands[nm == "w" ? 1 : 2]);
        } else if (fed.gated && nm == "y") {
          // gate/up's silu product: the scratch row the down gemv reads.
          int64_t row = inter * int64_t(dtypeBytes(arg.dtype));
          p.scratchRowBytes[2] = std::max(p.scratchRowBytes[2], row);
          a.source = Source::Scratch;
          a.id = 2;
        } else if (rope && (nm == "y" || nm == "y1")) {
          a = buffer((nm == "y" ? ropeQ : ropeK)->results[0]);
        } else if (rope && (nm == "cos" || nm == "sin")) {
          a = buffer(ropeQ->operands[nm == "cos" ? 1 : 2]);
        } else if (rope && nm == "slot_mapping") {
          a = buffer(write->operands[3]);
        } else if (rope && nm == "cache") {
          a.source = Source::CacheLayer;
          a.id = static_cast<uint32_t>(write->getInt(AttrKey::Layer));
        } else if (!fed.gated && member < fed.group.steps.size() &&
                   (nm[0] == 'w' || nm[0] == 'y')) {
          const Step &m = entry.steps[fed.group.steps[member]];
          a = nm[0] == 'w' ? weight(m.operands[1]) : buffer(m.results[0]);
        } else {
          return makeError(StatusCode::FailedPrecondition, "kernel '", k.name,
                           "' has an argument '", nm,
                           "' the CUDA device does not know");
        }
        a.tokenRowBytes = 0;
        out.push_back(a);
      }
      return Status::ok();
    };
    KILN_RETURN_IF_ERROR(bindArgs(*fused, nullptr, head.normGemv.args));
    if (std::string name = fused->param("chunked"); !name.empty()) {
      const KernelInfo *chunked = table.find(name);
      if (!chunked || chunked->status != KernelStatus::Generated)
        return makeError(StatusCode::FailedPrecondition, "kernel '",
                         fused->name, "' names a missing chunked variant '",
                         name, "'");
      head.normGemv.chunkedKernel =
          static_cast<int32_t>(chunked - table.kernels.data());
      head.normGemv.chunkRows = std::stoll(chunked->param("tokens"));
      KILN_RETURN_IF_ERROR(
          bindArgs(*chunked, nullptr, head.normGemv.chunkedArgs));
    }
    // With the rotation and cache write too, where the Rope pair runs as
    // one rope_pair_kv launch (so skipping its first step skips it all).
    if (!fed.hasRope() ||
        p.steps[fed.rope.kvWrite].fusedInto !=
            static_cast<int64_t>(fed.rope.first) ||
        p.steps[fed.rope.first].ropePairKernel < 0)
      continue;
    const Buffer &q = entry.buffers[entry.steps[fed.rope.first].operands[0]];
    params.back() = {"rope", "1"};
    params.push_back({"head_dim", std::to_string(q.shape[2].value)});
    params.push_back({"block_size", std::to_string(cache_.blockSize)});
    const KernelInfo *withRope = findFused("gemv_multi", params);
    if (!withRope)
      continue;
    head.normGemv.ropeKernel =
        static_cast<int32_t>(withRope - table.kernels.data());
    head.normGemv.ropeStep = fed.rope.first;
    KILN_RETURN_IF_ERROR(
        bindArgs(*withRope, &fed.rope, head.normGemv.ropeArgs));
  }

  // The same for quantized q/k/v or gate/up: the qgemv_multi with the add
  // and norm in its prologue (add_norm=1), launched at the add for a row.
  for (const NormFedLinears &fed : findNormFedQuantLinears(entry)) {
    const Step &add = entry.steps[fed.addNorm.add];
    const Step &norm = entry.steps[fed.addNorm.norm];
    StepProgram &head = p.steps[fed.addNorm.add];
    uint32_t sumRoot = p.root[add.results[0]];
    if (head.normGemv.kernel >= 0 || sumRoot == p.root[add.operands[0]] ||
        sumRoot == p.root[add.operands[1]])
      continue;
    Params params = quantMultiParams(fed.group);
    params.push_back({"add_norm", "1"});
    params.push_back({"eps", epsilonParam(norm)});
    const KernelInfo *fused = findFused("qgemv_multi", params);
    if (!fused)
      continue;
    auto operandOf = [&](const std::string &name) -> uint32_t {
      if (name == "x" || name == "residual")
        return add.operands[name == "x" ? 0 : 1];
      if (name == "sum")
        return add.results[0];
      if (name == "normed")
        return norm.results[0];
      if (name == "norm_weight")
        return norm.operands[1];
      size_t digits = name.find_first_of("0123456789");
      size_t member =
          digits == std::string::npos ? 0 : std::stoul(name.substr(digits));
      if (member >= fed.group.steps.size())
        return kNoBuffer;
      return quantLinearBuffer(entry.steps[fed.group.steps[member]],
                               name.substr(0, digits));
    };
    std::vector<ArgRef> args;
    KILN_RETURN_IF_ERROR(bindByName(*fused, operandOf, args));
    head.normGemv.kernel = static_cast<int32_t>(fused - table.kernels.data());
    head.normGemv.consumer = fed.consumer;
    head.normGemv.gated = false;
    head.normGemv.args = std::move(args);
    p.steps[fed.addNorm.norm].fusedInto = static_cast<int64_t>(fed.addNorm.add);
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// run
//===----------------------------------------------------------------------===//

namespace {

/// Appends `values` to `out` as elements of `dtype` (an integer type).
void stageInts(std::vector<uint8_t> &out, size_t at, DType dtype,
               const int64_t *values, size_t count) {
  for (size_t k = 0; k < count; ++k) {
    if (dtype == DType::I32) {
      int32_t v = static_cast<int32_t>(values[k]);
      std::memcpy(out.data() + at + 4 * k, &v, 4);
    } else {
      std::memcpy(out.data() + at + 8 * k, &values[k], 8);
    }
  }
}

template <typename T> std::vector<int64_t> widen(const std::vector<T> &v) {
  return std::vector<int64_t>(v.begin(), v.end());
}

int64_t align(int64_t v) { return (v + 255) / 256 * 256; }

/// Rows from which a linear runs on the tensor cores rather than as
/// row-chunked gemv (which reads W once per 8 rows but spreads over many
/// CTAs): the 128 x 128 GEMM tile leaves most SMs idle on the N / 128 CTAs
/// of a few rows. KILN_TILED_MIN_ROWS overrides it (measuring).
/// KILN_MULTI_GEMV=0: shared-input linears run one gemv each (measuring,
/// bisecting).
bool multiGemvEnabled() {
  static const bool enabled = envSwitchOn("KILN_MULTI_GEMV");
  return enabled;
}

/// KILN_ROPE_PAIR=0: q and k rotate in two launches.
bool ropePairEnabled() {
  static const bool enabled = envSwitchOn("KILN_ROPE_PAIR");
  return enabled;
}

/// KILN_ADD_NORM=0: residual adds and their RMSNorms run as two kernels.
bool addNormEnabled() {
  static const bool enabled = envSwitchOn("KILN_ADD_NORM");
  return enabled;
}

/// KILN_CHUNKED_FUSION=0 runs a few-row step's q/k/v and gate/up as
/// separate row-chunked gemvs (and silu_mul) where no few-row GEMM serves
/// them, instead of one row-chunked gemv_multi and one gated gemv.
bool chunkedFusionEnabled() {
  static const bool enabled = envSwitchOn("KILN_CHUNKED_FUSION");
  return enabled;
}

/// KILN_SILU_MUL=0 runs a SiLU + Mul pair as its two launches.
bool siluMulEnabled() {
  static const bool enabled = envSwitchOn("KILN_SILU_MUL");
  return enabled;
}

/// KILN_NORM_GEMV=0: the residual add + norm stays its own launch before
/// q/k/v and gate/up at one row (measuring, bisecting).
bool normGemvEnabled() {
  static const bool enabled = envSwitchOn("KILN_NORM_GEMV");
  return enabled;
}

/// KILN_ROPE_GEMV=0: the q/k rotation and the k/v cache write stay their
/// own launch (rope_pair_kv) after the q/k/v gemv at one row.
bool ropeGemvEnabled() {
  static const bool enabled = envSwitchOn("KILN_ROPE_GEMV");
  return enabled;
}

/// Appended rows from which a sequence's prefill attention runs on the
/// tensor cores (flash_prefill) rather than one CTA per row (paged_prefill,
/// which sums like paged_decode: speculative verify steps stay there).
int64_t flashMinRows() {
  static const int64_t rows = [] {
    const char *v = std::getenv("KILN_FLASH_MIN_ROWS");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t(16);
  }();
  return rows;
}

/// Most rows for which shared-input linears (q, k, v) run as one grouped
/// prefill GEMM: with few row tiles k and v alone leave most SMs idle
/// (H100, each pair in one command: 8B shape, 512 tokens 19.53 -> 17.56 ms
/// grouped; 1B, 512 tokens 4.43 -> 4.22), and at 2048 tokens grouping
/// still gains (1B: 10.46 / 10.78 ms apart, 10.31 / 10.24 grouped, two
/// rounds in one command). Earlier 2048-token runs that disagreed had
/// q/k/v on the few-row GEMM past this limit (see GemmRoute.h), so there is
/// no limit by default. KILN_GROUPED_MAX_ROWS sets one (0: never grouped).
int64_t groupedTiledMaxRows() {
  static const int64_t rows = [] {
    const char *v = std::getenv("KILN_GROUPED_MAX_ROWS");
    return v ? std::atoll(v) : std::numeric_limits<int64_t>::max();
  }();
  return rows;
}

int64_t tiledMinRows() {
  static const int64_t rows = [] {
    const char *v = std::getenv("KILN_TILED_MIN_ROWS");
    return v ? std::max<int64_t>(2, std::atoll(v)) : int64_t(64);
  }();
  return rows;
}

/// The kernel family (and whether grouped) for a step of `rows` rows under
/// the KILN_* switches: one rule for q/k/v, the gated MLP and lone linears.
rt::GemmRoute gemmRoute(int64_t rows) {
  rt::GemmRouteLimits limits;
  limits.tiledMinRows = tiledMinRows();
  limits.groupedTiledMaxRows = groupedTiledMaxRows();
  limits.fewRowsGemm = skinnyEnabled();
  limits.grouped = multiGemvEnabled();
  return rt::routeGemm(rows, limits);
}

/// Whether a step routed `route` runs linear launch `l` (the first of a
/// q/k/v group, a gated MLP's gate) on the row-chunked gemv and may take
/// its fused row-chunked variants (gemv_multi, gated gate/up + silu): a
/// grouped few-row route, the weights without a few-row GEMM of their own
/// (small models) and KILN_CHUNKED_FUSION on.
bool rowChunkedFusionServes(rt::GemmRoute route, const Launch &l) {
  return chunkedFusionEnabled() && route.family == rt::GemmFamily::FewRows &&
         route.grouped && !(l.skinnyKernel >= 0 && skinnyEnabled());
}

} // namespace

Status CudaDevice::run(const EntryPoint &entry, const ForwardBatch &batch,
                       Span<const int32_t> tokens, std::vector<float> &logits) {
  return execute(entry, batch, tokens, &logits, nullptr);
}

Status CudaDevice::runGreedy(const EntryPoint &entry, const ForwardBatch &batch,
                             Span<const int32_t> tokens,
                             std::vector<int32_t> &ids) {
  // Without an argmax kernel for the logits (f16 logits, an older
  // artifact), the host picks.
  if (argmaxKernel_ < 0 || entry.buffers[entry.output].dtype != DType::F32)
    return Device::runGreedy(entry, batch, tokens, ids);
  return execute(entry, batch, tokens, nullptr, &ids);
}

Status CudaDevice::runGreedyChain(const EntryPoint &entry,
                                  Span<const ForwardBatch> batches,
                                  Span<const int32_t> tokens,
                                  std::vector<int32_t> &ids) {
  auto found = programs_.find(&entry);
  // Only graph-captured steps whose ids the argmax kernel picks (else the
  // host loop of the base class, as with KILN_DEVICE_CHAIN=0).
  static const bool enabled = envSwitchOn("KILN_DEVICE_CHAIN");
  if (!enabled || batches.empty() || found == programs_.end() ||
      !found->second->capturable || !graphsEnabled_ || argmaxKernel_ < 0 ||
      entry.buffers[entry.output].dtype != DType::F32 ||
      entry.logits == LogitsMode::All)
    return Device::runGreedyChain(entry, batches, tokens, ids);
  int64_t rows = static_cast<int64_t>(tokens.size());
  for (const ForwardBatch &batch : batches)
    if (batch.numTokens() != rows || batch.numSequences() != rows ||
        !batch.copies.empty())
      return Device::runGreedyChain(entry, batches, tokens, ids);
  size_t steps = batches.size();
  size_t idBytes = steps * rows * 4;
  if (!chainIds_ || chainIds_->bytes < idBytes) {
    chainIds_.reset();
    KILN_ASSIGN_OR_RETURN(chainIds_,
                          Memory::allocate(d_, idBytes, "chained tokens"));
  }
  if (chainStaging_.size() < steps)
    chainStaging_.resize(steps, {nullptr, 0});
  std::vector<int32_t> placeholder(rows, 0), unused;
  ChainStep step;
  Status status = Status::ok();
  for (size_t r = 0; r < steps && status.isOk(); ++r) {
    step.slot = r;
    step.tokensFrom = r ? step.idsAt : 0;
    step.idsTo = chainIds_->ptr + r * rows * 4;
    chain_ = &step;
    status = execute(entry, batches[r],
                     r ? Span<const int32_t>(placeholder) : tokens, nullptr,
                     &unused);
    chain_ = nullptr;
  }
  // Whatever was issued finishes before the staging may be reused.
  Status synced =
      d_->check(d_->cuStreamSynchronize(stream_), "running the chain");
  KILN_RETURN_IF_ERROR(status);
  KILN_RETURN_IF_ERROR(synced);
  ids.resize(steps * rows);
  return d_->check(d_->cuMemcpyDtoH(ids.data(), chainIds_->ptr, idBytes),
                   "reading the chain's tokens");
}

Status CudaDevice::execute(const EntryPoint &entry, const ForwardBatch &batch,
                           Span<const int32_t> tokens,
                           std::vector<float> *logitsOut,
                           std::vector<int32_t> *idsOut) {
  auto found = programs_.find(&entry);
  if (!model_ || found == programs_.end())
    return makeError(StatusCode::FailedPrecondition, "entry point '",
                     entry.name, "' does not belong to the prepared model");
  Program &p = *found->second;
  timer_.beginStep();
  const KernelTable &table = *model_->kernels();
  int64_t T = batch.numTokens(), N = batch.numSequences(),
          M = batch.maxBlocksPerSequence;
  KILN_RETURN_IF_ERROR(checkForwardBatch(batch, tokens, cache_.blockSize));
  if ((int64_t)batch.appendLengths.size() != N)
    return makeError(StatusCode::InvalidArgument,
                     "inconsistent forward batch: ", batch.appendLengths.size(),
                     " append lengths for ", N, " sequences");
  // Everything a kernel indexes with is checked here: the kernels trust it.
  int64_t vocab = model_->config().vocabSize;
  int64_t slots = int64_t(cache_.numBlocks) * cache_.blockSize;
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab)
      return makeError(StatusCode::InvalidArgument, "token id ", tokens[t],
                       " at row ", t, " outside the vocabulary of ", vocab);
    if (batch.slotMapping[t] < 0 || batch.slotMapping[t] >= slots)
      return makeError(StatusCode::OutOfRange, "slot ", batch.slotMapping[t],
                       " at row ", t, " outside the cache's ", slots);
  }
  for (BlockId b : batch.blockTables)
    if (b < 0 || b >= cache_.numBlocks)
      return makeError(StatusCode::OutOfRange, "block ", b,
                       " outside the cache's ", cache_.numBlocks);
  for (int64_t i = 0; i < N; ++i) {
    int64_t ctx = batch.contextLengths[i];
    if (ctx < 0 || ctx > M * cache_.blockSize ||
        (p.tableWidth && ctx > p.tableWidth * cache_.blockSize))
      return makeError(StatusCode::OutOfRange, "sequence ", i, " has ", ctx,
                       " cached tokens; the kernels attend to at most ",
                       p.tableWidth * cache_.blockSize);
    if (batch.queryStartLoc[i + 1] - batch.queryStartLoc[i] !=
            batch.appendLengths[i] ||
        batch.queryStartLoc[i] < 0 || batch.queryStartLoc[i + 1] > T)
      return makeError(StatusCode::InvalidArgument,
                       "query_start_loc disagrees with the append lengths");
  }
  for (const BlockCopy &c : batch.copies)
    if (c.src < 0 || c.src >= cache_.numBlocks || c.dst < 0 ||
        c.dst >= cache_.numBlocks)
      return makeError(StatusCode::OutOfRange, "block copy ", c.src, " -> ",
                       c.dst, " outside the cache's ", cache_.numBlocks);

  // Memory of this step: staged inputs first (one upload), then
  // activations and scratch.
  SymbolValues sym;
  sym.T = T, sym.N = N, sym.M = M, sym.P = cache_.numBlocks;
  size_t nb = entry.buffers.size();
  std::vector<int64_t> offset(nb, -1);
  int64_t at = 0;
  // The block-table input is sized for the kernels' width, not this step's
  // M, so that every buffer keeps its address from step to step (CUDA
  // graphs replay against fixed addresses).
  SymbolValues layoutSym = sym;
  layoutSym.M = std::max<int64_t>(M, p.tableWidth);
  for (size_t id = 0; id < nb; ++id)
    if (entry.buffers[id].kind == BufferKind::Input) {
      offset[id] = at;
      at = align(at + layoutSym.numElements(entry.buffers[id].shape) *
                          dtypeBytes(entry.buffers[id].dtype));
    }
  int64_t tablesAt = at;
  at = align(at + N * p.tableWidth * 4);
  int64_t startsAt = at;
  at = align(at + N * 8);
  int64_t copiesAt = at;
  at = align(at + int64_t(batch.copies.size()) * 12);
  int64_t stepInfoAt = at;
  at = align(at + 32);
  int64_t stagedBytes = at;
  for (size_t id = 0; id < nb; ++id) {
    BufferKind kind = entry.buffers[id].kind;
    if (kind == BufferKind::Activation || kind == BufferKind::Output) {
      offset[id] = at;
      at = align(at + sym.numElements(entry.buffers[id].shape) *
                          dtypeBytes(entry.buffers[id].dtype));
    }
  }
  int64_t scratchAt[3];
  for (int k = 0; k < 3; ++k) {
    scratchAt[k] = at;
    at = align(at + T * p.scratchRowBytes[k]);
  }
  // Split-K workspaces: attention's per sequence, the GEMMs' per row (T
  // padded to the largest GEMM tile); kernels run one at a time, so they
  // share it.
  int64_t partialsAt = at;
  at = align(at + std::max(N * p.partialFloatsPerSeq,
                           (T + 127) * p.partialFloatsPerRow) *
                      4);
  // Greedy token of each logits row (runGreedy).
  int64_t outputRows = sym.resolve(entry.buffers[entry.output].shape[0]);
  int64_t idsAt = at;
  at = align(at + outputRows * 4);
  if (!p.arena || (int64_t)p.arena->bytes < at) {
    p.arena.reset();
    KILN_ASSIGN_OR_RETURN(
        p.arena, Memory::allocate(d_, at + at / 4, "step activations"));
  }
  // Arrival counters: tiles are at least 16 rows.
  int64_t counterSlots =
      std::max(N * p.countersPerSeq, (T + 15) / 16 * p.countersPerRowTile);
  if (counterSlots &&
      (!p.counters || (int64_t)p.counters->bytes < counterSlots * 4)) {
    p.counters.reset();
    int64_t bytes =
        std::max(std::max<int64_t>(N, 64) * p.countersPerSeq, counterSlots) * 4;
    KILN_ASSIGN_OR_RETURN(p.counters,
                          Memory::allocate(d_, bytes, "split-K counters"));
    KILN_RETURN_IF_ERROR(d_->check(
        d_->cuMemsetD8Async(p.counters->ptr, 0, bytes, stream_), "counters"));
  }
  if (p.dequantBytes > 0 && !p.dequant && T >= tiledMinRows()) {
    KILN_ASSIGN_OR_RETURN(
        p.dequant,
        Memory::allocate(d_, p.dequantBytes, "the dequantized-weight scratch"));
  }
  CUdeviceptr base = p.arena->ptr;
  p.ptr.assign(nb, 0);
  for (size_t id = 0; id < nb; ++id) {
    const Buffer &b = entry.buffers[id];
    if (offset[id] >= 0)
      p.ptr[id] = base + offset[id];
    else if (b.kind == BufferKind::Constant)
      p.ptr[id] = p.constants[id]->ptr;
  }
  for (int k = 0; k < 3; ++k)
    p.scratch[k] = base + scratchAt[k];
  p.tables = base + tablesAt;
  p.seqStarts = base + startsAt;
  p.copies = base + copiesAt;
  p.stepInfo = base + stepInfoAt;
  p.partials = base + partialsAt;

  // Stage and upload the batch's arrays.
  p.staging.assign(stagedBytes, 0);
  for (size_t id = 0; id < nb; ++id) {
    const Buffer &b = entry.buffers[id];
    if (b.kind != BufferKind::Input)
      continue;
    std::vector<int64_t> v;
    switch (b.role) {
    case InputRole::Tokens:
      v.assign(tokens.begin(), tokens.end());
      break;
    case InputRole::Positions:
      v = widen(batch.positions);
      break;
    case InputRole::QueryStartLoc:
      v = widen(batch.queryStartLoc);
      break;
    case InputRole::BlockTables:
      v = widen(batch.blockTables);
      break;
    case InputRole::ContextLens:
      v = widen(batch.contextLengths);
      break;
    case InputRole::SlotMapping:
      v = batch.slotMapping;
      break;
    case InputRole::None:
      break;
    }
    stageInts(p.staging, offset[id], b.dtype, v.data(), v.size());
  }
  for (int64_t i = 0; i < N; ++i) {
    int64_t blocks = std::min<int64_t>(M, p.tableWidth);
    for (int64_t j = 0; j < p.tableWidth; ++j) {
      int32_t v = j < blocks ? batch.block(i, j) : kPaddingBlockId;
      std::memcpy(&p.staging[tablesAt + (i * p.tableWidth + j) * 4], &v, 4);
    }
    int32_t starts[2] = {0, batch.appendLengths[i]};
    std::memcpy(&p.staging[startsAt + i * 8], starts, 8);
  }
  int32_t stepInfo[8] = {
      int32_t(T), int32_t(N), int32_t(M), int32_t(cache_.numBlocks),
      int32_t(N), int32_t(N), int32_t(M), int32_t(cache_.numBlocks)};
  std::memcpy(&p.staging[stepInfoAt], stepInfo, sizeof(stepInfo));
  for (size_t c = 0; c < batch.copies.size(); ++c) {
    int32_t row[3] = {batch.copies[c].src, batch.copies[c].dst,
                      batch.copies[c].numTokens};
    std::memcpy(&p.staging[copiesAt + c * 12], row, 12);
  }
  const void *upload = p.staging.data();
  if (chain_) {
    // Pinned, so that the upload neither waits for the previous step nor
    // reads memory the next step's staging overwrites.
    auto &[pinned, size] = chainStaging_[chain_->slot];
    if (size < size_t(stagedBytes)) {
      if (pinned)
        d_->cuMemFreeHost(pinned);
      pinned = nullptr;
      size = 0;
      KILN_RETURN_IF_ERROR(
          d_->check(d_->cuMemHostAlloc(&pinned, stagedBytes, 0),
                    "allocating pinned staging for a chained step"));
      size = stagedBytes;
    }
    std::memcpy(pinned, p.staging.data(), stagedBytes);
    upload = pinned;
  }
  KILN_RETURN_IF_ERROR(
      d_->check(d_->cuMemcpyHtoDAsync(base, upload, stagedBytes, stream_),
                "uploading the batch"));
  if (chain_ && chain_->tokensFrom) {
    // The previous step's i32 ids into the tokens input (i64 or i32).
    for (size_t id = 0; id < nb; ++id) {
      const Buffer &b = entry.buffers[id];
      if (b.kind != BufferKind::Input || b.role != InputRole::Tokens)
        continue;
      cuda::Memcpy2D copy;
      copy.srcDevice = chain_->tokensFrom;
      copy.srcPitch = 4;
      copy.dstDevice = base + offset[id];
      copy.dstPitch = dtypeBytes(b.dtype);
      copy.WidthInBytes = 4;
      copy.Height = static_cast<size_t>(T);
      KILN_RETURN_IF_ERROR(d_->check(d_->cuMemcpy2DAsync(&copy, stream_),
                                     "feeding the previous step's tokens"));
    }
  }

  int64_t layerBytes = int64_t(cache_.numBlocks) * cache_.blockSize *
                       cache_.numKVHeads * cache_.headDim * 2 *
                       cache_.elementBytes;
  auto pointer = [&](const ArgRef &a) -> CUdeviceptr {
    switch (a.source) {
    case Source::Buffer:
      return p.ptr[a.id];
    case Source::Weight:
      return weights_[a.id]->ptr;
    case Source::WeightNK:
      return transposed_[a.id]->ptr;
    case Source::CacheLayer:
      return kvCache_->ptr + int64_t(a.id) * layerBytes;
    case Source::Scratch:
      return p.scratch[a.id];
    case Source::BlockTables:
      return p.tables;
    case Source::SeqStarts:
      return p.seqStarts;
    case Source::Partials:
      return p.partials;
    case Source::Counters:
      return p.counters->ptr;
    case Source::StepInfo:
      return p.stepInfo + a.id * 16;
    case Source::DequantScratch:
      return p.dequant ? p.dequant->ptr : 0;
    }
    return 0;
  };
  std::vector<CUdeviceptr> values;
  std::vector<void *> params;
  auto launchKernel = [&](uint32_t kernel, const std::vector<ArgRef> &args,
                          int64_t tokenRow, int64_t seqRow,
                          int64_t units) -> Status {
    const KernelInfo &k = table.kernels[kernel];
    values.resize(args.size());
    params.resize(args.size());
    for (size_t a = 0; a < args.size(); ++a) {
      values[a] = pointer(args[a]) + tokenRow * args[a].tokenRowBytes +
                  seqRow * args[a].seqRowBytes;
      params[a] = &values[a];
    }
    int64_t grid[3] = {k.grid[0], k.grid[1], k.grid[2]};
    grid[k.gridScaleDim] *= units;
    return launchOnStream(kernel, grid, k.block.data(), k.dynamicSharedBytes,
                          params.data(), k.name.c_str());
  };
  auto launch = [&](const Launch &l, int64_t tokenRow, int64_t seqRow,
                    int64_t units) {
    return launchKernel(l.kernel, l.args, tokenRow, seqRow, units);
  };
  auto unitsOf = [&](const KernelInfo &k, Sym rows) -> int64_t {
    switch (k.gridScale) {
    case LaunchScale::Tokens:
      return sym.get(rows);
    case LaunchScale::Seqs:
      return N;
    default:
      return 1;
    }
  };

  // Copy-on-write before any KV write: one launch per copy and layer.
  if (!batch.copies.empty()) {
    int32_t copyKernel = -1;
    for (size_t k = 0; k < table.kernels.size(); ++k)
      if (table.kernels[k].family == "kv_copy" && functions_[k])
        copyKernel = static_cast<int32_t>(k);
    if (copyKernel < 0)
      return makeError(StatusCode::Unimplemented,
                       "the artifact has no kv_copy kernel for the batch's "
                       "block copies");
    for (size_t c = 0; c < batch.copies.size(); ++c)
      for (int32_t layer = 0; layer < cache_.numLayers; ++layer) {
        CUdeviceptr row = p.copies + c * 12;
        CUdeviceptr at = kvCache_->ptr + layer * layerBytes;
        void *args[2] = {&row, &at};
        const KernelInfo &k = table.kernels[copyKernel];
        KILN_RETURN_IF_ERROR(launchOnStream(
            copyKernel, k.grid.data(), k.block.data(), 0, args, "kv_copy"));
      }
  }

  // Whether a few-row step's add + norm runs in the prologue of the
  // row-chunked gemv of the linears it feeds (normGemv.chunkedKernel): the
  // switches of the one-row fusion (and KILN_CHUNKED_NORM_GEMV, for
  // measuring this one alone) are on and the row-chunked fused gemvs serve
  // those linears at `rows` rows (they have no grouped few-row GEMM).
  auto chunkedNormGemvServes = [&](const StepProgram &sp, int64_t rows) {
    static const bool enabled = envSwitchOn("KILN_CHUNKED_NORM_GEMV");
    if (!enabled || !normGemvEnabled() || !addNormEnabled() ||
        !multiGemvEnabled())
      return false;
    const StepProgram &consumer = p.steps[sp.normGemv.consumer];
    return consumer.groupedSkinny.kernel < 0 && !consumer.launches.empty() &&
           rowChunkedFusionServes(gemmRoute(rows), consumer.launches.front()) &&
           consumer.launches.front().groupedKernel < 0;
  };
  auto issueSteps = [&]() -> Status {
    int64_t fusedGroup = -1; // first step of the group that ran as one
    // The consumer of a norm the previous gemv-with-norm launch served, and
    // whether it is a GatedMLP (whose down gemv still runs).
    int64_t servedConsumer = -1;
    bool servedGated = false;
    // The first step of a Rope pair that gemv's epilogue already did.
    int64_t servedRope = -1;
    for (size_t stepIndex = 0; stepIndex < p.steps.size(); ++stepIndex) {
      const StepProgram &sp = p.steps[stepIndex];
      if (sp.fusedInto >= 0 && sp.fusedInto == fusedGroup)
        continue;
      if (static_cast<int64_t>(stepIndex) == servedConsumer && !servedGated) {
        fusedGroup = servedConsumer;
        continue;
      }
      if (static_cast<int64_t>(stepIndex) == servedRope) {
        fusedGroup = servedRope;
        continue;
      }
      if (sp.normGemv.kernel >= 0 && T == 1 && normGemvEnabled() &&
          addNormEnabled() && multiGemvEnabled()) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        servedConsumer = static_cast<int64_t>(sp.normGemv.consumer);
        servedGated = sp.normGemv.gated;
        if (sp.normGemv.ropeKernel >= 0 && ropeGemvEnabled() &&
            ropePairEnabled()) {
          servedRope = static_cast<int64_t>(sp.normGemv.ropeStep);
          KILN_RETURN_IF_ERROR(launchKernel(sp.normGemv.ropeKernel,
                                            sp.normGemv.ropeArgs, 0, 0, 1));
          continue;
        }
        KILN_RETURN_IF_ERROR(
            launchKernel(sp.normGemv.kernel, sp.normGemv.args, 0, 0, 1));
        continue;
      }
      if (sp.normGemv.chunkedKernel >= 0 && T > 1 &&
          chunkedNormGemvServes(sp, T)) {
        // The same at a few rows, row-chunked (no rope epilogue: the Rope
        // pair runs as its own launch).
        fusedGroup = static_cast<int64_t>(stepIndex);
        servedConsumer = static_cast<int64_t>(sp.normGemv.consumer);
        servedGated = sp.normGemv.gated;
        KILN_RETURN_IF_ERROR(launchKernel(
            sp.normGemv.chunkedKernel, sp.normGemv.chunkedArgs, 0, 0,
            (T + sp.normGemv.chunkRows - 1) / sp.normGemv.chunkRows));
        continue;
      }
      if (sp.addNormKernel >= 0 && addNormEnabled()) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        KILN_RETURN_IF_ERROR(launchKernel(sp.addNormKernel, sp.addNormArgs, 0,
                                          0, sym.get(sp.addNormRows)));
        continue;
      }
      if (sp.siluMulKernel >= 0 && siluMulEnabled()) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        KILN_RETURN_IF_ERROR(launchKernel(sp.siluMulKernel, sp.siluMulArgs, 0,
                                          0, sym.get(sp.siluMulRows)));
        continue;
      }
      if (sp.ropePairKernel >= 0 && ropePairEnabled()) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        KILN_RETURN_IF_ERROR(launchKernel(sp.ropePairKernel, sp.ropePairArgs, 0,
                                          0, sym.get(sp.ropePairRows)));
        continue;
      }
      if (sp.multiKernel >= 0 && T == 1 && multiGemvEnabled()) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        KILN_RETURN_IF_ERROR(
            launchKernel(sp.multiKernel, sp.multiArgs, 0, 0, 1));
        continue;
      }
      const GroupedGemm *grouped = nullptr;
      if (rt::GemmRoute route = gemmRoute(T); route.grouped) {
        if (route.family == rt::GemmFamily::Tiled)
          grouped = &sp.groupedTiled;
        else if (route.family == rt::GemmFamily::FewRows)
          grouped = sp.groupedSkinny.kernel >= 0 ? &sp.groupedSkinny
                    : !sp.launches.empty() &&
                            rowChunkedFusionServes(route, sp.launches.front())
                        ? &sp.groupedChunked
                        : nullptr;
      }
      if (grouped && grouped->kernel >= 0) {
        fusedGroup = static_cast<int64_t>(stepIndex);
        KILN_RETURN_IF_ERROR(launchKernel(grouped->kernel, grouped->args, 0, 0,
                                          (T + grouped->rows - 1) /
                                              grouped->rows));
        continue;
      }
      if (sp.kind == OpKind::GatherLastTokens) {
        for (int64_t i = 0; i < N; ++i) {
          int64_t row = batch.queryStartLoc[i + 1] - 1;
          KILN_RETURN_IF_ERROR(
              d_->check(d_->cuMemcpyDtoDAsync(
                            p.ptr[sp.gatherTo] + i * sp.gatherRowBytes,
                            p.ptr[sp.gatherFrom] + row * sp.gatherRowBytes,
                            sp.gatherRowBytes, stream_),
                        "gathering last tokens"));
        }
        continue;
      }
      bool gated = false, upDone = false;
      bool normServed =
          servedGated && static_cast<int64_t>(stepIndex) == servedConsumer;
      for (const Launch &l : sp.launches) {
        const KernelInfo &k = table.kernels[l.kernel];
        if ((l.skipWhenGated && gated) || (l.isUp && upDone) ||
            (normServed && (l.isGate || l.isUp || l.skipWhenGated)))
          continue;
        int64_t stepRows = sym.get(l.rows);
        rt::GemmRoute route = gemmRoute(stepRows);
        if (l.gatedKernel >= 0 && stepRows == 1) {
          gated = true;
          KILN_RETURN_IF_ERROR(
              launchKernel(l.gatedKernel, l.gatedArgs, 0, 0, 1));
        } else if (l.groupedKernel >= 0 &&
                   route.family == rt::GemmFamily::FewRows && route.grouped) {
          upDone = true;
          KILN_RETURN_IF_ERROR(launchKernel(
              l.groupedKernel, l.groupedArgs, 0, 0,
              (stepRows + l.groupedRows - 1) / l.groupedRows));
        } else if (l.gatedChunkedKernel >= 0 &&
                   rowChunkedFusionServes(route, l)) {
          // Gate, up and silu_mul in one row-chunked launch where the
          // gate gemv would run row-chunked anyway.
          gated = true;
          KILN_RETURN_IF_ERROR(launchKernel(
              l.gatedChunkedKernel, l.gatedChunkedArgs, 0, 0,
              (stepRows + l.gatedChunkRows - 1) / l.gatedChunkRows));
        } else if (l.perSequence) {
          for (int64_t i = 0; i < N; ++i) {
            int64_t rows = batch.appendLengths[i];
            if (rows <= 0)
              continue;
            if (l.flashKernel >= 0 && rows >= flashMinRows())
              KILN_RETURN_IF_ERROR(launchKernel(
                  l.flashKernel, l.flashArgs, batch.queryStartLoc[i], i,
                  (rows + l.flashRows - 1) / l.flashRows));
            else
              KILN_RETURN_IF_ERROR(launch(l, batch.queryStartLoc[i], i, rows));
          }
        } else if (k.repeat == LaunchRepeat::PerToken && l.tiledKernel >= 0 &&
                   sym.get(l.rows) >= tiledMinRows()) {
          int64_t rows = sym.get(l.rows);
          if (l.dequantKernel >= 0)
            KILN_RETURN_IF_ERROR(
                launchKernel(l.dequantKernel, l.dequantArgs, 0, 0, 1));
          KILN_RETURN_IF_ERROR(
              launchKernel(l.tiledKernel, l.tiledArgs, 0, 0,
                           (rows + l.tiledRows - 1) / l.tiledRows));
        } else if (k.repeat == LaunchRepeat::PerToken && l.skinnyKernel >= 0 &&
                   sym.get(l.rows) > 1 && skinnyEnabled()) {
          int64_t rows = sym.get(l.rows);
          KILN_RETURN_IF_ERROR(
              launchKernel(l.skinnyKernel, l.skinnyArgs, 0, 0,
                           (rows + l.skinnyRows - 1) / l.skinnyRows));
        } else if (k.repeat == LaunchRepeat::PerToken && l.chunkedKernel >= 0 &&
                   sym.get(l.rows) > 1) {
          int64_t rows = sym.get(l.rows);
          KILN_RETURN_IF_ERROR(
              launchKernel(l.chunkedKernel, l.chunkedArgs, 0, 0,
                           (rows + l.chunkRows - 1) / l.chunkRows));
        } else if (k.repeat == LaunchRepeat::PerToken) {
          for (int64_t t = 0, rows = sym.get(l.rows); t < rows; ++t)
            KILN_RETURN_IF_ERROR(launch(l, t, 0, 1));
        } else {
          KILN_RETURN_IF_ERROR(launch(l, 0, 0, unitsOf(k, l.rows)));
        }
      }
    }
    if (idsOut) {
      // Greedy tokens on the device: one block per logits row.
      const KernelInfo &k = table.kernels[argmaxKernel_];
      CUdeviceptr logitsPtr = p.ptr[entry.output], idsPtr = base + idsAt;
      void *args[2] = {&logitsPtr, &idsPtr};
      int64_t grid[3] = {outputRows, 1, 1};
      KILN_RETURN_IF_ERROR(launchOnStream(argmaxKernel_, grid, k.block.data(),
                                          0, args, "argmax"));
    }
    return Status::ok();
  };

  // Decode-like entry points (no host-dependent copies or per-sequence
  // grids) run as one CUDA graph per (T, N): captured on first use, then
  // replayed, which removes the per-launch CPU cost of a few hundred
  // launches a step. The inputs were uploaded above to the same addresses.
  // Replays `g`, capturing it first when it is new or was captured
  // against other memory.
  int64_t launchesBefore = launchesIssued_, graphLaunches = -1;
  auto runGraph = [&](Program::Graph &g) -> Status {
    CUdeviceptr counters = p.counters ? p.counters->ptr : 0;
    if (!g.exec || g.arena != base || g.counters != counters) {
      g.reset(d_);
      int64_t captured = launchesIssued_;
      KILN_RETURN_IF_ERROR(
          d_->check(d_->cuStreamBeginCapture(stream_, kCaptureModeThreadLocal),
                    "capturing the step"));
      Status issued = issueSteps();
      CUgraph graph = nullptr;
      CUresult ended = d_->cuStreamEndCapture(stream_, &graph);
      KILN_RETURN_IF_ERROR(issued);
      KILN_RETURN_IF_ERROR(d_->check(ended, "capturing the step"));
      CUresult made = d_->cuGraphInstantiateWithFlags(&g.exec, graph, 0);
      d_->cuGraphDestroy(graph);
      KILN_RETURN_IF_ERROR(d_->check(made, "instantiating the step graph"));
      g.arena = base;
      g.counters = counters;
      g.launches = launchesIssued_ - captured;
    }
    graphLaunches = g.launches;
    return d_->check(d_->cuGraphLaunch(g.exec, stream_), "launching the step");
  };
  // Programs with per-sequence launches or gathers also depend on how the
  // rows split into sequences: a graph per (T, N, append lengths), captured
  // the second time a split comes (speculative verify steps, equal prompt
  // chunks), so a one-off prompt runs eagerly instead of paying a capture.
  std::vector<int64_t> split;
  if (graphsEnabled_ && !p.capturable && batch.copies.empty()) {
    split = {T, idsOut ? -N : N};
    split.insert(split.end(), batch.appendLengths.begin(),
                 batch.appendLengths.end());
  }
  timer_.kernelsBegin(stream_);
  if (graphsEnabled_ && p.capturable && batch.copies.empty()) {
    KILN_RETURN_IF_ERROR(runGraph(p.graphs[{T, idsOut ? -N : N}]));
  } else if (!split.empty() && p.splitGraphs.count(split)) {
    KILN_RETURN_IF_ERROR(runGraph(p.splitGraphs[split]));
  } else {
    if (!split.empty() && p.splitGraphs.size() < kMaxSplitGraphs &&
        !p.seenSplits.insert(split).second)
      p.splitGraphs[split]; // seen twice: captured from the next step on
    KILN_RETURN_IF_ERROR(issueSteps());
  }
  timer_.kernelsEnd(stream_);
  timer_.countLaunches(graphLaunches >= 0 ? graphLaunches
                                          : launchesIssued_ - launchesBefore);
  // Reads the step's times once the copy back below has synchronized.
  struct TimerEnd {
    StepTimer &timer;
    const std::string &entry;
    const int64_t rows;
    ~TimerEnd() { timer.endStep(entry, rows); }
  } timerEnd{timer_, entry.name, T};

  if (idsOut && chain_) {
    // The next step reads them from here; the chain collects them.
    chain_->idsAt = base + idsAt;
    return d_->check(d_->cuMemcpyDtoDAsync(chain_->idsTo, base + idsAt,
                                           outputRows * 4, stream_),
                     "collecting the chain's tokens");
  }
  if (idsOut) {
    idsOut->resize(outputRows);
    KILN_RETURN_IF_ERROR(
        d_->check(d_->cuMemcpyDtoHAsync(idsOut->data(), base + idsAt,
                                        outputRows * 4, stream_),
                  "reading the greedy tokens"));
    return d_->check(d_->cuStreamSynchronize(stream_), "running the step");
  }
  // The logits: [N or T, vocab] in the output's dtype.
  std::vector<float> &logits = *logitsOut;
  const Buffer &out = entry.buffers[entry.output];
  int64_t count = sym.numElements(out.shape);
  int64_t bytes = count * dtypeBytes(out.dtype);
  if (out.dtype == DType::F32) {
    // Straight into the caller's vector (no staging copy).
    logits.resize(count);
    KILN_RETURN_IF_ERROR(
        d_->check(d_->cuMemcpyDtoHAsync(logits.data(), p.ptr[entry.output],
                                        bytes, stream_),
                  "reading the logits"));
    return d_->check(d_->cuStreamSynchronize(stream_), "running the step");
  }
  p.output.resize(bytes);
  KILN_RETURN_IF_ERROR(
      d_->check(d_->cuMemcpyDtoHAsync(p.output.data(), p.ptr[entry.output],
                                      bytes, stream_),
                "reading the logits"));
  KILN_RETURN_IF_ERROR(
      d_->check(d_->cuStreamSynchronize(stream_), "running the step"));
  logits.resize(count);
  if (out.dtype == DType::BF16) {
    for (int64_t k = 0; k < count; ++k) {
      uint16_t h;
      std::memcpy(&h, &p.output[2 * k], 2);
      logits[k] = bf16ToFloat(h);
    }
  } else {
    // A table of all 65536 halves: the vocabulary-wide rows of a batch are
    // millions of values a step.
    static const std::vector<float> table = [] {
      std::vector<float> t(65536);
      for (uint32_t h = 0; h < 65536; ++h)
        t[h] = halfToFloat(static_cast<uint16_t>(h));
      return t;
    }();
    const uint16_t *h = reinterpret_cast<const uint16_t *>(p.output.data());
    for (int64_t k = 0; k < count; ++k)
      logits[k] = table[h[k]];
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Cache access from outside a step
//===----------------------------------------------------------------------===//

Status CudaDevice::checkCacheAccess(const char *what, int32_t layer,
                                    Span<const int64_t> slots) const {
  if (!kvCache_)
    return makeError(StatusCode::FailedPrecondition, what,
                     ": the device is not prepared");
  if (layer < 0 || layer >= cache_.numLayers)
    return makeError(StatusCode::OutOfRange, what, ": layer ", layer,
                     " outside the cache's ", cache_.numLayers);
  int64_t limit = int64_t(cache_.numBlocks) * cache_.blockSize;
  for (int64_t s : slots)
    if (s < 0 || s >= limit)
      return makeError(StatusCode::OutOfRange, what, ": slot ", s,
                       " outside the cache's ", limit);
  return Status::ok();
}

Status CudaDevice::launchOnStream(uint32_t kernel, const int64_t grid[3],
                                  const int64_t block[3], int64_t sharedBytes,
                                  void **params, const char *what) {
  CUresult r;
  ++launchesIssued_;
  timer_.noteLaunch(what);
  if (pdl_) {
    cuda::LaunchAttribute attribute;
    attribute.id = cuda::kLaunchAttrProgrammaticStreamSerialization;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    cuda::LaunchConfig config = {static_cast<unsigned>(grid[0]),
                                 static_cast<unsigned>(grid[1]),
                                 static_cast<unsigned>(grid[2]),
                                 static_cast<unsigned>(block[0]),
                                 static_cast<unsigned>(block[1]),
                                 static_cast<unsigned>(block[2]),
                                 static_cast<unsigned>(sharedBytes),
                                 stream_,
                                 &attribute,
                                 1};
    r = d_->cuLaunchKernelEx(&config, functions_[kernel], params, nullptr);
  } else {
    r = d_->cuLaunchKernel(
        functions_[kernel], grid[0], grid[1], grid[2], block[0], block[1],
        block[2], static_cast<unsigned>(sharedBytes), stream_, params, nullptr);
  }
  if (r != CUDA_SUCCESS)
    return makeError(StatusCode::Internal, "launching '", what,
                     "': ", d_->describe(r));
  return Status::ok();
}

int64_t CudaDevice::cacheRowOffset(int32_t layer, int64_t slot, int kv) const {
  int64_t b = cache_.blockSize, hd = cache_.headDim, h = cache_.numKVHeads;
  int64_t block = slot / b, within = slot % b;
  int64_t elements =
      (((int64_t(layer) * cache_.numBlocks + block) * 2 + kv) * h * b +
       within) *
      hd;
  return elements * cache_.elementBytes;
}

Status CudaDevice::writeCache(int32_t layer, Span<const int64_t> slots,
                              Span<const float> keys,
                              Span<const float> values) {
  KILN_RETURN_IF_ERROR(checkCacheAccess("writeCache", layer, slots));
  size_t row = size_t(cache_.numKVHeads) * cache_.headDim;
  if (keys.size() != slots.size() * row || values.size() != keys.size())
    return makeError(StatusCode::InvalidArgument, "writeCache: ", keys.size(),
                     " keys and ", values.size(), " values for ", slots.size(),
                     " slots of ", row);
  int64_t e = cache_.elementBytes, hd = cache_.headDim;
  std::vector<uint8_t> bytes(hd * e);
  for (size_t j = 0; j < slots.size(); ++j)
    for (int kv = 0; kv < 2; ++kv)
      for (int64_t h = 0; h < cache_.numKVHeads; ++h) {
        const float *src = (kv ? values : keys).data() + j * row + h * hd;
        for (int64_t x = 0; x < hd; ++x) {
          if (cacheDType_ == DType::F32) {
            std::memcpy(&bytes[4 * x], &src[x], 4);
            continue;
          }
          uint16_t v = cacheDType_ == DType::F16 ? floatToHalf(src[x])
                                                 : floatToBf16(src[x]);
          std::memcpy(&bytes[2 * x], &v, 2);
        }
        CUdeviceptr at = kvCache_->ptr + cacheRowOffset(layer, slots[j], kv) +
                         h * cache_.blockSize * hd * e;
        KILN_RETURN_IF_ERROR(d_->check(
            d_->cuMemcpyHtoD(at, bytes.data(), bytes.size()), "writeCache"));
      }
  return Status::ok();
}

Status CudaDevice::readCache(int32_t layer, Span<const int64_t> slots,
                             std::vector<float> &keys,
                             std::vector<float> &values) {
  KILN_RETURN_IF_ERROR(checkCacheAccess("readCache", layer, slots));
  KILN_RETURN_IF_ERROR(d_->check(d_->cuStreamSynchronize(stream_), "sync"));
  size_t row = size_t(cache_.numKVHeads) * cache_.headDim;
  keys.assign(slots.size() * row, 0.0f);
  values.assign(slots.size() * row, 0.0f);
  int64_t e = cache_.elementBytes, hd = cache_.headDim;
  std::vector<uint8_t> bytes(hd * e);
  for (size_t j = 0; j < slots.size(); ++j)
    for (int kv = 0; kv < 2; ++kv)
      for (int64_t h = 0; h < cache_.numKVHeads; ++h) {
        CUdeviceptr at = kvCache_->ptr + cacheRowOffset(layer, slots[j], kv) +
                         h * cache_.blockSize * hd * e;
        KILN_RETURN_IF_ERROR(d_->check(
            d_->cuMemcpyDtoH(bytes.data(), at, bytes.size()), "readCache"));
        float *dst = (kv ? values : keys).data() + j * row + h * hd;
        for (int64_t x = 0; x < hd; ++x) {
          if (cacheDType_ == DType::F32) {
            std::memcpy(&dst[x], &bytes[4 * x], 4);
            continue;
          }
          uint16_t v;
          std::memcpy(&v, &bytes[2 * x], 2);
          dst[x] = cacheDType_ == DType::F16 ? halfToFloat(v) : bf16ToFloat(v);
        }
      }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Copy bandwidth (the decode floor)
//===----------------------------------------------------------------------===//

StatusOr<double> CudaDevice::measureCopyBandwidth(int64_t bytes) {
  KILN_RETURN_IF_ERROR(d_->check(d_->cuCtxSetCurrent(context_), "context"));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Memory> a,
                        Memory::allocate(d_, bytes, "the bandwidth test"));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Memory> b,
                        Memory::allocate(d_, bytes, "the bandwidth test"));
  KILN_RETURN_IF_ERROR(d_->check(d_->cuMemsetD8Async(a->ptr, 1, bytes, stream_),
                                 "bandwidth test"));
  CUevent start = nullptr, stop = nullptr;
  KILN_RETURN_IF_ERROR(d_->check(d_->cuEventCreate(&start, 0), "event"));
  KILN_RETURN_IF_ERROR(d_->check(d_->cuEventCreate(&stop, 0), "event"));
  // Warm up, then the median of timed copies.
  std::vector<float> ms;
  for (int i = 0; i < 13; ++i) {
    d_->cuEventRecord(start, stream_);
    d_->cuMemcpyDtoDAsync(b->ptr, a->ptr, bytes, stream_);
    d_->cuEventRecord(stop, stream_);
    d_->cuEventSynchronize(stop);
    float t = 0;
    d_->cuEventElapsedTime(&t, start, stop);
    if (i >= 3)
      ms.push_back(t);
  }
  d_->cuEventDestroy(start);
  d_->cuEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2] * 1e-3;
  if (median <= 0)
    return makeError(StatusCode::Internal, "bandwidth test timed 0 s");
  return 2.0 * double(bytes) / median;
}

} // namespace kiln::runtime
