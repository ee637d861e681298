//===- PlanBuilder.cpp - Laid-out functions to launch-plan entry points ---===//
//
// Walks a function of the paged layout (-llm-kv-cache-layout) in order and
// turns each op into one step: operands and results become buffers whose
// shapes replace the dynamic sizes by the step symbols (T for token rows,
// N for sequences and the rows after llm.gather_last_tokens, M for the
// block tables' width, P for the cache's blocks), weights are interned in
// the model's weight table, llm.constant data that ops read becomes a
// constant buffer and constants that are really attributes (reshape
// shapes, slice bounds, split sizes) are folded into the step. A quantized
// matmul (llm.matmul_nbits over packed weights and scales) becomes a
// Linear step over a dense weight that packWeights dequantizes.
//
//===----------------------------------------------------------------------===//

#include "kiln/Artifact/ArtifactCompiler.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <cstring>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;
namespace llm = kiln::llm;

namespace {

std::optional<rt::DType> dtypeOf(Type elem) {
  if (elem.isF32())
    return rt::DType::F32;
  if (elem.isF16())
    return rt::DType::F16;
  if (elem.isBF16())
    return rt::DType::BF16;
  if (elem.isInteger(32))
    return rt::DType::I32;
  if (elem.isInteger(64))
    return rt::DType::I64;
  return std::nullopt;
}

/// Integer values of an llm.constant (shape vectors, slice bounds).
std::optional<SmallVector<int64_t>> constantInts(Value v) {
  auto c = v.getDefiningOp<llm::ConstantOp>();
  if (!c)
    return std::nullopt;
  auto dense = dyn_cast<DenseIntElementsAttr>(c.getValue());
  if (!dense)
    return std::nullopt;
  SmallVector<int64_t> out;
  for (const APInt &i : dense.getValues<APInt>())
    out.push_back(i.getSExtValue());
  return out;
}

class EntryBuilder {
public:
  EntryBuilder(func::FuncOp func, StringRef name, CompiledModel &model)
      : func(func), model(model) {
    entry.name = name.str();
  }

  FailureOr<rt::EntryPoint> build();

private:
  InFlightDiagnostic fail(Operation *op) {
    return op->emitError() << "cannot be compiled into the launch plan: ";
  }

  /// A new buffer for `v` of `kind` with shape `shape`.
  FailureOr<uint32_t> addBuffer(Operation *at, Value v, rt::BufferKind kind,
                                rt::Shape shape, StringRef name = "");
  /// The symbolic shape of a result of `op` from its type.
  FailureOr<rt::Shape> resultShape(Operation *op, Value result);
  /// The buffer of an operand (materializing constants and weights).
  FailureOr<uint32_t> use(Operation *user, Value v);
  LogicalResult visit(Operation *op);
  /// A weight-table entry (shared across entry points by name and
  /// source) and a Weight buffer over it.
  uint32_t addWeightPart(const std::string &name, const WeightSource &src,
                         rt::DType dtype, std::vector<int64_t> shape);
  /// llm.matmul_nbits whose packing QuantLinear serves: a QuantLinear
  /// step over its codes, scales and (unpacked) zero points.
  LogicalResult visitPackedMatmulNBits(llm::MatMulNBitsOp op,
                                       const WeightSource &packed,
                                       const WeightSource::Quantized &q,
                                       std::string name, rt::DType scales);
  /// llm.matmul_nbits as Linear over its weight dequantized to [N, K]
  /// (2-bit codes, partial blocks, float zero points).
  LogicalResult visitQuantizedMatmul(llm::MatMulNBitsOp op);
  /// The weight-table entries and buffers of a packed weight
  /// (!llm.qweight: packed integers, scales, zero points or kNoBuffer;
  /// !llm.sparse24: values, metadata), one entry per part, each a byte
  /// range of the weight's external data.
  LogicalResult addPackedWeight(llm::WeightOp weight);
  /// The step operands of a projection by `weight` (a dense weight's
  /// buffer, or a packed weight's parts) and its op kind and attributes.
  struct Projection {
    rt::OpKind kind;
    SmallVector<uint32_t> weightOperands;
    std::vector<rt::Attr> attrs;
  };
  FailureOr<Projection> projection(Operation *user, Value weight,
                                   bool transposed);
  /// A gated MLP with a packed weight, as its three projections, the
  /// activation and the product (no fused kernel serves packed weights).
  LogicalResult visitPackedGatedMLP(llm::GatedMLPOp op,
                                    rt::Activation activation);
  /// Adds `op` as one step of `kind` with operands `operands`, a new
  /// activation buffer per result, and `attrs`.
  LogicalResult addStep(Operation *op, rt::OpKind kind,
                        ArrayRef<Value> operands,
                        std::vector<rt::Attr> attrs = {},
                        ArrayRef<uint32_t> fixedOperands = {});

  func::FuncOp func;
  CompiledModel &model;
  rt::EntryPoint entry;
  llvm::DenseMap<Value, uint32_t> buffers;
  /// The part buffers of packed weights (see addPackedWeight).
  llvm::DenseMap<Value, SmallVector<uint32_t>> packedParts;
  uint32_t cacheBuffer = rt::kNoBuffer;
};

FailureOr<uint32_t> EntryBuilder::addBuffer(Operation *at, Value v,
                                            rt::BufferKind kind,
                                            rt::Shape shape, StringRef name) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  auto dtype = type ? dtypeOf(type.getElementType()) : std::nullopt;
  if (!dtype) {
    fail(at) << "unsupported type " << v.getType()
             << " (the plan holds ranked f32/f16/bf16/i32/i64 tensors)";
    return failure();
  }
  rt::Buffer b;
  b.name = name.str();
  b.kind = kind;
  b.dtype = *dtype;
  b.shape = std::move(shape);
  entry.buffers.push_back(std::move(b));
  uint32_t id = entry.buffers.size() - 1;
  if (v)
    buffers[v] = id;
  return id;
}

FailureOr<rt::Shape> EntryBuilder::resultShape(Operation *op, Value result) {
  auto type = dyn_cast<RankedTensorType>(result.getType());
  if (!type) {
    fail(op) << "expected a ranked result, got " << result.getType();
    return failure();
  }
  rt::Shape shape;
  // Embedding: the ids' shape and the table's row.
  if (auto emb = dyn_cast<llm::EmbeddingOp>(op)) {
    auto it = buffers.find(emb.getIds());
    if (it != buffers.end() &&
        (int64_t)entry.buffers[it->second].shape.size() + 1 ==
            type.getRank()) {
      shape = entry.buffers[it->second].shape;
      shape.push_back(rt::Dim::constant(type.getDimSize(type.getRank() - 1)));
      return shape;
    }
  }
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (!type.isDynamicDim(d)) {
      shape.push_back(rt::Dim::constant(type.getDimSize(d)));
      continue;
    }
    std::optional<rt::Dim> dim;
    if (d == 0 && isa<llm::GatherLastTokensOp>(op)) {
      dim = rt::Dim::symbol(rt::Sym::N);
    } else if (d == 0) {
      // Row counts come from an operand's rows: prefer one of the same
      // rank, then any with symbolic rows.
      for (int pass = 0; pass < 2 && !dim; ++pass)
        for (Value operand : op->getOperands()) {
          auto it = buffers.find(operand);
          if (it == buffers.end())
            continue;
          const rt::Shape &s = entry.buffers[it->second].shape;
          if (s.empty() || s[0].isConstant() ||
              (pass == 0 && (int64_t)s.size() != type.getRank()))
            continue;
          dim = s[0];
          break;
        }
    }
    if (!dim) {
      fail(op) << "dynamic dimension " << d << " of " << result.getType()
               << " is not the token or sequence rows of an operand";
      return failure();
    }
    shape.push_back(*dim);
  }
  return shape;
}

FailureOr<uint32_t> EntryBuilder::use(Operation *user, Value v) {
  auto it = buffers.find(v);
  if (it != buffers.end())
    return it->second;
  Operation *def = v.getDefiningOp();
  if (auto c = dyn_cast_or_null<llm::ConstantOp>(def)) {
    auto type = dyn_cast<RankedTensorType>(c.getType());
    auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
    if (!type || !type.hasStaticShape() || !dense) {
      fail(user) << "expected a dense constant of static shape";
      return failure();
    }
    rt::Shape shape;
    for (int64_t d : type.getShape())
      shape.push_back(rt::Dim::constant(d));
    auto id = addBuffer(def, v, rt::BufferKind::Constant, shape);
    if (failed(id))
      return failure();
    std::vector<uint8_t> &data = entry.buffers[*id].constantData;
    rt::DType dtype = entry.buffers[*id].dtype;
    int64_t n = type.getNumElements(), size = rt::dtypeBytes(dtype);
    data.resize(n * size);
    int64_t k = 0;
    if (rt::isFloatDType(dtype)) {
      for (APFloat f : dense.getValues<APFloat>()) {
        APInt bits = f.bitcastToAPInt();
        uint64_t raw = bits.getZExtValue();
        std::memcpy(data.data() + size * k++, &raw, size);
      }
    } else {
      for (APInt i : dense.getValues<APInt>()) {
        int64_t raw = i.getSExtValue();
        if (dtype == rt::DType::I32) {
          int32_t narrow = static_cast<int32_t>(raw);
          std::memcpy(data.data() + size * k++, &narrow, size);
        } else {
          std::memcpy(data.data() + size * k++, &raw, size);
        }
      }
    }
    return *id;
  }
  fail(user) << "operand " << v.getType() << " is not available";
  return failure();
}

LogicalResult EntryBuilder::addStep(Operation *op, rt::OpKind kind,
                                    ArrayRef<Value> operands,
                                    std::vector<rt::Attr> attrs,
                                    ArrayRef<uint32_t> fixedOperands) {
  rt::Step step;
  step.kind = kind;
  for (Value v : operands) {
    if (!v) {
      step.operands.push_back(rt::kNoBuffer);
      continue;
    }
    auto id = use(op, v);
    if (failed(id))
      return failure();
    step.operands.push_back(*id);
  }
  for (uint32_t id : fixedOperands)
    step.operands.push_back(id);
  for (Value result : op->getResults()) {
    auto shape = resultShape(op, result);
    if (failed(shape))
      return failure();
    auto id = addBuffer(op, result, rt::BufferKind::Activation, *shape);
    if (failed(id))
      return failure();
    step.results.push_back(*id);
  }
  step.attrs = std::move(attrs);
  entry.steps.push_back(std::move(step));
  return success();
}

static float toFloat(const APFloat &f) { return f.convertToFloat(); }

LogicalResult EntryBuilder::visitQuantizedMatmul(llm::MatMulNBitsOp op) {
  // The source of a packed operand: an llm.weight or an llm.constant.
  auto sourceOf = [](Value v, Attribute &source, Type &type,
                     std::string &name) {
    if (auto w = v.getDefiningOp<llm::WeightOp>()) {
      source = w.getSource();
      type = w.getType();
      name = w.getName().str();
      return true;
    }
    if (auto c = v.getDefiningOp<llm::ConstantOp>()) {
      source = c.getValue();
      type = c.getType();
      return true;
    }
    return false;
  };
  WeightSource src;
  WeightSource::Quantized q;
  std::string name, unused;
  if (!sourceOf(op.getB(), src.source, src.type, name) ||
      !sourceOf(op.getScales(), q.scales, q.scalesType, unused) ||
      (op.getZeroPoints() &&
       !sourceOf(op.getZeroPoints(), q.zeroPoints, q.zeroPointsType, unused)))
    return fail(op) << "the packed weight, scales and zero points of a "
                       "quantized matmul must be weights or constants";
  q.k = op.getK();
  q.n = op.getN();
  q.bits = op.getBits();
  q.blockSize = op.getBlockSize();
  if (q.bits != 2 && q.bits != 4 && q.bits != 8)
    return fail(op) << "bits must be 2, 4 or 8, got " << q.bits;
  if (q.k <= 0 || q.n <= 0 || q.blockSize <= 0 || (q.blockSize * q.bits) % 8)
    return fail(op) << "K, N and block_size must be positive, whole bytes "
                       "per block";
  auto dtype = dtypeOf(getElementTypeOrSelf(op.getType()));
  if (!dtype || !rt::isFloatDType(*dtype))
    return fail(op) << "result " << op.getType() << " is not f32/f16/bf16";
  // What QuantLinear serves is taken as it is, bytes unchanged: codes of 4
  // or 8 bits in whole blocks, integer zero points.
  auto scalesElem = dtypeOf(getElementTypeOrSelf(q.scalesType));
  bool integerZeros =
      !q.zeroPoints || isa<IntegerType>(getElementTypeOrSelf(q.zeroPointsType));
  if (!model.dequantizeMatMulNBits && (q.bits == 4 || q.bits == 8) &&
      q.k % q.blockSize == 0 && q.blockSize % 16 == 0 && integerZeros &&
      scalesElem && rt::isFloatDType(*scalesElem))
    return visitPackedMatmulNBits(op, src, q, name, *scalesElem);
  src.quantized = q;

  // One table entry per quantized weight across entry points.
  uint32_t index = model.weights.size();
  for (uint32_t i = 0; i < model.weights.size(); ++i) {
    const WeightSource &other = model.sources[i];
    if (other.quantized && other.source == src.source &&
        other.quantized->scales == q.scales &&
        other.quantized->zeroPoints == q.zeroPoints &&
        other.quantized->k == q.k && other.quantized->n == q.n &&
        other.quantized->bits == q.bits &&
        other.quantized->blockSize == q.blockSize) {
      index = i;
      break;
    }
  }
  if (index == model.weights.size()) {
    // Named after the packed weight; unique in the table.
    name = (name.empty() ? std::string("matmul_nbits") : name) + ".dequantized";
    for (const rt::WeightInfo &w : model.weights.weights)
      if (w.name == name) {
        name += "." + std::to_string(index);
        break;
      }
    rt::WeightInfo info;
    info.name = name;
    info.dtype = *dtype;
    info.shape = {q.n, q.k};
    model.weights.weights.push_back(info);
    model.sources.push_back(src);
  }
  rt::Buffer b;
  b.name = model.weights.weights[index].name;
  b.kind = rt::BufferKind::Weight;
  b.dtype = *dtype;
  b.shape = {rt::Dim::constant(q.n), rt::Dim::constant(q.k)};
  b.weightIndex = index;
  entry.buffers.push_back(std::move(b));
  uint32_t id = entry.buffers.size() - 1;
  return addStep(op, rt::OpKind::Linear, {op.getA()},
                 {rt::Attr::ofInt(rt::AttrKey::TransposeWeight, 1)}, {id});
}

LogicalResult EntryBuilder::addPackedWeight(llm::WeightOp weight) {
  auto external = dyn_cast<llm::ExternalDataAttr>(weight.getSource());
  if (!external)
    return fail(weight) << "packed weight '" << weight.getName()
                        << "' must be external data (written by "
                           "-llm-quantize-weights or -llm-sparsify-2to4)";
  MLIRContext *ctx = weight.getContext();
  Type byte = IntegerType::get(ctx, 8);
  struct Part {
    const char *suffix;
    llm::PackedPart range;
    Type element;
    int64_t rows, cols;
  };
  SmallVector<Part> parts;
  if (auto q = dyn_cast<llm::QuantizedWeightType>(weight.getType())) {
    llm::QuantizedLayout layout = llm::getQuantizedLayout(q);
    int64_t groups = q.getK() / q.getGroup();
    parts.push_back(
        {"packed", layout.packed, byte, q.getN(), q.getK() * q.getBits() / 8});
    parts.push_back(
        {"scales", layout.scales, q.getScaleType(), q.getN(), groups});
    if (q.getZeroPoint())
      parts.push_back(
          {"zero_points", layout.zeroPoints, byte, q.getN(), groups});
  } else {
    auto sp = cast<llm::SparseWeightType>(weight.getType());
    llm::SparseLayout layout = llm::getSparseLayout(sp);
    parts.push_back({"values", layout.values, sp.getElementType(), sp.getN(),
                     sp.getK() / 2});
    parts.push_back({"meta", layout.meta, byte, sp.getN(), sp.getK() / 8});
  }
  SmallVector<uint32_t> ids;
  for (const Part &part : parts) {
    std::optional<rt::DType> dtype = part.element == byte
                                         ? std::optional(rt::DType::U8)
                                         : dtypeOf(part.element);
    if (!dtype)
      return fail(weight) << "packed part of type " << part.element;
    std::string name = (weight.getName() + "." + part.suffix).str();
    WeightSource src;
    src.source = llm::ExternalDataAttr::get(
        ctx, external.getPath(), external.getOffset() + part.range.offset,
        part.range.bytes);
    src.type = RankedTensorType::get({part.rows, part.cols}, part.element);
    uint32_t index = model.weights.size();
    for (uint32_t i = 0; i < model.weights.size(); ++i)
      if (model.weights.weights[i].name == name) {
        if (model.sources[i].source != src.source ||
            model.sources[i].type != src.type)
          return fail(weight)
                 << "weight '" << name << "' is defined twice differently";
        index = i;
        break;
      }
    if (index == model.weights.size()) {
      rt::WeightInfo info;
      info.name = name;
      info.dtype = *dtype;
      info.shape = {part.rows, part.cols};
      model.weights.weights.push_back(info);
      model.sources.push_back(src);
    }
    rt::Buffer b;
    b.name = name;
    b.kind = rt::BufferKind::Weight;
    b.dtype = *dtype;
    b.shape = {rt::Dim::constant(part.rows), rt::Dim::constant(part.cols)};
    b.weightIndex = index;
    entry.buffers.push_back(std::move(b));
    ids.push_back(entry.buffers.size() - 1);
  }
  if (isa<llm::QuantizedWeightType>(weight.getType()) && ids.size() == 2)
    ids.push_back(rt::kNoBuffer);
  packedParts[weight.getResult()] = ids;
  return success();
}

FailureOr<EntryBuilder::Projection>
EntryBuilder::projection(Operation *user, Value weight, bool transposed) {
  Projection p;
  if (auto q = dyn_cast<llm::QuantizedWeightType>(weight.getType())) {
    auto it = packedParts.find(weight);
    if (it == packedParts.end()) {
      fail(user) << "quantized weight is not an llm.weight";
      return failure();
    }
    p.kind = rt::OpKind::QuantLinear;
    p.weightOperands = it->second;
    p.attrs = {
        rt::Attr::ofInt(rt::AttrKey::Bits, q.getBits()),
        rt::Attr::ofInt(rt::AttrKey::GroupSize, q.getGroup()),
        rt::Attr::ofInt(rt::AttrKey::QuantFormat,
                        static_cast<int64_t>(q.getFormat() == "fp8e4m3"
                                                 ? rt::QuantFormat::FP8E4M3
                                                 : rt::QuantFormat::Int))};
    return p;
  }
  if (isa<llm::SparseWeightType>(weight.getType())) {
    auto it = packedParts.find(weight);
    if (it == packedParts.end()) {
      fail(user) << "2:4-sparse weight is not an llm.weight";
      return failure();
    }
    p.kind = rt::OpKind::SparseLinear;
    p.weightOperands = it->second;
    return p;
  }
  auto id = use(user, weight);
  if (failed(id))
    return failure();
  p.kind = rt::OpKind::Linear;
  p.weightOperands = {*id};
  if (transposed)
    p.attrs.push_back(rt::Attr::ofInt(rt::AttrKey::TransposeWeight, 1));
  return p;
}

LogicalResult EntryBuilder::visitPackedGatedMLP(llm::GatedMLPOp op,
                                                rt::Activation activation) {
  auto in = use(op, op.getInput());
  if (failed(in))
    return failure();
  auto outShape = resultShape(op, op.getResult());
  auto outType = dyn_cast<RankedTensorType>(op.getType());
  auto dtype = outType ? dtypeOf(outType.getElementType()) : std::nullopt;
  if (failed(outShape) || !dtype)
    return fail(op) << "expected a ranked float result";
  bool t = op.getTransposeWeights();
  auto gate = projection(op, op.getGateWeight(), t);
  auto up = projection(op, op.getUpWeight(), t);
  auto down = projection(op, op.getDownWeight(), t);
  if (failed(gate) || failed(up) || failed(down))
    return failure();
  // The intermediate width: the down projection's input features.
  int64_t inter = [&]() -> int64_t {
    Type w = op.getDownWeight().getType();
    if (auto q = dyn_cast<llm::QuantizedWeightType>(w))
      return q.getK();
    if (auto sp = dyn_cast<llm::SparseWeightType>(w))
      return sp.getK();
    auto shape = cast<RankedTensorType>(w).getShape();
    return t ? shape[1] : shape[0];
  }();
  rt::Shape midShape = *outShape;
  midShape.back() = rt::Dim::constant(inter);
  auto activationBuffer = [&](StringRef name) {
    rt::Buffer b;
    b.name = name.str();
    b.kind = rt::BufferKind::Activation;
    b.dtype = *dtype;
    b.shape = midShape;
    entry.buffers.push_back(std::move(b));
    return (uint32_t)entry.buffers.size() - 1;
  };
  auto step = [&](rt::OpKind kind, SmallVector<uint32_t> operands,
                  uint32_t result, std::vector<rt::Attr> attrs = {}) {
    rt::Step s;
    s.kind = kind;
    s.operands.assign(operands.begin(), operands.end());
    s.results = {result};
    s.attrs = std::move(attrs);
    entry.steps.push_back(std::move(s));
  };
  // Projections: (x, weight parts..., [bias]) with the optional trailing
  // operands of the step kind left absent.
  auto project = [&](uint32_t x, const Projection &p, uint32_t result) {
    SmallVector<uint32_t> operands = {x};
    operands.append(p.weightOperands.begin(), p.weightOperands.end());
    operands.push_back(rt::kNoBuffer); // no bias
    if (p.kind == rt::OpKind::Linear)
      operands.pop_back();
    step(p.kind, operands, result, p.attrs);
  };
  uint32_t g = activationBuffer("gate"), u = activationBuffer("up");
  project(*in, *gate, g);
  project(*in, *up, u);
  rt::OpKind act = activation == rt::Activation::SiLU   ? rt::OpKind::SiLU
                   : activation == rt::Activation::GELU ? rt::OpKind::GELU
                   : activation == rt::Activation::GeluTanh
                       ? rt::OpKind::GeluTanh
                       : rt::OpKind::ReLU;
  uint32_t a = activationBuffer("act");
  step(act, {g}, a);
  uint32_t h = activationBuffer("hidden");
  step(rt::OpKind::Mul, {a, u}, h);
  rt::Buffer out;
  out.kind = rt::BufferKind::Activation;
  out.dtype = *dtype;
  out.shape = *outShape;
  entry.buffers.push_back(std::move(out));
  uint32_t y = entry.buffers.size() - 1;
  buffers[op.getResult()] = y;
  project(h, *down, y);
  return success();
}

uint32_t EntryBuilder::addWeightPart(const std::string &name,
                                     const WeightSource &src, rt::DType dtype,
                                     std::vector<int64_t> shape) {
  uint32_t index = model.weights.size();
  for (uint32_t i = 0; i < model.weights.size(); ++i)
    if (model.weights.weights[i].name == name &&
        model.sources[i].source == src.source) {
      index = i;
      break;
    }
  if (index == model.weights.size()) {
    rt::WeightInfo info;
    info.name = name;
    for (const rt::WeightInfo &w : model.weights.weights)
      if (w.name == info.name)
        info.name += "." + std::to_string(index);
    info.dtype = dtype;
    info.shape = shape;
    model.weights.weights.push_back(info);
    model.sources.push_back(src);
  }
  rt::Buffer b;
  b.name = model.weights.weights[index].name;
  b.kind = rt::BufferKind::Weight;
  b.dtype = dtype;
  for (int64_t d : shape)
    b.shape.push_back(rt::Dim::constant(d));
  b.weightIndex = index;
  entry.buffers.push_back(std::move(b));
  return entry.buffers.size() - 1;
}

LogicalResult EntryBuilder::visitPackedMatmulNBits(
    llm::MatMulNBitsOp op, const WeightSource &packed,
    const WeightSource::Quantized &q, std::string name, rt::DType scales) {
  // MatMulNBits' rows are QuantLinear's: [N, blocks, block * bits / 8]
  // codes, low nibble first, are [N, K * bits / 8]; its scales [N * blocks]
  // are [N, K / block]; its zero points are unpacked to a byte each.
  if (name.empty())
    name = "matmul_nbits";
  int64_t groups = q.k / q.blockSize;
  uint32_t codes = addWeightPart(name + ".packed", packed, rt::DType::U8,
                                 {q.n, q.k * q.bits / 8});
  WeightSource scaleSource;
  scaleSource.source = q.scales;
  scaleSource.type = q.scalesType;
  uint32_t scaleBuffer =
      addWeightPart(name + ".scales", scaleSource, scales, {q.n, groups});
  uint32_t zeros = rt::kNoBuffer;
  if (q.zeroPoints) {
    WeightSource zeroSource;
    zeroSource.source = q.zeroPoints;
    zeroSource.type = q.zeroPointsType;
    zeroSource.unpackBits = q.bits;
    zeros = addWeightPart(name + ".zero_points", zeroSource, rt::DType::U8,
                          {q.n, groups});
  }
  return addStep(op, rt::OpKind::QuantLinear, {op.getA()},
                 {rt::Attr::ofInt(rt::AttrKey::Bits, q.bits),
                  rt::Attr::ofInt(rt::AttrKey::GroupSize, q.blockSize),
                  rt::Attr::ofInt(rt::AttrKey::QuantFormat,
                                  static_cast<int64_t>(rt::QuantFormat::Int))},
                 {codes, scaleBuffer, zeros, rt::kNoBuffer});
}

LogicalResult EntryBuilder::visit(Operation *op) {
  using rt::Attr;
  using rt::AttrKey;
  using rt::OpKind;

  if (auto weight = dyn_cast<llm::WeightOp>(op)) {
    // Packed integers, scales and zero points of quantized matmuls are
    // read when their dense weight is packed, never as buffers.
    Value result = weight.getResult();
    if (!result.use_empty() &&
        llvm::all_of(result.getUses(), [](OpOperand &use) {
          return isa<llm::MatMulNBitsOp>(use.getOwner()) &&
                 use.getOperandNumber() != 0;
        }))
      return success();
    if (isa<llm::QuantizedWeightType, llm::SparseWeightType>(weight.getType()))
      return addPackedWeight(weight);
    auto type = dyn_cast<RankedTensorType>(weight.getType());
    auto dtype = type ? dtypeOf(type.getElementType()) : std::nullopt;
    if (!type || !type.hasStaticShape() || !dtype ||
        !rt::isFloatDType(*dtype))
      return fail(op) << "weight '" << weight.getName() << "' of type "
                      << weight.getType()
                      << " is not a dense f32/f16/bf16 tensor (quantized "
                         "and sparse weights are not supported yet)";
    // One table entry per name across entry points.
    uint32_t index = model.weights.size();
    for (uint32_t i = 0; i < model.weights.size(); ++i)
      if (model.weights.weights[i].name == weight.getName()) {
        if (model.sources[i].source != weight.getSource() ||
            model.sources[i].type != weight.getType())
          return fail(op) << "weight '" << weight.getName()
                          << "' is defined twice differently";
        index = i;
        break;
      }
    if (index == model.weights.size()) {
      rt::WeightInfo info;
      info.name = weight.getName().str();
      info.dtype = *dtype;
      info.shape.assign(type.getShape().begin(), type.getShape().end());
      model.weights.weights.push_back(info);
      model.sources.push_back({weight.getSource(), weight.getType()});
    }
    rt::Shape shape;
    for (int64_t d : type.getShape())
      shape.push_back(rt::Dim::constant(d));
    auto id = addBuffer(op, weight.getResult(), rt::BufferKind::Weight, shape,
                        weight.getName());
    if (failed(id))
      return failure();
    entry.buffers[*id].weightIndex = index;
    return success();
  }
  // Constants become buffers when an op reads them as data.
  if (isa<llm::ConstantOp>(op))
    return success();

  if (auto mm = dyn_cast<llm::MatMulNBitsOp>(op))
    return visitQuantizedMatmul(mm);
  if (auto emb = dyn_cast<llm::EmbeddingOp>(op))
    return addStep(op, OpKind::Embedding, {emb.getTable(), emb.getIds()});
  if (auto table = dyn_cast<llm::RotaryTableOp>(op)) {
    ArrayRef<float> invFreq = table.getInvFreq();
    return addStep(
        op, OpKind::RotaryTable, {table.getPositions()},
        {Attr::ofFloats(AttrKey::InvFreq,
                        std::vector<float>(invFreq.begin(), invFreq.end())),
         Attr::ofFloat(AttrKey::AttentionScaling,
                       toFloat(table.getAttentionScaling()))});
  }
  if (auto cast = dyn_cast<llm::CastOp>(op)) {
    if (!isa<FloatType>(getElementTypeOrSelf(cast.getInput().getType())) ||
        !isa<FloatType>(getElementTypeOrSelf(cast.getType())))
      return fail(op) << "only casts between float types are supported";
    return addStep(op, OpKind::Cast, {cast.getInput()});
  }
  if (auto norm = dyn_cast<llm::RMSNormOp>(op))
    return addStep(op, OpKind::RMSNorm, {norm.getInput(), norm.getWeight()},
                   {Attr::ofFloat(AttrKey::Epsilon, toFloat(norm.getEpsilon())),
                    Attr::ofFloat(AttrKey::WeightOffset,
                                  toFloat(norm.getWeightOffset()))});
  if (auto norm = dyn_cast<llm::LayerNormOp>(op)) {
    SmallVector<Value> operands = {norm.getInput(), norm.getWeight()};
    if (norm.getBias())
      operands.push_back(norm.getBias());
    return addStep(
        op, OpKind::LayerNorm, operands,
        {Attr::ofFloat(AttrKey::Epsilon, toFloat(norm.getEpsilon()))});
  }
  if (auto linear = dyn_cast<llm::LinearOp>(op)) {
    if (!isa<RankedTensorType>(linear.getWeight().getType())) {
      auto p = projection(op, linear.getWeight(), false);
      if (failed(p))
        return failure();
      // (x, parts..., [zero points], bias): absent optional parts stay
      // kNoBuffer operands.
      Value x = linear.getInput();
      SmallVector<uint32_t> fixed(p->weightOperands);
      if (linear.getBias()) {
        auto bias = use(op, linear.getBias());
        if (failed(bias))
          return failure();
        fixed.push_back(*bias);
      } else {
        fixed.push_back(rt::kNoBuffer);
      }
      return addStep(op, p->kind, {x}, p->attrs, fixed);
    }
    SmallVector<Value> operands = {linear.getInput(), linear.getWeight()};
    if (linear.getBias())
      operands.push_back(linear.getBias());
    std::vector<Attr> attrs;
    if (linear.getTransposeWeight())
      attrs.push_back(Attr::ofInt(AttrKey::TransposeWeight, 1));
    return addStep(op, OpKind::Linear, operands, attrs);
  }
  if (auto reshape = dyn_cast<llm::ReshapeOp>(op)) {
    auto in = use(op, reshape.getData());
    if (failed(in))
      return failure();
    auto shape = resultShape(op, reshape.getResult());
    if (failed(shape))
      return failure();
    auto id =
        addBuffer(op, reshape.getResult(), rt::BufferKind::View, *shape);
    if (failed(id))
      return failure();
    entry.buffers[*id].source = *in;
    rt::Step step;
    step.kind = OpKind::View;
    step.operands = {*in};
    step.results = {*id};
    entry.steps.push_back(std::move(step));
    return success();
  }
  if (auto rope = dyn_cast<llm::RopeOp>(op))
    return addStep(op, OpKind::Rope,
                   {rope.getInput(), rope.getCos(), rope.getSin()},
                   {Attr::ofInt(AttrKey::RotaryDim, rope.getRotaryDim())});
  if (auto write = dyn_cast<llm::KVCacheWriteOp>(op)) {
    auto cache = use(op, write.getCache());
    if (failed(cache) || *cache != cacheBuffer)
      return fail(op) << "expected the cache operand to be the kv_cache "
                         "argument or an earlier write's result";
    rt::Step step;
    step.kind = OpKind::KVCacheWrite;
    step.operands.push_back(*cache);
    for (Value v : {write.getKey(), write.getValue(), write.getSlotMapping()}) {
      auto id = use(op, v);
      if (failed(id))
        return failure();
      step.operands.push_back(*id);
    }
    step.attrs = {Attr::ofInt(AttrKey::Layer, write.getLayer())};
    entry.steps.push_back(std::move(step));
    // Written in place: the result is the same buffer.
    buffers[write.getResult()] = cacheBuffer;
    return success();
  }
  if (auto attn = dyn_cast<llm::PagedAttentionOp>(op)) {
    auto cache = use(op, attn.getCache());
    if (failed(cache) || *cache != cacheBuffer)
      return fail(op) << "expected the cache operand to be the kv_cache";
    std::vector<Attr> attrs = {
        Attr::ofInt(AttrKey::Layer, attn.getLayer()),
        Attr::ofFloat(AttrKey::Scale, toFloat(attn.getScale())),
        Attr::ofInt(AttrKey::NumHeads, attn.getNumHeads()),
        Attr::ofInt(AttrKey::KVHeads, attn.getKvHeads())};
    if (auto window = attn.getSlidingWindow())
      attrs.push_back(Attr::ofInt(AttrKey::SlidingWindow, (int64_t)*window));
    if (auto softcap = attn.getSoftcap())
      attrs.push_back(Attr::ofFloat(AttrKey::Softcap, toFloat(*softcap)));
    return addStep(op, OpKind::PagedAttention,
                   {attn.getQuery(), attn.getCache(), attn.getBlockTables(),
                    attn.getContextLens(), attn.getQueryStartLoc()},
                   attrs);
  }
  if (isa<llm::AddOp, llm::SubOp, llm::MulOp, llm::DivOp>(op)) {
    OpKind kind = isa<llm::AddOp>(op)   ? OpKind::Add
                  : isa<llm::SubOp>(op) ? OpKind::Sub
                  : isa<llm::MulOp>(op) ? OpKind::Mul
                                        : OpKind::Div;
    for (Value v : op->getOperands())
      if (!isa<FloatType>(getElementTypeOrSelf(v.getType())))
        return fail(op) << "only float arithmetic is supported";
    return addStep(op, kind, {op->getOperand(0), op->getOperand(1)});
  }
  if (auto mlp = dyn_cast<llm::GatedMLPOp>(op)) {
    bool packed = false;
    for (Value w : {mlp.getGateWeight(), mlp.getUpWeight(), mlp.getDownWeight()})
      packed |= !isa<RankedTensorType>(w.getType());
    StringRef act = mlp.getActivation();
    rt::Activation activation = act == "silu"        ? rt::Activation::SiLU
                                : act == "gelu"      ? rt::Activation::GELU
                                : act == "gelu_tanh" ? rt::Activation::GeluTanh
                                : act == "relu"      ? rt::Activation::ReLU
                                                     : rt::Activation(0);
    if (activation == rt::Activation(0))
      return fail(op) << "unknown activation '" << act << "'";
    if (packed)
      return visitPackedGatedMLP(mlp, activation);
    std::vector<Attr> attrs = {
        Attr::ofInt(AttrKey::Activation, static_cast<int64_t>(activation))};
    if (mlp.getTransposeWeights())
      attrs.push_back(Attr::ofInt(AttrKey::TransposeWeight, 1));
    return addStep(op, OpKind::GatedMLP,
                   {mlp.getInput(), mlp.getGateWeight(), mlp.getUpWeight(),
                    mlp.getDownWeight()},
                   attrs);
  }
  if (isa<llm::SiLUOp, llm::GeluOp, llm::GeluTanhOp, llm::ReluOp,
          llm::TanhOp>(op)) {
    OpKind kind = isa<llm::SiLUOp>(op)       ? OpKind::SiLU
                  : isa<llm::GeluOp>(op)     ? OpKind::GELU
                  : isa<llm::GeluTanhOp>(op) ? OpKind::GeluTanh
                  : isa<llm::ReluOp>(op)     ? OpKind::ReLU
                                             : OpKind::Tanh;
    if (!isa<FloatType>(getElementTypeOrSelf(op->getOperand(0).getType())))
      return fail(op) << "only float activations are supported";
    return addStep(op, kind, {op->getOperand(0)});
  }
  if (auto gather = dyn_cast<llm::GatherLastTokensOp>(op))
    return addStep(op, OpKind::GatherLastTokens,
                   {gather.getInput(), gather.getQueryStartLoc()});
  if (auto split = dyn_cast<llm::SplitOp>(op)) {
    auto type = dyn_cast<RankedTensorType>(split.getInput().getType());
    if (!type)
      return fail(op) << "expected a ranked input";
    int64_t axis = split.getAxis();
    if (axis < 0)
      axis += type.getRank();
    if (axis <= 0 || axis >= type.getRank())
      return fail(op) << "expected a split along a non-token axis";
    std::vector<int64_t> sizes;
    for (Value r : split.getResults()) {
      auto rt = dyn_cast<RankedTensorType>(r.getType());
      if (!rt || rt.isDynamicDim(axis))
        return fail(op) << "expected static split sizes";
      sizes.push_back(rt.getDimSize(axis));
    }
    return addStep(op, OpKind::Split, {split.getInput()},
                   {Attr::ofInt(AttrKey::Axis, axis),
                    Attr::ofInts(AttrKey::Sizes, sizes)});
  }
  if (auto slice = dyn_cast<llm::SliceOp>(op)) {
    auto type = dyn_cast<RankedTensorType>(slice.getData().getType());
    auto resultType = dyn_cast<RankedTensorType>(slice.getType());
    auto starts = constantInts(slice.getStarts());
    auto ends = constantInts(slice.getEnds());
    std::optional<SmallVector<int64_t>> axes, steps;
    if (slice.getAxes())
      axes = constantInts(slice.getAxes());
    if (slice.getSteps())
      steps = constantInts(slice.getSteps());
    if (!type || !resultType || !starts || !ends ||
        (slice.getAxes() && !axes) || (slice.getSteps() && !steps))
      return fail(op) << "expected a slice with constant bounds";
    if (!axes) {
      axes.emplace();
      for (size_t i = 0; i < starts->size(); ++i)
        axes->push_back(i);
    }
    if (!steps)
      steps.emplace(starts->size(), 1);
    std::vector<int64_t> outAxes, outStarts, outSteps;
    for (size_t i = 0; i < axes->size(); ++i) {
      int64_t axis = (*axes)[i] < 0 ? (*axes)[i] + type.getRank() : (*axes)[i];
      if (axis <= 0 || axis >= type.getRank() || type.isDynamicDim(axis) ||
          resultType.isDynamicDim(axis))
        return fail(op) << "expected a slice along static non-token axes";
      int64_t dim = type.getDimSize(axis), step = (*steps)[i];
      if (step <= 0)
        return fail(op) << "expected positive slice steps";
      int64_t start = (*starts)[i];
      if (start < 0)
        start += dim;
      start = std::clamp<int64_t>(start, 0, dim);
      int64_t end = (*ends)[i];
      if (end < 0)
        end += dim;
      end = std::clamp<int64_t>(end, 0, dim);
      int64_t count = end > start ? (end - start + step - 1) / step : 0;
      if (count != resultType.getDimSize(axis))
        return fail(op) << "slice of " << count << " elements along axis "
                        << axis << " does not match its result type "
                        << resultType;
      outAxes.push_back(axis);
      outStarts.push_back(count ? start : 0);
      outSteps.push_back(step);
    }
    return addStep(op, OpKind::Slice, {slice.getData()},
                   {Attr::ofInts(AttrKey::Axes, outAxes),
                    Attr::ofInts(AttrKey::Starts, outStarts),
                    Attr::ofInts(AttrKey::Steps, outSteps)});
  }
  return fail(op) << "the launch plan has no step for '" << op->getName()
                  << "' (supported: embedding, rotary_table, cast, rms_norm, "
                     "layer_norm, linear, reshape, rope, kv_cache_write, "
                     "paged_attention, add/sub/mul/div, gated_mlp, "
                     "silu/gelu/gelu_tanh/relu/tanh, gather_last_tokens, "
                     "split, slice)";
}

FailureOr<rt::EntryPoint> EntryBuilder::build() {
  if (func.isExternal() || !func.getBody().hasOneBlock())
    return func.emitError() << "cannot be compiled into the launch plan: "
                               "expected a function with one block";
  auto logitsMode = func->getAttrOfType<StringAttr>("llm.logits");
  if (!logitsMode ||
      (logitsMode.getValue() != "last" && logitsMode.getValue() != "all"))
    return func.emitError()
           << "cannot be compiled into the launch plan: expected "
              "llm.logits = \"last\" or \"all\" (lay the module out with "
              "-llm-kv-cache-layout first)";
  entry.logits = logitsMode.getValue() == "all" ? rt::LogitsMode::All
                                                : rt::LogitsMode::Last;
  // The arguments, by their llm.name.
  struct Role {
    const char *name;
    rt::InputRole role;
    rt::Shape shape;
  };
  auto T = rt::Dim::symbol(rt::Sym::T), N = rt::Dim::symbol(rt::Sym::N),
       M = rt::Dim::symbol(rt::Sym::M), N1 = rt::Dim::symbol(rt::Sym::N, 1);
  const Role roles[] = {
      {"tokens", rt::InputRole::Tokens, {T}},
      {"positions", rt::InputRole::Positions, {T}},
      {"query_start_loc", rt::InputRole::QueryStartLoc, {N1}},
      {"block_tables", rt::InputRole::BlockTables, {N, M}},
      {"context_lens", rt::InputRole::ContextLens, {N}},
      {"slot_mapping", rt::InputRole::SlotMapping, {T}}};
  Block &body = func.getBody().front();
  for (BlockArgument arg : body.getArguments()) {
    auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  "llm.name");
    if (!name)
      return func.emitError() << "cannot be compiled into the launch plan: "
                                 "argument "
                              << arg.getArgNumber() << " has no llm.name";
    if (name.getValue() == "kv_cache") {
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type || type.getRank() != 6 || !type.isDynamicDim(1))
        return func.emitError()
               << "cannot be compiled into the launch plan: expected the "
                  "kv_cache [layers, ?, 2, kv_heads, block, head_dim], got "
               << arg.getType();
      rt::Shape shape;
      for (int64_t d = 0; d < 6; ++d)
        shape.push_back(d == 1 ? rt::Dim::symbol(rt::Sym::P)
                               : rt::Dim::constant(type.getDimSize(d)));
      auto id = addBuffer(func, arg, rt::BufferKind::KVCache, shape,
                          "kv_cache");
      if (failed(id))
        return failure();
      cacheBuffer = *id;
      continue;
    }
    const Role *role = nullptr;
    for (const Role &r : roles)
      if (name.getValue() == r.name)
        role = &r;
    if (!role)
      return func.emitError() << "cannot be compiled into the launch plan: "
                                 "unknown argument '"
                              << name.getValue() << "'";
    auto id = addBuffer(func, arg, rt::BufferKind::Input, role->shape,
                        role->name);
    if (failed(id))
      return failure();
    entry.buffers[*id].role = role->role;
  }
  if (cacheBuffer == rt::kNoBuffer)
    return func.emitError()
           << "cannot be compiled into the launch plan: no kv_cache argument";

  for (Operation &op : body.without_terminator())
    if (failed(visit(&op)))
      return failure();

  auto ret = cast<func::ReturnOp>(body.getTerminator());
  if (ret.getNumOperands() != 2)
    return ret.emitError() << "cannot be compiled into the launch plan: "
                              "expected to return the logits and the cache";
  auto logits = buffers.find(ret.getOperand(0));
  auto cache = buffers.find(ret.getOperand(1));
  if (cache == buffers.end() || cache->second != cacheBuffer)
    return ret.emitError() << "cannot be compiled into the launch plan: "
                              "expected the second result to be the cache";
  if (logits == buffers.end() ||
      entry.buffers[logits->second].kind != rt::BufferKind::Activation)
    return ret.emitError() << "cannot be compiled into the launch plan: "
                              "expected the logits to be computed by a step";
  entry.buffers[logits->second].kind = rt::BufferKind::Output;
  entry.buffers[logits->second].name = "logits";
  return std::move(entry);
}

} // namespace

FailureOr<rt::EntryPoint> kiln::buildEntryPoint(func::FuncOp func,
                                                StringRef name,
                                                CompiledModel &model) {
  return EntryBuilder(func, name, model).build();
}

LogicalResult kiln::buildLaunchPlan(ModuleOp module, StringRef target,
                                    CompiledModel &model) {
  model.plan.target = target.str();
  for (StringRef name : {"prefill", "decode", "prefill_all", "verify"}) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func) {
      if (name == "prefill_all" || name == "verify")
        continue;
      return module.emitError()
             << "cannot be compiled into the launch plan: no @" << name
             << " (lay the module out with -llm-kv-cache-layout first)";
    }
    auto entry = buildEntryPoint(func, name, model);
    if (failed(entry))
      return failure();
    model.plan.entries.push_back(std::move(*entry));
  }
  return success();
}
