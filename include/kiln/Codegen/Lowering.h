//===- Lowering.h - From gpu.module to PTX and cubin ------------*- C++ -*-===//
//
// The kernel generators build `gpu.module`s of gpu/arith/vector/scf/memref
// ops. `lowerToPTX` runs the GPU -> NVVM -> LLVM IR -> NVPTX path that
// upstream's `gpu-lower-to-nvvm-pipeline` runs (see TOOLCHAIN.md, "PTX
// without a GPU"), with the kernels' pointer arguments kept bare, and
// returns the PTX text. `assembleWithPtxas` turns PTX into a cubin through
// CUDA's ptxas when one is installed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_LOWERING_H
#define KILN_CODEGEN_LOWERING_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"

#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
class MLIRContext;
namespace gpu {
class GPUModuleOp;
} // namespace gpu
} // namespace mlir

namespace kiln {
namespace codegen {

/// Registers the dialects the generators build, the NVVM target model, the
/// ConvertToLLVM interfaces the lowering uses and the LLVM IR translations
/// of builtin, llvm, nvvm and gpu. Call before creating the context.
void registerCodegenDialects(mlir::DialectRegistry &registry);

/// Initializes LLVM's NVPTX backend (target, MC layer, asm printer). Safe to
/// call more than once.
void initializeNVPTXBackend();

/// A `builtin.module attributes {gpu.container_module}` holding one empty
/// `gpu.module @<name>`, which `*gpuModule` receives. Loads the dialects the
/// kernel generators build into `context`.
mlir::OwningOpRef<mlir::ModuleOp>
createKernelModule(mlir::MLIRContext *context, llvm::StringRef name,
                   mlir::gpu::GPUModuleOp *gpuModule);

/// Canonicalizes and CSEs the generated kernels: the generators emit index
/// arithmetic as they compute it (adds of 0, one constant per use), which
/// this folds so that the printed gpu.func reads like hand-written IR.
mlir::LogicalResult simplifyKernels(mlir::ModuleOp module);

struct PTXLoweringOptions {
  std::string chip = "sm_90a";
  std::string features = "+ptx80";
  /// LLVM optimization level of the NVVM target (0-3).
  int optLevel = 3;
  /// CUDA toolkit holding nvvm/libdevice (linked only when a kernel calls a
  /// libdevice function; Kiln's generators do not). Empty: the first of
  /// $CUDA_ROOT, $CUDA_HOME, $CUDA_PATH, /usr/local/cuda that has libdevice.
  std::string toolkitPath;
};

/// Attaches `#nvvm.target<O, chip, features>` to every gpu.module of
/// `module` and lowers their bodies to the LLVM and NVVM dialects, stopping
/// before serialization (what `kiln-kernelgen --emit=nvvm` prints).
mlir::LogicalResult lowerToNVVM(mlir::ModuleOp module,
                                const PTXLoweringOptions &options);

/// Lowers `module` (as lowerToNVVM), serializes each gpu.module into a
/// gpu.binary holding PTX, and returns the PTX of the module's one
/// gpu.module. Errors are emitted on the module and fail.
mlir::FailureOr<std::string> lowerToPTX(mlir::ModuleOp module,
                                        const PTXLoweringOptions &options);
mlir::FailureOr<std::string> lowerToPTX(mlir::ModuleOp module,
                                        llvm::StringRef chip = "sm_90a",
                                        llvm::StringRef features = "+ptx80");

/// Path of ptxas: $KILN_PTXAS, then $CUDA_HOME/bin, then PATH, then
/// /usr/local/cuda/bin. Empty when none is found.
std::string findPtxas();

/// Assembles `ptx` for `chip` with ptxas (-O3 and `extraOptions`) and returns
/// the cubin. When ptxas is missing or fails, emits an error at `loc` that
/// quotes ptxas's diagnostics, and fails. `*log`, when given, receives what
/// ptxas printed (the register and spill report with `-v`).
mlir::FailureOr<std::vector<char>> assembleWithPtxas(
    mlir::Location loc, llvm::StringRef ptx, llvm::StringRef chip = "sm_90a",
    llvm::ArrayRef<std::string> extraOptions = {}, std::string *log = nullptr);

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_LOWERING_H
