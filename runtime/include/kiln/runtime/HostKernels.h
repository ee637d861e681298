//===- HostKernels.h - The host device's fp32 step kernels ----------------===//
//
// One function per launch-plan op kind, on plain row-major fp32 arrays
// (integers as int64). They follow the host reference interpreter's kernels
// (lib/Reference/kernels), which define the semantics: normalization
// statistics and attention softmax in double, products and dot products in
// fp32. Sizes are trusted (the plan was validated and the device resolved
// them); values that index memory (token ids, slots, block ids, context
// lengths) are checked and reported as a Status.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_HOSTKERNELS_H
#define KILN_RUNTIME_HOSTKERNELS_H

#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/Status.h"

#include <cstdint>
#include <vector>

namespace kiln::runtime::host {

/// A weight matrix in its stored type: f32, f16 or bf16, row-major.
/// Half-precision weights are widened on the fly (exactly, for finite
/// values), which halves the memory a decode step streams.
struct WeightRef {
  const void *data = nullptr;
  DType dtype = DType::F32;

  WeightRef() = default;
  WeightRef(const float *f) : data(f), dtype(DType::F32) {}
  WeightRef(const void *d, DType t) : data(d), dtype(t) {}
};

/// out[n, H] = table[ids[n], :]; ids must lie in [0, vocab) (negative ids
/// count from the end, as the ONNX Gather the op comes from).
Status embedding(WeightRef table, int64_t vocab, int64_t hidden,
                 const int64_t *ids, int64_t n, float *out);

/// cos/sin [n, 2 * invFreq.size()] of positions times invFreq (an fp32
/// product), times attentionScaling.
void rotaryTable(const int64_t *positions, int64_t n,
                 const std::vector<float> &invFreq, float attentionScaling,
                 float *cosOut, float *sinOut);

/// y = x / rms(x) * (w + offset) over rows of d.
void rmsNorm(const float *x, int64_t rows, int64_t d, const float *w,
             float epsilon, float offset, float *y);

/// y = (x - mean) / std * w + bias over rows of d (bias may be null).
void layerNorm(const float *x, int64_t rows, int64_t d, const float *w,
               const float *bias, float epsilon, float *y);

/// y[m, n] = x[m, k] @ w[k, n] (+ bias[n]); w row-major [K, N] (f16 and
/// bf16 weights must hold finite values).
void matmul(const float *x, int64_t m, int64_t k, WeightRef w, int64_t n,
            const float *bias, float *y);

/// A QuantLinear weight in its packed form (docs/Quantization.md): row n
/// of `packed` holds the K integers (or fp8 values) of output channel n,
/// `bits` each, two 4-bit values a byte low nibble first; `scales` and
/// `zeroPoints` (null: none) are [N, K / group].
struct QuantWeightRef {
  const uint8_t *packed = nullptr;
  WeightRef scales;
  const uint8_t *zeroPoints = nullptr;
  int64_t bits = 8, group = 0;
  QuantFormat format = QuantFormat::Int;
};

/// The value of an fp8 e4m3 byte (no infinities; 0x7f/0xff are NaN).
float fp8e4m3ToFloat(uint8_t v);

/// out[k, n] = the weight's element (k, n) in fp32: scale * (u - zero
/// point) for integers, scale * fp8(u) for fp8.
void dequantize(const QuantWeightRef &w, int64_t k, int64_t n, float *out);

/// y = x @ dequantize(w) (+ bias): the exact value of the packed weight,
/// widened to fp32 into `scratch` ([K, N]) and multiplied like `matmul`.
void quantLinear(const float *x, int64_t m, int64_t k, const QuantWeightRef &w,
                 int64_t n, const float *bias, float *y,
                 std::vector<float> &scratch);

/// A 2:4-sparse weight: `values` [N, K / 2] (the two kept values of each
/// group of four K elements, in order) and `meta` [N, K / 8] (per group a
/// nibble: bits 0-1 the first kept position, bits 2-3 the second; group
/// 2j in the low nibble of byte j).
struct SparseWeightRef {
  WeightRef values;
  const uint8_t *meta = nullptr;
};

/// out[k, n] = the dense fp32 matrix of a 2:4-sparse weight (zeros where
/// nothing is kept).
void densify24(const SparseWeightRef &w, int64_t k, int64_t n, float *out);

/// y = x @ densify24(w) (+ bias), through `scratch` ([K, N]).
void sparseLinear(const float *x, int64_t m, int64_t k,
                  const SparseWeightRef &w, int64_t n, const float *bias,
                  float *y, std::vector<float> &scratch);

/// Rotates the first rotaryDim channels of each head of x [T, H, D] by the
/// half-split rule with cos/sin [T, rotaryDim]; y may alias x.
void rope(const float *x, int64_t tokens, int64_t heads, int64_t headDim,
          const float *cosT, const float *sinT, int64_t rotaryDim, float *y);

/// The paged KV cache of the host device: [layers, blocks, 2, kvHeads,
/// blockSize, headDim] in `dtype` (f32, f16 or bf16).
struct KVCacheView {
  DType dtype = DType::F32;
  void *data = nullptr;
  int64_t layers = 0, blocks = 0, kvHeads = 0, blockSize = 0, headDim = 0;

  /// Element offset of (layer, block, kv, head, token, 0).
  int64_t offset(int64_t layer, int64_t block, int64_t kv, int64_t head,
                 int64_t t) const {
    return ((((layer * blocks + block) * 2 + kv) * kvHeads + head) *
                blockSize +
            t) *
           headDim;
  }
};

/// Writes key/value [T, kvHeads, headDim] of layer `layer` to their slots
/// (rounding to the cache dtype); negative slots are skipped (padding).
Status kvCacheWrite(KVCacheView cache, int64_t layer, const float *key,
                    const float *value, const int64_t *slots, int64_t tokens);

/// Reads key/value [tokens, kvHeads, headDim] of layer `layer` back from
/// their slots as fp32 (the inverse of kvCacheWrite); every slot must be
/// inside the cache (OutOfRange).
Status kvCacheRead(KVCacheView cache, int64_t layer, const int64_t *slots,
                   int64_t tokens, float *key, float *value);

/// Copies the first numTokens rows of block src into block dst, every
/// layer, K and V (copy-on-write).
Status copyBlock(KVCacheView cache, int64_t src, int64_t dst,
                 int64_t numTokens);

struct PagedAttentionParams {
  int64_t layer = 0, numHeads = 0, kvHeads = 0;
  float scale = 1.0f;
  int64_t slidingWindow = 0; ///< 0: none
  float softcap = 0.0f;      ///< 0: none
};

/// y[T, numHeads, D] = causal attention of q [T, numHeads, D] over each
/// sequence's cached keys and values: sequence s owns query rows
/// [qsl[s], qsl[s+1]), which are the last tokens of its contextLens[s],
/// stored in the blocks of its blockTables row (width maxBlocks).
Status pagedAttention(KVCacheView cache, const PagedAttentionParams &p,
                      const float *q, int64_t tokens, const int64_t *blockTables,
                      int64_t numSeqs, int64_t maxBlocks,
                      const int64_t *contextLens, const int64_t *qsl,
                      float *y);

enum class BinaryOp { Add, Sub, Mul, Div };
/// out = a op b with numpy broadcasting of the shapes (out has the
/// broadcast shape).
void binary(BinaryOp op, const float *a, const std::vector<int64_t> &aShape,
            const float *b, const std::vector<int64_t> &bShape, float *out,
            const std::vector<int64_t> &outShape);

/// SiLU, GELU (erf), GeluTanh, ReLU and Tanh of n elements; y may alias x.
void activation(OpKind kind, const float *x, int64_t n, float *y);

/// y = down(act(x @ gate) * (x @ up)); weights row-major [K, I], [K, I],
/// [I, N]. `scratch` is resized as needed. `round`, when given, is applied
/// to the two projections and to the activation product, as a device that
/// stores them in a narrower type does.
void gatedMlp(const float *x, int64_t m, int64_t k, WeightRef gate,
              WeightRef up, int64_t inter, WeightRef down, int64_t n,
              Activation act, float *y, std::vector<float> &scratch,
              float (*round)(float) = nullptr);

/// out[s, :] = x[qsl[s+1] - 1, :] for each sequence (rowSize elements per
/// row); InvalidArgument for a sequence without tokens or a bad qsl.
Status gatherLastTokens(const float *x, int64_t tokens, int64_t rowSize,
                        const int64_t *qsl, int64_t numSeqs, float *out);

/// A strided slice of x (shape inShape) along `axes`; out has outShape.
void slice(const float *x, const std::vector<int64_t> &inShape,
           const std::vector<int64_t> &axes,
           const std::vector<int64_t> &starts,
           const std::vector<int64_t> &steps, float *out,
           const std::vector<int64_t> &outShape);

/// Splits x along `axis` into pieces of `sizes`.
void split(const float *x, const std::vector<int64_t> &shape, int64_t axis,
           const std::vector<int64_t> &sizes, const std::vector<float *> &outs);

} // namespace kiln::runtime::host

#endif // KILN_RUNTIME_HOSTKERNELS_H
