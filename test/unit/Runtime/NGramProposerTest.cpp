//===- NGramProposerTest.cpp - Prompt lookup proposals --------------------===//

#include "kiln/runtime/NGramProposer.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;

namespace {

using Tokens = std::vector<int32_t>;

TEST(NGramProposerTest, ProposesWhatFollowedTheLongestRecentMatch) {
  // Suffix "2 3" occurs at 1 and 6; the most recent (6) is followed by 9 4.
  Tokens t = {1, 2, 3, 4, 5, 1, 2, 3, 9, 4, 7, 2, 3};
  EXPECT_EQ(proposeByNGram(t, 2), (Tokens{9, 4}));
  // k caps the proposal; the sequence's end caps it too.
  EXPECT_EQ(proposeByNGram(t, 1), (Tokens{9}));
  EXPECT_EQ(proposeByNGram({5, 6, 5}, 4), (Tokens{6, 5}));
}

TEST(NGramProposerTest, PrefersLongerSuffixes) {
  // "1 2 3" matches at 0 (followed by 8); "3" alone matches later (at 5,
  // followed by 6), but the 3-gram wins.
  Tokens t = {1, 2, 3, 8, 0, 3, 6, 1, 2, 3};
  EXPECT_EQ(proposeByNGram(t, 1), (Tokens{8}));
  NGramOptions unigrams;
  unigrams.maxN = 1;
  EXPECT_EQ(proposeByNGram(t, 1, unigrams), (Tokens{6}));
}

TEST(NGramProposerTest, RunsAndMisses) {
  // A run matches itself shifted by one.
  EXPECT_EQ(proposeByNGram({7, 7, 7, 7}, 3), (Tokens{7}));
  EXPECT_TRUE(proposeByNGram({1, 2, 3, 4}, 3).empty());
  EXPECT_TRUE(proposeByNGram({4}, 3).empty());
  EXPECT_TRUE(proposeByNGram({1, 2, 1, 2}, 0).empty());
  NGramOptions bigrams;
  bigrams.minN = 2;
  EXPECT_TRUE(proposeByNGram({1, 2, 3, 2}, 3, bigrams).empty());
}

} // namespace
