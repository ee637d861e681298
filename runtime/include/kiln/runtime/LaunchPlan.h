//===- LaunchPlan.h - The steps of each entry point and their buffers -----===//
//
// What the compiler leaves of the laid-out module (@prefill, @decode,
// @prefill_all): for each entry point a flat list of steps (an op kind,
// typed attributes, operand and result buffer ids) over a table of buffers
// whose shapes are constants or the step's symbols T (tokens), N
// (sequences), M (block-table width) and P (KV cache blocks). A device runs
// the steps in order; it needs no MLIR. The binary encoding (the LaunchPlan
// section) and every rule `validate` checks are in docs/Artifact.md.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LAUNCHPLAN_H
#define KILN_RUNTIME_LAUNCHPLAN_H

#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::runtime {

class WeightTable;
struct ModelConfig;

/// Element types of buffers and weights. Values are part of the format.
/// U8 holds packed low-bit data (quantized integers, zero points, fp8
/// values, 2:4 sparsity metadata): weights only, read by QuantLinear and
/// SparseLinear as bytes.
enum class DType : uint8_t {
  F32 = 1,
  F16 = 2,
  BF16 = 3,
  I32 = 4,
  I64 = 5,
  U8 = 6
};
const char *dtypeName(DType dtype);
/// 0 for a value that is not a DType.
int64_t dtypeBytes(DType dtype);
bool isFloatDType(DType dtype);
/// Parses "f32", "f16", "bf16", "i32", "i64", "u8".
StatusOr<DType> parseDType(std::string_view name);

/// The sizes a step binds at run time.
enum class Sym : uint8_t {
  None = 0, ///< A constant.
  T = 1,    ///< Tokens of the step (sum of the append lengths).
  N = 2,    ///< Sequences of the step.
  M = 3,    ///< Width of the block tables (most blocks of a sequence).
  P = 4,    ///< Blocks of the KV cache (the device's pool).
};
const char *symName(Sym sym);

/// One dimension: `value` when sym is None, else sym + value (N + 1 is
/// query_start_loc's length).
struct Dim {
  Sym sym = Sym::None;
  int64_t value = 0;

  static Dim constant(int64_t v) { return Dim{Sym::None, v}; }
  static Dim symbol(Sym s, int64_t offset = 0) { return Dim{s, offset}; }
  bool isConstant() const { return sym == Sym::None; }
  bool operator==(const Dim &o) const {
    return sym == o.sym && value == o.value;
  }
  bool operator!=(const Dim &o) const { return !(*this == o); }
};
using Shape = std::vector<Dim>;
/// "[T, 4, 64]", "[N+1]".
std::string shapeString(const Shape &shape);

/// The values of the symbols for one step.
struct SymbolValues {
  int64_t T = 0, N = 0, M = 0, P = 0;
  int64_t get(Sym s) const;
  int64_t resolve(const Dim &d) const { return d.sym == Sym::None ? d.value : get(d.sym) + d.value; }
  /// The sizes of `shape`; its element count through `numElements`.
  std::vector<int64_t> resolve(const Shape &shape) const;
  int64_t numElements(const Shape &shape) const;
};

/// What a buffer is. Values are part of the format.
enum class BufferKind : uint8_t {
  Input = 1,      ///< One of the entry point's ForwardBatch arrays (role).
  Weight = 2,     ///< A weight of the weight table (weightIndex).
  Constant = 3,   ///< Small data carried in the plan (constantData).
  Activation = 4, ///< Written by exactly one step.
  View = 5,       ///< Another shape of `source`'s bytes; a View step defines it.
  KVCache = 6,    ///< The paged KV cache, written in place by KVCacheWrite.
  Output = 7,     ///< The logits: an activation the device hands back.
};
const char *bufferKindName(BufferKind kind);

/// The ForwardBatch array an Input buffer receives.
enum class InputRole : uint8_t {
  None = 0,
  Tokens = 1,        ///< [T] token ids.
  Positions = 2,     ///< [T] positions.
  QueryStartLoc = 3, ///< [N+1] i32.
  BlockTables = 4,   ///< [N, M] i32.
  ContextLens = 5,   ///< [N] i32.
  SlotMapping = 6,   ///< [T] i64.
};
constexpr int kNumInputRoles = 6;
const char *inputRoleName(InputRole role);

struct Buffer {
  std::string name; ///< For messages and dumps; may be empty.
  BufferKind kind = BufferKind::Activation;
  DType dtype = DType::F32;
  Shape shape;
  InputRole role = InputRole::None; ///< Input only.
  uint32_t weightIndex = 0;         ///< Weight only.
  uint32_t source = 0;              ///< View only: the viewed buffer.
  std::vector<uint8_t> constantData; ///< Constant only: elements in dtype.
};

/// The operations of a plan. Values are part of the format.
enum class OpKind : uint16_t {
  Embedding = 1,        ///< (table, ids) -> rows
  RotaryTable = 2,      ///< (positions) -> (cos, sin)
  Cast = 3,             ///< (x) -> x in the result's dtype
  RMSNorm = 4,          ///< (x, weight)
  LayerNorm = 5,        ///< (x, weight, [bias])
  Linear = 6,           ///< (x, weight, [bias])
  View = 7,             ///< (x) -> the View buffer of x
  Rope = 8,             ///< (x [S, H, D], cos, sin)
  KVCacheWrite = 9,     ///< (cache, key, value, slot_mapping) -> ()
  PagedAttention = 10,  ///< (query, cache, block_tables, context_lens, qsl)
  Add = 11,             ///< (a, b), numpy broadcasting
  Sub = 12,
  Mul = 13,
  Div = 14,
  GatedMLP = 15,        ///< (x, gate, up, down)
  SiLU = 16,
  GELU = 17,
  GeluTanh = 18,
  ReLU = 19,
  Tanh = 20,
  GatherLastTokens = 21, ///< (x [T, ...], qsl) -> [N, ...]
  Split = 22,           ///< (x) -> pieces along `axis`
  Slice = 23,           ///< (x) -> strided slice along `axes`
  QuantLinear = 24,     ///< (x, packed, scales, [zero_points], [bias])
  SparseLinear = 25,    ///< (x, values, metadata, [bias]): 2:4 sparse
};
const char *opKindName(OpKind kind);

/// Attribute keys. Values are part of the format.
enum class AttrKey : uint16_t {
  Epsilon = 1,          ///< f32
  WeightOffset = 2,     ///< f32 (RMSNorm: x * (w + offset))
  RotaryDim = 3,        ///< i64
  InvFreq = 4,          ///< f32 array
  AttentionScaling = 5, ///< f32
  Scale = 6,            ///< f32
  NumHeads = 7,         ///< i64
  KVHeads = 8,          ///< i64
  Layer = 9,            ///< i64
  SlidingWindow = 10,   ///< i64 (absent: none)
  Softcap = 11,         ///< f32 (absent: none)
  Activation = 12,      ///< i64: an Activation value
  TransposeWeight = 13, ///< i64 0/1: weights stored [N, K]
  Axis = 14,            ///< i64
  Sizes = 15,           ///< i64 array (Split)
  Axes = 16,            ///< i64 array (Slice)
  Starts = 17,          ///< i64 array (Slice)
  Steps = 18,           ///< i64 array (Slice)
  Bits = 19,            ///< i64: 4 or 8 (QuantLinear)
  GroupSize = 20,       ///< i64: K elements per scale (QuantLinear)
  QuantFormat = 21,     ///< i64: a QuantFormat value (QuantLinear)
};
const char *attrKeyName(AttrKey key);

enum class AttrType : uint8_t {
  I64 = 1,
  F32 = 2,
  F32Array = 3,
  I64Array = 4,
};

/// How QuantLinear's packed bytes encode weights. Values are part of the
/// format (docs/Quantization.md).
enum class QuantFormat : int64_t {
  /// Unsigned `bits`-bit integers u: w = scale * (u - zero point), the zero
  /// point a u8 per group, or 2^(bits-1) without zero points.
  Int = 1,
  /// fp8 e4m3 (bits 8): w = scale * fp8(u); no zero points.
  FP8E4M3 = 2,
};

/// The activations of GatedMLP. Values are part of the format.
enum class Activation : int64_t { SiLU = 1, GELU = 2, GeluTanh = 3, ReLU = 4 };

struct Attr {
  AttrKey key;
  AttrType type;
  int64_t i = 0;
  float f = 0.0f;
  std::vector<float> floats;
  std::vector<int64_t> ints;

  static Attr ofInt(AttrKey k, int64_t v) {
    Attr a{k, AttrType::I64};
    a.i = v;
    return a;
  }
  static Attr ofFloat(AttrKey k, float v) {
    Attr a{k, AttrType::F32};
    a.f = v;
    return a;
  }
  static Attr ofFloats(AttrKey k, std::vector<float> v) {
    Attr a{k, AttrType::F32Array};
    a.floats = std::move(v);
    return a;
  }
  static Attr ofInts(AttrKey k, std::vector<int64_t> v) {
    Attr a{k, AttrType::I64Array};
    a.ints = std::move(v);
    return a;
  }
};

/// Operand id of an absent optional operand (LayerNorm/Linear bias).
constexpr uint32_t kNoBuffer = 0xffffffffu;

struct Step {
  OpKind kind;
  std::vector<uint32_t> operands;
  std::vector<uint32_t> results;
  std::vector<Attr> attrs;

  const Attr *find(AttrKey key) const;
  /// The attribute's value, or `dflt` when absent (validated plans have
  /// every required attribute with its type).
  int64_t getInt(AttrKey key, int64_t dflt = 0) const;
  float getFloat(AttrKey key, float dflt = 0.0f) const;
  bool has(AttrKey key) const { return find(key) != nullptr; }
};

/// Which rows of logits an entry point returns.
enum class LogitsMode : uint8_t { Last = 1, All = 2 };

struct EntryPoint {
  std::string name; ///< "prefill", "decode", "prefill_all"
  LogitsMode logits = LogitsMode::Last;
  std::vector<Buffer> buffers;
  std::vector<Step> steps;

  /// Filled by LaunchPlan::validate: the input buffer of each role
  /// (index role - 1), the cache and the logits.
  uint32_t inputs[kNumInputRoles] = {};
  uint32_t kvCache = 0;
  uint32_t output = 0;
};

class LaunchPlan {
public:
  static constexpr uint32_t kFormatVersion = 1;

  /// Informational: what the plan was compiled for ("sm_90a", "host").
  std::string target;
  std::vector<EntryPoint> entries;

  const EntryPoint *find(std::string_view name) const;

  /// The LaunchPlan section payload.
  std::vector<uint8_t> serialize() const;
  /// Parses a payload; DataLoss for truncated or malformed bytes,
  /// Unimplemented for another plan version. Does not validate.
  static StatusOr<LaunchPlan> deserialize(Span<const uint8_t> bytes);

  /// Checks every rule of docs/Artifact.md against the weight table and
  /// the config (ids in range, kinds, arities, attributes, shapes and
  /// dtypes consistent, buffers written once before they are read) and
  /// fills each entry's input/cache/output ids. DataLoss naming the entry
  /// point, step and what is wrong.
  Status validate(const WeightTable &weights, const ModelConfig &config);
};

/// A human-readable listing of an entry point (kiln-run --info).
std::string describeEntryPoint(const EntryPoint &entry);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_LAUNCHPLAN_H
