// SPDX-License-Identifier: GPL-2.0
// A real etcd server for tests: one member on free loopback ports, its data
// in a temporary directory, stopped (and its data removed) on destruction.
// pause() and resume() stop and continue the process (SIGSTOP, SIGCONT):
// an etcd that stops answering while its clients keep their connections.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
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
#include "fastpath/process.h"
#include "fastpath/temp_dir.h"


namespace fastpath::etcd::test {

constexpr const char* kEtcdBinary = "/usr/bin/etcd";

using fastpath::free_loopback_port;
using fastpath::log_tail;
using fastpath::spawn_process;

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
    const int client = free_loopback_port();
    int peer = free_loopback_port();
    while (peer == client) peer = free_loopback_port();
    endpoint_ = "127.0.0.1:" + std::to_string(client);
    const std::string client_url = "http://" + endpoint_;
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
    log_ = dir_.path() + "/etcd.log";
    // A shorter election timeout than the default (1 s) makes the single
    // member elect itself sooner (etcd's minimum lease TTL falls to 1 s).
    pid_ = spawn_process(kEtcdBinary,
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
        throw std::runtime_error("etcd exited during start-up; its log:\n" + log_tail(log_));
      }
      if (log_tail(log_, 1 << 20).find("ready to serve client requests") != std::string::npos) {
        Client c(endpoint_, std::chrono::seconds(1));
        if (why = c.check(); why.empty()) return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("etcd did not answer at " + endpoint_ + " in time (" + why + "); its log:\n" +
                                 log_tail(log_));
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
