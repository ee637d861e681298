//===- WeightCompression.cpp - kiln-compile's quantize/sparsify stage -----===//

#include "WeightCompression.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Dialect/LLM/Transforms/Passes.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Quant/CalibrationRunner.h"
#include "kiln/Reference/WeightStore.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

using namespace mlir;
using namespace kiln;

bool kiln::wantsCompression(const CompressionOptions &o) {
  return !o.quantize.empty() || !o.sparsify.empty();
}

bool kiln::needsCalibration(const CompressionOptions &o) {
  return (!o.quantize.empty() &&
          (o.quantMethod == "gptq" || o.quantMethod == "awq")) ||
         (!o.sparsify.empty() &&
          (o.sparsifyMethod == "wanda" || o.sparsifyMethod == "sparsegpt"));
}

std::string kiln::checkCompressionOptions(const CompressionOptions &o) {
  if (!o.quantize.empty() && o.quantize != "int8" && o.quantize != "int4" &&
      o.quantize != "fp8")
    return "unknown --quantize '" + o.quantize +
           "' (expected int8, int4 or "
           "fp8)";
  if (!o.sparsify.empty() && o.sparsify != "2:4")
    return "unknown --sparsify '" + o.sparsify + "' (expected 2:4)";
  if (!o.quantize.empty() && !o.sparsify.empty())
    return "--quantize and --sparsify together: no kernel serves quantized "
           "2:4-sparse weights";
  if (o.quantize == "fp8" && (o.zeroPoint || o.groupSize > 0))
    return "--quantize fp8 takes per-channel scales: no --group-size or "
           "--zero-point";
  if (needsCalibration(o) && o.calibrationText.empty())
    return "--quant-method gptq|awq and --sparsify-method wanda|sparsegpt "
           "need --calibration-text FILE";
  if (!needsCalibration(o) && !o.calibrationText.empty())
    return "--calibration-text is read only by --quant-method gptq|awq and "
           "--sparsify-method wanda|sparsegpt";
  if (needsCalibration(o) && o.tokenizerPath.empty())
    return "--calibration-text needs --tokenizer to tokenize it";
  if (o.calibrationTokens <= 0 || o.calibrationWindow <= 1)
    return "--calibration-tokens must be positive and --calibration-window "
           "at least 2";
  return "";
}

/// The token ids of the calibration text, from kiln-tokenize (next to
/// this executable): SentencePiece cannot share a process with the ONNX
/// importer's protobuf.
static FailureOr<std::vector<int64_t>>
tokenizeCalibrationText(const CompressionOptions &o, int64_t &bos,
                        Location loc) {
  std::string self = llvm::sys::fs::getMainExecutable(
      nullptr, reinterpret_cast<void *>(&tokenizeCalibrationText));
  SmallString<256> tool(llvm::sys::path::parent_path(self));
  llvm::sys::path::append(tool, "kiln-tokenize");
  if (!llvm::sys::fs::can_execute(tool))
    return emitError(loc) << "--calibration-text: cannot find '" << tool
                          << "' to tokenize it";
  SmallString<256> idsPath;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
          "kiln-calibration", "ids", idsPath))
    return emitError(loc) << "--calibration-text: " << ec.message();
  llvm::FileRemover remover(idsPath);
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(idsPath),
                                          std::nullopt};
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(
      tool, {tool, o.tokenizerPath, o.calibrationText}, std::nullopt,
      redirects, 0, 0, &error);
  if (rc != 0)
    return emitError(loc) << "--calibration-text: kiln-tokenize failed"
                          << (error.empty() ? "" : ": " + error);
  auto text = llvm::MemoryBuffer::getFile(idsPath);
  if (!text)
    return emitError(loc) << "--calibration-text: cannot read the token ids";
  // "bos ID\n" then the ids.
  auto [head, rest] = StringRef((*text)->getBuffer()).split('\n');
  std::vector<int64_t> ids;
  if (!head.consume_front("bos ") || head.trim().getAsInteger(10, bos))
    return emitError(loc) << "--calibration-text: unexpected kiln-tokenize "
                             "output";
  SmallVector<StringRef> words;
  rest.split(words, ' ', -1, false);
  for (StringRef w : words) {
    int64_t id;
    if (!w.trim().getAsInteger(10, id))
      ids.push_back(id);
  }
  return ids;
}

/// Token windows of the calibration text: BOS then up to window - 1
/// tokens each, `tokens` in all.
static FailureOr<std::vector<std::vector<int64_t>>>
calibrationWindows(const CompressionOptions &o, Location loc) {
  int64_t bos = -1;
  auto ids = tokenizeCalibrationText(o, bos, loc);
  if (failed(ids))
    return failure();
  std::vector<std::vector<int64_t>> windows;
  int64_t used = 0;
  for (size_t at = 0; at < ids->size() && used < o.calibrationTokens;) {
    std::vector<int64_t> w;
    if (bos >= 0)
      w.push_back(bos);
    while ((int64_t)w.size() < o.calibrationWindow && at < ids->size() &&
           used + (int64_t)w.size() < o.calibrationTokens)
      w.push_back((*ids)[at++]);
    used += w.size();
    windows.push_back(std::move(w));
  }
  if (windows.empty())
    return emitError(loc) << "--calibration-text '" << o.calibrationText
                          << "' holds no tokens";
  return windows;
}

LogicalResult kiln::compressWeights(ModuleOp module, ModuleOp unraised,
                                    const CompressionOptions &o,
                                    std::string &summary) {
  std::shared_ptr<const quant::CalibrationStats> stats;
  if (needsCalibration(o)) {
    PassManager pm(module.getContext());
    buildRaisePipeline(pm, /*raiseGatedMLP=*/false);
    if (failed(pm.run(unraised)))
      return failure();
    auto model = unraised.lookupSymbol<func::FuncOp>("main");
    if (!model)
      return unraised.emitError() << "calibration: no @main function";
    auto windows = calibrationWindows(o, module.getLoc());
    if (failed(windows))
      return failure();
    auto dir = unraised->getAttrOfType<StringAttr>("llm.model_dir");
    WeightStore store(dir ? dir.str() : ".");
    auto collected = collectCalibrationStats(model, *windows, store);
    if (failed(collected))
      return failure();
    stats = std::make_shared<quant::CalibrationStats>(std::move(*collected));
    summary += "calibrated on " + std::to_string(stats->tokens) + " tokens (" +
               std::to_string(windows->size()) + " windows); ";
  }
  PassManager pm(module.getContext());
  if (!o.quantize.empty()) {
    llm::LLMQuantizeWeightsOptions qo;
    qo.bits = o.quantize == "int4" ? 4 : 8;
    qo.format = o.quantize == "fp8" ? "fp8e4m3" : "int";
    qo.groupSize = o.groupSize >= 0       ? o.groupSize
                   : o.quantize == "int4" ? 128
                                          : 0;
    qo.zeroPoint = o.zeroPoint;
    qo.method = o.quantMethod;
    qo.skip.assign(o.skip.begin(), o.skip.end());
    qo.dataFile = o.dataFile;
    pm.addPass(llm::createLLMQuantizeWeights(qo, stats));
    summary += o.quantize + " " + o.quantMethod +
               (qo.groupSize ? " g" + std::to_string(qo.groupSize)
                             : std::string(" per-channel")) +
               (o.zeroPoint ? " with zero points" : "");
  } else {
    llm::LLMSparsify2to4Options so;
    so.method = o.sparsifyMethod;
    so.skip.assign(o.skip.begin(), o.skip.end());
    so.dataFile = o.dataFile;
    pm.addPass(llm::createLLMSparsify2to4(so, stats));
    summary += "2:4 " + o.sparsifyMethod;
  }
  if (failed(pm.run(module)))
    return failure();
  int64_t packed = 0;
  module.walk([&](llm::WeightOp w) {
    packed += isa<llm::QuantizedWeightType, llm::SparseWeightType>(w.getType());
  });
  summary +=
      ": " + std::to_string(packed) + " weights packed into " + o.dataFile;
  return success();
}
