// SPDX-License-Identifier: GPL-2.0
// bpfkv compare: one back-end against pread, in one process.
//
// Random GETs (a fifth of them for absent keys), RANGE scans and SUM, MIN,
// MAX and COUNT aggregations go to both back-ends; every answer must be
// byte-for-byte the same.  One process loads each XRP program once, which
// matters in the VM, where loading and verifying a program takes most of a
// second under TCG.  Prints TAP; exits 1 on any difference.
//
//   $ bpfkv compare /dev/nvme0n1 --backend xrp --gets 10000 --ranges 100
//   ok 1 10000 GETs (8000 present) equal pread's
//   ok 2 100 RANGE scans (14950 keys) equal pread's
//   ok 3 100 aggregations equal pread's
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "commands.h"

namespace fastpath::bpfkv {
namespace {

class CompareCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub =
        app.add_subcommand("compare", "check a back-end's GET, RANGE and aggregate answers against pread's");
    sub->add_option("FILE", path_, "database")->required();
    sub->add_option("--gets", gets_, "random keys to look up")->capture_default_str();
    sub->add_option("--ranges", ranges_, "random RANGE scans, and as many aggregations")->capture_default_str();
    sub->add_option("--max-range", max_range_, "longest range, in keys")->capture_default_str();
    sub->add_option("--seed", seed_, "random seed")->capture_default_str();
    q_.add_to(*sub, true);
    return sub;
  }

  int run() override {
    session_ = std::make_unique<QuerySession>(path_, q_);
    test_ = session_->backend.get();
    ref_ = make_backend("pread", session_->db);
    geo_ = session_->db.geo();
    rng_.seed(seed_);
    std::cout << "TAP version 13\n1..3\n";
    report(compare_gets());
    report(compare_ranges());
    report(compare_aggs());
    std::cout << "# " << test_->name() << " against pread: " << (failures_ ? "DIFFERENT" : "same answers") << '\n';
    return failures_ ? 1 : 0;
  }

 private:
  // what is a description, or starts with "differ" when the back-ends disagree.
  void report(const std::string& what) {
    const bool ok = what.rfind("differ", 0) != 0;
    if (!ok) ++failures_;
    std::cout << (ok ? "ok " : "not ok ") << ++n_ << ' ' << what << '\n';
  }

  std::uint64_t random_key() {
    // up to a quarter past the last key, so some keys are absent
    std::uniform_int_distribution<std::uint64_t> d(0, geo_.nkeys * geo_.stride * 5 / 4);
    return d(rng_);
  }

  std::string compare_gets() {
    constexpr std::size_t kBatch = 32;
    const std::size_t vs = geo_.value_size;
    std::uint64_t present = 0;
    for (std::uint64_t done = 0; done < gets_;) {
      const std::size_t n = std::min<std::uint64_t>(kBatch, gets_ - done);
      std::vector<std::uint64_t> keys(n);
      for (auto& k : keys) k = random_key();
      std::vector<std::uint8_t> f1(n), f2(n);
      std::vector<std::byte> v1(n * vs), v2(n * vs);
      ref_->get(keys, f1, v1);
      test_->get(keys, f2, v2);
      for (std::size_t i = 0; i < n; ++i) {
        const bool same = f1[i] == f2[i] &&
                          (!f1[i] || std::equal(v1.begin() + i * vs, v1.begin() + (i + 1) * vs, v2.begin() + i * vs));
        if (!same) return "differ: GET of key " + std::to_string(keys[i]);
        present += f1[i];
      }
      done += n;
    }
    return std::to_string(gets_) + " GETs (" + std::to_string(present) + " present) equal pread's";
  }

  // All values of [lo, hi) through b, in pages of 64.
  static std::vector<std::byte> scan(Backend& b, std::uint64_t lo, std::uint64_t hi) {
    RangeCursor c{lo, hi, lo >= hi};
    std::vector<std::byte> all, page;
    while (!c.done) {
      page.clear();
      b.range(c, 64, page);
      all.insert(all.end(), page.begin(), page.end());
    }
    return all;
  }

  std::string compare_ranges() {
    std::uniform_int_distribution<std::uint64_t> len(1, max_range_ * geo_.stride);
    std::uint64_t keys = 0;
    for (std::uint64_t i = 0; i < ranges_; ++i) {
      const std::uint64_t lo = random_key(), hi = lo + len(rng_);
      const auto a = scan(*ref_, lo, hi), b = scan(*test_, lo, hi);
      if (a != b) return "differ: RANGE [" + std::to_string(lo) + ", " + std::to_string(hi) + ")";
      keys += a.size() / geo_.value_size;
    }
    return std::to_string(ranges_) + " RANGE scans (" + std::to_string(keys) + " keys) equal pread's";
  }

  std::string compare_aggs() {
    std::uniform_int_distribution<std::uint64_t> len(1, max_range_ * geo_.stride);
    const AggOp ops[] = {AggOp::Sum, AggOp::Min, AggOp::Max, AggOp::Count};
    for (std::uint64_t i = 0; i < ranges_; ++i) {
      const std::uint64_t lo = random_key(), hi = lo + len(rng_);
      const AggOp op = ops[i % 4];
      const AggResult a = ref_->aggregate(op, lo, hi), b = test_->aggregate(op, lo, hi);
      if (a.count != b.count || a.value(op) != b.value(op))
        return "differ: aggregate " + std::to_string(static_cast<int>(op)) + " over [" + std::to_string(lo) + ", " +
               std::to_string(hi) + ")";
    }
    return std::to_string(ranges_) + " aggregations (SUM, MIN, MAX, COUNT) equal pread's";
  }

  std::string path_;
  std::uint64_t gets_ = 10000, ranges_ = 100, max_range_ = 300;
  std::uint64_t seed_ = 7;
  QueryOptions q_;
  Geometry geo_;
  std::unique_ptr<QuerySession> session_;  // the database and the tested back-end
  Backend* test_ = nullptr;                // session_->backend
  std::unique_ptr<Backend> ref_;           // pread over session_->db; declared last, destroyed first
  std::mt19937_64 rng_;
  int n_ = 0, failures_ = 0;
};

}  // namespace

std::unique_ptr<Command> make_compare_command() {
  return std::make_unique<CompareCommand>();
}

}  // namespace fastpath::bpfkv
