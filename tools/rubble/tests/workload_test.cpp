// SPDX-License-Identifier: GPL-2.0
// Description: rubble-bench's key choosers stay in range; zipfian is skewed
// (the hottest record draws far more than its share), uniform is not.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "workload.h"

using namespace fastpath::rubble;

namespace {

std::uint64_t hottest(const KeyChooser& c, std::uint64_t n, int draws) {
  std::mt19937_64 rng(7);
  std::map<std::uint64_t, std::uint64_t> count;
  for (int i = 0; i < draws; ++i) {
    const auto k = c.choose(rng);
    EXPECT_LT(k, n);
    count[k]++;
  }
  std::uint64_t top = 0;
  for (const auto& [k, v] : count) top = std::max(top, v);
  return top;
}

}  // namespace

TEST(Workload, ZipfianIsSkewedUniformIsNot) {
  constexpr std::uint64_t n = 10000;
  constexpr int draws = 100000;  // 10 per record on average
  EXPECT_GT(hottest(KeyChooser(KeyChooser::Kind::kZipfian, n), n, draws), 5000u);
  EXPECT_LT(hottest(KeyChooser(KeyChooser::Kind::kUniform, n), n, draws), 40u);
}

TEST(Workload, KeysAndValues) {
  EXPECT_NE(ycsb_key(1), ycsb_key(2));
  EXPECT_EQ(ycsb_key(1).rfind("user", 0), 0u);
  ValueSource v(1024);
  std::mt19937_64 rng(1);
  EXPECT_EQ(v.next(rng).size(), 1024u);
}

TEST(Workload, LatestFavoursRecentRecords) {
  const KeyChooser c(KeyChooser::Kind::kZipfian, 1000);
  std::mt19937_64 rng(3);
  int recent = 0;
  for (int i = 0; i < 10000; ++i) {
    const auto k = c.latest(rng, 500);
    ASSERT_LT(k, 500u);
    recent += k >= 490;
  }
  EXPECT_GT(recent, 3000) << "the ten newest records draw far more than 2% of the reads";
}

TEST(Workload, InsertCounterLimitIsTheAcknowledgedPrefix) {
  InsertCounter c(100);
  const auto a = c.next(), b = c.next(), d = c.next();
  EXPECT_EQ(a, 100u);
  EXPECT_EQ(c.limit(), 100u);
  c.done(b);  // out of order: 100 is still in flight
  EXPECT_EQ(c.limit(), 100u);
  c.done(a);
  EXPECT_EQ(c.limit(), 102u);
  c.done(d);
  EXPECT_EQ(c.limit(), 103u);
}
