//===- kiln-kernelgen.cpp - Generate one GPU kernel -----------------------===//
//
//   kiln-kernelgen --kernel=rms_norm --rows=4 --hidden=4096 --dtype=f16
//                  --emit=mlir|nvvm|ptx|cubin|spec [-o FILE]
//   kiln-kernelgen --kernel=gemv --n=1024 --k=384 --emit=ptx
//   kiln-kernelgen --kernel=silu_mul --hidden=1024 --emit=ptx
//   kiln-kernelgen --kernel=paged_decode --seqs=8 --heads=32 --kv-heads=8
//                  --head-dim=64 --kv-block-size=16 --max-blocks=256 --emit=ptx
//   kiln-kernelgen --kernel=paged_prefill --tokens=64 --seqs=4 ...
//   kiln-kernelgen --kernel=kv_write --tokens=8 --kv-heads=8 --head-dim=64
//   kiln-kernelgen --kernel=kv_copy --copies=4 --num-layers=16
//   --num-blocks=1024
//   kiln-kernelgen --kernel=embedding --tokens=4 --vocab=128256 --hidden=2048
//   kiln-kernelgen --kernel=rotary_table --tokens=4 --rotary-dim=64
//                  --rope-theta=500000 [--table-dtype=f32]
//   kiln-kernelgen --kernel=rope --tokens=4 --heads=32 --head-dim=64
//                  --rotary-dim=64 [--table-dtype=f16]
//   kiln-kernelgen --kernel=cast --from=f32 --to=f16 --rows=4 --hidden=64
//
// Builds one kernel with Kiln's generators (lib/Codegen) and prints it at
// the requested stage. Text outputs start with a `// kiln.kernel ...` line,
// the kernel's launch contract (grid, block, shapes, arguments), which the
// GPU harness tools/kiln-kernelgen/gpu-check reads back; `--emit=spec`
// prints only that line (without the comment marker).
//
//===----------------------------------------------------------------------===//

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
#include "kiln/Support/ToolDiagnostics.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace llvm;
using namespace kiln;
using namespace kiln::codegen;

static cl::OptionCategory category("kiln-kernelgen options");

static cl::opt<std::string> kernel(
    "kernel", cl::Required, cl::cat(category),
    cl::desc("Kernel family: rms_norm, gemv, qgemv, qdequant, sgemv, matmul, "
             "smatmul, argmax, silu_mul, residual_add, kv_write, kv_copy, "
             "paged_decode, paged_prefill, flash_prefill, embedding, "
             "rotary_table, rope, cast"));
static cl::opt<std::string> dtypeName("dtype", cl::init("f16"),
                                      cl::cat(category),
                                      cl::desc("Storage type: f16 or bf16"));
static cl::opt<int64_t>
    rows("rows", cl::init(1), cl::cat(category),
         cl::desc("Rows (tokens) for rms_norm and the elementwise kernels"));
static cl::opt<int64_t> hidden(
    "hidden", cl::init(4096), cl::cat(category),
    cl::desc("Row length for rms_norm and the elementwise kernels (these "
             "process rows * hidden elements)"));
static cl::opt<int64_t> gemvN("n", cl::init(4096), cl::cat(category),
                              cl::desc("gemv: output features (rows of W)"));
static cl::opt<int64_t> gemvK("k", cl::init(4096), cl::cat(category),
                              cl::desc("gemv: input features (columns of W)"));
static cl::opt<double>
    epsilon("eps", cl::init(1e-5), cl::cat(category),
            cl::desc("rms_norm, gemv and qgemv --add-norm: epsilon"));
static cl::opt<int64_t>
    blockSize("block-size", cl::init(0), cl::cat(category),
              cl::desc("Threads per block for rms_norm and the elementwise "
                       "kernels (0: chosen from the shape)"));
static cl::opt<int64_t> warpsPerBlock("warps-per-block", cl::init(4),
                                      cl::cat(category),
                                      cl::desc("gemv: warps per block"));
static cl::opt<int64_t> rowsPerWarp("rows-per-warp", cl::init(1),
                                    cl::cat(category),
                                    cl::desc("gemv: output rows per warp"));
static cl::opt<int64_t>
    unroll("unroll", cl::init(8), cl::cat(category),
           cl::desc("gemv: K steps whose loads are issued together"));

// Embedding, rotary and cast kernels.
static cl::opt<int64_t> vocab("vocab", cl::init(32000), cl::cat(category),
                              cl::desc("embedding: rows of the table"));
static cl::opt<int64_t>
    rotaryDim("rotary-dim", cl::init(64), cl::cat(category),
              cl::desc("rotary_table, rope: rotated channels per head"));
static cl::opt<double>
    ropeTheta("rope-theta", cl::init(10000.0), cl::cat(category),
              cl::desc("rotary_table: base of the default inv_freq "
                       "(base^(-2i/rotary_dim))"));
static cl::opt<double>
    attentionScaling("attention-scaling", cl::init(1.0), cl::cat(category),
                     cl::desc("rotary_table: factor applied to cos and sin"));
static cl::opt<std::string> tableDType(
    "table-dtype", cl::init(""), cl::cat(category),
    cl::desc("rotary_table: type of the tables written (default f32); rope: "
             "type of the tables read (default --dtype); f32, f16 or bf16"));
static cl::opt<std::string> castFrom("from", cl::init("f32"), cl::cat(category),
                                     cl::desc("cast: source type"));
static cl::opt<std::string> castTo("to", cl::init("f16"), cl::cat(category),
                                   cl::desc("cast: result type"));

// Paged KV cache kernels.
static cl::opt<int64_t>
    tokens("tokens", cl::init(1), cl::cat(category),
           cl::desc("kv_write, paged_prefill: new (query) tokens of the step"));
static cl::opt<int64_t>
    seqs("seqs", cl::init(1), cl::cat(category),
         cl::desc("paged_decode, paged_prefill: sequences of the batch"));
static cl::opt<int64_t>
    queryTile("query-tile", cl::init(64), cl::cat(category),
              cl::desc("flash_prefill: query rows per CTA (16 per warp)"));
static cl::opt<int64_t>
    keyTile("key-tile", cl::init(64), cl::cat(category),
            cl::desc("flash_prefill: keys per pipeline stage"));
static cl::opt<int64_t> copies("copies", cl::init(1), cl::cat(category),
                               cl::desc("kv_copy: rows of the copy list"));
static cl::opt<int64_t> heads("heads", cl::init(32), cl::cat(category),
                              cl::desc("Attention: query heads"));
static cl::opt<int64_t> kvHeads("kv-heads", cl::init(8), cl::cat(category),
                                cl::desc("Paged kernels: KV heads"));
static cl::opt<int64_t> headDim("head-dim", cl::init(64), cl::cat(category),
                                cl::desc("Paged kernels: head dimension"));
static cl::opt<int64_t>
    kvBlockSize("kv-block-size", cl::init(16), cl::cat(category),
                cl::desc("Paged kernels: tokens per KV cache block"));
static cl::opt<int64_t>
    maxBlocks("max-blocks", cl::init(256), cl::cat(category),
              cl::desc("Attention: width of a block-table row"));
static cl::opt<std::string>
    cacheLayout("cache-layout", cl::init("combined"), cl::cat(category),
                cl::desc("Paged kernels: 'combined' ([blocks, 2, Hkv, B, D] "
                         "per layer) or 'separate' (K and V arrays [blocks, "
                         "Hkv, B, D])"));
static cl::opt<int64_t> numBlocks(
    "num-blocks", cl::init(0), cl::cat(category),
    cl::desc("Paged kernels: blocks per layer (the cache memref's size; "
             "kv_copy's layer stride); 0: enough for the shape"));
static cl::opt<int64_t> blockStride(
    "block-stride", cl::init(0), cl::cat(category),
    cl::desc("Paged kernels: elements between blocks (0: the layout's)"));
static cl::opt<int64_t> headStride(
    "head-stride", cl::init(0), cl::cat(category),
    cl::desc("Paged kernels: elements between KV heads (0: the layout's)"));
static cl::opt<int64_t> tokenStride(
    "token-stride", cl::init(0), cl::cat(category),
    cl::desc("Paged kernels: elements between token rows (0: head_dim)"));
static cl::opt<int64_t> vOffset(
    "v-offset", cl::init(-1), cl::cat(category),
    cl::desc("Combined cache: elements from K to V (-1: the layout's)"));
static cl::opt<int64_t> numLayers("num-layers", cl::init(1), cl::cat(category),
                                  cl::desc("kv_copy: layers to copy"));
static cl::opt<int64_t> layerStride(
    "layer-stride", cl::init(0), cl::cat(category),
    cl::desc("kv_copy: elements between layers (0: one layer's extent)"));
static cl::opt<double>
    scale("scale", cl::cat(category),
          cl::desc("Attention: score scale (default 1/sqrt(head_dim))"));
static cl::opt<int64_t>
    slidingWindow("sliding-window", cl::init(0), cl::cat(category),
                  cl::desc("Attention: attend to the last N positions only"));
static cl::opt<double>
    softcap("softcap", cl::init(0), cl::cat(category),
            cl::desc("Attention: scores become softcap * tanh(s / softcap)"));
static cl::opt<bool>
    gatedUp("gated-up", cl::cat(category),
            cl::desc("gemv: the fused gate/up + silu gemv of a gated MLP "
                     "(a second weight w_up; y = silu(x W^T) * (x W_up^T))"));
static cl::opt<int64_t> secondHeads(
    "second-heads", cl::init(0), cl::cat(category),
    cl::desc("rope: heads of a second input rotated in the same launch "
             "(rope_pair, e.g. q and k)"));
static cl::opt<bool> dynamicWeights(
    "dynamic-weights", cl::cat(category),
    cl::desc("matmul: W is written by the previous kernel (no W copies "
             "before the grid dependency wait)"));
static cl::opt<bool>
    swapAB("swap-ab", cl::cat(category),
           cl::desc("matmul --wgmma: W as wgmma's A operand (tile-n features "
                    "along M, 64 or 128), the tile-m tokens its N (few rows)"));
static cl::opt<bool>
    matmulBias("bias", cl::cat(category),
               cl::desc("matmul: add a bias[n] argument in the epilogue"));
static cl::opt<std::string>
    outDTypeName("out-dtype", cl::init(""), cl::cat(category),
                 cl::desc("matmul: y's type when not --dtype (f32: logits)"));
static cl::opt<bool>
    wgmma("wgmma", cl::cat(category),
          cl::desc("matmul: Hopper warpgroup tensor cores (sm_90a; tile-m 64 "
                   "or 128, tile-n up to 256, tile-k 64)"));
static cl::opt<bool>
    ropeKVWrite("kv-write", cl::cat(category),
                cl::desc("rope with --second-heads: also write the rotated "
                         "keys and the values to the paged cache "
                         "(rope_pair_kv; the cache flags give the layout); "
                         "gemv with --more-n K,V (q, k, v): the same rotation "
                         "and cache write in the epilogue (--head-dim)"));
static cl::opt<bool>
    residualAdd("residual", cl::cat(category),
                cl::desc("rms_norm: add a residual row first (add_rms_norm: "
                         "x + residual stored as `sum`, then normalized)"));
static cl::opt<bool>
    addNorm("add-norm", cl::cat(category),
            cl::desc("gemv and qgemv (one row; qgemv on the CUDA cores): the "
                     "residual add and RMSNorm of x in the prologue (arguments "
                     "residual, norm_weight, sum, normed)"));
static cl::list<int64_t> moreN(
    "more-n", cl::CommaSeparated, cl::cat(category),
    cl::desc("gemv, qgemv, matmul (--wgmma --swap-ab): row counts of further "
             "weights that read the same x (a multi-weight gemv or grouped "
             "GEMM, e.g. q, k and v)"));
static cl::opt<int64_t> quantBits("bits", cl::init(4), cl::cat(category),
                                  cl::desc("qgemv: bits per weight (4 or 8)"));
static cl::opt<int64_t>
    quantGroup("group-size", cl::init(128), cl::cat(category),
               cl::desc("qgemv: K elements per scale (k: per channel)"));
static cl::opt<bool> quantZeroPoint("zero-point", cl::cat(category),
                                    cl::desc("qgemv: u8 zero points"));
static cl::opt<bool>
    quantFp8("fp8", cl::cat(category),
             cl::desc("qgemv, qdequant: fp8 e4m3 codes (bits 8)"));
static cl::opt<bool>
    quantMma("mma", cl::cat(category),
             cl::desc("qgemv: the tensor-core variant (16 rows a warp)"));
static cl::opt<int64_t>
    quantKSplit("k-split", cl::init(1), cl::cat(category),
                cl::desc("qgemv --mma: warps of a CTA splitting K"));
static cl::opt<int64_t> quantMinWarps(
    "min-warps-per-sm", cl::init(0), cl::cat(category),
    cl::desc("qgemv --mma: warps an SM should hold (caps ptxas's registers; "
             "0: its choice)"));
static cl::opt<int64_t> tileM("tile-m", cl::init(128), cl::cat(category),
                              cl::desc("matmul: token rows per CTA tile"));
static cl::opt<int64_t> tileN("tile-n", cl::init(128), cl::cat(category),
                              cl::desc("matmul: output features per CTA tile"));
static cl::opt<int64_t> tileK("tile-k", cl::init(32), cl::cat(category),
                              cl::desc("matmul: K per pipeline stage"));
static cl::opt<int64_t> warpsM("warps-m", cl::init(2), cl::cat(category),
                               cl::desc("matmul: warps along the tile's rows"));
static cl::opt<int64_t>
    warpsN("warps-n", cl::init(4), cl::cat(category),
           cl::desc("matmul: warps along the tile's columns"));
static cl::opt<int64_t> stages("stages", cl::init(4), cl::cat(category),
                               cl::desc("matmul: K steps in flight"));
static cl::opt<int64_t> splitK("split-k", cl::init(1), cl::cat(category),
                               cl::desc("matmul: CTAs along K (grid z)"));
static cl::opt<int64_t> partitionSize(
    "partition-size", cl::init(0), cl::cat(category),
    cl::desc("paged_decode: split-K partition in positions (0: no split, "
             "-1: chosen from the batch)"));
static cl::opt<int64_t> warps("warps", cl::init(0), cl::cat(category),
                              cl::desc("Attention: warps per CTA (0: 4)"));
static cl::opt<int64_t>
    lanesPerKey("lanes-per-key", cl::init(0), cl::cat(category),
                cl::desc("Attention: lanes sharing one key row (0: auto)"));
static cl::opt<bool> prefetch(
    "prefetch", cl::init(true), cl::cat(category),
    cl::desc("Attention: load the next tile of keys during this tile's math"));
static cl::opt<int64_t> keysPerLane(
    "keys-per-lane", cl::init(0), cl::cat(category),
    cl::desc("Attention: keys per lane per loop iteration (0: auto)"));

enum class Emit { MLIR, NVVM, PTX, Cubin, Spec };
static cl::opt<Emit> emit(
    "emit", cl::init(Emit::MLIR), cl::cat(category), cl::desc("What to print"),
    cl::values(clEnumValN(Emit::MLIR, "mlir", "the generated gpu.module"),
               clEnumValN(Emit::NVVM, "nvvm",
                          "the module lowered to the LLVM/NVVM dialects"),
               clEnumValN(Emit::PTX, "ptx", "PTX text (NVPTX backend)"),
               clEnumValN(Emit::Cubin, "cubin", "a cubin assembled by ptxas"),
               clEnumValN(Emit::Spec, "spec", "the launch contract line")));
static cl::opt<std::string> chip("chip", cl::init("sm_90a"), cl::cat(category),
                                 cl::desc("Target SM (ptxas -arch)"));
static cl::opt<std::string> features("features", cl::init("+ptx80"),
                                     cl::cat(category),
                                     cl::desc("NVPTX features (PTX ISA)"));
static cl::opt<int> optLevel("opt-level", cl::init(3), cl::cat(category),
                             cl::desc("LLVM optimization level (0-3)"));
static cl::opt<bool> ptxasVerbose(
    "ptxas-verbose", cl::init(false), cl::cat(category),
    cl::desc("With --emit=cubin: print ptxas -v (registers, spills) to "
             "stderr"));
static cl::opt<bool>
    raw("raw", cl::init(false), cl::cat(category),
        cl::desc("Print the gpu.module as the generator built it, before "
                 "canonicalization and CSE"));
static cl::opt<std::string> outputPath("o", cl::init("-"), cl::cat(category),
                                       cl::desc("Output file"),
                                       cl::value_desc("file"));

static constexpr StringLiteral kTool = "kiln-kernelgen";

static int fail(const Twine &message) {
  errs() << kTool << ": error: " << message << "\n";
  return 1;
}

/// The shape and tuning flags of each family, so that a typo such as
/// `--kernel=gemv --hidden=384` is an error rather than a silently ignored
/// shape.
static std::vector<const cl::Option *> familyFlags(StringRef family) {
  std::vector<const cl::Option *> cache = {
      &kvHeads,     &headDim,    &kvBlockSize, &cacheLayout, &numBlocks,
      &blockStride, &headStride, &tokenStride, &vOffset};
  std::vector<const cl::Option *> attention = {
      &heads, &maxBlocks,   &scale,       &slidingWindow, &softcap,
      &warps, &lanesPerKey, &keysPerLane, &prefetch};
  std::vector<const cl::Option *> flags;
  auto add = [&](std::initializer_list<const cl::Option *> more) {
    flags.insert(flags.end(), more.begin(), more.end());
  };
  if (family == "rms_norm")
    add({&rows, &hidden, &epsilon, &blockSize, &residualAdd});
  else if (family == "embedding")
    add({&tokens, &vocab, &hidden});
  else if (family == "rotary_table")
    add({&tokens, &rotaryDim, &ropeTheta, &attentionScaling, &tableDType});
  else if (family == "rope")
    add({&tokens, &heads, &headDim, &rotaryDim, &tableDType, &secondHeads,
         &ropeKVWrite, &kvBlockSize, &cacheLayout});
  else if (family == "cast")
    add({&rows, &hidden, &castFrom, &castTo});
  else if (family == "gemv")
    add({&gemvN, &gemvK, &warpsPerBlock, &rowsPerWarp, &unroll, &tokens,
         &gatedUp, &addNorm, &epsilon, &ropeKVWrite, &headDim, &tableDType,
         &kvBlockSize, &cacheLayout,
         static_cast<const cl::Option *>(std::addressof(moreN))});
  else if (family == "qgemv")
    add({&gemvN, &gemvK, &quantBits, &quantGroup, &quantZeroPoint, &quantFp8,
         &quantMma, &quantKSplit, &quantMinWarps, &rowsPerWarp, &warpsPerBlock,
         &unroll, &tokens, &addNorm, &epsilon,
         static_cast<const cl::Option *>(std::addressof(moreN))});
  else if (family == "qdequant")
    add({&gemvN, &gemvK, &quantBits, &quantGroup, &quantZeroPoint, &quantFp8});
  else if (family == "matmul")
    add({&gemvN, &gemvK, &tileM, &tileN, &tileK, &warpsM, &warpsN, &stages,
         &splitK, &dynamicWeights, &wgmma, &swapAB, &matmulBias,
         &outDTypeName, static_cast<const cl::Option *>(std::addressof(moreN))});
  else if (family == "smatmul")
    add({&gemvN, &gemvK, &tileM, &tileN, &tileK, &warpsM, &warpsN, &stages});
  else if (family == "sgemv")
    add({&gemvN, &gemvK, &warpsPerBlock, &unroll, &tokens});
  else if (family == "argmax")
    add({&gemvN});
  else if (family == "kv_write")
    add({&tokens});
  else if (family == "kv_copy")
    add({&copies, &numLayers, &layerStride});
  else if (family == "paged_decode")
    add({&seqs, &partitionSize});
  else if (family == "paged_prefill")
    add({&tokens, &seqs});
  else if (family == "flash_prefill")
    add({&queryTile, &keyTile, &heads, &maxBlocks, &scale, &slidingWindow,
         &softcap});
  else // elementwise
    add({&rows, &hidden, &blockSize});
  if (family.starts_with("paged_") || family.starts_with("kv_") ||
      family == "flash_prefill")
    flags.insert(flags.end(), cache.begin(), cache.end());
  if (family.starts_with("paged_"))
    flags.insert(flags.end(), attention.begin(), attention.end());
  return flags;
}

static std::optional<std::string> misplacedFlag(StringRef family) {
  std::vector<const cl::Option *> allowed = familyFlags(family);
  for (const cl::Option *option :
       std::initializer_list<const cl::Option *>{&rows,
                                                 &hidden,
                                                 &gemvN,
                                                 &gemvK,
                                                 &epsilon,
                                                 &blockSize,
                                                 &warpsPerBlock,
                                                 &rowsPerWarp,
                                                 &unroll,
                                                 &tokens,
                                                 &seqs,
                                                 &copies,
                                                 &heads,
                                                 &kvHeads,
                                                 &headDim,
                                                 &kvBlockSize,
                                                 &maxBlocks,
                                                 &cacheLayout,
                                                 &numBlocks,
                                                 &blockStride,
                                                 &headStride,
                                                 &tokenStride,
                                                 &vOffset,
                                                 &numLayers,
                                                 &layerStride,
                                                 &scale,
                                                 &slidingWindow,
                                                 &softcap,
                                                 &partitionSize,
                                                 &warps,
                                                 &lanesPerKey,
                                                 &keysPerLane,
                                                 &prefetch,
                                                 &vocab,
                                                 &rotaryDim,
                                                 &ropeTheta,
                                                 &attentionScaling,
                                                 &tableDType,
                                                 &castFrom,
                                                 &castTo,
                                                 &quantBits,
                                                 &quantGroup,
                                                 &quantZeroPoint,
                                                 &quantFp8,
                                                 &quantMma,
                                                 &quantKSplit,
                                                 &quantMinWarps})
    if (option->getNumOccurrences() > 0 &&
        llvm::find(allowed, option) == allowed.end())
      return option->ArgStr.str();
  return std::nullopt;
}

/// f32, or a storage type parseDType accepts.
static std::optional<KernelDType> parseFloatDType(StringRef name) {
  if (name == "f32" || name == "fp32" || name == "float")
    return KernelDType::F32;
  return parseDType(name);
}

static PagedCacheLayout cacheLayoutFromFlags(KVCacheKind kind) {
  PagedCacheLayout layout;
  layout.kind = kind;
  layout.numBlocks = numBlocks;
  layout.blockStride = blockStride;
  layout.headStride = headStride;
  layout.tokenStride = tokenStride;
  layout.vOffset = vOffset;
  layout.numLayers = numLayers;
  layout.layerStride = layerStride;
  return layout;
}

/// The packed layout of qgemv and qdequant (scales of the activation type).
static QuantGemvOptions quantFromFlags(KernelDType dtype) {
  QuantGemvOptions options;
  options.dtype = dtype;
  options.scaleDType = dtype;
  options.n = gemvN;
  options.k = gemvK;
  options.bits = quantBits;
  options.groupSize = quantGroup;
  options.zeroPoint = quantZeroPoint;
  options.fp8 = quantFp8;
  return options;
}

static PagedAttentionOptions attentionFromFlags(KernelDType dtype,
                                                KVCacheKind kind) {
  PagedAttentionOptions options;
  options.dtype = dtype;
  options.numHeads = heads;
  options.kvHeads = kvHeads;
  options.headDim = headDim;
  options.blockSize = kvBlockSize;
  options.maxBlocks = maxBlocks;
  if (scale.getNumOccurrences())
    options.scale = scale;
  options.slidingWindow = slidingWindow;
  options.softcap = softcap;
  options.cache = cacheLayoutFromFlags(kind);
  options.warps = warps;
  options.lanesPerKey = lanesPerKey;
  options.keysPerLane = keysPerLane;
  options.prefetch = prefetch;
  return options;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv, "Kiln GPU kernel generator (gpu.module -> PTX -> cubin)\n");

  std::optional<KernelDType> dtype = parseDType(dtypeName);
  if (!dtype)
    return fail("unknown --dtype '" + dtypeName + "' (expected f16 or bf16)");
  if (std::optional<std::string> flag = misplacedFlag(kernel))
    return fail("--" + *flag + " does not apply to --kernel=" + kernel);
  std::optional<KVCacheKind> kind = parseKVCacheKind(cacheLayout);
  if (!kind)
    return fail("unknown --cache-layout '" + cacheLayout +
                "' (expected combined or separate)");

  mlir::DialectRegistry registry;
  registerCodegenDialects(registry);
  mlir::MLIRContext context(registry);
  // Diagnostics name the kernel; a dump of the whole module adds nothing.
  context.printOpOnDiagnostic(false);
  ToolDiagnosticHandler diagnostics(&context, kTool);

  mlir::gpu::GPUModuleOp kernels;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      createKernelModule(&context, "kiln_kernels", &kernels);
  mlir::OpBuilder builder(&context);

  mlir::FailureOr<KernelSpec> spec = mlir::failure();
  if (kernel == "rms_norm") {
    RMSNormOptions options;
    options.dtype = *dtype;
    options.rows = rows;
    options.hidden = hidden;
    options.epsilon = epsilon;
    options.blockSize = blockSize;
    options.residual = residualAdd;
    spec = buildRMSNormKernel(builder, kernels, options);
  } else if (kernel == "gemv") {
    GemvOptions options;
    options.dtype = *dtype;
    options.n = gemvN;
    options.k = gemvK;
    options.warpsPerBlock = warpsPerBlock;
    options.rowsPerWarp = rowsPerWarp;
    options.unroll = unroll;
    options.tokens = tokens;
    options.gatedUp = gatedUp;
    options.moreN.assign(moreN.begin(), moreN.end());
    options.addNormPrologue = addNorm;
    options.normEpsilon = epsilon;
    if (ropeKVWrite) {
      std::optional<KernelDType> table =
          tableDType.empty() ? dtype : parseFloatDType(tableDType.getValue());
      if (!table)
        return fail("unknown --table-dtype '" + tableDType +
                    "' (expected f32, f16 or bf16)");
      options.ropeKVEpilogue = true;
      options.ropeHeadDim = headDim;
      options.ropeTableDType = *table;
      options.kvBlockSize = kvBlockSize;
      options.cache.kind = *kind;
    }
    spec = buildGemvKernel(builder, kernels, options);
  } else if (kernel == "argmax") {
    ArgmaxOptions options;
    options.vocab = gemvN;
    spec = buildArgmaxKernel(builder, kernels, options);
  } else if (kernel == "qgemv") {
    QuantGemvOptions options = quantFromFlags(*dtype);
    options.rowsPerWarp = rowsPerWarp;
    options.warpsPerBlock = warpsPerBlock;
    options.unroll = unroll;
    options.tokens = tokens;
    options.kSplit = quantKSplit;
    options.minWarpsPerSM = quantMinWarps;
    options.moreN.assign(moreN.begin(), moreN.end());
    options.addNormPrologue = addNorm;
    options.normEpsilon = epsilon;
    spec = quantMma ? buildQuantMmaGemvKernel(builder, kernels, options)
                    : buildQuantGemvKernel(builder, kernels, options);
  } else if (kernel == "qdequant") {
    spec = buildQuantDequantKernel(builder, kernels, quantFromFlags(*dtype));
  } else if (kernel == "sgemv") {
    SparseGemvOptions options;
    options.dtype = *dtype;
    options.n = gemvN;
    options.k = gemvK;
    options.warpsPerBlock = warpsPerBlock;
    options.unroll = unroll;
    options.tokens = tokens;
    spec = buildSparseGemvKernel(builder, kernels, options);
  } else if (kernel == "smatmul") {
    SparseMatmulOptions options;
    options.dtype = *dtype;
    options.n = gemvN;
    options.k = gemvK;
    // The dense GEMM's tile flags mean the same here: -m counts tokens, -n
    // features (SparseMatmulOptions names its axes after W's rows instead).
    if (tileM.getNumOccurrences())
      options.tileTokens = tileM;
    if (tileN.getNumOccurrences())
      options.tileFeatures = tileN;
    if (tileK.getNumOccurrences())
      options.tileK = tileK;
    if (warpsM.getNumOccurrences())
      options.warpsN = warpsM;
    if (warpsN.getNumOccurrences())
      options.warpsM = warpsN;
    if (stages.getNumOccurrences())
      options.stages = stages;
    spec = buildSparseMatmulKernel(builder, kernels, options);
  } else if (kernel == "matmul") {
    MatmulOptions options;
    options.dtype = *dtype;
    options.n = gemvN;
    options.k = gemvK;
    options.tileM = tileM;
    options.tileN = tileN;
    options.tileK = tileK;
    options.warpsM = warpsM;
    options.warpsN = warpsN;
    options.stages = stages;
    options.splitK = splitK;
    options.constantWeights = !dynamicWeights;
    options.wgmma = wgmma;
    options.swapAB = swapAB;
    options.moreN.assign(moreN.begin(), moreN.end());
    if (wgmma && !tileK.getNumOccurrences())
      options.tileK = 64;
    options.bias = matmulBias;
    if (!outDTypeName.empty()) {
      std::optional<KernelDType> out = parseFloatDType(outDTypeName);
      if (!out)
        return fail("--out-dtype: unknown type '" + outDTypeName + "'");
      options.outputDType = *out;
    }
    spec = buildMatmulKernel(builder, kernels, options);
  } else if (std::optional<ElementwiseOp> op = parseElementwiseOp(kernel)) {
    ElementwiseOptions options;
    options.op = *op;
    options.dtype = *dtype;
    if (rows <= 0 || hidden <= 0)
      return fail("--rows and --hidden must be positive");
    options.size = rows * hidden;
    options.blockSize = blockSize;
    spec = buildElementwiseKernel(builder, kernels, options);
  } else if (kernel == "kv_write") {
    KVCacheWriteOptions options;
    options.dtype = *dtype;
    options.numTokens = tokens;
    options.kvHeads = kvHeads;
    options.headDim = headDim;
    options.blockSize = kvBlockSize;
    options.cache = cacheLayoutFromFlags(*kind);
    spec = buildKVCacheWriteKernel(builder, kernels, options);
  } else if (kernel == "kv_copy") {
    KVBlockCopyOptions options;
    options.dtype = *dtype;
    options.numCopies = copies;
    options.kvHeads = kvHeads;
    options.headDim = headDim;
    options.blockSize = kvBlockSize;
    options.cache = cacheLayoutFromFlags(*kind);
    spec = buildKVBlockCopyKernel(builder, kernels, options);
  } else if (kernel == "paged_decode") {
    PagedDecodeOptions options;
    options.attention = attentionFromFlags(*dtype, *kind);
    options.numSeqs = seqs;
    options.partitionSize = partitionSize;
    spec = buildPagedAttentionDecodeKernel(builder, kernels, options);
  } else if (kernel == "paged_prefill") {
    PagedPrefillOptions options;
    options.attention = attentionFromFlags(*dtype, *kind);
    options.numTokens = tokens;
    options.numSeqs = seqs;
    spec = buildPagedAttentionPrefillKernel(builder, kernels, options);
  } else if (kernel == "flash_prefill") {
    FlashPrefillOptions options;
    options.attention = attentionFromFlags(*dtype, *kind);
    options.queryTile = queryTile;
    options.keyTile = keyTile;
    spec = buildFlashPrefillKernel(builder, kernels, options);
  } else if (kernel == "embedding") {
    EmbeddingOptions options;
    options.dtype = *dtype;
    options.numTokens = tokens;
    options.vocab = vocab;
    options.hidden = hidden;
    spec = buildEmbeddingKernel(builder, kernels, options);
  } else if (kernel == "rotary_table") {
    RotaryTableOptions options;
    std::optional<KernelDType> table = parseFloatDType(
        tableDType.empty() ? std::string("f32") : tableDType.getValue());
    if (!table)
      return fail("unknown --table-dtype '" + tableDType +
                  "' (expected f32, f16 or bf16)");
    if (rotaryDim <= 0 || rotaryDim % 2 != 0)
      return fail("--rotary-dim must be positive and even");
    options.dtype = *table;
    options.numTokens = tokens;
    options.invFreq = defaultInvFreq(rotaryDim, ropeTheta);
    options.attentionScaling = attentionScaling;
    spec = buildRotaryTableKernel(builder, kernels, options);
  } else if (kernel == "rope") {
    RopeOptions options;
    std::optional<KernelDType> table =
        tableDType.empty() ? dtype : parseFloatDType(tableDType.getValue());
    if (!table)
      return fail("unknown --table-dtype '" + tableDType +
                  "' (expected f32, f16 or bf16)");
    options.dtype = *dtype;
    options.tableDType = *table;
    options.numTokens = tokens;
    options.numHeads = heads;
    options.headDim = headDim;
    options.rotaryDim = rotaryDim;
    options.secondHeads = secondHeads;
    options.kvWrite = ropeKVWrite;
    options.kvBlockSize = kvBlockSize;
    spec = buildRopeKernel(builder, kernels, options);
  } else if (kernel == "cast") {
    CastOptions options;
    std::optional<KernelDType> from = parseFloatDType(castFrom),
                               to = parseFloatDType(castTo);
    if (!from || !to)
      return fail("--from and --to take f32, f16 or bf16");
    if (rows <= 0 || hidden <= 0)
      return fail("--rows and --hidden must be positive");
    options.from = *from;
    options.to = *to;
    options.size = rows * hidden;
    spec = buildCastKernel(builder, kernels, options);
  } else {
    return fail("unknown --kernel '" + kernel +
                "' (expected rms_norm, gemv, qgemv, qdequant, sgemv, matmul, "
                "smatmul, argmax, "
                "silu_mul, "
                "residual_add, kv_write, kv_copy, paged_decode, paged_prefill, "
                "flash_prefill, embedding, rotary_table, rope or cast)");
  }
  if (mlir::failed(spec))
    return 1;
  if (mlir::failed(mlir::verify(*module)))
    return fail("the generated module does not verify (a generator bug)");
  if (!raw && mlir::failed(simplifyKernels(*module)))
    return 1;

  std::string error;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputPath, &error);
  if (!output)
    return fail(error);
  raw_ostream &os = output->os();
  std::string header = "// kiln.kernel " + spec->str() + "\n";

  PTXLoweringOptions lowering;
  lowering.chip = chip;
  lowering.features = features;
  lowering.optLevel = optLevel;
  switch (emit) {
  case Emit::Spec:
    os << spec->str() << "\n";
    break;
  case Emit::MLIR:
    os << header << *module << "\n";
    break;
  case Emit::NVVM:
    if (mlir::failed(lowerToNVVM(*module, lowering)))
      return 1;
    os << header << *module << "\n";
    break;
  case Emit::PTX: {
    mlir::FailureOr<std::string> ptx = lowerToPTX(*module, lowering);
    if (mlir::failed(ptx))
      return 1;
    os << header << *ptx;
    break;
  }
  case Emit::Cubin: {
    if (outputPath == "-" && sys::Process::StandardOutIsDisplayed())
      return fail("refusing to write a cubin to the terminal; use -o FILE");
    mlir::FailureOr<std::string> ptx = lowerToPTX(*module, lowering);
    if (mlir::failed(ptx))
      return 1;
    std::string log;
    SmallVector<std::string> extra;
    if (ptxasVerbose)
      extra.push_back("-v");
    mlir::FailureOr<std::vector<char>> cubin = assembleWithPtxas(
        mlir::NameLoc::get(mlir::StringAttr::get(&context, spec->name)), *ptx,
        chip, extra, &log);
    if (mlir::failed(cubin))
      return 1;
    if (ptxasVerbose)
      errs() << log;
    os.write(cubin->data(), cubin->size());
    break;
  }
  }
  output->keep();
  return 0;
}
