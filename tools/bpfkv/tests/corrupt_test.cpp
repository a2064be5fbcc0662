// SPDX-License-Identifier: GPL-2.0
// Damaged databases: a truncated file, a bad or foreign superblock, and
// corrupt nodes and values.  Every back-end must fail with an error that
// names the file and the cause, and never give an answer that does not
// verify.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "backend.h"
#include "test_util.h"
#include "verify.h"

namespace fastpath::bpfkv {
namespace {

using test::TempDir;

std::string open_error(const std::string& path) {
  try {
    DbFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class BadFile : public testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("db");
    g_ = test::make_db(path_, {.layers = 2, .fanout = 5});
    size_ = g_.min_file_size();
  }
  void expect_open_error(const std::string& cause) {
    const std::string msg = open_error(path_);
    EXPECT_EQ(msg.rfind(path_ + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(cause), std::string::npos) << msg;
  }

  TempDir dir_;
  std::string path_;
  Geometry g_;
  std::uint64_t size_ = 0;
};

TEST_F(BadFile, Truncated) {
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(size_ - 4096)), 0);
  expect_open_error("not a bpfkv database: no superblock in its last 4096 bytes");
  ASSERT_EQ(::truncate(path_.c_str(), 1000), 0);
  expect_open_error("only 1000 bytes");
}

TEST_F(BadFile, SizeNotAMultipleOf4096) {
  std::ofstream(path_, std::ios::app) << "x";
  expect_open_error("is not a multiple of 4096");
}

TEST_F(BadFile, SuperblockOfADifferentSize) {
  // A database cut short, its superblock copied to the new end.
  const auto bytes = test::read_file(path_);
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(size_ - 4096)), 0);
  test::patch_file(path_, size_ - 8192, bytes.data() + size_ - 4096, 4096);
  expect_open_error("size is " + std::to_string(size_ - 4096) + " bytes but the superblock says " +
                    std::to_string(size_));
}

TEST_F(BadFile, BadMagic) {
  test::patch_u64(path_, size_ - 4096, 0x1234);
  expect_open_error("not a bpfkv database");
}

TEST_F(BadFile, BadChecksum) {
  test::patch_u64(path_, size_ - 4096 + offsetof(bpfkv_super, nkeys), 26);
  expect_open_error("corrupt superblock: checksum mismatch");
}

TEST_F(BadFile, OtherFormatVersion) {
  bpfkv_super s = make_super(g_, size_);
  s.version = 2;
  s.checksum = super_checksum(s);
  test::patch_file(path_, size_ - 4096, &s, sizeof(s));
  expect_open_error("bpfkv format version 2; this bpfkv reads version 1");
}

TEST_F(BadFile, AnotherKindOfFile) {
  std::vector<char> junk(65536);
  std::mt19937 rng(1);
  for (char& c : junk) c = static_cast<char>(rng());
  std::ofstream(path_, std::ios::trunc | std::ios::binary).write(junk.data(), static_cast<long>(junk.size()));
  expect_open_error("not a bpfkv database");
}

TEST_F(BadFile, Missing) {
  EXPECT_EQ(open_error(path_), "");  // sanity: the intact file opens
  const std::string msg = open_error(dir_.file("nope"));
  EXPECT_NE(msg.find("nope: cannot open: No such file or directory"), std::string::npos) << msg;
}

// ---- corrupt nodes and values, through every back-end ----

enum class Op { Get, Range, Agg };

// Runs op over the whole database and verifies the answer; returns the
// error message, or "" when it succeeded (with a verified answer).
std::string run(Backend& b, const DbFile& db, Op op) {
  const Geometry& g = db.geo();
  try {
    if (op == Op::Get) {
      std::vector<std::uint64_t> keys;
      for (std::uint64_t i = 0; i < g.nkeys; ++i) keys.push_back(g.key(i));
      std::vector<std::uint8_t> found(keys.size());
      std::vector<std::byte> values(keys.size() * g.value_size);
      b.get(keys, found, values);
      verify_get(db, b.name(), keys, found, values);
    } else if (op == Op::Range) {
      RangeCursor c{0, ~0ULL, false};
      std::vector<std::byte> values;
      b.range(c, g.nkeys + 1, values);
      verify_range(db, b.name(), 0, values, c);
    } else {
      verify_aggregate(db, b.name(), AggOp::Sum, 0, ~0ULL, b.aggregate(AggOp::Sum, 0, ~0ULL));
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Damage {
  const char* name;
  std::function<void(const std::string& path, const Geometry& g)> apply;
  const char* cause;          // in every error message
  std::vector<Op> must_fail;  // the others must fail with the cause or give verified answers
};

constexpr std::uint32_t kKeys = BPFKV_NODE_KEYS(512), kPtrs = BPFKV_NODE_PTRS(512);

std::uint64_t leaf_off(const Geometry& g, std::uint64_t j) {
  return g.level_off[g.layers - 1] + j * g.node_size;
}

void set_header(const std::string& path, std::uint64_t off, std::uint32_t magic, std::uint16_t type,
                std::uint16_t nkeys) {
  const std::uint64_t hdr = magic | std::uint64_t{type} << 32 | std::uint64_t{nkeys} << 48;
  test::patch_u64(path, off, hdr);
}

const std::vector<Damage>& damages() {
  static const std::vector<Damage> list{
      {"root magic",
       [](auto& p, auto&) { set_header(p, 0, 0xdeadbeef, BPFKV_NODE_INNER, 4); },
       "bad node magic",
       {Op::Get, Op::Range, Op::Agg}},
      {"root type",
       [](auto& p, auto&) { set_header(p, 0, BPFKV_NODE_MAGIC, BPFKV_NODE_LEAF, 4); },
       "wrong node type",
       {Op::Get, Op::Range, Op::Agg}},
      {"root nkeys",
       [](auto& p, auto&) { set_header(p, 0, BPFKV_NODE_MAGIC, BPFKV_NODE_INNER, 0); },
       "key count out of range",
       {Op::Get, Op::Range, Op::Agg}},
      {"child pointer",
       [](auto& p, auto&) { test::patch_u64(p, kPtrs + 8 * 0, 1ULL << 40); },
       "child pointer out of range",
       {Op::Get, Op::Range, Op::Agg}},
      {"child pointer into the values",
       [](auto& p, auto& g) { test::patch_u64(p, kPtrs + 8 * 0, g.log_off); },
       "child pointer out of range",
       {Op::Get, Op::Range, Op::Agg}},
      {"keys out of order",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 0) + kKeys + 8, 100000); },
       "keys out of order in a node",
       {Op::Get, Op::Range, Op::Agg}},
      // Scans from key 0 reach the leaves through level-1 node 0 and the
      // next pointers, so only lookups read the damaged node 1.
      {"keys outside the parent's range",
       [](auto& p, auto& g) { test::patch_u64(p, g.level_off[1] + 512 + kKeys, 3 * 16 - 1); },
       "keys outside the range of the parent node",
       {Op::Get}},
      {"value pointer",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 1) + kPtrs + 8, g.log_off + 4); },
       "value pointer out of range",
       {Op::Get, Op::Range, Op::Agg}},
      {"value pointer into the index",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 1) + kPtrs + 8, 512); },
       "value pointer out of range",
       {Op::Get, Op::Range, Op::Agg}},
      {"value key",
       [](auto& p, auto& g) { test::patch_u64(p, g.value_off(17), 999); },
       "value does not hold the key that points to it",
       {Op::Get, Op::Range, Op::Agg}},
      {"next-leaf pointer",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 2) + 8, 8); },
       "next-leaf pointer out of range",
       {Op::Range, Op::Agg}},
      {"next-leaf pointer backwards",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 2) + 8, leaf_off(g, 1)); },
       "next-leaf pointer out of range",
       {Op::Range, Op::Agg}},
      // Key 6 becomes 7: every node still looks valid.  GET(6) then says
      // "absent", which the key set refutes; scans read 6's value for key 7.
      {"leaf key changed in order",
       [](auto& p, auto& g) { test::patch_u64(p, leaf_off(g, 0) + kKeys + 16, 7); },
       "",
       {Op::Get, Op::Range, Op::Agg}},
  };
  return list;
}

class CorruptNode : public testing::TestWithParam<std::size_t> {};

TEST_P(CorruptNode, EveryBackendFailsClearly) {
  const Damage& d = damages()[GetParam()];
  TempDir dir;
  const std::string path = dir.file("db");
  const Geometry g = test::make_db(path, {.layers = 3, .fanout = 4, .stride = 3});
  d.apply(path, g);
  const DbFile db = DbFile::open(path);
  for (const auto& name : test::host_backends()) {
    for (Op op : {Op::Get, Op::Range, Op::Agg}) {
      auto b = make_backend(name, db);
      const std::string msg = run(*b, db, op);
      const bool must = std::find(d.must_fail.begin(), d.must_fail.end(), op) != d.must_fail.end();
      SCOPED_TRACE(std::string(d.name) + ", " + name + ", op " + std::to_string(static_cast<int>(op)));
      if (must) {
        EXPECT_FALSE(msg.empty());
      }
      if (msg.empty()) continue;
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(d.cause), std::string::npos) << msg;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Damages, CorruptNode, testing::Range<std::size_t>(0, damages().size()),
                         [](const testing::TestParamInfo<std::size_t>& info) {
                           std::string n = damages()[info.param].name;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace fastpath::bpfkv
