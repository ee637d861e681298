//===- StepFusion.h - Consecutive steps a device may run as one kernel ----===//
//
// Patterns of the launch plan that the compiler generates a fused kernel
// for and a device binds to it, found by the one rule here so that both
// agree on what a fused kernel covers.
//
// Shared-input linears: a layer's q, k and v projections are three Linear
// steps of the same input with only Views between them. One gemv launch can
// stream all three weights (the gemv_multi kernel); it serves steps of one
// row (decode), which are bound by launch latency more than by bandwidth.
// Quantized linears group the same way (qgemv_multi).
//
// Residual add + norm: an Add step whose result the next step (Views
// aside) normalizes with RMSNorm. One add_rms_norm launch per row computes
// both results (the sum is still stored: it is the next residual), for steps
// of any number of rows.
//
// Rope pairs: two Rope steps in a row (a layer's q and k) with the same cos
// and sin tables and rotary width: one rope_pair launch rotates both, and
// when the next step writes the rotated keys to the KV cache, the
// rope_pair_kv kernel does that too.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_STEPFUSION_H
#define KILN_RUNTIME_STEPFUSION_H

#include "kiln/runtime/LaunchPlan.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime {

/// Linear steps (indices into entry.steps, at least 2, at most
/// kMaxSharedInputLinears) that read the same input buffer, have no bias,
/// the same weight orientation and input width, and constant weights of the
/// activation type; only View steps lie between them.
struct SharedInputLinears {
  std::vector<size_t> steps;
  /// Output features of each step's weight, and the shared K.
  std::vector<int64_t> rows;
  int64_t k = 0;
};

constexpr size_t kMaxSharedInputLinears = 3;

std::vector<SharedInputLinears> findSharedInputLinears(const EntryPoint &entry);

/// The same for QuantLinear steps without bias whose packed weights share
/// bits, group size, format, scale type and zero points (a quantized
/// layer's q, k, v, or gate and up): one qgemv_multi launch (the
/// tensor-core qgemv over every weight's row tiles) serves a decode row.
std::vector<SharedInputLinears>
findSharedInputQuantLinears(const EntryPoint &entry);

/// An Add step and the RMSNorm step of its result right after it (Views
/// between allowed): f16/bf16 [rows, hidden] of one type, both Add
/// operands and the norm's weight of that type.
struct AddNorm {
  size_t add = 0;
  size_t norm = 0;
  int64_t hidden = 0;
};

std::vector<AddNorm> findAddNorms(const EntryPoint &entry);

/// A SiLU step and the Mul of its result with another row right after it
/// (Views between allowed): f16/bf16 [rows, width] of one type, the SiLU's
/// result read by nothing else. One silu_mul launch computes
/// silu(gate) * up without storing silu(gate) (a quantized gated MLP's
/// activation: its gate and up stay QuantLinear steps, no GatedMLP).
struct SiluMul {
  size_t silu = 0;
  size_t mul = 0;
  uint32_t gate = 0, up = 0, out = 0;
  int64_t width = 0;
};

std::vector<SiluMul> findSiluMuls(const EntryPoint &entry);

/// Two Rope steps (Views between allowed) of [rows, heads, D] f16/bf16
/// inputs of one type and head size, the same cos and sin buffers and the
/// same rotary width.
struct RopePair {
  size_t first = 0;
  size_t second = 0;
  /// The KVCacheWrite step right after (Views aside) that stores the
  /// second Rope's result as keys: the fused kernel does its work too.
  /// npos when there is none.
  size_t kvWrite = static_cast<size_t>(-1);
  bool hasKVWrite() const { return kvWrite != static_cast<size_t>(-1); }
};

/// An AddNorm whose normalized rows the next step (Views aside) reads as x:
/// shared-input linears (q, k, v) or a GatedMLP (gate and up). For a step
/// of one row a gemv with the add and the norm in its prologue (the
/// gemv_multi or gated gemv with add_norm=1) replaces the add_rms_norm
/// launch and the kernel boundary after it.
struct NormFedLinears {
  AddNorm addNorm;
  /// The consumer: the group's first Linear, or the GatedMLP step.
  size_t consumer = 0;
  bool gated = false;
  /// The shared-input linears (empty when gated).
  SharedInputLinears group;
  /// q, k, v whose q and k rotate next (Views aside) in a Rope pair that
  /// stores the keys and v's rows in the cache: the gemv can also do the
  /// rotation and the cache write in its epilogue (GemvOptions::
  /// ropeKVEpilogue). `rope.first` is npos otherwise.
  RopePair rope{static_cast<size_t>(-1), 0};
  bool hasRope() const { return rope.first != static_cast<size_t>(-1); }
};

std::vector<NormFedLinears> findNormFedLinears(const EntryPoint &entry);

/// The same for quantized linears: an AddNorm whose normalized rows a group
/// of findSharedInputQuantLinears (q/k/v, or gate and up) reads; the
/// qgemv_multi with add_norm=1 serves a decode row (never gated, no rope).
std::vector<NormFedLinears> findNormFedQuantLinears(const EntryPoint &entry);

std::vector<RopePair> findRopePairs(const EntryPoint &entry);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_STEPFUSION_H
