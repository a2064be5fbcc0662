// SPDX-License-Identifier: GPL-2.0
// RoCEv2 wire format: IPv4 + UDP (port 4791) + BTH + extension headers +
// payload + pad + ICRC.  Pure functions, no state: parse() checks a received
// packet the way rxe_rcv() does and build() lays one out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace urdma::wire {

constexpr std::uint16_t kRoceUdpPort = 4791;
constexpr std::size_t kIpHdr = 20, kUdpHdr = 8, kBth = 12, kReth = 16, kAeth = 4, kAtomicEth = 28, kAtomicAckEth = 8,
                      kImmDt = 4, kIcrc = 4;
// NicOpETH: va 8, rkey 4, len 4, arg0 8, arg1 8, op id 4.  NicOpAckETH: result 8, status 4.
constexpr std::size_t kNicOpEth = 36, kNicOpAckEth = 12;
// NicOpAckETH status meaning "accepted and parked; the answer follows later".
constexpr std::uint32_t kNicOpParked = 0xfffffffe;
constexpr std::uint16_t kDefaultPkey = 0xffff;

// BTH opcodes, RC class (IBA Vol 1 table 38; include/rdma/ib_pack.h).
enum Opcode : std::uint8_t {
  kSendFirst = 0x00,
  kSendMiddle = 0x01,
  kSendLast = 0x02,
  kSendLastImm = 0x03,
  kSendOnly = 0x04,
  kSendOnlyImm = 0x05,
  kWriteFirst = 0x06,
  kWriteMiddle = 0x07,
  kWriteLast = 0x08,
  kWriteLastImm = 0x09,
  kWriteOnly = 0x0a,
  kWriteOnlyImm = 0x0b,
  kReadRequest = 0x0c,
  kReadRespFirst = 0x0d,
  kReadRespMiddle = 0x0e,
  kReadRespLast = 0x0f,
  kReadRespOnly = 0x10,
  kAck = 0x11,
  kAtomicAck = 0x12,
  kCompareSwap = 0x13,
  kFetchAdd = 0x14,
  // urdma NIC operations, in the manufacturer-specific range (IBA table 38:
  // opcode bits 7:5 = 110).  rxe drops them silently.
  kNicOpRequest = 0xc0,
  kNicOpResponse = 0xc1,
};

// Which headers follow the BTH, and what the opcode means (rxe's rxe_opcode[]).
struct OpInfo {
  bool known = false;
  bool reth = false, aeth = false, atomic_eth = false, atomic_ack = false, imm = false;
  bool nicop_eth = false, nicop_ack = false;
  bool payload = false;
  bool request = false;  // responder side handles it (else: completer)
  bool first = false, last = false;
  const char* name = "unknown";
};
const OpInfo& op_info(std::uint8_t opcode);
// Extension headers' length for an opcode (0 for unknown).
std::size_t ext_len(std::uint8_t opcode);

// AETH syndromes.
constexpr std::uint8_t kAethAck = 0x00;     // | credit code (0x1f: unlimited, what rxe sends)
constexpr std::uint8_t kAethRnrNak = 0x20;  // | timer
constexpr std::uint8_t kNakSeqErr = 0x60, kNakInvalidReq = 0x61, kNakRemoteAccess = 0x62, kNakRemoteOp = 0x63;
constexpr std::uint8_t kAethCreditsUnlimited = 0x1f;

// 24-bit PSN arithmetic (IBA 9.7.1): a precedes b when (a - b) as a 24-bit
// signed value is negative.  Valid for distances below 2^23.
constexpr std::uint32_t kPsnMask = 0xffffff;
inline std::uint32_t psn_add(std::uint32_t a, std::int64_t d) {
  return static_cast<std::uint32_t>(a + d) & kPsnMask;
}
inline std::int32_t psn_diff(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>((a - b) << 8) >> 8;
}
inline bool psn_lt(std::uint32_t a, std::uint32_t b) {
  return psn_diff(a, b) < 0;
}
inline bool psn_le(std::uint32_t a, std::uint32_t b) {
  return psn_diff(a, b) <= 0;
}

// A packet's decoded headers.  Multi-byte fields in host order.
struct Packet {
  std::uint32_t src_ip = 0, dst_ip = 0;  // network order, as in the header
  std::uint16_t src_port = 0, dst_port = kRoceUdpPort;
  std::uint8_t tos = 0, ttl = 64;
  std::uint16_t ip_id = 0;
  std::uint8_t opcode = 0;
  bool solicited = false, ack_req = false;
  std::uint8_t pad = 0;  // filled by build() from the payload size
  std::uint16_t pkey = kDefaultPkey;
  std::uint32_t dest_qp = 0, psn = 0;
  // RETH
  std::uint64_t va = 0;
  std::uint32_t rkey = 0, dma_len = 0;
  // AETH
  std::uint8_t syndrome = 0;
  std::uint32_t msn = 0;
  // AtomicETH (va, rkey above) / AtomicAckETH
  std::uint64_t swap_add = 0, compare = 0, orig = 0;
  // NicOpETH (va, rkey, dma_len above) / NicOpAckETH (orig = result)
  std::uint32_t op_id = 0, nicop_status = 0;
  std::uint64_t arg0 = 0, arg1 = 0;
  std::uint32_t imm = 0;  // ImmDt, network order as on the wire (ibv_wc.imm_data is too)
  std::span<const std::uint8_t> payload;
};

enum class ParseError {
  kOk,
  kTruncated,
  kNotIpv4Udp,
  kIpOptions,
  kBadIpChecksum,
  kNotRoce,
  kBadLength,
  kUnknownOpcode,
  kBadVersion,
  kBadIcrc
};
const char* parse_error_str(ParseError e);

// Decodes a received IPv4 packet.  Checks, in rxe's order: lengths, opcode
// known, TVer 0, pad/length consistent, ICRC.  On success `out.payload` points
// into `ip_packet`.
ParseError parse(std::span<const std::uint8_t> ip_packet, Packet& out);

// Lays out the packet: IPv4 (ID, DF, TTL 64, header checksum), UDP (checksum 0),
// BTH with pad for the payload, the opcode's extension headers, payload, zero
// pad, ICRC.  Returns the total length; `out` is resized to fit.
std::size_t build(const Packet& p, std::vector<std::uint8_t>& out);

// ICRC over a complete IPv4 RoCE packet whose last 4 bytes are the ICRC
// (excluded).  rxe's masking: IPv4 tos, ttl, checksum; UDP checksum; BTH
// resv8a; seed of 8 bytes of 0xff (the masked LRH).
std::uint32_t icrc(std::span<const std::uint8_t> ip_packet_without_icrc);

// The IPv4 ID that makes the ICRC of `ip_packet` (a whole RoCE packet, ICRC
// last) check.  A UDP socket does not see the ID its peer's kernel chose, and
// the ICRC covers it (rxe sends a random one); the CRC is linear in the ID's
// 16 bits, so the ID is the solution of a 32 x 16 system over GF(2).  Returns
// nullopt when no ID makes the ICRC check: the packet is damaged (a damaged
// packet passes with probability 2^-16: 16 of the CRC's 32 bits are left as a
// check).  The ID field's own value is ignored.
std::optional<std::uint16_t> solve_ip_id(std::span<const std::uint8_t> ip_packet);

std::uint16_t ip_checksum(const std::uint8_t* hdr, std::size_t len);
// rxe's source port for a QP pair with flow label 0 (rdma_get_udp_sport).
std::uint16_t udp_sport(std::uint32_t lqpn, std::uint32_t rqpn);

std::string describe(const Packet& p);  // one line for logs and test failures

}  // namespace urdma::wire
