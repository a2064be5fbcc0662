// SPDX-License-Identifier: GPL-2.0
// YCSB-style key choice and values for rubble-bench.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>

namespace fastpath::rubble {

// "user" + a 64-bit hash of n: records inserted in order land all over the
// key space, as in YCSB.
std::string ycsb_key(std::uint64_t n);

// Picks record numbers in [0, n) uniformly or with YCSB's scrambled zipfian
// distribution (theta 0.99: a few records are hot, hashed over the key
// space).  Construction of a zipfian chooser costs O(n); choose() is O(1).
class KeyChooser {
 public:
  enum class Kind { kUniform, kZipfian };
  KeyChooser(Kind kind, std::uint64_t n);
  std::uint64_t choose(std::mt19937_64& rng) const;
  // YCSB's "latest" distribution (workload D): a record below limit, the
  // most recent ones most likely (limit - 1 - a zipfian rank).  Zipfian
  // choosers only.
  std::uint64_t latest(std::mt19937_64& rng, std::uint64_t limit) const;

 private:
  std::uint64_t zipf(std::mt19937_64& rng) const;

  Kind kind_;
  std::uint64_t n_;
  double theta_ = 0.99, alpha_ = 0, zetan_ = 0, eta_ = 0, half_pow_ = 0;
};

// Record numbers for inserts (workloads D and E), shared by the client
// threads.  next() hands out the next number; done() marks its insert
// acknowledged; limit() is the end of the longest prefix of acknowledged
// inserts, so that reads below it never miss (YCSB's acknowledged counter).
// Thread-safe.
class InsertCounter {
 public:
  explicit InsertCounter(std::uint64_t first) : next_(first), limit_(first) {}
  std::uint64_t next();
  void done(std::uint64_t n);
  std::uint64_t limit() const;

 private:
  mutable std::mutex mu_;
  std::uint64_t next_;            // guarded by mu_
  std::uint64_t limit_;           // guarded by mu_
  std::set<std::uint64_t> done_;  // guarded by mu_: acknowledged numbers >= limit_
};

// Values of a fixed size cut from a large random buffer (db_bench style).
class ValueSource {
 public:
  explicit ValueSource(std::size_t value_size, std::uint64_t seed = 301);
  std::string_view next(std::mt19937_64& rng) const;

 private:
  std::size_t size_;
  std::string pool_;
};

}  // namespace fastpath::rubble
