//===- DummyWeightsTest.cpp - Random weights drawn at load ----------------===//

#include "kiln/runtime/Model.h"
#include "kiln/runtime/WeightTable.h"

#include <gtest/gtest.h>

#include <set>

using namespace kiln::runtime;

namespace {

// Packed bytes (int codes, fp8 codes, 2:4 metadata) are drawn so that every
// format reads them as valid: no fp8 NaN (0x7f, 0xff), and each nibble two
// distinct 2:4 positions in increasing order, as the sparse tensor cores
// require of metadata.
TEST(DummyWeightsTest, PackedBytesAreValidForEveryFormat) {
  WeightInfo info;
  info.name = "meta";
  info.dtype = DType::U8;
  info.shape = {64, 512};
  info.seed = 7;
  std::vector<uint8_t> bytes = dummyWeightBytes(info);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), info.numBytes());
  std::set<uint8_t> distinct;
  for (uint8_t b : bytes) {
    EXPECT_NE(b, 0x7f);
    EXPECT_NE(b, 0xff);
    for (int nibble : {b & 15, b >> 4}) {
      int first = nibble & 3, second = nibble >> 2;
      EXPECT_LT(first, second) << "byte " << int(b);
    }
    distinct.insert(b);
  }
  // All 36 ordered-pair bytes appear: the draw is not degenerate.
  EXPECT_EQ(distinct.size(), 36u);
}

} // namespace
