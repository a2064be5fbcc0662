// SPDX-License-Identifier: GPL-2.0
// Description: the SST pool file: formatting, the head's checks, sizes that
// do not fit, and O_DIRECT slot writes read back at any offset.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "pool.h"
#include "testutil.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;

namespace {

constexpr std::uint64_t kSlot = 2 << 20;

std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Pool, SlotSizeIsOneAndAHalfTargetsPlusOneMiB) {
  EXPECT_EQ(slot_size_for(8 << 20), (13u << 20));
  EXPECT_EQ(slot_size_for(1000), kPoolDataOffset + 4096);
}

TEST(Pool, FormatCreatesAFileAndTheHeadOpensIt) {
  TempDir d;
  const std::string path = d.path() + "/pool";
  auto pool = Pool::format(path, kSlot, 4);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kPoolDataOffset + 4 * kSlot);
  EXPECT_EQ(pool->header().slot_count, 4u);
  EXPECT_EQ(pool->header().pool_id.size(), 32u);
  pool->set_chain_id("c1");

  auto head = Pool::open(path, kSlot);
  EXPECT_EQ(head->header().pool_id, pool->header().pool_id);
  EXPECT_EQ(head->header().chain_id, "c1");
  EXPECT_NE(thrown([&] { Pool::open(path, kSlot + 4096); }).find("same --sst-size"), std::string::npos);

  auto again = Pool::format(path, kSlot, 0);  // a restart: all that fit, same identity
  EXPECT_EQ(again->header().slot_count, 4u);
  EXPECT_EQ(again->header().pool_id, pool->header().pool_id);
}

TEST(Pool, WrongSizesAndMissingHeadersAreRefused) {
  TempDir d;
  const std::string small = d.path() + "/small";
  { std::ofstream(small) << std::string(kPoolDataOffset + kSlot, '\0'); }
  EXPECT_NE(thrown([&] { Pool::format(small, kSlot, 0); }).find("fewer than 2 slots"), std::string::npos);
  EXPECT_NE(thrown([&] { Pool::format(small, kSlot, 8); }).find("too small for 8 slots"), std::string::npos);
  const std::string odd = d.path() + "/odd";
  { std::ofstream(odd) << std::string(kPoolDataOffset + 3 * kSlot + 100, '\0'); }
  EXPECT_NE(thrown([&] { Pool::format(odd, kSlot, 0); }).find("not a multiple of 4096"), std::string::npos);
  EXPECT_NE(thrown([&] { Pool::open(small, kSlot); }).find("no rubble pool header"), std::string::npos);
  EXPECT_NE(thrown([&] { Pool::open(d.path() + "/absent", kSlot); }).find("cannot open pool"), std::string::npos);
}

TEST(Pool, SlotWritesReadBackAtAnyOffset) {
  TempDir d;
  auto replica = Pool::format(d.path() + "/pool", kSlot, 3);
  auto head = Pool::open(d.path() + "/pool", kSlot);
  AlignedBuffer data(3 * kBlock);
  for (std::size_t i = 0; i < data.size(); ++i) data.data()[i] = static_cast<char>(i * 7 + 1);
  ASSERT_EQ(head->write_slot(2, data.data(), data.size()), "");
  char out[5000];
  ASSERT_EQ(replica->read_slot(2, 4093, 5000, out), 5000);
  EXPECT_EQ(std::memcmp(out, data.data() + 4093, 5000), 0);
  ASSERT_EQ(replica->read_slot(2, 0, 1, out), 1);
  EXPECT_EQ(out[0], data.data()[0]);
  EXPECT_NE(head->write_slot(3, data.data(), data.size()), "") << "outside the pool";
  EXPECT_NE(head->write_slot(0, data.data(), 100), "") << "not a block multiple";
  EXPECT_LT(replica->read_slot(0, kSlot - 10, 20, out), 0) << "past the end of the slot";
}

// A node that takes over as head finds each replica's pool on its own
// machine by pool id: under --find-pools first, then the view's path.
TEST(Pool, LocatedByIdUnderTheGlobsThenTheFallback) {
  TempDir d;
  const auto a = Pool::format(d.path() + "/a.pool", kSlot, 2)->header().pool_id;
  const auto b = Pool::format(d.path() + "/b.pool", kSlot, 2)->header().pool_id;
  ASSERT_NE(a, b);
  const std::string alias = d.path() + "/alias/b-over-nvmeof";
  ASSERT_EQ(::mkdir((d.path() + "/alias").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((d.path() + "/b.pool").c_str(), alias.c_str()), 0);
  std::string why;
  EXPECT_EQ(locate_pool(b, {d.path() + "/*.pool"}, "", &why), d.path() + "/b.pool");
  EXPECT_EQ(locate_pool(b, {d.path() + "/alias/*", d.path() + "/*.pool"}, "", &why), alias) << "globs in order";
  EXPECT_EQ(locate_pool(a, {d.path() + "/alias/*"}, d.path() + "/a.pool", &why), d.path() + "/a.pool")
      << "the fallback when no glob matches the id";
  EXPECT_EQ(locate_pool(a, {}, d.path() + "/b.pool", &why), "") << "a path with another pool's id is not it";
  EXPECT_NE(why.find("pool " + a), std::string::npos) << why;
  EXPECT_NE(why.find(d.path() + "/b.pool (pool " + b + ")"), std::string::npos) << why;
  EXPECT_NE(why.find("--find-pools"), std::string::npos) << why;
  EXPECT_EQ(locate_pool(a, {d.path() + "/none*"}, d.path() + "/missing", &why), "");
  EXPECT_NE(why.find(d.path() + "/missing (no pool)"), std::string::npos) << why;
}
