//===- HostDevice.cpp - Running launch plans on the CPU -------------------===//

#include "kiln/runtime/HostDevice.h"
#include "kiln/runtime/Half.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace kiln::runtime {

KVCacheConfig kvCacheConfigFor(const Model &model, int32_t numBlocks) {
  const ModelConfig &c = model.config();
  KVCacheConfig kv;
  kv.numLayers = c.numLayers;
  kv.numKVHeads = c.numKVHeads;
  kv.headDim = c.headDim;
  kv.blockSize = c.blockSize;
  kv.numBlocks = numBlocks;
  kv.elementBytes = 4;
  // Every entry point has the same cache buffer (validated against the
  // config); its dtype is the cache's element type.
  if (!model.plan().entries.empty()) {
    const EntryPoint &e = model.plan().entries.front();
    kv.elementBytes =
        static_cast<int32_t>(dtypeBytes(e.buffers[e.kvCache].dtype));
  }
  return kv;
}

/// Per entry point: storage for activations, constants and inputs, kept
/// between steps so that vectors keep their capacity.
struct HostDevice::EntryState {
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<int64_t>> ints;
  /// Per buffer, the data of the current step (views alias).
  std::vector<float *> f;
  std::vector<int64_t *> i;
  std::vector<std::vector<int64_t>> sizes;
  DType cacheDType = DType::F32;
};

HostDevice::HostDevice(bool roundToStorage) : roundToStorage_(roundToStorage) {}

static float roundHalf(float v) { return halfToFloat(floatToHalf(v)); }
static float roundBf16(float v) { return bf16ToFloat(floatToBf16(v)); }

/// The rounding of host:storage for values stored as `dtype` (null: none).
float (*HostDevice::storageRounding(DType dtype) const)(float) {
  if (!roundToStorage_)
    return nullptr;
  return dtype == DType::F16    ? roundHalf
         : dtype == DType::BF16 ? roundBf16
                                : nullptr;
}

/// Rounds fp32 values to `dtype` and back (f16/bf16; f32 is left alone).
static void roundToStorage(float *data, int64_t n, DType dtype) {
  if (!data || (dtype != DType::F16 && dtype != DType::BF16))
    return;
  for (int64_t k = 0; k < n; ++k)
    data[k] = dtype == DType::F16 ? halfToFloat(floatToHalf(data[k]))
                                  : bf16ToFloat(floatToBf16(data[k]));
}
HostDevice::~HostDevice() = default;

static std::vector<float> toFloats(Span<const uint8_t> bytes, DType dtype) {
  size_t n = bytes.size() / dtypeBytes(dtype);
  std::vector<float> out(n);
  switch (dtype) {
  case DType::F16:
    for (size_t k = 0; k < n; ++k) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * k, 2);
      out[k] = halfToFloat(h);
    }
    break;
  case DType::BF16:
    for (size_t k = 0; k < n; ++k) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * k, 2);
      out[k] = bf16ToFloat(h);
    }
    break;
  case DType::F32:
    if (n)
      std::memcpy(out.data(), bytes.data(), n * 4);
    break;
  case DType::I32:
    for (size_t k = 0; k < n; ++k) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * k, 4);
      out[k] = static_cast<float>(v);
    }
    break;
  case DType::I64:
    for (size_t k = 0; k < n; ++k) {
      int64_t v;
      std::memcpy(&v, bytes.data() + 8 * k, 8);
      out[k] = static_cast<float>(v);
    }
    break;
  case DType::U8:
    for (size_t k = 0; k < n; ++k)
      out[k] = static_cast<float>(bytes[k]);
    break;
  }
  return out;
}

static std::vector<int64_t> toInts(Span<const uint8_t> bytes, DType dtype) {
  size_t n = bytes.size() / dtypeBytes(dtype);
  std::vector<int64_t> out(n);
  for (size_t k = 0; k < n; ++k) {
    if (dtype == DType::I32) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * k, 4);
      out[k] = v;
    } else if (dtype == DType::U8) {
      out[k] = bytes[k];
    } else {
      std::memcpy(&out[k], bytes.data() + 8 * k, 8);
    }
  }
  return out;
}

Status HostDevice::prepare(std::shared_ptr<const Model> model,
                           const KVCacheConfig &cache) {
  KILN_RETURN_IF_ERROR(checkCacheFitsModel(model.get(), cache));
  model_ = std::move(model);
  entries_.clear();

  prepareWeights();

  const EntryPoint &first = model_->plan().entries.front();
  DType cacheDType = first.buffers[first.kvCache].dtype;
  if (!isFloatDType(cacheDType))
    return makeError(StatusCode::Unimplemented, "KV cache of ",
                     dtypeName(cacheDType));
  int64_t bytes = cache.totalBytes();
  cacheMemory_.assign(static_cast<size_t>(bytes), 0);
  cacheView_.dtype = cacheDType;
  cacheView_.data = cacheMemory_.data();
  cacheView_.layers = cache.numLayers;
  cacheView_.blocks = cache.numBlocks;
  cacheView_.kvHeads = cache.numKVHeads;
  cacheView_.blockSize = cache.blockSize;
  cacheView_.headDim = cache.headDim;

  for (const EntryPoint &entry : model_->plan().entries) {
    auto state = std::make_unique<EntryState>();
    KILN_RETURN_IF_ERROR(prepareEntry(entry, *state));
    entries_[&entry] = std::move(state);
  }
  return Status::ok();
}

Status HostDevice::prepareEntry(const EntryPoint &entry, EntryState &state) {
  size_t n = entry.buffers.size();
  state.floats.assign(n, {});
  state.ints.assign(n, {});
  state.f.assign(n, nullptr);
  state.i.assign(n, nullptr);
  state.sizes.assign(n, {});
  state.cacheDType = entry.buffers[entry.kvCache].dtype;
  if (state.cacheDType != cacheView_.dtype)
    return makeError(StatusCode::InvalidArgument, "entry point '", entry.name,
                     "' has a ", dtypeName(state.cacheDType),
                     " KV cache, another entry point ",
                     dtypeName(cacheView_.dtype));
  for (size_t id = 0; id < n; ++id) {
    const Buffer &b = entry.buffers[id];
    switch (b.kind) {
    case BufferKind::Constant:
      if (isFloatDType(b.dtype))
        state.floats[id] = toFloats(b.constantData, b.dtype);
      else
        state.ints[id] = toInts(b.constantData, b.dtype);
      break;
    case BufferKind::Activation:
    case BufferKind::Output:
      if (!isFloatDType(b.dtype))
        return makeError(StatusCode::Unimplemented, "entry point '", entry.name,
                         "': buffer %", id, " is an integer ",
                         bufferKindName(b.kind),
                         ", which the host device does not compute");
      break;
    default:
      break;
    }
  }
  return Status::ok();
}

void HostDevice::prepareWeights() {
  const WeightTable &table = model_->weights();
  size_t count = table.size();
  raw_.assign(count, {});
  owned_.assign(count, {});
  weights_.assign(count, {});
  transposed_.assign(count, {});
  for (size_t w = 0; w < count; ++w) {
    Span<const uint8_t> bytes = model_->weightBytes(w);
    DType dtype = table[w].dtype;
    bool aligned =
        reinterpret_cast<uintptr_t>(bytes.data()) % dtypeBytes(dtype) == 0;
    bool finite = true;
    if (dtype == DType::F16)
      for (size_t k = 0; k + 1 < bytes.size() && finite; k += 2) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + k, 2);
        finite = (h & 0x7c00) != 0x7c00;
      }
    if (!finite) {
      // The widening load of the matrix product assumes finite halves.
      std::vector<float> f = toFloats(bytes, dtype);
      owned_[w].resize(f.size() * 4);
      std::memcpy(owned_[w].data(), f.data(), owned_[w].size());
      raw_[w] = host::WeightRef(owned_[w].data(), DType::F32);
    } else if (!aligned) {
      owned_[w].assign(bytes.begin(), bytes.end());
      raw_[w] = host::WeightRef(owned_[w].data(), dtype);
    } else {
      raw_[w] = host::WeightRef(bytes.data(), dtype);
    }
  }
  // Matrix products read weights [K, N] in their stored type and
  // embeddings read rows of it; a weight read transposed gets an fp32
  // [K, N] copy, one that any other step reads an fp32 copy.
  auto widen = [&](uint32_t w) {
    if (weights_[w].empty()) {
      int64_t n = table[w].numElements();
      weights_[w] = toFloats(
          Span<const uint8_t>(static_cast<const uint8_t *>(raw_[w].data),
                              n * dtypeBytes(raw_[w].dtype)),
          raw_[w].dtype);
    }
  };
  for (const EntryPoint &entry : model_->plan().entries)
    for (const Step &s : entry.steps) {
      bool transposed = s.getInt(AttrKey::TransposeWeight) != 0;
      for (size_t k = 0; k < s.operands.size(); ++k) {
        uint32_t id = s.operands[k];
        if (id == kNoBuffer || entry.buffers[id].kind != BufferKind::Weight)
          continue;
        uint32_t w = entry.buffers[id].weightIndex;
        // Packed weights (and their scales, zero points, metadata) are
        // decoded once, by the format's definition, into the fp32 [K, N]
        // matrix of their codes' (values') entry, what the fp32 copies of
        // transposed weights cost too; per step when a part is not a
        // weight.
        if ((s.kind == OpKind::QuantLinear && k >= 1 && k <= 3) ||
            (s.kind == OpKind::SparseLinear && k >= 1 && k <= 2)) {
          if (k == 1 && transposed_[w].empty())
            decodePacked(entry, s);
          continue;
        }
        bool matrix = (s.kind == OpKind::Linear && k == 1) ||
                      (s.kind == OpKind::GatedMLP && k >= 1);
        if ((s.kind == OpKind::Embedding && k == 0) || (matrix && !transposed))
          continue;
        if (!matrix) {
          widen(w);
          continue;
        }
        if (!transposed_[w].empty())
          continue;
        bool hadCopy = !weights_[w].empty();
        widen(w);
        int64_t rows = table[w].shape[0], cols = table[w].shape[1];
        std::vector<float> &t = transposed_[w];
        t.resize(rows * cols);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            t[c * rows + r] = weights_[w][r * cols + c];
        if (!hadCopy)
          std::vector<float>().swap(weights_[w]);
      }
    }
}

void HostDevice::decodePacked(const EntryPoint &entry, const Step &s) {
  for (size_t k = 1; k < s.operands.size(); ++k)
    if (s.operands[k] != kNoBuffer &&
        entry.buffers[s.operands[k]].kind != BufferKind::Weight &&
        k < (s.kind == OpKind::QuantLinear ? 4u : 3u))
      return;
  auto weight = [&](size_t k) {
    return entry.buffers[s.operands[k]].weightIndex;
  };
  int64_t kIn = entry.buffers[s.operands[0]].shape.back().value;
  int64_t n = entry.buffers[s.operands[1]].shape[0].value;
  std::vector<float> &out = transposed_[weight(1)];
  out.resize(kIn * n);
  if (s.kind == OpKind::QuantLinear) {
    host::QuantWeightRef q;
    q.packed = static_cast<const uint8_t *>(raw_[weight(1)].data);
    q.scales = raw_[weight(2)];
    q.zeroPoints = s.operands[3] == kNoBuffer
                       ? nullptr
                       : static_cast<const uint8_t *>(raw_[weight(3)].data);
    q.bits = s.getInt(AttrKey::Bits);
    q.group = s.getInt(AttrKey::GroupSize);
    q.format = static_cast<QuantFormat>(s.getInt(AttrKey::QuantFormat));
    host::dequantize(q, kIn, n, out.data());
    return;
  }
  host::SparseWeightRef sp;
  sp.values = raw_[weight(1)];
  sp.meta = static_cast<const uint8_t *>(raw_[weight(2)].data);
  host::densify24(sp, kIn, n, out.data());
}

void HostDevice::poisonCache() {
  int64_t n =
      static_cast<int64_t>(cacheMemory_.size()) / dtypeBytes(cacheView_.dtype);
  for (int64_t k = 0; k < n; ++k) {
    if (cacheView_.dtype == DType::F32) {
      float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(cacheMemory_.data() + 4 * k, &nan, 4);
    } else {
      uint16_t nan = cacheView_.dtype == DType::F16 ? 0x7e00 : 0x7fc0;
      std::memcpy(cacheMemory_.data() + 2 * k, &nan, 2);
    }
  }
}

static int64_t product(const std::vector<int64_t> &sizes, size_t from = 0,
                       size_t to = SIZE_MAX) {
  int64_t n = 1;
  for (size_t d = from; d < sizes.size() && d < to; ++d)
    n *= sizes[d];
  return n;
}

Status HostDevice::run(const EntryPoint &entry, const ForwardBatch &batch,
                       Span<const int32_t> tokens, std::vector<float> &logits) {
  auto found = entries_.find(&entry);
  if (!model_ || found == entries_.end())
    return makeError(StatusCode::FailedPrecondition, "entry point '",
                     entry.name, "' does not belong to the prepared model");
  EntryState &st = *found->second;

  // The batch's arrays must agree with each other before anything indexes
  // with them.
  int64_t T = batch.numTokens(), N = batch.numSequences(),
          M = batch.maxBlocksPerSequence;
  KILN_RETURN_IF_ERROR(checkForwardBatch(batch, tokens, cacheView_.blockSize));
  for (const BlockCopy &copy : batch.copies)
    KILN_RETURN_IF_ERROR(
        host::copyBlock(cacheView_, copy.src, copy.dst, copy.numTokens));

  SymbolValues sym;
  sym.T = T;
  sym.N = N;
  sym.M = M;
  sym.P = cacheView_.blocks;
  for (size_t id = 0; id < entry.buffers.size(); ++id) {
    const Buffer &b = entry.buffers[id];
    st.sizes[id] = sym.resolve(b.shape);
    switch (b.kind) {
    case BufferKind::Input: {
      std::vector<int64_t> &v = st.ints[id];
      switch (b.role) {
      case InputRole::Tokens:
        v.assign(tokens.begin(), tokens.end());
        break;
      case InputRole::Positions:
        v.assign(batch.positions.begin(), batch.positions.end());
        break;
      case InputRole::QueryStartLoc:
        v.assign(batch.queryStartLoc.begin(), batch.queryStartLoc.end());
        break;
      case InputRole::BlockTables:
        v.assign(batch.blockTables.begin(), batch.blockTables.end());
        break;
      case InputRole::ContextLens:
        v.assign(batch.contextLengths.begin(), batch.contextLengths.end());
        break;
      case InputRole::SlotMapping:
        v.assign(batch.slotMapping.begin(), batch.slotMapping.end());
        break;
      case InputRole::None:
        break;
      }
      st.i[id] = v.data();
      st.f[id] = nullptr;
      break;
    }
    case BufferKind::Weight:
      // Null unless some step reads it elementwise (prepareWeights).
      st.f[id] = weights_[b.weightIndex].empty()
                     ? nullptr
                     : weights_[b.weightIndex].data();
      st.i[id] = nullptr;
      break;
    case BufferKind::Constant:
      st.f[id] = st.floats[id].empty() ? nullptr : st.floats[id].data();
      st.i[id] = st.ints[id].empty() ? nullptr : st.ints[id].data();
      break;
    case BufferKind::Activation:
    case BufferKind::Output:
      st.floats[id].resize(static_cast<size_t>(product(st.sizes[id])));
      st.f[id] = st.floats[id].data();
      st.i[id] = nullptr;
      break;
    case BufferKind::View:
    case BufferKind::KVCache:
      st.f[id] = nullptr;
      st.i[id] = nullptr;
      break;
    }
  }

  auto F = [&](uint32_t id) -> float * { return st.f[id]; };
  auto I = [&](uint32_t id) -> const int64_t * { return st.i[id]; };
  auto sizes = [&](uint32_t id) -> const std::vector<int64_t> & {
    return st.sizes[id];
  };
  auto isWeight = [&](uint32_t id) {
    return entry.buffers[id].kind == BufferKind::Weight;
  };
  auto weightIndex = [&](uint32_t id) { return entry.buffers[id].weightIndex; };
  // A matrix operand as the matrix product reads it ([K, N]): weights in
  // their stored type or their transposed copy, activations in fp32
  // (transposed into `scratch` when needed).
  auto matrix = [&](uint32_t id, bool transposed,
                    std::vector<float> &scratch) -> host::WeightRef {
    if (isWeight(id)) {
      uint32_t w = entry.buffers[id].weightIndex;
      return transposed ? host::WeightRef(transposed_[w].data()) : raw_[w];
    }
    if (!transposed)
      return host::WeightRef(F(id));
    int64_t rows = sizes(id)[0], cols = sizes(id)[1];
    scratch.resize(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        scratch[c * rows + r] = F(id)[r * cols + c];
    return host::WeightRef(scratch.data());
  };

  for (size_t index = 0; index < entry.steps.size(); ++index) {
    const Step &s = entry.steps[index];
    auto op = [&](size_t k) { return s.operands[k]; };
    auto res = [&](size_t k) { return s.results[k]; };
    // Integer operands (ids, positions, tables) must be bound as integers.
    auto ints = [&](size_t k) -> const int64_t * { return I(op(k)); };
    Status status;
    switch (s.kind) {
    case OpKind::Embedding: {
      const std::vector<int64_t> &table = sizes(op(0));
      if (!ints(1))
        return makeError(StatusCode::Internal, "embedding ids not bound");
      host::WeightRef rows = isWeight(op(0))
                                 ? raw_[entry.buffers[op(0)].weightIndex]
                                 : host::WeightRef(F(op(0)));
      status = host::embedding(rows, table[0], table[1], ints(1),
                               product(sizes(op(1))), F(res(0)));
      break;
    }
    case OpKind::RotaryTable:
      if (!ints(0))
        return makeError(StatusCode::Internal, "positions not bound");
      host::rotaryTable(
          ints(0), sizes(op(0))[0], s.find(AttrKey::InvFreq)->floats,
          s.getFloat(AttrKey::AttentionScaling, 1.0f), F(res(0)), F(res(1)));
      break;
    case OpKind::Cast:
      // fp32 compute: values keep full precision whatever the dtype.
      std::memcpy(F(res(0)), F(op(0)), product(sizes(op(0))) * sizeof(float));
      break;
    case OpKind::RMSNorm: {
      int64_t d = sizes(op(0)).back();
      host::rmsNorm(F(op(0)), d ? product(sizes(op(0))) / d : 0, d, F(op(1)),
                    s.getFloat(AttrKey::Epsilon),
                    s.getFloat(AttrKey::WeightOffset), F(res(0)));
      break;
    }
    case OpKind::LayerNorm: {
      int64_t d = sizes(op(0)).back();
      const float *bias =
          s.operands.size() > 2 && op(2) != kNoBuffer ? F(op(2)) : nullptr;
      host::layerNorm(F(op(0)), d ? product(sizes(op(0))) / d : 0, d, F(op(1)),
                      bias, s.getFloat(AttrKey::Epsilon), F(res(0)));
      break;
    }
    case OpKind::Linear: {
      bool t = s.getInt(AttrKey::TransposeWeight) != 0;
      int64_t k = sizes(op(0)).back();
      int64_t n = sizes(op(1))[t ? 0 : 1];
      std::vector<float> scratch;
      host::WeightRef w = matrix(op(1), t, scratch);
      const float *bias =
          s.operands.size() > 2 && op(2) != kNoBuffer ? F(op(2)) : nullptr;
      host::matmul(F(op(0)), k ? product(sizes(op(0))) / k : 0, k, w, n, bias,
                   F(res(0)));
      break;
    }
    case OpKind::QuantLinear: {
      int64_t k = sizes(op(0)).back(), n = sizes(op(1))[0];
      const std::vector<float> &decoded = transposed_[weightIndex(op(1))];
      const float *bias = op(4) != kNoBuffer ? F(op(4)) : nullptr;
      if (!decoded.empty()) {
        host::matmul(F(op(0)), k ? product(sizes(op(0))) / k : 0, k,
                     host::WeightRef(decoded.data()), n, bias, F(res(0)));
        break;
      }
      host::QuantWeightRef w;
      w.packed = static_cast<const uint8_t *>(raw_[weightIndex(op(1))].data);
      w.scales = isWeight(op(2)) ? raw_[weightIndex(op(2))]
                                 : host::WeightRef(F(op(2)));
      w.zeroPoints =
          op(3) == kNoBuffer
              ? nullptr
              : static_cast<const uint8_t *>(raw_[weightIndex(op(3))].data);
      w.bits = s.getInt(AttrKey::Bits);
      w.group = s.getInt(AttrKey::GroupSize);
      w.format = static_cast<QuantFormat>(s.getInt(AttrKey::QuantFormat));
      std::vector<float> scratch;
      host::quantLinear(F(op(0)), k ? product(sizes(op(0))) / k : 0, k, w, n,
                        bias, F(res(0)), scratch);
      break;
    }
    case OpKind::SparseLinear: {
      int64_t k = sizes(op(0)).back(), n = sizes(op(1))[0];
      const float *bias = op(3) != kNoBuffer ? F(op(3)) : nullptr;
      if (isWeight(op(1)) && !transposed_[weightIndex(op(1))].empty()) {
        host::matmul(F(op(0)), k ? product(sizes(op(0))) / k : 0, k,
                     host::WeightRef(transposed_[weightIndex(op(1))].data()), n,
                     bias, F(res(0)));
        break;
      }
      host::SparseWeightRef w;
      w.values = isWeight(op(1)) ? raw_[weightIndex(op(1))]
                                 : host::WeightRef(F(op(1)));
      w.meta = static_cast<const uint8_t *>(raw_[weightIndex(op(2))].data);
      std::vector<float> scratch;
      host::sparseLinear(F(op(0)), k ? product(sizes(op(0))) / k : 0, k, w, n,
                         bias, F(res(0)), scratch);
      break;
    }
    case OpKind::View:
      st.f[res(0)] = st.f[op(0)];
      st.i[res(0)] = st.i[op(0)];
      break;
    case OpKind::Rope: {
      const std::vector<int64_t> &x = sizes(op(0));
      host::rope(F(op(0)), x[0], x[1], x[2], F(op(1)), F(op(2)),
                 s.getInt(AttrKey::RotaryDim), F(res(0)));
      break;
    }
    case OpKind::KVCacheWrite:
      if (!ints(3))
        return makeError(StatusCode::Internal, "slot mapping not bound");
      status = host::kvCacheWrite(cacheView_, s.getInt(AttrKey::Layer),
                                  F(op(1)), F(op(2)), ints(3), sizes(op(3))[0]);
      break;
    case OpKind::PagedAttention: {
      if (!ints(2) || !ints(3) || !ints(4))
        return makeError(StatusCode::Internal, "block tables not bound");
      host::PagedAttentionParams p;
      p.layer = s.getInt(AttrKey::Layer);
      p.numHeads = s.getInt(AttrKey::NumHeads);
      p.kvHeads = s.getInt(AttrKey::KVHeads);
      p.scale = s.getFloat(AttrKey::Scale);
      p.slidingWindow = s.getInt(AttrKey::SlidingWindow, 0);
      p.softcap = s.getFloat(AttrKey::Softcap, 0.0f);
      const std::vector<int64_t> &tables = sizes(op(2));
      status = host::pagedAttention(cacheView_, p, F(op(0)), sizes(op(0))[0],
                                    ints(2), tables[0], tables[1], ints(3),
                                    ints(4), F(res(0)));
      break;
    }
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div: {
      host::BinaryOp bop = s.kind == OpKind::Add   ? host::BinaryOp::Add
                           : s.kind == OpKind::Sub ? host::BinaryOp::Sub
                           : s.kind == OpKind::Mul ? host::BinaryOp::Mul
                                                   : host::BinaryOp::Div;
      host::binary(bop, F(op(0)), sizes(op(0)), F(op(1)), sizes(op(1)),
                   F(res(0)), sizes(res(0)));
      break;
    }
    case OpKind::GatedMLP: {
      bool t = s.getInt(AttrKey::TransposeWeight) != 0;
      int64_t k = sizes(op(0)).back();
      int64_t inter = sizes(op(1))[t ? 0 : 1];
      int64_t n = sizes(op(3))[t ? 0 : 1];
      std::vector<float> scratch[3];
      host::WeightRef w[3];
      for (int j = 0; j < 3; ++j)
        w[j] = matrix(op(1 + j), t, scratch[j]);
      host::gatedMlp(
          F(op(0)), k ? product(sizes(op(0))) / k : 0, k, w[0], w[1], inter,
          w[2], n, static_cast<Activation>(s.getInt(AttrKey::Activation)),
          F(res(0)), scratch_, storageRounding(entry.buffers[res(0)].dtype));
      break;
    }
    case OpKind::SiLU:
    case OpKind::GELU:
    case OpKind::GeluTanh:
    case OpKind::ReLU:
    case OpKind::Tanh:
      host::activation(s.kind, F(op(0)), product(sizes(op(0))), F(res(0)));
      break;
    case OpKind::GatherLastTokens: {
      if (!ints(1))
        return makeError(StatusCode::Internal, "query_start_loc not bound");
      const std::vector<int64_t> &x = sizes(op(0));
      status = host::gatherLastTokens(F(op(0)), x[0], product(x, 1), ints(1),
                                      sizes(op(1))[0] - 1, F(res(0)));
      break;
    }
    case OpKind::Split: {
      std::vector<float *> outs;
      for (uint32_t r : s.results)
        outs.push_back(F(r));
      host::split(F(op(0)), sizes(op(0)), s.getInt(AttrKey::Axis),
                  s.find(AttrKey::Sizes)->ints, outs);
      break;
    }
    case OpKind::Slice:
      host::slice(F(op(0)), sizes(op(0)), s.find(AttrKey::Axes)->ints,
                  s.find(AttrKey::Starts)->ints, s.find(AttrKey::Steps)->ints,
                  F(res(0)), sizes(res(0)));
      break;
    }
    if (!status.isOk())
      return Status(status.code(), "entry point '" + entry.name + "' step " +
                                       std::to_string(index) + " (" +
                                       opKindName(s.kind) +
                                       "): " + status.message());
    if (roundToStorage_)
      for (uint32_t r : s.results)
        roundToStorage(F(r), product(st.sizes[r]), entry.buffers[r].dtype);
  }

  const float *out = F(entry.output);
  logits.assign(out, out + product(st.sizes[entry.output]));
  return Status::ok();
}

Status HostDevice::checkCacheAccess(const char *what, int32_t layer,
                                    Span<const int64_t> slots) const {
  if (!model_)
    return makeError(StatusCode::FailedPrecondition, "cannot ", what,
                     " the KV cache before prepare");
  if (layer < 0 || layer >= cacheView_.layers)
    return makeError(StatusCode::OutOfRange, "cannot ", what, " layer ", layer,
                     " of a KV cache of ", cacheView_.layers, " layers");
  int64_t numSlots = cacheView_.blocks * cacheView_.blockSize;
  for (size_t j = 0; j < slots.size(); ++j)
    if (slots[j] < 0 || slots[j] >= numSlots)
      return makeError(StatusCode::OutOfRange, "cannot ", what, " slot ",
                       slots[j], " (row ", j, "): the KV cache has ", numSlots,
                       " slots");
  return Status::ok();
}

Status HostDevice::writeCache(int32_t layer, Span<const int64_t> slots,
                              Span<const float> keys,
                              Span<const float> values) {
  KILN_RETURN_IF_ERROR(checkCacheAccess("write", layer, slots));
  size_t row = static_cast<size_t>(cacheView_.kvHeads * cacheView_.headDim);
  if (keys.size() != slots.size() * row || values.size() != keys.size())
    return makeError(StatusCode::InvalidArgument, "cache write of ",
                     slots.size(), " slots needs ", slots.size() * row,
                     " keys and values (", cacheView_.kvHeads, " KV heads of ",
                     cacheView_.headDim, "), got ", keys.size(), " and ",
                     values.size());
  return host::kvCacheWrite(cacheView_, layer, keys.data(), values.data(),
                            slots.data(), static_cast<int64_t>(slots.size()));
}

Status HostDevice::readCache(int32_t layer, Span<const int64_t> slots,
                             std::vector<float> &keys,
                             std::vector<float> &values) {
  KILN_RETURN_IF_ERROR(checkCacheAccess("read", layer, slots));
  size_t n = slots.size() *
             static_cast<size_t>(cacheView_.kvHeads * cacheView_.headDim);
  keys.resize(n);
  values.resize(n);
  return host::kvCacheRead(cacheView_, layer, slots.data(),
                           static_cast<int64_t>(slots.size()), keys.data(),
                           values.data());
}

} // namespace kiln::runtime
