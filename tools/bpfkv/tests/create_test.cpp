// SPDX-License-Identifier: GPL-2.0
// The creator: databases of 1 to 4 layers with both node sizes, every key
// read back through the pread back-end; overwrite protection.
#include "create.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend.h"
#include "test_util.h"
#include "verify.h"

namespace fastpath::bpfkv {
namespace {

using test::TempDir;

struct Shape {
  std::uint32_t layers, fanout, node_size, value_size;
  std::uint64_t stride;
};

class CreateEveryKey : public testing::TestWithParam<Shape> {};

TEST_P(CreateEveryKey, EveryKeyReadsBackThroughPread) {
  const Shape s = GetParam();
  TempDir dir;
  const std::string path = dir.file("db");
  const Geometry g = test::make_db(path, {s.layers, s.fanout, s.node_size, s.value_size, s.stride});
  const DbFile db = DbFile::open(path, {.direct = false});
  EXPECT_EQ(db.size(), g.min_file_size());
  EXPECT_EQ(db.geo().nkeys, g.nkeys);
  auto backend = make_pread_backend(db);
  std::vector<std::uint64_t> keys;
  for (std::uint64_t i = 0; i < g.nkeys; ++i) keys.push_back(g.key(i));
  keys.push_back(g.max_key() + s.stride);  // one past the end
  if (s.stride > 1) keys.push_back(1);     // between two keys
  std::vector<std::uint8_t> found(keys.size());
  std::vector<std::byte> values(keys.size() * g.value_size);
  backend->get(keys, found, values);
  verify_get(db, "pread", keys, found, values);
  EXPECT_EQ(std::count(found.begin(), found.end(), 1), static_cast<long>(g.nkeys));
  EXPECT_EQ(backend->stats().reads, g.nkeys * (g.layers + 1) + (keys.size() - g.nkeys) * g.layers);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CreateEveryKey,
                         testing::Values(Shape{1, 31, 512, 64, 1}, Shape{2, 7, 512, 64, 3}, Shape{3, 5, 512, 72, 1},
                                         Shape{4, 4, 512, 16, 2}, Shape{1, 255, 4096, 64, 1},
                                         Shape{2, 20, 4096, 512, 1}, Shape{3, 6, 4096, 64, 5},
                                         Shape{4, 3, 4096, 24, 1}));

TEST(Create, TheRootIsAtOffsetZeroAndTheSuperblockLast) {
  TempDir dir;
  const std::string path = dir.file("db");
  const Geometry g = test::make_db(path, {.layers = 2, .fanout = 3});
  const auto bytes = test::read_file(path);
  std::uint32_t magic = 0;
  std::memcpy(&magic, bytes.data(), sizeof(magic));
  EXPECT_EQ(magic, BPFKV_NODE_MAGIC);
  bpfkv_super s{};
  std::memcpy(&s, bytes.data() + bytes.size() - BPFKV_SUPER_SIZE, sizeof(s));
  EXPECT_EQ(s.magic, BPFKV_SUPER_MAGIC);
  EXPECT_EQ(s.file_size, bytes.size());
  EXPECT_EQ(s.nkeys, g.nkeys);
}

TEST(Create, RefusesToOverwriteAnotherFileUnlessForced) {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  std::ofstream(path) << "precious\n";
  try {
    test::make_db(path, {.layers = 1, .fanout = 4});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": exists and is not a bpfkv database"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos);
  }
  EXPECT_EQ(test::read_file(path).size(), 9u);  // untouched

  CreateOptions forced;
  forced.params = {.layers = 1, .fanout = 4};
  forced.force = true;
  EXPECT_NO_THROW(create_db(path, forced));
  EXPECT_NO_THROW(DbFile::open(path));
}

TEST(Create, ReplacesAnExistingDatabase) {
  TempDir dir;
  const std::string path = dir.file("db");
  test::make_db(path, {.layers = 3, .fanout = 6});
  const Geometry g = test::make_db(path, {.layers = 1, .fanout = 4});
  const DbFile db = DbFile::open(path);
  EXPECT_EQ(db.geo().nkeys, 4u);
  EXPECT_EQ(db.size(), g.min_file_size());
}

TEST(Create, ReportsProgress) {
  TempDir dir;
  std::ostringstream out;
  CreateOptions opts;
  opts.params = {.layers = 2, .fanout = 10};
  opts.progress = &out;
  create_db(dir.file("db"), opts);
  EXPECT_NE(out.str().find("100% (111/111)"), std::string::npos) << out.str();
}

TEST(Create, RejectsBadParameters) {
  TempDir dir;
  EXPECT_THROW(test::make_db(dir.file("db"), {.layers = 2, .node_size = 1000}), std::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(dir.file("db")));
}

}  // namespace
}  // namespace fastpath::bpfkv
