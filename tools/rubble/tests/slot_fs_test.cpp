// SPDX-License-Identifier: GPL-2.0
// Description: the replica's slot table and mirror.  A slot returns to the
// head only after the head deleted its file, a later catch-up completed, and
// the last reader closed; the head's file operations are applied in order
// and malformed ones are refused.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "slot_fs.h"
#include "testutil.h"
#include "warmer.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;

namespace {

wire::FileOp op(wire::FileOp::Type type, const std::string& name) {
  wire::FileOp o;
  o.set_type(type);
  o.set_name(name);
  return o;
}

wire::FileOp append(const std::string& name, std::uint64_t offset, const std::string& data) {
  auto o = op(wire::FileOp::APPEND, name);
  o.set_offset(offset);
  o.set_data(data);
  return o;
}

wire::FileOp install(const std::string& name, std::uint32_t slot, std::uint64_t size) {
  auto o = op(wire::FileOp::INSTALL_SST, name);
  o.set_slot(slot);
  o.set_size(size);
  return o;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(SlotTable, ReleaseNeedsDeleteThenCatchUpThenNoReader) {
  SlotTable t;
  ASSERT_EQ(t.install("000010.sst", {3, 100}), "");
  ASSERT_TRUE(t.open_reader("000010.sst"));
  t.remove("000010.sst");
  EXPECT_TRUE(t.find("000010.sst")) << "readable until released";
  EXPECT_TRUE(t.files().empty()) << "but no longer listed";
  t.close_reader("000010.sst");
  EXPECT_TRUE(t.take_released().empty()) << "no catch-up since the delete";
  const auto ticket = t.begin_catch_up();
  t.end_catch_up(ticket);
  EXPECT_EQ(t.take_released(), std::vector<std::uint32_t>{3});
  EXPECT_FALSE(t.find("000010.sst"));
  EXPECT_EQ(t.in_use(), 0u);
}

TEST(SlotTable, ACatchUpBegunBeforeTheDeleteDoesNotCount) {
  SlotTable t;
  ASSERT_EQ(t.install("000011.sst", {1, 10}), "");
  const auto early = t.begin_catch_up();
  t.remove("000011.sst");
  t.end_catch_up(early);
  EXPECT_TRUE(t.take_released().empty());
  ASSERT_TRUE(t.open_reader("000011.sst"));
  t.end_catch_up(t.begin_catch_up());
  EXPECT_TRUE(t.take_released().empty()) << "a reader still has it open";
  EXPECT_EQ(t.retired(), 1u);
  t.close_reader("000011.sst");
  EXPECT_EQ(t.take_released(), std::vector<std::uint32_t>{1});
}

TEST(SlotTable, ASlotInUseCannotBeInstalledAgain) {
  SlotTable t;
  ASSERT_EQ(t.install("000012.sst", {5, 10}), "");
  EXPECT_NE(t.install("000013.sst", {5, 10}).find("still used by 000012.sst"), std::string::npos);
  EXPECT_NE(t.install("000012.sst", {6, 10}).find("already installed"), std::string::npos);
  t.remove("000012.sst");
  EXPECT_NE(t.install("000013.sst", {5, 10}), "") << "deleted but not released yet";
  t.end_catch_up(t.begin_catch_up());
  EXPECT_EQ(t.install("000013.sst", {5, 10}), "");
}

TEST(MirrorApplier, AppliesFileOperationsInOrder) {
  TempDir d;
  SlotTable t;
  PoolHeader h;
  h.slot_count = 4;
  h.slot_size = 1 << 20;
  MirrorApplier m(d.path(), t, h);
  ASSERT_EQ(m.apply(op(wire::FileOp::TRUNCATE, "000001.dbtmp")), "");
  ASSERT_EQ(m.apply(append("000001.dbtmp", 0, "MANIFEST-000001\n")), "");
  ASSERT_EQ(m.apply(append("MANIFEST-000001", 0, "abc")), "");
  ASSERT_EQ(m.apply(append("MANIFEST-000001", 3, "def")), "");
  auto rename = op(wire::FileOp::RENAME, "000001.dbtmp");
  rename.set_target("CURRENT");
  ASSERT_EQ(m.apply(rename), "");
  ASSERT_EQ(m.apply(install("000004.sst", 2, 1000)), "");
  ASSERT_EQ(m.apply(append("000003.log", 0, "wal")), "");
  ASSERT_EQ(m.apply(op(wire::FileOp::DELETE, "000003.log")), "");
  EXPECT_EQ(slurp(d.path() + "/CURRENT"), "MANIFEST-000001\n");
  EXPECT_EQ(slurp(d.path() + "/MANIFEST-000001"), "abcdef");
  EXPECT_FALSE(std::filesystem::exists(d.path() + "/000003.log"));
  EXPECT_FALSE(std::filesystem::exists(d.path() + "/000004.sst")) << "SSTs live in slots, not in the mirror";
  ASSERT_TRUE(t.find("000004.sst"));
  EXPECT_EQ(t.find("000004.sst")->slot, 2u);
  auto trunc = op(wire::FileOp::TRUNCATE, "MANIFEST-000001");
  trunc.set_size(2);
  ASSERT_EQ(m.apply(trunc), "");
  EXPECT_EQ(slurp(d.path() + "/MANIFEST-000001"), "ab");
}

TEST(MirrorApplier, MalformedOperationsAreRefused) {
  TempDir d;
  SlotTable t;
  PoolHeader h;
  h.slot_count = 4;
  h.slot_size = 1 << 20;
  MirrorApplier m(d.path(), t, h);
  EXPECT_NE(m.apply(append("../escape", 0, "x")), "");
  EXPECT_NE(m.apply(append("a/b", 0, "x")), "");
  EXPECT_NE(m.apply(append("", 0, "x")), "");
  EXPECT_NE(m.apply(append("000005.sst", 0, "x")).find("through a slot"), std::string::npos);
  EXPECT_NE(m.apply(install("MANIFEST-000001", 1, 10)).find("not an SST"), std::string::npos);
  EXPECT_NE(m.apply(install("000005.sst", 4, 10)).find("outside this replica's pool"), std::string::npos);
  EXPECT_NE(m.apply(install("000005.sst", 1, 2 << 20)).find("more than a slot"), std::string::npos);
  auto bad = op(wire::FileOp::RENAME, "CURRENT");
  bad.set_target("../x");
  EXPECT_NE(m.apply(bad), "");
  EXPECT_FALSE(std::filesystem::exists(d.path() + "/../escape"));
}

// Pages of the pool file in [offset, offset + len) that are in the page cache.
static std::size_t resident_pages(const std::string& path, std::uint64_t offset, std::size_t len) {
  fastpath::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  void* map = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd.get(), static_cast<off_t>(offset));
  if (map == MAP_FAILED) return 0;
  const std::size_t pages = (len + 4095) / 4096;
  std::vector<unsigned char> vec(pages);
  std::size_t n = 0;
  if (::mincore(map, len, vec.data()) == 0)
    for (auto v : vec) n += v & 1;
  ::munmap(map, len);
  return n;
}

// A replica's pool of 4 slots for 64 KiB SSTs (file-backed), opened by the
// replica and by a head that writes its slots, and a mirror directory.
struct SlotPool {
  static constexpr std::uint64_t kSst = 64 << 10;
  TempDir d;
  const std::string path = d.path() + "/pool", mirror = d.path() + "/mirror";
  std::unique_ptr<Pool> replica = Pool::format(path, slot_size_for(kSst), 4);
  std::unique_ptr<Pool> head = Pool::open(path, slot_size_for(kSst));

  SlotPool() { std::filesystem::create_directories(mirror); }
  // The head writes a whole SST of byte c into slot.
  std::string write(std::uint32_t slot, char c) {
    AlignedBuffer data(kSst);
    std::memset(data.data(), c, kSst);
    return head->write_slot(slot, data.data(), kSst);
  }
  std::size_t pages(std::uint32_t slot, std::uint64_t skip = 0, std::uint64_t len = kSst) const {
    return resident_pages(path, replica->slot_offset(slot) + skip, len);
  }
};

// A replica reads its slots through the page cache, and a slot's cached
// pages go when the next SST installed in it is opened: the head's writes
// (over NVMe-oF: not through this page cache) would otherwise be hidden by
// the previous occupant's pages.
TEST(SlotFileSystem, ReadsAreCachedAndAReusedSlotStartsUncached) {
  SlotPool p;
  constexpr auto kSst = SlotPool::kSst;
  const std::string& mirror = p.mirror;
  ASSERT_EQ(p.write(2, 'A'), "");
  SlotTable table;
  ASSERT_EQ(table.install("000007.sst", {2, kSst}), "");
  SlotFileSystem fs(rocksdb::FileSystem::Default(), mirror, *p.replica, table);
  std::unique_ptr<rocksdb::FSRandomAccessFile> f;
  ASSERT_TRUE(fs.NewRandomAccessFile(mirror + "/000007.sst", {}, &f, nullptr).ok());
  std::string scratch(kSst, '\0');
  rocksdb::Slice got;
  ASSERT_TRUE(f->Read(0, kSst, {}, &got, scratch.data(), nullptr).ok());
  EXPECT_EQ(got.ToString(), std::string(kSst, 'A'));
  EXPECT_EQ(p.pages(2), kSst / 4096) << "slot reads go through the page cache";
  EXPECT_EQ(p.pages(2, kSst, 64 << 10), 0u) << "no readahead into the next bytes or slot";

  // The head deletes it, the slot comes back, the head reuses it.
  f.reset();
  table.remove("000007.sst");
  table.end_catch_up(table.begin_catch_up());
  ASSERT_EQ(table.take_released(), std::vector<std::uint32_t>{2});
  ASSERT_EQ(table.install("000009.sst", {2, kSst}), "");
  ASSERT_TRUE(fs.NewRandomAccessFile(mirror + "/000009.sst", {}, &f, nullptr).ok());
  EXPECT_EQ(p.pages(2), 0u) << "opening the new occupant drops the old one's pages";
}

// A rubble tail's warmer reads SSTs into the page cache only while it is
// enabled (the secondary is open) and reads are served: nothing before the
// first read, every SST the secondary opened when reads begin, then each one
// it opens; a file the head deleted is skipped and its slot still comes back
// by the usual rule; resuming after a pause reads only what is not warm;
// nothing after cancel().
TEST(SlotWarmer, WarmsOnlyWhileEnabledAndReadsAreServed) {
  SlotPool p;
  constexpr auto kSst = SlotPool::kSst;
  for (std::uint32_t slot = 0; slot < 4; ++slot) ASSERT_EQ(p.write(slot, static_cast<char>('A' + slot)), "");
  SlotTable table;
  ASSERT_EQ(table.install("000001.sst", {0, kSst}), "");
  ASSERT_EQ(table.install("000002.sst", {1, kSst}), "");
  constexpr std::chrono::milliseconds kWindow{200};
  SlotWarmer warmer(*p.replica, table, kWindow);
  SlotFileSystem fs(rocksdb::FileSystem::Default(), p.mirror, *p.replica, table, false,
                    [&](const std::string& name) { warmer.opened(name); });
  const auto open = [&](const std::string& name, std::unique_ptr<rocksdb::FSRandomAccessFile>* f) {
    return fs.NewRandomAccessFile(p.mirror + "/" + name, {}, f, nullptr).ok();
  };

  std::unique_ptr<rocksdb::FSRandomAccessFile> f1, f2, f3, f4;
  ASSERT_TRUE(open("000001.sst", &f1));
  ASSERT_TRUE(open("000002.sst", &f2));
  warmer.read_served();
  warmer.drain();
  EXPECT_EQ(warmer.bytes_warmed(), 0u) << "not enabled (no secondary yet): nothing warmed";
  std::this_thread::sleep_for(2 * kWindow);

  warmer.enable();
  f2.reset();
  table.remove("000002.sst");
  warmer.read_served();
  warmer.drain();
  EXPECT_EQ(warmer.bytes_warmed(), kSst) << "reads began: every opened file but the deleted one";
  EXPECT_EQ(p.pages(0), kSst / 4096);
  EXPECT_EQ(p.pages(1), 0u);

  warmer.read_served();
  ASSERT_EQ(table.install("000003.sst", {2, kSst}), "");
  ASSERT_TRUE(open("000003.sst", &f3));
  warmer.drain();
  EXPECT_EQ(warmer.bytes_warmed(), 2 * kSst) << "an SST opened while reads are served";
  EXPECT_EQ(p.pages(2), kSst / 4096);

  std::this_thread::sleep_for(2 * kWindow);
  warmer.read_served();
  warmer.drain();
  EXPECT_EQ(warmer.bytes_warmed(), 2 * kSst) << "reads resumed: both files are still warm";

  table.end_catch_up(table.begin_catch_up());
  EXPECT_EQ(table.take_released(), std::vector<std::uint32_t>{1})
      << "the deleted file's slot comes back by the usual rule";

  warmer.cancel();
  std::this_thread::sleep_for(2 * kWindow);
  warmer.read_served();
  ASSERT_EQ(table.install("000004.sst", {3, kSst}), "");
  ASSERT_TRUE(open("000004.sst", &f4));
  warmer.drain();
  EXPECT_EQ(warmer.bytes_warmed(), 2 * kSst) << "cancelled: a late read or open warms nothing";
  EXPECT_EQ(p.pages(3), 0u);
  f1.reset();
  table.remove("000001.sst");
  table.end_catch_up(table.begin_catch_up());
  EXPECT_EQ(table.take_released(), std::vector<std::uint32_t>{0}) << "the warmer holds no reader of what it warmed";
}

// Appends to a WAL are gathered and written together: on flush(), before
// any other operation, and once 256 KiB have gathered; a gap in the offsets
// starts a new write.  The file's bytes come out as if each were written.
TEST(MirrorApplier, GathersWalAppendsAndKeepsEveryByte) {
  TempDir d;
  const std::string dir = d.path() + "/mirror";
  SlotTable table;
  PoolHeader pool;
  pool.slot_count = 4;
  pool.slot_size = 1 << 20;
  MirrorApplier m(dir, table, pool);
  m.reset();
  ASSERT_EQ(m.apply(op(wire::FileOp::TRUNCATE, "000004.log")), "");
  ASSERT_EQ(m.apply(append("000004.log", 0, "abc")), "");
  ASSERT_EQ(m.apply(append("000004.log", 3, "def")), "");
  EXPECT_EQ(slurp(dir + "/000004.log"), "") << "gathered, not written yet";
  ASSERT_EQ(m.apply(append("MANIFEST-000005", 0, "edit")), "");  // another operation flushes first
  EXPECT_EQ(slurp(dir + "/000004.log"), "abcdef");
  EXPECT_EQ(slurp(dir + "/MANIFEST-000005"), "edit") << "other files are written at once";
  ASSERT_EQ(m.apply(append("000004.log", 6, "gh")), "");
  ASSERT_EQ(m.apply(append("000004.log", 10, "kl")), "");  // not contiguous: the first part goes out
  EXPECT_EQ(slurp(dir + "/000004.log").substr(0, 8), "abcdefgh");
  ASSERT_EQ(m.flush(), "");
  EXPECT_EQ(slurp(dir + "/000004.log").size(), 12u);
  EXPECT_EQ(slurp(dir + "/000004.log").substr(10), "kl");
  const std::string big(300 << 10, 'x');
  ASSERT_EQ(m.apply(append("000006.log", 0, big)), "");
  EXPECT_EQ(slurp(dir + "/000006.log").size(), big.size()) << "256 KiB gathered: written";
  ASSERT_EQ(m.apply(append("000006.log", big.size(), "y")), "");
  m.reset();
  EXPECT_FALSE(std::filesystem::exists(dir + "/000006.log")) << "a reset drops gathered appends with the mirror";
}
