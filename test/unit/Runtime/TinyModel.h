//===- TinyModel.h - A small decoder built as a launch plan by hand -------===//
//
// For the runtime's unit tests: a two-layer Llama-style decoder (RMSNorm,
// q/k/v projections with a value bias, RoPE, GQA paged attention, a
// transposed output projection, a SwiGLU MLP, a transposed LM head) over
// a vocabulary of 16, written directly as LaunchPlan entry points
// (prefill with the last tokens' logits, decode, prefill_all) with seeded
// random weights. No compiler involved, so plan validation, the host
// device and the engine are tested on their own.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_RUNTIME_TINYMODEL_H
#define KILN_TEST_UNIT_RUNTIME_TINYMODEL_H

#include "kiln/runtime/Crc32.h"
#include "kiln/runtime/Half.h"
#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/ModelConfig.h"
#include "kiln/runtime/WeightTable.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace kiln::runtime::testing {

struct TinyModel {
  ModelConfig config;
  LaunchPlan plan;
  WeightTable weights;
  std::vector<std::vector<uint8_t>> data;
};

class EntryWriter {
public:
  explicit EntryWriter(EntryPoint &e) : e(e) {}

  uint32_t buffer(BufferKind kind, DType dtype, Shape shape,
                  std::string name = "") {
    Buffer b;
    b.kind = kind;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.name = std::move(name);
    e.buffers.push_back(std::move(b));
    return static_cast<uint32_t>(e.buffers.size() - 1);
  }
  uint32_t input(InputRole role, Shape shape, DType dtype) {
    uint32_t id = buffer(BufferKind::Input, dtype, std::move(shape));
    e.buffers[id].role = role;
    return id;
  }
  uint32_t act(Shape shape) {
    return buffer(BufferKind::Activation, DType::F32, std::move(shape));
  }
  uint32_t view(uint32_t source, Shape shape) {
    uint32_t id = buffer(BufferKind::View, DType::F32, std::move(shape));
    e.buffers[id].source = source;
    step(OpKind::View, {source}, {id});
    return id;
  }
  void step(OpKind kind, std::vector<uint32_t> operands,
            std::vector<uint32_t> results, std::vector<Attr> attrs = {}) {
    Step s;
    s.kind = kind;
    s.operands = std::move(operands);
    s.results = std::move(results);
    s.attrs = std::move(attrs);
    e.steps.push_back(std::move(s));
  }

private:
  EntryPoint &e;
};

inline TinyModel makeTinyModel(DType cacheDType = DType::F32,
                               uint64_t seed = 7,
                               DType weightDType = DType::F32) {
  TinyModel m;
  ModelConfig &c = m.config;
  c.vocabSize = 16;
  c.bosTokenId = 1;
  c.eosTokenId = 2;
  c.contextLength = 32;
  c.numLayers = 2;
  c.numHeads = 2;
  c.numKVHeads = 1;
  c.headDim = 4;
  c.hiddenSize = 8;
  c.intermediateSize = 12;
  c.ropeTheta = 10000;
  c.dtype = "f32";
  c.blockSize = 4;

  std::mt19937_64 rng(seed);
  auto addWeight = [&](const std::string &name, std::vector<int64_t> shape,
                       float center, float spread) {
    WeightInfo w;
    w.name = name;
    w.dtype = weightDType;
    w.shape = shape;
    w.storage = WeightStorage::Embedded;
    w.length = w.numBytes();
    std::vector<uint8_t> bytes(w.numBytes());
    std::uniform_real_distribution<float> dist(-spread, spread);
    for (int64_t k = 0; k < w.numElements(); ++k) {
      float v = center + dist(rng);
      if (weightDType == DType::F32) {
        std::memcpy(bytes.data() + 4 * k, &v, 4);
      } else {
        uint16_t h =
            weightDType == DType::F16 ? floatToHalf(v) : floatToBf16(v);
        std::memcpy(bytes.data() + 2 * k, &h, 2);
      }
    }
    w.crc32 = crc32(bytes.data(), bytes.size());
    m.weights.weights.push_back(w);
    m.data.push_back(std::move(bytes));
    return static_cast<uint32_t>(m.weights.size() - 1);
  };
  uint32_t wEmb = addWeight("embed", {16, 8}, 0, 1.0f);
  struct Layer {
    uint32_t norm1, q, k, v, vBias, o, norm2, gate, up, down;
  };
  std::vector<Layer> layers;
  for (int l = 0; l < 2; ++l) {
    std::string p = "layer" + std::to_string(l) + ".";
    Layer L;
    L.norm1 = addWeight(p + "norm1", {8}, 1, 0.1f);
    L.q = addWeight(p + "q", {8, 8}, 0, 0.5f);
    L.k = addWeight(p + "k", {8, 4}, 0, 0.5f);
    L.v = addWeight(p + "v", {8, 4}, 0, 0.5f);
    L.vBias = addWeight(p + "v_bias", {4}, 0, 0.1f);
    L.o = addWeight(p + "o", {8, 8}, 0, 0.5f); // stored [N, K]
    L.norm2 = addWeight(p + "norm2", {8}, 1, 0.1f);
    L.gate = addWeight(p + "gate", {8, 12}, 0, 0.5f);
    L.up = addWeight(p + "up", {8, 12}, 0, 0.5f);
    L.down = addWeight(p + "down", {12, 8}, 0, 0.5f);
    layers.push_back(L);
  }
  uint32_t wFinal = addWeight("final_norm", {8}, 1, 0.1f);
  uint32_t wHead = addWeight("lm_head", {16, 8}, 0, 1.0f); // [V, H]

  auto T = Dim::symbol(Sym::T), N = Dim::symbol(Sym::N),
       M = Dim::symbol(Sym::M), N1 = Dim::symbol(Sym::N, 1),
       P = Dim::symbol(Sym::P);
  auto C = [](int64_t v) { return Dim::constant(v); };

  for (const char *name : {"prefill", "decode", "prefill_all"}) {
    EntryPoint e;
    e.name = name;
    bool last = std::string(name) == "prefill";
    e.logits = last ? LogitsMode::Last : LogitsMode::All;
    EntryWriter w(e);
    uint32_t tokens = w.input(InputRole::Tokens, {T}, DType::I64);
    uint32_t positions = w.input(InputRole::Positions, {T}, DType::I64);
    uint32_t qsl = w.input(InputRole::QueryStartLoc, {N1}, DType::I32);
    uint32_t tables = w.input(InputRole::BlockTables, {N, M}, DType::I32);
    uint32_t ctx = w.input(InputRole::ContextLens, {N}, DType::I32);
    uint32_t slots = w.input(InputRole::SlotMapping, {T}, DType::I64);
    uint32_t cache = w.buffer(BufferKind::KVCache, cacheDType,
                              {C(2), P, C(2), C(1), C(4), C(4)}, "kv_cache");
    auto weight = [&](uint32_t index) {
      const WeightInfo &info = m.weights[index];
      Shape shape;
      for (int64_t d : info.shape)
        shape.push_back(C(d));
      uint32_t id = w.buffer(BufferKind::Weight, info.dtype, shape, info.name);
      e.buffers[id].weightIndex = index;
      return id;
    };
    uint32_t h = w.act({T, C(8)});
    w.step(OpKind::Embedding, {weight(wEmb), tokens}, {h});
    uint32_t cosT = w.act({T, C(4)}), sinT = w.act({T, C(4)});
    w.step(OpKind::RotaryTable, {positions}, {cosT, sinT},
           {Attr::ofFloats(AttrKey::InvFreq, {1.0f, 0.1f}),
            Attr::ofFloat(AttrKey::AttentionScaling, 1.0f)});
    for (int l = 0; l < 2; ++l) {
      const Layer &L = layers[l];
      uint32_t x = w.act({T, C(8)});
      w.step(OpKind::RMSNorm, {h, weight(L.norm1)}, {x},
             {Attr::ofFloat(AttrKey::Epsilon, 1e-6f)});
      uint32_t q = w.act({T, C(8)}), k = w.act({T, C(4)}),
               v = w.act({T, C(4)});
      w.step(OpKind::Linear, {x, weight(L.q)}, {q});
      w.step(OpKind::Linear, {x, weight(L.k)}, {k});
      w.step(OpKind::Linear, {x, weight(L.v), weight(L.vBias)}, {v});
      uint32_t qh = w.view(q, {T, C(2), C(4)});
      uint32_t kh = w.view(k, {T, C(1), C(4)});
      uint32_t vh = w.view(v, {T, C(1), C(4)});
      uint32_t qr = w.act({T, C(2), C(4)}), kr = w.act({T, C(1), C(4)});
      w.step(OpKind::Rope, {qh, cosT, sinT}, {qr},
             {Attr::ofInt(AttrKey::RotaryDim, 4)});
      w.step(OpKind::Rope, {kh, cosT, sinT}, {kr},
             {Attr::ofInt(AttrKey::RotaryDim, 4)});
      w.step(OpKind::KVCacheWrite, {cache, kr, vh, slots}, {},
             {Attr::ofInt(AttrKey::Layer, l)});
      uint32_t a = w.act({T, C(2), C(4)});
      w.step(OpKind::PagedAttention, {qr, cache, tables, ctx, qsl}, {a},
             {Attr::ofInt(AttrKey::Layer, l), Attr::ofFloat(AttrKey::Scale, 0.5f),
              Attr::ofInt(AttrKey::NumHeads, 2),
              Attr::ofInt(AttrKey::KVHeads, 1)});
      uint32_t av = w.view(a, {T, C(8)});
      uint32_t o = w.act({T, C(8)});
      w.step(OpKind::Linear, {av, weight(L.o)}, {o},
             {Attr::ofInt(AttrKey::TransposeWeight, 1)});
      uint32_t h1 = w.act({T, C(8)});
      w.step(OpKind::Add, {h, o}, {h1});
      uint32_t y = w.act({T, C(8)});
      w.step(OpKind::RMSNorm, {h1, weight(L.norm2)}, {y},
             {Attr::ofFloat(AttrKey::Epsilon, 1e-6f),
              Attr::ofFloat(AttrKey::WeightOffset, 0.0f)});
      uint32_t mlp = w.act({T, C(8)});
      w.step(OpKind::GatedMLP,
             {y, weight(L.gate), weight(L.up), weight(L.down)}, {mlp},
             {Attr::ofInt(AttrKey::Activation,
                          static_cast<int64_t>(Activation::SiLU))});
      uint32_t h2 = w.act({T, C(8)});
      w.step(OpKind::Add, {h1, mlp}, {h2});
      h = h2;
    }
    Dim rows = T;
    if (last) {
      uint32_t g = w.act({N, C(8)});
      w.step(OpKind::GatherLastTokens, {h, qsl}, {g});
      h = g;
      rows = N;
    }
    uint32_t f = w.act({rows, C(8)});
    w.step(OpKind::RMSNorm, {h, weight(wFinal)}, {f},
           {Attr::ofFloat(AttrKey::Epsilon, 1e-6f)});
    uint32_t logits = w.buffer(BufferKind::Output, DType::F32,
                               {rows, C(16)}, "logits");
    w.step(OpKind::Linear, {f, weight(wHead)}, {logits},
           {Attr::ofInt(AttrKey::TransposeWeight, 1)});
    m.plan.entries.push_back(std::move(e));
  }
  // Embedded offsets, as a writer would lay them out.
  uint64_t offset = 0;
  for (WeightInfo &w : m.weights.weights) {
    w.offset = offset;
    offset += (w.length + 63) / 64 * 64;
  }
  m.plan.target = "host";
  return m;
}

/// The Weights section for makeTinyModel's embedded offsets.
inline std::vector<uint8_t> weightsSection(const TinyModel &m) {
  std::vector<uint8_t> section;
  for (size_t i = 0; i < m.weights.size(); ++i) {
    const WeightInfo &w = m.weights[i];
    section.resize(w.offset + w.length);
    std::memcpy(section.data() + w.offset, m.data[i].data(), w.length);
  }
  return section;
}

inline StatusOr<std::shared_ptr<const Model>> load(const TinyModel &m) {
  return Model::fromParts(m.config, m.plan, m.weights, m.data);
}

} // namespace kiln::runtime::testing

#endif // KILN_TEST_UNIT_RUNTIME_TINYMODEL_H
