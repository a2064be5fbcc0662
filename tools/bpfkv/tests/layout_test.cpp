// SPDX-License-Identifier: GPL-2.0
// Layout math: geometry, superblock, values, node encoding and checks, and
// the scratch layouts shared with the BPF programs.
#include "layout.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace fastpath::bpfkv {
namespace {

TEST(Geometry, DefaultFanoutIsTheNodeCapacity) {
  EXPECT_EQ(BPFKV_NODE_CAP(512), 31u);
  EXPECT_EQ(BPFKV_NODE_CAP(4096), 255u);
  EXPECT_EQ(BPFKV_NODE_PTRS(512) + 8 * 31, 512u);
  EXPECT_EQ(BPFKV_NODE_PTRS(4096) + 8 * 255, 4096u);
  EXPECT_EQ(Geometry::make({.layers = 2}).fanout, 31u);
  EXPECT_EQ(Geometry::make({.layers = 1, .node_size = 4096}).fanout, 255u);
}

TEST(Geometry, LevelsLogAndSizes) {
  const Geometry g = Geometry::make({.layers = 3, .fanout = 4, .node_size = 512, .value_size = 64, .stride = 3});
  EXPECT_EQ(g.nkeys, 64u);
  EXPECT_EQ(g.level_off[0], 0u);  // the root
  EXPECT_EQ(g.level_off[1], 512u);
  EXPECT_EQ(g.level_off[2], 512u * 5);
  EXPECT_EQ(g.level_off[3], 512u * 21);
  EXPECT_EQ(g.level_nodes(2), 16u);
  EXPECT_EQ(g.index_size, 512u * 21);
  EXPECT_EQ(g.log_off, 12288u);  // rounded up to 4096
  EXPECT_EQ(g.values_per_block, 8u);
  EXPECT_EQ(g.log_size, 4096u);  // 8 blocks of 512
  EXPECT_EQ(g.min_file_size(), 12288u + 4096 + 4096);
  EXPECT_EQ(g.max_key(), 63u * 3);
  EXPECT_TRUE(g.contains(63 * 3));
  EXPECT_FALSE(g.contains(64 * 3));
  EXPECT_FALSE(g.contains(4));
}

TEST(Geometry, ValuesNeverCrossA512ByteBlock) {
  for (std::uint32_t vs : {16u, 24u, 64u, 72u, 200u, 512u}) {
    const Geometry g = Geometry::make({.layers = 2, .fanout = 10, .value_size = vs});
    EXPECT_EQ(g.values_per_block, 512 / vs);
    for (std::uint64_t i = 0; i < g.nkeys; ++i) {
      const std::uint64_t off = g.value_off(i);
      EXPECT_LE(off % 512 + vs, 512u) << vs << " " << i;
      EXPECT_TRUE(g.value_ptr_ok(off));
      EXPECT_LE(off + vs, g.log_end());
    }
    EXPECT_FALSE(g.value_ptr_ok(g.value_off(0) + 8));
    EXPECT_FALSE(g.value_ptr_ok(g.log_off - 64));
  }
}

TEST(Geometry, RejectsBadParameters) {
  EXPECT_THROW(Geometry::make({.layers = 0}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = BPFKV_MAX_LAYERS + 1}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .fanout = 1}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .fanout = 32}), std::invalid_argument);
  EXPECT_NO_THROW(Geometry::make({.layers = 2, .fanout = 32, .node_size = 4096}));
  EXPECT_THROW(Geometry::make({.layers = 2, .node_size = 1024}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .value_size = 60}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .value_size = 8}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .value_size = 520}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 2, .stride = 0}), std::invalid_argument);
  EXPECT_THROW(Geometry::make({.layers = 8, .fanout = 255, .node_size = 4096}), std::invalid_argument);
}

TEST(Superblock, RoundTripsAndChecksEveryField) {
  const Geometry g = Geometry::make({.layers = 2, .fanout = 5});
  bpfkv_super s = make_super(g, g.min_file_size());
  const Geometry back = check_super(s, g.min_file_size(), "db");
  EXPECT_EQ(back.nkeys, g.nkeys);
  EXPECT_EQ(back.log_off, g.log_off);

  bpfkv_super bad = s;
  bad.log_off += 4096;
  EXPECT_THROW(check_super(bad, g.min_file_size(), "db"), Error);  // checksum
  bad.checksum = super_checksum(bad);
  try {
    check_super(bad, g.min_file_size(), "db");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "db: corrupt superblock: log offset is 8192, the geometry gives 4096");
  }
  EXPECT_THROW(check_super(s, g.min_file_size() + 4096, "db"), Error);  // size
}

TEST(Values, AreDerivedFromTheKey) {
  std::vector<std::byte> v(64);
  fill_value(1234, v);
  EXPECT_EQ(value_key(v), 1234u);
  EXPECT_EQ(value_agg(v), agg_field(1234));
  EXPECT_LT(agg_field(1234), 1ULL << 32);
  EXPECT_TRUE(value_matches(1234, v));
  EXPECT_FALSE(value_matches(1235, v));
  v[40] ^= std::byte{1};
  EXPECT_FALSE(value_matches(1234, v));
}

TEST(Node, EncodesAndChecks) {
  const Geometry g = Geometry::make({.layers = 2, .fanout = 4});
  std::vector<std::byte> buf(512);
  const std::vector<std::uint64_t> keys{0, 4, 8, 12};
  const std::vector<std::uint64_t> ptrs{512, 1024, 1536, 2048};
  encode_node(buf, 512, false, 0, keys, ptrs);
  const Node n = Node::check(g, buf, 0, 0, {}, "db");
  EXPECT_FALSE(n.leaf());
  EXPECT_EQ(n.nkeys(), 4u);
  EXPECT_EQ(n.key(2), 8u);
  EXPECT_EQ(n.ptr(3), 2048u);
  EXPECT_EQ(n.count_le(7), 2u);
  EXPECT_EQ(n.count_le(8), 3u);
  EXPECT_EQ(n.count_lt(8), 2u);
  EXPECT_EQ(n.child_bounds(1, {}).lo, 4u);
  EXPECT_EQ(n.child_bounds(1, {}).hi, 7u);
  EXPECT_EQ(n.child_bounds(3, {0, 99}).hi, 99u);
  // Level 1 is the leaf level: the same bytes are the wrong type there.
  EXPECT_THROW(Node::check(g, buf, 512, 1, {}, "db"), Error);
  // Keys must lie in the parent's bounds.
  EXPECT_THROW(Node::check(g, buf, 0, 0, {1, ~0ULL}, "db"), Error);
}

TEST(Scratch, LayoutsFitAndMatchTheBatchMacros) {
  EXPECT_EQ(sizeof(bpfkv_xrp_params) % 8, 0u);
  EXPECT_EQ(sizeof(bpfkv_get_scratch), 512u);
  EXPECT_LE(sizeof(bpfkv_scan_scratch), 1024u);
  EXPECT_EQ(BPFKV_GET_BATCH(64), 32u);
  EXPECT_EQ(BPFKV_GET_BATCH(512), 7u);
  EXPECT_LE(BPFKV_GET_VALUES + BPFKV_GET_BATCH(512) * 512, 4096u);
  EXPECT_GE(BPFKV_RANGE_BATCH(512), 1u);
  EXPECT_LE(BPFKV_RANGE_VALUES + BPFKV_RANGE_BATCH(72) * 72, 4096u);
}

}  // namespace
}  // namespace fastpath::bpfkv
