// SPDX-License-Identifier: GPL-2.0-only
// Description: dfused as a user meets it: --mode auto on a stock kernel
// says writethrough and why; --mode lease fails clearly and leaves no mount;
// bad inputs (missing or busy directories, bad options, an unreachable lease
// service) give errors that say what to do; SIGTERM and SIGINT flush and
// unmount; an external unmount ends the daemon; without --foreground dfused
// returns once the mount is usable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dfused_process.h"
#include "file_util.h"
#include "test_util.h"

using namespace dfuse::dfused::test;

namespace {

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { DFUSED_SKIP_WITHOUT_FUSE(); }

  TempDir dir_;
  std::string backend_ = dir_.sub("backend");
  std::string mnt_ = dir_.sub("mnt");
  MountGuard guard_{mnt_};
};

#ifdef DFUSE_LEASED_BIN
// A dfuse-leased on a free loopback port, stopped at the end.
class LeaseService {
 public:
  explicit LeaseService(const TempDir& dir) : log_(dir.path() + "/leased.log") {
    const std::string ready = dir.path() + "/leased.ready";
    std::vector<std::string> args = {DFUSE_LEASED_BIN,  "--listen",     "127.0.0.1:0", "--state-dir",
                                     dir.sub("leased"), "--ready-file", ready,         "--verbose"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, DFUSE_LEASED_BIN, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return;
    for (int i = 0; i < 1000 && address_.empty(); ++i) {
      std::ifstream(ready) >> address_;
      if (address_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~LeaseService() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  LeaseService(const LeaseService&) = delete;
  LeaseService& operator=(const LeaseService&) = delete;
  const std::string& address() const { return address_; }
  std::string log() const { return read_file(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  std::string address_;
};
#endif

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_F(Cli, AutoOnAStockKernelSaysWritethroughAndWhy) {
  Mount m(backend_, mnt_, "auto");
  ASSERT_TRUE(m.ready()) << m.process().output();
  const auto out = m.process().output();
  EXPECT_TRUE(contains(out, "in writethrough mode")) << out;
  EXPECT_TRUE(contains(out, "does not offer lease mode")) << out;
  EXPECT_TRUE(is_mounted(mnt_));
  EXPECT_EQ(m.stop(), 0);
}

TEST_F(Cli, LeaseModeNeedsALeaseService) {
  const auto [code, out] = run_dfused({"--backend", backend_, "--mountpoint", mnt_, "--mode", "lease"});
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(out, "--mode lease needs --lease-service")) << out;
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(Cli, LeaseModeOnAStockKernelFailsClearly) {
#ifndef DFUSE_LEASED_BIN
  GTEST_SKIP() << "dfuse-leased is not built";
#else
  LeaseService service(dir_);
  ASSERT_FALSE(service.address().empty()) << service.log();
  const auto [code, out] = run_dfused({"--backend", backend_, "--mountpoint", mnt_, "--mode", "lease",
                                       "--lease-service", service.address(), "--foreground"});
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(out, "did not offer DFUSE lease mode")) << out;
  EXPECT_TRUE(contains(out, "Boot the patched kernel")) << out;
  EXPECT_FALSE(is_mounted(mnt_)) << "the refused mount was left behind";
#endif
}

TEST_F(Cli, AutoWithALeaseServiceFallsBackToWritethrough) {
#ifndef DFUSE_LEASED_BIN
  GTEST_SKIP() << "dfuse-leased is not built";
#else
  LeaseService service(dir_);
  ASSERT_FALSE(service.address().empty()) << service.log();
  Mount m(backend_, mnt_, "auto", {"--lease-service", service.address(), "--node-id", "cli-test-node"});
  ASSERT_TRUE(m.ready()) << m.process().output();
  EXPECT_TRUE(contains(m.process().output(), "in writethrough mode")) << m.process().output();
  EXPECT_TRUE(contains(service.log(), "cli-test-node")) << "dfused registered: " << service.log();
  ASSERT_TRUE(write_file(m.file("f"), "ok"));
  EXPECT_EQ(m.stop(), 0) << m.process().output();
#endif
}

TEST_F(Cli, BadInputsGetClearErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--backend", dir_.path() + "/nope", "--mountpoint", mnt_}, "backend directory"},
      {{"--backend", backend_, "--mountpoint", dir_.path() + "/nope"}, "mkdir -p"},
      {{"--backend", backend_, "--mountpoint", dir_.sub("backend/in")}, "inside the backend"},
      {{"--backend", backend_, "--mountpoint", mnt_, "--mode", "fast"}, "--mode"},
      {{"--backend", backend_, "--mountpoint", mnt_, "--threads", "0"}, "--threads"},
      {{"--backend", backend_}, "--mountpoint is required"},
      {{"--backend", backend_, "--mountpoint", mnt_, "--foreground", "-o", "no_such_option"}, "-o"},
      {{"--backend", backend_, "--mountpoint", mnt_, "--foreground", "--lease-service", "127.0.0.1:1",
        "--lease-timeout", "0.3"},
       "lease service"},
  };
  for (const auto& c : cases) {
    const auto [code, out] = run_dfused(c.args);
    EXPECT_NE(code, 0) << out;
    EXPECT_TRUE(contains(out, c.says)) << "expected '" << c.says << "' in: " << out;
    EXPECT_FALSE(is_mounted(mnt_)) << out;
  }
}

TEST_F(Cli, BusyMountPointIsRefused) {
  Mount first(backend_, mnt_, "writethrough");
  ASSERT_TRUE(first.ready()) << first.process().output();
  const auto [code, out] = run_dfused({"--backend", backend_, "--mountpoint", mnt_});
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(out, "already a mount")) << out;
  EXPECT_TRUE(contains(out, "fusermount3 -u " + mnt_)) << out;
  EXPECT_EQ(first.stop(), 0);
}

TEST_F(Cli, SigtermFlushesDirtyPagesAndUnmounts) {
  Mount m(backend_, mnt_, "writeback");
  ASSERT_TRUE(m.ready()) << m.process().output();
  {
    // Written into the page cache and never fsynced; the descriptor stays
    // open, so close() does not flush either.
    fastpath::UniqueFd fd(::open(m.file("dirty").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd);
    ASSERT_EQ(write(fd.get(), "not yet in the backend", 22), 22);
    EXPECT_EQ(m.stop(SIGTERM), 0) << m.process().output();
  }
  EXPECT_FALSE(is_mounted(mnt_)) << "SIGTERM left the mount behind";
  EXPECT_EQ(read_file(backend_ + "/dirty"), "not yet in the backend");
  EXPECT_TRUE(contains(m.process().output(), "flushing, unmounting")) << m.process().output();
}

TEST_F(Cli, SigintUnmountsToo) {
  Mount m(backend_, mnt_, "writethrough");
  ASSERT_TRUE(m.ready()) << m.process().output();
  EXPECT_EQ(m.stop(SIGINT), 0) << m.process().output();
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(Cli, ExternalUnmountEndsTheDaemon) {
  Mount m(backend_, mnt_, "writethrough");
  ASSERT_TRUE(m.ready()) << m.process().output();
  ASSERT_EQ(umount2(mnt_.c_str(), 0), 0) << strerror(errno);
  EXPECT_EQ(m.process().wait_exit(std::chrono::seconds(5)), 0) << m.process().output();
  EXPECT_TRUE(contains(m.process().output(), "was unmounted")) << m.process().output();
}

TEST_F(Cli, WithoutForegroundReturnsOnceMounted) {
  const auto [code, out] = run_dfused({"--backend", backend_, "--mountpoint", mnt_, "--mode", "writethrough"});
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(contains(out, "serving")) << out;
  ASSERT_TRUE(is_mounted(mnt_));
  ASSERT_TRUE(write_file(mnt_ + "/f", "usable at once"));
  EXPECT_EQ(read_file(backend_ + "/f"), "usable at once");
  ASSERT_EQ(umount2(mnt_.c_str(), 0), 0) << "the daemon exits when unmounted";
}
