// SPDX-License-Identifier: GPL-2.0
#include "fastpath/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace fastpath {

std::size_t LatencyHistogram::index_of(std::uint64_t value) {
  if (value < kSub) return static_cast<std::size_t>(value);
  const unsigned exp = static_cast<unsigned>(std::bit_width(value)) - 1;  // >= kSubBits
  const unsigned shift = exp - kSubBits;
  const std::uint64_t sub = (value >> shift) - kSub;  // 0 .. kSub-1
  return static_cast<std::size_t>(kSub + (exp - kSubBits) * kSub + sub);
}

// Largest value that maps to index.
std::uint64_t LatencyHistogram::upper_of(std::size_t index) {
  if (index < kSub) return index;
  const std::uint64_t group = (index - kSub) / kSub;  // exp - kSubBits
  const std::uint64_t sub = (index - kSub) % kSub;
  const unsigned shift = static_cast<unsigned>(group);
  const std::uint64_t low = (kSub + sub) << shift;
  return low + ((1ULL << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t value) {
  const std::size_t i = index_of(value);
  if (i >= buckets_.size()) buckets_.resize(i + 1, 0);
  ++buckets_[i];
  if (count_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  ++count_;
  const double v = static_cast<double>(value);
  sum_ += v;
  sumsq_ += v * v;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (other.buckets_.size() > buckets_.size()) buckets_.resize(other.buckets_.size(), 0);
  for (std::size_t i = 0; i < other.buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
  sumsq_ += other.sumsq_;
}

void LatencyHistogram::reset() {
  *this = LatencyHistogram{};
}

double LatencyHistogram::mean() const {
  return count_ ? sum_ / static_cast<double>(count_) : 0.0;
}

double LatencyHistogram::stdev() const {
  if (count_ < 2) return 0.0;
  const double n = static_cast<double>(count_);
  const double var = (sumsq_ - sum_ * sum_ / n) / (n - 1);
  return var > 0 ? std::sqrt(var) : 0.0;
}

std::uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::clamp(upper_of(i), min_, max_);
  }
  return max_;
}

nlohmann::json LatencyHistogram::to_json() const {
  return {{"count", count_},     {"min_ns", min()},          {"max_ns", max_},           {"mean_ns", mean()},
          {"stdev_ns", stdev()}, {"p50_ns", percentile(50)}, {"p99_ns", percentile(99)}, {"p999_ns", percentile(99.9)}};
}

}  // namespace fastpath
