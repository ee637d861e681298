//===- Lowering.cpp - From gpu.module to PTX ------------------------------===//
//
// The passes of upstream's gpu-lower-to-nvvm-pipeline
// (mlir/lib/Dialect/GPU/Pipelines/GPUToNVVMPipeline.cpp) that apply to a
// module holding only gpu.modules: no kernel outlining and no host-side
// lowering, the target attached here rather than by nvvm-attach-target, the
// kernels' memref arguments lowered to bare pointers (one `.param .u64` per
// buffer, which is what a driver-API launch passes), and the libdevice
// location chosen here.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Lowering.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Index/IR/IndexDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/LLVMIR/Transforms/OptimizeForNVVM.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <mutex>

extern "C" {
void LLVMInitializeNVPTXTarget();
void LLVMInitializeNVPTXTargetInfo();
void LLVMInitializeNVPTXTargetMC();
void LLVMInitializeNVPTXAsmPrinter();
}

using namespace mlir;
using namespace kiln::codegen;

void kiln::codegen::registerCodegenDialects(DialectRegistry &registry) {
  registry.insert<affine::AffineDialect, arith::ArithDialect,
                  cf::ControlFlowDialect, func::FuncDialect, gpu::GPUDialect,
                  index::IndexDialect, LLVM::LLVMDialect, math::MathDialect,
                  memref::MemRefDialect, NVVM::NVVMDialect, nvgpu::NVGPUDialect,
                  scf::SCFDialect, vector::VectorDialect>();
  // convert-gpu-to-nvvm lowers the other dialects through their
  // ConvertToLLVMPatternInterface models, registered as extensions.
  registerAllExtensions(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
}

void kiln::codegen::initializeNVPTXBackend() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
}

OwningOpRef<ModuleOp>
kiln::codegen::createKernelModule(MLIRContext *context, StringRef name,
                                  gpu::GPUModuleOp *gpuModule) {
  // The generators build ops of these dialects (the registry only makes
  // them loadable).
  context->loadDialect<arith::ArithDialect, gpu::GPUDialect, LLVM::LLVMDialect,
                       memref::MemRefDialect, NVVM::NVVMDialect,
                       nvgpu::NVGPUDialect, scf::SCFDialect,
                       vector::VectorDialect>();
  Location loc = NameLoc::get(StringAttr::get(context, name));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                     UnitAttr::get(context));
  OpBuilder builder = OpBuilder::atBlockEnd(module->getBody());
  auto kernels = gpu::GPUModuleOp::create(builder, loc, name);
  if (gpuModule)
    *gpuModule = kernels;
  return module;
}

LogicalResult kiln::codegen::simplifyKernels(ModuleOp module) {
  PassManager pm(module.getContext(), module.getOperationName());
  OpPassManager &gpuPm = pm.nest<gpu::GPUModuleOp>();
  gpuPm.addPass(createCanonicalizerPass());
  gpuPm.addPass(createCSEPass());
  return pm.run(module);
}

/// The CUDA toolkit whose libdevice a kernel calling `__nv_*` would link:
/// the first of $CUDA_ROOT, $CUDA_HOME, $CUDA_PATH and /usr/local/cuda that
/// has nvvm/libdevice/libdevice.10.bc. Empty when none has it; the NVVM
/// target then links nothing (and looks at the same variables itself, so a
/// variable naming a toolkit without libdevice would make it fail).
static std::string findToolkitWithLibdevice() {
  SmallVector<std::string> candidates;
  for (const char *variable : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"})
    if (std::optional<std::string> value = llvm::sys::Process::GetEnv(variable))
      candidates.push_back(*value);
  candidates.push_back("/usr/local/cuda");
  for (const std::string &root : candidates) {
    SmallString<256> libdevice(root);
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    if (llvm::sys::fs::is_regular_file(libdevice))
      return root;
  }
  return "";
}

/// Lowest PTX ISA (times ten) that LLVM's NVPTX backend accepts for a chip;
/// 0 when not listed. LLVM aborts the process on a lower one, so it is
/// checked here first (from llvm/lib/Target/NVPTX/NVPTX.td).
static unsigned minimumPTXVersion(StringRef chip) {
  return llvm::StringSwitch<unsigned>(chip)
      .Cases({"sm_70"}, 60)
      .Cases({"sm_72"}, 61)
      .Cases({"sm_75"}, 63)
      .Cases({"sm_80"}, 70)
      .Cases({"sm_86"}, 71)
      .Cases({"sm_87"}, 74)
      .Cases({"sm_89", "sm_90"}, 78)
      .Cases({"sm_90a"}, 80)
      .Cases({"sm_100", "sm_100a", "sm_101", "sm_101a"}, 86)
      .Cases({"sm_120", "sm_120a"}, 87)
      .Default(0);
}

/// Rejects a chip or feature that NVPTX does not know, and a PTX ISA below
/// the chip's minimum, with an error on `module` rather than the LLVM abort
/// either would cause during code generation.
static LogicalResult verifyNVPTXTarget(ModuleOp module,
                                       const PTXLoweringOptions &options) {
  initializeNVPTXBackend();
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return module.emitError() << "LLVM has no NVPTX backend: " << error;
  // Created for the default CPU: one for an unknown chip would print a
  // warning of its own.
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!subtarget || !subtarget->isCPUStringValid(options.chip))
    return module.emitError() << "unknown NVPTX chip '" << options.chip
                              << "' (expected e.g. sm_90a)";
  unsigned ptxVersion = 0;
  SmallVector<StringRef> features;
  StringRef(options.features).split(features, ',', -1, /*KeepEmpty=*/false);
  for (StringRef feature : features) {
    StringRef name = feature.drop_front(feature.starts_with("+") ||
                                        feature.starts_with("-"));
    if (!llvm::any_of(subtarget->getAllProcessorFeatures(),
                      [&](const llvm::SubtargetFeatureKV &known) {
                        return name == known.Key;
                      }))
      return module.emitError() << "unknown NVPTX feature '" << feature
                                << "' (expected e.g. +ptx80)";
    unsigned version = 0;
    if (feature.starts_with("+") && name.consume_front("ptx") &&
        !name.getAsInteger(10, version))
      ptxVersion = std::max(ptxVersion, version);
  }
  unsigned minimum = minimumPTXVersion(options.chip);
  if (ptxVersion != 0 && minimum != 0 && ptxVersion < minimum)
    return module.emitError()
           << options.chip << " needs PTX ISA " << minimum / 10 << "."
           << minimum % 10 << " or later (+ptx" << minimum << "), got +ptx"
           << ptxVersion;
  return success();
}

/// 90 for "sm_90a", nullopt for a name that is not sm_<digits>[a|f].
static std::optional<unsigned> smVersion(StringRef chip) {
  unsigned version = 0;
  if (!chip.consume_front("sm_") || chip.consumeInteger(10, version))
    return std::nullopt;
  return version;
}

/// Programmatic dependent launch (sm_90+): every kernel starts with
/// griddepcontrol.wait (nothing before it reads or writes memory, so it
/// waits for the whole previous grid exactly as stream order would) and
/// then griddepcontrol.launch_dependents, which lets the next kernel's CTAs
/// be scheduled while this grid's last wave runs: a device that launches
/// with programmatic stream serialization hides the launch latency between
/// dependent kernels. Without that launch attribute both are no-ops.
static void addGridDependencyControl(ModuleOp module) {
  module.walk([](gpu::GPUFuncOp func) {
    if (!func.isKernel() || func.getBody().empty())
      return;
    // A kernel that placed the wait itself (after prefetching weights).
    bool placed = false;
    func.walk([&](NVVM::GriddepcontrolOp op) {
      placed |= op.getKind() == NVVM::GridDepActionKind::wait;
    });
    if (placed)
      return;
    OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
    NVVM::GriddepcontrolOp::create(b, func.getLoc(),
                                   NVVM::GridDepActionKind::wait);
    NVVM::GriddepcontrolOp::create(b, func.getLoc(),
                                   NVVM::GridDepActionKind::launch_dependents);
  });
}

/// Before sm_90 there is no griddepcontrol, and NVPTX selects
/// prefetch.global.L2 only from sm_90 on; the L2 prefetches only serve
/// programmatic dependent launch, so both go.
static void dropGridDependencyControl(ModuleOp module) {
  module.walk([](NVVM::GriddepcontrolOp op) { op.erase(); });
  module.walk([](NVVM::PrefetchOp op) { op.erase(); });
}

LogicalResult kiln::codegen::lowerToNVVM(ModuleOp module,
                                         const PTXLoweringOptions &options) {
  if (failed(verifyNVPTXTarget(module, options)))
    return failure();
  MLIRContext *context = module.getContext();
  context->loadDialect<gpu::GPUDialect, NVVM::NVVMDialect>();
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(context));
  auto emitModuleError = [&] { return module.emitError(); };
  auto target = NVVM::NVVMTargetAttr::getChecked(
      llvm::function_ref<InFlightDiagnostic()>(emitModuleError), context,
      options.optLevel, StringRef("nvptx64-nvidia-cuda"),
      StringRef(options.chip), StringRef(options.features),
      /*targetFlags=*/DictionaryAttr(), /*linkFiles=*/ArrayAttr(),
      /*verifyTarget=*/true);
  if (!target)
    return failure();
  auto targets = ArrayAttr::get(context, {target});
  module.walk(
      [&](gpu::GPUModuleOp kernels) { kernels.setTargetsAttr(targets); });

  if (std::optional<unsigned> sm = smVersion(options.chip); sm && *sm >= 90)
    addGridDependencyControl(module);
  else
    dropGridDependencyControl(module);

  PassManager pm(context, module.getOperationName());
  // Module level, as upstream's common pipeline: structured control flow and
  // memref metadata down to what convert-gpu-to-nvvm expects.
  // nvgpu (ldmatrix, mma.sync of the tensor-core kernels) to nvvm first,
  // while its vector operand types are intact.
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  ConvertIndexToLLVMPassOptions indexOptions;
  indexOptions.indexBitwidth = 64;
  pm.addPass(createConvertIndexToLLVMPass(indexOptions));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Inside each gpu.module: gpu, memref, vector, arith and math to the LLVM
  // and NVVM dialects, memref arguments as bare pointers.
  OpPassManager &gpuPm = pm.nest<gpu::GPUModuleOp>();
  gpuPm.addPass(createStripDebugInfoPass());
  ConvertGpuOpsToNVVMOpsOptions nvvmOptions;
  nvvmOptions.useBarePtrCallConv = true;
  nvvmOptions.indexBitwidth = 64;
  gpuPm.addPass(createConvertGpuOpsToNVVMOps(nvvmOptions));
  gpuPm.addPass(LLVM::createNVVMOptimizeForTargetPass());
  gpuPm.addPass(createCanonicalizerPass());
  gpuPm.addPass(createCSEPass());
  gpuPm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(module)))
    return failure();
  // gpu.dynamic_shared_memory becomes an internal zero-length shared array,
  // which the NVPTX backend demotes to a one-byte static variable; CUDA's
  // `extern __shared__ char s[]` is an external one (`.extern .shared ..
  // s[]`), the base of the launch's dynamic allocation.
  module.walk([](LLVM::GlobalOp global) {
    auto array = dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType());
    if (global.getAddrSpace() == 3 && array && array.getNumElements() == 0)
      global.setLinkage(LLVM::Linkage::External);
  });
  return success();
}

FailureOr<std::string>
kiln::codegen::lowerToPTX(ModuleOp module, const PTXLoweringOptions &options) {
  initializeNVPTXBackend();
  if (failed(lowerToNVVM(module, options)))
    return failure();

  PassManager pm(module.getContext(), module.getOperationName());
  GpuModuleToBinaryPassOptions binaryOptions;
  binaryOptions.compilationTarget = "isa";
  binaryOptions.toolkitPath = options.toolkitPath.empty()
                                  ? findToolkitWithLibdevice()
                                  : options.toolkitPath;
  pm.addPass(createGpuModuleToBinaryPass(binaryOptions));
  if (failed(pm.run(module)))
    return failure();

  SmallVector<gpu::BinaryOp> binaries(module.getOps<gpu::BinaryOp>());
  if (binaries.size() != 1)
    return module.emitError() << "expected one gpu.module to lower to PTX, "
                                 "found "
                              << binaries.size();
  ArrayAttr objects = binaries.front().getObjectsAttr();
  if (objects.size() != 1)
    return binaries.front().emitError()
           << "expected one object (one #nvvm.target), found "
           << objects.size();
  auto object = cast<gpu::ObjectAttr>(objects[0]);
  if (object.getFormat() != gpu::CompilationTarget::Assembly)
    return binaries.front().emitError() << "expected a PTX (isa) object";
  return object.getObject().getValue().str();
}

FailureOr<std::string>
kiln::codegen::lowerToPTX(ModuleOp module, StringRef chip, StringRef features) {
  PTXLoweringOptions options;
  options.chip = chip.str();
  options.features = features.str();
  return lowerToPTX(module, options);
}
