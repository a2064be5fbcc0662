// SPDX-License-Identifier: GPL-2.0
// Latency histogram with bounded relative error, for benchmark reports.
//
// Values (nanoseconds) below 128 are counted exactly; larger values fall into
// 128 linear sub-buckets per power of two, so a reported percentile is within
// 1/128 (< 0.8%) of the true sample value.  min, max, mean and stdev are exact.
// Not thread-safe: give each thread its own histogram and merge() at the end.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace fastpath {

class LatencyHistogram {
 public:
  void record(std::uint64_t value);
  void merge(const LatencyHistogram& other);
  void reset();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  double mean() const;
  double stdev() const;
  // p in [0, 100]: the smallest recorded value v such that at least p% of the
  // samples are <= v (to bucket precision).  0 when empty.
  std::uint64_t percentile(double p) const;

  // {"count","min_ns","max_ns","mean_ns","stdev_ns","p50_ns","p99_ns","p999_ns"}
  nlohmann::json to_json() const;

 private:
  static constexpr unsigned kSubBits = 7;
  static constexpr std::uint64_t kSub = 1ULL << kSubBits;
  static std::size_t index_of(std::uint64_t value);
  static std::uint64_t upper_of(std::size_t index);

  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  double sum_ = 0;
  double sumsq_ = 0;
};

}  // namespace fastpath
