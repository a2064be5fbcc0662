// SPDX-License-Identifier: GPL-2.0
// What urdma-pingpong and urdma-perf share: the TCP side channel their peers
// (ibv_rc_pingpong, perftest) use to swap QP numbers, PSNs and keys, opening
// the device, a page-aligned buffer, and waiting for completions without
// ever waiting forever.
//
// Every failure is a std::runtime_error whose message names the cause and,
// where there is one, the fix; main() prints it and exits 1.
#pragma once

#include <infiniband/verbs.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "fastpath/unique_fd.h"
#include "urdma/verbs.h"

namespace urdma::tools {

// One TCP connection.  Each send_all() goes out as one write, because the C
// peers read every message with a single read() of its exact size.
class TcpConn {
 public:
  TcpConn() = default;
  TcpConn(fastpath::UniqueFd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}

  // Connects to host:port (every address getaddrinfo gives, IPv4 or IPv6).
  // A refused connection is retried until retry_ms has passed (0: once).
  static TcpConn connect(const std::string& host, int port, int retry_ms = 0);

  void send_all(const void* data, std::size_t n, std::string_view what);
  // Best effort (the peer may already have closed): true if all was sent.
  bool try_send(const void* data, std::size_t n);
  // Reads exactly n bytes.  timeout_ms < 0 waits as long as the peer keeps
  // the connection open.  Throws naming `what` on EOF, error or timeout.
  void recv_exact(void* data, std::size_t n, int timeout_ms, std::string_view what);

  int fd() const { return fd_.get(); }
  const std::string& peer() const { return peer_; }

 private:
  fastpath::UniqueFd fd_;
  std::string peer_;
};

// A listening socket on every local address (IPv6 dual-stack, or IPv4 when
// the host has no IPv6).
class TcpListener {
 public:
  // port 0 picks a free one (tests).
  explicit TcpListener(int port);
  int port() const { return port_; }
  // Waits for one client.
  TcpConn accept();

 private:
  fastpath::UniqueFd fd_;
  int port_ = 0;
};

// Zeroed, page-aligned memory for a memory region.
class Buffer {
 public:
  explicit Buffer(std::size_t size);
  std::uint8_t* data() const { return mem_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, Free> mem_;
  std::size_t size_ = 0;
};

std::size_t page_size();

// Device::open with a message that says which spec failed and why.
std::unique_ptr<Device> open_device(const std::string& name, const std::string& spec);

// "::ffff:10.0.0.2", as ibv_rc_pingpong prints a GID (inet_ntop).
std::string gid_to_string(const ibv_gid& gid);
bool gid_is_v4_mapped(const ibv_gid& gid);
// Throws unless the peer's GID is an IPv4-mapped RoCEv2 GID (all urdma speaks);
// `gid_option` is the peer tool's GID index flag, named in the fix.
void check_peer_gid(const ibv_gid& gid, std::string_view gid_option);

// Qp::modify that throws "cannot move the QP to RTR: Invalid argument".
void modify_qp(Qp& qp, const ibv_qp_attr& attr, int mask, std::string_view state_name);

// "QP went to ERROR: <reason> (IBV_WC_REM_ACCESS_ERR on RDMA READ wr_id 3)".
std::string completion_error(const ibv_wc& wc, const Qp& qp);

// Decides when a wait has stalled.  Nothing may arrive for `timeout`: no
// completion and no packet (the peer is gone or unreachable).  While packets
// keep arriving (a large transfer over a lossy link is slow but moving) the
// wait may last up to kLivelock times that, and no longer (an endless RNR or
// retransmission loop).
class StallWatch {
 public:
  static constexpr int kLivelock = 10;
  StallWatch(const Device& dev, const Qp& qp, std::chrono::milliseconds timeout);
  // A new wait starts (the last one ended with progress).
  void restart();
  // Whether a check is due (cheap; call it every so often while spinning).
  bool due() const;
  // Milliseconds until the next check is due (for sleeping waits).
  int ms_to_check() const;
  // Throws the stall message (naming `what`) if the wait has stalled, else
  // schedules the next check.
  void check(const std::function<std::string()>& what);

 private:
  const Device& dev_;
  const Qp& qp_;
  std::chrono::milliseconds timeout_;
  std::uint64_t start_ns_ = 0;
  std::uint64_t check_ns_ = 0;
  std::uint64_t rx_seen_ = 0;
};

// Waits for completions on one CQ: busy-polls by default (as perftest and
// rc_pingpong do), or sleeps on the CQ's event fd with events=true; gives
// up as StallWatch says, naming what was outstanding.
class CqWaiter {
 public:
  CqWaiter(Cq& cq, const Qp& qp, const Device& dev, bool events, std::chrono::milliseconds timeout)
      : cq_(cq), qp_(qp), events_(events), watch_(dev, qp, timeout) {}
  // At least one and at most n completions.  Throws on a stall and on a
  // completion with an error status.  `what` is called only to build the
  // stall message.
  int wait(ibv_wc* wc, int n, const std::function<std::string()>& what);

 private:
  Cq& cq_;
  const Qp& qp_;
  bool events_;
  StallWatch watch_;
};

// CLOCK_MONOTONIC_COARSE: for timeouts of a second or more, read on every
// wait.  In the VM the precise clock is a system call to the HPET; this one
// is read from the vDSO.
inline std::uint64_t coarse_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Called on each empty pass of a busy-poll loop: every 64th pass gives the
// CPU away, so on a machine with fewer cores than busy threads the engine
// thread (which plays the NIC) still runs.  A no-op cost where cores are free.
void spin_pause(unsigned spins);

// Keeps the device (and its QPs) answering until no packet has come or gone
// for `quiet`, at most `at_most`: the peer of a test without a closing
// handshake (ibv_rc_pingpong, ib_write_lat) may still be waiting for the ACK
// of its last message, and an ACK lost on the way would otherwise leave it
// retransmitting to nobody.
void linger(const Device& dev, std::chrono::milliseconds quiet, std::chrono::milliseconds at_most);

// A random 24-bit PSN (lrand48() & 0xffffff in the C tools).
std::uint32_t random_psn();

// A tool's main(): parses argv into app, then runs body; an exception
// becomes "tool: error: what" on stderr (after stdout is flushed) and exit 1.
int tool_main(const char* tool, CLI::App& app, int argc, char** argv, const std::function<void()>& body);

}  // namespace urdma::tools
