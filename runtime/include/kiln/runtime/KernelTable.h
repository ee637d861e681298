//===- KernelTable.h - The Kernels section: generated GPU kernels ---------===//
//
// What kiln-compile's GPU code generator leaves for a device: one entry per
// distinct (kernel family, shape) the decode entry point needs, each with
// its shape parameters, launch geometry (and which dimension scales with
// the step's tokens, sequences or copies), its arguments, the PTX text and,
// when ptxas was available, the cubin. Steps that no generator covers yet
// are "missing" entries (family, shape, reason) so that a device can say
// exactly what it lacks. The encoding and its checks are in
// docs/Artifact.md ("Kernel table"). Plain C++: no MLIR, no CUDA.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELTABLE_H
#define KILN_RUNTIME_KERNELTABLE_H

#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::runtime {

/// Whether an entry carries code. Values are part of the format.
enum class KernelStatus : uint8_t {
  Generated = 1, ///< PTX (and maybe a cubin) for the entry's shape.
  Missing = 2,   ///< No generator yet: family, shape and reason only.
};

/// What one unit of the recorded grid is; values are part of the format.
/// The grid was generated for one unit (one token row, one sequence, one
/// copy) in the dimension `gridScaleDim`; a launch multiplies it.
enum class LaunchScale : uint8_t {
  None = 0,   ///< The grid is fixed.
  Tokens = 1, ///< Times T, the step's token rows.
  Seqs = 2,   ///< Times N, the step's sequences.
  Copies = 3, ///< Times the rows of the copy list.
  /// Times ceil(T / tokens), T the step's rows and `tokens` the kernel's
  /// parameter (row-chunked gemv: each CTA row computes `tokens` rows).
  TokenChunks = 4,
};
const char *launchScaleName(LaunchScale scale);

/// Launches per step (each with every row-indexed pointer advanced by one
/// row, or with the cache pointer at the next layer). Part of the format.
enum class LaunchRepeat : uint8_t {
  Once = 0,
  PerToken = 1, ///< T launches, row t's input/output pointers.
  PerLayer = 2, ///< One launch per layer, cache pointer at layer l.
};
const char *launchRepeatName(LaunchRepeat repeat);

/// How an argument is used. Part of the format.
enum class ArgAccess : uint8_t {
  In = 1,
  Out = 2,
  Scratch = 3,       ///< Written and read by the kernel.
  ZeroedScratch = 4, ///< Zero before the first launch, left zero.
};
const char *argAccessName(ArgAccess access);

/// The layout a kernel expects of its weight argument. Part of the format.
enum class WeightLayout : uint8_t {
  None = 0,
  NK = 1, ///< W [N, K] row-major (gemv): a plan weight stored [K, N]
          ///< (transpose_weight 0) must be transposed at upload.
};
const char *weightLayoutName(WeightLayout layout);

struct KernelArgInfo {
  std::string name;
  DType dtype = DType::F16;
  ArgAccess access = ArgAccess::In;
  /// The shape the kernel was specialized for (one unit of the scale).
  std::vector<int64_t> shape;
};

struct KernelInfo {
  std::string name;   ///< The PTX `.entry` symbol (generated) or a label.
  std::string family; ///< "gemv", "rms_norm", ... or "embedding" (missing).
  KernelStatus status = KernelStatus::Generated;
  /// Shape and tuning parameters, in the generator's order.
  std::vector<std::pair<std::string, std::string>> params;
  /// Plan steps (of every entry point) this entry serves.
  uint32_t uses = 0;

  // Generated only.
  std::array<int64_t, 3> grid = {1, 1, 1};
  std::array<int64_t, 3> block = {1, 1, 1};
  int64_t dynamicSharedBytes = 0;
  LaunchScale gridScale = LaunchScale::None;
  uint8_t gridScaleDim = 0; ///< 0, 1 or 2 (x, y, z).
  LaunchRepeat repeat = LaunchRepeat::Once;
  WeightLayout weightLayout = WeightLayout::None;
  std::vector<KernelArgInfo> args;
  std::string ptx;
  std::vector<uint8_t> cubin; ///< Empty when ptxas was not available.

  // Missing only.
  std::string reason;

  /// The value of `key`, or "" when absent.
  std::string param(const std::string &key) const;
};

/// Which kernels serve each step of one entry point: `steps[i]` lists, in
/// launch order, the table indices of the kernels step i launches (empty
/// for View and GatherLastTokens, which need no kernel). A step kind with
/// several launches (GatedMLP: gate gemv, up gemv, the activation, down
/// gemv) lists them all. Indices may name missing entries: a device then
/// reports the entry's reason instead of running the entry point.
struct EntryKernels {
  std::string entry;
  std::vector<std::vector<uint32_t>> steps;
};

class KernelTable {
public:
  static constexpr uint32_t kFormatVersion = 2;

  /// The GPU the code is for ("sm_90a").
  std::string target;
  std::vector<KernelInfo> kernels;
  /// One per entry point the code generator covered.
  std::vector<EntryKernels> bindings;

  const KernelInfo *find(const std::string &name) const;
  /// The bindings of `entry`, or nullptr.
  const EntryKernels *bindingsFor(std::string_view entry) const;
  size_t numGenerated() const;
  size_t numMissing() const;
  size_t numCubins() const;

  /// The Kernels section payload.
  std::vector<uint8_t> serialize() const;
  /// Parses and validates a payload: DataLoss naming the entry and what is
  /// wrong for truncated or malformed bytes, Unimplemented for another
  /// table version.
  static StatusOr<KernelTable> deserialize(Span<const uint8_t> bytes);
  /// The rules docs/Artifact.md lists (names unique and non-empty, known
  /// enum values, positive geometry, PTX holding the `.entry`, ...).
  Status validate() const;
};

/// One line per entry (kiln-run --list-kernels).
std::string describeKernelTable(const KernelTable &table);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_KERNELTABLE_H
