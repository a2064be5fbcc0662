// SPDX-License-Identifier: GPL-2.0
#include "wire.h"

#include <zlib.h>

#include <endian.h>
#include <array>
#include <cstdio>
#include <cstring>

namespace urdma::wire {
namespace {

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t get24(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 16 | std::uint32_t{p[1]} << 8 | p[2];
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{get16(p)} << 16 | get16(p + 2);
}
std::uint64_t get64(const std::uint8_t* p) {
  return std::uint64_t{get32(p)} << 32 | get32(p + 4);
}
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put24(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 16);
  put16(p + 1, static_cast<std::uint16_t>(v));
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}
void put64(std::uint8_t* p, std::uint64_t v) {
  put32(p, static_cast<std::uint32_t>(v >> 32));
  put32(p + 4, static_cast<std::uint32_t>(v));
}

std::array<OpInfo, 256> make_table() {
  std::array<OpInfo, 256> t{};
  auto set = [&](std::uint8_t op, const char* name, bool request, bool first, bool last) -> OpInfo& {
    OpInfo& i = t[op];
    i.known = true;
    i.name = name;
    i.request = request;
    i.first = first;
    i.last = last;
    return i;
  };
  set(kSendFirst, "SEND_FIRST", true, true, false).payload = true;
  set(kSendMiddle, "SEND_MIDDLE", true, false, false).payload = true;
  set(kSendLast, "SEND_LAST", true, false, true).payload = true;
  {
    auto& i = set(kSendLastImm, "SEND_LAST_WITH_IMMEDIATE", true, false, true);
    i.payload = i.imm = true;
  }
  set(kSendOnly, "SEND_ONLY", true, true, true).payload = true;
  {
    auto& i = set(kSendOnlyImm, "SEND_ONLY_WITH_IMMEDIATE", true, true, true);
    i.payload = i.imm = true;
  }
  {
    auto& i = set(kWriteFirst, "RDMA_WRITE_FIRST", true, true, false);
    i.payload = i.reth = true;
  }
  set(kWriteMiddle, "RDMA_WRITE_MIDDLE", true, false, false).payload = true;
  set(kWriteLast, "RDMA_WRITE_LAST", true, false, true).payload = true;
  {
    auto& i = set(kWriteLastImm, "RDMA_WRITE_LAST_WITH_IMMEDIATE", true, false, true);
    i.payload = i.imm = true;
  }
  {
    auto& i = set(kWriteOnly, "RDMA_WRITE_ONLY", true, true, true);
    i.payload = i.reth = true;
  }
  {
    auto& i = set(kWriteOnlyImm, "RDMA_WRITE_ONLY_WITH_IMMEDIATE", true, true, true);
    i.payload = i.reth = i.imm = true;
  }
  set(kReadRequest, "RDMA_READ_REQUEST", true, true, true).reth = true;
  {
    auto& i = set(kReadRespFirst, "RDMA_READ_RESPONSE_FIRST", false, true, false);
    i.payload = i.aeth = true;
  }
  set(kReadRespMiddle, "RDMA_READ_RESPONSE_MIDDLE", false, false, false).payload = true;
  {
    auto& i = set(kReadRespLast, "RDMA_READ_RESPONSE_LAST", false, false, true);
    i.payload = i.aeth = true;
  }
  {
    auto& i = set(kReadRespOnly, "RDMA_READ_RESPONSE_ONLY", false, true, true);
    i.payload = i.aeth = true;
  }
  set(kAck, "ACKNOWLEDGE", false, true, true).aeth = true;
  {
    auto& i = set(kAtomicAck, "ATOMIC_ACKNOWLEDGE", false, true, true);
    i.aeth = i.atomic_ack = true;
  }
  set(kCompareSwap, "COMPARE_SWAP", true, true, true).atomic_eth = true;
  set(kFetchAdd, "FETCH_ADD", true, true, true).atomic_eth = true;
  set(kNicOpRequest, "URDMA_NICOP_REQUEST", true, true, true).nicop_eth = true;
  {
    auto& i = set(kNicOpResponse, "URDMA_NICOP_RESPONSE", false, true, true);
    i.aeth = i.nicop_ack = true;
  }
  return t;
}

const std::array<OpInfo, 256> kTable = make_table();

}  // namespace

const OpInfo& op_info(std::uint8_t opcode) {
  return kTable[opcode];
}

std::size_t ext_len(std::uint8_t opcode) {
  const OpInfo& i = kTable[opcode];
  return (i.reth ? kReth : 0) + (i.aeth ? kAeth : 0) + (i.atomic_eth ? kAtomicEth : 0) +
         (i.atomic_ack ? kAtomicAckEth : 0) + (i.imm ? kImmDt : 0) + (i.nicop_eth ? kNicOpEth : 0) +
         (i.nicop_ack ? kNicOpAckEth : 0);
}

const char* parse_error_str(ParseError e) {
  switch (e) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kTruncated:
      return "truncated";
    case ParseError::kNotIpv4Udp:
      return "not IPv4/UDP";
    case ParseError::kIpOptions:
      return "IPv4 options (unsupported, as in rxe)";
    case ParseError::kBadIpChecksum:
      return "bad IPv4 header checksum";
    case ParseError::kNotRoce:
      return "not UDP port 4791";
    case ParseError::kBadLength:
      return "length inconsistent with headers";
    case ParseError::kUnknownOpcode:
      return "unknown opcode";
    case ParseError::kBadVersion:
      return "BTH transport version not 0";
    case ParseError::kBadIcrc:
      return "bad ICRC";
  }
  return "?";
}

std::uint16_t ip_checksum(const std::uint8_t* hdr, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += get16(hdr + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

std::uint16_t udp_sport(std::uint32_t lqpn, std::uint32_t rqpn) {
  std::uint64_t v = std::uint64_t{lqpn} * rqpn;
  v ^= v >> 20;
  v ^= v >> 40;
  const std::uint32_t fl = static_cast<std::uint32_t>(v & 0xfffff);
  return static_cast<std::uint16_t>(0xc000 | ((fl & 0x3fff) ^ ((fl & 0xfc000) >> 14)));
}

std::uint32_t icrc(std::span<const std::uint8_t> pkt) {
  // The masked pseudo-LRH (8 x 0xff), then IPv4 + UDP + BTH with the variant
  // fields set to all ones, then the rest unmasked.
  constexpr std::size_t kMasked = kIpHdr + kUdpHdr + kBth;
  std::array<std::uint8_t, 8 + kMasked> head;
  std::memset(head.data(), 0xff, 8);
  std::memcpy(head.data() + 8, pkt.data(), kMasked);
  std::uint8_t* ip = head.data() + 8;
  ip[1] = 0xff;                            // tos
  ip[8] = 0xff;                            // ttl
  ip[10] = ip[11] = 0xff;                  // header checksum
  ip[kIpHdr + 6] = ip[kIpHdr + 7] = 0xff;  // UDP checksum
  ip[kIpHdr + kUdpHdr + 4] = 0xff;         // BTH resv8a (FECN/BECN)
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, head.data(), static_cast<uInt>(head.size()));
  crc = crc32(crc, pkt.data() + kMasked, static_cast<uInt>(pkt.size() - kMasked));
  return static_cast<std::uint32_t>(crc);
}

std::optional<std::uint16_t> solve_ip_id(std::span<const std::uint8_t> pkt) {
  if (pkt.size() < kIpHdr + kUdpHdr + kBth + kIcrc) return std::nullopt;
  const std::size_t total = get16(pkt.data() + 2);
  if (total > pkt.size() || total < kIpHdr + kUdpHdr + kBth + kIcrc) return std::nullopt;
  std::uint32_t got;
  std::memcpy(&got, pkt.data() + total - kIcrc, 4);
  const std::uint16_t id0 = get16(pkt.data() + 4);
  const std::uint32_t d = le32toh(got) ^ icrc(pkt.first(total - kIcrc));
  if (d == 0) return id0;
  // The CRC runs over 8 bytes of 0xff, then the packet without its ICRC; the
  // ID is at bytes 12-13 of that stream.  Flipping ID bit b changes the CRC
  // by delta[b], the CRC difference of the 14-byte prefixes carried through
  // the n bytes that follow (multiplication by x^(8n) mod P, zlib's combine).
  constexpr std::size_t kPrefix = 8 + 6;
  const std::size_t n = 8 + total - kIcrc - kPrefix;
  const uLong op = crc32_combine_gen(static_cast<z_off_t>(n));
  std::array<std::uint8_t, kPrefix> zeros{};
  const uLong crc_zeros = crc32(crc32(0L, Z_NULL, 0), zeros.data(), kPrefix);
  // Gaussian elimination: basis[k] has its highest set bit at k; mask[k] says
  // which ID bits it is the sum of.
  std::array<std::uint32_t, 32> basis{};
  std::array<std::uint16_t, 32> mask{};
  for (int b = 0; b < 16; ++b) {
    std::array<std::uint8_t, kPrefix> e{};
    e[b < 8 ? 13 : 12] = static_cast<std::uint8_t>(1u << (b % 8));
    const uLong x = crc32(crc32(0L, Z_NULL, 0), e.data(), kPrefix) ^ crc_zeros;
    auto v = static_cast<std::uint32_t>(crc32_combine_op(x, 0, op));
    auto m = static_cast<std::uint16_t>(1u << b);
    for (int k = 31; k >= 0 && v != 0; --k) {
      if (!(v >> k & 1)) continue;
      if (basis[k] == 0) {
        basis[k] = v;
        mask[k] = m;
        v = 0;
      } else {
        v ^= basis[k];
        m ^= mask[k];
      }
    }
  }
  std::uint32_t r = d;
  std::uint16_t flip = 0;
  for (int k = 31; k >= 0; --k) {
    if (!(r >> k & 1)) continue;
    if (basis[k] == 0) return std::nullopt;  // not a change of the ID alone: damaged
    r ^= basis[k];
    flip ^= mask[k];
  }
  return static_cast<std::uint16_t>(id0 ^ flip);
}

ParseError parse(std::span<const std::uint8_t> pkt, Packet& out) {
  if (pkt.size() < kIpHdr + kUdpHdr + kBth + kIcrc) return ParseError::kTruncated;
  const std::uint8_t* ip = pkt.data();
  if ((ip[0] >> 4) != 4 || ip[9] != 17) return ParseError::kNotIpv4Udp;
  if ((ip[0] & 0xf) != 5) return ParseError::kIpOptions;
  if (ip_checksum(ip, kIpHdr) != 0) return ParseError::kBadIpChecksum;
  const std::size_t total = get16(ip + 2);
  if (total > pkt.size() || total < kIpHdr + kUdpHdr + kBth + kIcrc) return ParseError::kTruncated;
  const std::uint8_t* udp = ip + kIpHdr;
  if (get16(udp + 2) != kRoceUdpPort) return ParseError::kNotRoce;
  if (get16(udp + 4) != total - kIpHdr) return ParseError::kBadLength;
  const std::uint8_t* bth = udp + kUdpHdr;
  out.opcode = bth[0];
  const OpInfo& info = op_info(out.opcode);
  if (!info.known) return ParseError::kUnknownOpcode;
  if ((bth[1] & 0x0f) != 0) return ParseError::kBadVersion;
  out.solicited = bth[1] & 0x80;
  out.pad = (bth[1] >> 4) & 3;
  const std::size_t ext = ext_len(out.opcode);
  const std::size_t fixed = kIpHdr + kUdpHdr + kBth + ext + kIcrc;
  if (total < fixed + out.pad) return ParseError::kBadLength;
  const std::size_t paylen = total - fixed - out.pad;
  if (!info.payload && paylen != 0) return ParseError::kBadLength;
  std::uint32_t got;
  std::memcpy(&got, ip + total - kIcrc, 4);
  if (le32toh(got) != icrc(pkt.first(total - kIcrc))) return ParseError::kBadIcrc;

  std::memcpy(&out.src_ip, ip + 12, 4);
  std::memcpy(&out.dst_ip, ip + 16, 4);
  out.tos = ip[1];
  out.ttl = ip[8];
  out.ip_id = get16(ip + 4);
  out.src_port = get16(udp);
  out.dst_port = kRoceUdpPort;
  out.pkey = get16(bth + 2);
  out.dest_qp = get24(bth + 5);
  out.ack_req = bth[8] & 0x80;
  out.psn = get24(bth + 9);
  const std::uint8_t* h = bth + kBth;
  if (info.reth) {
    out.va = get64(h);
    out.rkey = get32(h + 8);
    out.dma_len = get32(h + 12);
    h += kReth;
  }
  if (info.atomic_eth) {
    out.va = get64(h);
    out.rkey = get32(h + 8);
    out.swap_add = get64(h + 12);
    out.compare = get64(h + 20);
    out.dma_len = 8;
    h += kAtomicEth;
  }
  if (info.nicop_eth) {
    out.va = get64(h);
    out.rkey = get32(h + 8);
    out.dma_len = get32(h + 12);
    out.arg0 = get64(h + 16);
    out.arg1 = get64(h + 24);
    out.op_id = get32(h + 32);
    h += kNicOpEth;
  }
  if (info.aeth) {
    out.syndrome = h[0];
    out.msn = get24(h + 1);
    h += kAeth;
  }
  if (info.atomic_ack) {
    out.orig = get64(h);
    h += kAtomicAckEth;
  }
  if (info.nicop_ack) {
    out.orig = get64(h);
    out.nicop_status = get32(h + 8);
    h += kNicOpAckEth;
  }
  if (info.imm) {
    std::memcpy(&out.imm, h, 4);
    h += kImmDt;
  }
  out.payload = std::span<const std::uint8_t>(h, paylen);
  return ParseError::kOk;
}

std::size_t build(const Packet& p, std::vector<std::uint8_t>& out) {
  const OpInfo& info = op_info(p.opcode);
  const std::size_t paylen = p.payload.size();
  const std::uint8_t pad = static_cast<std::uint8_t>((-paylen) & 3);
  const std::size_t ext = ext_len(p.opcode);
  const std::size_t total = kIpHdr + kUdpHdr + kBth + ext + paylen + pad + kIcrc;
  out.resize(total);
  std::uint8_t* ip = out.data();
  ip[0] = 0x45;
  ip[1] = p.tos;
  put16(ip + 2, static_cast<std::uint16_t>(total));
  put16(ip + 4, p.ip_id);
  put16(ip + 6, 0x4000);  // DF, as rxe
  ip[8] = p.ttl;
  ip[9] = 17;
  put16(ip + 10, 0);
  std::memcpy(ip + 12, &p.src_ip, 4);
  std::memcpy(ip + 16, &p.dst_ip, 4);
  put16(ip + 10, ip_checksum(ip, kIpHdr));
  std::uint8_t* udp = ip + kIpHdr;
  put16(udp, p.src_port);
  put16(udp + 2, p.dst_port);
  put16(udp + 4, static_cast<std::uint16_t>(total - kIpHdr));
  put16(udp + 6, 0);
  std::uint8_t* bth = udp + kUdpHdr;
  bth[0] = p.opcode;
  bth[1] = static_cast<std::uint8_t>((p.solicited ? 0x80 : 0) | pad << 4);
  put16(bth + 2, p.pkey);
  bth[4] = 0;
  put24(bth + 5, p.dest_qp);
  bth[8] = p.ack_req ? 0x80 : 0;
  put24(bth + 9, p.psn & kPsnMask);
  std::uint8_t* h = bth + kBth;
  if (info.reth) {
    put64(h, p.va);
    put32(h + 8, p.rkey);
    put32(h + 12, p.dma_len);
    h += kReth;
  }
  if (info.atomic_eth) {
    put64(h, p.va);
    put32(h + 8, p.rkey);
    put64(h + 12, p.swap_add);
    put64(h + 20, p.compare);
    h += kAtomicEth;
  }
  if (info.nicop_eth) {
    put64(h, p.va);
    put32(h + 8, p.rkey);
    put32(h + 12, p.dma_len);
    put64(h + 16, p.arg0);
    put64(h + 24, p.arg1);
    put32(h + 32, p.op_id);
    h += kNicOpEth;
  }
  if (info.aeth) {
    h[0] = p.syndrome;
    put24(h + 1, p.msn);
    h += kAeth;
  }
  if (info.atomic_ack) {
    put64(h, p.orig);
    h += kAtomicAckEth;
  }
  if (info.nicop_ack) {
    put64(h, p.orig);
    put32(h + 8, p.nicop_status);
    h += kNicOpAckEth;
  }
  if (info.imm) {
    std::memcpy(h, &p.imm, 4);
    h += kImmDt;
  }
  if (paylen) std::memcpy(h, p.payload.data(), paylen);
  std::memset(h + paylen, 0, pad);
  const std::uint32_t c = htole32(icrc(std::span<const std::uint8_t>(out.data(), total - kIcrc)));
  std::memcpy(out.data() + total - kIcrc, &c, 4);
  return total;
}

std::string describe(const Packet& p) {
  const OpInfo& i = op_info(p.opcode);
  char buf[192];
  int n = std::snprintf(buf, sizeof buf, "%s qp=%#x psn=%#x%s", i.name, p.dest_qp, p.psn, p.ack_req ? " A" : "");
  auto more = [&](const char* fmt, auto... args) {
    if (n > 0 && static_cast<std::size_t>(n) < sizeof buf) n += std::snprintf(buf + n, sizeof buf - n, fmt, args...);
  };
  if (i.reth || i.atomic_eth)
    more(" va=%#llx rkey=%#x len=%u", static_cast<unsigned long long>(p.va), p.rkey, p.dma_len);
  if (i.aeth) more(" syn=%#x msn=%u", p.syndrome, p.msn);
  if (i.payload) more(" pay=%zu", p.payload.size());
  return buf;
}

}  // namespace urdma::wire
