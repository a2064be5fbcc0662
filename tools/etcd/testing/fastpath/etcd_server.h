// SPDX-License-Identifier: GPL-2.0
// A real etcd server for tests: one member on free loopback ports, its data
// in a temporary directory, stopped (and its data removed) on destruction.
// pause() and resume() stop and continue the process (SIGSTOP, SIGCONT):
// an etcd that stops answering while its clients keep their connections.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fastpath/etcd.h"
#include "fastpath/temp_dir.h"

extern char** environ;

namespace fastpath::etcd::test {

constexpr const char* kEtcdBinary = "/usr/bin/etcd";

// A loopback port nobody listens on (bound, then released).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string file_tail(const std::string& path, std::size_t max_bytes = 2000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

// Starts binary with args, stdout and stderr to log; the signal mask is
// cleared (a test may block signals).
inline pid_t spawn_logged(const std::string& binary, const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + binary + ": " + std::strerror(rc));
  return pid;
}

// SIGTERM, then SIGKILL after grace_s; returns the wait status.
inline int stop_process(pid_t pid, double grace_s = 5) {
  int status = 0;
  if (pid <= 0) return 0;
  ::kill(pid, SIGCONT);  // a paused process cannot act on SIGTERM
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return status;
}

class EtcdServer {
 public:
  // Whether etcd is installed (scripts/install-deps.sh: etcd-server).
  static bool installed() { return ::access(kEtcdBinary, X_OK) == 0; }

  // Starts etcd and waits until it answers; throws with the end of its log
  // when it does not.
  EtcdServer() : dir_("fastpath-etcd") {
    const int client = free_port();
    int peer = free_port();
    while (peer == client) peer = free_port();
    endpoint_ = "127.0.0.1:" + std::to_string(client);
    const std::string client_url = "http://" + endpoint_;
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
    log_ = dir_.path() + "/etcd.log";
    // A shorter election timeout than the default (1 s) makes the single
    // member elect itself sooner (etcd's minimum lease TTL falls to 1 s).
    pid_ = spawn_logged(kEtcdBinary,
                        {"--name", "default", "--data-dir", dir_.path() + "/data", "--listen-client-urls", client_url,
                         "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url,
                         "--initial-advertise-peer-urls", peer_url, "--initial-cluster", "default=" + peer_url,
                         "--heartbeat-interval", "50", "--election-timeout", "500"},
                        log_);
    // A connection made while etcd starts can stall for seconds (seen with
    // etcd 3.4: the TCP connect and then the HTTP/2 preface, 5 s each), so
    // first wait for etcd to say it serves, then ask with a fresh client
    // (its own connection) each time.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string why = "it did not say it serves clients";
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("etcd exited during start-up; its log:\n" + file_tail(log_));
      }
      if (file_tail(log_, 1 << 20).find("ready to serve client requests") != std::string::npos) {
        Client c(endpoint_, std::chrono::seconds(1));
        if (why = c.check(); why.empty()) return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("etcd did not answer at " + endpoint_ + " in time (" + why + "); its log:\n" +
                                 file_tail(log_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~EtcdServer() { stop(); }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  const std::string& log() const { return log_; }
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  void stop() {
    if (pid_ > 0) stop_process(pid_, 5);
    pid_ = -1;
  }

 private:
  TempDir dir_;
  std::string endpoint_;
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace fastpath::etcd::test
