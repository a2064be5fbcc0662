// SPDX-License-Identifier: GPL-2.0
// The back-ends against each other and against brute force: GET, RANGE (with
// a cursor resumed across calls and back-ends) and the aggregations.
#include "backend.h"

#include <gtest/gtest.h>

#include <sys/utsname.h>

#include <cstring>
#include <random>

#include "test_util.h"
#include "verify.h"
#include "xrp.h"

namespace fastpath::bpfkv {
namespace {

using test::TempDir;

class Backends : public testing::TestWithParam<Params> {
 protected:
  void SetUp() override {
    path_ = dir_.file("db");
    g_ = test::make_db(path_, GetParam());
    db_ = std::make_unique<DbFile>(DbFile::open(path_));  // O_DIRECT
  }

  // Keys present, between, below and above the key set.
  std::vector<std::uint64_t> probe_keys() const {
    std::vector<std::uint64_t> keys{0, 1, g_.max_key(), g_.max_key() + 1, ~0ULL};
    std::mt19937_64 rng(7);
    for (int i = 0; i < 100; ++i) keys.push_back(rng() % (g_.max_key() + 2));
    return keys;
  }

  std::vector<std::uint64_t> expected_range(std::uint64_t lo, std::uint64_t hi) const {
    std::vector<std::uint64_t> keys;
    for (std::uint64_t i = 0; i < g_.nkeys; ++i)
      if (g_.key(i) >= lo && g_.key(i) < hi) keys.push_back(g_.key(i));
    return keys;
  }

  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges() const {
    const std::uint64_t top = g_.max_key() + 1;
    return {{0, top}, {0, ~0ULL},   {1, top / 2},   {top / 3, top / 3 + 1}, {top / 3, top / 3},
            {10, 3},  {top, ~0ULL}, {top - 1, top}, {top / 2 + 1, top - 2}};
  }

  TempDir dir_;
  std::string path_;
  Geometry g_;
  std::unique_ptr<DbFile> db_;
};

TEST_P(Backends, GetAgreesWithPreadAndTheKeySet) {
  const auto keys = probe_keys();
  std::vector<std::uint8_t> want_found(keys.size());
  std::vector<std::byte> want(keys.size() * g_.value_size);
  make_backend("pread", *db_)->get(keys, want_found, want);
  verify_get(*db_, "pread", keys, want_found, want);
  for (const auto& name : test::host_backends()) {
    auto b = make_backend(name, *db_);
    std::vector<std::uint8_t> found(keys.size());
    std::vector<std::byte> values(keys.size() * g_.value_size);
    b->get(keys, found, values);
    EXPECT_EQ(found, want_found) << name;
    EXPECT_EQ(values, want) << name;
    EXPECT_GT(b->stats().reads, 0u) << name;
  }
}

TEST_P(Backends, RangeMatchesBruteForce) {
  for (const auto& name : test::host_backends()) {
    auto b = make_backend(name, *db_);
    for (const auto& [lo, hi] : ranges()) {
      const auto want = expected_range(lo, hi);
      for (std::size_t page : {1, 7, 100000}) {
        if (page * 40 < want.size()) continue;  // each call descends again: keep the test fast
        EXPECT_EQ(test::range_keys(*b, g_, lo, hi, page), want)
            << name << " [" << lo << ", " << hi << ") page " << page;
      }
    }
  }
}

TEST_P(Backends, RangeValuesAreVerified) {
  for (const auto& name : test::host_backends()) {
    auto b = make_backend(name, *db_);
    RangeCursor c{3, g_.max_key(), false};
    while (!c.done) {
      const std::uint64_t from = c.next;
      std::vector<std::byte> values;
      b->range(c, 13, values);
      EXPECT_NO_THROW(verify_range(*db_, name, from, values, c)) << name;
    }
  }
}

TEST_P(Backends, RangeCursorResumesAcrossBackends) {
  const auto& names = test::host_backends();
  std::vector<std::unique_ptr<Backend>> bs;
  for (const auto& name : names) bs.push_back(make_backend(name, *db_));
  RangeCursor c{1, g_.max_key() + 1, false};
  std::vector<std::uint64_t> got;
  for (std::size_t turn = 0; !c.done; ++turn) {
    std::vector<std::byte> values;
    const std::size_t n = bs[turn % bs.size()]->range(c, 5, values);
    for (std::size_t i = 0; i < n; ++i) got.push_back(value_key(std::span(values).subspan(i * g_.value_size)));
  }
  EXPECT_EQ(got, expected_range(1, g_.max_key() + 1));
}

// A page that ends on the last key of the range ends the scan, in every
// back-end alike (the CLI's output does not depend on the back-end).
TEST_P(Backends, RangeEndsWithItsLastKey) {
  const auto all = expected_range(0, ~0ULL);
  const std::uint64_t lo = all[all.size() / 3], hi = all.back() + 1;
  const std::size_t n = expected_range(lo, hi).size();
  for (const auto& name : test::host_backends()) {
    auto b = make_backend(name, *db_);
    for (const std::uint64_t end : {hi, all[all.size() / 2] + 1}) {
      const std::size_t want = expected_range(lo, end).size();
      RangeCursor c{lo, end, false};
      std::vector<std::byte> values;
      EXPECT_EQ(b->range(c, want, values), want) << name;
      EXPECT_TRUE(c.done) << name << " end " << end;
    }
    RangeCursor c{lo, hi, false};
    std::vector<std::byte> values;
    if (n > 1) {
      EXPECT_EQ(b->range(c, n - 1, values), n - 1) << name;
      EXPECT_FALSE(c.done) << name;
    }
  }
}

TEST_P(Backends, AggregatesMatchBruteForce) {
  for (const auto& name : test::host_backends()) {
    auto b = make_backend(name, *db_);
    for (const auto& [lo, hi] : ranges())
      for (AggOp op : {AggOp::Count, AggOp::Sum, AggOp::Min, AggOp::Max}) {
        const AggResult got = b->aggregate(op, lo, hi), want = expected_aggregate(g_, op, lo, hi);
        EXPECT_EQ(got.count, want.count) << name << " [" << lo << ", " << hi << ") op " << static_cast<int>(op);
        if (want.count) {
          EXPECT_EQ(got.value(op), want.value(op))
              << name << " [" << lo << ", " << hi << ") op " << static_cast<int>(op);
        }
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Backends,
                         testing::Values(Params{.layers = 3, .fanout = 6, .stride = 3},
                                         Params{.layers = 2, .fanout = 40, .node_size = 4096, .value_size = 72},
                                         Params{.layers = 5, .fanout = 3, .value_size = 16},
                                         Params{.layers = 1, .fanout = 31, .value_size = 512}),
                         [](const testing::TestParamInfo<Params>& info) { return test::shape_name(info.param); });

TEST(Backend, UnknownNameAndUnavailableXrp) {
  TempDir dir;
  test::make_db(dir.file("db"), {.layers = 1, .fanout = 4});
  const DbFile db = DbFile::open(dir.file("db"));
  EXPECT_THROW(make_backend("mmap", db), std::invalid_argument);
  const std::string why = xrp_unavailable_reason();
  if (why.empty()) GTEST_SKIP() << "XRP is available on this kernel";
  utsname u{};
  ::uname(&u);
  if (!std::strstr(u.release, "-fastpath")) {
    EXPECT_EQ(why.rfind("read_xrp not available: ENOSYS; run inside the fastpath VM", 0), 0u) << why;
  }
  try {
    make_backend("xrp", db);
    FAIL() << "xrp back-end on a kernel without XRP";
  } catch (const Error& e) {
    EXPECT_EQ(e.what(), why);
  }
}

}  // namespace
}  // namespace fastpath::bpfkv
