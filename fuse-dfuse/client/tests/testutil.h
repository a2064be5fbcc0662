// SPDX-License-Identifier: GPL-2.0-only
// Helpers of the lease client tests: a temporary directory, a node (a
// LeaseClient whose revoke handler records every revoke and acks it) and the
// dfuse-leased binary as a child process.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dfuse/lease_client.h"
#include "fastpath/temp_dir.h"

extern char** environ;

namespace dfuse::test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr LeaseMode kRead = abi::kLeaseRead;
inline constexpr LeaseMode kWrite = abi::kLeaseWrite;
inline constexpr LeaseMode kNone = abi::kLeaseNone;

using fastpath::TempDir;

struct SeenRevoke {
  Revoke revoke;
  Clock::time_point at;     // handler called
  Clock::time_point acked;  // ack() returned
};

// One node: a LeaseClient that acks every revoke after `ack_delay` (the
// kernel's flush), recording what it saw.
class Node {
 public:
  Node(const std::string& address, const std::string& id, milliseconds ack_delay = milliseconds(0),
       milliseconds unreachable_timeout = milliseconds(5000))
      : ack_delay_(ack_delay) {
    LeaseClientOptions o;
    o.address = address;
    o.node_id = id;
    o.heartbeat = milliseconds(200);
    o.unreachable_timeout = unreachable_timeout;
    client_ = LeaseClient::connect(o, [this](const Revoke& r) { on_revoke(r); });
    std::lock_guard lock(mu_);
    ready_ = true;
    cv_.notify_all();
  }
  LeaseClient& operator*() { return *client_; }
  LeaseClient* operator->() { return client_.get(); }

  // Stops the client without releasing anything (a node that died).
  void crash() { client_.reset(); }

  std::vector<SeenRevoke> revokes() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // Waits until at least n revokes were acked.
  bool wait_revokes(std::size_t n, milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return acked_ >= n; });
  }
  int max_concurrent() {
    std::lock_guard lock(mu_);
    return max_running_;
  }
  LeaseMode mode_of(const FileId& file) {
    for (const auto& [f, g] : client_->held())
      if (f == file) return g.mode;
    return kNone;
  }

 private:
  void on_revoke(const Revoke& r) {
    std::size_t i = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return ready_; });
      seen_.push_back({r, Clock::now(), {}});
      i = seen_.size() - 1;
      max_running_ = std::max(max_running_, ++running_);
    }
    std::this_thread::sleep_for(ack_delay_);
    client_->ack(r);
    std::lock_guard lock(mu_);
    seen_[i].acked = Clock::now();
    --running_;
    ++acked_;
    cv_.notify_all();
  }

  const milliseconds ack_delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  std::vector<SeenRevoke> seen_;
  std::size_t acked_ = 0;
  int running_ = 0;
  int max_running_ = 0;
  std::unique_ptr<LeaseClient> client_;  // last: its threads stop before the rest goes
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// dfuse-leased as a child process, its output in a log file.
class ServiceProcess {
 public:
  ServiceProcess(std::string dir, std::vector<std::string> extra) : dir_(std::move(dir)), extra_(std::move(extra)) {}
  ~ServiceProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  // Starts on `listen` (default: a free port) and waits until it serves.
  void start(const std::string& listen = "127.0.0.1:0") {
    const std::string ready = dir_ + "/ready";
    std::filesystem::remove(ready);
    pid_ = spawn(args(listen, ready), log());
    for (int i = 0; i < 1000; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("dfuse-leased exited early; its log:\n" + read_file(log()));
      }
      if (std::filesystem::exists(ready)) {
        std::ifstream in(ready);
        in >> address_;
        if (!address_.empty()) return;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    throw std::runtime_error("dfuse-leased did not start in 10 s; its log:\n" + read_file(log()));
  }
  void kill9() { stop(SIGKILL); }
  // Returns the exit status (waitpid form).
  int stop(int sig = SIGTERM) {
    int status = 0;
    ::kill(pid_, sig);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  const std::string& address() const { return address_; }
  std::string log() const { return dir_ + "/leased.log"; }
  std::vector<std::string>& extra_args() { return extra_; }
  std::string state_dir() const { return dir_ + "/state"; }

  std::vector<std::string> args(const std::string& listen, const std::string& ready) const {
    std::vector<std::string> a{DFUSE_LEASED_BIN, "--listen", listen, "--state-dir", state_dir(), "--ready-file", ready};
    a.insert(a.end(), extra_.begin(), extra_.end());
    return a;
  }

  static pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error(std::string("cannot start ") + argv[0]);
    return pid;
  }

 private:
  std::string dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  std::string address_;
};

}  // namespace dfuse::test
