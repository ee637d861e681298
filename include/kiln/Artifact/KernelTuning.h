//===- KernelTuning.h - Compile-time knobs of the generated kernels -*- C++
//-*-===//
//
// The shapes kiln-compile gives the generated kernels (gemv rows per warp,
// GEMM tiles, K splits, the tensor-core qgemv) have measured defaults;
// these knobs override them for sweeps and A/B measurements on a GPU.
// One table of knobs, two sources: `kiln-compile --kernel-option
// NAME=VALUE` (wins) and the environment variable KILN_<NAME> (NAME upper
// case, '-' as '_'), so sweep scripts keep working. Every value is checked
// when it is read in: an unknown name or a malformed value is an error
// naming it, never a silently ignored knob.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_ARTIFACT_KERNELTUNING_H
#define KILN_ARTIFACT_KERNELTUNING_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace kiln {

struct KernelKnob {
  enum class Kind {
    Count,  ///< A positive integer.
    Switch, ///< 0 (off) or 1 (on).
    Tile,   ///< tileM,tileN,tileK,warpsM,warpsN,stages.
  };
  const char *name;
  Kind kind;
  const char *help;
};

/// A Tile knob's value: a GEMM's CTA tile along the tokens (rows of x) and
/// the output features (rows of W), K a pipeline stage, the warps along
/// each of the two, and the stages in flight ("tokens,features,k,
/// warpsTokens,warpsFeatures,stages"). The generators name these axes
/// differently (MatmulOptions: M tokens, N features; SparseMatmulOptions:
/// M features, N tokens), hence names here.
struct GemmTile {
  int64_t tokens = 0, features = 0, k = 0;
  int64_t warpsTokens = 0, warpsFeatures = 0, stages = 0;
};

class KernelTuning {
public:
  /// Every knob, with what it sets (kiln-compile --help-kernel-options).
  static llvm::ArrayRef<KernelKnob> knobs();

  /// NAME=VALUE (kiln-compile --kernel-option).
  llvm::Error set(llvm::StringRef assignment);
  /// KILN_<NAME> for each knob `set` did not give.
  llvm::Error addEnvironment();

  /// A Count knob's value, else `dflt`.
  int64_t count(llvm::StringRef name, int64_t dflt) const;
  /// A Switch knob: on unless set to 0.
  bool switchOn(llvm::StringRef name) const;
  /// A Tile knob's value.
  std::optional<GemmTile> tile(llvm::StringRef name) const;

  /// "name=value ..." of the knobs given, in table order ("" for none).
  std::string describe() const;

private:
  llvm::Error assign(const KernelKnob &knob, llvm::StringRef value,
                     llvm::StringRef source);

  llvm::StringMap<std::string> values_;
};

/// The environment variable of a knob: KILN_ + NAME upper case, '-' as '_'.
std::string knobEnvironmentName(llvm::StringRef name);

} // namespace kiln

#endif // KILN_ARTIFACT_KERNELTUNING_H
