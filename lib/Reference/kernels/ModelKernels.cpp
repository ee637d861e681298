//===- ModelKernels.cpp - Embedding, norms, rotary, linear, attention -----===//
//
// The building blocks of decoder LLMs, written as the Hugging Face reference
// implementations compute them in fp32: products and sums of activations in
// fp32 (normalization statistics and softmax sums in double).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;
namespace llm = kiln::llm;

using Inputs = std::vector<const HostTensor *>;
using Outputs = std::vector<HostTensor>;

/// Moves fp32 values into `out` (allocated with its shape), rounding when its
/// dtype is narrower than f32.
static void storeFloats(HostTensor &out, std::vector<float> &&values) {
  if (out.dtype == DType::F32) {
    out.f = std::move(values);
    return;
  }
  for (int64_t k = 0; k < (int64_t)values.size(); ++k)
    out.set(k, values[k]);
}

static LogicalResult expectFloatResult(Operation *op, const Outputs &outputs) {
  for (const HostTensor &out : outputs)
    if (!out.isFloat())
      return op->emitOpError() << "result must be floating point, got "
                               << dtypeName(out.dtype);
  return success();
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

static double silu(double x) { return x / (1.0 + std::exp(-x)); }
static double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
static double geluTanh(double x) {
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

static LogicalResult activationKernel(Operation *op, const Inputs &inputs,
                                      Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  HostTensor out(x.dtype, x.shape);
  int64_t n = x.numElements();
  if (isa<llm::ReluOp>(op)) {
    for (int64_t k = 0; k < n; ++k) {
      if (x.isFloat())
        out.f[k] = x.f[k] > 0 ? x.f[k] : (std::isnan(x.f[k]) ? x.f[k] : 0.0f);
      else
        out.i[k] = std::max<int64_t>(x.i[k], 0);
    }
    outputs[0] = std::move(out);
    return success();
  }
  if (failed(expectFloat(op, x, "input")))
    return failure();
  double (*fn)(double) = isa<llm::SiLUOp>(op)  ? silu
                         : isa<llm::GeluOp>(op) ? gelu
                                                : geluTanh;
  for (int64_t k = 0; k < n; ++k)
    out.set(k, fn(x.f[k]));
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Embedding and norms
//===----------------------------------------------------------------------===//

static LogicalResult embeddingKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  const HostTensor &table = *inputs[0], &ids = *inputs[1];
  if (table.rank() != 2)
    return op->emitOpError() << "table must be a matrix, got "
                             << table.shapeString();
  if (ids.isFloat())
    return op->emitOpError() << "ids must be integers, got " << ids.shapeString();
  int64_t vocab = table.shape[0], hidden = table.shape[1];
  std::vector<int64_t> shape = ids.shape;
  shape.push_back(hidden);
  HostTensor out(table.dtype, shape);
  for (int64_t t = 0; t < ids.numElements(); ++t) {
    int64_t id = ids.i[t];
    // Negative ids count from the end, as in the ONNX Gather they come from.
    if (id < -vocab || id >= vocab)
      return op->emitOpError() << "token id " << id
                               << " is out of range for a vocabulary of "
                               << vocab;
    if (id < 0)
      id += vocab;
    if (table.isFloat())
      std::copy_n(table.f.begin() + id * hidden, hidden, out.f.begin() + t * hidden);
    else
      std::copy_n(table.i.begin() + id * hidden, hidden, out.i.begin() + t * hidden);
  }
  outputs[0] = std::move(out);
  return success();
}

/// Checks a normalization: x [..., D] float, weight [D] (and bias [D]).
static LogicalResult checkNorm(Operation *op, const HostTensor &x,
                               const HostTensor &w, const HostTensor *bias) {
  if (failed(expectFloat(op, x, "input")) || failed(expectFloat(op, w, "weight")))
    return failure();
  int64_t d = x.rank() ? x.shape.back() : 1;
  if (w.numElements() != d || (bias && bias->numElements() != d))
    return op->emitOpError() << "cannot normalize " << x.shapeString()
                             << " with weight " << w.shapeString()
                             << (bias ? " and bias " + bias->shapeString() : "");
  return success();
}

static LogicalResult rmsNormKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  auto norm = cast<llm::RMSNormOp>(op);
  const HostTensor &x = *inputs[0], &w = *inputs[1];
  if (failed(checkNorm(op, x, w, nullptr)) || failed(expectFloatResult(op, outputs)))
    return failure();
  double eps = norm.getEpsilon().convertToDouble();
  double offset = norm.getWeightOffset().convertToDouble();
  int64_t d = w.numElements(), rows = d ? x.numElements() / d : 0;
  HostTensor out(outputs[0].dtype, x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x.f.data() + r * d;
    double ms = 0;
    for (int64_t j = 0; j < d; ++j)
      ms += (double)row[j] * row[j];
    double inv = 1.0 / std::sqrt(ms / (double)d + eps);
    for (int64_t j = 0; j < d; ++j)
      out.set(r * d + j, row[j] * inv * ((double)w.f[j] + offset));
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult layerNormKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  auto norm = cast<llm::LayerNormOp>(op);
  const HostTensor &x = *inputs[0], &w = *inputs[1];
  const HostTensor *bias = inputFor(op, inputs, norm.getBias());
  if (failed(checkNorm(op, x, w, bias)) || failed(expectFloatResult(op, outputs)))
    return failure();
  double eps = norm.getEpsilon().convertToDouble();
  int64_t d = w.numElements(), rows = d ? x.numElements() / d : 0;
  HostTensor out(outputs[0].dtype, x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x.f.data() + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += row[j];
    mean /= (double)d;
    for (int64_t j = 0; j < d; ++j)
      var += (row[j] - mean) * (row[j] - mean);
    var /= (double)d;
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < d; ++j)
      out.set(r * d + j,
              (row[j] - mean) * inv * w.f[j] + (bias ? bias->get(j) : 0.0));
  }
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Rotary embeddings
//===----------------------------------------------------------------------===//

static LogicalResult rotaryTableKernel(Operation *op, const Inputs &inputs,
                                       Outputs &outputs) {
  auto table = cast<llm::RotaryTableOp>(op);
  const HostTensor &pos = *inputs[0];
  if (failed(expectFloatResult(op, outputs)))
    return failure();
  ArrayRef<float> invFreq = table.getInvFreq();
  float scaling = table.getAttentionScaling().convertToFloat();
  int64_t half = invFreq.size(), rot = 2 * half, n = pos.numElements();
  std::vector<int64_t> shape = pos.shape;
  shape.push_back(rot);
  HostTensor cosT(outputs[0].dtype, shape), sinT(outputs[1].dtype, shape);
  for (int64_t p = 0; p < n; ++p) {
    float position = (float)pos.get(p);
    for (int64_t i = 0; i < rot; ++i) {
      // The angle is an fp32 product, as the fp32 reference computes it.
      float angle = position * invFreq[i % half];
      cosT.set(p * rot + i, (float)std::cos((double)angle) * scaling);
      sinT.set(p * rot + i, (float)std::sin((double)angle) * scaling);
    }
  }
  outputs[0] = std::move(cosT);
  outputs[1] = std::move(sinT);
  return success();
}

/// The packed form of the paged entry points: x [T, H, D], cos/sin [T, rot].
static LogicalResult packedRope(Operation *op, const HostTensor &x,
                                const HostTensor &cosT, const HostTensor &sinT,
                                int64_t rot, Outputs &outputs) {
  int64_t T = x.shape[0], H = x.shape[1], D = x.shape[2];
  std::vector<int64_t> tableShape = {T, rot};
  if (cosT.shape != tableShape || sinT.shape != tableShape || rot > D ||
      rot % 2 != 0)
    return op->emitOpError() << "cannot rotate " << x.shapeString()
                             << " with tables " << cosT.shapeString() << " and "
                             << sinT.shapeString() << " (rotary_dim " << rot
                             << ")";
  int64_t half = rot / 2;
  std::vector<float> y(x.f);
  for (int64_t t = 0; t < T; ++t) {
    const float *c = cosT.f.data() + t * rot;
    const float *sn = sinT.f.data() + t * rot;
    for (int64_t h = 0; h < H; ++h) {
      const float *in = x.f.data() + (t * H + h) * D;
      float *o = y.data() + (t * H + h) * D;
      for (int64_t i = 0; i < rot; ++i) {
        float rotated = i < half ? -in[i + half] : in[i - half];
        o[i] = in[i] * c[i] + rotated * sn[i];
      }
    }
  }
  HostTensor out(outputs[0].dtype, x.shape);
  storeFloats(out, std::move(y));
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult ropeKernel(Operation *op, const Inputs &inputs,
                                Outputs &outputs) {
  const HostTensor &x = *inputs[0], &cosT = *inputs[1], &sinT = *inputs[2];
  int64_t rot = cast<llm::RopeOp>(op).getRotaryDim();
  if (failed(expectFloat(op, x, "input")) || failed(expectFloat(op, cosT, "cos")) ||
      failed(expectFloat(op, sinT, "sin")) || failed(expectFloatResult(op, outputs)))
    return failure();
  if (x.rank() == 3)
    return packedRope(op, x, cosT, sinT, rot, outputs);
  if (x.rank() != 4)
    return op->emitOpError() << "input must be [B, H, S, D] or [T, H, D], got "
                             << x.shapeString();
  int64_t B = x.shape[0], H = x.shape[1], S = x.shape[2], D = x.shape[3];
  // cos/sin are [B, S, rot]; [S, rot], [1, S, rot] and [B, 1, S, rot]
  // (or per head [B, H, S, rot]) broadcast the same way.
  int64_t lead = S * rot ? cosT.numElements() / (S * rot) : 0;
  bool tableOk = cosT.rank() >= 2 && cosT.shape == sinT.shape &&
                 cosT.shape[cosT.rank() - 2] == S && cosT.shape.back() == rot &&
                 (lead == 1 || lead == B || lead == B * H);
  if (!tableOk || rot > D || rot % 2 != 0)
    return op->emitOpError() << "cannot rotate " << x.shapeString()
                             << " with tables " << cosT.shapeString() << " and "
                             << sinT.shapeString() << " (rotary_dim " << rot
                             << ")";
  int64_t half = rot / 2;
  std::vector<float> y(x.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t t = lead == 1 ? 0 : (lead == B ? b : b * H + h);
      for (int64_t s = 0; s < S; ++s) {
        const float *in = x.f.data() + ((b * H + h) * S + s) * D;
        float *o = y.data() + ((b * H + h) * S + s) * D;
        const float *c = cosT.f.data() + (t * S + s) * rot;
        const float *sn = sinT.f.data() + (t * S + s) * rot;
        for (int64_t i = 0; i < rot; ++i) {
          float rotated = i < half ? -in[i + half] : in[i - half];
          o[i] = in[i] * c[i] + rotated * sn[i];
        }
      }
    }
  HostTensor out(outputs[0].dtype, x.shape);
  storeFloats(out, std::move(y));
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Linear layers and MLP
//===----------------------------------------------------------------------===//

/// Checks `w` as a dense weight for inputs with `k` features; returns N.
static FailureOr<int64_t> weightColumns(Operation *op, const HostTensor &w,
                                        bool transposed, int64_t k,
                                        StringRef what) {
  if (failed(expectFloat(op, w, what)))
    return failure();
  if (w.rank() != 2 || w.shape[transposed ? 1 : 0] != k)
    return op->emitOpError() << "cannot multiply " << k << " input features by "
                             << what << " " << w.shapeString()
                             << (transposed ? " (transposed)" : "");
  return w.shape[transposed ? 0 : 1];
}

static LogicalResult linearKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  auto linear = cast<llm::LinearOp>(op);
  const HostTensor &x = *inputs[0], &w = *inputs[1];
  const HostTensor *bias = inputFor(op, inputs, linear.getBias());
  bool transposed = linear.getTransposeWeight();
  if (failed(expectFloat(op, x, "input")) || failed(expectFloatResult(op, outputs)))
    return failure();
  if (x.rank() < 1)
    return op->emitOpError() << "input must have rank >= 1";
  int64_t K = x.shape.back();
  auto N = weightColumns(op, w, transposed, K, "weight");
  if (failed(N))
    return failure();
  if (bias && (!bias->isFloat() || bias->numElements() != *N))
    return op->emitOpError() << "bias " << bias->shapeString() << " must have "
                             << *N << " elements";
  int64_t M = K ? x.numElements() / K : 0;
  std::vector<int64_t> shape = x.shape;
  shape.back() = *N;
  std::vector<float> y(M * *N);
  denseLayer(x.f.data(), M, K, w.f.data(), transposed, *N,
             bias ? bias->f.data() : nullptr, y.data());
  HostTensor out(outputs[0].dtype, shape);
  storeFloats(out, std::move(y));
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult gatedMlpKernel(Operation *op, const Inputs &inputs,
                                    Outputs &outputs) {
  auto mlp = cast<llm::GatedMLPOp>(op);
  const HostTensor &x = *inputs[0], &wg = *inputs[1], &wu = *inputs[2],
                   &wd = *inputs[3];
  bool t = mlp.getTransposeWeights();
  if (failed(expectFloat(op, x, "input")) || failed(expectFloatResult(op, outputs)))
    return failure();
  if (x.rank() < 1)
    return op->emitOpError() << "input must have rank >= 1";
  int64_t K = x.shape.back(), M = K ? x.numElements() / K : 0;
  auto I = weightColumns(op, wg, t, K, "gate weight");
  if (failed(I))
    return failure();
  auto I2 = weightColumns(op, wu, t, K, "up weight");
  if (failed(I2))
    return failure();
  if (*I2 != *I)
    return op->emitOpError() << "gate weight " << wg.shapeString()
                             << " and up weight " << wu.shapeString()
                             << " differ";
  auto N = weightColumns(op, wd, t, *I, "down weight");
  if (failed(N))
    return failure();
  StringRef act = mlp.getActivation();
  double (*fn)(double) = act == "silu" ? silu : act == "gelu" ? gelu : geluTanh;
  std::vector<float> gate(M * *I), up(M * *I);
  denseLayer(x.f.data(), M, K, wg.f.data(), t, *I, nullptr, gate.data());
  denseLayer(x.f.data(), M, K, wu.f.data(), t, *I, nullptr, up.data());
  for (int64_t k = 0; k < M * *I; ++k)
    gate[k] = (float)fn(gate[k]) * up[k];
  std::vector<float> y(M * *N);
  denseLayer(gate.data(), M, *I, wd.f.data(), t, *N, nullptr, y.data());
  std::vector<int64_t> shape = x.shape;
  shape.back() = *N;
  HostTensor out(outputs[0].dtype, shape);
  storeFloats(out, std::move(y));
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

static LogicalResult attentionKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  auto attn = cast<llm::AttentionOp>(op);
  const HostTensor &q = *inputs[0], &k = *inputs[1], &v = *inputs[2];
  const HostTensor *mask = inputFor(op, inputs, attn.getMask());
  for (auto [t, what] : {std::pair<const HostTensor *, const char *>{&q, "query"},
                         {&k, "key"},
                         {&v, "value"}}) {
    if (failed(expectFloat(op, *t, what)))
      return failure();
    if (t->rank() != 4)
      return op->emitOpError() << what << " must have rank 4, got "
                               << t->shapeString();
  }
  if (failed(expectFloatResult(op, outputs)))
    return failure();
  int64_t heads = attn.getNumHeads(), kvHeads = attn.getKvHeads();
  int64_t B = q.shape[0], S = q.shape[2], D = q.shape[3];
  int64_t T = k.shape[2], Dv = v.shape[3];
  if (q.shape[1] != heads || k.shape[1] != kvHeads || v.shape[1] != kvHeads ||
      k.shape[0] != B || v.shape[0] != B || k.shape[3] != D || v.shape[2] != T ||
      kvHeads <= 0 || heads % kvHeads != 0)
    return op->emitOpError() << "cannot attend with query " << q.shapeString()
                             << ", key " << k.shapeString() << " and value "
                             << v.shapeString() << " (" << heads << " heads, "
                             << kvHeads << " KV heads)";
  std::vector<int64_t> scoreShape = {B, heads, S, T}, maskStrides;
  if (mask) {
    auto shape = broadcastShapes(op, mask->shape, scoreShape);
    if (failed(shape))
      return failure();
    if (*shape != scoreShape)
      return op->emitOpError() << "mask " << mask->shapeString()
                               << " does not broadcast to the scores "
                               << shapeString(scoreShape);
    maskStrides = broadcastStrides(mask->shape, scoreShape);
  }
  float scale = attn.getScale().convertToFloat();
  bool causal = attn.getCausal();
  std::optional<uint64_t> window = attn.getSlidingWindow();
  std::optional<APFloat> softcap = attn.getSoftcap();
  double cap = softcap ? softcap->convertToDouble() : 0.0;
  int64_t group = heads / kvHeads;

  std::vector<float> y(B * heads * S * Dv, 0.0f);
  std::vector<double> scores(T);
  std::vector<double> acc(Dv);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvh = h / group;
      const float *kBase = k.f.data() + (b * kvHeads + kvh) * T * D;
      const float *vBase = v.f.data() + (b * kvHeads + kvh) * T * Dv;
      for (int64_t i = 0; i < S; ++i) {
        const float *qi = q.f.data() + ((b * heads + h) * S + i) * D;
        int64_t pos = i + T - S; // the query's position among the keys
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          bool visible = !causal || j <= pos;
          if (window)
            visible = visible && j > pos - (int64_t)*window;
          double s = -INFINITY;
          if (visible) {
            const float *kj = kBase + j * D;
            float dot = 0;
            for (int64_t d = 0; d < D; ++d)
              dot += qi[d] * kj[d];
            s = (double)(dot * scale);
            if (softcap)
              s = cap * std::tanh(s / cap);
            if (mask) {
              int64_t m = b * maskStrides[0] + h * maskStrides[1] +
                          i * maskStrides[2] + j * maskStrides[3];
              if (mask->dtype == DType::Bool)
                s = mask->i[m] ? s : -INFINITY;
              else
                s += mask->get(m);
            }
          }
          scores[j] = s;
          mx = std::max(mx, s);
        }
        float *yi = y.data() + ((b * heads + h) * S + i) * Dv;
        if (std::isinf(mx) && mx < 0)
          continue; // nothing visible: the output row stays zero
        double sum = 0;
        for (int64_t j = 0; j < T; ++j) {
          scores[j] = std::exp(scores[j] - mx);
          sum += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < T; ++j) {
          if (scores[j] == 0)
            continue;
          double p = scores[j] / sum;
          const float *vj = vBase + j * Dv;
          for (int64_t d = 0; d < Dv; ++d)
            acc[d] += p * vj[d];
        }
        for (int64_t d = 0; d < Dv; ++d)
          yi[d] = (float)acc[d];
      }
    }
  HostTensor out(outputs[0].dtype, {B, heads, S, Dv});
  storeFloats(out, std::move(y));
  outputs[0] = std::move(out);
  return success();
}

void kiln::reference::registerModelKernels(KernelRegistry &registry) {
  registry.add("llm.embedding", embeddingKernel);
  registry.add("llm.rms_norm", rmsNormKernel);
  registry.add("llm.layer_norm", layerNormKernel);
  registry.add("llm.rotary_table", rotaryTableKernel);
  registry.add("llm.rope", ropeKernel);
  registry.add("llm.linear", linearKernel);
  registry.add("llm.gated_mlp", gatedMlpKernel);
  registry.add("llm.attention", attentionKernel);
  registry.add("llm.silu", activationKernel);
  registry.add("llm.gelu", activationKernel);
  registry.add("llm.gelu_tanh", activationKernel);
  registry.add("llm.relu", activationKernel);
}
