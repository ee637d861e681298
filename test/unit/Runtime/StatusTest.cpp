//===- StatusTest.cpp - Status, StatusOr and the return macros ------------===//

#include "kiln/runtime/Status.h"

#include <gtest/gtest.h>

#include <memory>

using namespace kiln::runtime;

namespace {

Status failIfNegative(int x) {
  if (x < 0)
    return makeError(StatusCode::OutOfRange, "x is ", x);
  return Status::ok();
}

StatusOr<int> doubled(int x) {
  KILN_RETURN_IF_ERROR(failIfNegative(x));
  return 2 * x;
}

StatusOr<int> quadrupled(int x) {
  KILN_ASSIGN_OR_RETURN(int twice, doubled(x));
  return 2 * twice;
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::ok().isOk());
  EXPECT_EQ(Status::ok().toString(), "OK");
  Status s = makeError(StatusCode::InvalidArgument, "unknown sequence ", 7);
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s.message(), "unknown sequence 7");
  EXPECT_EQ(s.toString(), "INVALID_ARGUMENT: unknown sequence 7");
  EXPECT_STREQ(statusCodeName(StatusCode::ResourceExhausted),
               "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(statusCodeName(StatusCode::DataLoss), "DATA_LOSS");
}

TEST(StatusTest, StatusOrCarriesValueOrError) {
  StatusOr<int> good = quadrupled(3);
  ASSERT_TRUE(good.isOk());
  EXPECT_EQ(*good, 12);
  StatusOr<int> bad = quadrupled(-1);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::OutOfRange);
  EXPECT_EQ(bad.status().message(), "x is -1");
}

TEST(StatusTest, StatusOrFromOkStatusIsAnError) {
  StatusOr<int> s = Status::ok();
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), StatusCode::Internal);
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(5);
  ASSERT_TRUE(p.isOk());
  std::unique_ptr<int> taken = std::move(p).value();
  EXPECT_EQ(*taken, 5);
}

TEST(StatusDeathTest, ValueOfErrorAborts) {
  StatusOr<int> bad = makeError(StatusCode::NotFound, "nothing here");
  EXPECT_DEATH((void)bad.value(), "nothing here");
}

} // namespace
