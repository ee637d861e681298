//===- GemmRoute.h - Which GEMM family serves a step's rows ------*- C++
//-*-===//
//
// A step's linears run on one of three kernel families by their row count:
// the gemv (one row), the split-K few-row GEMM (2 to tiledMinRows - 1 rows)
// or the tiled prefill GEMM (tiledMinRows rows and more). Shared-input
// linears (q, k, v; a gated MLP's gate and up) may also run as one grouped
// launch of that family. The choice lives here, apart from the CUDA device,
// so that every group of linears follows the same row limits and the rule
// is tested without a GPU: a 2048-token prefill once ran q/k/v on the
// few-row GEMM's 32-row tiles (198 us a layer against ~50 for the tiled
// GEMM) because the grouped path had its own, incomplete row test.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_GEMMROUTE_H
#define KILN_RUNTIME_GEMMROUTE_H

#include <cstdint>
#include <limits>

namespace kiln {
namespace rt {

/// The kernel family for a step's linears.
enum class GemmFamily {
  Gemv,    ///< one row
  FewRows, ///< the split-K few-row GEMM (or, switched off, the row-chunked
           ///< gemv)
  Tiled,   ///< the many-row prefill GEMM
};

/// The row limits and switches the route follows (KILN_* environment
/// overrides resolved by the caller).
struct GemmRouteLimits {
  /// Fewest rows for the tiled GEMM.
  int64_t tiledMinRows = 64;
  /// Most rows for which shared-input linears run as one grouped tiled
  /// GEMM (0: never grouped at the tiled family).
  int64_t groupedTiledMaxRows = std::numeric_limits<int64_t>::max();
  /// The split-K few-row GEMM is on (else the row-chunked gemv serves
  /// 2 to tiledMinRows - 1 rows, with no grouped launch).
  bool fewRowsGemm = true;
  /// Grouped launches of shared-input linears are on.
  bool grouped = true;
};

struct GemmRoute {
  GemmFamily family = GemmFamily::Gemv;
  /// Whether shared-input linears run as one grouped launch of `family`.
  bool grouped = false;
};

/// The route for a step of `rows` rows (rows >= 1).
GemmRoute routeGemm(int64_t rows, const GemmRouteLimits &limits);

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_GEMMROUTE_H
