//===- QuantMath.h - Weight quantization and 2:4 pruning ---------*- C++
//-*-===//
//
// The numerical half of -llm-quantize-weights and -llm-sparsify-2to4, on
// plain fp32 matrices: W is row-major [N, K] (row n = output channel n, its
// K input weights contiguous), the layout of the packed formats
// (docs/Quantization.md). Calibrated methods take H = sum over calibration
// tokens of x x^T ([K, K], row-major, double) of the layer's inputs.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_QUANT_QUANTMATH_H
#define KILN_QUANT_QUANTMATH_H

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln::quant {

struct QuantSpec {
  int64_t bits = 8;  ///< 4 or 8.
  int64_t group = 0; ///< K elements per scale; K: per output channel.
  bool zeroPoint = false;
  bool fp8 = false; ///< fp8 e4m3 values (bits 8, no zero points).
  /// Rounds a scale to its stored type (f16, bf16); identity for f32.
  std::function<float(float)> roundScale = [](float f) { return f; };
};

/// A weight in the QuantLinear format: packed [N, K * bits / 8], scales
/// and zero points [N, K / group].
struct PackedWeight {
  std::vector<uint8_t> packed;
  std::vector<float> scales;
  std::vector<uint8_t> zeroPoints;
};

/// Round-to-nearest quantization of each group.
PackedWeight quantizeRTN(const std::vector<float> &w, int64_t n, int64_t k,
                         const QuantSpec &spec);

/// Round to nearest with each group's range clipped where that lowers the
/// `importance`-weighted rounding error (AWQ's clipping search; importance
/// is E[x_k^2] of the input feature k, [K]).
PackedWeight quantizeClipped(const std::vector<float> &w, int64_t n, int64_t k,
                             const QuantSpec &spec,
                             const std::vector<double> &importance);

/// U, upper triangular [K, K] with U^T U = (H + dampening * mean(diag H)
/// * I)^-1 (H's zero diagonal entries set to 1 first): what GPTQ and
/// SparseGPT read of the Hessian, shared by weights of one input. Fails
/// (with `error`) when H is not positive definite even with ten to 10^5
/// times the dampening.
bool inverseHessianFactor(std::vector<double> hessian, int64_t k,
                          double dampening, std::vector<double> &factor,
                          std::string &error);

/// GPTQ (Frantar et al. 2022): columns quantized in order, each one's
/// rounding error spread over the columns not yet quantized through the
/// inverse Hessian's factor; group scales taken from the updated weights
/// when a group starts.
PackedWeight quantizeGPTQ(const std::vector<float> &w, int64_t n, int64_t k,
                          const QuantSpec &spec,
                          const std::vector<double> &factor);

/// GPTQ's act order: the columns by decreasing H diagonal (the inputs
/// that move the output most are quantized first, while the most columns
/// are left to absorb their error).
std::vector<int64_t> actOrder(const std::vector<double> &hessian, int64_t k);
/// H with rows and columns in `order`.
std::vector<double> permuted(const std::vector<double> &hessian, int64_t k,
                             const std::vector<int64_t> &order);

/// GPTQ in act order with static groups (AutoGPTQ's desc_act +
/// static_groups): each group's scale (and zero point) chosen first from
/// the original weights, clipping the range where that lowers the
/// `importance`-weighted (H's diagonal) rounding error; then the columns
/// quantized in `order` with error feedback through `factor`, the inverse
/// factor of H permuted to `order`.
PackedWeight quantizeGPTQActOrder(const std::vector<float> &w, int64_t n,
                                  int64_t k, const QuantSpec &spec,
                                  const std::vector<double> &factor,
                                  const std::vector<int64_t> &order,
                                  const std::vector<double> &importance);

/// AWQ (Lin et al. 2023): per-input-feature scales s_j = a_j^alpha,
/// normalized to a geometric mean of 1 over max and min (a: mean |x_j| of
/// the calibration inputs), for the alpha of {0, 1/grid, ..., (grid-1) /
/// grid} minimizing the output error of round-to-nearest quantization of
/// every weight of `weights` (each [rows_i, K]) scaled by s:
/// sum tr(D H D^T), D = W - Q(W diag s) diag(s)^-1. The layer then
/// multiplies W diag(s) and its input divided by s. All ones when alpha 0
/// wins.
std::vector<float> awqScales(const std::vector<const std::vector<float> *> &w,
                             const std::vector<int64_t> &rows, int64_t k,
                             const QuantSpec &spec,
                             const std::vector<double> &hessian,
                             const std::vector<double> &absMean, int grid);

/// The fp32 value of element (row, col) of a packed weight.
float dequantizedAt(const PackedWeight &p, int64_t k, const QuantSpec &spec,
                    int64_t row, int64_t col);

/// fp8 e4m3 encoding, round to nearest (ties to even), saturating at 448.
uint8_t floatToFp8e4m3(float f);
float fp8e4m3ToFloatRef(uint8_t v);

/// A 2:4-sparse weight: values [N, K / 2] and metadata [N, K / 8].
struct SparseWeight {
  std::vector<float> values;
  std::vector<uint8_t> meta;
};

/// Keeps, of every four consecutive K elements of a row, the two of
/// highest `score` (ties: the lower position). Magnitude pruning scores
/// |w|; Wanda scores |w| * ||x_k|| (the root of H's diagonal).
SparseWeight prune24(const std::vector<float> &w, int64_t n, int64_t k,
                     const std::vector<float> &score);

/// SparseGPT (Frantar & Alistarh 2023) with the 2:4 pattern: each group's
/// mask chosen by w^2 / [H^-1]_kk^2 when the group starts, and the pruning
/// error of each column spread over the later columns as in GPTQ.
SparseWeight prune24SparseGPT(const std::vector<float> &w, int64_t n,
                              int64_t k, const std::vector<double> &factor);

/// The dense [N, K] matrix of a 2:4-sparse weight.
std::vector<float> densify(const SparseWeight &s, int64_t n, int64_t k);

} // namespace kiln::quant

#endif // KILN_QUANT_QUANTMATH_H
