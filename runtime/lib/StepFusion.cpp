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

/// The packed weight's (rows, K) when `step` is a bias-free QuantLinear
/// (x, packed, scales, [zero points]) of constant weights; (0, 0)
/// otherwise.
std::pair<int64_t, int64_t> plainQuantLinearShape(const EntryPoint &entry,
                                                  const Step &step) {
  if (step.kind != OpKind::QuantLinear || step.operands.size() < 3 ||
      step.results.size() != 1 ||
      (step.operands.size() > 4 && step.operands[4] != kNoBuffer))
    return {0, 0};
  const Buffer &x = entry.buffers[step.operands[0]];
  const Buffer &packed = entry.buffers[step.operands[1]];
  const Buffer &y = entry.buffers[step.results[0]];
  if (packed.kind != BufferKind::Weight || packed.shape.size() != 2 ||
      !packed.shape[0].isConstant() || x.shape.empty() ||
      !x.shape.back().isConstant() || y.dtype != x.dtype)
    return {0, 0};
  return {packed.shape[0].value, x.shape.back().value};
}

bool hasZeroPoints(const Step &step) {
  return step.operands.size() > 3 && step.operands[3] != kNoBuffer;
}

/// Whether two linears of the kind the group holds read their weights the
/// same way: orientation for Linear; bits, group, format, scale type and
/// zero points for QuantLinear.
bool sameWeightFormat(const EntryPoint &entry, const Step &a, const Step &b) {
  if (a.kind == OpKind::Linear)
    return a.getInt(AttrKey::TransposeWeight) ==
           b.getInt(AttrKey::TransposeWeight);
  return a.getInt(AttrKey::Bits) == b.getInt(AttrKey::Bits) &&
         a.getInt(AttrKey::GroupSize) == b.getInt(AttrKey::GroupSize) &&
         a.getInt(AttrKey::QuantFormat) == b.getInt(AttrKey::QuantFormat) &&
         entry.buffers[a.operands[2]].dtype ==
             entry.buffers[b.operands[2]].dtype &&
         hasZeroPoints(a) == hasZeroPoints(b);
}

/// The first step at or after `i` that is not a View (steps.size() if none).
size_t skipViews(const std::vector<Step> &steps, size_t i) {
  while (i < steps.size() && steps[i].kind == OpKind::View)
    ++i;
  return i;
}

std::vector<SharedInputLinears> findSharedInputs(const EntryPoint &entry,
                                                 OpKind kind) {
  auto shapeOf = [&](const Step &step) {
    return kind == OpKind::Linear ? plainLinearShape(entry, step)
                                  : plainQuantLinearShape(entry, step);
  };
  std::vector<SharedInputLinears> groups;
  const std::vector<Step> &steps = entry.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    auto [rows, k] = shapeOf(steps[i]);
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
      auto [moreRows, moreK] = shapeOf(steps[j]);
      if (moreRows <= 0 || moreK != k ||
          steps[j].operands[0] != steps[i].operands[0] ||
          !sameWeightFormat(entry, steps[i], steps[j]))
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

} // namespace

std::vector<SharedInputLinears>
findSharedInputLinears(const EntryPoint &entry) {
  return findSharedInputs(entry, OpKind::Linear);
}

std::vector<SharedInputLinears>
findSharedInputQuantLinears(const EntryPoint &entry) {
  return findSharedInputs(entry, OpKind::QuantLinear);
}

/// The constant width of a [rows, width] buffer of `dtype`; 0 otherwise.
static int64_t rowWidth(const EntryPoint &entry, uint32_t id, DType dtype) {
  const Buffer &b = entry.buffers[id];
  if (b.dtype != dtype || b.shape.size() != 2 || !b.shape[1].isConstant())
    return 0;
  return b.shape[1].value;
}

std::vector<AddNorm> findAddNorms(const EntryPoint &entry) {
  std::vector<AddNorm> pairs;
  const std::vector<Step> &steps = entry.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step &add = steps[i];
    if (add.kind != OpKind::Add || add.operands.size() != 2 ||
        add.results.size() != 1)
      continue;
    DType dtype = entry.buffers[add.results[0]].dtype;
    if (dtype != DType::F16 && dtype != DType::BF16)
      continue;
    int64_t hidden = rowWidth(entry, add.results[0], dtype);
    if (hidden <= 0 || rowWidth(entry, add.operands[0], dtype) != hidden ||
        rowWidth(entry, add.operands[1], dtype) != hidden)
      continue;
    size_t j = skipViews(steps, i + 1);
    if (j == steps.size())
      continue;
    const Step &norm = steps[j];
    if (norm.kind != OpKind::RMSNorm || norm.operands.size() != 2 ||
        norm.operands[0] != add.results[0] || norm.results.size() != 1 ||
        norm.getFloat(AttrKey::WeightOffset) != 0.0f ||
        rowWidth(entry, norm.results[0], dtype) != hidden)
      continue;
    const Buffer &weight = entry.buffers[norm.operands[1]];
    if (weight.dtype != dtype || weight.shape.size() != 1)
      continue;
    pairs.push_back({i, j, hidden});
  }
  return pairs;
}

std::vector<SiluMul> findSiluMuls(const EntryPoint &entry) {
  std::vector<SiluMul> pairs;
  const std::vector<Step> &steps = entry.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step &silu = steps[i];
    if (silu.kind != OpKind::SiLU || silu.operands.size() != 1 ||
        silu.results.size() != 1)
      continue;
    uint32_t activated = silu.results[0];
    DType dtype = entry.buffers[activated].dtype;
    int64_t width = rowWidth(entry, activated, dtype);
    if ((dtype != DType::F16 && dtype != DType::BF16) || width <= 0 ||
        rowWidth(entry, silu.operands[0], dtype) != width)
      continue;
    size_t j = skipViews(steps, i + 1);
    if (j == steps.size())
      continue;
    const Step &mul = steps[j];
    if (mul.kind != OpKind::Mul || mul.operands.size() != 2 ||
        mul.results.size() != 1)
      continue;
    int which = mul.operands[0] == activated   ? 0
                : mul.operands[1] == activated ? 1
                                               : -1;
    if (which < 0 || mul.operands[1 - which] == activated)
      continue;
    uint32_t up = mul.operands[1 - which];
    if (rowWidth(entry, up, dtype) != width ||
        rowWidth(entry, mul.results[0], dtype) != width)
      continue;
    // silu(gate) is never stored: nothing else may read it.
    bool readElsewhere = false;
    for (size_t k = 0; k < steps.size() && !readElsewhere; ++k)
      if (k != j)
        for (uint32_t id : steps[k].operands)
          readElsewhere |= id == activated;
    if (readElsewhere || entry.output == activated)
      continue;
    pairs.push_back({i, j, silu.operands[0], up, mul.results[0], width});
  }
  return pairs;
}

namespace {

/// The buffer a View (of a View ...) of `id` aliases.
uint32_t viewRoot(const EntryPoint &entry, uint32_t id) {
  while (entry.buffers[id].kind == BufferKind::View)
    id = entry.buffers[id].source;
  return id;
}

/// The Rope pair (with its cache write) right after q, k, v (Views aside)
/// that rotates q's and k's rows and stores k's and v's: npos in `first`
/// when there is none.
RopePair ropeAfterQKV(const EntryPoint &entry, const SharedInputLinears &qkv,
                      const std::vector<RopePair> &pairs) {
  RopePair none{static_cast<size_t>(-1), 0};
  if (qkv.steps.size() != 3)
    return none;
  size_t next = skipViews(entry.steps, qkv.steps.back() + 1);
  auto root = [&](uint32_t id) { return viewRoot(entry, id); };
  auto result = [&](size_t m) {
    return root(entry.steps[qkv.steps[m]].results[0]);
  };
  for (const RopePair &pair : pairs) {
    if (pair.first != next || !pair.hasKVWrite())
      continue;
    const Step &q = entry.steps[pair.first];
    const Step &k = entry.steps[pair.second];
    const Step &write = entry.steps[pair.kvWrite];
    // The whole head rotates (the epilogue has no pass-through channels).
    if (q.getInt(AttrKey::RotaryDim) !=
        entry.buffers[q.operands[0]].shape[2].value)
      return none;
    if (root(q.operands[0]) == result(0) && root(k.operands[0]) == result(1) &&
        root(write.operands[2]) == result(2))
      return pair;
  }
  return none;
}

} // namespace

/// The step (Views aside) after `pair` that reads its normalized rows as x,
/// where a fused kernel may take the add and norm into its prologue (whose
/// CTA 0 stores the sum while the others still read both operands); npos
/// otherwise.
static size_t normFedConsumer(const EntryPoint &entry, const AddNorm &pair) {
  const Step &add = entry.steps[pair.add];
  const Step &norm = entry.steps[pair.norm];
  if (add.results[0] == add.operands[0] || add.results[0] == add.operands[1])
    return static_cast<size_t>(-1);
  size_t next = skipViews(entry.steps, pair.norm + 1);
  if (next == entry.steps.size() || entry.steps[next].operands.empty() ||
      entry.steps[next].operands[0] != norm.results[0])
    return static_cast<size_t>(-1);
  return next;
}

std::vector<NormFedLinears> findNormFedQuantLinears(const EntryPoint &entry) {
  std::vector<NormFedLinears> out;
  std::vector<SharedInputLinears> groups = findSharedInputQuantLinears(entry);
  for (const AddNorm &pair : findAddNorms(entry)) {
    size_t next = normFedConsumer(entry, pair);
    for (const SharedInputLinears &group : groups)
      if (next != static_cast<size_t>(-1) && group.steps.front() == next &&
          group.k == pair.hidden) {
        NormFedLinears fed;
        fed.addNorm = pair;
        fed.consumer = next;
        fed.group = group;
        out.push_back(fed);
        break;
      }
  }
  return out;
}

std::vector<NormFedLinears> findNormFedLinears(const EntryPoint &entry) {
  std::vector<NormFedLinears> out;
  std::vector<SharedInputLinears> groups = findSharedInputLinears(entry);
  std::vector<RopePair> ropePairs = findRopePairs(entry);
  for (const AddNorm &pair : findAddNorms(entry)) {
    size_t next = normFedConsumer(entry, pair);
    if (next == static_cast<size_t>(-1))
      continue;
    const Step &consumer = entry.steps[next];
    NormFedLinears fed;
    fed.addNorm = pair;
    fed.consumer = next;
    if (consumer.kind == OpKind::GatedMLP) {
      fed.gated = true;
      out.push_back(fed);
      continue;
    }
    for (const SharedInputLinears &group : groups)
      if (group.steps.front() == next && group.k == pair.hidden) {
        fed.group = group;
        fed.rope = ropeAfterQKV(entry, group, ropePairs);
        out.push_back(fed);
        break;
      }
  }
  return out;
}

std::vector<RopePair> findRopePairs(const EntryPoint &entry) {
  std::vector<RopePair> pairs;
  const std::vector<Step> &steps = entry.steps;
  auto rows = [&](const Step &s) -> const Buffer * {
    if (s.kind != OpKind::Rope || s.operands.size() != 3 ||
        s.results.size() != 1)
      return nullptr;
    const Buffer &x = entry.buffers[s.operands[0]];
    if ((x.dtype != DType::F16 && x.dtype != DType::BF16) ||
        x.shape.size() != 3 || !x.shape[1].isConstant() ||
        !x.shape[2].isConstant())
      return nullptr;
    return &x;
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    const Buffer *x = rows(steps[i]);
    if (!x)
      continue;
    size_t j = skipViews(steps, i + 1);
    if (j == steps.size())
      continue;
    const Buffer *x2 = rows(steps[j]);
    if (!x2 || x2->dtype != x->dtype || x2->shape[2] != x->shape[2] ||
        x2->shape[0] != x->shape[0] ||
        steps[j].operands[1] != steps[i].operands[1] ||
        steps[j].operands[2] != steps[i].operands[2] ||
        steps[j].getInt(AttrKey::RotaryDim) !=
            steps[i].getInt(AttrKey::RotaryDim))
      continue;
    RopePair pair{i, j};
    size_t w = j + 1;
    while (w < steps.size() && steps[w].kind == OpKind::View)
      ++w;
    if (w < steps.size() && steps[w].kind == OpKind::KVCacheWrite &&
        steps[w].operands.size() == 4 &&
        steps[w].operands[1] == steps[j].results[0] &&
        entry.buffers[steps[w].operands[2]].dtype == x->dtype &&
        entry.buffers[steps[w].operands[2]].shape == x2->shape)
      pair.kvWrite = w;
    pairs.push_back(pair);
    i = j;
  }
  return pairs;
}

} // namespace kiln::runtime
