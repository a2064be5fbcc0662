// SPDX-License-Identifier: GPL-2.0
#include "perftest_exchange.h"

#include <arpa/inet.h>
#include <endian.h>

#include <bit>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace urdma::tools {
namespace {

// The first `n` bytes as text (trailing NULs dropped, other bytes that are
// not printable as \xNN), for error messages.
std::string quote(const char* p, std::size_t n) {
  while (n > 0 && p[n - 1] == '\0') --n;
  std::string s = "'";
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (std::isprint(c)) {
      s += static_cast<char>(c);
    } else {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      s += esc;
    }
  }
  return s + "'";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly `len` hex digits at p; false if any is not one.
bool parse_hex(const char* p, std::size_t len, std::uint64_t& out) {
  out = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const int d = hex_digit(p[i]);
    if (d < 0) return false;
    out = out << 4 | static_cast<std::uint64_t>(d);
  }
  return true;
}

// Reads fixed-width hex fields separated by ':' from a message.
class FieldReader {
 public:
  FieldReader(const char* p, std::size_t n) : p_(p), n_(n) {}
  // A field of `width` digits followed by `sep` (0: nothing follows).
  bool field(std::size_t width, std::uint64_t& out, char sep = ':') {
    if (pos_ + width + (sep ? 1 : 0) > n_ || !parse_hex(p_ + pos_, width, out)) return false;
    pos_ += width;
    if (sep) {
      if (p_[pos_] != sep) return false;
      ++pos_;
    }
    return true;
  }
  std::size_t pos() const { return pos_; }

 private:
  const char* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

std::uint64_t be64_of_double(double v) {
  return htobe64(std::bit_cast<std::uint64_t>(v));
}
double double_of_be64(std::uint64_t v) {
  return std::bit_cast<double>(be64toh(v));
}

}  // namespace

// ---------------------------------------------------------------- ibv_rc_pingpong

PingpongMsg format_pingpong(const PingpongDest& d) {
  PingpongMsg m{};
  char gid[33];
  for (int i = 0; i < 16; ++i) std::snprintf(gid + 2 * i, 3, "%02x", d.gid.raw[i]);
  std::snprintf(m.data(), m.size(), "%04x:%06x:%06x:%s", d.lid & 0xffff, d.qpn & 0xffffff, d.psn & 0xffffff, gid);
  return m;
}

PingpongDest parse_pingpong(const PingpongMsg& m) {
  FieldReader r(m.data(), m.size());
  std::uint64_t lid = 0, qpn = 0, psn = 0, word = 0;
  PingpongDest d;
  bool ok = r.field(4, lid) && r.field(6, qpn) && r.field(6, psn);
  for (int i = 0; ok && i < 16; ++i) {
    ok = r.field(2, word, 0);
    d.gid.raw[i] = static_cast<std::uint8_t>(word);
  }
  if (!ok || m[r.pos()] != '\0')
    throw std::runtime_error("the peer's address message " + quote(m.data(), m.size()) +
                             " is not ibv_rc_pingpong's (LID:QPN:PSN:GID); is the peer ibv_rc_pingpong or "
                             "urdma-pingpong on this port?");
  d.lid = static_cast<std::uint32_t>(lid);
  d.qpn = static_cast<std::uint32_t>(qpn);
  d.psn = static_cast<std::uint32_t>(psn);
  return d;
}

PingpongDest pingpong_client_exchange(TcpConn& conn, const PingpongDest& mine, int timeout_ms) {
  const PingpongMsg out = format_pingpong(mine);
  conn.send_all(out.data(), out.size(), "our address message");
  PingpongMsg in{};
  conn.recv_exact(in.data(), in.size(), timeout_ms, "the server's 52-byte address message");
  const PingpongDest peer = parse_pingpong(in);
  static constexpr char kDone[] = "done";
  conn.send_all(kDone, sizeof kDone, "\"done\"");
  return peer;
}

PingpongDest pingpong_server_receive(TcpConn& conn, int timeout_ms) {
  PingpongMsg in{};
  conn.recv_exact(in.data(), in.size(), timeout_ms, "the client's 52-byte address message");
  return parse_pingpong(in);
}

void pingpong_server_reply(TcpConn& conn, const PingpongDest& mine, int timeout_ms) {
  const PingpongMsg out = format_pingpong(mine);
  conn.send_all(out.data(), out.size(), "our address message");
  char done[5] = {};
  conn.recv_exact(done, sizeof done, timeout_ms, "the client's \"done\"");
  if (std::memcmp(done, "done", sizeof done) != 0)
    throw std::runtime_error("the client sent " + quote(done, sizeof done) + " where ibv_rc_pingpong sends \"done\"");
}

// ---------------------------------------------------------------- perftest messages

namespace perftest {

KeyBytes format_key(const KeyMsg& k) {
  KeyBytes b{};
  int n = std::snprintf(b.data(), b.size(), "%04x:%04x:%06x:%06x:%08x:%016llx:", k.lid & 0xffff, k.out_reads & 0xffff,
                        k.qpn & 0xffffff, k.psn & 0xffffff, k.rkey, static_cast<unsigned long long>(k.vaddr));
  for (int i = 0; i < 16; ++i)
    n += std::snprintf(b.data() + n, b.size() - static_cast<std::size_t>(n), "%02x:", k.gid.raw[i]);
  std::snprintf(b.data() + n, b.size() - static_cast<std::size_t>(n), "%08x:", k.srqn);
  return b;
}

KeyMsg parse_key(const KeyBytes& b) {
  FieldReader r(b.data(), b.size());
  std::uint64_t lid = 0, outs = 0, qpn = 0, psn = 0, rkey = 0, vaddr = 0, byte = 0, srqn = 0;
  KeyMsg k;
  bool ok = r.field(4, lid) && r.field(4, outs) && r.field(6, qpn) && r.field(6, psn) && r.field(8, rkey) &&
            r.field(16, vaddr);
  for (int i = 0; ok && i < 16; ++i) {
    ok = r.field(2, byte);
    k.gid.raw[i] = static_cast<std::uint8_t>(byte);
  }
  ok = ok && r.field(8, srqn) && b[r.pos()] == '\0';
  if (!ok)
    throw std::runtime_error("the peer's message " + quote(b.data(), b.size()) +
                             " is not perftest's 108-byte key message (LID:OUT_READS:QPN:PSN:RKEY:VADDR:GID:SRQN); "
                             "are both sides running the same test (and no rdma_cm, -R/-z)?");
  k.lid = static_cast<std::uint32_t>(lid);
  k.out_reads = static_cast<std::uint32_t>(outs);
  k.qpn = static_cast<std::uint32_t>(qpn);
  k.psn = static_cast<std::uint32_t>(psn);
  k.rkey = static_cast<std::uint32_t>(rkey);
  k.vaddr = vaddr;
  k.srqn = static_cast<std::uint32_t>(srqn);
  return k;
}

std::optional<TestKind> parse_test(std::string_view name) {
  static constexpr std::pair<std::string_view, Verb> kVerbs[] = {
      {"send", Verb::kSend}, {"write", Verb::kWrite}, {"read", Verb::kRead}, {"atomic", Verb::kAtomic}};
  for (const auto& [prefix, verb] : kVerbs) {
    if (name == std::string(prefix) + "_lat") return TestKind{verb, false};
    if (name == std::string(prefix) + "_bw") return TestKind{verb, true};
  }
  return std::nullopt;
}

std::string test_name(TestKind k) {
  const char* verb = k.verb == Verb::kSend    ? "send"
                     : k.verb == Verb::kWrite ? "write"
                     : k.verb == Verb::kRead  ? "read"
                                              : "atomic";
  return std::string(verb) + (k.bw ? "_bw" : "_lat");
}

std::string perftest_program(TestKind k) {
  return "ib_" + test_name(k);
}

bool server_is_passive(TestKind k) {
  if (k.verb == Verb::kRead || k.verb == Verb::kAtomic) return true;
  return k.bw && k.verb == Verb::kWrite;
}

// ---------------------------------------------------------------- perftest exchanges

void Comm::xchg(const void* mine, void* theirs, std::size_t n, std::string_view what, int timeout_ms) {
  const std::string ours = "our " + std::string(what);
  const std::string peers = "the peer's " + std::string(what);
  if (client_) {
    conn_.send_all(mine, n, ours);
    conn_.recv_exact(theirs, n, timeout_ms, peers);
  } else {
    conn_.recv_exact(theirs, n, timeout_ms, peers);
    conn_.send_all(mine, n, ours);
  }
}

Negotiated Comm::negotiate(int page_size, int cache_line, ibv_mtu mtu) {
  Negotiated out;
  // Versions: a 16-byte string that must read as a number >= 5.70.
  char mine[kVersionSize] = {};
  char theirs[kVersionSize] = {};
  std::memcpy(mine, kVersion, sizeof kVersion);
  xchg(mine, theirs, kVersionSize, "perftest version (16 bytes)", timeout_ms_);
  out.peer_version.assign(theirs, strnlen(theirs, kVersionSize));
  char* end = nullptr;
  const double v = std::strtod(out.peer_version.c_str(), &end);
  if (out.peer_version.empty() || *end != '\0')
    throw std::runtime_error("the peer did not send a perftest version (got " + quote(theirs, kVersionSize) +
                             "); is it a perftest program (ib_*_lat, ib_*_bw) or urdma-perf on this port, "
                             "and not ibv_rc_pingpong?");
  if (v < kMinPeerVersion)
    throw std::runtime_error("version mismatch: the peer is perftest version " + out.peer_version +
                             ", but perftest 4.5 and urdma-perf (version " + kVersion +
                             ") need 5.70 or later: upgrade perftest on the peer");

  // System data: page size ("cycle buffer") and cache-line size, larger wins.
  const std::int32_t my_sys[2] = {static_cast<std::int32_t>(htonl(static_cast<std::uint32_t>(page_size))),
                                  static_cast<std::int32_t>(htonl(static_cast<std::uint32_t>(cache_line)))};
  std::int32_t peer_sys[2] = {};
  xchg(&my_sys[0], &peer_sys[0], 4, "page size (4 bytes)", timeout_ms_);
  xchg(&my_sys[1], &peer_sys[1], 4, "cache-line size (4 bytes)", timeout_ms_);
  out.cycle_buffer = std::max(page_size, static_cast<int>(ntohl(static_cast<std::uint32_t>(peer_sys[0]))));
  out.cache_line = std::max(cache_line, static_cast<int>(ntohl(static_cast<std::uint32_t>(peer_sys[1]))));

  // Path MTU: the ibv_mtu enum as "%d" in 2 bytes; the smaller valid one wins.
  char my_mtu[2] = {static_cast<char>('0' + static_cast<int>(mtu)), '\0'};
  char peer_mtu[2] = {};
  xchg(my_mtu, peer_mtu, sizeof my_mtu, "path MTU (2 bytes)", timeout_ms_);
  const int rem = peer_mtu[0] >= '0' && peer_mtu[0] <= '9' && peer_mtu[1] == '\0' ? peer_mtu[0] - '0' : 0;
  if (rem < IBV_MTU_256 || rem > IBV_MTU_4096)
    throw std::runtime_error("the peer sent path MTU " + quote(peer_mtu, 2) +
                             ", not an ibv_mtu value (1..5); is it running the same perftest test?");
  out.mtu = rem < static_cast<int>(mtu) ? static_cast<ibv_mtu>(rem) : mtu;
  return out;
}

KeyMsg Comm::handshake(const KeyMsg& mine, std::string_view what, bool wait_for_peer) {
  const KeyBytes out = format_key(mine);
  KeyBytes in{};
  xchg(out.data(), in.data(), in.size(), "108-byte key message (" + std::string(what) + ")",
       wait_for_peer ? -1 : timeout_ms_);
  return parse_key(in);
}

BwReport Comm::exchange_bw_report(const BwReport& mine) {
  const std::uint64_t out[5] = {htobe64(mine.size), htobe64(mine.iters), be64_of_double(mine.bw_peak),
                                be64_of_double(mine.bw_avg), be64_of_double(mine.msg_rate)};
  std::uint64_t in[5] = {};
  static constexpr const char* kNames[5] = {"report: message size", "report: iterations", "report: peak bandwidth",
                                            "report: average bandwidth", "report: message rate"};
  for (int i = 0; i < 5; ++i) xchg(&out[i], &in[i], 8, kNames[i], timeout_ms_);
  BwReport r;
  r.size = be64toh(in[0]);
  r.iters = be64toh(in[1]);
  r.bw_peak = double_of_be64(in[2]);
  r.bw_avg = double_of_be64(in[3]);
  r.msg_rate = double_of_be64(in[4]);
  return r;
}

void Comm::close_connection(const KeyMsg& mine) {
  handshake(mine, "closing", true);
  static constexpr char kDone[] = "done";
  conn_.try_send(kDone, sizeof kDone);  // perftest writes it and never reads it
}

// ---------------------------------------------------------------- per-test order

namespace {

// From the first key message to the moment the first iteration may start.
KeyMsg exchange_keys(Comm& c, TestKind k, const KeyMsg& mine, const SessionHooks& h) {
  KeyMsg peer;
  if (k.verb == Verb::kSend) {
    // send_lat/send_bw: per QP, connect, once more, per QP ("remote address").
    peer = c.handshake(mine, "QP keys");
    h.connect(peer);
    c.handshake(mine, "after connect");
    c.handshake(mine, "remote address");
  } else if (!k.bw) {
    // write/read/atomic_lat: once, per QP, connect, per QP, once more after RTR.
    c.handshake(mine, "first");
    peer = c.handshake(mine, "QP keys");
    h.connect(peer);
    c.handshake(mine, "remote address");
    c.handshake(mine, "after RTR");
  } else {
    // write/read/atomic_bw: per QP, connect, per QP, once more after RTR.
    peer = c.handshake(mine, "QP keys");
    h.connect(peer);
    c.handshake(mine, "remote address");
    c.handshake(mine, "after RTR");
  }
  return peer;
}

void passive_server(Comm& c, TestKind k, const KeyMsg& mine, const SessionHooks& h) {
  if (k.bw) {
    // Waits for the client to finish all its sizes, then takes its figures.
    c.handshake(mine, "client finished", true);
    const BwReport peer = c.exchange_bw_report(BwReport{});
    if (h.peer_report) h.peer_report(peer);
  }
  c.close_connection(mine);
}

}  // namespace

SizePlan SizePlan::sweep() {
  SizePlan p;
  p.all = true;
  for (std::uint64_t s = 2; s <= kMaxSize; s *= 2) p.sizes.push_back(s);
  return p;
}

KeyMsg run_session(Comm& comm, TestKind kind, const KeyMsg& mine, const SizePlan& plan, const SessionHooks& hooks) {
  const KeyMsg peer = exchange_keys(comm, kind, mine, hooks);
  if (!comm.client() && server_is_passive(kind)) {
    passive_server(comm, kind, mine, hooks);
    return peer;
  }
  std::optional<BwReport> last;
  for (const std::uint64_t size : plan.sizes) {
    if (hooks.prepare) hooks.prepare(size);
    // SEND tests: receives are posted before the client may send.
    if (kind.verb == Verb::kSend) comm.handshake(mine, "receives posted", true);
    last = hooks.run(size);
    // ib_send_bw -a (not without -a): both sides finished this size.
    if (kind.verb == Verb::kSend && kind.bw && plan.all) comm.handshake(mine, "size done", true);
  }
  if (kind.verb == Verb::kWrite && !kind.bw) return peer;  // ib_write_lat just exits
  if (kind.bw && kind.verb != Verb::kSend) {
    comm.handshake(mine, "client finished", true);
    comm.exchange_bw_report(last.value_or(BwReport{}));
  }
  comm.close_connection(mine);
  return peer;
}

}  // namespace perftest
}  // namespace urdma::tools
