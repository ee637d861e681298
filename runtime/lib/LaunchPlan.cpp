//===- LaunchPlan.cpp - Names, encoding and listing of launch plans -------===//
//
// The validation rules live in PlanValidator.cpp.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/LaunchPlan.h"

#include "ByteStream.h"

#include <cstdio>
#include <sstream>

namespace kiln::runtime {

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::U8:
    return "u8";
  }
  return "unknown";
}

int64_t dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::I64:
    return 8;
  case DType::U8:
    return 1;
  }
  return 0;
}

bool isFloatDType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

StatusOr<DType> parseDType(std::string_view name) {
  for (DType d :
       {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8})
    if (name == dtypeName(d))
      return d;
  return makeError(StatusCode::InvalidArgument, "unknown dtype '", name, "'");
}

const char *symName(Sym sym) {
  switch (sym) {
  case Sym::None:
    return "";
  case Sym::T:
    return "T";
  case Sym::N:
    return "N";
  case Sym::M:
    return "M";
  case Sym::P:
    return "P";
  }
  return "?";
}

std::string shapeString(const Shape &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    const Dim &d = shape[i];
    if (d.isConstant()) {
      out += std::to_string(d.value);
    } else {
      out += symName(d.sym);
      if (d.value > 0)
        out += "+" + std::to_string(d.value);
      else if (d.value < 0)
        out += std::to_string(d.value);
    }
  }
  return out + "]";
}

int64_t SymbolValues::get(Sym s) const {
  switch (s) {
  case Sym::T:
    return T;
  case Sym::N:
    return N;
  case Sym::M:
    return M;
  case Sym::P:
    return P;
  case Sym::None:
    break;
  }
  return 0;
}

std::vector<int64_t> SymbolValues::resolve(const Shape &shape) const {
  std::vector<int64_t> sizes;
  sizes.reserve(shape.size());
  for (const Dim &d : shape)
    sizes.push_back(resolve(d));
  return sizes;
}

int64_t SymbolValues::numElements(const Shape &shape) const {
  int64_t n = 1;
  for (const Dim &d : shape)
    n *= resolve(d);
  return n;
}

const char *bufferKindName(BufferKind kind) {
  switch (kind) {
  case BufferKind::Input:
    return "input";
  case BufferKind::Weight:
    return "weight";
  case BufferKind::Constant:
    return "constant";
  case BufferKind::Activation:
    return "activation";
  case BufferKind::View:
    return "view";
  case BufferKind::KVCache:
    return "kv_cache";
  case BufferKind::Output:
    return "output";
  }
  return "unknown";
}

const char *inputRoleName(InputRole role) {
  switch (role) {
  case InputRole::None:
    return "none";
  case InputRole::Tokens:
    return "tokens";
  case InputRole::Positions:
    return "positions";
  case InputRole::QueryStartLoc:
    return "query_start_loc";
  case InputRole::BlockTables:
    return "block_tables";
  case InputRole::ContextLens:
    return "context_lens";
  case InputRole::SlotMapping:
    return "slot_mapping";
  }
  return "unknown";
}

const char *opKindName(OpKind kind) {
  switch (kind) {
  case OpKind::Embedding:
    return "Embedding";
  case OpKind::RotaryTable:
    return "RotaryTable";
  case OpKind::Cast:
    return "Cast";
  case OpKind::RMSNorm:
    return "RMSNorm";
  case OpKind::LayerNorm:
    return "LayerNorm";
  case OpKind::Linear:
    return "Linear";
  case OpKind::View:
    return "View";
  case OpKind::Rope:
    return "Rope";
  case OpKind::KVCacheWrite:
    return "KVCacheWrite";
  case OpKind::PagedAttention:
    return "PagedAttention";
  case OpKind::Add:
    return "Add";
  case OpKind::Sub:
    return "Sub";
  case OpKind::Mul:
    return "Mul";
  case OpKind::Div:
    return "Div";
  case OpKind::GatedMLP:
    return "GatedMLP";
  case OpKind::SiLU:
    return "SiLU";
  case OpKind::GELU:
    return "GELU";
  case OpKind::GeluTanh:
    return "GeluTanh";
  case OpKind::ReLU:
    return "ReLU";
  case OpKind::Tanh:
    return "Tanh";
  case OpKind::GatherLastTokens:
    return "GatherLastTokens";
  case OpKind::Split:
    return "Split";
  case OpKind::Slice:
    return "Slice";
  case OpKind::QuantLinear:
    return "QuantLinear";
  case OpKind::SparseLinear:
    return "SparseLinear";
  }
  return nullptr;
}

const char *attrKeyName(AttrKey key) {
  switch (key) {
  case AttrKey::Epsilon:
    return "epsilon";
  case AttrKey::WeightOffset:
    return "weight_offset";
  case AttrKey::RotaryDim:
    return "rotary_dim";
  case AttrKey::InvFreq:
    return "inv_freq";
  case AttrKey::AttentionScaling:
    return "attention_scaling";
  case AttrKey::Scale:
    return "scale";
  case AttrKey::NumHeads:
    return "num_heads";
  case AttrKey::KVHeads:
    return "kv_heads";
  case AttrKey::Layer:
    return "layer";
  case AttrKey::SlidingWindow:
    return "sliding_window";
  case AttrKey::Softcap:
    return "softcap";
  case AttrKey::Activation:
    return "activation";
  case AttrKey::TransposeWeight:
    return "transpose_weight";
  case AttrKey::Axis:
    return "axis";
  case AttrKey::Sizes:
    return "sizes";
  case AttrKey::Axes:
    return "axes";
  case AttrKey::Starts:
    return "starts";
  case AttrKey::Steps:
    return "steps";
  case AttrKey::Bits:
    return "bits";
  case AttrKey::GroupSize:
    return "group_size";
  case AttrKey::QuantFormat:
    return "quant_format";
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Step and plan accessors
//===----------------------------------------------------------------------===//

const Attr *Step::find(AttrKey key) const {
  for (const Attr &a : attrs)
    if (a.key == key)
      return &a;
  return nullptr;
}

int64_t Step::getInt(AttrKey key, int64_t dflt) const {
  const Attr *a = find(key);
  return a && a->type == AttrType::I64 ? a->i : dflt;
}

float Step::getFloat(AttrKey key, float dflt) const {
  const Attr *a = find(key);
  return a && a->type == AttrType::F32 ? a->f : dflt;
}

const EntryPoint *LaunchPlan::find(std::string_view name) const {
  for (const EntryPoint &e : entries)
    if (e.name == name)
      return &e;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

/// "KPLN": the payload's first four bytes, so a section of another kind
/// under the LaunchPlan name is not misread.
static constexpr uint32_t kPlanMagic = 0x4e4c504bu;

std::vector<uint8_t> LaunchPlan::serialize() const {
  ByteWriter w;
  w.u32(kPlanMagic);
  w.u32(kFormatVersion);
  w.str(target);
  w.u32(static_cast<uint32_t>(entries.size()));
  for (const EntryPoint &e : entries) {
    w.str(e.name);
    w.u8(static_cast<uint8_t>(e.logits));
    w.u32(static_cast<uint32_t>(e.buffers.size()));
    for (const Buffer &b : e.buffers) {
      w.str(b.name);
      w.u8(static_cast<uint8_t>(b.kind));
      w.u8(static_cast<uint8_t>(b.dtype));
      w.u8(static_cast<uint8_t>(b.role));
      w.u8(0);
      w.u32(static_cast<uint32_t>(b.shape.size()));
      for (const Dim &d : b.shape) {
        w.u8(static_cast<uint8_t>(d.sym));
        w.i64(d.value);
      }
      if (b.kind == BufferKind::Weight)
        w.u32(b.weightIndex);
      else if (b.kind == BufferKind::View)
        w.u32(b.source);
      else if (b.kind == BufferKind::Constant) {
        w.u64(b.constantData.size());
        w.raw(b.constantData.data(), b.constantData.size());
      }
    }
    w.u32(static_cast<uint32_t>(e.steps.size()));
    for (const Step &s : e.steps) {
      w.u16(static_cast<uint16_t>(s.kind));
      w.u16(static_cast<uint16_t>(s.attrs.size()));
      w.u32(static_cast<uint32_t>(s.operands.size()));
      for (uint32_t id : s.operands)
        w.u32(id);
      w.u32(static_cast<uint32_t>(s.results.size()));
      for (uint32_t id : s.results)
        w.u32(id);
      for (const Attr &a : s.attrs) {
        w.u16(static_cast<uint16_t>(a.key));
        w.u8(static_cast<uint8_t>(a.type));
        switch (a.type) {
        case AttrType::I64:
          w.i64(a.i);
          break;
        case AttrType::F32:
          w.f32(a.f);
          break;
        case AttrType::F32Array:
          w.u32(static_cast<uint32_t>(a.floats.size()));
          for (float f : a.floats)
            w.f32(f);
          break;
        case AttrType::I64Array:
          w.u32(static_cast<uint32_t>(a.ints.size()));
          for (int64_t i : a.ints)
            w.i64(i);
          break;
        }
      }
    }
  }
  return w.take();
}

namespace {
bool knownDType(uint8_t v) { return v >= 1 && v <= 6; }
bool knownSym(uint8_t v) { return v <= 4; }
bool knownKind(uint8_t v) { return v >= 1 && v <= 7; }
bool knownRole(uint8_t v) { return v <= kNumInputRoles; }
bool knownOp(uint16_t v) { return opKindName(static_cast<OpKind>(v)); }
bool knownKey(uint16_t v) { return attrKeyName(static_cast<AttrKey>(v)); }
bool knownAttrType(uint8_t v) { return v >= 1 && v <= 4; }
} // namespace

StatusOr<LaunchPlan> LaunchPlan::deserialize(Span<const uint8_t> bytes) {
  ByteReader r(bytes);
  auto error = [&](const std::string &where) {
    return makeError(StatusCode::DataLoss, "launch plan: ", where,
                     where.empty() ? "" : ": ", r.error());
  };
  uint32_t magic = r.u32("plan magic");
  if (r.ok() && magic != kPlanMagic)
    return makeError(StatusCode::DataLoss,
                     "launch plan: bad magic (not a launch plan payload)");
  uint32_t version = r.u32("plan version");
  if (!r.ok())
    return error("");
  if (version != kFormatVersion)
    return makeError(StatusCode::Unimplemented,
                     "unsupported launch plan version ", version,
                     " (this runtime reads version ", kFormatVersion, ")");
  LaunchPlan plan;
  plan.target = r.str("target");
  uint32_t numEntries = r.count("entry point count", 16);
  if (!r.ok())
    return error("");
  for (uint32_t ei = 0; ei < numEntries; ++ei) {
    EntryPoint e;
    e.name = r.str("entry point name");
    uint8_t mode = r.u8("logits mode");
    std::string where = "entry point #" + std::to_string(ei);
    if (r.ok() && mode != 1 && mode != 2)
      r.fail("unknown logits mode " + std::to_string(mode));
    e.logits = static_cast<LogitsMode>(mode);
    uint32_t numBuffers = r.count("buffer count", 12);
    if (!r.ok())
      return error(where);
    where = "entry point '" + e.name + "'";
    e.buffers.resize(numBuffers);
    for (uint32_t bi = 0; bi < numBuffers && r.ok(); ++bi) {
      Buffer &b = e.buffers[bi];
      b.name = r.str("buffer name");
      uint8_t kind = r.u8("buffer kind"), dtype = r.u8("buffer dtype"),
              role = r.u8("input role"), reserved = r.u8("reserved byte");
      if (r.ok() && !knownKind(kind))
        r.fail("buffer " + std::to_string(bi) + ": unknown kind " +
               std::to_string(kind));
      if (r.ok() && !knownDType(dtype))
        r.fail("buffer " + std::to_string(bi) + ": unknown dtype " +
               std::to_string(dtype));
      if (r.ok() && !knownRole(role))
        r.fail("buffer " + std::to_string(bi) + ": unknown input role " +
               std::to_string(role));
      if (r.ok() && reserved != 0)
        r.fail("buffer " + std::to_string(bi) + ": reserved byte is not zero");
      b.kind = static_cast<BufferKind>(kind);
      b.dtype = static_cast<DType>(dtype);
      b.role = static_cast<InputRole>(role);
      uint32_t rank = r.count("buffer rank", 9);
      for (uint32_t d = 0; d < rank && r.ok(); ++d) {
        uint8_t sym = r.u8("dimension symbol");
        int64_t value = r.i64("dimension value");
        if (r.ok() && !knownSym(sym))
          r.fail("buffer " + std::to_string(bi) + ": unknown symbol " +
                 std::to_string(sym));
        b.shape.push_back(Dim{static_cast<Sym>(sym), value});
      }
      if (b.kind == BufferKind::Weight)
        b.weightIndex = r.u32("weight index");
      else if (b.kind == BufferKind::View)
        b.source = r.u32("view source");
      else if (b.kind == BufferKind::Constant)
        b.constantData = r.blob("constant data");
    }
    uint32_t numSteps = r.count("step count", 12);
    e.steps.reserve(numSteps);
    for (uint32_t si = 0; si < numSteps && r.ok(); ++si) {
      Step s;
      uint16_t op = r.u16("op kind");
      uint16_t numAttrs = r.u16("attribute count");
      if (r.ok() && !knownOp(op))
        r.fail("step " + std::to_string(si) + ": unknown op kind " +
               std::to_string(op));
      s.kind = static_cast<OpKind>(op);
      uint32_t numOperands = r.count("operand count", 4);
      for (uint32_t k = 0; k < numOperands && r.ok(); ++k)
        s.operands.push_back(r.u32("operand id"));
      uint32_t numResults = r.count("result count", 4);
      for (uint32_t k = 0; k < numResults && r.ok(); ++k)
        s.results.push_back(r.u32("result id"));
      for (uint16_t k = 0; k < numAttrs && r.ok(); ++k) {
        uint16_t key = r.u16("attribute key");
        uint8_t type = r.u8("attribute type");
        if (r.ok() && !knownKey(key))
          r.fail("step " + std::to_string(si) + ": unknown attribute key " +
                 std::to_string(key));
        if (r.ok() && !knownAttrType(type))
          r.fail("step " + std::to_string(si) + ": unknown attribute type " +
                 std::to_string(type));
        Attr a{static_cast<AttrKey>(key), static_cast<AttrType>(type)};
        if (!r.ok())
          break;
        switch (a.type) {
        case AttrType::I64:
          a.i = r.i64("attribute value");
          break;
        case AttrType::F32:
          a.f = r.f32("attribute value");
          break;
        case AttrType::F32Array: {
          uint32_t n = r.count("attribute array length", 4);
          for (uint32_t j = 0; j < n && r.ok(); ++j)
            a.floats.push_back(r.f32("attribute array element"));
          break;
        }
        case AttrType::I64Array: {
          uint32_t n = r.count("attribute array length", 8);
          for (uint32_t j = 0; j < n && r.ok(); ++j)
            a.ints.push_back(r.i64("attribute array element"));
          break;
        }
        }
        s.attrs.push_back(std::move(a));
      }
      e.steps.push_back(std::move(s));
    }
    if (!r.ok())
      return error(where);
    plan.entries.push_back(std::move(e));
  }
  if (!r.ok())
    return error("");
  if (!r.atEnd())
    return makeError(StatusCode::DataLoss, "launch plan: ", r.remaining(),
                     " trailing bytes after the last entry point");
  return plan;
}

//===----------------------------------------------------------------------===//
// Listing
//===----------------------------------------------------------------------===//

static std::string bufferRef(const EntryPoint &e, uint32_t id) {
  if (id == kNoBuffer)
    return "-";
  return "%" + std::to_string(id);
}

std::string describeEntryPoint(const EntryPoint &e) {
  std::ostringstream os;
  os << "entry " << e.name << " (logits "
     << (e.logits == LogitsMode::All ? "all" : "last") << "): "
     << e.buffers.size() << " buffers, " << e.steps.size() << " steps\n";
  for (size_t i = 0; i < e.buffers.size(); ++i) {
    const Buffer &b = e.buffers[i];
    if (b.kind != BufferKind::Input && b.kind != BufferKind::KVCache &&
        b.kind != BufferKind::Output)
      continue;
    os << "  %" << i << " " << bufferKindName(b.kind);
    if (b.kind == BufferKind::Input)
      os << " " << inputRoleName(b.role);
    os << " " << shapeString(b.shape) << dtypeName(b.dtype) << "\n";
  }
  for (const Step &s : e.steps) {
    os << "  ";
    for (size_t k = 0; k < s.results.size(); ++k)
      os << (k ? ", " : "") << bufferRef(e, s.results[k]);
    if (!s.results.empty())
      os << " = ";
    const char *name = opKindName(s.kind);
    os << (name ? name : "?") << "(";
    for (size_t k = 0; k < s.operands.size(); ++k)
      os << (k ? ", " : "") << bufferRef(e, s.operands[k]);
    os << ")";
    for (const Attr &a : s.attrs) {
      const char *key = attrKeyName(a.key);
      os << " " << (key ? key : "?") << "=";
      switch (a.type) {
      case AttrType::I64:
        if (a.key == AttrKey::Activation) {
          static const char *names[] = {"?", "silu", "gelu", "gelu_tanh",
                                        "relu"};
          os << names[a.i >= 1 && a.i <= 4 ? a.i : 0];
        } else {
          os << a.i;
        }
        break;
      case AttrType::F32:
        os << a.f;
        break;
      case AttrType::F32Array:
        os << "[" << a.floats.size() << " floats]";
        break;
      case AttrType::I64Array:
        os << "[";
        for (size_t j = 0; j < a.ints.size(); ++j)
          os << (j ? "," : "") << a.ints[j];
        os << "]";
        break;
      }
    }
    if (!s.results.empty() && s.results[0] < e.buffers.size())
      os << " : " << shapeString(e.buffers[s.results[0]].shape)
         << dtypeName(e.buffers[s.results[0]].dtype);
    os << "\n";
  }
  return os.str();
}

} // namespace kiln::runtime
