// SPDX-License-Identifier: GPL-2.0
// RoCEv2 wire format: byte-exact vectors, ICRC masking, PSN arithmetic, and a
// seeded fuzzer over the parser.
#include "wire.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace urdma::wire {
namespace {

std::vector<std::uint8_t> from_hex(const std::string& h) {
  std::vector<std::uint8_t> v;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    v.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return v;
}

std::uint32_t ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

// Written independently with Python's zlib from the formula in the reference
// sheet (crc32 over 8 x 0xff + masked IPv4/UDP/BTH + rest, stored little-endian).
const char* kSendOnlyHello =
    "4500003412344000401114830a0000010a000002c0de12b7002000000430ffff000000118012345668656c6c6f0000004550c285";

TEST(Wire, BuildsTheReferenceSendOnlyByteForByte) {
  const std::uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
  Packet p;
  p.src_ip = ip("10.0.0.1");
  p.dst_ip = ip("10.0.0.2");
  p.src_port = 0xc0de;
  p.ip_id = 0x1234;
  p.opcode = kSendOnly;
  p.dest_qp = 0x11;
  p.psn = 0x123456;
  p.ack_req = true;
  p.payload = hello;
  std::vector<std::uint8_t> out;
  build(p, out);
  EXPECT_EQ(out, from_hex(kSendOnlyHello));
}

TEST(Wire, ParsesTheReferenceAndRejectsAnyFlippedBit) {
  const auto pkt = from_hex(kSendOnlyHello);
  Packet p;
  ASSERT_EQ(parse(pkt, p), ParseError::kOk);
  EXPECT_EQ(p.opcode, kSendOnly);
  EXPECT_EQ(p.dest_qp, 0x11u);
  EXPECT_EQ(p.psn, 0x123456u);
  EXPECT_TRUE(p.ack_req);
  EXPECT_EQ(p.pad, 3);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "hello");
  // Every covered bit matters; the masked fields do not.
  for (std::size_t i = 0; i < pkt.size(); ++i) {
    auto bad = pkt;
    bad[i] ^= 0x01;
    Packet q;
    const ParseError e = parse(bad, q);
    const bool masked = i == 1 || i == 8 || i == 26 || i == 27 || i == 32;
    if (i == 8 || i == 10 || i == 11 || i == 1) {
      // tos/ttl are masked from the ICRC but the IPv4 header checksum catches them.
      EXPECT_NE(e, ParseError::kOk) << "byte " << i;
    } else if (masked) {
      EXPECT_EQ(e, ParseError::kOk) << "masked byte " << i;
    } else {
      EXPECT_NE(e, ParseError::kOk) << "byte " << i;
    }
  }
}

TEST(Wire, RoundTripsEveryOpcode) {
  const std::uint8_t data[300] = {1, 2, 3};
  std::vector<int> ops;
  for (int op = 0; op <= kFetchAdd; ++op) ops.push_back(op);
  ops.push_back(kNicOpRequest);
  ops.push_back(kNicOpResponse);
  for (int op : ops) {
    const OpInfo& info = op_info(static_cast<std::uint8_t>(op));
    ASSERT_TRUE(info.known) << op;
    Packet p;
    p.src_ip = ip("192.0.2.1");
    p.dst_ip = ip("192.0.2.2");
    p.src_port = udp_sport(0x11, 0x12);
    p.opcode = static_cast<std::uint8_t>(op);
    p.dest_qp = 0xabcdef;
    p.psn = 0xfffffe;
    p.va = 0x1122334455667788ULL;
    p.rkey = 0xdeadbeef;
    p.dma_len = 4096;
    p.syndrome = kNakRemoteAccess;
    p.msn = 77;
    p.swap_add = 5;
    p.compare = 6;
    p.orig = 7;
    p.imm = htonl(99);
    p.op_id = 3;
    p.arg0 = 11;
    p.arg1 = 12;
    p.nicop_status = 13;
    if (info.payload) p.payload = std::span<const std::uint8_t>(data, 1 + op * 10);
    std::vector<std::uint8_t> out;
    build(p, out);
    Packet q;
    ASSERT_EQ(parse(out, q), ParseError::kOk) << info.name;
    EXPECT_EQ(q.opcode, op);
    EXPECT_EQ(q.dest_qp, p.dest_qp);
    EXPECT_EQ(q.psn, p.psn);
    EXPECT_EQ(q.payload.size(), info.payload ? p.payload.size() : 0u) << info.name;
    if (info.reth) {
      EXPECT_EQ(q.va, p.va);
      EXPECT_EQ(q.rkey, p.rkey);
      EXPECT_EQ(q.dma_len, p.dma_len);
    }
    if (info.atomic_eth) {
      EXPECT_EQ(q.swap_add, 5u);
      EXPECT_EQ(q.compare, 6u);
    }
    if (info.aeth) {
      EXPECT_EQ(q.syndrome, kNakRemoteAccess);
      EXPECT_EQ(q.msn, 77u);
    }
    if (info.atomic_ack) {
      EXPECT_EQ(q.orig, 7u);
    }
    if (info.imm) {
      EXPECT_EQ(ntohl(q.imm), 99u);
    }
    if (info.nicop_eth) {
      EXPECT_EQ(q.va, p.va);
      EXPECT_EQ(q.rkey, p.rkey);
      EXPECT_EQ(q.dma_len, p.dma_len);
      EXPECT_EQ(q.op_id, 3u);
      EXPECT_EQ(q.arg0, 11u);
      EXPECT_EQ(q.arg1, 12u);
    }
    if (info.nicop_ack) {
      EXPECT_EQ(q.orig, 7u);
      EXPECT_EQ(q.nicop_status, 13u);
    }
  }
}

TEST(Wire, DropsWhatRxeDrops) {
  const auto good = from_hex(kSendOnlyHello);
  Packet p;
  // Unknown opcodes: reserved 0x15, the manufacturer-specific range, UD.
  for (std::uint8_t op : {0x15, 0x18, 0xc2, 0xff, 0x64}) {
    auto bad = good;
    bad[28] = op;
    EXPECT_EQ(parse(bad, p), ParseError::kUnknownOpcode) << int(op);
  }
  EXPECT_EQ(parse(std::span(good).first(good.size() - 1), p), ParseError::kTruncated);
  EXPECT_EQ(parse(std::span(good).first(30), p), ParseError::kTruncated);
  auto opts = good;
  opts[0] = 0x46;
  EXPECT_EQ(parse(opts, p), ParseError::kIpOptions);
  auto port = good;
  port[23] ^= 1;
  EXPECT_EQ(parse(port, p), ParseError::kNotRoce);
}

// A UDP socket cannot see the IP ID that rxe's kernel chose; the ICRC
// covers it.  The ID is recovered from the ICRC for any packet length, and a
// packet damaged elsewhere is not taken for one with another ID.
TEST(Wire, SolvesTheIpIdTheIcrcCovers) {
  std::mt19937_64 rng(5);
  std::vector<std::uint8_t> payload(4096);
  for (auto& b : payload) b = static_cast<std::uint8_t>(rng());
  int rejected = 0, cases = 0;
  for (const std::size_t len : {0u, 1u, 2u, 255u, 1024u, 4096u}) {
    for (int k = 0; k < 8; ++k) {
      Packet p;
      p.src_ip = ip("10.0.0.1");
      p.dst_ip = ip("10.0.0.2");
      p.src_port = 4791;
      p.ip_id = static_cast<std::uint16_t>(rng());
      p.opcode = len ? kSendOnly : kAck;
      p.dest_qp = 0x11;
      p.psn = static_cast<std::uint32_t>(rng() & kPsnMask);
      p.payload = std::span<const std::uint8_t>(payload.data(), len);
      std::vector<std::uint8_t> out;
      build(p, out);
      // What a UDP socket sees: everything but the ID (the back-end writes 0).
      std::vector<std::uint8_t> seen = out;
      seen[4] = seen[5] = 0;
      EXPECT_EQ(solve_ip_id(seen), p.ip_id) << "length " << len;
      EXPECT_EQ(solve_ip_id(out), p.ip_id) << "an ID that already checks is kept";
      // Damage one bit outside the ID (and outside the fields the ICRC masks).
      std::vector<std::uint8_t> bad = seen;
      const std::size_t at = 28 + rng() % (bad.size() - 28 - 4);  // BTH onwards, before the ICRC
      bad[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
      if (at != 28 + 4) {  // BTH resv8a is masked
        ++cases;
        rejected += !solve_ip_id(bad).has_value();
      }
    }
  }
  // A damaged packet passes with probability 2^-16 each: all of these fail.
  EXPECT_EQ(rejected, cases);
}

// Packets the kernel's rxe sent on the wire (tests/data/capture-rxe.sh, in
// the VM): each one parses with its ICRC checked, and building it again from
// what was parsed gives the same bytes.
TEST(Wire, RxesOwnPacketsParseAndRebuildByteForByte) {
  std::ifstream in(std::string(URDMA_TEST_DATA) + "/rxe-packets.txt");
  ASSERT_TRUE(in) << URDMA_TEST_DATA "/rxe-packets.txt is missing (tests/data/capture-rxe.sh makes it)";
  std::set<int> opcodes;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    ++n;
    const auto pkt = from_hex(line);
    Packet p;
    ASSERT_EQ(parse(pkt, p), ParseError::kOk) << "packet " << n << ": " << line.substr(0, 120);
    opcodes.insert(p.opcode);
    std::vector<std::uint8_t> out;
    build(p, out);
    EXPECT_EQ(out, pkt) << "packet " << n << " (opcode " << int(p.opcode) << ") rebuilt differently";
    std::vector<std::uint8_t> bad = pkt;
    bad[bad.size() / 2] ^= 0x10;  // in the payload or an extension header
    EXPECT_NE(parse(bad, p), ParseError::kOk) << "packet " << n << " with a flipped bit";
  }
  // SEND first/only, WRITE first/middle/last, READ request and responses,
  // atomics and their ACKs, plain ACKs.
  for (const int op : {kSendOnly, kWriteFirst, kWriteMiddle, kWriteLast, kReadRequest, kReadRespFirst, kReadRespMiddle,
                       kReadRespLast, kCompareSwap, kFetchAdd, kAtomicAck, kAck})
    EXPECT_TRUE(opcodes.count(op)) << "no packet with opcode " << op << " in the capture";
}

TEST(Wire, UdpSourcePortAsRxe) {
  // rdma_get_udp_sport(0, lqpn, rqpn): always in 0xC000..0xFFFF.
  EXPECT_EQ(udp_sport(0x11, 0x11) & 0xc000, 0xc000);
  EXPECT_EQ(udp_sport(0x11, 0x12), udp_sport(0x12, 0x11));  // symmetric
}

TEST(Psn, ArithmeticAcrossTheWrap) {
  EXPECT_EQ(psn_add(0xffffff, 1), 0u);
  EXPECT_EQ(psn_add(0, -1), 0xffffffu);
  EXPECT_TRUE(psn_lt(0xfffff0, 0x10));
  EXPECT_FALSE(psn_lt(0x10, 0xfffff0));
  EXPECT_EQ(psn_diff(0x5, 0xfffffe), 7);
  EXPECT_EQ(psn_diff(0xfffffe, 0x5), -7);
  EXPECT_TRUE(psn_le(7, 7));
  EXPECT_EQ(psn_diff(0x7fffff, 0), 0x7fffff);
}

// Seeded fuzzer: mutations of valid packets and random bytes never crash the
// parser, and whatever it accepts is self-consistent.
TEST(Wire, FuzzParser) {
  std::mt19937_64 rng(12345);
  std::vector<std::vector<std::uint8_t>> seeds;
  const std::uint8_t data[2048] = {};
  for (int op = 0; op <= kFetchAdd; ++op) {
    Packet p;
    p.src_ip = ip("10.1.0.1");
    p.dst_ip = ip("10.1.0.2");
    p.opcode = static_cast<std::uint8_t>(op);
    if (op_info(p.opcode).payload) p.payload = std::span<const std::uint8_t>(data, rng() % 1100);
    std::vector<std::uint8_t> out;
    build(p, out);
    seeds.push_back(out);
  }
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    std::vector<std::uint8_t> pkt = seeds[rng() % seeds.size()];
    switch (rng() % 4) {
      case 0:  // flip bytes
        for (int k = 1 + rng() % 4; k > 0; --k) pkt[rng() % pkt.size()] = static_cast<std::uint8_t>(rng());
        break;
      case 1:  // truncate or extend
        pkt.resize(rng() % (pkt.size() + 64), static_cast<std::uint8_t>(rng()));
        break;
      case 2:  // random bytes
        pkt.resize(rng() % 200);
        for (auto& b : pkt) b = static_cast<std::uint8_t>(rng());
        break;
      default: {  // valid ICRC over mutated headers: reaches the deeper checks
        for (int k = 1 + rng() % 3; k > 0; --k) pkt[20 + rng() % (pkt.size() - 24)] = static_cast<std::uint8_t>(rng());
        const std::uint32_t c = htole32(icrc(std::span(pkt).first(pkt.size() - 4)));
        std::memcpy(pkt.data() + pkt.size() - 4, &c, 4);
      }
    }
    Packet p;
    if (parse(pkt, p) == ParseError::kOk) {
      ++accepted;
      ASSERT_TRUE(op_info(p.opcode).known);
      ASSERT_GE(p.payload.data(), pkt.data());
      ASSERT_LE(p.payload.data() + p.payload.size(), pkt.data() + pkt.size());
    }
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace urdma::wire
