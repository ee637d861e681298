//===- PlanPrecision.cpp - Storing a plan's floats in another dtype -------===//
//
// kiln-compile --dtype f16|bf16: the GPU kernels take f16/bf16 operands
// while exporters often write fp32 models, so the plan is converted after
// it is built, before weights are packed and kernels generated. Every f32
// float buffer of every entry point (weights, activations, views, the
// logits, the KV cache, constants: their data is converted) and every f32
// weight of the weight table become the target type; integer buffers stay.
// A Cast whose operand and result now agree becomes a View of its operand
// (the logits, an Output buffer, keep an identity Cast: a view cannot be
// the entry point's output). Weights whose bytes no longer match their
// source's element type are converted and embedded by packWeights.
//
//===----------------------------------------------------------------------===//

#include "kiln/Artifact/ArtifactCompiler.h"

#include "kiln/runtime/Half.h"

#include <cstring>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;

/// `data` (f32 elements) as elements of `dtype`.
static std::vector<uint8_t> convertFloats(const std::vector<uint8_t> &data,
                                          rt::DType dtype) {
  size_t n = data.size() / 4;
  std::vector<uint8_t> out(n * rt::dtypeBytes(dtype));
  for (size_t k = 0; k < n; ++k) {
    float f;
    std::memcpy(&f, data.data() + 4 * k, 4);
    uint16_t h =
        dtype == rt::DType::F16 ? rt::floatToHalf(f) : rt::floatToBf16(f);
    std::memcpy(out.data() + 2 * k, &h, 2);
  }
  return out;
}

LogicalResult kiln::convertPlanPrecision(CompiledModel &model, rt::DType dtype,
                                         Location loc, PrecisionStats &stats) {
  if (dtype != rt::DType::F32 && dtype != rt::DType::F16 &&
      dtype != rt::DType::BF16)
    return emitError(loc) << "cannot store the plan's floats as "
                          << rt::dtypeName(dtype)
                          << " (expected f32, f16 or bf16)";
  stats = PrecisionStats();
  if (dtype == rt::DType::F32)
    return success();

  for (rt::WeightInfo &w : model.weights.weights)
    if (w.dtype == rt::DType::F32) {
      w.dtype = dtype;
      stats.weights += 1;
    }
  for (rt::EntryPoint &entry : model.plan.entries) {
    for (rt::Buffer &b : entry.buffers) {
      if (b.dtype != rt::DType::F32)
        continue;
      if (b.kind == rt::BufferKind::Input)
        return emitError(loc)
               << "entry point '" << entry.name << "': input '" << b.name
               << "' holds f32 values (inputs are integers)";
      if (b.kind == rt::BufferKind::Constant)
        b.constantData = convertFloats(b.constantData, dtype);
      b.dtype = dtype;
      stats.buffers += 1;
    }
    for (rt::Step &s : entry.steps) {
      if (s.kind != rt::OpKind::Cast)
        continue;
      uint32_t x = s.operands[0], y = s.results[0];
      rt::Buffer &result = entry.buffers[y];
      if (entry.buffers[x].dtype != result.dtype ||
          result.kind != rt::BufferKind::Activation)
        continue;
      s.kind = rt::OpKind::View;
      result.kind = rt::BufferKind::View;
      result.source = x;
      stats.views += 1;
    }
  }
  if (model.config.dtype == "f32")
    model.config.dtype = rt::dtypeName(dtype);
  return success();
}

int64_t kiln::keepLogitsInF32(rt::LaunchPlan &plan) {
  int64_t changed = 0;
  for (rt::EntryPoint &entry : plan.entries) {
    uint32_t out = rt::kNoBuffer;
    for (uint32_t id = 0; id < entry.buffers.size(); ++id)
      if (entry.buffers[id].kind == rt::BufferKind::Output)
        out = id;
    if (out == rt::kNoBuffer || entry.buffers[out].dtype == rt::DType::F32)
      continue;
    for (const rt::Step &s : entry.steps)
      if ((s.kind == rt::OpKind::Linear || s.kind == rt::OpKind::QuantLinear) &&
          !s.results.empty() && s.results[0] == out) {
        entry.buffers[out].dtype = rt::DType::F32;
        ++changed;
      }
  }
  return changed;
}
