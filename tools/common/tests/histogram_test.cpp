// SPDX-License-Identifier: GPL-2.0
#include "fastpath/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace fastpath {
namespace {

std::uint64_t exact_percentile(std::vector<std::uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

TEST(LatencyHistogram, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_DOUBLE_EQ(h.mean(), 0.0);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 50u);
  EXPECT_EQ(h.percentile(99), 99u);
  EXPECT_EQ(h.percentile(100), 100u);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogram, PercentilesWithinRelativeErrorOfExact) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(10.0, 1.5);  // ~22 us median, long tail
  std::vector<std::uint64_t> samples;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<std::uint64_t>(dist(rng)) + 1;
    samples.push_back(v);
    h.record(v);
  }
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    const double want = static_cast<double>(exact_percentile(samples, p));
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_NEAR(got, want, want / 128.0 + 1) << "p" << p;
    EXPECT_GE(got, want) << "bucket upper bound must not under-report p" << p;
  }
  EXPECT_EQ(h.min(), *std::min_element(samples.begin(), samples.end()));
  EXPECT_EQ(h.max(), *std::max_element(samples.begin(), samples.end()));
}

TEST(LatencyHistogram, MergeEqualsRecordingEverything) {
  LatencyHistogram a, b, all;
  for (std::uint64_t v = 1; v < 50000; v += 7) {
    (v % 3 ? a : b).record(v * 13);
    all.record(v * 13);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {50.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), all.percentile(p));
}

TEST(LatencyHistogram, HugeValuesDoNotOverflow) {
  LatencyHistogram h;
  h.record(~0ULL);
  h.record(1ULL << 63);
  EXPECT_EQ(h.max(), ~0ULL);
  EXPECT_EQ(h.percentile(100), ~0ULL);
  EXPECT_GE(h.percentile(50), 1ULL << 63);
}

TEST(LatencyHistogram, StdevMatchesDefinition) {
  LatencyHistogram h;
  for (std::uint64_t v : {2, 4, 4, 4, 5, 5, 7, 9}) h.record(v);
  EXPECT_NEAR(h.stdev(), 2.138, 0.001);  // sample standard deviation
}

TEST(LatencyHistogram, JsonHasTheReportedFields) {
  LatencyHistogram h;
  h.record(1000);
  h.record(3000);
  auto j = h.to_json();
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["min_ns"], 1000);
  EXPECT_EQ(j["max_ns"], 3000);
  EXPECT_TRUE(j.contains("p999_ns"));
}

}  // namespace
}  // namespace fastpath
