//===- kiln-paged-check.cpp - Check the paged entry points end to end -----===//
//
//   kiln-paged-check DIR [--block-size 16] [--all-logits] [--decode-steps 6]
//                        [--mixed-step=false] [--prompt-lengths 5,2,8]
//                        [--seed 1] [--tolerance 1e-4]
//
// Imports DIR/model.onnx twice: once as is (the oracle), once through
// kiln-paged-pipeline (raise + -llm-kv-cache-layout). With the runtime's
// PagedKVCache doing the bookkeeping (block tables, slot mapping, query start
// locations), it runs @prefill on a ragged batch of prompts (from the test
// data's input ids, and seeded random ids), then @decode steps with greedy
// next tokens (every other step without the last sequence, so that batches
// change size), then a @prefill step mixing a 3-token chunk with decode
// tokens, all on the host reference executor. Every step's logits are
// compared with the original model run on each full sequence so far: one
// line per step with the largest error relative to max |ref|, then
// "N passed, N failed". The cache starts as NaN, so a read of a slot that
// was never written shows up as a failure.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Frontend/OnnxImporter.h"
#include "kiln/Frontend/OnnxTensor.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Reference/Interpreter.h"
#include "kiln/Reference/TensorConversion.h"
#include "kiln/Support/ToolDiagnostics.h"
#include "kiln/runtime/PagedKVCache.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

using namespace llvm;
using namespace kiln;
namespace rt = kiln::runtime;

static cl::opt<std::string> dirPath(cl::Positional, cl::desc("<model dir>"));
static cl::opt<std::string> modelName("model", cl::desc("Model file in DIR"),
                                      cl::init("model.onnx"));
static cl::opt<int> blockSize("block-size",
                              cl::desc("Tokens per KV-cache block"),
                              cl::init(16));
static cl::opt<bool> allLogits(
    "all-logits",
    cl::desc("Lay out @prefill returning every token's logits and check "
             "every row"));
static cl::opt<int> decodeSteps("decode-steps",
                                cl::desc("Greedy decode steps after prefill"),
                                cl::init(6));
static cl::opt<bool> mixedStep(
    "mixed-step",
    cl::desc("End with a @prefill step mixing a 3-token chunk with decode "
             "tokens"),
    cl::init(true));
static cl::list<int> promptLengths(
    "prompt-lengths", cl::CommaSeparated,
    cl::desc("Prompt lengths (default: from the test data, n, n/2, n+3)"));
static cl::opt<unsigned> seed("seed", cl::desc("Seed of the random prompt ids"),
                              cl::init(1));
static cl::opt<double>
    tolerance("tolerance",
              cl::desc("Largest error relative to max |ref| that passes"),
              cl::init(1e-4));

namespace {

/// Error of `got` rows against `ref` rows, accumulated over a step.
struct Errors {
  double maxAbs = 0, maxRef = 0;
  bool nan = false;

  void add(const float *got, const float *ref, int64_t n) {
    for (int64_t k = 0; k < n; ++k) {
      if (std::isnan(got[k]) || std::isnan(ref[k])) {
        nan |= std::isnan(got[k]) != std::isnan(ref[k]);
        continue;
      }
      maxAbs = std::max(maxAbs, (double)std::fabs(got[k] - ref[k]));
      maxRef = std::max(maxRef, (double)std::fabs(ref[k]));
    }
  }
  double relative() const { return maxRef > 0 ? maxAbs / maxRef : maxAbs; }
};

/// The integer ids of DIR/test_data_set_0 (the first integer input), row 0.
std::vector<int64_t> testDataIds(const std::string &dir) {
  std::error_code ec;
  std::string set = dir + "/test_data_set_0";
  std::vector<std::string> files;
  for (sys::fs::directory_iterator it(set, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (name.starts_with("input_") && name.ends_with(".pb"))
      files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const std::string &file : files) {
    HostTensor t;
    std::string name, error;
    if (!readTensorProtoFile(file, t, &name, error) || t.isFloat() ||
        t.rank() < 1 || t.numElements() == 0)
      continue;
    int64_t row = t.shape.back();
    return std::vector<int64_t>(t.i.begin(), t.i.begin() + row);
  }
  return {};
}

/// Argument `i` of `func` by its llm.name, or "".
std::string argName(mlir::func::FuncOp func, unsigned i) {
  auto name = func.getArgAttrOfType<mlir::StringAttr>(i, "llm.name");
  return name ? name.str() : "";
}

/// The inputs of the original model for one sequence of `ids`: input_ids,
/// and for with-past exports an all-ones attention mask, positions 0..n-1
/// and empty pasts.
mlir::FailureOr<std::vector<HostTensor>>
referenceInputs(mlir::func::FuncOp func, const std::vector<int64_t> &ids) {
  int64_t n = ids.size();
  std::vector<HostTensor> inputs;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    std::string name = argName(func, i);
    auto type = dyn_cast<mlir::RankedTensorType>(func.getArgument(i).getType());
    auto dtype = type ? dtypeFromType(type.getElementType()) : std::nullopt;
    if (!dtype) {
      errs() << "kiln-paged-check: model input " << i << " has an unsupported "
             << "type\n";
      return mlir::failure();
    }
    std::vector<int64_t> seq(n);
    for (int64_t k = 0; k < n; ++k)
      seq[k] = k;
    if (i == 0 || name == "input_ids") {
      inputs.push_back(HostTensor::fromInts({1, n}, ids, *dtype));
    } else if (StringRef(name).contains("attention_mask")) {
      inputs.push_back(
          HostTensor::fromInts({1, n}, std::vector<int64_t>(n, 1), *dtype));
    } else if (StringRef(name).contains("position_ids")) {
      inputs.push_back(HostTensor::fromInts({1, n}, seq, *dtype));
    } else if (type.getRank() == 4 && isFloatDType(*dtype)) {
      // An empty past: [1, kv_heads, 0, head_dim].
      std::vector<int64_t> shape = {1, type.getDimSize(1), 0,
                                    type.getDimSize(3)};
      if (mlir::ShapedType::isDynamic(shape[1]) ||
          mlir::ShapedType::isDynamic(shape[3])) {
        errs() << "kiln-paged-check: past input '" << name
               << "' has dynamic heads or head size\n";
        return mlir::failure();
      }
      inputs.push_back(HostTensor(*dtype, shape));
    } else {
      errs() << "kiln-paged-check: cannot feed model input '" << name << "'\n";
      return mlir::failure();
    }
  }
  return inputs;
}

int64_t dtypeBytes(DType t) {
  switch (t) {
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::F64:
    return 8;
  default:
    return 4;
  }
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "Kiln paged KV-cache entry point checker\n");
  if (dirPath.empty()) {
    errs() << "kiln-paged-check: no model directory given\n";
    return 2;
  }
  if (blockSize <= 0 || decodeSteps < 0) {
    errs() << "kiln-paged-check: --block-size must be positive and "
              "--decode-steps non-negative\n";
    return 2;
  }
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  ToolDiagnosticHandler diagnostics(&context, "kiln-paged-check");
  std::string modelPath = dirPath + "/" + modelName;

  // The oracle: the model as imported, not raised.
  mlir::OwningOpRef<mlir::ModuleOp> original =
      importOnnxModel(modelPath, &context);
  mlir::OwningOpRef<mlir::ModuleOp> paged =
      importOnnxModel(modelPath, &context);
  if (!original || !paged)
    return 1;
  {
    mlir::PassManager pm(&context);
    buildPagedPipeline(pm, blockSize, allLogits);
    if (mlir::failed(pm.run(*paged))) {
      outs() << "model " << modelPath
             << ": layout FAILED\n0 passed, 1 failed\n";
      return 1;
    }
  }
  auto mainFunc = original->lookupSymbol<mlir::func::FuncOp>("main");
  auto prefill = paged->lookupSymbol<mlir::func::FuncOp>("prefill");
  auto decode = paged->lookupSymbol<mlir::func::FuncOp>("decode");
  if (!mainFunc || !prefill || !decode) {
    errs() << "kiln-paged-check: expected @main in the import and "
              "@prefill/@decode after the layout\n";
    return 1;
  }

  // The cache geometry, from @prefill's kv_cache argument.
  auto cacheType =
      cast<mlir::RankedTensorType>(prefill.getArgument(6).getType());
  auto logitsType = cast<mlir::RankedTensorType>(prefill.getResultTypes()[0]);
  int64_t vocab = logitsType.getDimSize(1);
  auto cacheDType = dtypeFromType(cacheType.getElementType());
  if (!cacheDType) {
    errs() << "kiln-paged-check: unsupported cache element type\n";
    return 1;
  }
  int64_t layers = cacheType.getDimSize(0), kvHeads = cacheType.getDimSize(3),
          headDim = cacheType.getDimSize(5);

  // The prompts.
  std::vector<int64_t> dataIds = testDataIds(dirPath);
  std::vector<int> lengths(promptLengths.begin(), promptLengths.end());
  if (lengths.empty()) {
    int n = dataIds.empty() ? 7 : std::min<int>(dataIds.size(), 24);
    lengths = {n, std::max(1, n / 2), n + 3};
  }
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> seqs;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] <= 0) {
      errs() << "kiln-paged-check: prompt lengths must be positive\n";
      return 2;
    }
    std::vector<int64_t> ids(lengths[i]);
    int64_t s = dataIds.size();
    for (int64_t k = 0; k < lengths[i]; ++k) {
      if (i == 0 && s)
        ids[k] = dataIds[k % s]; // a prefix of the test data
      else if (i == 1 && s)
        ids[k] = dataIds[((s - lengths[i] + k) % s + s) % s]; // a suffix
      else
        ids[k] = (int64_t)(rng() % (uint64_t)vocab);
    }
    seqs.push_back(std::move(ids));
  }
  int64_t numSeqs = seqs.size();

  // The runtime's bookkeeping.
  rt::KVCacheConfig config;
  config.numLayers = layers;
  config.numKVHeads = kvHeads;
  config.headDim = headDim;
  config.blockSize = blockSize;
  config.elementBytes = dtypeBytes(*cacheDType);
  config.numBlocks = 1;
  for (const auto &ids : seqs)
    config.numBlocks +=
        rt::blocksForTokens(ids.size() + decodeSteps + 3, blockSize);
  auto kvCache = rt::PagedKVCache::create(config);
  if (!kvCache.isOk()) {
    errs() << "kiln-paged-check: " << kvCache.status().toString() << "\n";
    return 1;
  }
  int64_t formulaBytes = 2 * layers * kvHeads * headDim * config.elementBytes;
  outs() << "model " << modelPath << ": " << layers << " layers, " << kvHeads
         << " KV heads of " << headDim << ", "
         << typeString(cacheType.getElementType()) << " cache in blocks of "
         << blockSize << ": " << kvCache->kvBytesPerToken()
         << " KV bytes per token (2*L*Hkv*D*" << config.elementBytes << " = "
         << formulaBytes << ")\n";
  if (kvCache->kvBytesPerToken() != formulaBytes) {
    outs() << "kv bytes per token FAIL\n";
    return 1;
  }

  // The cache memory, NaN until written.
  HostTensor cache(*cacheDType, {layers, config.numBlocks, 2, kvHeads,
                                 (int64_t)blockSize, headDim});
  std::fill(cache.f.begin(), cache.f.end(),
            std::numeric_limits<float>::quiet_NaN());

  WeightStore weights(
      cast<mlir::StringAttr>((*original)->getAttr("llm.model_dir")).str());
  Interpreter interpreter(weights);
  for (int64_t i = 0; i < numSeqs; ++i)
    if (!kvCache->addSequence(i).isOk())
      return 1;

  int passed = 0, failedSteps = 0;
  std::vector<int64_t> nextTokens(numSeqs, -1);
  int lastStep = decodeSteps + (mixedStep ? 1 : 0);
  for (int step = 0; step <= lastStep; ++step) {
    bool isPrefill = step == 0;
    // The last step mixes a prefill chunk (3 tokens onto sequence 0) with
    // decode tokens, through @prefill, as continuous batching does.
    bool isMixed = mixedStep && step == lastStep;
    // The step's sequences and their new tokens.
    std::vector<int64_t> stepSeqs;
    for (int64_t i = 0; i < numSeqs; ++i)
      if (isPrefill || isMixed ||
          !(step % 2 == 0 && i == numSeqs - 1 && numSeqs > 1))
        stepSeqs.push_back(i);
    std::vector<int32_t> appendLengths;
    std::vector<int64_t> tokens;
    for (int64_t i : stepSeqs) {
      int64_t n = isPrefill ? seqs[i].size() : 1;
      if (!isPrefill)
        seqs[i].push_back(nextTokens[i]);
      if (isMixed && i == 0) {
        for (int k = 0; k < 2; ++k)
          seqs[i].push_back((int64_t)(rng() % (uint64_t)vocab));
        n = 3;
      }
      appendLengths.push_back(n);
      tokens.insert(tokens.end(), seqs[i].end() - n, seqs[i].end());
    }
    rt::Status begun = kvCache->beginForward(stepSeqs, appendLengths);
    if (!begun.isOk()) {
      errs() << "kiln-paged-check: " << begun.toString() << "\n";
      return 1;
    }
    const rt::ForwardBatch &batch = kvCache->forwardBatch();
    // Copy-on-write copies first (none without forks, but honoured).
    for (const rt::BlockCopy &copy : batch.copies)
      for (int64_t l = 0; l < layers; ++l)
        for (int64_t kv = 0; kv < 2; ++kv)
          for (int64_t h = 0; h < kvHeads; ++h) {
            auto at = [&](int64_t block) {
              return (((l * config.numBlocks + block) * 2 + kv) * kvHeads + h) *
                     blockSize * headDim;
            };
            std::copy_n(cache.f.begin() + at(copy.src),
                        (int64_t)copy.numTokens * headDim,
                        cache.f.begin() + at(copy.dst));
          }
    int64_t T = batch.numTokens(), N = batch.numSequences();
    std::vector<int64_t> positions(batch.positions.begin(),
                                   batch.positions.end());
    std::vector<int64_t> starts(batch.queryStartLoc.begin(),
                                batch.queryStartLoc.end());
    std::vector<int64_t> tables(batch.blockTables.begin(),
                                batch.blockTables.end());
    std::vector<int64_t> contexts(batch.contextLengths.begin(),
                                  batch.contextLengths.end());
    mlir::func::FuncOp entry = isPrefill || isMixed ? prefill : decode;
    auto tokenDType =
        dtypeFromType(cast<mlir::TensorType>(entry.getArgument(0).getType())
                          .getElementType());
    std::vector<HostTensor> inputs = {
        HostTensor::fromInts({T}, tokens, *tokenDType),
        HostTensor::fromInts({T}, positions, DType::I64),
        HostTensor::fromInts({N + 1}, starts, DType::I32),
        HostTensor::fromInts({N, batch.maxBlocksPerSequence}, tables,
                             DType::I32),
        HostTensor::fromInts({N}, contexts, DType::I32),
        HostTensor::fromInts({T}, batch.slotMapping, DType::I64),
        std::move(cache)};
    std::vector<HostTensor> outputs;
    std::string stepName = isPrefill ? "prefill"
                           : isMixed ? "mixed"
                                     : "decode " + std::to_string(step);
    if (mlir::failed(interpreter.run(entry, inputs, outputs))) {
      outs() << stepName << ": execution FAILED\n";
      ++failedSteps;
      break;
    }
    cache = std::move(outputs[1]);
    cache.dtype = *cacheDType;
    if (!kvCache->endForward().isOk())
      return 1;

    // Compare with the original model on each full sequence.
    const HostTensor &logits = outputs[0];
    bool everyRow = (isPrefill || isMixed) && allLogits;
    Errors errors;
    bool ok = true;
    int64_t expectedRows = everyRow ? T : N;
    if (logits.shape != std::vector<int64_t>{expectedRows, vocab}) {
      outs() << stepName << ": logits " << logits.shapeString() << " where ["
             << expectedRows << "x" << vocab << "] was expected FAIL\n";
      ++failedSteps;
      continue;
    }
    for (int64_t s = 0; s < N; ++s) {
      const std::vector<int64_t> &ids = seqs[stepSeqs[s]];
      auto refInputs = referenceInputs(mainFunc, ids);
      std::vector<HostTensor> refOutputs;
      if (mlir::failed(refInputs) ||
          mlir::failed(interpreter.run(mainFunc, *refInputs, refOutputs))) {
        ok = false;
        break;
      }
      const HostTensor &ref = refOutputs[0];
      int64_t len = ids.size();
      if (ref.numElements() != len * vocab) {
        outs() << stepName << ": reference logits " << ref.shapeString()
               << " for " << len << " tokens\n";
        ok = false;
        break;
      }
      int64_t rows = everyRow ? appendLengths[s] : 1;
      int64_t gotRow = everyRow ? starts[s] : s;
      errors.add(logits.f.data() + gotRow * vocab,
                 ref.f.data() + (len - rows) * vocab, rows * vocab);
      // Greedy next token from the paged logits of the sequence's last row.
      int64_t last = everyRow ? starts[s + 1] - 1 : s;
      const float *row = logits.f.data() + last * vocab;
      nextTokens[stepSeqs[s]] = std::max_element(row, row + vocab) - row;
    }
    double rel = errors.relative();
    ok = ok && !errors.nan && rel <= tolerance;
    outs() << stepName << ": " << N << " sequences, " << T << " tokens (";
    for (int64_t s = 0; s < N; ++s)
      outs() << (s ? "+" : "") << appendLengths[s];
    outs() << "), context";
    for (int64_t s = 0; s < N; ++s)
      outs() << (s ? "," : " ") << contexts[s];
    outs() << (everyRow ? ", every row" : ", last rows")
           << format(": max_abs %.3e rel %.3e", errors.maxAbs, rel)
           << (errors.nan ? " NaN mismatch" : "") << (ok ? " PASS" : " FAIL")
           << "\n";
    ok ? ++passed : ++failedSteps;
  }
  outs() << passed << " passed, " << failedSteps << " failed\n";
  return failedSteps ? 1 : 0;
}
