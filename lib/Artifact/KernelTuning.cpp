//===- KernelTuning.cpp - Compile-time knobs of the generated kernels -----===//

#include "kiln/Artifact/KernelTuning.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"

#include <cstdlib>

using namespace kiln;
using llvm::StringRef;

llvm::ArrayRef<KernelKnob> KernelTuning::knobs() {
  using K = KernelKnob::Kind;
  static const KernelKnob table[] = {
      {"gemv-unroll", K::Count,
       "gemv: K steps in flight per lane (8; 16 from 32 steps a lane)"},
      {"gemv-rows-per-warp", K::Count, "gemv: output rows per warp"},
      {"gemv-warps", K::Count, "gemv: warps per CTA (8)"},
      {"gated-rows-per-warp", K::Count,
       "fused gate/up gemv: output rows per warp"},
      {"gated-warps", K::Count, "fused gate/up gemv: warps per CTA"},
      {"gated-unroll", K::Count,
       "fused gate/up gemv: K steps in flight per lane (4)"},
      {"multi-unroll", K::Count,
       "q/k/v gemv_multi (one row): K steps in flight per lane (4)"},
      {"chunked-norm-gemv", K::Count,
       "1: the row-chunked q/k/v and gate/up gemvs of small models also "
       "take the residual add + RMSNorm in their prologue (0: add_rms_norm "
       "apart, measured faster)"},
      {"grouped-skinny", K::Switch,
       "grouped wgmma GEMMs: a layer's q, k and v (few-row and prefill) and "
       "its gate and up (few-row) in one launch each: 1 on, 0 one launch a "
       "weight (1)"},
      {"qgemv-mma", K::Switch,
       "0: every quantized step on the CUDA-core qgemv (1: the tensor-core "
       "qgemv where it serves)"},
      {"qgemv-rows-per-warp", K::Count,
       "CUDA-core qgemv: output rows per warp (2 for int4, else 1)"},
      {"qgemv-unroll", K::Count, "CUDA-core qgemv: loads in flight (4)"},
      {"qgemv-warps", K::Count, "CUDA-core qgemv: warps per CTA"},
      {"qmma-int8", K::Count,
       "int8 decode rows on the tensor-core qgemv: 1 a layer's q/k/v and "
       "gate/up groups, 2 every int8 weight (0: the CUDA-core qgemv)"},
      {"qmma-unroll", K::Count,
       "tensor-core qgemv: chunks per loop step, one row (2)"},
      {"qmma-chunk-unroll", K::Count,
       "tensor-core qgemv: chunks per loop step, row-chunked (2)"},
      {"qmma-split", K::Count,
       "tensor-core qgemv: warps splitting K (about 8 warps per SM)"},
      {"skinny-max-split", K::Count, "few-row GEMM: most K splits (4)"},
      {"skinny-min-bytes", K::Count,
       "few-row GEMM: smallest weight it serves (2 MB; 4 MB for logits)"},
      {"skinny-stages", K::Count, "few-row GEMM: pipeline stages (4)"},
      {"skinny-target-ctas", K::Count,
       "few-row GEMM: CTAs the K split aims for (132)"},
      {"sparse-tile", K::Tile,
       "2:4 prefill GEMM (mma.sp): tileM,tileN,tileK,warpsM,warpsN,stages "
       "(tokens before features; 128,128,128,4,2,3)"},
      {"tiled-tile", K::Tile,
       "prefill GEMM on mma.sync: tileM,tileN,tileK,warpsM,warpsN,stages "
       "(128,128,64,2,4,3; setting it on sm_90a replaces the wgmma GEMM)"},
      {"wgmma", K::Switch,
       "prefill GEMM on Hopper warpgroup MMA (sm_90a targets): 1 on, 0 the "
       "mma.sync GEMM (1)"},
      {"wgmma-n", K::Count,
       "wgmma prefill GEMM: features per 128-token tile (256 where they "
       "divide N, else 128)"},
      {"wgmma-skinny", K::Switch,
       "few-row split-K GEMM on wgmma with W as the A operand (sm_90a): 1 "
       "on, 0 the mma.sync one (1)"},
      {"wgmma-skinny-stages", K::Count,
       "few-row wgmma GEMM: pipeline stages (5 for 128 features, 8 for "
       "64)"},
      {"wgmma-stages", K::Count,
       "wgmma prefill GEMM: pipeline stages (4 for 256 features, 5 for "
       "128)"},
  };
  return table;
}

std::string kiln::knobEnvironmentName(StringRef name) {
  std::string env = "KILN_" + name.upper();
  for (char &c : env)
    if (c == '-')
      c = '_';
  return env;
}

static const KernelKnob *findKnob(StringRef name) {
  for (const KernelKnob &knob : KernelTuning::knobs())
    if (name == knob.name)
      return &knob;
  return nullptr;
}

static bool parseTile(StringRef value, std::array<int64_t, 6> &out) {
  llvm::SmallVector<StringRef, 6> fields;
  value.split(fields, ',');
  if (fields.size() != 6)
    return false;
  for (auto [i, field] : llvm::enumerate(fields))
    if (field.trim().getAsInteger(10, out[i]) || out[i] <= 0)
      return false;
  return true;
}

llvm::Error KernelTuning::assign(const KernelKnob &knob, StringRef value,
                                 StringRef source) {
  auto bad = [&](StringRef expected) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::Twine(source) + ": '" + value +
                                       "' is not " + expected);
  };
  int64_t number = 0;
  switch (knob.kind) {
  case KernelKnob::Kind::Count:
    if (value.getAsInteger(10, number) || number <= 0)
      return bad("a positive integer");
    break;
  case KernelKnob::Kind::Switch:
    if (value != "0" && value != "1")
      return bad("0 or 1");
    break;
  case KernelKnob::Kind::Tile: {
    std::array<int64_t, 6> fields;
    if (!parseTile(value, fields))
      return bad("six positive integers "
                 "tileM,tileN,tileK,warpsM,warpsN,stages");
    break;
  }
  }
  values_[knob.name] = value.str();
  return llvm::Error::success();
}

llvm::Error KernelTuning::set(StringRef assignment) {
  auto [name, value] = assignment.split('=');
  const KernelKnob *knob = findKnob(name.trim());
  if (!knob || !assignment.contains('=')) {
    std::string known;
    for (const KernelKnob &k : knobs())
      known += (known.empty() ? "" : ", ") + std::string(k.name);
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "--kernel-option '" + assignment.str() +
            "': expected NAME=VALUE with NAME one of " + known);
  }
  return assign(*knob, value.trim(),
                "--kernel-option " + std::string(knob->name));
}

llvm::Error KernelTuning::addEnvironment() {
  for (const KernelKnob &knob : knobs()) {
    if (values_.count(knob.name))
      continue;
    std::string env = knobEnvironmentName(knob.name);
    if (const char *value = std::getenv(env.c_str()))
      if (llvm::Error error = assign(knob, value, env))
        return error;
  }
  return llvm::Error::success();
}

int64_t KernelTuning::count(StringRef name, int64_t dflt) const {
  auto it = values_.find(name);
  int64_t value = 0;
  if (it == values_.end() || StringRef(it->second).getAsInteger(10, value))
    return dflt;
  return value;
}

bool KernelTuning::switchOn(StringRef name) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second != "0";
}

std::optional<GemmTile> KernelTuning::tile(StringRef name) const {
  auto it = values_.find(name);
  std::array<int64_t, 6> f;
  if (it == values_.end() || !parseTile(it->second, f))
    return std::nullopt;
  return GemmTile{f[0], f[1], f[2], f[3], f[4], f[5]};
}

std::string KernelTuning::describe() const {
  std::string out;
  for (const KernelKnob &knob : knobs()) {
    auto it = values_.find(knob.name);
    if (it != values_.end())
      out +=
          (out.empty() ? "" : " ") + std::string(knob.name) + "=" + it->second;
  }
  return out;
}
