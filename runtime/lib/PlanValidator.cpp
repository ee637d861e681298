//===- PlanValidator.cpp - Every rule a launch plan must satisfy ----------===//
//
// A plan comes from a file, so nothing in it is trusted: after validate()
// returns OK a device can index buffers, read attributes and size its
// memory from the shapes without any further check (run-time values, the
// token ids and block tables, are checked by the device against the sizes
// they index). Rules, in order: the buffer table (kinds, dtypes, shapes,
// weight references, constants), the entry point's interface (one input
// per role, one cache, one output, and their shapes against the config),
// then each step (arity, attributes, ids, def-before-use, shapes).
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/ModelConfig.h"
#include "kiln/runtime/WeightTable.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

namespace kiln::runtime {

namespace {

/// Dimensions and element counts a plan may declare: far beyond any model,
/// small enough that products of a few never overflow int64.
constexpr int64_t kMaxDim = int64_t(1) << 40;
constexpr int64_t kMaxElements = int64_t(1) << 48;
constexpr size_t kMaxRank = 8;

struct AttrSpec {
  AttrKey key;
  AttrType type;
  bool required;
};

struct OpSpec {
  size_t minOperands, maxOperands;
  size_t minResults, maxResults;
  std::vector<AttrSpec> attrs;
};

OpSpec specFor(OpKind kind) {
  const size_t many = 64;
  switch (kind) {
  case OpKind::Embedding:
    return {2, 2, 1, 1, {}};
  case OpKind::RotaryTable:
    return {1,
            1,
            2,
            2,
            {{AttrKey::InvFreq, AttrType::F32Array, true},
             {AttrKey::AttentionScaling, AttrType::F32, true}}};
  case OpKind::Cast:
  case OpKind::View:
  case OpKind::SiLU:
  case OpKind::GELU:
  case OpKind::GeluTanh:
  case OpKind::ReLU:
  case OpKind::Tanh:
    return {1, 1, 1, 1, {}};
  case OpKind::RMSNorm:
    return {2,
            2,
            1,
            1,
            {{AttrKey::Epsilon, AttrType::F32, true},
             {AttrKey::WeightOffset, AttrType::F32, false}}};
  case OpKind::LayerNorm:
    return {2, 3, 1, 1, {{AttrKey::Epsilon, AttrType::F32, true}}};
  case OpKind::Linear:
    return {2, 3, 1, 1, {{AttrKey::TransposeWeight, AttrType::I64, false}}};
  case OpKind::Rope:
    return {3, 3, 1, 1, {{AttrKey::RotaryDim, AttrType::I64, true}}};
  case OpKind::QuantLinear:
    return {5,
            5,
            1,
            1,
            {{AttrKey::Bits, AttrType::I64, true},
             {AttrKey::GroupSize, AttrType::I64, true},
             {AttrKey::QuantFormat, AttrType::I64, true}}};
  case OpKind::SparseLinear:
    return {4, 4, 1, 1, {}};
  case OpKind::KVCacheWrite:
    return {4, 4, 0, 0, {{AttrKey::Layer, AttrType::I64, true}}};
  case OpKind::PagedAttention:
    return {5,
            5,
            1,
            1,
            {{AttrKey::Layer, AttrType::I64, true},
             {AttrKey::Scale, AttrType::F32, true},
             {AttrKey::NumHeads, AttrType::I64, true},
             {AttrKey::KVHeads, AttrType::I64, true},
             {AttrKey::SlidingWindow, AttrType::I64, false},
             {AttrKey::Softcap, AttrType::F32, false}}};
  case OpKind::Add:
  case OpKind::Sub:
  case OpKind::Mul:
  case OpKind::Div:
    return {2, 2, 1, 1, {}};
  case OpKind::GatedMLP:
    return {4,
            4,
            1,
            1,
            {{AttrKey::Activation, AttrType::I64, true},
             {AttrKey::TransposeWeight, AttrType::I64, false}}};
  case OpKind::GatherLastTokens:
    return {2, 2, 1, 1, {}};
  case OpKind::Split:
    return {1,
            1,
            1,
            many,
            {{AttrKey::Axis, AttrType::I64, true},
             {AttrKey::Sizes, AttrType::I64Array, true}}};
  case OpKind::Slice:
    return {1,
            1,
            1,
            1,
            {{AttrKey::Axes, AttrType::I64Array, true},
             {AttrKey::Starts, AttrType::I64Array, true},
             {AttrKey::Steps, AttrType::I64Array, true}}};
  }
  return {0, 0, 0, 0, {}};
}

/// Operand positions that may be kNoBuffer.
bool optionalOperand(OpKind kind, size_t index) {
  return ((kind == OpKind::LayerNorm || kind == OpKind::Linear) &&
          index == 2) ||
         (kind == OpKind::QuantLinear && index >= 3) ||
         (kind == OpKind::SparseLinear && index == 3);
}

/// A symbolic product: a constant factor times symbolic atoms.
struct Product {
  int64_t constant = 1;
  std::multiset<std::pair<int, int64_t>> atoms;
  bool operator==(const Product &o) const {
    return constant == o.constant && atoms == o.atoms;
  }
};

Product productOf(const Shape &shape, size_t from = 0) {
  Product p;
  for (size_t i = from; i < shape.size(); ++i) {
    if (shape[i].isConstant())
      p.constant *= shape[i].value;
    else
      p.atoms.insert({static_cast<int>(shape[i].sym), shape[i].value});
  }
  // A zero-sized tensor is zero whatever its symbols.
  if (p.constant == 0)
    p.atoms.clear();
  return p;
}

class Validator {
public:
  Validator(EntryPoint &entry, const WeightTable &weights,
            const ModelConfig &config)
      : e(entry), weights(weights), config(config) {}

  Status run();

private:
  Status fail(const std::string &what) const {
    return makeError(StatusCode::DataLoss, "launch plan: entry point '",
                     e.name, "': ", what);
  }
  Status stepFail(size_t index, const Step &s, const std::string &what) const {
    const char *name = opKindName(s.kind);
    return fail("step " + std::to_string(index) + " (" +
                (name ? name : "?") + "): " + what);
  }
  std::string describe(uint32_t id) const {
    const Buffer &b = e.buffers[id];
    return "%" + std::to_string(id) + " " + shapeString(b.shape) +
           dtypeName(b.dtype);
  }

  Status checkBuffer(uint32_t id);
  Status checkInterface();
  Status checkStep(size_t index, const Step &s);
  Status checkShapes(size_t index, const Step &s);

  const Shape &shape(uint32_t id) const { return e.buffers[id].shape; }
  DType dtype(uint32_t id) const { return e.buffers[id].dtype; }

  EntryPoint &e;
  const WeightTable &weights;
  const ModelConfig &config;
  std::vector<bool> defined;
};

Status Validator::checkBuffer(uint32_t id) {
  const Buffer &b = e.buffers[id];
  std::string where = "buffer %" + std::to_string(id) +
                      (b.name.empty() ? "" : " '" + b.name + "'");
  if (b.shape.size() > kMaxRank)
    return fail(where + ": rank " + std::to_string(b.shape.size()) +
                " exceeds " + std::to_string(kMaxRank));
  int64_t constantElements = 1;
  for (const Dim &d : b.shape) {
    if (d.isConstant() && (d.value < 0 || d.value > kMaxDim))
      return fail(where + ": dimension " + std::to_string(d.value) +
                  " out of range");
    if (!d.isConstant() && (d.value < 0 || d.value > 1))
      return fail(where + ": symbolic dimension offset " +
                  std::to_string(d.value) + " (only +0 and +1 are used)");
    if (d.isConstant()) {
      constantElements *= std::max<int64_t>(d.value, 1);
      if (constantElements > kMaxElements)
        return fail(where + ": too many elements");
    }
  }
  auto allConstant = [&] {
    return std::all_of(b.shape.begin(), b.shape.end(),
                       [](const Dim &d) { return d.isConstant(); });
  };
  switch (b.kind) {
  case BufferKind::Input:
    if (b.role == InputRole::None)
      return fail(where + ": input without a role");
    break;
  case BufferKind::Weight: {
    if (b.weightIndex >= weights.size())
      return fail(where + ": weight index " + std::to_string(b.weightIndex) +
                  " is outside the weight table of " +
                  std::to_string(weights.size()));
    const WeightInfo &w = weights[b.weightIndex];
    bool same = allConstant() && b.dtype == w.dtype &&
                b.shape.size() == w.shape.size();
    for (size_t i = 0; same && i < w.shape.size(); ++i)
      same = b.shape[i].value == w.shape[i];
    if (!same) {
      std::string ws = "[";
      for (size_t i = 0; i < w.shape.size(); ++i)
        ws += (i ? ", " : "") + std::to_string(w.shape[i]);
      return fail(where + ": " + shapeString(b.shape) + dtypeName(b.dtype) +
                  " does not match weight '" + w.name + "' " + ws + "]" +
                  dtypeName(w.dtype));
    }
    break;
  }
  case BufferKind::Constant: {
    if (!allConstant())
      return fail(where + ": a constant must have a constant shape");
    int64_t n = 1;
    for (const Dim &d : b.shape)
      n *= d.value;
    if ((int64_t)b.constantData.size() != n * dtypeBytes(b.dtype))
      return fail(where + ": " + std::to_string(b.constantData.size()) +
                  " bytes of data for " + shapeString(b.shape) +
                  dtypeName(b.dtype));
    break;
  }
  case BufferKind::View:
    if (b.source >= e.buffers.size() || b.source == id)
      return fail(where + ": view source %" + std::to_string(b.source) +
                  " is not another buffer");
    break;
  case BufferKind::Activation:
  case BufferKind::KVCache:
  case BufferKind::Output:
    break;
  }
  if (b.kind != BufferKind::Input && b.role != InputRole::None)
    return fail(where + ": only inputs have a role");
  if (b.dtype == DType::U8 && b.kind != BufferKind::Weight)
    return fail(where + ": u8 (packed weight bytes) is for weights only");
  return Status::ok();
}

Status Validator::checkInterface() {
  bool seen[kNumInputRoles] = {};
  bool haveCache = false, haveOutput = false;
  for (uint32_t id = 0; id < e.buffers.size(); ++id) {
    const Buffer &b = e.buffers[id];
    if (b.kind == BufferKind::Input) {
      int r = static_cast<int>(b.role) - 1;
      if (seen[r])
        return fail(std::string("two inputs for ") + inputRoleName(b.role));
      seen[r] = true;
      e.inputs[r] = id;
    } else if (b.kind == BufferKind::KVCache) {
      if (haveCache)
        return fail("more than one KV cache buffer");
      haveCache = true;
      e.kvCache = id;
    } else if (b.kind == BufferKind::Output) {
      if (haveOutput)
        return fail("more than one output buffer");
      haveOutput = true;
      e.output = id;
    }
  }
  for (int r = 0; r < kNumInputRoles; ++r)
    if (!seen[r])
      return fail(std::string("no input for ") +
                  inputRoleName(static_cast<InputRole>(r + 1)));
  if (!haveCache)
    return fail("no KV cache buffer");
  if (!haveOutput)
    return fail("no output (logits) buffer");

  auto T = Dim::symbol(Sym::T), N = Dim::symbol(Sym::N),
       N1 = Dim::symbol(Sym::N, 1), M = Dim::symbol(Sym::M);
  const Shape expected[kNumInputRoles] = {{T}, {T}, {N1}, {N, M}, {N}, {T}};
  for (int r = 0; r < kNumInputRoles; ++r) {
    uint32_t id = e.inputs[r];
    if (shape(id) != expected[r] || isFloatDType(dtype(id)))
      return fail(std::string("input ") +
                  inputRoleName(static_cast<InputRole>(r + 1)) + " is " +
                  describe(id) + ", expected integers of shape " +
                  shapeString(expected[r]));
  }
  Shape cache = {Dim::constant(config.numLayers), Dim::symbol(Sym::P),
                 Dim::constant(2),
                 Dim::constant(config.numKVHeads),
                 Dim::constant(config.blockSize),
                 Dim::constant(config.headDim)};
  if (shape(e.kvCache) != cache || !isFloatDType(dtype(e.kvCache)))
    return fail("KV cache is " + describe(e.kvCache) +
                ", expected floats of shape " + shapeString(cache) +
                " (from the model config)");
  Shape logits = {e.logits == LogitsMode::All ? T : N,
                  Dim::constant(config.vocabSize)};
  if (shape(e.output) != logits || !isFloatDType(dtype(e.output)))
    return fail("logits are " + describe(e.output) +
                ", expected floats of shape " + shapeString(logits));
  return Status::ok();
}

Status Validator::checkStep(size_t index, const Step &s) {
  OpSpec spec = specFor(s.kind);
  if (s.operands.size() < spec.minOperands ||
      s.operands.size() > spec.maxOperands)
    return stepFail(index, s,
                    std::to_string(s.operands.size()) + " operands, expected " +
                        std::to_string(spec.minOperands) +
                        (spec.maxOperands != spec.minOperands
                             ? " to " + std::to_string(spec.maxOperands)
                             : ""));
  if (s.results.size() < spec.minResults || s.results.size() > spec.maxResults)
    return stepFail(index, s,
                    std::to_string(s.results.size()) + " results, expected " +
                        std::to_string(spec.minResults) +
                        (spec.maxResults != spec.minResults
                             ? " to " + std::to_string(spec.maxResults)
                             : ""));
  // Attributes: known for this op, of their type, required ones present.
  for (size_t i = 0; i < s.attrs.size(); ++i) {
    const Attr &a = s.attrs[i];
    auto it = std::find_if(spec.attrs.begin(), spec.attrs.end(),
                           [&](const AttrSpec &as) { return as.key == a.key; });
    if (it == spec.attrs.end())
      return stepFail(index, s,
                      std::string("unexpected attribute ") +
                          attrKeyName(a.key));
    if (it->type != a.type)
      return stepFail(index, s,
                      std::string("attribute ") + attrKeyName(a.key) +
                          " has the wrong type");
    for (size_t j = 0; j < i; ++j)
      if (s.attrs[j].key == a.key)
        return stepFail(index, s,
                        std::string("duplicate attribute ") +
                            attrKeyName(a.key));
    if (a.type == AttrType::F32 && !std::isfinite(a.f))
      return stepFail(index, s,
                      std::string("attribute ") + attrKeyName(a.key) +
                          " is not finite");
    for (float f : a.floats)
      if (!std::isfinite(f))
        return stepFail(index, s,
                        std::string("attribute ") + attrKeyName(a.key) +
                            " has a non-finite element");
  }
  for (const AttrSpec &as : spec.attrs)
    if (as.required && !s.has(as.key))
      return stepFail(index, s,
                      std::string("missing attribute ") + attrKeyName(as.key));

  // Ids and def-before-use.
  for (size_t k = 0; k < s.operands.size(); ++k) {
    uint32_t id = s.operands[k];
    if (id == kNoBuffer && optionalOperand(s.kind, k))
      continue;
    if (id >= e.buffers.size())
      return stepFail(index, s,
                      "operand " + std::to_string(k) + " is buffer %" +
                          std::to_string(id) + ", outside the " +
                          std::to_string(e.buffers.size()) + " buffers");
    if (!defined[id])
      return stepFail(index, s,
                      "operand " + std::to_string(k) + " (%" +
                          std::to_string(id) + ") is read before any step "
                                               "writes it");
  }
  for (size_t k = 0; k < s.results.size(); ++k) {
    uint32_t id = s.results[k];
    if (id >= e.buffers.size())
      return stepFail(index, s,
                      "result " + std::to_string(k) + " is buffer %" +
                          std::to_string(id) + ", outside the " +
                          std::to_string(e.buffers.size()) + " buffers");
    const Buffer &b = e.buffers[id];
    if (b.kind != BufferKind::Activation && b.kind != BufferKind::View &&
        b.kind != BufferKind::Output)
      return stepFail(index, s,
                      std::string("result %") + std::to_string(id) + " is a " +
                          bufferKindName(b.kind) + " buffer");
    if (defined[id])
      return stepFail(index, s,
                      "result %" + std::to_string(id) +
                          " is written a second time");
    if ((b.kind == BufferKind::View) != (s.kind == OpKind::View))
      return stepFail(index, s,
                      "view buffers are written by View steps, and only "
                      "those");
    if (b.kind == BufferKind::View && b.source != s.operands[0])
      return stepFail(index, s,
                      "view %" + std::to_string(id) + " is of %" +
                          std::to_string(b.source) + ", not of the operand");
    defined[id] = true;
  }
  return checkShapes(index, s);
}

Status Validator::checkShapes(size_t index, const Step &s) {
  auto bad = [&](const std::string &what) { return stepFail(index, s, what); };
  auto op = [&](size_t k) { return s.operands[k]; };
  auto res = [&](size_t k) { return s.results[k]; };
  auto isFloat = [&](uint32_t id) { return isFloatDType(dtype(id)); };
  auto requireFloat = [&](std::initializer_list<uint32_t> ids) -> Status {
    for (uint32_t id : ids)
      if (id != kNoBuffer && !isFloat(id))
        return bad(describe(id) + " must hold floats");
    return Status::ok();
  };
  auto constDim = [&](uint32_t id, size_t axis) -> int64_t {
    const Dim &d = shape(id)[axis];
    return d.isConstant() ? d.value : -1;
  };
  auto withLast = [](Shape sh, Dim last) {
    sh.back() = last;
    return sh;
  };
  auto expectShape = [&](uint32_t id, const Shape &want) -> Status {
    if (shape(id) != want)
      return bad(describe(id) + " should have shape " + shapeString(want));
    return Status::ok();
  };

  switch (s.kind) {
  case OpKind::Embedding: {
    uint32_t table = op(0), ids = op(1), out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({table, out}));
    if (shape(table).size() != 2 || constDim(table, 0) < 0 ||
        constDim(table, 1) < 0)
      return bad("table " + describe(table) + " must be a constant matrix");
    if (isFloat(ids))
      return bad("ids " + describe(ids) + " must be integers");
    Shape want = shape(ids);
    want.push_back(shape(table)[1]);
    return expectShape(out, want);
  }
  case OpKind::RotaryTable: {
    uint32_t pos = op(0);
    if (isFloat(pos) || shape(pos).size() != 1)
      return bad("positions " + describe(pos) + " must be a vector of "
                                                "integers");
    const Attr *f = s.find(AttrKey::InvFreq);
    if (f->floats.empty())
      return bad("inv_freq is empty");
    KILN_RETURN_IF_ERROR(requireFloat({res(0), res(1)}));
    Shape want = {shape(pos)[0],
                  Dim::constant(2 * (int64_t)f->floats.size())};
    KILN_RETURN_IF_ERROR(expectShape(res(0), want));
    return expectShape(res(1), want);
  }
  case OpKind::Cast:
  case OpKind::SiLU:
  case OpKind::GELU:
  case OpKind::GeluTanh:
  case OpKind::ReLU:
  case OpKind::Tanh:
    KILN_RETURN_IF_ERROR(requireFloat({op(0), res(0)}));
    return expectShape(res(0), shape(op(0)));
  case OpKind::RMSNorm:
  case OpKind::LayerNorm: {
    uint32_t x = op(0), w = op(1), out = res(0);
    uint32_t bias = s.operands.size() > 2 ? op(2) : kNoBuffer;
    KILN_RETURN_IF_ERROR(requireFloat({x, w, bias, out}));
    if (shape(x).empty())
      return bad("input " + describe(x) + " must have rank >= 1");
    Shape row = {shape(x).back()};
    KILN_RETURN_IF_ERROR(expectShape(w, row));
    if (bias != kNoBuffer)
      KILN_RETURN_IF_ERROR(expectShape(bias, row));
    return expectShape(out, shape(x));
  }
  case OpKind::Linear: {
    uint32_t x = op(0), w = op(1), out = res(0);
    uint32_t bias = s.operands.size() > 2 ? op(2) : kNoBuffer;
    KILN_RETURN_IF_ERROR(requireFloat({x, w, bias, out}));
    bool t = s.getInt(AttrKey::TransposeWeight) != 0;
    if (shape(x).empty() || shape(w).size() != 2 || constDim(w, 0) < 0 ||
        constDim(w, 1) < 0)
      return bad("expected an input of rank >= 1 and a constant weight "
                 "matrix, got " +
                 describe(x) + " and " + describe(w));
    if (shape(w)[t ? 1 : 0] != shape(x).back())
      return bad("weight " + describe(w) + (t ? " (transposed)" : "") +
                 " does not take the " + shapeString({shape(x).back()}) +
                 " features of " + describe(x));
    Dim n = shape(w)[t ? 0 : 1];
    if (bias != kNoBuffer)
      KILN_RETURN_IF_ERROR(expectShape(bias, {n}));
    return expectShape(out, withLast(shape(x), n));
  }
  case OpKind::QuantLinear: {
    // docs/Quantization.md: packed [N, K * bits / 8] u8, scales [N, G]
    // floats, zero points [N, G] u8, G = K / group_size.
    uint32_t x = op(0), q = op(1), sc = op(2), zp = op(3), bias = op(4),
             out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({x, sc, bias, out}));
    int64_t bits = s.getInt(AttrKey::Bits),
            group = s.getInt(AttrKey::GroupSize);
    int64_t format = s.getInt(AttrKey::QuantFormat);
    if (format != (int64_t)QuantFormat::Int &&
        format != (int64_t)QuantFormat::FP8E4M3)
      return bad("unknown quant_format " + std::to_string(format));
    if (!(bits == 4 || bits == 8) ||
        (format == (int64_t)QuantFormat::FP8E4M3 && bits != 8))
      return bad("bits " + std::to_string(bits) + " is not served for " +
                 (format == (int64_t)QuantFormat::Int ? "integers" : "fp8"));
    if (format == (int64_t)QuantFormat::FP8E4M3 && zp != kNoBuffer)
      return bad("fp8 weights have no zero points");
    if (shape(x).empty() || !shape(x).back().isConstant())
      return bad("input " + describe(x) + " needs a constant feature size");
    int64_t k = shape(x).back().value;
    if (group <= 0 || k % group != 0 || (k * bits) % 8 != 0)
      return bad("group_size " + std::to_string(group) + " does not divide " +
                 "the " + std::to_string(k) +
                 " input features into whole "
                 "bytes");
    if (dtype(q) != DType::U8 || shape(q).size() != 2 || constDim(q, 0) < 0 ||
        constDim(q, 1) != k * bits / 8)
      return bad("packed weight " + describe(q) + " should be [N, " +
                 std::to_string(k * bits / 8) + "]u8");
    Dim n = shape(q)[0];
    Shape groups = {n, Dim::constant(k / group)};
    KILN_RETURN_IF_ERROR(expectShape(sc, groups));
    if (zp != kNoBuffer) {
      if (dtype(zp) != DType::U8)
        return bad("zero points " + describe(zp) + " must be u8");
      KILN_RETURN_IF_ERROR(expectShape(zp, groups));
    }
    if (bias != kNoBuffer)
      KILN_RETURN_IF_ERROR(expectShape(bias, {n}));
    return expectShape(out, withLast(shape(x), n));
  }
  case OpKind::SparseLinear: {
    // 2:4 along K: values [N, K / 2] floats, metadata [N, K / 8] u8 (two
    // 2-bit positions per group of four).
    uint32_t x = op(0), v = op(1), meta = op(2), bias = op(3), out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({x, v, bias, out}));
    if (shape(x).empty() || !shape(x).back().isConstant() ||
        shape(x).back().value % 8 != 0)
      return bad("input " + describe(x) +
                 " needs a constant feature size, a multiple of 8");
    int64_t k = shape(x).back().value;
    if (shape(v).size() != 2 || constDim(v, 0) < 0 || constDim(v, 1) != k / 2)
      return bad("values " + describe(v) + " should be [N, " +
                 std::to_string(k / 2) + "]");
    Dim n = shape(v)[0];
    if (dtype(meta) != DType::U8)
      return bad("metadata " + describe(meta) + " must be u8");
    KILN_RETURN_IF_ERROR(expectShape(meta, {n, Dim::constant(k / 8)}));
    if (bias != kNoBuffer)
      KILN_RETURN_IF_ERROR(expectShape(bias, {n}));
    return expectShape(out, withLast(shape(x), n));
  }
  case OpKind::View:
    if (!(productOf(shape(op(0))) == productOf(shape(res(0)))))
      return bad("view " + describe(res(0)) + " does not hold the elements "
                                              "of " +
                 describe(op(0)));
    if (dtypeBytes(dtype(op(0))) != dtypeBytes(dtype(res(0))) ||
        isFloat(op(0)) != isFloat(res(0)))
      return bad("view changes the element type");
    return Status::ok();
  case OpKind::Rope: {
    uint32_t x = op(0), c = op(1), sn = op(2), out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({x, c, sn, out}));
    int64_t rot = s.getInt(AttrKey::RotaryDim);
    if (shape(x).size() != 3 || constDim(x, 2) < 0)
      return bad("input " + describe(x) + " must be [S, heads, head_dim]");
    if (rot <= 0 || rot % 2 || rot > constDim(x, 2))
      return bad("rotary_dim " + std::to_string(rot) +
                 " must be even, positive and at most the head size");
    Shape table = {shape(x)[0], Dim::constant(rot)};
    KILN_RETURN_IF_ERROR(expectShape(c, table));
    KILN_RETURN_IF_ERROR(expectShape(sn, table));
    return expectShape(out, shape(x));
  }
  case OpKind::KVCacheWrite: {
    uint32_t cache = op(0), k = op(1), v = op(2), slots = op(3);
    if (cache != e.kvCache)
      return bad("operand 0 must be the KV cache");
    KILN_RETURN_IF_ERROR(requireFloat({k, v}));
    int64_t layer = s.getInt(AttrKey::Layer);
    if (layer < 0 || layer >= config.numLayers)
      return bad("layer " + std::to_string(layer) + " is outside the " +
                 std::to_string(config.numLayers) + " layers");
    if (isFloat(slots) || shape(slots).size() != 1)
      return bad("slot_mapping " + describe(slots) + " must be a vector of "
                                                     "integers");
    Shape kv = {shape(slots)[0], Dim::constant(config.numKVHeads),
                Dim::constant(config.headDim)};
    KILN_RETURN_IF_ERROR(expectShape(k, kv));
    return expectShape(v, kv);
  }
  case OpKind::PagedAttention: {
    uint32_t q = op(0), cache = op(1), tables = op(2), ctx = op(3),
             qsl = op(4), out = res(0);
    if (cache != e.kvCache)
      return bad("operand 1 must be the KV cache");
    KILN_RETURN_IF_ERROR(requireFloat({q, out}));
    int64_t layer = s.getInt(AttrKey::Layer);
    if (layer < 0 || layer >= config.numLayers)
      return bad("layer " + std::to_string(layer) + " is outside the " +
                 std::to_string(config.numLayers) + " layers");
    int64_t heads = s.getInt(AttrKey::NumHeads),
            kvHeads = s.getInt(AttrKey::KVHeads);
    if (kvHeads != config.numKVHeads || heads <= 0 || heads % kvHeads)
      return bad("num_heads " + std::to_string(heads) + " and kv_heads " +
                 std::to_string(kvHeads) + " do not fit a cache of " +
                 std::to_string(config.numKVHeads) + " KV heads");
    if (shape(q).size() != 3 || shape(q)[1] != Dim::constant(heads) ||
        shape(q)[2] != Dim::constant(config.headDim))
      return bad("query " + describe(q) + " must be [S, " +
                 std::to_string(heads) + ", " +
                 std::to_string(config.headDim) + "]");
    if (isFloat(tables) || isFloat(ctx) || isFloat(qsl) ||
        shape(tables).size() != 2 || shape(ctx).size() != 1 ||
        shape(qsl).size() != 1 || shape(tables)[0] != shape(ctx)[0] ||
        shape(ctx)[0].isConstant() ||
        shape(qsl)[0] != Dim::symbol(shape(ctx)[0].sym, 1))
      return bad("block_tables, context_lens and query_start_loc must be "
                 "integers of shapes [N, M], [N], [N+1]");
    if (s.has(AttrKey::SlidingWindow) &&
        s.getInt(AttrKey::SlidingWindow) <= 0)
      return bad("sliding_window must be positive");
    if (s.has(AttrKey::Softcap) && !(s.getFloat(AttrKey::Softcap) > 0))
      return bad("softcap must be positive");
    return expectShape(out, shape(q));
  }
  case OpKind::Add:
  case OpKind::Sub:
  case OpKind::Mul:
  case OpKind::Div: {
    uint32_t a = op(0), b = op(1), out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({a, b, out}));
    const Shape &sa = shape(a), &sb = shape(b);
    size_t rank = std::max(sa.size(), sb.size());
    Shape want(rank);
    for (size_t i = 0; i < rank; ++i) {
      const Dim one = Dim::constant(1);
      Dim da = i < rank - sa.size() ? one : sa[i - (rank - sa.size())];
      Dim db = i < rank - sb.size() ? one : sb[i - (rank - sb.size())];
      if (da == db || db == one)
        want[i] = da;
      else if (da == one)
        want[i] = db;
      else
        return bad("cannot broadcast " + describe(a) + " with " +
                   describe(b));
    }
    return expectShape(out, want);
  }
  case OpKind::GatedMLP: {
    uint32_t x = op(0), g = op(1), u = op(2), d = op(3), out = res(0);
    KILN_RETURN_IF_ERROR(requireFloat({x, g, u, d, out}));
    int64_t act = s.getInt(AttrKey::Activation);
    if (act < 1 || act > 4)
      return bad("unknown activation " + std::to_string(act));
    bool t = s.getInt(AttrKey::TransposeWeight) != 0;
    for (uint32_t w : {g, u, d})
      if (shape(w).size() != 2 || constDim(w, 0) < 0 || constDim(w, 1) < 0)
        return bad("weight " + describe(w) + " must be a constant matrix");
    if (shape(x).empty())
      return bad("input " + describe(x) + " must have rank >= 1");
    Dim k = shape(x).back();
    auto in = [&](uint32_t w) { return shape(w)[t ? 1 : 0]; };
    auto outDim = [&](uint32_t w) { return shape(w)[t ? 0 : 1]; };
    if (in(g) != k || in(u) != k || outDim(g) != outDim(u) ||
        in(d) != outDim(g))
      return bad("weights " + describe(g) + ", " + describe(u) + ", " +
                 describe(d) + (t ? " (transposed)" : "") +
                 " do not chain from the features of " + describe(x));
    return expectShape(out, withLast(shape(x), outDim(d)));
  }
  case OpKind::GatherLastTokens: {
    uint32_t x = op(0), qsl = op(1), out = res(0);
    if (isFloat(qsl) || shape(qsl).size() != 1 || shape(qsl)[0].isConstant() ||
        shape(qsl)[0].value != 1)
      return bad("query_start_loc " + describe(qsl) + " must be [N+1] "
                                                      "integers");
    if (shape(x).empty() || shape(x)[0].isConstant())
      return bad("input " + describe(x) + " must have token rows");
    if (isFloat(x) != isFloat(out))
      return bad("result changes between floats and integers");
    Shape want = shape(x);
    want[0] = Dim::symbol(shape(qsl)[0].sym);
    return expectShape(out, want);
  }
  case OpKind::Split: {
    uint32_t x = op(0);
    int64_t axis = s.getInt(AttrKey::Axis);
    const std::vector<int64_t> &sizes = s.find(AttrKey::Sizes)->ints;
    if (axis < 0 || axis >= (int64_t)shape(x).size() || constDim(x, axis) < 0)
      return bad("axis " + std::to_string(axis) + " is not a constant "
                                                  "dimension of " +
                 describe(x));
    if (sizes.size() != s.results.size())
      return bad(std::to_string(sizes.size()) + " sizes for " +
                 std::to_string(s.results.size()) + " results");
    int64_t total = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (sizes[k] < 0 || sizes[k] > kMaxDim)
        return bad("split size " + std::to_string(sizes[k]) +
                   " out of range");
      total += sizes[k];
      Shape want = shape(x);
      want[axis] = Dim::constant(sizes[k]);
      KILN_RETURN_IF_ERROR(expectShape(res(k), want));
      if (isFloat(res(k)) != isFloat(x))
        return bad("result changes between floats and integers");
    }
    if (total != constDim(x, axis))
      return bad("sizes add up to " + std::to_string(total) + ", not " +
                 std::to_string(constDim(x, axis)));
    return Status::ok();
  }
  case OpKind::Slice: {
    uint32_t x = op(0), out = res(0);
    const std::vector<int64_t> &axes = s.find(AttrKey::Axes)->ints,
                               &starts = s.find(AttrKey::Starts)->ints,
                               &steps = s.find(AttrKey::Steps)->ints;
    if (axes.size() != starts.size() || axes.size() != steps.size())
      return bad("axes, starts and steps differ in length");
    if (shape(out).size() != shape(x).size() || isFloat(out) != isFloat(x))
      return bad("result " + describe(out) + " is not a slice of " +
                 describe(x));
    std::vector<bool> sliced(shape(x).size(), false);
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t axis = axes[k];
      if (axis < 0 || axis >= (int64_t)shape(x).size() || sliced[axis] ||
          constDim(x, axis) < 0 || constDim(out, axis) < 0)
        return bad("axis " + std::to_string(axis) + " is not a distinct "
                                                    "constant dimension");
      sliced[axis] = true;
      int64_t dim = constDim(x, axis), count = constDim(out, axis);
      if (steps[k] <= 0 || steps[k] > kMaxDim || starts[k] < 0 ||
          (count > 0 &&
           (starts[k] >= dim || (count - 1) > (dim - 1 - starts[k]) / steps[k])))
        return bad("slice of " + std::to_string(count) + " from " +
                   std::to_string(starts[k]) + " by " +
                   std::to_string(steps[k]) + " leaves the " +
                   std::to_string(dim) + " elements of axis " +
                   std::to_string(axis));
    }
    for (size_t d = 0; d < sliced.size(); ++d)
      if (!sliced[d] && shape(x)[d] != shape(out)[d])
        return bad("result " + describe(out) + " is not a slice of " +
                   describe(x));
    return Status::ok();
  }
  }
  return bad("unknown op");
}

Status Validator::run() {
  if (e.name.empty())
    return fail("entry point without a name");
  if (e.logits != LogitsMode::Last && e.logits != LogitsMode::All)
    return fail("unknown logits mode");
  for (uint32_t id = 0; id < e.buffers.size(); ++id)
    KILN_RETURN_IF_ERROR(checkBuffer(id));
  KILN_RETURN_IF_ERROR(checkInterface());
  defined.assign(e.buffers.size(), false);
  for (uint32_t id = 0; id < e.buffers.size(); ++id) {
    BufferKind k = e.buffers[id].kind;
    defined[id] = k == BufferKind::Input || k == BufferKind::Weight ||
                  k == BufferKind::Constant || k == BufferKind::KVCache;
  }
  for (size_t i = 0; i < e.steps.size(); ++i)
    KILN_RETURN_IF_ERROR(checkStep(i, e.steps[i]));
  if (!defined[e.output])
    return fail("no step writes the logits");
  return Status::ok();
}

} // namespace

Status LaunchPlan::validate(const WeightTable &weights,
                            const ModelConfig &config) {
  if (entries.empty())
    return makeError(StatusCode::DataLoss, "launch plan: no entry points");
  for (size_t i = 0; i < entries.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (entries[j].name == entries[i].name)
        return makeError(StatusCode::DataLoss,
                         "launch plan: duplicate entry point '",
                         entries[i].name, "'");
    KILN_RETURN_IF_ERROR(Validator(entries[i], weights, config).run());
  }
  return Status::ok();
}

} // namespace kiln::runtime
