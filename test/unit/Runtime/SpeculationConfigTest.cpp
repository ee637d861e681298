//===- SpeculationConfigTest.cpp - The Speculation section text -----------===//

#include "kiln/runtime/SpeculationConfig.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

TEST(SpeculationConfigTest, RoundTrips) {
  SpeculationConfig c;
  c.k = 6;
  c.draftModel = false;
  EXPECT_EQ(c.serialize(), "kiln_speculation=1\nk=6\ndraft=ngram\n");
  auto back = SpeculationConfig::deserialize(c.serialize());
  ASSERT_TRUE(back.isOk()) << back.status();
  EXPECT_EQ(back->k, 6);
  EXPECT_FALSE(back->draftModel);
}

TEST(SpeculationConfigTest, RejectsMalformedText) {
  auto code = [](const char *text) {
    return SpeculationConfig::deserialize(text).status().code();
  };
  EXPECT_EQ(code("k=4\ndraft=model\n"), StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=2\nk=4\ndraft=model\n"),
            StatusCode::Unimplemented);
  EXPECT_EQ(code("kiln_speculation=1\nk=0\ndraft=model\n"),
            StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=1\nk=4\ndraft=tree\n"),
            StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=1\nk=4\n"), StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=1\nk=4\nk=5\ndraft=model\n"),
            StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=1\nk=4\ndraft=model\nextra=1\n"),
            StatusCode::DataLoss);
  EXPECT_EQ(code("kiln_speculation=1\nnonsense\n"), StatusCode::DataLoss);
}

} // namespace
