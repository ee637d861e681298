//===- kiln-check.cpp - Check an ONNX model against its test data ---------===//
//
//   kiln-check DIR [--no-raise] [--tolerance 1e-4] [--precision fp32|storage]
//
// Imports DIR/model.onnx, raises it, runs every DIR/test_data_set_*/input_N.pb
// on the host reference executor and compares with output_N.pb: one line per
// output (max abs error, error relative to max |ref|), then
// "N passed, N failed". Exits non-zero when anything fails.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Frontend/OnnxImporter.h"
#include "kiln/Frontend/OnnxTensor.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Support/ToolDiagnostics.h"
#include "kiln/Reference/Interpreter.h"

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
#include <cstring>
#include <map>

using namespace llvm;
using namespace kiln;

static cl::opt<std::string> dirPath(cl::Positional, cl::desc("<model dir>"));
static cl::opt<bool> noRaise("no-raise",
                             cl::desc("Check the imported graph without raising"));
static cl::opt<double> tolerance(
    "tolerance", cl::desc("Largest error relative to max |ref| that passes"),
    cl::init(1e-4));
enum class Precision { Fp32, Storage };
static cl::opt<Precision> precision(
    "precision", cl::desc("How half-precision values are computed"),
    cl::values(clEnumValN(Precision::Fp32, "fp32",
                          "in fp32, never rounded (default: the oracle)"),
               clEnumValN(Precision::Storage, "storage",
                          "rounded to each value's element type (ONNX "
                          "semantics of Cast to f16)")),
    cl::init(Precision::Fp32));
static cl::opt<std::string> modelName("model", cl::desc("Model file in DIR"),
                                      cl::init("model.onnx"));

namespace {

struct Comparison {
  double maxAbs = 0, maxRef = 0;
  bool nan = false;
  std::string error;
};

Comparison compare(const HostTensor &got, const HostTensor &ref) {
  Comparison c;
  if (got.shape != ref.shape) {
    c.error = "shape " + got.shapeString() + " differs from reference " +
              ref.shapeString();
    return c;
  }
  for (int64_t k = 0, n = ref.numElements(); k < n; ++k) {
    double g = got.get(k), r = ref.get(k);
    if (std::isnan(g) != std::isnan(r)) {
      c.nan = true;
      continue;
    }
    if (std::isnan(r))
      continue;
    if (std::isinf(r) || std::isinf(g)) {
      if (g != r)
        c.maxAbs = INFINITY;
      continue;
    }
    c.maxAbs = std::max(c.maxAbs, std::fabs(g - r));
    c.maxRef = std::max(c.maxRef, std::fabs(r));
  }
  return c;
}

/// ONNX test data from before bfloat16 had a TensorProto type stores it as
/// uint16 bit patterns: read those as bf16 where the model declares bf16.
void reinterpretLegacyBF16(HostTensor &t, mlir::Type declared) {
  auto tensor = dyn_cast<mlir::TensorType>(declared);
  if (!tensor || !tensor.getElementType().isBF16() || t.dtype != DType::U16)
    return;
  HostTensor bf(DType::BF16, t.shape);
  for (int64_t k = 0, n = t.numElements(); k < n; ++k) {
    uint32_t bits = (uint32_t)t.i[k] << 16;
    float value;
    std::memcpy(&value, &bits, 4);
    bf.f[k] = value;
  }
  t = std::move(bf);
}

/// input_N.pb / output_N.pb files of a test set, ordered by N.
std::vector<std::string> numberedFiles(const std::string &dir,
                                       StringRef prefix) {
  std::map<int, std::string> byIndex;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (!name.consume_front(prefix) || !name.consume_back(".pb"))
      continue;
    int index;
    if (!name.getAsInteger(10, index))
      byIndex[index] = it->path();
  }
  std::vector<std::string> out;
  for (auto &[i, path] : byIndex)
    out.push_back(path);
  return out;
}

std::vector<std::string> testSets(const std::string &dir) {
  std::vector<std::string> sets;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    if (sys::path::filename(it->path()).starts_with("test_data_set_"))
      sets.push_back(it->path());
  std::sort(sets.begin(), sets.end());
  return sets;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "Kiln ONNX test-data checker\n");
  if (dirPath.empty()) {
    errs() << "kiln-check: no model directory given\n";
    return 2;
  }
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  kiln::ToolDiagnosticHandler diagnostics(&context, "kiln-check");
  std::string modelPath = dirPath + "/" + modelName;
  mlir::OwningOpRef<mlir::ModuleOp> module = importOnnxModel(modelPath, &context);
  if (!module)
    return 1;
  if (!noRaise) {
    mlir::PassManager pm(&context);
    buildRaisePipeline(pm);
    if (mlir::failed(pm.run(*module)))
      return 1;
  }
  auto func = module->lookupSymbol<mlir::func::FuncOp>("main");
  std::map<std::string, int> leftover;
  int leftoverCount = 0;
  func.walk([&](mlir::Operation *op) {
    if (op->getDialect() && op->getDialect()->getNamespace() == "llm" &&
        !llm::isRaisedOp(op)) {
      ++leftover[op->getName().getStringRef().str()];
      ++leftoverCount;
    }
  });
  outs() << "model " << modelPath << ": " << leftoverCount
         << " generic ops left after " << (noRaise ? "import" : "raising");
  if (leftoverCount) {
    outs() << " (";
    bool first = true;
    for (auto &[name, n] : leftover) {
      outs() << (first ? "" : ", ") << name << " " << n;
      first = false;
    }
    outs() << ")";
  }
  outs() << "\n";

  std::vector<std::string> argNames;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto name = func.getArgAttrOfType<mlir::StringAttr>(i, "llm.name");
    argNames.push_back(name ? name.str() : "");
  }

  WeightStore weights(
      cast<mlir::StringAttr>((*module)->getAttr("llm.model_dir")).str());
  Interpreter interpreter(weights);
  interpreter.setFp32Compute(precision == Precision::Fp32);
  int passed = 0, failedCount = 0;
  std::vector<std::string> sets = testSets(dirPath);
  if (sets.empty()) {
    errs() << "kiln-check: no test_data_set_* in '" << dirPath << "'\n";
    return 1;
  }
  for (const std::string &set : sets) {
    StringRef setName = sys::path::filename(set);
    std::vector<std::string> inputFiles = numberedFiles(set, "input_");
    std::vector<HostTensor> inputs(func.getNumArguments());
    std::vector<bool> bound(func.getNumArguments(), false);
    bool inputError = false;
    for (auto [index, file] : llvm::enumerate(inputFiles)) {
      HostTensor t;
      std::string name, error;
      if (!readTensorProtoFile(file, t, &name, error)) {
        errs() << "kiln-check: " << error << "\n";
        inputError = true;
        break;
      }
      // Bind by name when the file names its tensor, else by position.
      size_t slot = index;
      auto it = std::find(argNames.begin(), argNames.end(), name);
      if (!name.empty() && it != argNames.end())
        slot = it - argNames.begin();
      if (slot >= inputs.size()) {
        errs() << "kiln-check: " << file << " has no matching model input ("
               << inputs.size() << " inputs)\n";
        inputError = true;
        break;
      }
      reinterpretLegacyBF16(t, func.getArgument(slot).getType());
      inputs[slot] = std::move(t);
      bound[slot] = true;
    }
    if (!inputError && std::find(bound.begin(), bound.end(), false) != bound.end()) {
      errs() << "kiln-check: " << set << " does not provide every model input\n";
      inputError = true;
    }
    if (inputError) {
      ++failedCount;
      continue;
    }
    std::vector<HostTensor> outputs;
    if (mlir::failed(interpreter.run(func, inputs, outputs))) {
      outs() << setName << ": execution FAILED\n";
      ++failedCount;
      continue;
    }
    std::vector<std::string> refFiles = numberedFiles(set, "output_");
    for (auto [index, file] : llvm::enumerate(refFiles)) {
      HostTensor ref;
      std::string name, error;
      if (!readTensorProtoFile(file, ref, &name, error)) {
        errs() << "kiln-check: " << error << "\n";
        ++failedCount;
        continue;
      }
      outs() << setName << " output " << index << " '" << name << "' ";
      if (index >= outputs.size()) {
        outs() << "FAIL: the model has only " << outputs.size() << " outputs\n";
        ++failedCount;
        continue;
      }
      reinterpretLegacyBF16(ref, func.getResultTypes()[index]);
      Comparison c = compare(outputs[index], ref);
      double rel = c.maxRef > 0 ? c.maxAbs / c.maxRef : c.maxAbs;
      bool ok = c.error.empty() && !c.nan && rel <= tolerance;
      outs() << ref.shapeString();
      if (!c.error.empty())
        outs() << ": " << c.error;
      else
        outs() << format(": max_abs %.3e rel %.3e", c.maxAbs, rel)
               << (c.nan ? " NaN mismatch" : "");
      outs() << (ok ? " PASS" : " FAIL") << "\n";
      ok ? ++passed : ++failedCount;
    }
  }
  outs() << passed << " passed, " << failedCount << " failed\n";
  return failedCount ? 1 : 0;
}
