// SPDX-License-Identifier: GPL-2.0-only
// Runs the real dfused binary for the mount tests: output captured, SIGTERM
// on destruction, and the mount point lazily unmounted whatever happened, so
// a failing test never leaves a mount behind.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "options.h"

namespace dfuse::dfused::test {

inline bool is_mounted(const std::string& path) {
  return find_mount(path).has_value();
}

// Why this machine cannot run the mount tests (not root, no /dev/fuse), or
// an empty string.
inline std::string fuse_unusable() {
  if (geteuid() != 0) return "the mount tests run as root";
  const int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd == -1) return std::string("/dev/fuse: ") + strerror(errno);
  ::close(fd);
  return {};
}
#define DFUSED_SKIP_WITHOUT_FUSE()                                                                  \
  do {                                                                                              \
    if (const auto why = ::dfuse::dfused::test::fuse_unusable(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

// Lazily unmounts `path` (if mounted) when it goes out of scope.
class MountGuard {
 public:
  explicit MountGuard(std::string path) : path_(std::move(path)) {}
  ~MountGuard() {
    for (int i = 0; i < 5 && is_mounted(path_); ++i) umount2(path_.c_str(), MNT_DETACH);
  }
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

 private:
  std::string path_;
};

class DfusedProcess {
 public:
  // Starts `DFUSED_BIN args...`; stdout and stderr are both captured.
  explicit DfusedProcess(const std::vector<std::string>& args) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
    std::vector<std::string> all = {DFUSED_BIN};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, DFUSED_BIN, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
      ::close(p[0]);
      throw std::runtime_error("posix_spawn " DFUSED_BIN " failed");
    }
    reader_ = std::thread([this, fd = p[0]] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        std::lock_guard lock(mu_);
        out_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
      }
      ::close(fd);
      std::lock_guard lock(mu_);
      eof_ = true;
      cv_.notify_all();
    });
  }

  ~DfusedProcess() {
    if (!exit_code_) {
      ::kill(pid_, SIGTERM);
      if (!wait_exit(std::chrono::seconds(5))) {
        ::kill(pid_, SIGKILL);
        wait_exit(std::chrono::seconds(5));
      }
    }
    reader_.join();
  }
  DfusedProcess(const DfusedProcess&) = delete;
  DfusedProcess& operator=(const DfusedProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Waits until the output contains `text` (true) or the output ends or
  // time runs out (false).
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return out_.find(text) != std::string::npos || eof_; }) &&
           out_.find(text) != std::string::npos;
  }

  std::string output() {
    std::lock_guard lock(mu_);
    return out_;
  }

  // The exit code (128 + signal if killed), or nullopt if still running.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (exit_code_) return exit_code_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Waits for the output to end too (the process and any child it left).
  std::string full_output(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return eof_; });
    return out_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;   // protected by mu_
  bool eof_ = false;  // protected by mu_
  std::thread reader_;
};

// Runs dfused to completion; returns {exit code, output}.
inline std::pair<int, std::string> run_dfused(const std::vector<std::string>& args,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  DfusedProcess p(args);
  const auto code = p.wait_exit(timeout);
  return {code.value_or(-1), p.full_output(std::chrono::seconds(2))};
}

// One dfused serving `backend` on `mountpoint` in the foreground.
class Mount {
 public:
  Mount(const std::string& backend, const std::string& mountpoint, const std::string& mode,
        std::vector<std::string> extra = {})
      : guard_(mountpoint), path_(mountpoint) {
    std::vector<std::string> args = {"--backend", backend, "--mountpoint", mountpoint, "--mode", mode, "--foreground"};
    args.insert(args.end(), extra.begin(), extra.end());
    proc_.emplace(args);
    ready_ = proc_->wait_for("dfused: serving");
  }
  bool ready() const { return ready_; }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  DfusedProcess& process() { return *proc_; }
  // Sends `sig` and returns the exit code.
  std::optional<int> stop(int sig = SIGTERM) {
    ::kill(proc_->pid(), sig);
    return proc_->wait_exit(std::chrono::seconds(10));
  }

 private:
  MountGuard guard_;  // destroyed last: unmounts whatever the process left
  std::string path_;
  std::optional<DfusedProcess> proc_;
  bool ready_ = false;
};

}  // namespace dfuse::dfused::test
