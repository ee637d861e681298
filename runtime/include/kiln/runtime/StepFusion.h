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

std::vector<SharedInputLinears>
findSharedInputLinears(const EntryPoint &entry);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_STEPFUSION_H
