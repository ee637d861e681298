//===- Crc32Test.cpp - CRC-32 against the standard check values -----------===//

#include "kiln/runtime/Crc32.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kiln::runtime;

namespace {

TEST(Crc32Test, StandardCheckValue) {
  // The catalogue check value of CRC-32/ISO-HDLC (zlib, PNG, gzip).
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  const char *fox = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(crc32(fox, std::strlen(fox)), 0x414FA339u);
}

TEST(Crc32Test, IncrementalEqualsWhole) {
  const char *text = "123456789";
  uint32_t partial = crc32(text, 4);
  EXPECT_EQ(crc32(text + 4, 5, partial), 0xCBF43926u);
}

} // namespace
