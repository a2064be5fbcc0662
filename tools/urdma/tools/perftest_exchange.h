// SPDX-License-Identifier: GPL-2.0
// The TCP exchanges of rdma-core's ibv_rc_pingpong and of perftest 4.5
// (ib_{write,read,send,atomic}_{lat,bw}), byte for byte, so urdma's tools and
// the C programs are each other's peers.
//
// ibv_rc_pingpong: the client sends "%04x:%06x:%06x:%s" (lid, qpn, psn, GID
// as 32 hex digits in wire order) in a 52-byte buffer with its NUL; the server
// moves its QP to RTR/RTS, answers with its own, and the client ends with
// "done" (5 bytes with the NUL).
//
// perftest: every message is a raw write of a fixed size; the client writes
// then reads, the server reads then writes.  Versions (16 bytes, "6.06"),
// page size and cache-line size (big-endian int32 each, the larger wins), the
// path MTU enum as "%d" in 2 bytes (the smaller wins), then 108-byte key
// messages (lid:out_reads:qpn:psn:rkey:vaddr:16 GID bytes:srqn:) in an order
// each test fixes (run_session), bandwidth reports as five big-endian 8-byte
// values, and "done" after the closing handshake.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common.h"

namespace urdma::tools {

// ---------------------------------------------------------------- ibv_rc_pingpong

inline constexpr std::size_t kPingpongMsgSize = 52;
using PingpongMsg = std::array<char, kPingpongMsgSize>;

struct PingpongDest {
  std::uint32_t lid = 0;
  std::uint32_t qpn = 0;
  std::uint32_t psn = 0;
  ibv_gid gid{};
};

PingpongMsg format_pingpong(const PingpongDest& d);
// Throws std::runtime_error quoting the message when it is not one.
PingpongDest parse_pingpong(const PingpongMsg& m);

// Client: sends ours, reads the server's, sends "done".
PingpongDest pingpong_client_exchange(TcpConn& conn, const PingpongDest& mine, int timeout_ms);
// Server: reads the client's; the caller connects its QP; then
// pingpong_server_reply sends ours and reads "done".
PingpongDest pingpong_server_receive(TcpConn& conn, int timeout_ms);
void pingpong_server_reply(TcpConn& conn, const PingpongDest& mine, int timeout_ms);

// ---------------------------------------------------------------- perftest

namespace perftest {

inline constexpr std::size_t kVersionSize = 16;
inline constexpr std::size_t kKeyMsgSize = 108;
inline constexpr char kVersion[] = "6.06";             // what perftest 4.5-0.17 reports
inline constexpr double kMinPeerVersion = 5.70;        // perftest refuses older peers
inline constexpr std::uint64_t kMaxSize = 1ULL << 23;  // -a: 2 .. 8 MiB

using KeyBytes = std::array<char, kKeyMsgSize>;

// perftest's struct pingpong_dest as it travels.
struct KeyMsg {
  std::uint32_t lid = 0;
  std::uint32_t out_reads = 0;
  std::uint32_t qpn = 0;
  std::uint32_t psn = 0;
  std::uint32_t rkey = 0;
  std::uint64_t vaddr = 0;
  ibv_gid gid{};
  std::uint32_t srqn = 0;
};

KeyBytes format_key(const KeyMsg& k);
// Throws std::runtime_error quoting the bytes when they are not a key message.
KeyMsg parse_key(const KeyBytes& b);

// What a bandwidth client reports to the server at the end.
struct BwReport {
  std::uint64_t size = 0;
  std::uint64_t iters = 0;
  double bw_peak = 0;
  double bw_avg = 0;
  double msg_rate = 0;
};

enum class Verb { kSend, kWrite, kRead, kAtomic };
struct TestKind {
  Verb verb = Verb::kWrite;
  bool bw = false;
  bool operator==(const TestKind&) const = default;
};
// "write_lat" .. "atomic_bw".
std::optional<TestKind> parse_test(std::string_view name);
std::string test_name(TestKind k);
// The perftest program that is this test's peer ("ib_write_lat").
std::string perftest_program(TestKind k);
// The server only answers (RDMA READ/atomic latency; WRITE/READ/atomic
// bandwidth, where only the client posts).
bool server_is_passive(TestKind k);

struct Negotiated {
  std::string peer_version;
  int cycle_buffer = 0;  // max of both page sizes
  int cache_line = 0;    // max of both cache-line sizes
  ibv_mtu mtu = IBV_MTU_1024;
};

// One end of a perftest exchange over a connected socket.
class Comm {
 public:
  // timeout_ms bounds each read during set-up; waits inside the test (the
  // peer is still running iterations) last as long as the connection does.
  Comm(TcpConn& conn, bool client, int timeout_ms) : conn_(conn), client_(client), timeout_ms_(timeout_ms) {}
  bool client() const { return client_; }
  TcpConn& conn() { return conn_; }

  // perftest's ctx_xchg_data: client writes then reads, server the reverse.
  void xchg(const void* mine, void* theirs, std::size_t n, std::string_view what, int timeout_ms);
  // Versions, system data and path MTU, as every test starts.
  Negotiated negotiate(int page_size, int cache_line, ibv_mtu mtu);
  // ctx_hand_shake: one 108-byte key message each way.
  KeyMsg handshake(const KeyMsg& mine, std::string_view what, bool wait_for_peer = false);
  // xchg_bw_reports (peer version >= 5.33: 64-bit iterations).
  BwReport exchange_bw_report(const BwReport& mine);
  // ctx_close_connection: a handshake, then "done" (which nobody reads).
  void close_connection(const KeyMsg& mine);

 private:
  TcpConn& conn_;
  bool client_;
  int timeout_ms_;
};

// What a test does between the exchanges.
struct SessionHooks {
  // Move the QP to RTR (and RTS where perftest does) with the peer's keys.
  std::function<void(const KeyMsg& peer)> connect;
  // Before each size's synchronising handshake (SEND tests post receives here).
  std::function<void(std::uint64_t size)> prepare;
  // The iterations of one size (prints its line); a bandwidth client returns
  // its figures, sent to the server at the end.
  std::function<std::optional<BwReport>(std::uint64_t size)> run;
  // A passive bandwidth server: the client's figures.
  std::function<void(const BwReport& peer)> peer_report;
};

// The message sizes of a run: one (-s), or -a's sweep 2, 4, .. 8 MiB, after
// each size of which ib_send_bw (only there) adds a handshake.
struct SizePlan {
  std::vector<std::uint64_t> sizes;
  bool all = false;
  static SizePlan one(std::uint64_t size) { return {{size}, false}; }
  static SizePlan sweep();
};

// Everything after negotiate(), in the order perftest's main() of that test
// does it.  Returns the peer's keys.
KeyMsg run_session(Comm& comm, TestKind kind, const KeyMsg& mine, const SizePlan& plan, const SessionHooks& hooks);

}  // namespace perftest
}  // namespace urdma::tools
