//===- HostKernels.cpp - The host device's fp32 step kernels --------------===//
//
// Semantics follow lib/Reference/kernels (ModelKernels.cpp, CacheKernels.cpp):
// the same formulas and the same precision choices, so that the host device
// reproduces the interpreter up to fp32 summation order. Two kernels carry
// the time of a forward step and are written for speed: the matrix product
// (register tiles of 4 rows x 32 columns that the compiler keeps in vector
// registers) and paged attention (each sequence's keys and values of a KV
// head gathered once into fp32 rows). On x86-64 Linux they are compiled
// twice through target_clones, for AVX2/FMA (x86-64-v3) and the baseline,
// and the loader picks one for the CPU; elsewhere the baseline only.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/HostKernels.h"
#include "kiln/runtime/Half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define KILN_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KILN_HOT
#endif
#define KILN_INLINE inline __attribute__((always_inline))
#if defined(__clang__) && defined(__x86_64__) && defined(__FLT16_MANT_DIG__)
#define KILN_HAS_FLOAT16 1
#else
#define KILN_HAS_FLOAT16 0
#endif

namespace kiln::runtime::host {

namespace {

/// fp16 -> fp32 through a table built on first use (the cache is read far
/// more often than written).
struct HalfTable {
  float values[65536];
  HalfTable() {
    for (uint32_t h = 0; h < 65536; ++h)
      values[h] = halfToFloat(static_cast<uint16_t>(h));
  }
};
const float *halfTable() {
  static const HalfTable *table = new HalfTable();
  return table->values;
}

/// fp16 -> fp32 that vectorizes: F16C where the compiler has _Float16 (in
/// the AVX2 clones), else a table.
KILN_INLINE float widenHalf(const uint16_t *p, const float *table) {
#if KILN_HAS_FLOAT16
  (void)table;
  _Float16 h;
  std::memcpy(&h, p, 2);
  return static_cast<float>(h);
#else
  return table[*p];
#endif
}

/// Reads n cache elements starting at element `at` into fp32.
KILN_INLINE void loadCache(const KVCacheView &c, int64_t at, int64_t n,
                           float *out) {
  switch (c.dtype) {
  case DType::F16: {
    const uint16_t *p = static_cast<const uint16_t *>(c.data) + at;
    const float *table = KILN_HAS_FLOAT16 ? nullptr : halfTable();
    for (int64_t i = 0; i < n; ++i)
      out[i] = widenHalf(p + i, table);
    break;
  }
  case DType::BF16: {
    const uint16_t *p = static_cast<const uint16_t *>(c.data) + at;
    for (int64_t i = 0; i < n; ++i)
      out[i] = bf16ToFloat(p[i]);
    break;
  }
  default:
    std::memcpy(out, static_cast<const float *>(c.data) + at,
                n * sizeof(float));
    break;
  }
}

void storeCache(const KVCacheView &c, int64_t at, int64_t n, const float *in) {
  switch (c.dtype) {
  case DType::F16: {
    uint16_t *p = static_cast<uint16_t *>(c.data) + at;
    for (int64_t i = 0; i < n; ++i)
      p[i] = floatToHalf(in[i]);
    break;
  }
  case DType::BF16: {
    uint16_t *p = static_cast<uint16_t *>(c.data) + at;
    for (int64_t i = 0; i < n; ++i)
      p[i] = floatToBf16(in[i]);
    break;
  }
  default:
    std::memcpy(static_cast<float *>(c.data) + at, in, n * sizeof(float));
    break;
  }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double geluTanh(double x) {
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

//===----------------------------------------------------------------------===//
// Matrix product tiles
//===----------------------------------------------------------------------===//

constexpr int64_t kTileCols = 32;
/// Head sizes the attention kernel keeps in a stack accumulator.
constexpr int64_t kMaxHeadDim = 1024;

/// Widening loads of one weight element, branch-free so that the compiler
/// vectorizes them. A half's bits shifted into an fp32 and scaled by 2^112
/// re-bias the exponent exactly for normal and subnormal values (not for
/// inf/NaN, which weights do not hold; the device checks).
struct F32Load {
  using T = float;
  static float get(const float *p, int64_t j) { return p[j]; }
};
struct F16Load {
  using T = uint16_t;
  static float get(const uint16_t *p, int64_t j) {
#if KILN_HAS_FLOAT16
    // One vcvtph2ps per eight values where F16C exists.
    _Float16 h;
    std::memcpy(&h, p + j, 2);
    return static_cast<float>(h);
#else
    uint32_t h = p[j];
    float magnitude = bitsToFloat((h & 0x7fffu) << 13) * 0x1p112f;
    return bitsToFloat(floatBits(magnitude) | ((h & 0x8000u) << 16));
#endif
  }
};
struct BF16Load {
  using T = uint16_t;
  static float get(const uint16_t *p, int64_t j) {
    return bitsToFloat(static_cast<uint32_t>(p[j]) << 16);
  }
};

/// y[R, 32] = x[R, k] @ w[k, 32-column panel] (+ bias), full tile.
template <int R, typename L>
KILN_INLINE void fullTile(const float *x, int64_t ldx, const typename L::T *w,
                          int64_t ldw, int64_t k, const float *bias, float *y,
                          int64_t ldy) {
  float acc[R][kTileCols];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kTileCols; ++j)
      acc[r][j] = bias ? bias[j] : 0.0f;
  for (int64_t kk = 0; kk < k; ++kk) {
    const typename L::T *wr = w + kk * ldw;
    float wv[kTileCols];
    for (int j = 0; j < kTileCols; ++j)
      wv[j] = L::get(wr, j);
    for (int r = 0; r < R; ++r) {
      float a = x[r * ldx + kk];
      for (int j = 0; j < kTileCols; ++j)
        acc[r][j] += a * wv[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kTileCols; ++j)
      y[r * ldy + j] = acc[r][j];
}

/// The same for a partial tile (rows <= 4, cols < 32).
template <typename L>
KILN_INLINE void partialTile(const float *x, int64_t ldx, int64_t rows,
                             const typename L::T *w, int64_t ldw, int64_t k,
                             int64_t cols, const float *bias, float *y,
                             int64_t ldy) {
  float acc[4][kTileCols];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      acc[r][j] = bias ? bias[j] : 0.0f;
  for (int64_t kk = 0; kk < k; ++kk) {
    const typename L::T *wr = w + kk * ldw;
    for (int64_t r = 0; r < rows; ++r) {
      float a = x[r * ldx + kk];
      for (int64_t j = 0; j < cols; ++j)
        acc[r][j] += a * L::get(wr, j);
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      y[r * ldy + j] = acc[r][j];
}

/// Few rows (decode): stream w once, row after row, four rows of w at a
/// time, accumulating into y (which stays in L1). Memory-bound, so the
/// sequential reads matter more than register tiles.
template <typename L>
KILN_INLINE void streamRows(const float *x, int64_t m, int64_t k,
                            const typename L::T *w, int64_t n,
                            const float *bias, float *y) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j)
      y[r * n + j] = bias ? bias[j] : 0.0f;
  int64_t kk = 0;
  for (; kk + 4 <= k; kk += 4) {
    const typename L::T *w0 = w + kk * n, *w1 = w0 + n, *w2 = w1 + n,
                        *w3 = w2 + n;
    for (int64_t r = 0; r < m; ++r) {
      const float *xr = x + r * k + kk;
      float a0 = xr[0], a1 = xr[1], a2 = xr[2], a3 = xr[3];
      float *yr = y + r * n;
      for (int64_t j = 0; j < n; ++j)
        yr[j] += a0 * L::get(w0, j) + a1 * L::get(w1, j) +
                 a2 * L::get(w2, j) + a3 * L::get(w3, j);
    }
  }
  for (; kk < k; ++kk) {
    const typename L::T *wr = w + kk * n;
    for (int64_t r = 0; r < m; ++r) {
      float a = x[r * k + kk];
      float *yr = y + r * n;
      for (int64_t j = 0; j < n; ++j)
        yr[j] += a * L::get(wr, j);
    }
  }
}

template <typename L>
KILN_INLINE void matmulImpl(const float *x, int64_t m, int64_t k,
                            const typename L::T *w, int64_t n,
                            const float *bias, float *y) {
  if (m < 4) {
    streamRows<L>(x, m, k, w, n, bias, y);
    return;
  }
  // Column panels outside, row blocks inside: a panel of w (k x 32) stays
  // in cache while every row block streams over it.
  for (int64_t j0 = 0; j0 < n; j0 += kTileCols) {
    int64_t cols = std::min(kTileCols, n - j0);
    const float *b = bias ? bias + j0 : nullptr;
    int64_t i0 = 0;
    if (cols == kTileCols) {
      for (; i0 + 4 <= m; i0 += 4)
        fullTile<4, L>(x + i0 * k, k, w + j0, n, k, b, y + i0 * n + j0, n);
      for (; i0 < m; ++i0)
        fullTile<1, L>(x + i0 * k, k, w + j0, n, k, b, y + i0 * n + j0, n);
    } else {
      for (; i0 < m; i0 += 4)
        partialTile<L>(x + i0 * k, k, std::min<int64_t>(4, m - i0), w + j0, n,
                       k, cols, b, y + i0 * n + j0, n);
    }
  }
}

} // namespace

KILN_HOT void matmul(const float *x, int64_t m, int64_t k, WeightRef w,
                     int64_t n, const float *bias, float *y) {
  switch (w.dtype) {
  case DType::F16:
    matmulImpl<F16Load>(x, m, k, static_cast<const uint16_t *>(w.data), n,
                        bias, y);
    return;
  case DType::BF16:
    matmulImpl<BF16Load>(x, m, k, static_cast<const uint16_t *>(w.data), n,
                         bias, y);
    return;
  default:
    matmulImpl<F32Load>(x, m, k, static_cast<const float *>(w.data), n, bias,
                        y);
    return;
  }
}

//===----------------------------------------------------------------------===//
// Embedding, rotary tables, norms
//===----------------------------------------------------------------------===//

Status embedding(WeightRef table, int64_t vocab, int64_t hidden,
                 const int64_t *ids, int64_t n, float *out) {
  for (int64_t t = 0; t < n; ++t) {
    int64_t id = ids[t];
    if (id < -vocab || id >= vocab)
      return makeError(StatusCode::OutOfRange, "token id ", id,
                       " is outside the vocabulary of ", vocab);
    if (id < 0)
      id += vocab;
    float *o = out + t * hidden;
    if (table.dtype == DType::F32) {
      std::memcpy(o, static_cast<const float *>(table.data) + id * hidden,
                  hidden * sizeof(float));
      continue;
    }
    const uint16_t *row =
        static_cast<const uint16_t *>(table.data) + id * hidden;
    for (int64_t j = 0; j < hidden; ++j)
      o[j] = table.dtype == DType::F16 ? halfToFloat(row[j])
                                        : bf16ToFloat(row[j]);
  }
  return Status::ok();
}

void rotaryTable(const int64_t *positions, int64_t n,
                 const std::vector<float> &invFreq, float attentionScaling,
                 float *cosOut, float *sinOut) {
  int64_t half = static_cast<int64_t>(invFreq.size()), rot = 2 * half;
  for (int64_t p = 0; p < n; ++p) {
    float position = static_cast<float>(positions[p]);
    for (int64_t i = 0; i < half; ++i) {
      // The angle is an fp32 product, as the fp32 reference computes it.
      float angle = position * invFreq[i];
      float c = static_cast<float>(std::cos(static_cast<double>(angle))) *
                attentionScaling;
      float s = static_cast<float>(std::sin(static_cast<double>(angle))) *
                attentionScaling;
      cosOut[p * rot + i] = cosOut[p * rot + i + half] = c;
      sinOut[p * rot + i] = sinOut[p * rot + i + half] = s;
    }
  }
}

void rmsNorm(const float *x, int64_t rows, int64_t d, const float *w,
             float epsilon, float offset, float *y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * d;
    double ms = 0;
    for (int64_t j = 0; j < d; ++j)
      ms += static_cast<double>(row[j]) * row[j];
    double inv = 1.0 / std::sqrt(ms / static_cast<double>(d) + epsilon);
    for (int64_t j = 0; j < d; ++j)
      y[r * d + j] = static_cast<float>(
          row[j] * inv * (static_cast<double>(w[j]) + offset));
  }
}

void layerNorm(const float *x, int64_t rows, int64_t d, const float *w,
               const float *bias, float epsilon, float *y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += row[j];
    mean /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j)
      var += (row[j] - mean) * (row[j] - mean);
    var /= static_cast<double>(d);
    double inv = 1.0 / std::sqrt(var + epsilon);
    for (int64_t j = 0; j < d; ++j)
      y[r * d + j] = static_cast<float>((row[j] - mean) * inv * w[j] +
                                        (bias ? bias[j] : 0.0));
  }
}

void rope(const float *x, int64_t tokens, int64_t heads, int64_t headDim,
          const float *cosT, const float *sinT, int64_t rotaryDim, float *y) {
  int64_t half = rotaryDim / 2;
  std::vector<float> in(headDim); // x and y may alias
  for (int64_t t = 0; t < tokens; ++t) {
    const float *c = cosT + t * rotaryDim;
    const float *s = sinT + t * rotaryDim;
    for (int64_t h = 0; h < heads; ++h) {
      std::memcpy(in.data(), x + (t * heads + h) * headDim,
                  headDim * sizeof(float));
      float *o = y + (t * heads + h) * headDim;
      for (int64_t i = 0; i < rotaryDim; ++i) {
        float r = i < half ? -in[i + half] : in[i - half];
        o[i] = in[i] * c[i] + r * s[i];
      }
      for (int64_t i = rotaryDim; i < headDim; ++i)
        o[i] = in[i];
    }
  }
}

//===----------------------------------------------------------------------===//
// KV cache
//===----------------------------------------------------------------------===//

Status kvCacheWrite(KVCacheView cache, int64_t layer, const float *key,
                    const float *value, const int64_t *slots, int64_t tokens) {
  int64_t numSlots = cache.blocks * cache.blockSize, D = cache.headDim;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t slot = slots[t];
    if (slot < 0)
      continue; // a padding token
    if (slot >= numSlots)
      return makeError(StatusCode::OutOfRange, "slot ", slot, " of token ", t,
                       " is outside the cache's ", numSlots, " slots");
    int64_t block = slot / cache.blockSize, offset = slot % cache.blockSize;
    for (int64_t h = 0; h < cache.kvHeads; ++h) {
      storeCache(cache, cache.offset(layer, block, 0, h, offset), D,
                 key + (t * cache.kvHeads + h) * D);
      storeCache(cache, cache.offset(layer, block, 1, h, offset), D,
                 value + (t * cache.kvHeads + h) * D);
    }
  }
  return Status::ok();
}

Status kvCacheRead(KVCacheView cache, int64_t layer, const int64_t *slots,
                   int64_t tokens, float *key, float *value) {
  int64_t numSlots = cache.blocks * cache.blockSize, D = cache.headDim;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t slot = slots[t];
    if (slot < 0 || slot >= numSlots)
      return makeError(StatusCode::OutOfRange, "slot ", slot, " of token ", t,
                       " is outside the cache's ", numSlots, " slots");
    int64_t block = slot / cache.blockSize, offset = slot % cache.blockSize;
    for (int64_t h = 0; h < cache.kvHeads; ++h) {
      loadCache(cache, cache.offset(layer, block, 0, h, offset), D,
                key + (t * cache.kvHeads + h) * D);
      loadCache(cache, cache.offset(layer, block, 1, h, offset), D,
                value + (t * cache.kvHeads + h) * D);
    }
  }
  return Status::ok();
}

Status copyBlock(KVCacheView cache, int64_t src, int64_t dst,
                 int64_t numTokens) {
  if (src < 0 || src >= cache.blocks || dst < 0 || dst >= cache.blocks ||
      numTokens < 0 || numTokens > cache.blockSize)
    return makeError(StatusCode::OutOfRange, "copy of ", numTokens,
                     " tokens from block ", src, " to block ", dst,
                     " is outside the cache of ", cache.blocks,
                     " blocks of ", cache.blockSize);
  int64_t elementBytes = dtypeBytes(cache.dtype);
  for (int64_t l = 0; l < cache.layers; ++l)
    for (int64_t kv = 0; kv < 2; ++kv)
      for (int64_t h = 0; h < cache.kvHeads; ++h)
        std::memmove(
            static_cast<uint8_t *>(cache.data) +
                cache.offset(l, dst, kv, h, 0) * elementBytes,
            static_cast<const uint8_t *>(cache.data) +
                cache.offset(l, src, kv, h, 0) * elementBytes,
            numTokens * cache.headDim * elementBytes);
  return Status::ok();
}

namespace {

/// Scores of one query row against `count` key rows (fp32 dot products
/// with eight partial sums), scaled and soft-capped, in double.
KILN_INLINE void scoreRows(const float *q, const float *keys, int64_t count,
                           int64_t D, float scale, double cap, double *out) {
  for (int64_t j = 0; j < count; ++j) {
    const float *kj = keys + j * D;
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t d = 0;
    for (; d + 8 <= D; d += 8)
      for (int u = 0; u < 8; ++u)
        partial[u] += q[d + u] * kj[d + u];
    float dot = 0;
    for (int u = 0; u < 8; ++u)
      dot += partial[u];
    for (; d < D; ++d)
      dot += q[d] * kj[d];
    double s = static_cast<double>(dot * scale);
    if (cap > 0)
      s = cap * std::tanh(s / cap);
    out[j] = s;
  }
}

} // namespace

KILN_HOT Status pagedAttention(KVCacheView cache,
                               const PagedAttentionParams &p, const float *q,
                               int64_t tokens, const int64_t *blockTables,
                               int64_t numSeqs, int64_t maxBlocks,
                               const int64_t *contextLens, const int64_t *qsl,
                               float *y) {
  int64_t D = cache.headDim, B = cache.blockSize, H = p.numHeads;
  int64_t group = H / p.kvHeads;
  if (qsl[0] != 0 || qsl[numSeqs] != tokens)
    return makeError(StatusCode::InvalidArgument,
                     "query_start_loc must run from 0 to the ", tokens,
                     " tokens, got ", qsl[0], "..", qsl[numSeqs]);
  // Scratch kept between calls: a step calls this once per layer.
  thread_local std::vector<float> keys, values, weights;
  thread_local std::vector<double> scores;
  float acc[kMaxHeadDim];
  if (D > kMaxHeadDim)
    return makeError(StatusCode::Unimplemented, "head size ", D,
                     " above the host device's ", kMaxHeadDim);
  for (int64_t s = 0; s < numSeqs; ++s) {
    int64_t begin = qsl[s], end = qsl[s + 1], ctx = contextLens[s];
    if (end < begin || end > tokens)
      return makeError(StatusCode::InvalidArgument,
                       "query_start_loc decreases at sequence ", s);
    int64_t numNew = end - begin;
    if (numNew == 0)
      continue;
    if (ctx < numNew)
      return makeError(StatusCode::InvalidArgument, "sequence ", s,
                       " appends ", numNew,
                       " tokens but its context length is ", ctx);
    if ((ctx + B - 1) / B > maxBlocks)
      return makeError(StatusCode::InvalidArgument, "sequence ", s, " of ",
                       ctx, " tokens needs more than the ", maxBlocks,
                       " blocks of its block table");
    for (int64_t j = 0; j < (ctx + B - 1) / B; ++j) {
      int64_t block = blockTables[s * maxBlocks + j];
      if (block < 0 || block >= cache.blocks)
        return makeError(StatusCode::OutOfRange, "block ", block,
                         " of sequence ", s, " is outside the cache's ",
                         cache.blocks, " blocks");
    }
    // The window of the first query bounds the keys any query reads.
    int64_t firstPos = ctx - numNew;
    int64_t lo = p.slidingWindow > 0
                     ? std::max<int64_t>(0, firstPos - p.slidingWindow + 1)
                     : 0;
    int64_t count = ctx - lo;
    keys.resize(count * D);
    values.resize(count * D);
    scores.resize(count);
    weights.resize(count);
    for (int64_t kvh = 0; kvh < p.kvHeads; ++kvh) {
      // Gather this KV head's rows [lo, ctx) of the sequence into fp32.
      for (int64_t j = lo; j < ctx; ++j) {
        int64_t block = blockTables[s * maxBlocks + j / B];
        loadCache(cache, cache.offset(p.layer, block, 0, kvh, j % B), D,
                  keys.data() + (j - lo) * D);
        loadCache(cache, cache.offset(p.layer, block, 1, kvh, j % B), D,
                  values.data() + (j - lo) * D);
      }
      for (int64_t t = begin; t < end; ++t) {
        int64_t pos = ctx - end + t; // the token's position
        int64_t first = p.slidingWindow > 0
                            ? std::max<int64_t>(0, pos - p.slidingWindow + 1)
                            : 0;
        int64_t n = pos - first + 1;
        const float *kBase = keys.data() + (first - lo) * D;
        const float *vBase = values.data() + (first - lo) * D;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          const float *qi = q + (t * H + h) * D;
          scoreRows(qi, kBase, n, D, p.scale, p.softcap, scores.data());
          double mx = -INFINITY;
          for (int64_t j = 0; j < n; ++j)
            mx = std::max(mx, scores[j]);
          double sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            scores[j] = std::exp(scores[j] - mx);
            sum += scores[j];
          }
          // Probabilities from the double softmax; the weighted sum of
          // values in fp32 (the values are fp32 or narrower).
          for (int64_t j = 0; j < n; ++j)
            weights[j] = static_cast<float>(scores[j] / sum);
          std::fill(acc, acc + D, 0.0f);
          for (int64_t j = 0; j < n; ++j) {
            float w = weights[j];
            const float *vj = vBase + j * D;
            for (int64_t d = 0; d < D; ++d)
              acc[d] += w * vj[d];
          }
          float *yi = y + (t * H + h) * D;
          std::memcpy(yi, acc, D * sizeof(float));
        }
      }
    }
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Elementwise, MLP, gathers
//===----------------------------------------------------------------------===//

void binary(BinaryOp op, const float *a, const std::vector<int64_t> &aShape,
            const float *b, const std::vector<int64_t> &bShape, float *out,
            const std::vector<int64_t> &outShape) {
  size_t rank = outShape.size();
  int64_t n = 1;
  for (int64_t d : outShape)
    n *= d;
  auto apply = [op](float x, float y) {
    switch (op) {
    case BinaryOp::Add:
      return x + y;
    case BinaryOp::Sub:
      return x - y;
    case BinaryOp::Mul:
      return x * y;
    case BinaryOp::Div:
      return x / y;
    }
    return x;
  };
  if (aShape == outShape && bShape == outShape) {
    for (int64_t i = 0; i < n; ++i)
      out[i] = apply(a[i], b[i]);
    return;
  }
  // Broadcast strides, right-aligned.
  auto strides = [&](const std::vector<int64_t> &s) {
    std::vector<int64_t> st(rank, 0);
    int64_t stride = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t d = s.size() - 1 - i;
      size_t o = rank - 1 - i;
      st[o] = s[d] == 1 ? 0 : stride;
      stride *= s[d];
    }
    return st;
  };
  std::vector<int64_t> sa = strides(aShape), sb = strides(bShape);
  std::vector<int64_t> index(rank, 0);
  int64_t offA = 0, offB = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = apply(a[offA], b[offB]);
    for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
      offA += sa[d];
      offB += sb[d];
      if (++index[d] < outShape[d])
        break;
      offA -= sa[d] * outShape[d];
      offB -= sb[d] * outShape[d];
      index[d] = 0;
    }
  }
}

void activation(OpKind kind, const float *x, int64_t n, float *y) {
  switch (kind) {
  case OpKind::ReLU:
    for (int64_t i = 0; i < n; ++i)
      y[i] = x[i] > 0 ? x[i] : (std::isnan(x[i]) ? x[i] : 0.0f);
    return;
  case OpKind::Tanh:
    for (int64_t i = 0; i < n; ++i)
      y[i] = std::tanh(x[i]);
    return;
  default:
    break;
  }
  double (*fn)(double) = kind == OpKind::SiLU   ? silu
                         : kind == OpKind::GELU ? gelu
                                                : geluTanh;
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(fn(x[i]));
}

void gatedMlp(const float *x, int64_t m, int64_t k, WeightRef gate,
              WeightRef up, int64_t inter, WeightRef down, int64_t n,
              Activation act, float *y, std::vector<float> &scratch,
              float (*round)(float)) {
  scratch.resize(2 * m * inter);
  float *g = scratch.data(), *u = scratch.data() + m * inter;
  matmul(x, m, k, gate, inter, nullptr, g);
  matmul(x, m, k, up, inter, nullptr, u);
  if (round)
    for (int64_t i = 0; i < 2 * m * inter; ++i)
      scratch[i] = round(scratch[i]);
  double (*fn)(double) = act == Activation::SiLU   ? silu
                         : act == Activation::GELU ? gelu
                         : act == Activation::GeluTanh
                             ? geluTanh
                             : [](double v) { return v > 0 ? v : 0.0; };
  for (int64_t i = 0; i < m * inter; ++i) {
    g[i] = static_cast<float>(fn(g[i])) * u[i];
    if (round)
      g[i] = round(g[i]);
  }
  matmul(g, m, inter, down, n, nullptr, y);
}

Status gatherLastTokens(const float *x, int64_t tokens, int64_t rowSize,
                        const int64_t *qsl, int64_t numSeqs, float *out) {
  if (qsl[0] != 0 || qsl[numSeqs] != tokens)
    return makeError(StatusCode::InvalidArgument,
                     "query_start_loc must run from 0 to the ", tokens,
                     " tokens");
  for (int64_t s = 0; s < numSeqs; ++s) {
    if (qsl[s + 1] <= qsl[s] || qsl[s + 1] > tokens)
      return makeError(StatusCode::InvalidArgument, "sequence ", s,
                       " has no token");
    std::memcpy(out + s * rowSize, x + (qsl[s + 1] - 1) * rowSize,
                rowSize * sizeof(float));
  }
  return Status::ok();
}

void slice(const float *x, const std::vector<int64_t> &inShape,
           const std::vector<int64_t> &axes,
           const std::vector<int64_t> &starts,
           const std::vector<int64_t> &steps, float *out,
           const std::vector<int64_t> &outShape) {
  size_t rank = inShape.size();
  std::vector<int64_t> inStrides(rank, 1), start(rank, 0), step(rank, 1);
  for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d)
    inStrides[d] = inStrides[d + 1] * inShape[d + 1];
  for (size_t k = 0; k < axes.size(); ++k) {
    start[axes[k]] = starts[k];
    step[axes[k]] = steps[k];
  }
  int64_t n = 1;
  for (int64_t d : outShape)
    n *= d;
  if (n == 0)
    return;
  int64_t base = 0;
  for (size_t d = 0; d < rank; ++d)
    base += start[d] * inStrides[d];
  std::vector<int64_t> index(rank, 0);
  int64_t off = base;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = x[off];
    for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
      off += step[d] * inStrides[d];
      if (++index[d] < outShape[d])
        break;
      off -= step[d] * inStrides[d] * outShape[d];
      index[d] = 0;
    }
  }
}

void split(const float *x, const std::vector<int64_t> &shape, int64_t axis,
           const std::vector<int64_t> &sizes,
           const std::vector<float *> &outs) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d)
    inner *= shape[d];
  int64_t dim = shape[axis];
  for (int64_t o = 0; o < outer; ++o) {
    int64_t at = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      std::memcpy(outs[k] + o * sizes[k] * inner,
                  x + (o * dim + at) * inner, sizes[k] * inner * sizeof(float));
      at += sizes[k];
    }
  }
}

} // namespace kiln::runtime::host
