//===- StepFusion.cpp - Consecutive steps a device may run as one kernel --===//

#include "kiln/runtime/StepFusion.h"

namespace kiln::runtime {

namespace {

/// The weight's (rows, K) when `step` is a bias-free Linear of constant
/// weights in the activation type; (0, 0) otherwise.
std::pair<int64_t, int64_t> plainLinearShape(const EntryPoint &entry,
                                             const Step &step) {
  if (step.kind != OpKind::Linear || step.operands.size() != 2 ||
      step.results.size() != 1)
    return {0, 0};
  const Buffer &x = entry.buffers[step.operands[0]];
  const Buffer &w = entry.buffers[step.operands[1]];
  const Buffer &y = entry.buffers[step.results[0]];
  if (w.kind != BufferKind::Weight || w.shape.size() != 2 ||
      !w.shape[0].isConstant() || !w.shape[1].isConstant() ||
      w.dtype != x.dtype || y.dtype != x.dtype)
    return {0, 0};
  bool transposed = step.getInt(AttrKey::TransposeWeight) != 0;
  int64_t rows = transposed ? w.shape[0].value : w.shape[1].value;
  int64_t k = transposed ? w.shape[1].value : w.shape[0].value;
  return {rows, k};
}

} // namespace

std::vector<SharedInputLinears>
findSharedInputLinears(const EntryPoint &entry) {
  std::vector<SharedInputLinears> groups;
  const std::vector<Step> &steps = entry.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    auto [rows, k] = plainLinearShape(entry, steps[i]);
    if (rows <= 0)
      continue;
    SharedInputLinears group;
    group.steps = {i};
    group.rows = {rows};
    group.k = k;
    size_t j = i + 1;
    for (; j < steps.size() && group.steps.size() < kMaxSharedInputLinears;
         ++j) {
      if (steps[j].kind == OpKind::View)
        continue;
      auto [moreRows, moreK] = plainLinearShape(entry, steps[j]);
      if (moreRows <= 0 || moreK != k ||
          steps[j].operands[0] != steps[i].operands[0] ||
          steps[j].getInt(AttrKey::TransposeWeight) !=
              steps[i].getInt(AttrKey::TransposeWeight))
        break;
      group.steps.push_back(j);
      group.rows.push_back(moreRows);
    }
    if (group.steps.size() >= 2) {
      i = group.steps.back();
      groups.push_back(std::move(group));
    }
  }
  return groups;
}

} // namespace kiln::runtime
