// SPDX-License-Identifier: GPL-2.0
#include "workload.h"

#include <cmath>

namespace fastpath::rubble {

namespace {

std::uint64_t fnv64(std::uint64_t v) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < 8; ++i) {
    h ^= v & 0xff;
    h *= 1099511628211ULL;
    v >>= 8;
  }
  return h;
}

}  // namespace

std::string ycsb_key(std::uint64_t n) {
  return "user" + std::to_string(fnv64(n));
}

KeyChooser::KeyChooser(Kind kind, std::uint64_t n) : kind_(kind), n_(n ? n : 1) {
  if (kind_ != Kind::kZipfian) return;
  // Gray et al., "Quickly generating billion-record synthetic databases", as in YCSB.
  for (std::uint64_t i = 1; i <= n_; ++i) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta_);
  const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta_);
  alpha_ = 1.0 / (1.0 - theta_);
  eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n_), 1.0 - theta_)) / (1.0 - zeta2 / zetan_);
  half_pow_ = 1.0 + std::pow(0.5, theta_);
}

std::uint64_t KeyChooser::zipf(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (uz < half_pow_) return 1;
  const auto r = static_cast<std::uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
  return r < n_ ? r : n_ - 1;
}

std::uint64_t KeyChooser::choose(std::mt19937_64& rng) const {
  if (kind_ == Kind::kUniform) return std::uniform_int_distribution<std::uint64_t>(0, n_ - 1)(rng);
  return fnv64(zipf(rng)) % n_;  // scrambled: hot records spread over the key space
}

std::uint64_t KeyChooser::latest(std::mt19937_64& rng, std::uint64_t limit) const {
  if (limit == 0) return 0;
  const std::uint64_t rank = zipf(rng);
  return limit - 1 - (rank < limit ? rank : limit - 1);
}

std::uint64_t InsertCounter::next() {
  std::lock_guard lock(mu_);
  return next_++;
}

void InsertCounter::done(std::uint64_t n) {
  std::lock_guard lock(mu_);
  done_.insert(n);
  while (!done_.empty() && *done_.begin() == limit_) {
    done_.erase(done_.begin());
    ++limit_;
  }
}

std::uint64_t InsertCounter::limit() const {
  std::lock_guard lock(mu_);
  return limit_;
}

ValueSource::ValueSource(std::size_t value_size, std::uint64_t seed) : size_(value_size) {
  std::mt19937_64 rng(seed);
  pool_.resize(std::max<std::size_t>(1 << 20, 2 * value_size));
  for (auto& c : pool_) c = static_cast<char>(' ' + rng() % 95);
}

std::string_view ValueSource::next(std::mt19937_64& rng) const {
  const std::size_t off = std::uniform_int_distribution<std::size_t>(0, pool_.size() - size_)(rng);
  return std::string_view(pool_).substr(off, size_);
}

}  // namespace fastpath::rubble
