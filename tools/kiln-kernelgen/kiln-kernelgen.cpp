//===- kiln-kernelgen.cpp - Generate one GPU kernel -----------------------===//
//
//   kiln-kernelgen --kernel=rms_norm --rows=4 --hidden=4096 --dtype=f16
//                  --emit=mlir|nvvm|ptx|cubin|spec [-o FILE]
//   kiln-kernelgen --kernel=gemv --n=1024 --k=384 --emit=ptx
//   kiln-kernelgen --kernel=silu_mul --hidden=1024 --emit=ptx
//
// Builds one kernel with Kiln's generators (lib/Codegen) and prints it at
// the requested stage. Text outputs start with a `// kiln.kernel ...` line,
// the kernel's launch contract (grid, block, shapes, arguments), which the
// GPU harness tools/kiln-kernelgen/gpu-check reads back; `--emit=spec`
// prints only that line (without the comment marker).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/ElementwiseKernel.h"
#include "kiln/Codegen/GemvKernel.h"
#include "kiln/Codegen/Lowering.h"
#include "kiln/Codegen/RMSNormKernel.h"
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

static cl::opt<std::string>
    kernel("kernel", cl::Required, cl::cat(category),
           cl::desc("Kernel family: rms_norm, gemv, silu_mul, residual_add"));
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
static cl::opt<double> epsilon("eps", cl::init(1e-5), cl::cat(category),
                               cl::desc("rms_norm: epsilon"));
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

/// Flags that belong to one family only, so that a typo such as
/// `--kernel=gemv --hidden=384` is an error rather than a silently ignored
/// shape.
static std::optional<std::string> misplacedFlag(StringRef family) {
  bool isGemv = family == "gemv";
  auto given = [](const cl::Option &option) {
    return option.getNumOccurrences() > 0;
  };
  if (isGemv) {
    for (const cl::Option *option : std::initializer_list<const cl::Option *>{
             &rows, &hidden, &epsilon, &blockSize})
      if (given(*option))
        return option->ArgStr.str();
  } else {
    for (const cl::Option *option : std::initializer_list<const cl::Option *>{
             &gemvN, &gemvK, &warpsPerBlock, &rowsPerWarp, &unroll})
      if (given(*option))
        return option->ArgStr.str();
    if (family != "rms_norm" && given(epsilon))
      return epsilon.ArgStr.str();
  }
  return std::nullopt;
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
    spec = buildRMSNormKernel(builder, kernels, options);
  } else if (kernel == "gemv") {
    GemvOptions options;
    options.dtype = *dtype;
    options.n = gemvN;
    options.k = gemvK;
    options.warpsPerBlock = warpsPerBlock;
    options.rowsPerWarp = rowsPerWarp;
    options.unroll = unroll;
    spec = buildGemvKernel(builder, kernels, options);
  } else if (std::optional<ElementwiseOp> op = parseElementwiseOp(kernel)) {
    ElementwiseOptions options;
    options.op = *op;
    options.dtype = *dtype;
    if (rows <= 0 || hidden <= 0)
      return fail("--rows and --hidden must be positive");
    options.size = rows * hidden;
    options.blockSize = blockSize;
    spec = buildElementwiseKernel(builder, kernels, options);
  } else {
    return fail("unknown --kernel '" + kernel +
                "' (expected rms_norm, gemv, silu_mul or residual_add)");
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
