// SPDX-License-Identifier: GPL-2.0
// Packet I/O: spec parsing, the fault injector over an in-memory link, the udp
// back-end on loopback and (as root) the dpdk back-end over a veth pair
// between two network namespaces the test creates.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fastpath/unique_fd.h"
#include "urdma/packet_io.h"
#include "wire.h"

namespace urdma {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t fold_sum(const std::uint8_t* p, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += get16(p + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

in_addr addr(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a;
}

// An IPv4/UDP packet as the transport builds one: DF, ID 0, TTL 64, UDP checksum 0.
Bytes make_packet(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, const Bytes& payload) {
  Bytes p(28 + payload.size());
  p[0] = 0x45;
  put16(&p[2], static_cast<std::uint16_t>(p.size()));
  put16(&p[6], 0x4000);
  p[8] = 64;
  p[9] = IPPROTO_UDP;
  const in_addr s = addr(src), d = addr(dst);
  std::memcpy(&p[12], &s, 4);
  std::memcpy(&p[16], &d, 4);
  put16(&p[10], static_cast<std::uint16_t>(~fold_sum(p.data(), 20)));
  put16(&p[20], sport);
  put16(&p[22], dport);
  put16(&p[24], static_cast<std::uint16_t>(8 + payload.size()));
  std::memcpy(&p[28], payload.data(), payload.size());
  return p;
}

Bytes bytes(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

// Checks a received packet's IPv4/UDP header field by field.
void expect_header(const RxPacket& p, const char* src, std::uint16_t sport, const char* dst, const Bytes& payload) {
  ASSERT_EQ(p.len, 28 + payload.size());
  const std::uint8_t* h = p.data;
  EXPECT_EQ(h[0], 0x45);
  EXPECT_EQ(get16(h + 2), p.len);
  EXPECT_EQ(get16(h + 4), 0) << "IP ID";
  EXPECT_EQ(get16(h + 6), 0x4000) << "DF, no fragment";
  EXPECT_EQ(h[9], IPPROTO_UDP);
  EXPECT_EQ(fold_sum(h, 20), 0xffff) << "IPv4 header checksum";
  const in_addr s = addr(src), d = addr(dst);
  EXPECT_EQ(std::memcmp(h + 12, &s, 4), 0) << "source address";
  EXPECT_EQ(std::memcmp(h + 16, &d, 4), 0) << "destination address";
  EXPECT_EQ(get16(h + 20), sport);
  EXPECT_EQ(get16(h + 22), 4791);
  EXPECT_EQ(get16(h + 24), 8 + payload.size());
  EXPECT_EQ(Bytes(h + 28, h + p.len), payload);
}

template <class F>
void expect_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing: " << needle;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------ IoSpec

TEST(IoSpec, ParsesBackendAndKeys) {
  const IoSpec s = IoSpec::parse("udp:ip=10.0.0.1,mtu=4200");
  EXPECT_EQ(s.backend, "udp");
  EXPECT_EQ(s.keys.size(), 2u);
  EXPECT_EQ(s.get("ip"), "10.0.0.1");
  EXPECT_EQ(s.get_int("mtu", 1500, 576, 9216), 4200);
  EXPECT_EQ(s.get("seed", "1"), "1");
  EXPECT_EQ(s.get_real("drop", 0.25, 0, 1), 0.25);
  EXPECT_EQ(IoSpec::parse("udp").backend, "udp");
  EXPECT_TRUE(IoSpec::parse("udp").keys.empty());
}

TEST(IoSpec, QuotedValuesKeepCommasAndSpaces) {
  const IoSpec s = IoSpec::parse(R"(dpdk:dev="net_tap0,iface=t0",eal='--log-level=8 -v',ip=10.0.0.2)");
  EXPECT_EQ(s.get("dev"), "net_tap0,iface=t0");
  EXPECT_EQ(s.get("eal"), "--log-level=8 -v");
  EXPECT_EQ(s.get("ip"), "10.0.0.2");
}

TEST(IoSpec, RejectsMalformedSpecsSayingWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "the back-end name is missing"},
      {":ip=1.2.3.4", "the back-end name is missing"},
      {"udp:", "nothing follows ':'"},
      {"udp:ip", "'ip' is not key=value"},
      {"udp:ip,mtu=1", "'ip' is not key=value"},
      {"udp:=1", "a key is empty"},
      {"udp:ip=", "key 'ip' has an empty value"},
      {"udp:ip=1,ip=2", "key 'ip' is given twice"},
      {"udp:ip=1,", "it ends with ','"},
      {R"(dpdk:dev="a,b)", "has no closing \""},
      {R"(dpdk:dev="a"b)", "a ',' must follow the quoted value of 'dev'"},
  };
  for (const auto& [spec, why] : cases) {
    SCOPED_TRACE(spec);
    EXPECT_THROW(IoSpec::parse(spec), std::invalid_argument);
    expect_error([&] { IoSpec::parse(spec); }, why);
    expect_error([&] { IoSpec::parse(spec); }, "expected BACKEND:key=value");
  }
}

TEST(IoSpec, NumbersAreCheckedWithTheirRange) {
  const IoSpec s = IoSpec::parse("udp:mtu=abc,drop=1.5,seed=-1,dup=nan,reorder=0x10");
  expect_error([&] { s.get_int("mtu", 1500, 576, 9216); }, "mtu=abc is not an integer in [576, 9216]");
  expect_error([&] { s.get_real("drop", 0, 0, 1); }, "drop=1.5 is not a number in [0, 1]");
  expect_error([&] { s.get_int("seed", 1, 0, 100); }, "seed=-1 is not an integer");
  expect_error([&] { s.get_real("dup", 0, 0, 1); }, "dup=nan is not a number");
  EXPECT_EQ(s.get_int("reorder", 0, 0, 100), 16);
}

TEST(OpenPacketIo, RejectsUnknownBackendsKeysAndValues) {
  expect_error([] { open_packet_io("tcp:ip=1.2.3.4"); }, "unknown packet I/O back-end 'tcp'");
  expect_error([] { open_packet_io("udp:ip=127.0.0.1,mut=9000"); },
               "unknown key 'mut'; valid keys: ip, ip_id, corrupt");
  expect_error([] { open_packet_io("udp:ip=127.0.0.1,ip_id=guess"); }, "ip_id=guess is not zero or solve");
  expect_error([] { open_packet_io("dpdk:ip=10.1.1.1,drop=2"); }, "drop=2 is not a number in [0, 1]");
  expect_error([] { open_packet_io("udp:ip=not-an-ip"); }, "ip=not-an-ip is not an IPv4 address");
  expect_error([] { open_packet_io("udp:mtu=1500"); }, "no address; pass ip=A.B.C.D");
  expect_error([] { open_packet_io("udp:ip=127.0.0.1,mtu=100"); }, "mtu=100 is not an integer in [576, 9216]");
  // Device::open documents std::runtime_error for everything, syntax included.
  EXPECT_THROW(open_packet_io("udp:ip"), std::runtime_error);
}

TEST(OpenPacketIo, DpdkChecksComeBeforeTheEal) {
  expect_error([] { open_packet_io("dpdk:iface=urdma-nope0,ip=10.77.0.2"); },
               "interface urdma-nope0 does not exist (ip link show); create it or pass iface=...");
  expect_error([] { open_packet_io("dpdk:ip=10.77.0.2"); }, "no port given; pass iface=IF");
  expect_error([] { open_packet_io("dpdk:iface=lo,dev=net_null0,ip=10.77.0.2"); }, "both dev= and iface= given");
  expect_error([] { open_packet_io("dpdk:iface=lo"); }, "no address; pass ip=A.B.C.D");
  expect_error([] { open_packet_io("dpdk:iface=lo,ip=127.0.0.1"); }, "127.0.0.1 is an address of this host (on lo)");
  expect_error([] { open_packet_io(R"(dpdk:dev="net_af_packet9,qpairs=1",ip=10.77.0.2)"); }, "names no interface");
  const fastpath::UniqueFd raw(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!raw && errno == EPERM)  // only without CAP_NET_RAW: with it, this would open lo
    expect_error([] { open_packet_io("dpdk:iface=lo,ip=10.77.0.2"); },
                 "no permission for a raw socket on lo: run as root or give CAP_NET_RAW");
}

// ------------------------------------------------------------------ fault injector

// An in-memory link end: packets pushed by the test come out of recv_burst.
class FakeIo final : public PacketIo {
 public:
  std::deque<Bytes> queue;
  std::vector<Bytes> sent;
  bool send(std::span<const std::uint8_t> p) override {
    sent.emplace_back(p.begin(), p.end());
    return true;
  }
  std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) override {
    held_.clear();
    while (!queue.empty() && held_.size() < max) {
      held_.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    for (auto& h : held_) out.push_back({h.data(), h.size()});
    return held_.size();
  }
  int poll_fd() const override { return 42; }
  in_addr local_ip() const override { return addr("10.9.9.9"); }
  int link_mtu() const override { return 1234; }
  std::string describe() const override { return "fake"; }
  int fixed_udp_sport() const override { return 777; }
  std::map<std::string, std::uint64_t> counters() const override { return {{"fake", 5}}; }

 private:
  std::vector<Bytes> held_;
};

// Packet seq: a header, then seq twice and a pattern derived from it, so that
// any one flipped byte shows.
Bytes numbered(std::uint32_t seq) {
  Bytes p(64, 0);
  p[0] = 0x45;
  for (int copy = 0; copy < 2; ++copy) std::memcpy(&p[28 + 4 * copy], &seq, 4);
  for (std::size_t i = 36; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(seq * 31 + i);
  return p;
}

// The seq of an intact numbered packet, or -1 if it was damaged.
std::int64_t seq_of(const std::uint8_t* d, std::size_t len) {
  std::uint32_t seq;
  std::memcpy(&seq, d + 28, 4);
  const Bytes want = numbered(seq);
  return len == want.size() && std::equal(want.begin(), want.end(), d) ? static_cast<std::int64_t>(seq) : -1;
}

struct Faulty {
  FakeIo* fake;
  std::unique_ptr<PacketIo> io;
};

Faulty faulty(const std::string& keys) {
  auto fake = std::make_unique<FakeIo>();
  FakeIo* raw = fake.get();
  return {raw, wrap_fault_io(std::move(fake), IoSpec::parse("udp:" + keys))};
}

// Receives everything, in bursts of at most max, returning copies.
std::vector<Bytes> drain(PacketIo& io, std::size_t max = 32) {
  std::vector<Bytes> got;
  for (int empty = 0; empty < 2;) {
    std::vector<RxPacket> rx;
    const std::size_t n = io.recv_burst(rx, max);
    EXPECT_EQ(n, rx.size());
    EXPECT_LE(n, max);
    for (const auto& p : rx) got.emplace_back(p.data, p.data + p.len);
    empty = n == 0 ? empty + 1 : 0;
  }
  return got;
}

TEST(FaultIo, ForwardsEverythingButReceive) {
  auto f = faulty("drop=0.5,seed=3");
  EXPECT_EQ(f.io->poll_fd(), 42);
  EXPECT_EQ(f.io->link_mtu(), 1234);
  EXPECT_EQ(f.io->fixed_udp_sport(), 777);
  EXPECT_EQ(f.io->local_ip().s_addr, addr("10.9.9.9").s_addr);
  EXPECT_EQ(f.io->describe(), "fault(drop=0.5 dup=0 reorder=0 corrupt=0 seed=3) over fake");
  EXPECT_EQ(f.io->counters().at("fake"), 5u);
  const Bytes p = numbered(1);
  EXPECT_TRUE(f.io->send(p));
  ASSERT_EQ(f.fake->sent.size(), 1u);
  EXPECT_EQ(f.fake->sent[0], p);
}

TEST(FaultIo, EachFaultAlone) {
  {
    auto f = faulty("drop=1");
    for (std::uint32_t i = 0; i < 10; ++i) f.fake->queue.push_back(numbered(i));
    EXPECT_TRUE(drain(*f.io).empty());
    EXPECT_EQ(f.io->counters().at("fault_dropped"), 10u);
  }
  {
    auto f = faulty("dup=1");
    for (std::uint32_t i = 0; i < 10; ++i) f.fake->queue.push_back(numbered(i));
    const auto got = drain(*f.io, 4);  // duplicates never push a burst past max
    ASSERT_EQ(got.size(), 20u);
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(seq_of(got[i].data(), got[i].size()), i / 2);
  }
  {
    auto f = faulty("corrupt=1,seed=9");
    for (std::uint32_t i = 0; i < 200; ++i) f.fake->queue.push_back(numbered(i));
    const auto got = drain(*f.io);
    ASSERT_EQ(got.size(), 200u);
    for (std::uint32_t i = 0; i < 200; ++i) {
      const Bytes want = numbered(i);
      int diffs = 0, first = -1;
      for (std::size_t b = 0; b < want.size(); ++b)
        if (got[i][b] != want[b] && diffs++ == 0) first = static_cast<int>(b);
      EXPECT_EQ(diffs, 1) << "packet " << i;
      EXPECT_GE(first, 20) << "the IPv4 header is left alone";
    }
  }
}

TEST(FaultIo, ReorderHoldsOnePacketBack) {
  auto f = faulty("reorder=1");
  std::vector<RxPacket> rx;
  f.fake->queue.push_back(numbered(1));
  EXPECT_EQ(f.io->recv_burst(rx, 8), 0u);  // held
  f.fake->queue.push_back(numbered(2));
  ASSERT_EQ(f.io->recv_burst(rx, 8), 2u);  // 2 overtakes 1
  EXPECT_EQ(seq_of(rx[0].data, rx[0].len), 2);
  EXPECT_EQ(seq_of(rx[1].data, rx[1].len), 1);
  rx.clear();
  f.fake->queue.push_back(numbered(3));
  EXPECT_EQ(f.io->recv_burst(rx, 8), 0u);  // held
  ASSERT_EQ(f.io->recv_burst(rx, 8), 1u);  // nothing came: released at the empty burst
  EXPECT_EQ(seq_of(rx[0].data, rx[0].len), 3);
  EXPECT_EQ(f.io->counters().at("fault_reordered"), 2u);
}

TEST(FaultIo, StatisticsFollowTheProbabilitiesAndTheSeed) {
  const std::string keys = "drop=0.1,dup=0.05,reorder=0.1,corrupt=0.02,seed=7";
  auto run = [](const std::string& k) {
    auto f = faulty(k);
    std::vector<Bytes> got;
    for (std::uint32_t i = 0; i < 20000; ++i) {
      f.fake->queue.push_back(numbered(i));
      if (i % 16 == 15) {
        std::vector<RxPacket> rx;
        f.io->recv_burst(rx, 32);
        for (const auto& p : rx) got.emplace_back(p.data, p.data + p.len);
      }
    }
    for (auto& p : drain(*f.io)) got.push_back(std::move(p));
    return std::pair{got, f.io->counters()};
  };
  const auto [got, c] = run(keys);
  const double n = 20000, kept = n - c.at("fault_dropped");
  EXPECT_EQ(c.at("fault_received"), 20000u);
  EXPECT_NEAR(c.at("fault_dropped") / n, 0.1, 0.01);
  EXPECT_NEAR(c.at("fault_duplicated") / kept, 0.05, 0.008);
  EXPECT_NEAR(c.at("fault_corrupted") / kept, 0.02, 0.005);
  EXPECT_NEAR(c.at("fault_reordered") / kept, 0.1, 0.015);  // a little under: one at a time
  EXPECT_EQ(c.at("fault_delivered"), kept + c.at("fault_duplicated"));
  EXPECT_EQ(got.size(), c.at("fault_delivered"));

  std::size_t damaged = 0, overtaken = 0;
  std::int64_t highest = -1;
  for (const auto& p : got) {
    const std::int64_t s = seq_of(p.data(), p.size());
    if (s < 0) {
      ++damaged;
      continue;
    }
    overtaken += s < highest;
    highest = std::max(highest, s);
  }
  EXPECT_GE(damaged, c.at("fault_corrupted"));  // a corrupted packet may also be duplicated
  EXPECT_LE(damaged, 2 * c.at("fault_corrupted"));
  EXPECT_NEAR(static_cast<double>(overtaken), static_cast<double>(c.at("fault_reordered")), 0.1 * kept * 0.1);

  EXPECT_EQ(run(keys).first, got) << "same seed, same faults";
  EXPECT_NE(run("drop=0.1,dup=0.05,reorder=0.1,corrupt=0.02,seed=8").first, got);
}

// ------------------------------------------------------------------ udp back-end

// Opens a udp back-end, or explains why the test cannot run here.
std::unique_ptr<PacketIo> open_udp_or_skip(const std::string& ip, std::string& why) {
  try {
    return open_packet_io("udp:ip=" + ip);
  } catch (const std::runtime_error& e) {
    why = e.what();  // e.g. port 4791 taken on every address by an rxe device
    return nullptr;
  }
}

// Polls io until it returns at least one packet (or timeout); true if poll_fd woke.
bool wait_rx(PacketIo& io, std::vector<RxPacket>& rx, std::chrono::milliseconds timeout,
             const std::function<void()>& meanwhile = {}) {
  bool woke = false;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (rx.empty() && std::chrono::steady_clock::now() < end) {
    pollfd pfd{io.poll_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 20) > 0) {
      woke = true;
      io.ack_poll_fd();
    }
    if (meanwhile) meanwhile();
    io.recv_burst(rx, 32);
  }
  return woke;
}

TEST(UdpIo, TwoEndsOnLoopbackExchangeAReconstructedPacket) {
  std::string why;
  auto a = open_udp_or_skip("127.0.77.1", why);
  auto b = a ? open_udp_or_skip("127.0.77.2", why) : nullptr;
  if (!b) GTEST_SKIP() << "cannot bind the test addresses: " << why;
  EXPECT_EQ(a->fixed_udp_sport(), 4791);
  EXPECT_EQ(a->link_mtu(), 1500);
  EXPECT_EQ(a->local_ip().s_addr, addr("127.0.77.1").s_addr);
  EXPECT_EQ(a->describe(), "udp 127.0.77.1:4791 mtu=1500");
  EXPECT_GE(a->poll_fd(), 0);

  const Bytes payload = bytes("RoCE over a socket: BTH, RETH, payload, ICRC");
  ASSERT_TRUE(a->send(make_packet("127.0.77.1", 4791, "127.0.77.2", 4791, payload)));
  std::vector<RxPacket> rx;
  EXPECT_TRUE(wait_rx(*b, rx, std::chrono::seconds(2)));
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "127.0.77.1", 4791, "127.0.77.2", payload);

  // The other way, with a big payload, then a burst larger than max.
  const Bytes big(1400, 0xab);
  ASSERT_TRUE(b->send(make_packet("127.0.77.2", 4791, "127.0.77.1", 4791, big)));
  rx.clear();
  wait_rx(*a, rx, std::chrono::seconds(2));
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "127.0.77.2", 4791, "127.0.77.1", big);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a->send(make_packet("127.0.77.1", 4791, "127.0.77.2", 4791, payload)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  rx.clear();
  EXPECT_EQ(b->recv_burst(rx, 4), 4u);
  EXPECT_EQ(b->recv_burst(rx, 32), 6u);
  EXPECT_EQ(b->recv_burst(rx, 32), 0u);
}

// rxe sends each packet with an IP ID of its own choosing, which a socket
// does not see and the ICRC covers: with ip_id=solve the back-end recovers
// it from the ICRC; without, the packet fails its ICRC check.
TEST(UdpIo, SolvesThePeersIpIdWhenAsked) {
  std::string why;
  auto a = open_udp_or_skip("127.0.77.6,ip_id=solve", why);
  auto b = a ? open_udp_or_skip("127.0.77.7", why) : nullptr;
  if (!b) GTEST_SKIP() << "cannot bind the test addresses: " << why;
  EXPECT_EQ(a->describe(), "udp 127.0.77.6:4791 mtu=1500 ip_id=solve");
  const std::uint8_t data[] = {'r', 'x', 'e'};
  auto rxe_like = [&](const char* src, const char* dst) {
    wire::Packet p;
    p.src_ip = addr(src).s_addr;
    p.dst_ip = addr(dst).s_addr;
    p.src_port = 4791;
    p.ip_id = 0x4242;  // in the ICRC; the kernel puts 0 on the wire
    p.opcode = wire::kSendOnly;
    p.dest_qp = 0x11;
    p.payload = data;
    std::vector<std::uint8_t> out;
    wire::build(p, out);
    return out;
  };
  wire::Packet got;
  ASSERT_TRUE(b->send(rxe_like("127.0.77.7", "127.0.77.6")));
  std::vector<RxPacket> rx;
  wait_rx(*a, rx, std::chrono::seconds(2));
  ASSERT_EQ(rx.size(), 1u);
  const std::span<const std::uint8_t> pa(rx[0].data, rx[0].len);
  EXPECT_EQ(wire::parse(pa, got), wire::ParseError::kBadIcrc) << "ID 0 first";
  ASSERT_TRUE(a->repair_icrc(rx[0]));
  EXPECT_EQ(wire::parse(pa, got), wire::ParseError::kOk);
  EXPECT_EQ(a->counters().at("rx_ip_id_solved"), 1u);

  ASSERT_TRUE(a->send(rxe_like("127.0.77.6", "127.0.77.7")));
  rx.clear();
  wait_rx(*b, rx, std::chrono::seconds(2));
  ASSERT_EQ(rx.size(), 1u);
  EXPECT_FALSE(b->repair_icrc(rx[0])) << "ip_id=zero (the default) trusts ID 0 and keeps the whole ICRC";
}

TEST(UdpIo, BindErrorsNameTheCauseAndTheFix) {
  expect_error([] { open_packet_io("udp:ip=192.0.2.77"); },
               "udp back-end: 192.0.2.77:4791 is not a local address (ip addr show)");
  std::string why;
  auto a = open_udp_or_skip("127.0.77.3", why);
  if (!a) GTEST_SKIP() << why;
  expect_error([] { open_packet_io("udp:ip=127.0.77.3"); }, "udp back-end: 127.0.77.3:4791 is already in use");
}

TEST(UdpIo, MalformedSendsAreRefused) {
  std::string why;
  auto a = open_udp_or_skip("127.0.77.4", why);
  if (!a) GTEST_SKIP() << why;
  Bytes p = make_packet("127.0.77.4", 4791, "127.0.77.4", 4791, bytes("x"));
  EXPECT_FALSE(a->send(std::span(p).first(20)));
  p[9] = 6;  // TCP
  EXPECT_FALSE(a->send(p));
  EXPECT_EQ(a->counters().at("tx_malformed"), 2u);
}

TEST(UdpIo, FaultKeysWrapTheBackEnd) {
  std::string why;
  auto a = open_udp_or_skip("127.0.77.5,drop=0.5,seed=2", why);
  if (!a) GTEST_SKIP() << why;
  EXPECT_EQ(a->describe(), "fault(drop=0.5 dup=0 reorder=0 corrupt=0 seed=2) over udp 127.0.77.5:4791 mtu=1500");
  EXPECT_EQ(a->fixed_udp_sport(), 4791);
}

// ------------------------------------------------------------------ dpdk back-end

// Runs f on a thread that has entered network namespace ns: sockets made there
// stay in ns whichever thread uses them later.
template <class F>
auto in_netns(const std::string& ns, F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task([&] {
    fastpath::UniqueFd fd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::setns(fd.get(), CLONE_NEWNET) != 0)
      throw std::runtime_error("setns " + ns + ": " + std::strerror(errno));
    return f();
  });
  auto result = task.get_future();
  std::thread(std::move(task)).join();
  return result.get();
}

int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// Two namespaces joined by a veth pair: urdma-io-a-PID holds uioaPID with no
// address (the dpdk end), urdma-io-b-PID holds uiobPID with 10.77.0.1/24 and
// 10.77.0.3/24 (the kernel end).  Removed on destruction.
class VethNetns {
 public:
  VethNetns()
      : a_("urdma-io-a-" + std::to_string(getpid())),
        b_("urdma-io-b-" + std::to_string(getpid())),
        va_("uioa" + std::to_string(getpid())),
        vb_("uiob" + std::to_string(getpid())) {
    ok_ = sh("ip netns add " + a_) == 0 && sh("ip netns add " + b_) == 0 &&
          sh("ip link add " + va_ + " netns " + a_ + " type veth peer name " + vb_ + " netns " + b_) == 0 &&
          sh("ip -n " + a_ + " link set " + va_ + " up") == 0 &&
          sh("ip -n " + b_ + " addr add 10.77.0.1/24 dev " + vb_) == 0 &&
          sh("ip -n " + b_ + " addr add 10.77.0.3/24 dev " + vb_) == 0 &&
          sh("ip -n " + b_ + " link set " + vb_ + " up") == 0;
  }
  ~VethNetns() {
    sh("ip netns del " + a_);
    sh("ip netns del " + b_);  // takes the veth pair with it
  }
  bool ok() const { return ok_; }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& va() const { return va_; }
  const std::string& vb() const { return vb_; }
  bool set_mtu(int mtu) const {
    return sh("ip -n " + a_ + " link set " + va_ + " mtu " + std::to_string(mtu)) == 0 &&
           sh("ip -n " + b_ + " link set " + vb_ + " mtu " + std::to_string(mtu)) == 0;
  }

 private:
  std::string a_, b_, va_, vb_;
  bool ok_ = false;
};

std::string dpdk_skip_reason() {
  if (geteuid() != 0) return "needs root (network namespaces, AF_PACKET)";
  if (sh("ip -V") != 0) return "needs the ip command (iproute2)";
  return "";
}

TEST(DpdkIo, TalksToTheKernelOverVeth) {
  if (const auto why = dpdk_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  VethNetns net;
  ASSERT_TRUE(net.ok()) << "could not create the namespaces and veth pair";
  auto peer = in_netns(net.b(), [] { return open_packet_io("udp:ip=10.77.0.1"); });
  auto dpdk = in_netns(net.a(), [&] {
    // The EAL pins the thread that starts it; the caller's affinity must survive.
    cpu_set_t before, after;
    pthread_getaffinity_np(pthread_self(), sizeof before, &before);
    auto io = open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2");
    pthread_getaffinity_np(pthread_self(), sizeof after, &after);
    EXPECT_TRUE(CPU_EQUAL(&before, &after)) << "CPUs before " << CPU_COUNT(&before) << ", after " << CPU_COUNT(&after);
    return io;
  });
  EXPECT_EQ(dpdk->describe().rfind("dpdk net_af_packet", 0), 0u) << dpdk->describe();
  EXPECT_NE(dpdk->describe().find("iface=" + net.va() + " mac="), std::string::npos) << dpdk->describe();
  EXPECT_NE(dpdk->describe().find(" ip=10.77.0.2 mtu=1500"), std::string::npos) << dpdk->describe();
  EXPECT_EQ(dpdk->fixed_udp_sport(), 0);
  ASSERT_GE(dpdk->poll_fd(), 0);

  // Kernel -> dpdk: the kernel must resolve 10.77.0.2 by ARP first.  What
  // arrives is the header the kernel built: it shows that an unconnected DF
  // socket sends IP ID 0.
  const Bytes hello = bytes("hello from the kernel side");
  ASSERT_TRUE(peer->send(make_packet("10.77.0.1", 4791, "10.77.0.2", 4791, hello)));
  std::vector<RxPacket> rx;
  EXPECT_TRUE(wait_rx(*dpdk, rx, std::chrono::seconds(3))) << "poll_fd never became readable";
  ASSERT_EQ(rx.size(), 1u) << "nothing received; counters: arp_replies_sent="
                           << dpdk->counters().at("arp_replies_sent");
  expect_header(rx[0], "10.77.0.1", 4791, "10.77.0.2", hello);
  EXPECT_GE(dpdk->counters().at("arp_replies_sent"), 1u);

  // Traffic for another port is not RoCE: it neither wakes the engine (the
  // kernel filter on poll_fd) nor comes out of recv_burst.
  dpdk->ack_poll_fd();
  const auto other_before = dpdk->counters().at("rx_other");
  ASSERT_TRUE(peer->send(make_packet("10.77.0.1", 4791, "10.77.0.2", 9999, hello)));
  pollfd pfd{dpdk->poll_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 200), 0) << "woken by a datagram for port 9999";
  rx.clear();
  EXPECT_EQ(dpdk->recv_burst(rx, 32), 0u);
  EXPECT_GE(dpdk->counters().at("rx_other"), other_before + 1);

  // dpdk -> kernel: the peer's MAC was learned from its ARP request.
  const Bytes back = bytes("and back from dpdk");
  ASSERT_TRUE(dpdk->send(make_packet("10.77.0.2", 49152, "10.77.0.1", 4791, back)));
  dpdk->flush();  // the DPDK back-end sends in bursts, at the end of an engine pass
  rx.clear();
  wait_rx(*peer, rx, std::chrono::seconds(3));
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "10.77.0.2", 49152, "10.77.0.1", back);
  EXPECT_EQ(dpdk->counters().at("arp_requests_sent"), 0u);

  // dpdk -> an address it never heard from: queued, ARP request, sent on the reply.
  auto peer3 = in_netns(net.b(), [] { return open_packet_io("udp:ip=10.77.0.3"); });
  const Bytes queued = bytes("waited for ARP");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(dpdk->send(make_packet("10.77.0.2", 49153, "10.77.0.3", 4791, queued)));
  EXPECT_EQ(dpdk->counters().at("tx_queued_unresolved"), 3u);
  EXPECT_EQ(dpdk->counters().at("arp_requests_sent"), 1u) << "one request per 100 ms";
  rx.clear();
  std::vector<RxPacket> dpdk_rx;
  wait_rx(*peer3, rx, std::chrono::seconds(3), [&] { dpdk->recv_burst(dpdk_rx, 32); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  peer3->recv_burst(rx, 32);
  ASSERT_EQ(rx.size(), 3u);
  for (const auto& p : rx) expect_header(p, "10.77.0.2", 49153, "10.77.0.3", queued);
  EXPECT_EQ(dpdk->counters().at("rx_bad_ip_checksum"), 0u);

  // Nobody answers for 10.77.0.99: 256 packets (two windows) wait, the rest
  // are refused, and ARP requests stay rate-limited.
  const auto requests = dpdk->counters().at("arp_requests_sent");
  int accepted = 0;
  for (int i = 0; i < 260; ++i) accepted += dpdk->send(make_packet("10.77.0.2", 49154, "10.77.0.99", 4791, queued));
  EXPECT_EQ(accepted, 256);
  EXPECT_EQ(dpdk->counters().at("tx_dropped_unresolved"), 4u);
  EXPECT_EQ(dpdk->counters().at("arp_requests_sent"), requests + 1);

  // resolve(): the transport announces a peer before sending; one ARP
  // request goes out at once, within the same rate limit.
  const std::uint32_t ip4 = inet_addr("10.77.0.4");
  dpdk->resolve(ip4);
  dpdk->flush();
  EXPECT_EQ(dpdk->counters().at("arp_requests_sent"), requests + 2);
  dpdk->resolve(ip4);
  EXPECT_EQ(dpdk->counters().at("arp_requests_sent"), requests + 2) << "one request per 100 ms";
}

// A raw socket on the kernel end of the veth: sends hand-made frames.
struct RawPort {
  fastpath::UniqueFd fd;
  sockaddr_ll to{};
};

RawPort raw_port(const std::string& ns, const std::string& iface) {
  return in_netns(ns, [&] {
    RawPort r{fastpath::UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0))};
    r.to.sll_family = AF_PACKET;
    r.to.sll_ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    r.to.sll_halen = 6;
    return r;
  });
}

void send_frame(const RawPort& r, const std::uint8_t* dst_mac, const Bytes& ip, std::size_t pad_to = 0) {
  Bytes f(14);
  std::memcpy(f.data(), dst_mac, 6);
  const std::uint8_t src[6] = {0x02, 0, 0, 0, 0x77, 0x01};
  std::memcpy(f.data() + 6, src, 6);
  put16(&f[12], 0x0800);
  f.insert(f.end(), ip.begin(), ip.end());
  if (f.size() < pad_to) f.resize(pad_to, 0xee);
  ASSERT_EQ(::sendto(r.fd.get(), f.data(), f.size(), 0, reinterpret_cast<const sockaddr*>(&r.to), sizeof r.to),
            static_cast<ssize_t>(f.size()))
      << std::strerror(errno);
}

Bytes mac_of(const PacketIo& io) {  // from describe(): "... mac=aa:bb:cc:dd:ee:ff ..."
  const std::string d = io.describe();
  const std::size_t at = d.find("mac=");
  Bytes mac(6);
  for (int i = 0; i < 6 && at != std::string::npos; ++i)
    mac[i] = static_cast<std::uint8_t>(std::stoi(d.substr(at + 4 + 3 * i, 2), nullptr, 16));
  return mac;
}

TEST(DpdkIo, DropsWhatRxeWouldNotAccept) {
  if (const auto why = dpdk_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  VethNetns net;
  ASSERT_TRUE(net.ok()) << "could not create the namespaces and veth pair";
  auto dpdk = in_netns(net.a(), [&] { return open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2"); });
  const RawPort raw = raw_port(net.b(), net.vb());
  ASSERT_TRUE(raw.fd);
  const Bytes mac = mac_of(*dpdk);
  const Bytes tiny = bytes("ok");
  const Bytes good = make_packet("10.77.0.50", 4791, "10.77.0.2", 4791, tiny);
  send_frame(raw, mac.data(), good, 60);  // Ethernet padding must not reach the transport

  Bytes options = make_packet("10.77.0.50", 4791, "10.77.0.2", 4791, tiny);
  options.insert(options.begin() + 20, {1, 1, 1, 0});  // NOP NOP NOP EOL
  options[0] = 0x46;
  put16(&options[2], static_cast<std::uint16_t>(options.size()));
  put16(&options[10], 0);
  put16(&options[10], static_cast<std::uint16_t>(~fold_sum(options.data(), 24)));
  send_frame(raw, mac.data(), options);

  Bytes bad_sum = good;
  bad_sum[10] ^= 0x55;
  send_frame(raw, mac.data(), bad_sum);

  // A first fragment: never delivered.  (af_packet's fanout asks the kernel
  // to reassemble, so this PMD does not even see it; other ports count it.)
  Bytes fragment = good;
  put16(&fragment[6], 0x2000);  // MF
  put16(&fragment[10], 0);
  put16(&fragment[10], static_cast<std::uint16_t>(~fold_sum(fragment.data(), 20)));
  send_frame(raw, mac.data(), fragment);

  std::vector<RxPacket> rx;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < end) {
    dpdk->recv_burst(rx, 32);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "10.77.0.50", 4791, "10.77.0.2", tiny);
  const auto c = dpdk->counters();
  EXPECT_EQ(c.at("rx_ip_options"), 1u);
  EXPECT_EQ(c.at("rx_bad_ip_checksum"), 1u);
}

TEST(DpdkIo, RefusesAnAddressTheHostOwnsAndReopens) {
  if (const auto why = dpdk_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  VethNetns net;
  ASSERT_TRUE(net.ok()) << "could not create the namespaces and veth pair";
  ASSERT_EQ(sh("ip -n " + net.a() + " addr add 10.77.0.9/24 dev " + net.va()), 0);
  in_netns(net.a(), [&] {
    expect_error([&] { open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.9"); },
                 "10.77.0.9 is an address of this host (on " + net.va() + ")");
    expect_error([&] { open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2,mtu=9000"); },
                 "has MTU 1500, below mtu=9000; raise it (ip link set " + net.va() + " mtu 9000");
  });
  // One port per interface per process.
  in_netns(net.a(), [&] {
    auto first = open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2");
    expect_error([&] { open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.4"); },
                 "interface " + net.va() + " is already used by another urdma device in this process");
  });
  // Hot-plug and unplug repeatedly: each instance detaches its device.
  for (int i = 0; i < 3; ++i) {
    auto io = in_netns(net.a(), [&] { return open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2"); });
    ASSERT_NE(io, nullptr);
    std::vector<RxPacket> rx;
    io->recv_burst(rx, 32);
  }
}

// DPDK's af_packet PMD joins a PACKET_FANOUT group numbered pid ^ ifindex;
// the kernel refuses a group id that another interface of the namespace uses
// (two urdma processes on a veth pair's ends in one namespace hit it by chance).
// Take that id on lo first: the port must still attach and work.
TEST(DpdkIo, AttachesWhenItsFanoutGroupIdIsTakenOnAnotherInterface) {
  if (const auto why = dpdk_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  VethNetns net;
  ASSERT_TRUE(net.ok()) << "could not create the namespaces and veth pair";
  ASSERT_EQ(sh("ip -n " + net.a() + " link set lo up"), 0);
  fastpath::UniqueFd squatter = in_netns(net.a(), [&] {
    fastpath::UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = htons(ETH_P_ALL);
    at.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    if (!fd || ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) return fastpath::UniqueFd();
    const int id = (getpid() ^ static_cast<int>(if_nametoindex(net.va().c_str()))) & 0xffff;
    const int arg = id | (PACKET_FANOUT_HASH << 16);
    // the system call itself: liburdma's setsockopt() would pick another id
    if (::syscall(SYS_setsockopt, fd.get(), SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
      return fastpath::UniqueFd();
    return fd;
  });
  ASSERT_TRUE(squatter) << "could not take the fanout group id on lo: " << std::strerror(errno);
  auto dpdk = in_netns(net.a(), [&] { return open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2"); });
  auto peer = in_netns(net.b(), [] { return open_packet_io("udp:ip=10.77.0.1"); });
  const Bytes hello = bytes("through a renumbered fanout group");
  ASSERT_TRUE(peer->send(make_packet("10.77.0.1", 4791, "10.77.0.2", 4791, hello)));
  std::vector<RxPacket> rx;
  wait_rx(*dpdk, rx, std::chrono::seconds(3));
  ASSERT_EQ(rx.size(), 1u) << "nothing arrived through the port";
  expect_header(rx[0], "10.77.0.1", 4791, "10.77.0.2", hello);
}

// Any port by its device arguments; one without an interface has no poll_fd.
TEST(DpdkIo, AnyPortByDevargs) {
  std::unique_ptr<PacketIo> io;
  try {
    io = open_packet_io("dpdk:dev=net_null0,ip=10.77.0.5");
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << "no EAL here: " << e.what();
  }
  EXPECT_EQ(io->poll_fd(), -1);
  EXPECT_EQ(io->describe().rfind("dpdk net_null0 mac=", 0), 0u) << io->describe();
  io->ack_poll_fd();  // harmless without a descriptor
  EXPECT_TRUE(io->send(make_packet("10.77.0.5", 49152, "10.77.0.6", 4791, bytes("x"))));
  EXPECT_EQ(io->counters().at("arp_requests_sent"), 1u);
  std::vector<RxPacket> rx;
  EXPECT_EQ(io->recv_burst(rx, 32), 0u);  // net_null makes up frames of zeros: not ours
  EXPECT_GT(io->counters().at("rx_other"), 0u);
}

TEST(DpdkIo, JumboFramesBothWays) {
  if (const auto why = dpdk_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  VethNetns net;
  ASSERT_TRUE(net.ok() && net.set_mtu(9000)) << "could not create the namespaces and veth pair";
  // The af_packet slots (framesz) and the mbufs must grow with mtu, or the
  // PMD drops what it sends and truncates what it receives.
  auto peer = in_netns(net.b(), [] { return open_packet_io("udp:ip=10.77.0.1,mtu=9000"); });
  auto dpdk = in_netns(net.a(), [&] { return open_packet_io("dpdk:iface=" + net.va() + ",ip=10.77.0.2,mtu=9000"); });
  EXPECT_EQ(dpdk->link_mtu(), 9000);
  Bytes big(9000 - 28);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  ASSERT_TRUE(peer->send(make_packet("10.77.0.1", 4791, "10.77.0.2", 4791, big)));
  std::vector<RxPacket> rx;
  wait_rx(*dpdk, rx, std::chrono::seconds(3));
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "10.77.0.1", 4791, "10.77.0.2", big);
  std::reverse(big.begin(), big.end());
  ASSERT_TRUE(dpdk->send(make_packet("10.77.0.2", 49152, "10.77.0.1", 4791, big)));
  dpdk->flush();
  rx.clear();
  wait_rx(*peer, rx, std::chrono::seconds(3));
  ASSERT_EQ(rx.size(), 1u);
  expect_header(rx[0], "10.77.0.2", 49152, "10.77.0.1", big);
}

}  // namespace
}  // namespace urdma
