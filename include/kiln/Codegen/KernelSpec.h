//===- KernelSpec.h - Launch contract of a generated kernel ----*- C++ -*-===//
//
// Every kernel generator returns a KernelSpec next to the gpu.func it built:
// the launch shape it was specialized for (grid, block, dynamic shared
// memory), its arguments in order, and the parameters that chose its code.
// `KernelSpec::str()` is one line of `key=value` tokens that kiln-kernelgen
// writes as a `// kiln.kernel ...` comment above the IR or PTX it prints; the
// GPU correctness harness (tools/kiln-kernelgen/gpu-check) reads it back.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_KERNELSPEC_H
#define KILN_CODEGEN_KERNELSPEC_H

#include "mlir/IR/Types.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace kiln {
namespace codegen {

/// Storage type of a kernel's activations and weights (F16, BF16). Arithmetic
/// is always fp32; values are widened after the load and rounded once before
/// the store. F32, I32 and I64 only describe other arguments: fp32 scratch,
/// block tables and lengths (i32) and slot mappings (i64); a generator's
/// `dtype` option is F16 or BF16.
/// U8: packed low-bit weight bytes (quantized codes, zero points).
enum class KernelDType { F16, BF16, F32, I32, I64, U8 };

/// "f16", "bf16", "f32", "i32", "i64" or "u8".
llvm::StringRef stringifyDType(KernelDType dtype);
/// Parses "f16"/"fp16"/"half" or "bf16"/"bfloat16" (the storage types a
/// generator accepts; never the F32/I32/I64 argument types).
std::optional<KernelDType> parseDType(llvm::StringRef name);
/// The MLIR element type (f16, bf16, f32, i32, i64; i8 for u8).
mlir::Type getElementType(mlir::MLIRContext *context, KernelDType dtype);
/// Size in bytes of one element (2 for f16 and bf16).
int64_t getElementBytes(KernelDType dtype);

/// One kernel argument: a device pointer to `numElements` values of `dtype`
/// (the kernels use MLIR's bare-pointer calling convention, so each memref
/// argument is exactly one `.param .u64` pointer in PTX).
struct KernelArg {
  std::string name;
  KernelDType dtype;
  llvm::SmallVector<int64_t, 2> shape;
  bool isOutput = false;
  /// Workspace the kernel both writes and reads (printed `:scratch`); with
  /// `zeroed`, it must hold zeros before the first launch and the kernel
  /// leaves it zeroed (printed `:zeroed`, e.g. split-K arrival counters).
  bool isScratch = false;
  bool zeroed = false;
};

/// Launch contract of one generated kernel.
struct KernelSpec {
  /// Generator family: "rms_norm", "gemv", "silu_mul", "residual_add",
  /// "kv_write", "kv_copy", "paged_decode", "paged_prefill", "embedding",
  /// "rotary_table", "rope", "cast".
  std::string family;
  /// Symbol of the gpu.func, and of the `.entry` in PTX.
  std::string name;
  std::array<int64_t, 3> grid = {1, 1, 1};
  std::array<int64_t, 3> block = {1, 1, 1};
  /// Dynamic shared memory in bytes (static shared memory is in the kernel).
  int64_t dynamicSharedBytes = 0;
  llvm::SmallVector<KernelArg, 4> args;
  /// Shape and tuning parameters in the order they were chosen
  /// (`hidden=4096`, `vec=8`, ...).
  llvm::SmallVector<std::pair<std::string, std::string>, 8> params;

  void addParam(llvm::StringRef key, int64_t value);
  void addParam(llvm::StringRef key, llvm::StringRef value);
  /// `%.9g`, so that the value reads back as the same float.
  void addFloatParam(llvm::StringRef key, double value);

  /// One line: `family=.. name=.. grid=X,Y,Z block=X,Y,Z smem=N <params>
  /// args=x:f16[4x384],w:f16[384],out:f16[4x384]:out`.
  std::string str() const;
};

} // namespace codegen
} // namespace kiln

#endif // KILN_CODEGEN_KERNELSPEC_H
