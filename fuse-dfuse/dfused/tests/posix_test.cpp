// SPDX-License-Identifier: GPL-2.0-only
// Description: POSIX basics through one dfused mount, in writethrough and in
// writeback mode: create, read, write, rename, unlink, mkdir, rmdir,
// readdir, chmod, truncate, utimens, symlink, hard link, fsync, O_APPEND,
// large files; every change is checked in the backend directory too. The
// set-user-ID and set-group-ID bits after writes, truncations and chowns by
// other users are compared with a local directory.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cerrno>
#include <functional>
#include <random>

#include "dfused_process.h"
#include "file_util.h"
#include "test_util.h"

using namespace dfuse::dfused::test;

namespace {

class PosixTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    DFUSED_SKIP_WITHOUT_FUSE();
    mount_.emplace(dir_.sub("backend"), dir_.sub("mnt"), GetParam());
    ASSERT_TRUE(mount_->ready()) << mount_->process().output();
  }
  void TearDown() override {
    if (mount_) {
      EXPECT_EQ(mount_->stop(), 0) << mount_->process().output();
      EXPECT_FALSE(is_mounted(mount_->path()));
    }
  }
  std::string m(const std::string& name) const { return mount_->file(name); }
  std::string b(const std::string& name) const { return dir_.path() + "/backend/" + name; }

  TempDir dir_;
  std::optional<Mount> mount_;
};

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_P(PosixTest, CreateWriteReadBack) {
  ASSERT_TRUE(write_file(m("a.txt"), "hello dfuse\n"));
  EXPECT_EQ(read_file(m("a.txt")), "hello dfuse\n");
  EXPECT_EQ(read_file(b("a.txt")), "hello dfuse\n");
  struct stat st {};
  ASSERT_EQ(stat_errno(m("a.txt"), &st), 0);
  EXPECT_EQ(st.st_size, 12);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(::open(m("a.txt").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(::open(m("none").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  // Overwrite in the middle.
  fastpath::UniqueFd fd(::open(m("a.txt").c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  ASSERT_EQ(pwrite(fd.get(), "DFUSE", 5, 6), 5);
  fd.reset();
  EXPECT_EQ(read_file(b("a.txt")), "hello DFUSE\n");
}

TEST_P(PosixTest, LargeFileAtOffsets) {
  const std::string data = random_bytes(3 << 20, 1);
  fastpath::UniqueFd fd(::open(m("big").c_str(), O_RDWR | O_CREAT, 0600));
  ASSERT_TRUE(fd);
  ASSERT_EQ(pwrite(fd.get(), data.data(), data.size(), 4096), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd.get()), 0);
  std::string back(data.size(), '\0');
  ASSERT_EQ(pread(fd.get(), back.data(), back.size(), 4096), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(back == data);
  fd.reset();
  const std::string in_backend = read_file(b("big"));
  ASSERT_EQ(in_backend.size(), data.size() + 4096);
  EXPECT_EQ(in_backend.substr(0, 4096), std::string(4096, '\0')) << "the hole reads as zeros";
  EXPECT_TRUE(in_backend.substr(4096) == data);
}

TEST_P(PosixTest, RenameAndUnlink) {
  ASSERT_TRUE(write_file(m("old"), "1"));
  ASSERT_TRUE(write_file(m("victim"), "2"));
  ASSERT_EQ(rename(m("old").c_str(), m("new").c_str()), 0);
  EXPECT_EQ(stat_errno(m("old")), ENOENT);
  EXPECT_EQ(read_file(m("new")), "1");
  ASSERT_EQ(rename(m("new").c_str(), m("victim").c_str()), 0) << "rename over an existing file";
  EXPECT_EQ(read_file(m("victim")), "1");
  EXPECT_EQ(read_file(b("victim")), "1");
  ASSERT_EQ(unlink(m("victim").c_str()), 0);
  EXPECT_EQ(stat_errno(m("victim")), ENOENT);
  EXPECT_EQ(stat_errno(b("victim")), ENOENT);
  EXPECT_EQ(unlink(m("victim").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_P(PosixTest, MkdirReaddirRmdir) {
  ASSERT_EQ(mkdir(m("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(m("d/sub").c_str(), 0700), 0);
  std::set<std::string> want = {"sub"};
  for (int i = 0; i < 300; ++i) {  // more than one readdir buffer
    const std::string name = "file-" + std::to_string(i);
    ASSERT_TRUE(write_file(m("d/" + name), name));
    want.insert(name);
  }
  EXPECT_EQ(list_dir(m("d")), want);
  EXPECT_EQ(list_dir(b("d")), want);
  EXPECT_EQ(rmdir(m("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(mkdir(m("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  for (const auto& name : want) {
    if (name == "sub")
      ASSERT_EQ(rmdir(m("d/sub").c_str()), 0);
    else
      ASSERT_EQ(unlink(m("d/" + name).c_str()), 0);
  }
  EXPECT_TRUE(list_dir(m("d")).empty());
  ASSERT_EQ(rmdir(m("d").c_str()), 0);
  EXPECT_EQ(stat_errno(b("d")), ENOENT);
}

TEST_P(PosixTest, ChmodTruncateUtimens) {
  ASSERT_TRUE(write_file(m("f"), "0123456789"));
  ASSERT_EQ(chmod(m("f").c_str(), 0640), 0);
  struct stat st {};
  ASSERT_EQ(stat_errno(m("f"), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(stat_errno(b("f"), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  ASSERT_EQ(truncate(m("f").c_str(), 3), 0);
  EXPECT_EQ(read_file(m("f")), "012");
  ASSERT_EQ(truncate(m("f").c_str(), 6), 0);
  EXPECT_EQ(read_file(m("f")), std::string("012\0\0\0", 6));
  EXPECT_EQ(read_file(b("f")), std::string("012\0\0\0", 6));
  // O_TRUNC at open.
  ASSERT_TRUE(write_file(m("f"), "xy"));
  EXPECT_EQ(read_file(b("f")), "xy");

  const timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, m("f").c_str(), times, 0), 0);
  ASSERT_EQ(stat_errno(m("f"), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  ASSERT_EQ(stat_errno(b("f"), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
}

TEST_P(PosixTest, SymlinkAndHardLink) {
  ASSERT_TRUE(write_file(m("target"), "data"));
  ASSERT_EQ(symlink("target", m("sym").c_str()), 0);
  char buf[64] = {};
  ASSERT_EQ(readlink(m("sym").c_str(), buf, sizeof(buf)), 6);
  EXPECT_STREQ(buf, "target");
  struct stat st {};
  ASSERT_EQ(stat_errno(m("sym"), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(read_file(m("sym")), "data");

  ASSERT_EQ(link(m("target").c_str(), m("hard").c_str()), 0);
  struct stat a {
  }, h{};
  ASSERT_EQ(stat_errno(m("target"), &a), 0);
  ASSERT_EQ(stat_errno(m("hard"), &h), 0);
  EXPECT_EQ(a.st_ino, h.st_ino);
  EXPECT_EQ(h.st_nlink, 2u);
  ASSERT_TRUE(write_file(m("hard"), "changed"));
  EXPECT_EQ(read_file(m("target")), "changed");
  ASSERT_EQ(unlink(m("target").c_str()), 0);
  EXPECT_EQ(read_file(m("hard")), "changed");
  EXPECT_EQ(read_file(m("sym")), "<errno 2>") << "dangling symlink";
}

TEST_P(PosixTest, AppendAndFsync) {
  fastpath::UniqueFd fd(::open(m("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644));
  ASSERT_TRUE(fd);
  std::string want;
  for (int i = 0; i < 50; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(write(fd.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
    // An append never lands at the (stale) offset of a pwrite-style position.
    if (i == 10) {
      ASSERT_EQ(lseek(fd.get(), 0, SEEK_SET), 0);
    }
    want += line;
  }
  ASSERT_EQ(fsync(fd.get()), 0);
  ASSERT_EQ(fdatasync(fd.get()), 0);
  EXPECT_EQ(read_file(b("log")), want) << "fsync put everything in the backend";
  fd.reset();
  EXPECT_EQ(read_file(m("log")), want);
}

TEST_P(PosixTest, StatfsAndDirectoryFsync) {
  struct statvfs sv {};
  ASSERT_EQ(statvfs(mount_->path().c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0u);
  fastpath::UniqueFd d(::open(mount_->path().c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(d);
  EXPECT_EQ(fsync(d.get()), 0);
}

namespace {

// Runs `op` in a child with these credentials; 0 if it returned true.
int run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<bool()>& op) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (uid != 0 && (setgroups(groups.size(), groups.data()) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(2);
    _exit(op() ? 0 : 1);
  }
  int status = 0;
  if (pid == -1 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// One case of SetIdBitsLikeLocal: a file owned by owner:group with `mode`,
// then `op` on it by uid/gid/groups.
struct SetIdCase {
  std::string name;
  mode_t mode;
  uid_t owner;
  gid_t group;
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
  std::function<bool(const std::string&)> op;
};

bool write_one(const std::string& p) {
  fastpath::UniqueFd fd(::open(p.c_str(), O_WRONLY));
  return fd && ::write(fd.get(), "x", 1) == 1;
}

std::vector<SetIdCase> setid_cases() {
  constexpr uid_t kOther = 65534;  // nobody:nogroup, no supplementary groups
  const auto ftrunc = [](const std::string& p) {
    fastpath::UniqueFd fd(::open(p.c_str(), O_WRONLY));
    return fd && ftruncate(fd.get(), 1) == 0;
  };
  const auto trunc = [](const std::string& p) { return truncate(p.c_str(), 2) == 0; };
  const auto open_trunc = [](const std::string& p) {
    return fastpath::UniqueFd(::open(p.c_str(), O_WRONLY | O_TRUNC)).get() >= 0;
  };
  const auto chgrp = [](const std::string& p) { return chown(p.c_str(), -1, kOther) == 0; };
  std::vector<SetIdCase> cases;
  for (const mode_t mode : {06777, 06767}) {
    // 06767: set-group-ID without group execute; it goes when the caller is
    // not in the file's group.
    cases.push_back({"write by another user", mode, 0, 0, kOther, kOther, {}, write_one});
    cases.push_back({"ftruncate by another user", mode, 0, 0, kOther, kOther, {}, ftrunc});
    cases.push_back({"truncate by another user", mode, 0, 0, kOther, kOther, {}, trunc});
    cases.push_back({"open O_TRUNC by another user", mode, 0, 0, kOther, kOther, {}, open_trunc});
    cases.push_back({"write by a member of the group", mode, 0, kOther, kOther, kOther, {}, write_one});
    cases.push_back({"write by a supplementary member", mode, 0, 65532, kOther, 65533, {65532}, write_one});
    cases.push_back({"write by root", mode, 65533, 65533, 0, 0, {}, write_one});
    cases.push_back({"chgrp by the owner", mode, kOther, kOther, kOther, kOther, {}, chgrp});
    cases.push_back({"chown by root", mode, 65533, 65533, 0, 0, {}, chgrp});
  }
  return cases;
}

}  // namespace

// A write, truncation or chown clears the set-ID bits as on a local file
// system (POSIX; Linux: unless the caller has CAP_FSETID, set-group-ID only
// if group-executable or the caller is not in the file's group). The daemon
// does every backend operation as root, so it has to clear them itself.
TEST_P(PosixTest, SetIdBitsLikeLocal) {
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(b("").c_str(), 0777), 0);
  const std::string local = dir_.sub("local");
  ASSERT_EQ(chmod(local.c_str(), 0777), 0);
  const auto cases = setid_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const SetIdCase& c = cases[i];
    const std::string name = "setid-" + std::to_string(i);
    char what[160];
    snprintf(what, sizeof(what), "%s, mode %04o, owner %u:%u, caller %u:%u", c.name.c_str(), c.mode, c.owner, c.group,
             c.uid, c.gid);
    mode_t got[2] = {};
    for (int on_mount = 0; on_mount < 2; ++on_mount) {
      const std::string p = on_mount ? m(name) : local + "/" + name;
      ASSERT_TRUE(write_file(p, "data")) << p;
      ASSERT_EQ(chown(p.c_str(), c.owner, c.group), 0) << p;
      ASSERT_EQ(chmod(p.c_str(), c.mode), 0) << p;
      ASSERT_EQ(run_as(c.uid, c.gid, c.groups, [&] { return c.op(p); }), 0) << what << " on " << p;
      struct stat st {};
      ASSERT_EQ(stat_errno(p, &st), 0);
      got[on_mount] = st.st_mode & 07777;
    }
    EXPECT_EQ(got[1], got[0]) << what << ": mode on the mount (got " << std::oct << got[1] << ", local " << got[0]
                              << ")";
    struct stat st {};
    ASSERT_EQ(stat_errno(b(name), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, got[0]) << what << ": mode in the backend";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PosixTest, ::testing::Values("writethrough", "writeback"),
                         [](const auto& info) { return info.param; });
