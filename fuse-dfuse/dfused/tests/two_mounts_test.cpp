// SPDX-License-Identifier: GPL-2.0-only
// Description: two dfused mounts of one backend directory, as two nodes
// would have. In writethrough mode every change on A is visible on B at
// once: buffered and mmap writes (after msync), appends from both without
// loss, truncation, rename, unlink. In writeback mode B keeps reading what
// it cached: the incoherence that lease mode removes.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include "dfused_process.h"
#include "file_util.h"
#include "test_util.h"

using namespace dfuse::dfused::test;

namespace {

class TwoMounts : public ::testing::Test {
 protected:
  void SetUp() override { DFUSED_SKIP_WITHOUT_FUSE(); }
  void start(const std::string& mode) {
    const std::string backend = dir_.sub("backend");
    a_.emplace(backend, dir_.sub("a"), mode);
    b_.emplace(backend, dir_.sub("b"), mode);
    ASSERT_TRUE(a_->ready()) << a_->process().output();
    ASSERT_TRUE(b_->ready()) << b_->process().output();
  }
  void TearDown() override {
    for (auto* m : {&a_, &b_}) {
      if (*m) {
        EXPECT_EQ((*m)->stop(), 0) << (*m)->process().output();
      }
    }
  }
  std::string a(const std::string& name) const { return a_->file(name); }
  std::string b(const std::string& name) const { return b_->file(name); }

  TempDir dir_;
  std::optional<Mount> a_, b_;
};

std::string content(int round) {
  std::string s = "round " + std::to_string(round) + ":";
  s.resize(100 + static_cast<size_t>(round * 37 % 3000), static_cast<char>('a' + round % 26));
  return s;
}

}  // namespace

TEST_F(TwoMounts, WritethroughWriteOnAIsReadOnBAtOnce) {
  start("writethrough");
  ASSERT_TRUE(write_file(a("f"), "initial"));
  // B keeps its descriptor open the whole time: nothing may be cached under it.
  fastpath::UniqueFd on_b(::open(b("f").c_str(), O_RDONLY));
  ASSERT_TRUE(on_b);
  EXPECT_EQ(pread_all(on_b.get()), "initial");
  fastpath::UniqueFd on_a(::open(a("f").c_str(), O_RDWR));
  ASSERT_TRUE(on_a);
  int stale = 0;
  for (int round = 0; round < 200; ++round) {
    const std::string want = content(round);
    ASSERT_EQ(ftruncate(on_a.get(), 0), 0);
    ASSERT_EQ(pwrite(on_a.get(), want.data(), want.size(), 0), static_cast<ssize_t>(want.size()));
    struct stat st {};
    ASSERT_EQ(fstat(on_b.get(), &st), 0);
    if (pread_all(on_b.get()) != want || st.st_size != static_cast<off_t>(want.size())) ++stale;
    if (read_file(b("f")) != want) ++stale;
  }
  EXPECT_EQ(stale, 0) << "reads on B that missed a completed write on A";
}

TEST_F(TwoMounts, WritethroughMmapWriteOnAIsReadOnBAfterMsync) {
  start("writethrough");
  if (a_->process().output().find("shared mmap: no") != std::string::npos)
    GTEST_SKIP() << "this kernel has no FUSE_DIRECT_IO_ALLOW_MMAP: MAP_SHARED is refused in writethrough mode";
  const size_t len = 3 * 4096;
  ASSERT_TRUE(write_file(a("m"), std::string(len, '.')));
  fastpath::UniqueFd on_a(::open(a("m").c_str(), O_RDWR));
  fastpath::UniqueFd on_b(::open(b("m").c_str(), O_RDONLY));
  ASSERT_TRUE(on_a && on_b);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, on_a.get(), 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  char* map = static_cast<char*>(p);
  for (int round = 0; round < 20; ++round) {
    const size_t off = static_cast<size_t>(round) * 600 % (len - 16);
    const std::string stamp = "mmap-round-" + std::to_string(round);
    std::memcpy(map + off, stamp.data(), stamp.size());
    ASSERT_EQ(msync(map, len, MS_SYNC), 0);
    std::string got(stamp.size(), '\0');
    ASSERT_EQ(pread(on_b.get(), got.data(), got.size(), static_cast<off_t>(off)), static_cast<ssize_t>(got.size()));
    EXPECT_EQ(got, stamp) << "round " << round;
  }
  munmap(p, len);
}

TEST_F(TwoMounts, WritethroughAppendsFromBothInterleaveWithoutLoss) {
  start("writethrough");
  ASSERT_TRUE(write_file(a("log"), ""));
  constexpr int kRecords = 400;
  constexpr size_t kLen = 16;
  auto writer = [&](const std::string& path, char who) {
    fastpath::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd);
    for (int i = 0; i < kRecords; ++i) {
      char rec[kLen + 1];
      std::snprintf(rec, sizeof(rec), "%c%014d\n", who, i);
      ASSERT_EQ(write(fd.get(), rec, kLen), static_cast<ssize_t>(kLen));
    }
  };
  std::thread ta(writer, a("log"), 'A');
  std::thread tb(writer, b("log"), 'B');
  ta.join();
  tb.join();
  const std::string all = read_file(b("log"));
  ASSERT_EQ(all.size(), 2 * kRecords * kLen) << "appends were lost or overwritten";
  std::map<char, int> next = {{'A', 0}, {'B', 0}};
  bool interleaved = false;
  char last = 0;
  for (size_t off = 0; off < all.size(); off += kLen) {
    const char who = all[off];
    ASSERT_TRUE(who == 'A' || who == 'B') << "torn record at " << off;
    EXPECT_EQ(std::stoi(all.substr(off + 1, kLen - 2)), next[who]++) << "record order of " << who;
    if (last != 0 && who != last) interleaved = true;
    last = who;
  }
  EXPECT_EQ(next['A'], kRecords);
  EXPECT_EQ(next['B'], kRecords);
  (void)interleaved;  // likely, not guaranteed: the scheduler decides
}

TEST_F(TwoMounts, WritethroughTruncateAndSizeAreSeen) {
  start("writethrough");
  ASSERT_TRUE(write_file(a("t"), std::string(1000, 'x')));
  fastpath::UniqueFd on_b(::open(b("t").c_str(), O_RDONLY));
  ASSERT_TRUE(on_b);
  struct stat st {};
  ASSERT_EQ(fstat(on_b.get(), &st), 0);
  EXPECT_EQ(st.st_size, 1000);
  ASSERT_EQ(truncate(a("t").c_str(), 10), 0);
  ASSERT_EQ(fstat(on_b.get(), &st), 0);
  EXPECT_EQ(st.st_size, 10);
  EXPECT_EQ(pread_all(on_b.get()), std::string(10, 'x'));
  ASSERT_EQ(truncate(a("t").c_str(), 5000), 0);
  ASSERT_EQ(stat_errno(b("t"), &st), 0);
  EXPECT_EQ(st.st_size, 5000);
  EXPECT_EQ(pread_all(on_b.get()).size(), 5000u);
}

TEST_F(TwoMounts, WritethroughRenameUnlinkAndMkdirAreSeen) {
  start("writethrough");
  ASSERT_TRUE(write_file(a("x"), "x"));
  EXPECT_EQ(read_file(b("x")), "x");
  ASSERT_EQ(rename(a("x").c_str(), a("y").c_str()), 0);
  EXPECT_EQ(stat_errno(b("x")), ENOENT);
  EXPECT_EQ(read_file(b("y")), "x");
  ASSERT_EQ(unlink(a("y").c_str()), 0);
  EXPECT_EQ(stat_errno(b("y")), ENOENT);
  ASSERT_EQ(mkdir(a("dir").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(a("dir/in"), "in"));
  EXPECT_EQ(list_dir(b("dir")), std::set<std::string>{"in"});
  ASSERT_EQ(unlink(a("dir/in").c_str()), 0);
  ASSERT_EQ(rmdir(a("dir").c_str()), 0);
  EXPECT_EQ(stat_errno(b("dir")), ENOENT);
}

// Not a bug of dfused: what writeback mode gives up, and why lease mode exists.
TEST_F(TwoMounts, WritebackModeServesStaleCachedData) {
  start("writeback");
  ASSERT_TRUE(write_file(a("s"), "version-1"));
  fastpath::UniqueFd on_b(::open(b("s").c_str(), O_RDONLY));
  ASSERT_TRUE(on_b);
  ASSERT_EQ(pread_all(on_b.get()), "version-1");  // now in B's page cache
  fastpath::UniqueFd on_a(::open(a("s").c_str(), O_RDWR));
  ASSERT_TRUE(on_a);
  ASSERT_EQ(pwrite(on_a.get(), "VERSION-2", 9, 0), 9);
  ASSERT_EQ(fsync(on_a.get()), 0);
  EXPECT_EQ(read_file(dir_.path() + "/backend/s"), "VERSION-2") << "the write reached the backend";
  EXPECT_EQ(pread_all(on_b.get()), "version-1") << "B still serves its cached page";
}
