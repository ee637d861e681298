//===- GemmRoute.cpp - Which GEMM family serves a step's rows -------------===//

#include "kiln/runtime/GemmRoute.h"

using namespace kiln::rt;

GemmRoute kiln::rt::routeGemm(int64_t rows, const GemmRouteLimits &limits) {
  GemmRoute route;
  if (rows <= 1) {
    route.family = GemmFamily::Gemv;
    route.grouped = limits.grouped;
  } else if (rows >= limits.tiledMinRows) {
    route.family = GemmFamily::Tiled;
    route.grouped = limits.grouped && rows <= limits.groupedTiledMaxRows;
  } else {
    route.family = GemmFamily::FewRows;
    route.grouped = limits.grouped && limits.fewRowsGemm;
  }
  return route;
}
