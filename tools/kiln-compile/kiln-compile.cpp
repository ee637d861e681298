//===- kiln-compile.cpp - ONNX model to .kiln artifact --------------------===//
//
//   kiln-compile model.onnx -o m.kiln [--target sm_90a]
//                [--tokenizer tokenizer.model] [--dummy-weights]
//                [--embed-weights] [--block-size 16] [--context-length N]
//                [--dtype f32|f16|bf16] [--emit=llm] [--verbose]
//                [--draft draft.onnx [--draft-tokenizer t.model] |
//                 --speculate-ngram] [--speculate K]
//                [--quantize int8|int4|fp8 [--group-size N] [--zero-point]
//                 [--quant-method rtn|gptq|awq]] [--sparsify 2:4
//                 [--sparsify-method magnitude|wanda|sparsegpt]]
//                [--compress-skip lm_head,...] [--calibration-text FILE]
//                [--kernel-option NAME=VALUE ...] [--list-kernel-options]
//
// Stages, each reported on stderr with its time:
//   import   the ONNX graph into the llm dialect
//   raise    generic ops into model ops (kiln-raise-pipeline)
//   compress (with --quantize or --sparsify) -llm-quantize-weights or
//            -llm-sparsify-2to4 on the raised model, the packed bytes in
//            OUTPUT.packed; calibrated methods first run the model on
//            --calibration-text with the host reference
//   layout   @prefill/@decode over the paged KV cache, and @prefill_all
//            (every token's logits, for checks and perplexity)
//   plan     the launch plan and the model config; with --dtype f16 or
//            bf16 its f32 floats (weights, activations, KV cache, logits,
//            constants) are stored in that type (convertPlanPrecision)
//   weights  where each weight's bytes live (checksumming referenced ones)
//   codegen  the decode entry point's GPU kernels for --target sm_XX (PTX,
//            cubins when ptxas is found) into the Kernels section;
//            skipped for --target none or host
//   write    the artifact
// Speculative decoding (--draft or --speculate-ngram): the target gets a
// @verify entry point (-llm-speculative-decode: every row's logits, to score
// K drafts and one more token per sequence in one pass), the artifact a
// Speculation section (K, the draft kind) and, with --draft, the draft
// model compiled through the same stages into sections named "draft.*"
// (its plan, config, weight table, weights and kernels; one tokenizer).
// The draft must speak the target's tokens: its tokenizer (--draft-tokenizer,
// else a tokenizer.model next to it, else the target's) must be the
// target's byte for byte, and its vocabulary and BOS/EOS ids equal.
// --emit=llm prints the laid-out module (all three entry points) instead of
// writing an artifact. An input ending in .mlir is parsed instead of
// imported; if it already has @prefill and @decode, raise and layout are
// skipped (a module kiln-compile --emit=llm printed compiles as it is).
// --target is recorded in the plan. Without --dtype the model's types are
// kept; --dtype f32 keeps them too (f16/bf16 models are not widened), and
// --emit=llm ignores it (the conversion is of the plan).
//
//===----------------------------------------------------------------------===//

#include "WeightCompression.h"

#include "kiln/Artifact/ArtifactCompiler.h"
#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Dialect/LLM/Transforms/Passes.h"
#include "kiln/Frontend/OnnxImporter.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Support/ToolDiagnostics.h"
#include "kiln/runtime/SpeculationConfig.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"

#include <chrono>
#include <optional>

using namespace llvm;
using namespace kiln;
namespace rt = kiln::runtime;

static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"));
static cl::list<std::string> kernelOptionList(
    "kernel-option",
    cl::desc("Override a generated kernel's default shape (sweeps): "
             "NAME=VALUE; --list-kernel-options names them (the environment "
             "variable KILN_<NAME> also sets one)"),
    cl::value_desc("NAME=VALUE"));
static cl::opt<bool> listKernelOptions(
    "list-kernel-options",
    cl::desc("Print the --kernel-option names and what they set, then exit"));
static cl::opt<std::string> outputPath("o", cl::desc("Output artifact"),
                                       cl::value_desc("path"));
static cl::opt<std::string>
    target("target",
           cl::desc("GPU target: sm_XX[a] generates the decode kernels "
                    "(Kernels section); none or host skips codegen"),
           cl::init("sm_90a"));
static cl::opt<std::string>
    tokenizerPath("tokenizer",
                  cl::desc("SentencePiece model to embed (BOS/EOS from it)"),
                  cl::value_desc("tokenizer.model"));
static cl::opt<bool> dummyWeights(
    "dummy-weights",
    cl::desc("Record only the weights' layout (random values at load); the "
             "external data need not exist"));
static cl::opt<bool>
    embedWeights("embed-weights",
                 cl::desc("Copy every weight into the artifact instead of "
                          "referencing external data by checksum"));
static cl::opt<int> blockSize("block-size",
                              cl::desc("Tokens per KV-cache block"),
                              cl::init(16));
static cl::opt<int>
    contextLength("context-length",
                  cl::desc("Context length (default: from config.json)"),
                  cl::init(0));
static cl::opt<std::string> dtypeOption(
    "dtype",
    cl::desc("Store the model's f32 floats (weights, activations, KV cache, "
             "logits) as f32, f16 or bf16 (default: the model's types)"),
    cl::value_desc("f32|f16|bf16"), cl::init(""));
static cl::opt<std::string>
    emit("emit",
         cl::desc("What to produce: kiln (the artifact) or llm (the "
                  "laid-out module)"),
         cl::init("kiln"));
static cl::opt<std::string>
    draftPath("draft",
              cl::desc("Draft model for speculative decoding, compiled into "
                       "the same artifact (sections draft.*)"),
              cl::value_desc("draft.onnx"));
static cl::opt<std::string> draftTokenizerPath(
    "draft-tokenizer",
    cl::desc("The draft's SentencePiece model, checked against the target's "
             "(default: tokenizer.model next to the draft, else the "
             "target's)"),
    cl::value_desc("tokenizer.model"));
static cl::opt<int>
    speculateK("speculate",
               cl::desc("Tokens drafted per step (default 4; needs --draft "
                        "or --speculate-ngram)"),
               cl::init(0));
static cl::opt<bool> speculateNgram(
    "speculate-ngram",
    cl::desc("Speculative decoding by n-gram prompt lookup, no draft model"));
static cl::opt<bool> verbose("verbose",
                             cl::desc("Show remarks (e.g. unraised ops)"));

// Weight compression (docs/Quantization.md).
static cl::OptionCategory compressionCategory("Weight quantization and "
                                              "sparsity");
static cl::opt<std::string>
    quantize("quantize",
             cl::desc("Quantize linear weights: int8, int4 or fp8 (e4m3)"),
             cl::value_desc("int8|int4|fp8"), cl::cat(compressionCategory));
static cl::opt<int64_t> groupSize(
    "group-size",
    cl::desc("Input features per scale (0: per output channel; default 128 "
             "for int4, per channel otherwise)"),
    cl::init(-1), cl::cat(compressionCategory));
static cl::opt<bool>
    zeroPoint("zero-point",
              cl::desc("Asymmetric quantization with a zero point per group"),
              cl::cat(compressionCategory));
static cl::opt<std::string> quantMethod("quant-method",
                                        cl::desc("rtn or gptq (calibrated)"),
                                        cl::init("rtn"),
                                        cl::cat(compressionCategory));
static cl::opt<std::string>
    sparsify("sparsify", cl::desc("Prune linear weights to 2:4 sparsity"),
             cl::value_desc("2:4"), cl::cat(compressionCategory));
static cl::opt<std::string> sparsifyMethod(
    "sparsify-method",
    cl::desc("magnitude, wanda or sparsegpt (the latter two calibrated)"),
    cl::init("magnitude"), cl::cat(compressionCategory));
static cl::list<std::string> compressSkip(
    "compress-skip",
    cl::desc("Weights kept dense: names containing one of these; lm_head "
             "is the output projection (default: lm_head; none: compress "
             "every linear weight)"),
    cl::CommaSeparated, cl::cat(compressionCategory));
static cl::opt<std::string> matmulNBits(
    "matmul-nbits",
    cl::desc("Imported MatMulNBits weights: packed (QuantLinear over the "
             "export's bytes) or dequantize (dense Linear weights, for "
             "devices without QuantLinear kernels)"),
    cl::init("packed"), cl::cat(compressionCategory));
static cl::opt<std::string> calibrationText(
    "calibration-text",
    cl::desc("Text the calibrated methods run the model on (host reference)"),
    cl::value_desc("file"), cl::cat(compressionCategory));
static cl::opt<int64_t> calibrationTokens("calibration-tokens",
                                          cl::desc("Calibration tokens to use"),
                                          cl::init(8192),
                                          cl::cat(compressionCategory));
static cl::opt<int64_t>
    calibrationWindow("calibration-window",
                      cl::desc("Tokens per calibration window"), cl::init(512),
                      cl::cat(compressionCategory));

namespace {

using Clock = std::chrono::steady_clock;

/// One stage line: "kiln-compile: [2/6] raise   ... (12 ms)".
class Progress {
public:
  void begin() { start = Clock::now(); }
  void done(int index, StringRef stage, const Twine &what) {
    double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    total += ms;
    errs() << "kiln-compile: " << prefix << "[" << index << "/7] "
           << left_justify(stage, 8) << what << " (" << format("%.0f", ms)
           << " ms)\n";
  }
  double total = 0;
  /// "draft " while the draft model compiles.
  std::string prefix;

private:
  Clock::time_point start;
};

std::string megabytes(int64_t bytes) {
  std::string s;
  raw_string_ostream os(s);
  if (bytes >= 1 << 20)
    os << format("%.1f MB", bytes / 1048576.0);
  else
    os << format("%.1f KB", bytes / 1024.0);
  return s;
}

/// Runs -llm-kv-cache-layout (and CSE) on `module`.
LogicalResult layOut(mlir::ModuleOp module, bool allLogits) {
  mlir::PassManager pm(module.getContext());
  llm::LLMKVCacheLayoutOptions options;
  options.blockSize = blockSize;
  options.allLogits = allLogits;
  pm.addPass(llm::createLLMKVCacheLayout(options));
  pm.nest<mlir::func::FuncOp>().addPass(mlir::createCSEPass());
  return pm.run(module);
}

/// Stages 1-3: imports (or parses) `input`, raises it and lays it out
/// (@prefill, @decode and, with `withPrefillAll`, @prefill_all). Null on
/// error (reported).
mlir::OwningOpRef<mlir::ModuleOp>
importAndLayOut(const std::string &input, mlir::MLIRContext &context,
                Progress &progress, bool withPrefillAll,
                const CompressionOptions *compression = nullptr) {
  progress.begin();
  bool isMLIR = StringRef(input).ends_with(".mlir");
  mlir::OwningOpRef<mlir::ModuleOp> module;
  if (isMLIR) {
    module = mlir::parseSourceFile<mlir::ModuleOp>(input, &context);
  } else {
    OnnxImportOptions importOptions;
    importOptions.requireExternalData = !dummyWeights;
    module = importOnnxModel(input, &context, importOptions);
  }
  if (!module)
    return nullptr;
  int64_t importedOps = 0;
  module->walk([&](mlir::Operation *) { ++importedOps; });
  progress.done(1, isMLIR ? "parse" : "import",
                sys::path::filename(input) + ": " + Twine(importedOps) +
                    " ops");
  bool laidOut =
      module->lookupSymbol("prefill") && module->lookupSymbol("decode");
  bool compress = compression && wantsCompression(*compression);

  // A copy to calibrate on, raised without gated MLPs.
  mlir::OwningOpRef<mlir::ModuleOp> unraised;
  if (compress && needsCalibration(*compression)) {
    if (laidOut) {
      errs() << "kiln-compile: calibration needs the model before layout, "
                "not a laid-out module\n";
      return nullptr;
    }
    unraised = module->clone();
  }

  // raise
  progress.begin();
  if (!laidOut) {
    mlir::PassManager pm(&context);
    buildRaisePipeline(pm);
    if (mlir::failed(pm.run(*module)))
      return nullptr;
  }
  int64_t raised = 0, generic = 0;
  module->walk([&](mlir::Operation *op) {
    if (!isa<llm::LLMDialect>(op->getDialect()))
      return;
    if (llm::isRaisedOp(op))
      ++raised;
    else if (!isa<llm::WeightOp, llm::ConstantOp>(op))
      ++generic;
  });
  progress.done(2, "raise",
                laidOut ? Twine("skipped: the module is laid out already")
                        : Twine(raised) + " model ops, " + Twine(generic) +
                              " generic ops (mask and shape arithmetic)");

  // quantize / sparsify (between raise and layout)
  if (compress) {
    progress.begin();
    if (dummyWeights)
      (*module)->setAttr(llm::kDummyWeightsAttr,
                         mlir::UnitAttr::get(module->getContext()));
    std::string summary;
    if (mlir::failed(compressWeights(*module,
                                     unraised ? *unraised : mlir::ModuleOp(),
                                     *compression, summary)))
      return nullptr;
    progress.done(2, "pack", summary);
  }

  // layout: @prefill/@decode, and @prefill_all from a copy.
  progress.begin();
  if (!laidOut) {
    mlir::OwningOpRef<mlir::ModuleOp> allLogits;
    if (withPrefillAll)
      allLogits = module->clone();
    if (mlir::failed(layOut(*module, false)) ||
        (withPrefillAll && mlir::failed(layOut(*allLogits, true))))
      return nullptr;
    if (withPrefillAll) {
      auto prefillAll = allLogits->lookupSymbol<mlir::func::FuncOp>("prefill");
      prefillAll->remove();
      prefillAll.setName("prefill_all");
      module->push_back(prefillAll);
    }
    progress.done(3, "layout",
                  Twine(withPrefillAll ? "@prefill, @decode, @prefill_all"
                                       : "@prefill, @decode") +
                      " over a paged KV cache of " + Twine(blockSize) +
                      "-token blocks");
  } else {
    progress.done(3, "layout",
                  module->lookupSymbol("prefill_all")
                      ? "skipped: @prefill, @decode, @prefill_all given"
                      : "skipped: @prefill, @decode given");
  }
  return module;
}

/// Runs -llm-speculative-decode on the target (@verify).
LogicalResult addVerifyEntry(mlir::ModuleOp module, int64_t k,
                             int64_t draftVocab) {
  mlir::PassManager pm(module.getContext());
  llm::LLMSpeculativeDecodeOptions options;
  options.k = k;
  options.draftVocab = draftVocab;
  pm.addPass(llm::createLLMSpeculativeDecode(options));
  return pm.run(module);
}

/// Stages 4-6: the launch plan and config (with --dtype), the weights and
/// the kernels of a laid-out module. `tokenizer` is the SentencePiece model
/// BOS/EOS come from (may be empty).
LogicalResult buildParts(mlir::ModuleOp module, const std::string &tokenizer,
                         const std::optional<rt::DType> &dtype,
                         Progress &progress, CompiledModel &model) {
  // plan
  progress.begin();
  if (mlir::failed(buildLaunchPlan(module, target, model)))
    return failure();
  ConfigOptions configOptions;
  auto modelDir = module->getAttrOfType<mlir::StringAttr>("llm.model_dir");
  configOptions.modelDir = modelDir ? modelDir.str() : ".";
  configOptions.tokenizerPath = tokenizer;
  configOptions.contextLength = contextLength;
  std::vector<std::string> notes;
  if (mlir::failed(buildModelConfig(module, configOptions, model, notes)))
    return failure();
  std::string converted;
  if (dtype) {
    PrecisionStats pstats;
    if (mlir::failed(
            convertPlanPrecision(model, *dtype, module->getLoc(), pstats)))
      return failure();
    if (pstats.weights || pstats.buffers)
      converted =
          (" (f32 stored as " + dtypeOption + ": " + Twine(pstats.weights) +
           " weights and " + Twine(pstats.buffers) + " buffers converted, " +
           Twine(pstats.views) + " casts now views)")
              .str();
  }
  if (int64_t n = keepLogitsInF32(model.plan))
    converted += " (logits in f32: " + std::to_string(n) + " entry points)";
  {
    rt::Status valid = model.plan.validate(model.weights, model.config);
    if (!valid.isOk()) {
      errs() << "kiln-compile: internal error: the plan does not validate: "
             << valid.message() << "\n";
      return failure();
    }
  }
  size_t steps = 0;
  for (const rt::EntryPoint &e : model.plan.entries)
    steps += e.steps.size();
  const rt::ModelConfig &c = model.config;
  progress.done(
      4, "plan",
      Twine(model.plan.entries.size()) + " entry points, " + Twine(steps) +
          " steps, " + Twine(model.weights.size()) + " weights; " +
          Twine(c.numLayers) + " layers, " + Twine(c.numHeads) + "/" +
          Twine(c.numKVHeads) + " heads of " + Twine(c.headDim) + ", hidden " +
          Twine(c.hiddenSize) + ", vocab " + Twine(c.vocabSize) + ", context " +
          Twine(c.contextLength) + ", " + c.dtype + converted);
  for (const std::string &note : notes)
    errs() << "kiln-compile: note: " << note << "\n";

  // weights
  progress.begin();
  WeightMode mode = dummyWeights   ? WeightMode::Dummy
                    : embedWeights ? WeightMode::Embed
                                   : WeightMode::Reference;
  WeightStats stats;
  if (mlir::failed(packWeights(module, mode, configOptions.modelDir, outputPath,
                               model, stats)))
    return failure();
  std::string summary;
  {
    raw_string_ostream os(summary);
    const char *sep = "";
    if (stats.referenced) {
      os << stats.referenced << " referenced by CRC-32 ("
         << megabytes(stats.referencedBytes) << " in";
      for (const std::string &f : stats.files)
        os << " " << f;
      os << ")";
      sep = ", ";
    }
    if (stats.embedded) {
      os << sep << stats.embedded << " embedded ("
         << megabytes(stats.embeddedBytes) << ")";
      sep = ", ";
    }
    if (stats.dummy)
      os << sep << stats.dummy << " dummy (" << megabytes(stats.dummyBytes)
         << " random at load)";
  }
  progress.done(5, "weights", summary);

  // codegen
  progress.begin();
  if (StringRef(target).starts_with("sm_")) {
    KernelOptions kernelOptions;
    kernelOptions.chip = target;
    for (const std::string &assignment : kernelOptionList)
      if (Error error = kernelOptions.tuning.set(assignment)) {
        emitError(module->getLoc()) << toString(std::move(error));
        return failure();
      }
    if (Error error = kernelOptions.tuning.addEnvironment()) {
      emitError(module->getLoc()) << toString(std::move(error));
      return failure();
    }
    if (std::string knobs = kernelOptions.tuning.describe(); !knobs.empty())
      errs() << "kiln-compile: kernel options: " << knobs << "\n";
    KernelStats kstats;
    if (mlir::failed(buildKernels(model, kernelOptions, module->getLoc(),
                                  model.kernels, kstats)))
      return failure();
    model.hasKernels = true;
    progress.done(6, "codegen",
                  Twine(kstats.generated) + " kernels for " + target + " (" +
                      megabytes(kstats.ptxBytes) + " PTX, " +
                      (kstats.ptxas.empty()
                           ? std::string("no ptxas: PTX only")
                           : std::to_string(kstats.cubins) + " cubins, " +
                                 megabytes(kstats.cubinBytes)) +
                      "), " + Twine(kstats.missing) + " missing");
  } else {
    progress.done(6, "codegen", "skipped: --target " + target);
  }
  return success();
}

/// The draft's tokenizer: --draft-tokenizer, else tokenizer.model next to
/// the draft, else the target's.
std::string draftTokenizer() {
  if (!draftTokenizerPath.empty())
    return draftTokenizerPath;
  SmallString<256> beside(sys::path::parent_path(draftPath));
  sys::path::append(beside, "tokenizer.model");
  if (sys::fs::exists(beside))
    return std::string(beside);
  return tokenizerPath;
}

/// Target and draft must tokenize alike: the same tokenizer file contents
/// (checked before anything parses the draft's).
LogicalResult checkSameTokenizer(const std::string &draftTok,
                                 mlir::Location loc) {
  if (tokenizerPath.empty() != draftTok.empty())
    return emitError(loc)
           << "only one of target and draft has a tokenizer (--tokenizer, "
              "--draft-tokenizer): their tokens cannot be checked";
  if (tokenizerPath.empty() || draftTok == tokenizerPath)
    return success();
  auto a = MemoryBuffer::getFile(tokenizerPath);
  auto b = MemoryBuffer::getFile(draftTok);
  if (!a || !b)
    return emitError(loc) << "cannot read tokenizer '"
                          << (!a ? tokenizerPath : draftTok) << "'";
  if ((*a)->getBuffer() != (*b)->getBuffer())
    return emitError(loc) << "the draft's tokenizer '" << draftTok
                          << "' differs from the target's '" << tokenizerPath
                          << "': speculative decoding needs one vocabulary";
  return success();
}

/// The draft's ids must mean the target's tokens: the same vocabulary size
/// and BOS/EOS ids (from the configs, or the shared tokenizer).
LogicalResult checkDraftTokens(const CompiledModel &model,
                               const CompiledModel &draft, mlir::Location loc) {
  const rt::ModelConfig &t = model.config, &d = draft.config;
  if (t.vocabSize != d.vocabSize || t.bosTokenId != d.bosTokenId ||
      t.eosTokenId != d.eosTokenId)
    return emitError(loc) << "the draft's vocabulary (" << d.vocabSize
                          << " tokens, BOS " << d.bosTokenId << ", EOS "
                          << d.eosTokenId << ") differs from the target's ("
                          << t.vocabSize << " tokens, BOS " << t.bosTokenId
                          << ", EOS " << t.eosTokenId << ")";
  return success();
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "Kiln ahead-of-time compiler\n");
  if (listKernelOptions) {
    for (const KernelKnob &knob : KernelTuning::knobs())
      outs() << "  " << knob.name << " (" << knobEnvironmentName(knob.name)
             << "): " << knob.help << "\n";
    return 0;
  }
  if (inputPath.empty()) {
    errs() << "kiln-compile: no input model given\n";
    return 2;
  }
  bool emitLLM = emit == "llm";
  if (!emitLLM && emit != "kiln") {
    errs() << "kiln-compile: --emit must be kiln or llm\n";
    return 2;
  }
  if (!emitLLM && outputPath.empty()) {
    errs() << "kiln-compile: no output artifact given (-o m.kiln)\n";
    return 2;
  }
  if (dummyWeights && embedWeights) {
    errs() << "kiln-compile: --dummy-weights and --embed-weights exclude "
              "each other\n";
    return 2;
  }
  if (blockSize <= 0 || contextLength < 0) {
    errs() << "kiln-compile: --block-size must be positive and "
              "--context-length non-negative\n";
    return 2;
  }
  bool hasDraft = !draftPath.empty();
  if (hasDraft && speculateNgram) {
    errs() << "kiln-compile: --draft and --speculate-ngram exclude each "
              "other\n";
    return 2;
  }
  if (speculateK.getNumOccurrences() && !hasDraft && !speculateNgram) {
    errs() << "kiln-compile: --speculate needs a draft (--draft) or n-gram "
              "lookup (--speculate-ngram)\n";
    return 2;
  }
  if (!draftTokenizerPath.empty() && !hasDraft) {
    errs() << "kiln-compile: --draft-tokenizer needs --draft\n";
    return 2;
  }
  bool speculate = hasDraft || speculateNgram;
  int64_t k = speculateK.getNumOccurrences() ? int64_t(speculateK) : 4;
  std::optional<rt::DType> dtype;
  if (!dtypeOption.empty()) {
    auto parsed = rt::parseDType(dtypeOption);
    if (!parsed.isOk() || !rt::isFloatDType(*parsed)) {
      errs() << "kiln-compile: unknown --dtype '" << dtypeOption
             << "' (expected f32, f16 or bf16)\n";
      return 2;
    }
    dtype = *parsed;
  }
  if (!StringRef(target).starts_with("sm_") && target != "host" &&
      target != "none") {
    errs() << "kiln-compile: unknown --target '" << target
           << "' (expected sm_XX[a], host or none)\n";
    return 2;
  }

  CompressionOptions compression;
  compression.quantize = quantize;
  compression.groupSize = groupSize;
  compression.zeroPoint = zeroPoint;
  compression.quantMethod = quantMethod;
  compression.sparsify = sparsify;
  compression.sparsifyMethod = sparsifyMethod;
  // An empty name would match every weight: dropped. "none" alone keeps
  // nothing dense (the lm_head too).
  for (const std::string &name : compressSkip)
    if (!name.empty() && name != "none")
      compression.skip.push_back(name);
  if (compressSkip.getNumOccurrences() == 0)
    compression.skip = {"lm_head"};
  compression.calibrationText = calibrationText;
  compression.calibrationTokens = calibrationTokens;
  compression.calibrationWindow = calibrationWindow;
  compression.tokenizerPath = tokenizerPath;
  // Next to the output: the artifact references it like external data.
  compression.dataFile =
      (emitLLM && outputPath.empty() ? std::string("kiln-compile")
                                     : std::string(outputPath)) +
      ".packed";
  if (matmulNBits != "packed" && matmulNBits != "dequantize") {
    errs() << "kiln-compile: unknown --matmul-nbits '" << matmulNBits
           << "' (expected packed or dequantize)\n";
    return 2;
  }
  // Dummy weights have no values: RTN quantization and magnitude pruning
  // plan the packed types alone (benchmarks at scale); calibration needs
  // the values.
  if (dummyWeights && needsCalibration(compression)) {
    errs() << "kiln-compile: --dummy-weights with a calibrated method: it "
              "reads the weights' values\n";
    return 2;
  }
  if (std::string bad = checkCompressionOptions(compression); !bad.empty()) {
    errs() << "kiln-compile: " << bad << "\n";
    return 2;
  }
  if (wantsCompression(compression)) {
    SmallString<256> absolute(compression.dataFile);
    sys::fs::make_absolute(absolute);
    compression.dataFile = std::string(absolute);
  }

  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  // Diagnostics name the op; printing whole functions would drown them.
  context.printOpOnDiagnostic(false);
  ToolDiagnosticHandler diagnostics(&context, "kiln-compile");
  // Remarks (the unraised-op report) only with --verbose.
  mlir::ScopedDiagnosticHandler quietRemarks(
      &context, [](mlir::Diagnostic &diag) {
        return mlir::success(!verbose && diag.getSeverity() ==
                                             mlir::DiagnosticSeverity::Remark);
      });
  Progress progress;

  mlir::OwningOpRef<mlir::ModuleOp> module =
      importAndLayOut(inputPath, context, progress, true, &compression);
  if (!module)
    return 1;

  // The draft first: its vocabulary is checked when @verify is built.
  CompiledModel draft;
  std::string draftTok;
  mlir::OwningOpRef<mlir::ModuleOp> draftModule;
  int64_t draftVocab = 0;
  if (hasDraft) {
    progress.prefix = "draft ";
    draftModule = importAndLayOut(draftPath, context, progress, false);
    if (!draftModule)
      return 1;
    auto draftPrefill =
        draftModule->lookupSymbol<mlir::func::FuncOp>("prefill");
    auto logits =
        dyn_cast<mlir::RankedTensorType>(draftPrefill.getResultTypes()[0]);
    if (!logits || logits.getRank() != 2 || logits.isDynamicDim(1)) {
      draftPrefill.emitError() << "expected the draft's @prefill to return "
                                  "[rows, vocab] logits";
      return 1;
    }
    draftVocab = logits.getDimSize(1);
    draftTok = draftTokenizer();
    if (mlir::failed(checkSameTokenizer(draftTok, (*draftModule)->getLoc())))
      return 1;
    if (!emitLLM && mlir::failed(buildParts(*draftModule, draftTok, dtype,
                                            progress, draft)))
      return 1;
    progress.prefix.clear();
  }
  if (speculate) {
    progress.begin();
    if (mlir::failed(addVerifyEntry(*module, k, draftVocab)))
      return 1;
    progress.done(3, "verify",
                  "@verify scores " + Twine(k + 1) +
                      " tokens per sequence (K = " + Twine(k) + ", " +
                      (hasDraft ? "draft model" : "n-gram lookup") + ")");
  }

  if (emitLLM) {
    std::string error;
    auto output = mlir::openOutputFile(
        outputPath.empty() ? std::string("-") : std::string(outputPath),
        &error);
    if (!output) {
      errs() << "kiln-compile: " << error << "\n";
      return 1;
    }
    module->print(output->os());
    output->keep();
    return 0;
  }

  CompiledModel model;
  model.dequantizeMatMulNBits = matmulNBits == "dequantize";
  if (mlir::failed(buildParts(*module, tokenizerPath, dtype, progress, model)))
    return 1;
  if (hasDraft &&
      mlir::failed(checkDraftTokens(model, draft, (*module)->getLoc())))
    return 1;
  if (speculate) {
    rt::SpeculationConfig spec;
    spec.k = static_cast<int32_t>(k);
    spec.draftModel = hasDraft;
    model.speculation = spec.serialize();
  }

  // write
  progress.begin();
  auto size = writeArtifact(model, outputPath, (*module)->getLoc(),
                            hasDraft ? &draft : nullptr);
  if (mlir::failed(size))
    return 1;
  progress.done(7, "write",
                outputPath + ": " + megabytes(*size) +
                    (model.tokenizer.empty() ? "" : ", with tokenizer") +
                    ", target " + target +
                    (model.hasKernels ? ", with kernels" : "") +
                    (hasDraft ? ", with the draft model" : "") +
                    (speculate ? ", speculation K = " + std::to_string(k)
                               : std::string()));
  errs() << "kiln-compile: done in " << format("%.0f", progress.total)
         << " ms\n";
  return 0;
}
