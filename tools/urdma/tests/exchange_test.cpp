// SPDX-License-Identifier: GPL-2.0
// The TCP exchanges of urdma-pingpong and urdma-perf: the message formats
// against literal bytes of ibv_rc_pingpong's and perftest's, and every
// perftest test's order of messages against a scripted perftest peer that
// reads and writes the way perftest 4.5's main() does (one read() per
// message), in both roles; urdma-perf against itself; the TCP helpers'
// error messages; the report figures.
#include <arpa/inet.h>
#include <endian.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "../tools/common.h"
#include "../tools/perf_report.h"
#include "../tools/perftest_exchange.h"

namespace urdma::tools {
namespace {

using perftest::BwReport;
using perftest::KeyMsg;
using perftest::TestKind;
using perftest::Verb;

ibv_gid v4_gid(const char* ip) {
  ibv_gid g{};
  g.raw[10] = g.raw[11] = 0xff;
  in_addr a{};
  inet_pton(AF_INET, ip, &a);
  std::memcpy(g.raw + 12, &a.s_addr, 4);
  return g;
}

// ---------------------------------------------------------------- message formats

TEST(PingpongMsg, FormatIsRcPingpongsBytes) {
  PingpongDest d;
  d.lid = 0;
  d.qpn = 0x11;
  d.psn = 0xabcdef;
  d.gid = v4_gid("10.0.0.2");
  const PingpongMsg m = format_pingpong(d);
  ASSERT_EQ(m.size(), 52u);
  // "%04x:%06x:%06x:%s" with the GID's 16 bytes in wire order, then the NUL.
  EXPECT_STREQ(m.data(), "0000:000011:abcdef:00000000000000000000ffff0a000002");
  EXPECT_EQ(std::strlen(m.data()), 51u);
}

TEST(PingpongMsg, ParsesRcPingpongsMessage) {
  PingpongMsg m{};
  std::strcpy(m.data(), "0000:0000a7:0123ff:fe800000000000000000000000000001");
  const PingpongDest d = parse_pingpong(m);
  EXPECT_EQ(d.lid, 0u);
  EXPECT_EQ(d.qpn, 0xa7u);
  EXPECT_EQ(d.psn, 0x123ffu);
  EXPECT_EQ(d.gid.raw[0], 0xfe);
  EXPECT_EQ(d.gid.raw[1], 0x80);
  EXPECT_EQ(d.gid.raw[15], 0x01);

  PingpongDest x;
  x.lid = 0x1234;
  x.qpn = 0xffffff;
  x.psn = 0;
  x.gid = v4_gid("192.168.7.9");
  const PingpongDest y = parse_pingpong(format_pingpong(x));
  EXPECT_EQ(y.lid, x.lid);
  EXPECT_EQ(y.qpn, x.qpn);
  EXPECT_EQ(y.psn, x.psn);
  EXPECT_EQ(std::memcmp(y.gid.raw, x.gid.raw, 16), 0);
}

TEST(PingpongMsg, RejectsOtherMessages) {
  PingpongMsg m{};
  std::memcpy(m.data(), "6.06", 5);  // a perftest peer's version
  try {
    parse_pingpong(m);
    FAIL() << "parsed a perftest version as an address";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ibv_rc_pingpong"), std::string::npos) << e.what();
  }
  std::strcpy(m.data(), "0000:000011:abcdef:00000000000000000000ffff0a00000");  // one digit short
  EXPECT_THROW(parse_pingpong(m), std::runtime_error);
  std::strcpy(m.data(), "0000:000011:abcdef:00000000000000000000ffff0a00000g");
  EXPECT_THROW(parse_pingpong(m), std::runtime_error);
}

TEST(PerftestKey, FormatIsPerftestsBytes) {
  KeyMsg k;
  k.lid = 0;
  k.out_reads = 0x80;
  k.qpn = 0x12;
  k.psn = 0x123456;
  k.rkey = 0xdeadbeef;
  k.vaddr = 0x7f12345678ULL;
  k.gid = v4_gid("10.0.0.1");
  k.srqn = 0;
  const perftest::KeyBytes b = format_key(k);
  ASSERT_EQ(b.size(), 108u);
  EXPECT_STREQ(b.data(),
               "0000:0080:000012:123456:deadbeef:0000007f12345678:"
               "00:00:00:00:00:00:00:00:00:00:ff:ff:0a:00:00:01:00000000:");
  EXPECT_EQ(std::strlen(b.data()), 107u);
}

TEST(PerftestKey, ParsesPerftestsMessage) {
  perftest::KeyBytes b{};
  std::strcpy(b.data(),
              "0000:0001:0000a1:00beef:00001234:00005555deadb000:"
              "00:00:00:00:00:00:00:00:00:00:ff:ff:c0:a8:01:02:00000000:");
  const KeyMsg k = perftest::parse_key(b);
  EXPECT_EQ(k.out_reads, 1u);
  EXPECT_EQ(k.qpn, 0xa1u);
  EXPECT_EQ(k.psn, 0xbeefu);
  EXPECT_EQ(k.rkey, 0x1234u);
  EXPECT_EQ(k.vaddr, 0x5555deadb000ULL);
  EXPECT_EQ(std::memcmp(k.gid.raw, v4_gid("192.168.1.2").raw, 16), 0);

  KeyMsg x;
  x.lid = 0xffff;
  x.out_reads = 128;
  x.qpn = 0xfedcba;
  x.psn = 0xffffff;
  x.rkey = 0xffffffff;
  x.vaddr = ~0ULL;
  x.gid = v4_gid("255.254.253.252");
  x.srqn = 0x1234;
  const KeyMsg y = perftest::parse_key(format_key(x));
  EXPECT_EQ(y.lid, x.lid);
  EXPECT_EQ(y.out_reads, x.out_reads);
  EXPECT_EQ(y.qpn, x.qpn);
  EXPECT_EQ(y.psn, x.psn);
  EXPECT_EQ(y.rkey, x.rkey);
  EXPECT_EQ(y.vaddr, x.vaddr);
  EXPECT_EQ(y.srqn, x.srqn);
  EXPECT_EQ(std::memcmp(y.gid.raw, x.gid.raw, 16), 0);
}

TEST(PerftestKey, RejectsOtherMessages) {
  perftest::KeyBytes b{};
  std::memcpy(b.data(), "done", 5);
  try {
    perftest::parse_key(b);
    FAIL() << "parsed \"done\" as keys";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("same test"), std::string::npos) << e.what();
  }
  // perftest's 59-byte message without a GID is not accepted where one is due.
  std::strcpy(b.data(), "0000:0001:0000a1:00beef:00001234:00005555deadb000:00000000");
  EXPECT_THROW(perftest::parse_key(b), std::runtime_error);
}

TEST(PerftestKey, TestNames) {
  for (const char* n :
       {"write_lat", "read_lat", "send_lat", "atomic_lat", "write_bw", "read_bw", "send_bw", "atomic_bw"}) {
    const auto k = perftest::parse_test(n);
    ASSERT_TRUE(k.has_value()) << n;
    EXPECT_EQ(perftest::test_name(*k), n);
    EXPECT_EQ(perftest::perftest_program(*k), std::string("ib_") + n);
  }
  EXPECT_FALSE(perftest::parse_test("write").has_value());
  EXPECT_FALSE(perftest::parse_test("ib_write_lat").has_value());
  EXPECT_TRUE(perftest::server_is_passive({Verb::kRead, false}));
  EXPECT_TRUE(perftest::server_is_passive({Verb::kAtomic, true}));
  EXPECT_TRUE(perftest::server_is_passive({Verb::kWrite, true}));
  EXPECT_FALSE(perftest::server_is_passive({Verb::kWrite, false}));
  EXPECT_FALSE(perftest::server_is_passive({Verb::kSend, true}));
}

TEST(PerftestKey, SizeSweepIsPerftests) {
  const perftest::SizePlan p = perftest::SizePlan::sweep();
  EXPECT_TRUE(p.all);
  ASSERT_EQ(p.sizes.size(), 23u);  // 1 << 1 .. 1 << 23
  EXPECT_EQ(p.sizes.front(), 2u);
  EXPECT_EQ(p.sizes.back(), 8u << 20);
  EXPECT_FALSE(perftest::SizePlan::one(65536).all);
}

// ---------------------------------------------------------------- a scripted perftest peer

// Steps of perftest 4.5's main() for one RC QP over TCP, written from its
// sources (write_lat.c etc.): V versions, P page size, L cache line, M MTU,
// K key handshake, R the five report values, D "done" after the closing K.
struct Script {
  std::string setup;     // before the sizes
  std::string per_size;  // for each size
  std::string end;       // after the sizes
};

Script perftest_script(TestKind k, bool server, bool all) {
  const bool passive = perftest::server_is_passive(k) && server;
  // ib_send_bw -a adds a handshake after each size; without -a it does not.
  if (k.verb == Verb::kSend) return {"VPLMKKK", k.bw && all ? "KK" : "K", "KD"};
  if (!k.bw) {
    if (k.verb == Verb::kWrite) return {"VPLMKKKK", "", ""};
    return passive ? Script{"VPLMKKKKKD", "", ""} : Script{"VPLMKKKK", "", "KD"};
  }
  return passive ? Script{"VPLMKKKKRKD", "", ""} : Script{"VPLMKKK", "", "KRKD"};
}

// Plays perftest on one end of a socket: every message in one write(), read
// with one read() of its exact size, as perftest does (a short read fails).
class FakePerftest {
 public:
  FakePerftest(int fd, bool client, KeyMsg mine) : fd_(fd), client_(client), mine_(mine) {}

  void run(const std::string& steps, int sizes_per_size_steps, const std::string& per_size, const std::string& end) {
    play(steps);
    for (int i = 0; i < sizes_per_size_steps; ++i) play(per_size);
    play(end);
  }

  std::string peer_version;
  int peer_page = 0, peer_cache_line = 0;
  std::string peer_mtu;
  std::vector<KeyMsg> peer_keys;
  std::vector<std::uint64_t> peer_report;  // as received (big-endian decoded)
  BwReport my_report{65536, 5000, 1234.5, 1000.25, 0.016};
  bool sent_done = false;

 private:
  void xchg(const void* mine, void* theirs, std::size_t n) {
    if (client_) {
      put(mine, n);
      get(theirs, n);
    } else {
      get(theirs, n);
      put(mine, n);
    }
  }
  void put(const void* p, std::size_t n) { ASSERT_EQ(::write(fd_, p, n), static_cast<ssize_t>(n)); }
  void get(void* p, std::size_t n) { ASSERT_EQ(::read(fd_, p, n), static_cast<ssize_t>(n)) << "short read"; }

  void play(const std::string& steps) {
    for (char s : steps) step(s);
  }

  void step(char s) {
    switch (s) {
      case 'V': {
        char mine[16] = "6.06", theirs[16] = {};
        xchg(mine, theirs, 16);
        peer_version = theirs;
        break;
      }
      case 'P':
      case 'L': {
        const std::uint32_t mine = htonl(s == 'P' ? 4096 : 64);
        std::uint32_t theirs = 0;
        xchg(&mine, &theirs, 4);
        (s == 'P' ? peer_page : peer_cache_line) = static_cast<int>(ntohl(theirs));
        break;
      }
      case 'M': {
        char mine[2] = {'3', 0}, theirs[2] = {};  // IBV_MTU_1024
        xchg(mine, theirs, 2);
        peer_mtu.assign(theirs, 2);
        break;
      }
      case 'K': {
        const perftest::KeyBytes mine = format_key(mine_);
        perftest::KeyBytes theirs{};
        xchg(mine.data(), theirs.data(), theirs.size());
        peer_keys.push_back(perftest::parse_key(theirs));
        break;
      }
      case 'R': {
        const std::uint64_t mine[5] = {htobe64(my_report.size), htobe64(my_report.iters),
                                       htobe64(std::bit_cast<std::uint64_t>(my_report.bw_peak)),
                                       htobe64(std::bit_cast<std::uint64_t>(my_report.bw_avg)),
                                       htobe64(std::bit_cast<std::uint64_t>(my_report.msg_rate))};
        for (std::uint64_t v : mine) {
          std::uint64_t theirs = 0;
          xchg(&v, &theirs, 8);
          peer_report.push_back(be64toh(theirs));
        }
        break;
      }
      case 'D':
        put("done", 5);
        sent_done = true;
        break;
      default:
        FAIL() << "bad step " << s;
    }
  }

  int fd_;
  bool client_;
  KeyMsg mine_;
};

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0); }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

KeyMsg urdma_keys() {
  KeyMsg k;
  k.out_reads = 1;
  k.qpn = 0x11;
  k.psn = 0x424242;
  k.rkey = 0x1234;
  k.vaddr = 0x7f0000001000ULL;
  k.gid = v4_gid("127.0.0.2");
  return k;
}

KeyMsg rxe_keys() {
  KeyMsg k;
  k.out_reads = 128;
  k.qpn = 0x12;
  k.psn = 0x0abcde;
  k.rkey = 0x5678;
  k.vaddr = 0x55550000f000ULL;
  k.gid = v4_gid("10.0.0.1");
  return k;
}

// What run_session did on the urdma side.
struct Calls {
  int connects = 0;
  KeyMsg connected_to;
  std::vector<std::uint64_t> prepared, ran;
  std::vector<BwReport> peer_reports;
};

perftest::SessionHooks hooks_for(Calls& calls, bool bw_client) {
  perftest::SessionHooks h;
  h.connect = [&calls](const KeyMsg& k) {
    ++calls.connects;
    calls.connected_to = k;
  };
  h.prepare = [&calls](std::uint64_t s) { calls.prepared.push_back(s); };
  h.run = [&calls, bw_client](std::uint64_t s) -> std::optional<BwReport> {
    calls.ran.push_back(s);
    if (!bw_client) return std::nullopt;
    return BwReport{s, 1000, 2.5 * double(s), 2.0 * double(s), 0.125};
  };
  h.peer_report = [&calls](const BwReport& r) { calls.peer_reports.push_back(r); };
  return h;
}

// After both ends are done: what is left unread on the fake's side.
std::string drain(int fd) {
  std::string rest;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) rest.append(buf, static_cast<std::size_t>(n));
  return rest;
}

struct SessionCase {
  const char* test;
  bool urdma_server;
  bool all;  // -a (three sizes here) or one size
};

class PerftestSession : public ::testing::TestWithParam<SessionCase> {};

// urdma-perf's exchange against perftest's, message by message.
TEST_P(PerftestSession, MatchesPerftestOrder) {
  const TestKind kind = *perftest::parse_test(GetParam().test);
  const bool urdma_server = GetParam().urdma_server;
  const perftest::SizePlan plan = GetParam().all ? perftest::SizePlan{{2, 4, 8}, true} : perftest::SizePlan::one(8);
  const std::vector<std::uint64_t>& sizes = plan.sizes;
  SocketPair sp;
  TcpConn ours(fastpath::UniqueFd(sp.fd[0]), "fake perftest");
  sp.fd[0] = -1;

  const Script script = perftest_script(kind, !urdma_server, plan.all);
  FakePerftest fake(sp.fd[1], urdma_server, rxe_keys());
  auto fake_done = std::async(
      std::launch::async, [&] { fake.run(script.setup, static_cast<int>(sizes.size()), script.per_size, script.end); });

  Calls calls;
  const bool bw_client = kind.bw && !urdma_server;
  {
    perftest::Comm comm(ours, !urdma_server, 5000);
    const perftest::Negotiated n = comm.negotiate(4096, 128, IBV_MTU_4096);
    EXPECT_EQ(n.peer_version, "6.06");
    EXPECT_EQ(n.cycle_buffer, 4096);
    EXPECT_EQ(n.cache_line, 128);
    EXPECT_EQ(n.mtu, IBV_MTU_1024);  // the smaller
    perftest::run_session(comm, kind, urdma_keys(), plan, hooks_for(calls, bw_client));
  }
  fake_done.get();
  ours = TcpConn();  // close our end: the fake reads what we sent after its last step, then EOF

  EXPECT_EQ(fake.peer_version, "6.06");
  EXPECT_EQ(fake.peer_page, 4096);
  EXPECT_EQ(fake.peer_cache_line, 128);
  EXPECT_EQ(fake.peer_mtu, std::string("5\0", 2));  // IBV_MTU_4096 as "%d"
  ASSERT_FALSE(fake.peer_keys.empty());
  for (const KeyMsg& k : fake.peer_keys) {
    EXPECT_EQ(k.qpn, 0x11u);
    EXPECT_EQ(k.vaddr, 0x7f0000001000ULL);
  }
  EXPECT_EQ(calls.connects, 1);
  EXPECT_EQ(calls.connected_to.qpn, 0x12u);
  EXPECT_EQ(calls.connected_to.out_reads, 128u);

  const bool passive = urdma_server && perftest::server_is_passive(kind);
  EXPECT_EQ(calls.ran, passive ? std::vector<std::uint64_t>{} : sizes);
  if (kind.bw && kind.verb != Verb::kSend) {
    ASSERT_EQ(fake.peer_report.size(), 5u);
    if (urdma_server) {
      ASSERT_EQ(calls.peer_reports.size(), 1u);
      EXPECT_EQ(calls.peer_reports[0].size, 65536u);
      EXPECT_EQ(calls.peer_reports[0].iters, 5000u);
      EXPECT_DOUBLE_EQ(calls.peer_reports[0].bw_peak, 1234.5);
      EXPECT_DOUBLE_EQ(calls.peer_reports[0].bw_avg, 1000.25);
      EXPECT_DOUBLE_EQ(calls.peer_reports[0].msg_rate, 0.016);
    } else {
      // The client reports its last size.
      EXPECT_EQ(fake.peer_report[0], 8u);
      EXPECT_EQ(fake.peer_report[1], 1000u);
      EXPECT_DOUBLE_EQ(std::bit_cast<double>(fake.peer_report[2]), 20.0);
      EXPECT_DOUBLE_EQ(std::bit_cast<double>(fake.peer_report[3]), 16.0);
      EXPECT_DOUBLE_EQ(std::bit_cast<double>(fake.peer_report[4]), 0.125);
    }
  }
  // Closing: "done" (with its NUL) after the last handshake, and nothing else.
  const bool closes = !(kind.verb == Verb::kWrite && !kind.bw);
  EXPECT_EQ(drain(sp.fd[1]), closes ? std::string("done", 5) : std::string());
}

std::vector<SessionCase> all_cases() {
  std::vector<SessionCase> v;
  for (const char* t :
       {"write_lat", "read_lat", "send_lat", "atomic_lat", "write_bw", "read_bw", "send_bw", "atomic_bw"})
    for (bool server : {true, false})
      for (bool all : {false, true}) v.push_back({t, server, all});
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllTests, PerftestSession, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<SessionCase>& p) {
                           return std::string(p.param.test) + (p.param.urdma_server ? "_server" : "_client") +
                                  (p.param.all ? "_all" : "");
                         });

// urdma-perf against itself over real TCP on the loopback.
TEST(PerftestSelf, EveryTestOverLoopback) {
  for (const char* name :
       {"write_lat", "read_lat", "send_lat", "atomic_lat", "write_bw", "read_bw", "send_bw", "atomic_bw"}) {
    SCOPED_TRACE(name);
    const TestKind kind = *perftest::parse_test(name);
    const perftest::SizePlan plan{{2, 1024}, true};
    const std::vector<std::uint64_t>& sizes = plan.sizes;
    TcpListener listener(0);
    Calls server_calls, client_calls;
    auto server = std::async(std::launch::async, [&] {
      TcpConn conn = listener.accept();
      perftest::Comm comm(conn, false, 5000);
      const auto n = comm.negotiate(4096, 64, IBV_MTU_1024);
      EXPECT_EQ(n.mtu, IBV_MTU_1024);
      perftest::run_session(comm, kind, rxe_keys(), plan, hooks_for(server_calls, false));
    });
    TcpConn conn = TcpConn::connect("127.0.0.1", listener.port());
    perftest::Comm comm(conn, true, 5000);
    const auto n = comm.negotiate(4096, 64, IBV_MTU_2048);
    EXPECT_EQ(n.mtu, IBV_MTU_1024);
    perftest::run_session(comm, kind, urdma_keys(), plan, hooks_for(client_calls, kind.bw));
    server.get();
    EXPECT_EQ(client_calls.ran, sizes);
    EXPECT_EQ(server_calls.ran, perftest::server_is_passive(kind) ? std::vector<std::uint64_t>{} : sizes);
    EXPECT_EQ(server_calls.connected_to.qpn, 0x11u);
    EXPECT_EQ(client_calls.connected_to.qpn, 0x12u);
    if (kind.bw && kind.verb != Verb::kSend) {
      ASSERT_EQ(server_calls.peer_reports.size(), 1u);
      EXPECT_EQ(server_calls.peer_reports[0].size, 1024u);
      EXPECT_DOUBLE_EQ(server_calls.peer_reports[0].bw_avg, 2048.0);
    }
  }
}

TEST(PerftestNegotiate, RefusesOldOrAlienPeers) {
  for (const char* peer_version : {"5.60", "0000:000011:abc"}) {
    SCOPED_TRACE(peer_version);
    SocketPair sp;
    TcpConn ours(fastpath::UniqueFd(sp.fd[0]), "peer");
    sp.fd[0] = -1;
    char v[16] = {};
    std::strncpy(v, peer_version, sizeof v - 1);
    ASSERT_EQ(::write(sp.fd[1], v, 16), 16);
    perftest::Comm comm(ours, false, 2000);
    try {
      comm.negotiate(4096, 64, IBV_MTU_1024);
      FAIL() << "accepted version " << peer_version;
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_TRUE(what.find("version mismatch") != std::string::npos ||
                  what.find("did not send a perftest version") != std::string::npos)
          << what;
    }
  }
}

// ---------------------------------------------------------------- ibv_rc_pingpong exchange

TEST(PingpongExchange, ClientAndServerAsRcPingpong) {
  SocketPair sp;
  TcpConn client(fastpath::UniqueFd(sp.fd[0]), "server");
  TcpConn server(fastpath::UniqueFd(sp.fd[1]), "client");
  sp.fd[0] = sp.fd[1] = -1;
  PingpongDest c{0, 0x11, 0x111111, v4_gid("127.0.0.2")};
  PingpongDest s{0, 0x12, 0x222222, v4_gid("127.0.0.1")};
  bool server_connected_before_reply = false;
  auto srv = std::async(std::launch::async, [&] {
    const PingpongDest got = pingpong_server_receive(server, 2000);
    server_connected_before_reply = true;  // the QP would move to RTR/RTS here
    pingpong_server_reply(server, s, 2000);
    return got;
  });
  const PingpongDest from_server = pingpong_client_exchange(client, c, 2000);
  const PingpongDest from_client = srv.get();
  EXPECT_TRUE(server_connected_before_reply);
  EXPECT_EQ(from_server.qpn, 0x12u);
  EXPECT_EQ(from_server.psn, 0x222222u);
  EXPECT_EQ(from_client.qpn, 0x11u);
  EXPECT_EQ(std::memcmp(from_client.gid.raw, c.gid.raw, 16), 0);
}

// The real ibv_rc_pingpong server reads "done" with one read() expecting 5
// bytes, and its client writes 52 then reads 52: check we do exactly that.
TEST(PingpongExchange, BytesOnTheWire) {
  SocketPair sp;
  TcpConn client(fastpath::UniqueFd(sp.fd[0]), "server");
  sp.fd[0] = -1;
  PingpongDest c{0, 0x11, 0x000abc, v4_gid("127.0.0.2")};
  auto cl = std::async(std::launch::async, [&] { return pingpong_client_exchange(client, c, 2000); });
  char msg[52];
  ASSERT_EQ(::read(sp.fd[1], msg, sizeof msg), 52);
  EXPECT_STREQ(msg, "0000:000011:000abc:00000000000000000000ffff7f000002");
  const char reply[52] = "0000:000012:000def:00000000000000000000ffff7f000001";
  ASSERT_EQ(::write(sp.fd[1], reply, sizeof reply), 52);
  char done[52];
  ASSERT_EQ(::read(sp.fd[1], done, sizeof done), 5);
  EXPECT_EQ(std::memcmp(done, "done", 5), 0);
  EXPECT_EQ(cl.get().psn, 0xdefu);
}

// ---------------------------------------------------------------- TCP helper errors

TEST(TcpHelpers, RefusedConnectionSaysStartTheServer) {
  int port = 0;
  {
    TcpListener l(0);  // a port that was free, now closed again
    port = l.port();
  }
  try {
    TcpConn::connect("127.0.0.1", port);
    FAIL() << "connected to a closed port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is the server running?"), std::string::npos) << e.what();
  }
}

TEST(TcpHelpers, ConnectRetriesUntilTheServerListens) {
  int port = 0;
  {
    TcpListener l(0);
    port = l.port();
  }
  auto late = std::async(std::launch::async, [port] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    TcpListener l(port);
    return l.accept().peer().empty();
  });
  TcpConn c = TcpConn::connect("localhost", port, 5000);
  EXPECT_FALSE(late.get());
}

TEST(TcpHelpers, PortInUseIsNamed) {
  TcpListener a(0);
  try {
    TcpListener b(a.port());
    FAIL() << "two listeners on one port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
}

TEST(TcpHelpers, EofAndTimeoutAreNamed) {
  SocketPair sp;
  TcpConn c(fastpath::UniqueFd(sp.fd[0]), "peer");
  sp.fd[0] = -1;
  char buf[16];
  try {
    c.recv_exact(buf, sizeof buf, 100, "the thing");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the thing"), std::string::npos) << e.what();
  }
  ASSERT_EQ(::write(sp.fd[1], "abc", 3), 3);
  ::close(sp.fd[1]);
  sp.fd[1] = -1;
  try {
    c.recv_exact(buf, sizeof buf, 1000, "the thing");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("closed the TCP connection"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 of 16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(c.try_send("x", 1));
}

TEST(Gids, PeerGidChecks) {
  EXPECT_EQ(gid_to_string(v4_gid("10.0.0.2")), "::ffff:10.0.0.2");
  EXPECT_NO_THROW(check_peer_gid(v4_gid("10.0.0.2"), "-g"));
  ibv_gid zero{};
  try {
    check_peer_gid(zero, "-g");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("-g"), std::string::npos) << e.what();
  }
  ibv_gid link_local{};
  link_local.raw[0] = 0xfe;
  link_local.raw[1] = 0x80;
  link_local.raw[15] = 1;
  EXPECT_THROW(check_peer_gid(link_local, "-x"), std::runtime_error);
}

// ---------------------------------------------------------------- report figures

TEST(PerfReport, LatencyAsPerftest) {
  // Posts 10 us apart, except one 100 us gap and one 50 us gap: both dropped
  // as the tail; the round trips are halved.
  std::vector<std::uint64_t> t{0};
  for (int i = 1; i < 100; ++i) t.push_back(t.back() + (i == 50 ? 100'000 : i == 70 ? 50'000 : 10'000));
  const perf::LatResult r = perf::latency_stats(t, 2, true);
  EXPECT_EQ(r.iters, 100u);
  EXPECT_DOUBLE_EQ(r.t_min, 5.0);
  EXPECT_DOUBLE_EQ(r.t_typical, 5.0);
  EXPECT_DOUBLE_EQ(r.t_avg, 5.0);
  EXPECT_DOUBLE_EQ(r.t_stdev, 0.0);
  EXPECT_DOUBLE_EQ(r.t_max, 25.0);  // perftest prints the first dropped sample
  EXPECT_DOUBLE_EQ(r.p99, 25.0);    // ceil(97 * 0.99) = 97: past the kept ones
  const perf::LatResult one_way = perf::latency_stats(t, 2, false);
  EXPECT_DOUBLE_EQ(one_way.t_typical, 10.0);
}

TEST(PerfReport, BandwidthAsPerftest) {
  // 100 messages of 1 MiB posted 1 ms apart, each completing 2 ms after its
  // post, a completion every 10: 100 MiB over 101 ms.
  std::vector<std::uint64_t> posts;
  std::vector<perf::Completion> done;
  for (std::uint64_t i = 0; i < 100; ++i) posts.push_back(i * 1'000'000);
  for (std::uint64_t i = 9; i < 100; i += 10) done.push_back({i, posts[i] + 2'000'000});
  const BwReport r = perf::bw_stats(1 << 20, posts, done, false);
  EXPECT_EQ(r.iters, 100u);
  EXPECT_NEAR(r.bw_avg, 100.0 / 0.101, 1e-9);
  EXPECT_NEAR(r.msg_rate, 100.0 / 0.101 / 1e6, 1e-12);
  // Best window: post 0 .. completion 99 = 101 ms / 100 messages.
  EXPECT_NEAR(r.bw_peak, 1e9 / 1'010'000.0, 1e-6);
  const BwReport g = perf::bw_stats(1 << 20, posts, done, true);
  EXPECT_NEAR(g.bw_avg, 100.0 * 1048576 * 8 / 0.101 / 1e9, 1e-9);
  const BwReport s = perf::bw_stats_receiver(1000, 1000, 0, 1'000'000'000, false);
  EXPECT_DOUBLE_EQ(s.bw_peak, 0.0);
  EXPECT_NEAR(s.bw_avg, 1e6 / 1048576.0, 1e-12);
}

}  // namespace
}  // namespace urdma::tools
