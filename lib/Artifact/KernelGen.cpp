//===- KernelGen.cpp - The Kernels section: decode kernels for the model --===//
//
// Walks the decode entry point of the launch plan, collects each distinct
// (kernel family, shape) its steps need, runs the matching generator of
// lib/Codegen for that shape, lowers it to PTX and, when ptxas is found,
// assembles a cubin. Steps no generator covers become "missing" entries.
// The generators run in a context of their own; their diagnostics are
// collected and re-emitted at the compiled model's location, naming the
// kernel and the step that needed it.
//
//===----------------------------------------------------------------------===//

#include "kiln/Artifact/ArtifactCompiler.h"
#include "kiln/Codegen/ArgmaxKernel.h"
#include "kiln/Codegen/CastKernel.h"
#include "kiln/Codegen/ElementwiseKernel.h"
#include "kiln/Codegen/EmbeddingKernel.h"
#include "kiln/Codegen/FlashPrefillKernel.h"
#include "kiln/Codegen/GemvKernel.h"
#include "kiln/Codegen/KVBlockCopyKernel.h"
#include "kiln/Codegen/KVCacheWriteKernel.h"
#include "kiln/Codegen/Lowering.h"
#include "kiln/Codegen/MatmulKernel.h"
#include "kiln/Codegen/PagedAttentionDecodeKernel.h"
#include "kiln/Codegen/PagedAttentionPrefillKernel.h"
#include "kiln/Codegen/QuantGemvKernel.h"
#include "kiln/Codegen/RMSNormKernel.h"
#include "kiln/Codegen/RopeKernel.h"
#include "kiln/Codegen/RotaryTableKernel.h"
#include "kiln/Codegen/SparseGemvKernel.h"
#include "kiln/Codegen/SparseMatmulKernel.h"
#include "kiln/runtime/StepFusion.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <cstdio>
#include <functional>
#include <map>
#include <numeric>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;
namespace cg = kiln::codegen;

namespace {

std::optional<cg::KernelDType> storageType(rt::DType d) {
  if (d == rt::DType::F16)
    return cg::KernelDType::F16;
  if (d == rt::DType::BF16)
    return cg::KernelDType::BF16;
  return std::nullopt;
}

/// A storage type or f32 (the rotary tables and casts).
std::optional<cg::KernelDType> floatType(rt::DType d) {
  if (d == rt::DType::F32)
    return cg::KernelDType::F32;
  return storageType(d);
}

rt::DType toRuntime(cg::KernelDType d) {
  switch (d) {
  case cg::KernelDType::F16:
    return rt::DType::F16;
  case cg::KernelDType::BF16:
    return rt::DType::BF16;
  case cg::KernelDType::F32:
    return rt::DType::F32;
  case cg::KernelDType::I32:
    return rt::DType::I32;
  case cg::KernelDType::I64:
    return rt::DType::I64;
  case cg::KernelDType::U8:
    return rt::DType::U8;
  }
  return rt::DType::F32;
}

using Builder =
    std::function<FailureOr<cg::KernelSpec>(OpBuilder &, gpu::GPUModuleOp)>;

/// One distinct kernel the decode steps need.
struct Request {
  std::string family;
  std::vector<std::pair<std::string, std::string>> params;
  uint32_t uses = 0;
  std::string firstUse; ///< "decode step #12 (Linear)"
  // Generated:
  Builder build;
  rt::LaunchScale scale = rt::LaunchScale::None;
  uint8_t scaleDim = 0;
  rt::LaunchRepeat repeat = rt::LaunchRepeat::Once;
  /// gemv: the row-chunked variant (GemvOptions::tokens > 1) a device
  /// launches instead of one launch per row when a step has several rows.
  Builder chunkedBuild;
  /// gemv: the tensor-core GEMM a device launches for many rows.
  Builder tiledBuild;
  /// Its family: matmul, or smatmul for 2:4 weights.
  std::string tiledFamily = "matmul";
  /// gemv: the split-K tensor-core GEMM for a few rows (batched decode).
  Builder skinnyBuild;
  /// gemv of a gated MLP's gate: the fused gate/up + silu gemv a device
  /// launches for one row instead of gate, up and silu_mul.
  Builder gatedBuild;
  /// Its row-chunked variant, for a few rows where no few-row GEMM serves
  /// the weights (small models: batched decode, speculative verify).
  Builder gatedChunkedBuild;
  /// gemv of a gated MLP's gate: the grouped few-row GEMM over gate and up
  /// a device launches for a few rows instead of their two GEMMs.
  Builder groupedBuild;
  /// qgemv: the kernel decoding W into dense scratch for `tiledBuild`.
  Builder dequantBuild;
  /// paged_prefill: the tensor-core flash-attention kernel a device
  /// launches for a sequence with many appended rows.
  Builder flashBuild;
  rt::WeightLayout weightLayout = rt::WeightLayout::None;
  /// Elementwise: per row when the grid overshoots the row.
  bool elementwise = false;
  // Missing:
  std::string reason;
};

class Collector {
public:
  std::vector<Request> requests;
  std::map<std::string, size_t> index;
  /// The launches of the step being walked (null: record nothing).
  std::vector<uint32_t> *step = nullptr;

  /// Adds (or counts another use of) the kernel `key`, and records it as
  /// the current step's next launch.
  Request &add(const std::string &key, const std::string &use,
               const std::function<void(Request &)> &fill) {
    auto it = index.find(key);
    if (it != index.end()) {
      ++requests[it->second].uses;
      if (step)
        step->push_back(static_cast<uint32_t>(it->second));
      return requests[it->second];
    }
    if (step)
      step->push_back(static_cast<uint32_t>(requests.size()));
    index[key] = requests.size();
    requests.emplace_back();
    Request &r = requests.back();
    r.uses = 1;
    r.firstUse = use;
    fill(r);
    return r;
  }

  void missing(const std::string &family,
               std::vector<std::pair<std::string, std::string>> params,
               const std::string &reason, const std::string &use) {
    std::string key = "missing:" + family;
    for (auto &p : params)
      key += "_" + p.first + p.second;
    add(key, use, [&](Request &r) {
      r.family = family;
      r.params = params;
      r.reason = reason;
    });
  }
};

std::string str(int64_t v) { return std::to_string(v); }

/// Token rows per CTA of the row-chunked gemv variants.
constexpr int64_t kGemvChunkRows = 8;

/// The row-chunked variant of a one-row gemv: 8 rows per CTA; 2 K steps
/// in flight keep the plain gemv at ~130 registers (the gated gate/up one,
/// twice the accumulators, at ~200-240) without spills on sm_90.
cg::GemvOptions chunkedGemv(cg::GemvOptions o) {
  o.tokens = kGemvChunkRows;
  o.unroll = 2;
  o.rowsPerWarp = cg::GemvOptions().rowsPerWarp;
  o.warpsPerBlock = cg::GemvOptions().warpsPerBlock;
  return o;
}

/// K steps in flight per lane of the one-row gemv (a step: 32 lanes x 8
/// 16-bit values): 16 where a lane has at least 32 steps, else 8. Measured
/// on the H100 (kernel_check, back to back): K = 4096 x 128256 rows 344 us
/// at 8 against 473 at 16; K = 8192 and 14336 are faster at 16.
int64_t defaultGemvUnroll(int64_t k) { return k >= 32 * 32 * 8 ? 16 : 8; }

/// Launch shape of the one-row gemvs, end to end on the H100 (dummy bf16,
/// batch 1, each variant in one command; knobs gemv-warps, gated-unroll,
/// multi-unroll): 8 warps a CTA for the lone gemvs (o, down, lm_head; the
/// 1B lm_head 200 -> 176 us back to back) and 4 K steps in flight for the
/// gated gate/up and the q/k/v gemv_multi (1B gate/up 31.2 -> 28.6 us).
/// Each alone moved a 1B step by under 1%; together 1.204 -> 1.162 ms,
/// and the 8B step 5.833 -> 5.651 ms (gate/up's unroll alone 5.688).
constexpr int64_t kGemvWarps = 8;
constexpr int64_t kGatedUnroll = 4;
constexpr int64_t kMultiUnroll = 4;

/// SMs of the sm_90 parts (H100/H200 SXM): the split-K GEMMs aim for one
/// wave of CTAs.
constexpr int64_t kTargetSMs = 132;

/// Warps of the tensor-core qgemv splitting K for `rowTiles` 16-row tiles:
/// doubled up to 8 until there are about 8 warps per SM of the target.
int64_t mmaKSplit(int64_t rowTiles) {
  int64_t split = 1;
  while (split < 8 && rowTiles * split < 8 * kTargetSMs)
    split *= 2;
  return split;
}

/// Smallest weight (bytes, 16-bit) that gets the split-K few-row GEMM
/// (knob skinny-min-bytes overrides it).
constexpr int64_t kSkinnyMinWeightBytes = 2 << 20;
/// The same for a head writing fp32 logits: they feed argmax, where the
/// split-K sum order would let a near-tie depend on the batch, so small
/// heads (pycoder's 3 MB) stay on the gemv family.
constexpr int64_t kSkinnyMinLogitsBytes = 4 << 20;

/// Most K splits of the few-row GEMM: the last CTA of a tile reads all
/// splitK fp32 partial tiles alone, so more splits cost more than the SMs
/// they fill (knob skinny-max-split overrides it).
int64_t skinnyMaxSplit(const KernelTuning &t) {
  return t.count("skinny-max-split", 4);
}

/// The tensor-core GEMM for a few rows (batched decode): 32-row tiles over
/// 4 warps, 64 of K per stage, 4 stages in flight (~90 KB), 128 or 64
/// features per tile and K split (at most skinnyMaxSplit() ways) so that
/// about one wave of CTAs reads W: n / 128 CTAs alone would leave most SMs
/// idle for q/k/v/o and down. None when the shape does not tile.
/// The many-row (prefill) GEMM's tile over 2 x 4 warps: 128 x 128 x 64 in
/// 3 stages where K divides (half the barriers of 32-deep K steps: 20.4 ->
/// 18.0 ms for a 2048-token 1B prefill on the H100; 128 x 256 was as fast
/// there but leaves SMs idle for 512-token prompts of the 8B shape), else
/// 128 x 128 x 32 in 4 stages.
/// Knob tiled-tile ("tileM,tileN,tileK,warpsM,warpsN,stages") overrides it
/// (the generator checks the shape). On an sm_90a target (knob wgmma=0:
/// not) the warpgroup GEMM instead, 128 tokens x wgmma-n features x 64 of
/// K: on an H100 it ran a 2048 x 8192 x 2048 product at 525 TFLOP/s
/// against 284 for the mma.sync tile, and the 2048-token 1B prefill in
/// 10.6 ms against 17.7 (128 x 256 tiles; 128 x 128: 11.6 ms).
cg::MatmulOptions tiledMatmul(cg::MatmulOptions mm, const KernelTuning &t,
                              StringRef chip) {
  // An explicit tiled-tile asks for the mma.sync GEMM.
  if (t.switchOn("wgmma") && chip == "sm_90a" && mm.k % 64 == 0 &&
      !t.tile("tiled-tile")) {
    int64_t features = t.count("wgmma-n", mm.n % 256 == 0 ? 256 : 128);
    // An explicit wgmma-n that does not divide N stays, for the caller to
    // warn about; the default falls back to mma.sync.
    if (mm.n % features == 0 || t.count("wgmma-n", 0) > 0) {
      mm.wgmma = true;
      mm.tileM = 128;
      mm.tileN = features;
      mm.tileK = 64;
      mm.stages = t.count("wgmma-stages", features > 128 ? 4 : 5);
      return mm;
    }
  }
  mm.tileM = 128;
  mm.warpsM = 2;
  mm.warpsN = 4;
  if (mm.k % 64 == 0 && mm.n % 128 == 0) {
    mm.tileK = 64;
    mm.stages = 3;
  }
  if (std::optional<GemmTile> f = t.tile("tiled-tile")) {
    mm.tileM = f->tokens;
    mm.tileN = f->features;
    mm.tileK = f->k;
    mm.warpsM = f->warpsTokens;
    mm.warpsN = f->warpsFeatures;
    mm.stages = f->stages;
  }
  return mm;
}

/// The 2:4 prefill GEMM's tile: 128 x 128 outputs, 128 of K a step (the
/// whole warp tile's fragments between barriers: one 128-token tile of the
/// 8B gate projection took 58 us against 65 us with 64 of K, H100), 3
/// stages; 64 of K where K is not a multiple of 128. Knob sparse-tile
/// (a GemmTile, tokens before features as for tiled-tile) overrides it.
cg::SparseMatmulOptions sparseMatmul(int64_t n, int64_t k,
                                     const KernelTuning &t) {
  cg::SparseMatmulOptions mm;
  mm.n = n;
  mm.k = k;
  mm.tileK = k % 128 == 0 ? 128 : 64;
  if (std::optional<GemmTile> f = t.tile("sparse-tile")) {
    mm.tileTokens = f->tokens;
    mm.tileFeatures = f->features;
    mm.tileK = f->k;
    mm.warpsN = f->warpsTokens;
    mm.warpsM = f->warpsFeatures;
    mm.stages = f->stages;
  }
  return mm;
}

std::optional<cg::MatmulOptions>
skinnyMatmul(cg::MatmulOptions mm, const KernelTuning &t, StringRef chip) {
  // Small matrices stay on the row-chunked gemv: reading W once per 32
  // rows instead of per 8 does not repay the split-K reduction there
  // (pycoder's 0.1-1 MB weights served 5% faster without it), and the gemv
  // family computes a row the same way at every batch size.
  int64_t minBytes =
      t.count("skinny-min-bytes", mm.outputDType == cg::KernelDType::F32
                                      ? kSkinnyMinLogitsBytes
                                      : kSkinnyMinWeightBytes);
  if (mm.n * mm.k * 2 < minBytes)
    return std::nullopt;
  mm.tileM = 32;
  mm.tileK = 64;
  mm.warpsM = 1;
  mm.warpsN = 4;
  mm.stages = t.count("skinny-stages", 4);
  int64_t maxSplit = skinnyMaxSplit(t);
  int64_t targetCtas = t.count("skinny-target-ctas", kTargetSMs);
  auto splitFor = [&](int64_t tileN) -> int64_t {
    int64_t tiles = mm.n / tileN, split = 1;
    while (tiles * split * 2 <= targetCtas && split * 2 <= maxSplit &&
           mm.k % (mm.tileK * split * 2) == 0)
      split *= 2;
    return split;
  };
  if (mm.k % mm.tileK)
    return std::nullopt;
  // 128 features per tile when that already fills most SMs, else 64.
  if (mm.n % 128 == 0 && (mm.n / 128) * splitFor(128) >= targetCtas * 3 / 4)
    mm.tileN = 128;
  else if (mm.n % 64 == 0)
    mm.tileN = 64;
  else
    return std::nullopt;
  mm.splitK = splitFor(mm.tileN);
  // On sm_90a (knob wgmma-skinny=0: not) the swapped wgmma GEMM with the
  // same tiles and split: W's features along wgmma's M, the 32 tokens its N.
  if (chip == "sm_90a" && t.switchOn("wgmma-skinny")) {
    mm.wgmma = true;
    mm.swapAB = true;
    mm.stages = t.count("wgmma-skinny-stages", mm.tileN == 128 ? 5 : 8);
  }
  return mm;
}

/// `mm`, chosen for one weight standing for all of `rows`, over the members
/// themselves (a grouped GEMM): none where a member's N does not divide
/// into its tiles.
std::optional<cg::MatmulOptions> overMembers(cg::MatmulOptions mm,
                                             ArrayRef<int64_t> rows) {
  for (int64_t n : rows)
    if (n % mm.tileN)
      return std::nullopt;
  mm.n = rows.front();
  mm.moreN.assign(rows.begin() + 1, rows.end());
  return mm;
}

/// The few-row GEMM over shared-input linears (q, k, v; a gated MLP's gate
/// and up) in one launch: the swapped wgmma GEMM tiled and split as
/// skinnyMatmul() would tile one weight of all their rows. In a 32-row 1B
/// decode step k and v alone ran 8 CTAs per K split (9 us each for 2 MB,
/// ncu on an H100). None off sm_90a, with wgmma-skinny=0 or
/// grouped-skinny=0, or where the rows do not tile.
std::optional<cg::MatmulOptions>
groupedSkinnyMatmul(cg::KernelDType dtype, ArrayRef<int64_t> rows, int64_t k,
                    const KernelTuning &t, StringRef chip) {
  if (!t.switchOn("grouped-skinny"))
    return std::nullopt;
  cg::MatmulOptions whole;
  whole.dtype = dtype;
  whole.k = k;
  whole.n = std::accumulate(rows.begin(), rows.end(), int64_t(0));
  std::optional<cg::MatmulOptions> mm = skinnyMatmul(whole, t, chip);
  if (!mm || !mm->swapAB)
    return std::nullopt;
  return overMembers(*mm, rows);
}

/// The prefill GEMM over shared-input linears (q, k, v) in one launch: the
/// wgmma GEMM with the tile tiledMatmul() picks for a weight every member's
/// N divides into. A 512-token prefill of the 8B shape ran k and v on 16
/// CTAs each (44.5 us apiece against 46.3 us for q, 4x their work; ncu,
/// H100). None off the wgmma GEMM or with grouped-skinny=0.
std::optional<cg::MatmulOptions>
groupedTiledMatmul(cg::KernelDType dtype, ArrayRef<int64_t> rows, int64_t k,
                   const KernelTuning &t, StringRef chip) {
  if (!t.switchOn("grouped-skinny"))
    return std::nullopt;
  cg::MatmulOptions common;
  common.dtype = dtype;
  common.k = k;
  common.n = rows.front();
  for (int64_t n : rows)
    common.n = std::gcd(common.n, n);
  cg::MatmulOptions mm = tiledMatmul(common, t, chip);
  if (!mm.wgmma)
    return std::nullopt;
  return overMembers(mm, rows);
}

} // namespace

LogicalResult kiln::buildKernels(const CompiledModel &model,
                                 const KernelOptions &options, Location loc,
                                 rt::KernelTable &table, KernelStats &stats) {
  table.target = options.chip;
  const KernelTuning &tuning = options.tuning;
  const rt::EntryPoint *decode = model.plan.find("decode");
  if (!decode) {
    emitError(loc) << "codegen: the plan has no decode entry point";
    return failure();
  }
  const rt::ModelConfig &config = model.config;
  Collector c;
  // The entry point being walked: decode first (its kernels come first in
  // the table), then the prefill entry points, which reuse every shape
  // they share with decode.
  const rt::EntryPoint *entry = decode;
  auto buf = [&](uint32_t id) -> const rt::Buffer & {
    return entry->buffers[id];
  };
  auto constDim = [](const rt::Dim &d) {
    return d.isConstant() ? d.value : int64_t(-1);
  };
  auto lastDim = [&](uint32_t id) { return constDim(buf(id).shape.back()); };
  // Whether W [n, k] splits into a prefill GEMM's tiles; when it does not
  // and the tile came from `knob` (kiln-compile --kernel-option), the
  // knob did not apply to this shape: a warning says so rather than the
  // prefill quietly keeping the row kernels.
  auto fitsTile = [&](int64_t n, int64_t k, int64_t tileN, int64_t tileK,
                      StringRef knob, const std::string &use) {
    if (n % tileN == 0 && k % tileK == 0)
      return true;
    if (tuning.tile(knob) || tuning.count(knob, 0) > 0)
      emitWarning(loc) << "--kernel-option " << knob << ": " << use
                       << " (N=" << n << ", K=" << k
                       << ") does not split into tiles of " << tileN
                       << " features x " << tileK
                       << " of K; its prefill keeps the row-chunked kernel";
    return false;
  };

  // The packed layout a QuantLinear step of the current entry point reads
  // (docs/Quantization.md: x, packed, scales, [zero points], [bias] -> y),
  // as qgemv options; nullopt where no qgemv serves it (activations not
  // f16/bf16, bits other than 8 or 4, fp8 not 8 bits, groups or K that do
  // not cover whole 16-byte loads, a bias of another type).
  auto quantGemvOptions =
      [&](const rt::Step &s) -> std::optional<cg::QuantGemvOptions> {
    auto operand = [&](size_t i) {
      return s.operands.size() > i ? s.operands[i] : rt::kNoBuffer;
    };
    uint32_t zeros = operand(3), bias = operand(4);
    // x's type; y's is the same, or f32 for logits kept in fp32 (a
    // quantized lm_head).
    rt::DType act = buf(s.operands[0]).dtype;
    rt::DType out = buf(s.results[0]).dtype;
    const rt::Buffer &scales = buf(s.operands[2]);
    int64_t bits = s.getInt(rt::AttrKey::Bits);
    int64_t group = s.getInt(rt::AttrKey::GroupSize);
    int64_t k = lastDim(s.operands[0]);
    std::optional<cg::KernelDType> dt = storageType(act);
    std::optional<cg::KernelDType> st =
        scales.dtype == rt::DType::F32 ? std::optional(cg::KernelDType::F32)
                                       : storageType(scales.dtype);
    bool fp8 = s.getInt(rt::AttrKey::QuantFormat) ==
               static_cast<int64_t>(rt::QuantFormat::FP8E4M3);
    int64_t perLoad = 16 * 8 / std::max<int64_t>(bits, 1);
    if (!dt || !st || (bits != 4 && bits != 8) || (fp8 && bits != 8) ||
        k <= 0 || group <= 0 || k % perLoad || group % perLoad ||
        (out != act && out != rt::DType::F32) ||
        (bias != rt::kNoBuffer && buf(bias).dtype != act))
      return std::nullopt;
    cg::QuantGemvOptions o;
    o.dtype = *dt;
    o.scaleDType = *st;
    o.n = constDim(buf(s.operands[1]).shape[0]);
    o.k = k;
    o.bits = bits;
    o.groupSize = group;
    o.zeroPoint = zeros != rt::kNoBuffer;
    o.fp8 = fp8;
    o.bias = bias != rt::kNoBuffer;
    if (out != act)
      o.outputDType = cg::KernelDType::F32;
    return o;
  };

  // The CUDA-core qgemv's knobs on a packed layout. int4 rows are short
  // (K / 2 bytes): two per warp keep enough loads in flight.
  auto cudaCoreQgemv = [&](cg::QuantGemvOptions o) {
    o.rowsPerWarp = tuning.count("qgemv-rows-per-warp", o.bits == 4 ? 2 : 1);
    o.unroll = tuning.count("qgemv-unroll", 4);
    o.warpsPerBlock = tuning.count("qgemv-warps", o.warpsPerBlock);
    return o;
  };
  // The tensor-core variant of `o` where its groups are whole chunks (knob
  // qgemv-mma=0: never, for measuring; tensorCores stays false otherwise),
  // K split `split` ways unless knob qmma-split says otherwise. It serves
  // steps of several rows, and single rows of int4: single rows of int8
  // stay on the CUDA-core kernel -- on an H100 (8B shape, per channel) it
  // ran a decode step in 4.26 ms against 5.25 on the tensor cores, whose
  // int8-to-bf16 decode goes through fp32.
  auto tensorCoreQgemv = [&](cg::QuantGemvOptions o, int64_t split) {
    o.tensorCores = !o.fp8 &&
                    o.groupSize % cg::quantMmaChunkWeights(o.bits) == 0 &&
                    tuning.switchOn("qgemv-mma");
    if (o.tensorCores) {
      o.unroll = tuning.count("qmma-unroll", 2);
      o.kSplit = tuning.count("qmma-split", split);
    }
    return o;
  };

  // gemv for W of plan shape `shape` ([K, N], or [N, K] when transposed).
  // `bias`: a [N] bias buffer fused into the epilogue (kNoBuffer: none).
  // `act` is the input's type; `out` the result's (the weight's type, or
  // f32 for logits kept in fp32).
  // Returns the request (valid until the next add), or null when missing.
  auto gemv = [&](uint32_t weight, rt::DType act, bool transposed,
                  const std::string &use, uint32_t bias = rt::kNoBuffer,
                  std::optional<rt::DType> out = std::nullopt) -> Request * {
    rt::DType outType = out.value_or(act);
    const rt::Buffer &w = buf(weight);
    int64_t n = constDim(w.shape[transposed ? 0 : 1]);
    int64_t k = constDim(w.shape[transposed ? 1 : 0]);
    std::optional<cg::KernelDType> dt = storageType(w.dtype);
    if (!dt || w.dtype != act ||
        (outType != w.dtype && outType != rt::DType::F32) ||
        w.shape.size() != 2 || n <= 0 || k <= 0) {
      c.missing("linear",
                {{"dtype", std::string(rt::dtypeName(w.dtype))},
                 {"n", str(n)},
                 {"k", str(k)}},
                "gemv takes f16/bf16 weights and activations of one type", use);
      return nullptr;
    }
    bool hasBias = bias != rt::kNoBuffer;
    if (hasBias && (buf(bias).dtype != w.dtype || buf(bias).shape.size() != 1 ||
                    constDim(buf(bias).shape[0]) != n)) {
      c.missing("linear_bias",
                {{"dtype", std::string(rt::dtypeName(buf(bias).dtype))},
                 {"n", str(n)}},
                "gemv fuses a [N] bias of the weight's type", use);
      return nullptr;
    }
    bool f32Out = outType != w.dtype;
    return &c.add(
        "gemv_" + str(n) + "_" + str(k) + rt::dtypeName(w.dtype) +
            (hasBias ? "_bias" : "") + (f32Out ? "_of32" : ""),
        use, [&](Request &r) {
          r.family = "gemv";
          r.repeat = rt::LaunchRepeat::PerToken;
          r.weightLayout = rt::WeightLayout::NK;
          cg::GemvOptions o;
          o.dtype = *dt;
          o.n = n;
          o.k = k;
          o.bias = hasBias;
          // Compile-time tuning knobs of the one-row gemv.
          // K steps in flight: 16 for long rows (the 1B down projection,
          // K = 8192, in 2 chunks instead of 4: 1B batch 1 1.376 -> 1.349
          // ms a step), 8 below 32 steps a lane (the 8B lm_head, K = 4096:
          // 478 -> 349 us on the H100, 2.2 -> 3.0 TB/s).
          o.unroll = tuning.count("gemv-unroll", defaultGemvUnroll(k));
          o.rowsPerWarp = tuning.count("gemv-rows-per-warp", o.rowsPerWarp);
          o.warpsPerBlock = tuning.count("gemv-warps", kGemvWarps);
          if (f32Out)
            o.outputDType = cg::KernelDType::F32;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildGemvKernel(b, m, o);
          };
          cg::GemvOptions chunked = chunkedGemv(o);
          r.chunkedBuild = [chunked](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildGemvKernel(b, m, chunked);
          };
          // Many rows (prefill, large batches): the tensor-core GEMM,
          // where the shape fits its tiles.
          cg::MatmulOptions mm;
          mm.dtype = *dt;
          mm.n = n;
          mm.k = k;
          mm.bias = hasBias;
          mm.outputDType = o.outputDType;
          cg::MatmulOptions tiled = tiledMatmul(mm, tuning, options.chip);
          if (fitsTile(n, k, tiled.tileN, tiled.tileK,
                       tiled.wgmma ? "wgmma-n" : "tiled-tile", use))
            r.tiledBuild = [tiled](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildMatmulKernel(b, m, tiled);
            };
          if (std::optional<cg::MatmulOptions> skinny =
                  skinnyMatmul(mm, tuning, options.chip))
            r.skinnyBuild = [s = *skinny](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildMatmulKernel(b, m, s);
            };
        });
  };
  auto elementwise = [&](cg::ElementwiseOp op, rt::DType dtype, int64_t size,
                         const std::string &use) {
    std::string family = cg::stringifyElementwiseOp(op).str();
    std::optional<cg::KernelDType> dt = storageType(dtype);
    if (!dt || size <= 0) {
      c.missing(family, {{"dtype", rt::dtypeName(dtype)}, {"size", str(size)}},
                "elementwise generators take f16/bf16 rows of constant size",
                use);
      return;
    }
    c.add(family + str(size) + rt::dtypeName(dtype), use, [&](Request &r) {
      r.family = family;
      r.elementwise = true;
      cg::ElementwiseOptions o;
      o.op = op;
      o.dtype = *dt;
      o.size = size;
      r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
        return cg::buildElementwiseKernel(b, m, o);
      };
    });
  };

  const rt::Buffer *cache = nullptr;
  for (const rt::Buffer &b : decode->buffers)
    if (b.kind == rt::BufferKind::KVCache)
      cache = &b;
  int64_t blockSize = config.blockSize;
  int64_t maxBlocks =
      (int64_t(config.contextLength) + blockSize - 1) / blockSize;

  std::vector<const rt::EntryPoint *> walk = {decode};
  for (const rt::EntryPoint &e : model.plan.entries)
    if (&e != decode)
      walk.push_back(&e);
  for (const rt::EntryPoint *current : walk) {
    entry = current;
    bool isDecode = entry == decode;
    rt::EntryKernels binding;
    binding.entry = entry->name;
    binding.steps.resize(entry->steps.size());
    for (size_t i = 0; i < entry->steps.size(); ++i) {
      const rt::Step &s = entry->steps[i];
      c.step = &binding.steps[i];
      std::string use = entry->name + " step #" + std::to_string(i) + " (" +
                        rt::opKindName(s.kind) + ")";
      rt::DType act =
          s.results.empty() ? rt::DType::F32 : buf(s.results[0]).dtype;
      std::string actName = rt::dtypeName(act);
      switch (s.kind) {
      case rt::OpKind::View:
        break; // no kernel: another shape of the same bytes
      case rt::OpKind::GatherLastTokens:
        break; // no kernel: the device copies each sequence's last row
      case rt::OpKind::RMSNorm: {
        int64_t hidden = lastDim(s.operands[0]);
        float eps = s.getFloat(rt::AttrKey::Epsilon);
        std::optional<cg::KernelDType> dt = storageType(act);
        if (!dt || s.getFloat(rt::AttrKey::WeightOffset) != 0.0f ||
            hidden <= 0 || buf(s.operands[1]).dtype != act) {
          c.missing("rms_norm", {{"dtype", actName}, {"hidden", str(hidden)}},
                    "rms_norm takes f16/bf16 rows and weights without a weight "
                    "offset",
                    use);
          break;
        }
        c.add("rms_norm" + str(hidden) + actName + std::to_string(eps), use,
              [&](Request &r) {
                r.family = "rms_norm";
                r.scale = rt::LaunchScale::Tokens;
                cg::RMSNormOptions o;
                o.dtype = *dt;
                o.hidden = hidden;
                o.epsilon = eps;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildRMSNormKernel(b, m, o);
                };
              });
        break;
      }
      case rt::OpKind::QuantLinear: {
        // The activations' type: the result's may be f32 (logits).
        std::string xName = rt::dtypeName(buf(s.operands[0]).dtype);
        const rt::Buffer &scales = buf(s.operands[2]);
        int64_t bits = s.getInt(rt::AttrKey::Bits);
        int64_t group = s.getInt(rt::AttrKey::GroupSize);
        bool fp8 = s.getInt(rt::AttrKey::QuantFormat) ==
                   static_cast<int64_t>(rt::QuantFormat::FP8E4M3);
        std::optional<cg::QuantGemvOptions> layout = quantGemvOptions(s);
        if (!layout) {
          c.missing("qgemv",
                    {{"dtype", xName},
                     {"bits", str(bits)},
                     {"group", str(group)},
                     {"format", fp8 ? "fp8e4m3" : "int"}},
                    "qgemv decodes int8/int4/fp8 codes whose groups cover "
                    "whole 16-byte loads, for f16/bf16 activations",
                    use);
          break;
        }
        cg::QuantGemvOptions o = cudaCoreQgemv(*layout);
        int64_t n = o.n, k = o.k;
        std::optional<cg::KernelDType> dt = o.dtype;
        // K is split over the warps of a CTA until there are about 8 warps
        // per SM of the target's SMs (1024-row projections have only 64 row
        // tiles).
        cg::QuantGemvOptions mma = tensorCoreQgemv(o, mmaKSplit((n + 15) / 16));
        if (mma.tensorCores && (bits == 4 || tuning.count("qmma-int8", 0) >= 2))
          o = mma;
        std::string key =
            "qgemv_" + str(n) + "_" + str(k) + xName + "_b" + str(bits) + "_g" +
            str(group) + rt::dtypeName(scales.dtype) +
            (o.zeroPoint ? "_zp" : "") + (fp8 ? "_fp8" : "") +
            (o.bias ? "_bias" : "") + (o.outputDType ? "_of32" : "");
        c.add(key, use, [&](Request &r) {
          r.family = "qgemv";
          r.repeat = rt::LaunchRepeat::PerToken;
          auto build = [](const cg::QuantGemvOptions &q) {
            return [q](OpBuilder &b, gpu::GPUModuleOp m) {
              return q.tensorCores ? cg::buildQuantMmaGemvKernel(b, m, q)
                                   : cg::buildQuantGemvKernel(b, m, q);
            };
          };
          r.build = build(o);
          // Several rows: the tensor-core variant reads W once per 16
          // (two n8 tiles), the CUDA-core one once per 8.
          cg::QuantGemvOptions chunked = mma.tensorCores ? mma : o;
          chunked.tokens = mma.tensorCores ? 16 : kGemvChunkRows;
          chunked.rowsPerWarp = 1;
          chunked.unroll =
              mma.tensorCores ? tuning.count("qmma-chunk-unroll", 2) : 2;
          r.chunkedBuild = build(chunked);
          // Many rows (prefill): W decoded once into dense scratch, then
          // the tensor-core GEMM over it.
          cg::MatmulOptions mm;
          mm.dtype = *dt;
          mm.n = n;
          mm.k = k;
          mm.bias = o.bias;
          mm.outputDType = o.outputDType;
          mm.constantWeights = false; // the scratch qdequant just wrote
          cg::MatmulOptions tiled = tiledMatmul(mm, tuning, options.chip);
          if (fitsTile(n, k, tiled.tileN, tiled.tileK,
                       tiled.wgmma ? "wgmma-n" : "tiled-tile", use)) {
            r.tiledBuild = [tiled](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildMatmulKernel(b, m, tiled);
            };
            r.dequantBuild = [o](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildQuantDequantKernel(b, m, o);
            };
          }
        });
        break;
      }
      case rt::OpKind::Linear:
        gemv(s.operands[1], buf(s.operands[0]).dtype,
             s.getInt(rt::AttrKey::TransposeWeight) != 0, use,
             s.operands.size() > 2 ? s.operands[2] : rt::kNoBuffer, act);
        break;
      case rt::OpKind::GatedMLP: {
        bool t = s.getInt(rt::AttrKey::TransposeWeight) != 0;
        const rt::Buffer &gate = buf(s.operands[1]);
        int64_t inter = constDim(gate.shape[t ? 0 : 1]);
        bool silu = s.getInt(rt::AttrKey::Activation) ==
                    static_cast<int64_t>(rt::Activation::SiLU);
        Request *gateGemv = gemv(s.operands[1], act, t, use);
        const rt::Buffer &up = buf(s.operands[2]);
        if (gateGemv && silu && up.shape == gate.shape &&
            up.dtype == gate.dtype && !gateGemv->gatedBuild) {
          cg::GemvOptions fused;
          fused.dtype = *storageType(gate.dtype);
          fused.n = inter;
          fused.k = constDim(gate.shape[t ? 1 : 0]);
          fused.gatedUp = true;
          fused.rowsPerWarp =
              tuning.count("gated-rows-per-warp", fused.rowsPerWarp);
          fused.warpsPerBlock =
              tuning.count("gated-warps", fused.warpsPerBlock);
          fused.unroll = tuning.count("gated-unroll", kGatedUnroll);
          gateGemv->gatedBuild = [fused](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildGemvKernel(b, m, fused);
          };
          gateGemv->gatedChunkedBuild = [fused](OpBuilder &b,
                                                gpu::GPUModuleOp m) {
            return cg::buildGemvKernel(b, m, chunkedGemv(fused));
          };
          if (std::optional<cg::MatmulOptions> grouped = groupedSkinnyMatmul(
                  fused.dtype, {fused.n, fused.n}, fused.k, tuning,
                  options.chip))
            gateGemv->groupedBuild = [g = *grouped](OpBuilder &b,
                                                    gpu::GPUModuleOp m) {
              return cg::buildMatmulKernel(b, m, g);
            };
        }
        gemv(s.operands[2], act, t, use);
        if (silu)
          elementwise(cg::ElementwiseOp::SiluMul, act, inter, use);
        else
          c.missing("gated_activation",
                    {{"dtype", actName},
                     {"activation", str(s.getInt(rt::AttrKey::Activation))},
                     {"size", str(inter)}},
                    "only silu_mul has a generator", use);
        gemv(s.operands[3], act, t, use);
        break;
      }
      case rt::OpKind::SiLU: {
        const rt::Buffer &x = buf(s.operands[0]);
        if (x.shape == buf(s.results[0]).shape && x.shape.size() == 2 &&
            x.shape[0] == rt::Dim::symbol(rt::Sym::T)) {
          elementwise(cg::ElementwiseOp::Silu, act, lastDim(s.operands[0]),
                      use);
          break;
        }
        c.missing("silu",
                  {{"dtype", actName}, {"shape", rt::shapeString(x.shape)}},
                  "silu takes [T, C] rows", use);
        break;
      }
      case rt::OpKind::Mul:
      case rt::OpKind::Add: {
        const rt::Buffer &a = buf(s.operands[0]), &b = buf(s.operands[1]);
        bool add = s.kind == rt::OpKind::Add;
        if (a.shape == b.shape && a.shape.size() == 2 &&
            a.shape[0] == rt::Dim::symbol(rt::Sym::T)) {
          elementwise(add ? cg::ElementwiseOp::Add : cg::ElementwiseOp::Mul,
                      act, lastDim(s.operands[0]), use);
          break;
        }
        if (!add) {
          c.missing("mul",
                    {{"dtype", actName},
                     {"shape", rt::shapeString(a.shape) + "*" +
                                   rt::shapeString(b.shape)}},
                    "mul takes two [T, C] rows; no broadcast", use);
          break;
        }
        c.missing("add",
                  {{"dtype", actName},
                   {"shape",
                    rt::shapeString(a.shape) + "+" + rt::shapeString(b.shape)}},
                  "residual_add takes two [T, H] rows; no broadcast add", use);
        break;
      }
      case rt::OpKind::KVCacheWrite: {
        const rt::Buffer &key = buf(s.operands[1]);
        std::optional<cg::KernelDType> dt = storageType(cache->dtype);
        int64_t kvHeads = constDim(key.shape[1]),
                headDim = constDim(key.shape[2]);
        if (!dt || key.dtype != cache->dtype) {
          c.missing("kv_write",
                    {{"dtype", rt::dtypeName(cache->dtype)},
                     {"kv_heads", str(kvHeads)},
                     {"head_dim", str(headDim)}},
                    "kv_write copies f16/bf16 rows into a cache of their type",
                    use);
          break;
        }
        c.add("kv_write" + str(kvHeads) + "_" + str(headDim), use,
              [&](Request &r) {
                r.family = "kv_write";
                r.scale = rt::LaunchScale::Tokens;
                cg::KVCacheWriteOptions o;
                o.dtype = *dt;
                o.kvHeads = kvHeads;
                o.headDim = headDim;
                o.blockSize = blockSize;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildKVCacheWriteKernel(b, m, o);
                };
              });
        break;
      }
      case rt::OpKind::PagedAttention: {
        const rt::Buffer &q = buf(s.operands[0]);
        std::optional<cg::KernelDType> dt = storageType(cache->dtype);
        int64_t heads = s.getInt(rt::AttrKey::NumHeads);
        int64_t kvHeads = s.getInt(rt::AttrKey::KVHeads);
        int64_t headDim = constDim(q.shape.back());
        float scale = s.getFloat(rt::AttrKey::Scale);
        int64_t window = s.getInt(rt::AttrKey::SlidingWindow);
        float softcap = s.getFloat(rt::AttrKey::Softcap);
        if (!dt || q.dtype != cache->dtype) {
          c.missing("paged_decode",
                    {{"dtype", rt::dtypeName(cache->dtype)},
                     {"heads", str(heads)},
                     {"kv_heads", str(kvHeads)},
                     {"head_dim", str(headDim)}},
                    "paged_decode takes f16/bf16 queries and cache of one type",
                    use);
          break;
        }
        cg::PagedAttentionOptions attention;
        attention.dtype = *dt;
        attention.numHeads = heads;
        attention.kvHeads = kvHeads;
        attention.headDim = headDim;
        attention.blockSize = blockSize;
        attention.maxBlocks = maxBlocks;
        attention.scale = scale;
        attention.slidingWindow = window;
        attention.softcap = softcap;
        std::string shapeKey = str(heads) + "_" + str(kvHeads) + "_" +
                               str(headDim) + "_" + std::to_string(scale) +
                               "_" + str(window) + "_" +
                               std::to_string(softcap);
        if (!isDecode) {
          // Ragged query rows (prompt chunks on top of cached context): one
          // CTA row per packed token, causal within each sequence.
          c.add("paged_prefill" + shapeKey, use, [&](Request &r) {
            r.family = "paged_prefill";
            r.scale = rt::LaunchScale::Tokens;
            cg::PagedPrefillOptions o;
            o.attention = attention;
            o.numTokens = 1;
            o.numSeqs = 1;
            r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildPagedAttentionPrefillKernel(b, m, o);
            };
            // Long prompt chunks go to the tensor cores where the shape
            // allows (no window or soft-cap; head_dim a multiple of 16).
            if (!window && !softcap && headDim % 16 == 0 && headDim <= 256) {
              cg::FlashPrefillOptions f;
              f.attention = attention;
              r.flashBuild = [f](OpBuilder &b, gpu::GPUModuleOp m) {
                return cg::buildFlashPrefillKernel(b, m, f);
              };
            }
          });
          break;
        }
        c.add("paged_decode" + shapeKey, use, [&](Request &r) {
          r.family = "paged_decode";
          r.scale = rt::LaunchScale::Seqs;
          cg::PagedDecodeOptions o;
          o.attention = attention;
          o.numSeqs = 1;
          o.partitionSize = cg::kAutoPartitionSize;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildPagedAttentionDecodeKernel(b, m, o);
          };
        });
        break;
      }
      case rt::OpKind::Embedding: {
        const rt::Buffer &t = buf(s.operands[0]);
        const rt::Buffer &ids = buf(s.operands[1]);
        int64_t vocab = constDim(t.shape[0]), hidden = constDim(t.shape[1]);
        std::optional<cg::KernelDType> dt = storageType(t.dtype);
        if (!dt || t.dtype != act || ids.dtype != rt::DType::I64 ||
            t.shape.size() != 2 || vocab <= 0 || hidden <= 0) {
          c.missing("embedding",
                    {{"dtype", rt::dtypeName(t.dtype)},
                     {"vocab", str(vocab)},
                     {"hidden", str(hidden)}},
                    "embedding gathers f16/bf16 rows of a constant [V, H] "
                    "table by i64 ids",
                    use);
          break;
        }
        c.add("embedding" + str(vocab) + "_" + str(hidden) + actName, use,
              [&](Request &r) {
                r.family = "embedding";
                r.scale = rt::LaunchScale::Tokens;
                cg::EmbeddingOptions o;
                o.dtype = *dt;
                o.vocab = vocab;
                o.hidden = hidden;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildEmbeddingKernel(b, m, o);
                };
              });
        break;
      }
      case rt::OpKind::RotaryTable: {
        int64_t rot = lastDim(s.results[0]);
        const rt::Attr *freqs = s.find(rt::AttrKey::InvFreq);
        std::optional<cg::KernelDType> dt = floatType(act);
        bool sameTypes =
            s.results.size() == 2 && buf(s.results[1]).dtype == act;
        if (!dt || !freqs || !sameTypes ||
            buf(s.operands[0]).dtype != rt::DType::I64 || rot <= 0 ||
            int64_t(freqs->floats.size()) * 2 != rot) {
          c.missing("rotary_table", {{"rotary_dim", str(rot)}},
                    "rotary_table writes f32/f16/bf16 cos and sin [T, rot] "
                    "from i64 positions and rot/2 inverse frequencies",
                    use);
          break;
        }
        float scaling = s.getFloat(rt::AttrKey::AttentionScaling, 1.0f);
        std::string key = "rotary_table" + actName + std::to_string(scaling);
        for (float f : freqs->floats)
          key += "_" + std::to_string(f);
        c.add(key, use, [&](Request &r) {
          r.family = "rotary_table";
          r.scale = rt::LaunchScale::Tokens;
          cg::RotaryTableOptions o;
          o.dtype = *dt;
          o.invFreq = freqs->floats;
          o.attentionScaling = scaling;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildRotaryTableKernel(b, m, o);
          };
        });
        break;
      }
      case rt::OpKind::Rope: {
        const rt::Buffer &x = buf(s.operands[0]);
        const rt::Buffer &cosT = buf(s.operands[1]);
        int64_t heads = x.shape.size() == 3 ? constDim(x.shape[1]) : -1;
        int64_t headDim = x.shape.size() == 3 ? constDim(x.shape[2]) : -1;
        int64_t rot = s.getInt(rt::AttrKey::RotaryDim);
        std::optional<cg::KernelDType> dt = storageType(act);
        std::optional<cg::KernelDType> tableDt = floatType(cosT.dtype);
        if (!dt || !tableDt || x.dtype != act ||
            buf(s.operands[2]).dtype != cosT.dtype || heads <= 0 ||
            headDim <= 0 || rot <= 0 || rot % 2 != 0 || rot > headDim ||
            lastDim(s.operands[1]) != rot) {
          c.missing("rope",
                    {{"dtype", actName},
                     {"heads", str(heads)},
                     {"head_dim", str(headDim)},
                     {"rotary_dim", str(rot)}},
                    "rope rotates packed f16/bf16 [T, H, D] rows with [T, rot] "
                    "tables",
                    use);
          break;
        }
        c.add("rope" + actName + rt::dtypeName(cosT.dtype) + "_" + str(heads) +
                  "_" + str(headDim) + "_" + str(rot),
              use, [&](Request &r) {
                r.family = "rope";
                r.scale = rt::LaunchScale::Tokens;
                cg::RopeOptions o;
                o.dtype = *dt;
                o.tableDType = *tableDt;
                o.numHeads = heads;
                o.headDim = headDim;
                o.rotaryDim = rot;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildRopeKernel(b, m, o);
                };
              });
        break;
      }
      case rt::OpKind::Cast: {
        rt::DType from = buf(s.operands[0]).dtype;
        int64_t size = lastDim(s.results[0]);
        std::optional<cg::KernelDType> src = floatType(from),
                                       dst = floatType(act);
        const rt::Buffer &res = buf(s.results[0]);
        if (!src || !dst || from == act || size <= 0 ||
            buf(s.operands[0]).shape != res.shape || res.shape.size() != 2 ||
            res.shape[0] != rt::Dim::symbol(rt::Sym::T)) {
          c.missing("cast",
                    {{"from", rt::dtypeName(from)},
                     {"to", actName},
                     {"size", str(size)}},
                    "cast converts rows of constant size between f32, f16 and "
                    "bf16",
                    use);
          break;
        }
        c.add("cast" + std::string(rt::dtypeName(from)) + actName + str(size),
              use, [&](Request &r) {
                r.family = "cast";
                r.elementwise = true;
                cg::CastOptions o;
                o.from = *src;
                o.to = *dst;
                o.size = size;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildCastKernel(b, m, o);
                };
              });
        break;
      }
      case rt::OpKind::SparseLinear: {
        // docs/Quantization.md: (x, values [N, K/2], metadata [N, K/8],
        // [bias]).
        uint32_t bias = s.operands.size() > 3 ? s.operands[3] : rt::kNoBuffer;
        const rt::Buffer &values = buf(s.operands[1]);
        int64_t n = constDim(values.shape[0]);
        int64_t k = lastDim(s.operands[0]);
        std::optional<cg::KernelDType> dt = storageType(act);
        if (!dt || values.dtype != act || n <= 0 || k <= 0 || k % 16 ||
            (bias != rt::kNoBuffer && buf(bias).dtype != act)) {
          c.missing("sgemv", {{"dtype", actName}, {"k", str(k)}},
                    "sgemv reads 2:4 values of the activation type (f16 or "
                    "bf16), K a multiple of 16",
                    use);
          break;
        }
        cg::SparseGemvOptions o;
        o.dtype = *dt;
        o.n = n;
        o.k = k;
        o.bias = bias != rt::kNoBuffer;
        std::string key = "sgemv_" + str(n) + "_" + str(k) + actName +
                          (o.bias ? "_bias" : "");
        c.add(key, use, [&](Request &r) {
          r.family = "sgemv";
          r.repeat = rt::LaunchRepeat::PerToken;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildSparseGemvKernel(b, m, o);
          };
          cg::SparseGemvOptions chunked = o;
          chunked.tokens = kGemvChunkRows;
          chunked.unroll = 2;
          r.chunkedBuild = [chunked](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildSparseGemvKernel(b, m, chunked);
          };
          // Many rows (prefill): the sparse tensor cores (mma.sp).
          cg::SparseMatmulOptions mm = sparseMatmul(n, k, tuning);
          mm.dtype = *dt;
          mm.bias = o.bias;
          if (fitsTile(n, k, mm.tileFeatures, mm.tileK, "sparse-tile", use)) {
            r.tiledFamily = "smatmul";
            r.tiledBuild = [mm](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildSparseMatmulKernel(b, m, mm);
            };
          }
        });
        break;
      }
      default: {
        std::string family = rt::opKindName(s.kind);
        for (char &ch : family)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        c.missing(family,
                  {{"dtype", actName},
                   {"shape", s.results.empty()
                                 ? std::string("[]")
                                 : rt::shapeString(buf(s.results[0]).shape)}},
                  "no generator for this step kind", use);
        break;
      }
      }
    }
    table.bindings.push_back(std::move(binding));
  }
  c.step = nullptr;

  // Residual add + RMSNorm in one launch, for every entry point: unbound,
  // the device finds the pairs (rt::findAddNorms) and looks the kernel up
  // by hidden size, type and epsilon.
  for (const rt::EntryPoint &e : model.plan.entries)
    for (const rt::AddNorm &pair : rt::findAddNorms(e)) {
      const rt::Step &norm = e.steps[pair.norm];
      rt::DType dtype = e.buffers[norm.results[0]].dtype;
      std::optional<cg::KernelDType> dt = storageType(dtype);
      float eps = norm.getFloat(rt::AttrKey::Epsilon);
      if (!dt)
        continue;
      Request &r = c.add("add_rms_norm" + str(pair.hidden) +
                             rt::dtypeName(dtype) + std::to_string(eps),
                         e.name + " step #" + std::to_string(pair.add) +
                             " (Add, RMSNorm)",
                         [&](Request &r) {
                           r.family = "add_rms_norm";
                           r.scale = rt::LaunchScale::Tokens;
                           cg::RMSNormOptions o;
                           o.dtype = *dt;
                           o.hidden = pair.hidden;
                           o.epsilon = eps;
                           o.residual = true;
                           r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                             return cg::buildRMSNormKernel(b, m, o);
                           };
                         });
      r.uses = 0;
    }

  // A layer's q and k rotations in one launch, for every entry point:
  // unbound, found by the device (rt::findRopePairs) by shape.
  for (const rt::EntryPoint &e : model.plan.entries)
    for (const rt::RopePair &pair : rt::findRopePairs(e)) {
      const rt::Step &first = e.steps[pair.first];
      const rt::Buffer &x = e.buffers[first.operands[0]];
      const rt::Buffer &x2 = e.buffers[e.steps[pair.second].operands[0]];
      const rt::Buffer &cosT = e.buffers[first.operands[1]];
      std::optional<cg::KernelDType> dt = storageType(x.dtype);
      std::optional<cg::KernelDType> tableDt = floatType(cosT.dtype);
      int64_t rot = first.getInt(rt::AttrKey::RotaryDim);
      int64_t headDim = x.shape[2].value;
      if (!dt || !tableDt || rot <= 0 || rot % 2 || rot > headDim)
        continue;
      // With the keys' cache write after it (and a cache of the keys'
      // type): the rope_pair_kv kernel.
      bool kv = pair.hasKVWrite() && cache && cache->dtype == x.dtype;
      Request &r =
          c.add(std::string(kv ? "rope_pair_kv" : "rope_pair") +
                    rt::dtypeName(x.dtype) + rt::dtypeName(cosT.dtype) + "_" +
                    str(x.shape[1].value) + "_" + str(x2.shape[1].value) + "_" +
                    str(headDim) + "_" + str(rot),
                e.name + " step #" + std::to_string(pair.first) +
                    (kv ? " (Rope, Rope, KVCacheWrite)" : " (Rope, Rope)"),
                [&](Request &r) {
                  r.family = kv ? "rope_pair_kv" : "rope_pair";
                  r.scale = rt::LaunchScale::Tokens;
                  cg::RopeOptions o;
                  o.dtype = *dt;
                  o.tableDType = *tableDt;
                  o.numHeads = x.shape[1].value;
                  o.secondHeads = x2.shape[1].value;
                  o.headDim = headDim;
                  o.rotaryDim = rot;
                  o.kvWrite = kv;
                  o.kvBlockSize = blockSize;
                  r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                    return cg::buildRopeKernel(b, m, o);
                  };
                });
      r.uses = 0;
    }

  // One launch for the decode step's shared-input linears (q, k, v): not
  // bound to a step; the device finds the group with the same rule
  // (rt::findSharedInputLinears) and looks the kernel up by its shapes.
  entry = decode;
  for (const rt::SharedInputLinears &group :
       rt::findSharedInputLinears(*decode)) {
    const rt::Step &first = decode->steps[group.steps.front()];
    std::optional<cg::KernelDType> dt =
        storageType(buf(first.operands[1]).dtype);
    if (!dt)
      continue;
    std::string rows;
    for (int64_t n : group.rows)
      rows += "_" + str(n);
    Request &r =
        c.add("gemv_multi" + rows + "_" + str(group.k) +
                  rt::dtypeName(buf(first.operands[1]).dtype),
              "decode step #" + std::to_string(group.steps.front()) +
                  " (Linear, with the next " +
                  std::to_string(group.steps.size() - 1) + ")",
              [&](Request &r) {
                r.family = "gemv_multi";
                r.weightLayout = rt::WeightLayout::NK;
                cg::GemvOptions o;
                o.dtype = *dt;
                o.n = group.rows.front();
                o.moreN.assign(group.rows.begin() + 1, group.rows.end());
                o.k = group.k;
                o.unroll = tuning.count("multi-unroll", kMultiUnroll);
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildGemvKernel(b, m, o);
                };
                r.chunkedBuild = [c = chunkedGemv(o)](OpBuilder &b,
                                                      gpu::GPUModuleOp m) {
                  return cg::buildGemvKernel(b, m, c);
                };
                if (std::optional<cg::MatmulOptions> tiled =
                        groupedTiledMatmul(*dt, group.rows, group.k, tuning,
                                           options.chip))
                  r.tiledBuild = [g = *tiled](OpBuilder &b,
                                              gpu::GPUModuleOp m) {
                    return cg::buildMatmulKernel(b, m, g);
                  };
                if (std::optional<cg::MatmulOptions> grouped =
                        groupedSkinnyMatmul(*dt, group.rows, group.k, tuning,
                                            options.chip))
                  r.skinnyBuild = [g = *grouped](OpBuilder &b,
                                                 gpu::GPUModuleOp m) {
                    return cg::buildMatmulKernel(b, m, g);
                  };
              });
    r.uses = 0;
  }

  // A layer's residual add and norm in the prologue of the gemv that reads
  // the normalized row (q/k/v's gemv_multi, the gated gate/up gemv), for
  // one-row steps: unbound, found by the device with the same rule
  // (rt::findNormFedLinears) and looked up by shape and epsilon.
  for (const rt::NormFedLinears &fed : rt::findNormFedLinears(*decode)) {
    const rt::Step &norm = decode->steps[fed.addNorm.norm];
    const rt::Step &consumer = decode->steps[fed.consumer];
    std::optional<cg::KernelDType> dt = storageType(buf(norm.results[0]).dtype);
    if (!dt)
      continue;
    bool t = consumer.getInt(rt::AttrKey::TransposeWeight) != 0;
    cg::GemvOptions o;
    o.dtype = *dt;
    o.k = fed.addNorm.hidden;
    o.addNormPrologue = true;
    o.normEpsilon = norm.getFloat(rt::AttrKey::Epsilon);
    if (fed.gated) {
      const rt::Buffer &gate = buf(consumer.operands[1]);
      const rt::Buffer &up = buf(consumer.operands[2]);
      if (consumer.getInt(rt::AttrKey::Activation) !=
              static_cast<int64_t>(rt::Activation::SiLU) ||
          up.shape != gate.shape || up.dtype != gate.dtype ||
          gate.dtype != buf(norm.results[0]).dtype ||
          constDim(gate.shape[t ? 1 : 0]) != o.k)
        continue;
      o.n = constDim(gate.shape[t ? 0 : 1]);
      o.gatedUp = true;
      o.rowsPerWarp = tuning.count("gated-rows-per-warp", o.rowsPerWarp);
      o.warpsPerBlock = tuning.count("gated-warps", o.warpsPerBlock);
      o.unroll = tuning.count("gated-unroll", kGatedUnroll);
    } else {
      o.n = fed.group.rows.front();
      o.moreN.assign(fed.group.rows.begin() + 1, fed.group.rows.end());
      o.unroll = tuning.count("multi-unroll", kMultiUnroll);
    }
    std::string rows;
    for (int64_t n : o.allN())
      rows += "_" + str(n);
    Request &r = c.add(
        std::string(fed.gated ? "gemv_gated_addnorm" : "gemv_multi_addnorm") +
            rows + "_" + str(o.k) + rt::dtypeName(buf(norm.results[0]).dtype) +
            "_eps" + std::to_string(o.normEpsilon),
        "decode step #" + std::to_string(fed.addNorm.add) +
            " (Add, RMSNorm and the linears reading it)",
        [&](Request &r) {
          r.family = fed.gated ? "gemv_gated" : "gemv_multi";
          r.weightLayout = rt::WeightLayout::NK;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildGemvKernel(b, m, o);
          };
          // Row-chunked for a few rows (a batched decode or speculative
          // verify step) where the 8 normalized rows fit the static
          // workgroup memory; only on request: on pycoder (H100) the 5-row
          // verify step took 133 us of GPU time with it against 114 with
          // add_rms_norm apart (42 launches against 53): the prologue's
          // rows delay every CTA's first weight loads more than a launch
          // costs.
          if (tuning.count("chunked-norm-gemv", 0) != 0 &&
              kGemvChunkRows * o.k * 2 <= cg::kMaxStaticSharedBytes)
            r.chunkedBuild = [c = chunkedGemv(o)](OpBuilder &b,
                                                  gpu::GPUModuleOp m) {
              return cg::buildGemvKernel(b, m, c);
            };
        });
    r.uses = 0;
    // And with the q/k rotation and the k/v cache write in the epilogue
    // when a Rope pair storing them follows (the device prefers it).
    if (fed.gated || !fed.hasRope() || !cache ||
        cache->dtype != buf(norm.results[0]).dtype)
      continue;
    const rt::Step &ropeQ = decode->steps[fed.rope.first];
    std::optional<cg::KernelDType> tableDt =
        floatType(buf(ropeQ.operands[1]).dtype);
    if (!tableDt)
      continue;
    o.ropeKVEpilogue = true;
    o.ropeHeadDim = buf(ropeQ.operands[0]).shape[2].value;
    o.ropeTableDType = *tableDt;
    o.kvBlockSize = blockSize;
    Request &withRope =
        c.add("gemv_multi_addnorm_rope_kv" + rows + "_" + str(o.k) +
                  rt::dtypeName(buf(norm.results[0]).dtype) + "_eps" +
                  std::to_string(o.normEpsilon) + "_d" + str(o.ropeHeadDim) +
                  rt::dtypeName(buf(ropeQ.operands[1]).dtype),
              "decode step #" + std::to_string(fed.addNorm.add) +
                  " (Add, RMSNorm, q/k/v, Rope pair and KVCacheWrite)",
              [&](Request &r) {
                r.family = "gemv_multi";
                r.weightLayout = rt::WeightLayout::NK;
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return cg::buildGemvKernel(b, m, o);
                };
              });
    withRope.uses = 0;
  }

  // The same for quantized linears (q, k, v; gate and up): one qgemv_multi
  // launch over all of their rows (the 8B shape's 1024-row k and v alone
  // leave most SMs idle), with the kernel their own decode rows use -- the
  // tensor-core qgemv for int4, the CUDA-core one for int8 and fp8 -- and
  // its shape, so each output is computed exactly as by its own launch.
  // A SiLU and the Mul of its result (a quantized gated MLP's activation,
  // which stays SiLU and Mul steps): one silu_mul launch for any number of
  // rows, unbound; the device finds the pair (rt::findSiluMuls) and looks
  // the kernel up by type and width.
  for (const rt::SiluMul &pair : rt::findSiluMuls(*decode))
    elementwise(cg::ElementwiseOp::SiluMul, buf(pair.out).dtype, pair.width,
                "decode step #" + std::to_string(pair.silu) +
                    " (SiLU and the Mul of its result)");

  std::map<size_t, rt::NormFedLinears> normFedQuant;
  for (const rt::NormFedLinears &fed : rt::findNormFedQuantLinears(*decode))
    normFedQuant[fed.consumer] = fed;
  for (const rt::SharedInputLinears &group :
       rt::findSharedInputQuantLinears(*decode)) {
    const rt::Step &first = decode->steps[group.steps.front()];
    std::optional<cg::QuantGemvOptions> layout = quantGemvOptions(first);
    if (!layout || group.k % layout->groupSize)
      continue;
    cg::QuantGemvOptions o = cudaCoreQgemv(*layout);
    o.moreN.assign(group.rows.begin() + 1, group.rows.end());
    // Each weight's tiles as its own qgemv would split them.
    int64_t split = 1;
    for (int64_t n : group.rows)
      split = std::max(split, mmaKSplit((n + 15) / 16));
    cg::QuantGemvOptions mma = tensorCoreQgemv(o, split);
    if (mma.tensorCores && (o.bits == 4 || tuning.count("qmma-int8", 0)))
      o = mma;
    std::string rows;
    for (int64_t n : group.rows)
      rows += "_" + str(n);
    Request &r = c.add("qgemv_multi" + rows + "_" + str(group.k) +
                           rt::dtypeName(buf(first.results[0]).dtype) + "_b" +
                           str(o.bits) + "_g" + str(o.groupSize) +
                           rt::dtypeName(buf(first.operands[2]).dtype) +
                           (o.zeroPoint ? "_zp" : "") + (o.fp8 ? "_fp8" : ""),
                       "decode step #" + std::to_string(group.steps.front()) +
                           " (QuantLinear, with the next " +
                           std::to_string(group.steps.size() - 1) + ")",
                       [&](Request &r) {
                         r.family = "qgemv_multi";
                         r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                           return o.tensorCores
                                      ? cg::buildQuantMmaGemvKernel(b, m, o)
                                      : cg::buildQuantGemvKernel(b, m, o);
                         };
                       });
    r.uses = 0;
    // With the layer's residual add and norm in the prologue where an
    // AddNorm feeds the group (either variant; the tensor-core one with at
    // least as many warps splitting K as the norm's threads need); the
    // device finds the same pair (rt::findNormFedQuantLinears) and looks
    // the kernel up by shape and epsilon.
    auto fed = normFedQuant.find(group.steps.front());
    if (fed == normFedQuant.end())
      continue;
    const rt::Step &norm = decode->steps[fed->second.addNorm.norm];
    if (storageType(buf(norm.results[0]).dtype) != o.dtype)
      continue;
    o.addNormPrologue = true;
    o.normEpsilon = norm.getFloat(rt::AttrKey::Epsilon);
    Request &withNorm =
        c.add("qgemv_multi_addnorm" + rows + "_" + str(group.k) +
                  rt::dtypeName(buf(first.results[0]).dtype) + "_b" +
                  str(o.bits) + "_g" + str(o.groupSize) +
                  rt::dtypeName(buf(first.operands[2]).dtype) +
                  (o.zeroPoint ? "_zp" : "") + (o.fp8 ? "_fp8" : "") + "_eps" +
                  std::to_string(o.normEpsilon),
              "decode step #" + std::to_string(fed->second.addNorm.add) +
                  " (Add, RMSNorm and the quantized linears reading it)",
              [&](Request &r) {
                r.family = "qgemv_multi";
                r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
                  return o.tensorCores ? cg::buildQuantMmaGemvKernel(b, m, o)
                                       : cg::buildQuantGemvKernel(b, m, o);
                };
              });
    withNorm.uses = 0;
  }

  // Greedy tokens on the device (no plan step: runGreedy's pick over fp32
  // logits rows).
  if (decode->buffers[decode->output].dtype == rt::DType::F32) {
    int64_t vocab = config.vocabSize;
    Request &r =
        c.add("argmax" + str(vocab), "greedy sampling", [&](Request &r) {
          r.family = "argmax";
          r.scale = rt::LaunchScale::Seqs;
          cg::ArgmaxOptions o;
          o.vocab = vocab;
          r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
            return cg::buildArgmaxKernel(b, m, o);
          };
        });
    r.uses = 0;
  }

  // Copy-on-write of cache blocks (no plan step: the batch's block copies).
  if (cache) {
    std::optional<cg::KernelDType> dt = storageType(cache->dtype);
    int64_t kvHeads = constDim(cache->shape[3]);
    int64_t headDim = constDim(cache->shape[5]);
    if (dt) {
      Request &r =
          c.add("kv_copy", "the batch's block copies", [&](Request &r) {
            r.family = "kv_copy";
            r.scale = rt::LaunchScale::Copies;
            r.repeat = rt::LaunchRepeat::PerLayer;
            cg::KVBlockCopyOptions o;
            o.dtype = *dt;
            o.kvHeads = kvHeads;
            o.headDim = headDim;
            o.blockSize = blockSize;
            r.build = [o](OpBuilder &b, gpu::GPUModuleOp m) {
              return cg::buildKVBlockCopyKernel(b, m, o);
            };
          });
      r.uses = 0;
    } else {
      c.missing("kv_copy", {{"dtype", rt::dtypeName(cache->dtype)}},
                "kv_copy moves f16/bf16 caches", "the batch's block copies");
      c.requests.back().uses = 0;
    }
  }

  // Generate, lower and assemble.
  DialectRegistry registry;
  cg::registerCodegenDialects(registry);
  MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  cg::initializeNVPTXBackend();
  std::string diagnostics;
  ScopedDiagnosticHandler collect(&context, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error) {
      if (!diagnostics.empty())
        diagnostics += "; ";
      diagnostics += diag.str();
    }
    return success();
  });
  std::string ptxas = options.assemble ? cg::findPtxas() : std::string();
  stats.ptxas = ptxas;
  cg::PTXLoweringOptions lowering;
  lowering.chip = options.chip;

  // The name of the last kernel generate() produced, or of the identical
  // variant already in the table (a dense and a quantized linear of one
  // shape share their tensor-core GEMM).
  std::string generatedName;
  auto generate = [&](Request &r, bool shareVariant = false) -> LogicalResult {
    rt::KernelInfo k;
    k.family = r.family;
    k.uses = r.uses;
    if (!r.build) {
      k.status = rt::KernelStatus::Missing;
      k.params = r.params;
      k.reason = r.reason + " (first needed by " + r.firstUse + ")";
      k.name = "missing:" + r.family;
      for (auto &p : r.params)
        k.name += "_" + p.first + "=" + p.second;
      table.kernels.push_back(std::move(k));
      ++stats.missing;
      return success();
    }
    diagnostics.clear();
    auto fail = [&](StringRef what) {
      emitError(loc) << "codegen: cannot " << what << " the " << r.family
                     << " kernel for " << r.firstUse << ": "
                     << (diagnostics.empty() ? "unknown error" : diagnostics);
      return failure();
    };
    gpu::GPUModuleOp gpuModule;
    OwningOpRef<ModuleOp> module =
        cg::createKernelModule(&context, "kiln_kernels", &gpuModule);
    OpBuilder builder(&context);
    FailureOr<cg::KernelSpec> spec = r.build(builder, gpuModule);
    if (failed(spec))
      return fail("generate");
    if (failed(cg::simplifyKernels(*module)))
      return fail("simplify");
    FailureOr<std::string> ptx = cg::lowerToPTX(*module, lowering);
    if (failed(ptx))
      return fail("lower to PTX");
    k.name = spec->name;
    for (auto &p : spec->params)
      k.params.emplace_back(p.first, p.second);
    k.grid = spec->grid;
    k.block = spec->block;
    k.dynamicSharedBytes = spec->dynamicSharedBytes;
    k.gridScale = r.scale;
    k.gridScaleDim = r.scaleDim;
    k.repeat = r.repeat;
    k.weightLayout = r.weightLayout;
    if (r.elementwise) {
      // One row per launch unit only when the grid covers the row exactly
      // (the kernel then has no bounds check); otherwise launch per row.
      int64_t vec = 1;
      for (auto &p : spec->params)
        if (p.first == "vec")
          vec = std::stoll(p.second);
      int64_t size = 0;
      for (auto &p : spec->params)
        if (p.first == "size")
          size = std::stoll(p.second);
      if (spec->grid[0] * spec->block[0] * vec == size)
        k.gridScale = rt::LaunchScale::Tokens;
      else
        k.repeat = rt::LaunchRepeat::PerToken;
    }
    for (const cg::KernelArg &a : spec->args) {
      rt::KernelArgInfo arg;
      arg.name = a.name;
      arg.dtype = toRuntime(a.dtype);
      arg.access = a.zeroed      ? rt::ArgAccess::ZeroedScratch
                   : a.isScratch ? rt::ArgAccess::Scratch
                   : a.isOutput  ? rt::ArgAccess::Out
                                 : rt::ArgAccess::In;
      arg.shape.assign(a.shape.begin(), a.shape.end());
      k.args.push_back(std::move(arg));
    }
    k.ptx = std::move(*ptx);
    if (const rt::KernelInfo *same = table.find(k.name);
        same && shareVariant && same->ptx == k.ptx) {
      generatedName = k.name;
      return success();
    }
    generatedName = k.name;
    if (table.find(k.name)) {
      emitError(loc) << "codegen: two shapes of " << r.family
                     << " give the kernel name '" << k.name
                     << "' (second: " << r.firstUse << ")";
      return failure();
    }
    if (!ptxas.empty()) {
      FailureOr<std::vector<char>> cubin = cg::assembleWithPtxas(
          NameLoc::get(StringAttr::get(&context, k.name)), k.ptx, options.chip);
      if (failed(cubin))
        return fail("assemble (ptxas)");
      k.cubin.assign(cubin->begin(), cubin->end());
      ++stats.cubins;
    }
    ++stats.generated;
    stats.ptxBytes += k.ptx.size();
    stats.cubinBytes += k.cubin.size();
    table.kernels.push_back(std::move(k));
    return success();
  };
  // The table's first entries are the requests, in the order the bindings
  // name them; row-chunked gemv variants follow, each named by its
  // row-at-a-time kernel's `chunked` parameter.
  size_t numRequests = c.requests.size();
  for (Request &r : c.requests)
    if (failed(generate(r)))
      return failure();
  for (size_t i = 0; i < numRequests; ++i) {
    Request &r = c.requests[i];
    if (table.kernels[i].status != rt::KernelStatus::Generated)
      continue;
    for (auto [build, key, family] :
         {std::make_tuple(r.chunkedBuild, "chunked", r.family),
          std::make_tuple(r.tiledBuild, "tiled", r.tiledFamily),
          std::make_tuple(r.skinnyBuild, "skinny", std::string("matmul")),
          std::make_tuple(r.gatedBuild, "gated", std::string("gemv_gated")),
          std::make_tuple(r.gatedChunkedBuild, "gated_chunked",
                          std::string("gemv_gated")),
          std::make_tuple(r.groupedBuild, "grouped", std::string("matmul")),
          std::make_tuple(r.flashBuild, "flash", std::string("flash_prefill")),
          std::make_tuple(r.dequantBuild, "dequant",
                          std::string("qdequant"))}) {
      if (!build)
        continue;
      Request variant;
      variant.family = family;
      variant.firstUse = r.firstUse;
      variant.build = build;
      if (std::string(key) == "gated") {
        // One row, as the gemv it stands in for.
        variant.repeat = rt::LaunchRepeat::PerToken;
      } else if (std::string(key) == "dequant") {
        // The whole W, whatever the rows: a fixed grid.
      } else {
        // Row chunks along grid y, flash attention's query tiles along x.
        variant.scale = rt::LaunchScale::TokenChunks;
        variant.scaleDim = std::string(key) == "flash" ? 0 : 1;
      }
      variant.weightLayout = r.weightLayout;
      if (failed(generate(variant, /*shareVariant=*/true)))
        return failure();
      table.kernels[i].params.emplace_back(key, generatedName);
    }
  }
  rt::Status valid = table.validate();
  if (!valid.isOk()) {
    emitError(loc) << "codegen: internal error: the kernel table does not "
                      "validate: "
                   << valid.message();
    return failure();
  }
  return success();
}
