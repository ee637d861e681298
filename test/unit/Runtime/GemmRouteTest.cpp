#include "kiln/runtime/GemmRoute.h"
#include <gtest/gtest.h>

using namespace kiln::rt;

TEST(GemmRoute, OneRowIsTheGemvGroupedWhenOn) {
  GemmRouteLimits limits;
  EXPECT_EQ(routeGemm(1, limits).family, GemmFamily::Gemv);
  EXPECT_TRUE(routeGemm(1, limits).grouped);
  limits.grouped = false;
  EXPECT_FALSE(routeGemm(1, limits).grouped);
}

TEST(GemmRoute, FewRowsBelowTheTiledMinimum) {
  GemmRouteLimits limits;
  limits.tiledMinRows = 64;
  for (int64_t rows : {2, 32, 63}) {
    GemmRoute r = routeGemm(rows, limits);
    EXPECT_EQ(r.family, GemmFamily::FewRows) << rows;
    EXPECT_TRUE(r.grouped) << rows;
  }
  // With the few-row GEMM off the row-chunked gemv has no grouped launch.
  limits.fewRowsGemm = false;
  EXPECT_FALSE(routeGemm(32, limits).grouped);
}

TEST(GemmRoute, ManyRowsAreTiledAndGroupedOnlyUpToTheLimit) {
  GemmRouteLimits limits;
  limits.tiledMinRows = 64;
  limits.groupedTiledMaxRows = 1024;
  EXPECT_EQ(routeGemm(64, limits).family, GemmFamily::Tiled);
  EXPECT_TRUE(routeGemm(64, limits).grouped);
  EXPECT_TRUE(routeGemm(1024, limits).grouped);
  // Past the grouped limit the prefill stays tiled, one GEMM per weight:
  // never the few-row GEMM's grouped launch.
  GemmRoute prefill = routeGemm(2048, limits);
  EXPECT_EQ(prefill.family, GemmFamily::Tiled);
  EXPECT_FALSE(prefill.grouped);
  limits.groupedTiledMaxRows = 0;
  EXPECT_FALSE(routeGemm(64, limits).grouped);
}
