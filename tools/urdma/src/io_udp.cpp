// SPDX-License-Identifier: GPL-2.0
// The udp back-end: RoCEv2 over a kernel UDP socket bound to ADDR:4791.
//
// The kernel owns the IPv4 and UDP headers, so the transport's packets are
// unwrapped to their UDP payload on send, and received payloads are wrapped in
// the header the sender's kernel put on the wire.  The ICRC covers the IP ID,
// which a socket cannot see: with DF set, Linux gives unconnected datagrams IP
// ID 0 (ip_select_ident_segs in include/net/ip.h: no inet_daddr, DF and not
// ignore_df -> id = 0), so between urdma peers on this back-end ID 0 is right.
// rxe picks an ID of its own for each packet: with ip_id=solve the back-end
// recovers it from the ICRC (wire::solve_ip_id) when ID 0 does not check, at
// the price of half the ICRC's strength for those packets (16 of 32 bits).
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastpath/unique_fd.h"
#include "urdma/packet_io.h"
#include "wire.h"

namespace urdma {
namespace {

constexpr std::uint16_t kRocePort = 4791;
constexpr std::size_t kHdrs = 28;   // IPv4 (no options) + UDP
constexpr std::size_t kBatch = 64;  // datagrams per recvmmsg
constexpr int kSockBuf = 4 << 20;   // rides out bursts while the engine sleeps

std::uint16_t ip_header_checksum(const std::uint8_t* h, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += static_cast<std::uint32_t>(h[i] << 8 | h[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

std::string addr_str(in_addr a) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

// Bigger socket buffers: SO_*BUFFORCE passes net.core.[rw]mem_max when we
// may (CAP_NET_ADMIN); otherwise the kernel clamps the plain option.
void grow_buffers(int fd) {
  for (auto [force, plain] : {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, std::pair{SO_SNDBUFFORCE, SO_SNDBUF}})
    if (setsockopt(fd, SOL_SOCKET, force, &kSockBuf, sizeof kSockBuf) != 0)
      setsockopt(fd, SOL_SOCKET, plain, &kSockBuf, sizeof kSockBuf);
}

[[noreturn]] void bind_failed(in_addr ip, int err) {
  const std::string where = "urdma: udp back-end: " + addr_str(ip) + ":4791 ";
  if (err == EADDRNOTAVAIL)
    throw std::runtime_error(where + "is not a local address (ip addr show); use one of this host's addresses or " +
                             "add it (ip addr add " + addr_str(ip) + "/24 dev IF)");
  if (err == EADDRINUSE)
    throw std::runtime_error(where + "is already in use (ss -ulpn sport = 4791; an rxe device binds *:4791, see " +
                             "rdma link show); stop the other user or pick another address");
  if (err == EACCES || err == EPERM) throw std::runtime_error(where + "cannot be bound: " + std::strerror(err));
  throw std::runtime_error(where + "bind: " + std::strerror(err));
}

fastpath::UniqueFd open_socket(in_addr ip) {
  fastpath::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw std::runtime_error(std::string("urdma: udp back-end: socket: ") + std::strerror(errno));
  // DF on every datagram (as rxe sends) and, with it, IP ID 0: see the top of the file.
  const int pmtu = IP_PMTUDISC_DO;
  if (setsockopt(fd.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) != 0)
    throw std::runtime_error(std::string("urdma: udp back-end: IP_MTU_DISCOVER: ") + std::strerror(errno));
  grow_buffers(fd.get());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(kRocePort);
  sa.sin_addr = ip;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) bind_failed(ip, errno);
  return fd;
}

class UdpIo final : public PacketIo {
 public:
  UdpIo(in_addr ip, int mtu, bool solve_id) : ip_(ip), mtu_(mtu), solve_id_(solve_id), fd_(open_socket(ip)) {
    // A datagram bigger than the link MTU cannot be a valid RoCE packet for
    // us, but take up to 9000 so a peer with a larger MTU is seen (and
    // counted by the transport) rather than silently truncated.
    slot_size_ = kHdrs + static_cast<std::size_t>(std::max(mtu, 9000));
    slots_.resize(kBatch * slot_size_);
  }

  bool send(std::span<const std::uint8_t> p) override;
  std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) override;
  int poll_fd() const override { return fd_.get(); }
  in_addr local_ip() const override { return ip_; }
  int link_mtu() const override { return mtu_; }
  int fixed_udp_sport() const override { return kRocePort; }
  std::string describe() const override {
    return "udp " + addr_str(ip_) + ":4791 mtu=" + std::to_string(mtu_) + (solve_id_ ? " ip_id=solve" : "");
  }
  bool repair_icrc(const RxPacket& rx) override;
  std::map<std::string, std::uint64_t> counters() const override {
    return {{"tx_malformed", tx_malformed_.get()},
            {"tx_errors", tx_errors_.get()},
            {"rx_truncated", rx_truncated_.get()},
            {"rx_ip_id_solved", rx_ip_id_solved_.get()}};
  }

 private:
  void wrap(std::uint8_t* slot, std::size_t payload, const sockaddr_in& from) const;

  in_addr ip_;
  int mtu_;
  bool solve_id_;
  fastpath::UniqueFd fd_;
  std::size_t slot_size_ = 0;
  std::vector<std::uint8_t> slots_;  // kBatch slots: header room, then the datagram
  std::array<sockaddr_in, kBatch> from_{};
  IoCounter tx_malformed_, tx_errors_, rx_truncated_, rx_ip_id_solved_;
};

bool UdpIo::send(std::span<const std::uint8_t> p) {
  if (p.size() < kHdrs || (p[0] >> 4) != 4 || p[9] != IPPROTO_UDP) {
    ++tx_malformed_;
    return false;
  }
  const std::size_t ihl = (p[0] & 0x0fu) * 4u;
  const std::uint8_t* udp = p.data() + ihl;
  if (ihl < 20 || p.size() < ihl + 8 || get16(udp + 4) < 8 || ihl + get16(udp + 4) > p.size()) {
    ++tx_malformed_;
    return false;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  std::memcpy(&to.sin_addr, p.data() + 16, 4);
  std::memcpy(&to.sin_port, udp + 2, 2);
  const ssize_t n = ::sendto(fd_.get(), udp + 8, get16(udp + 4) - 8u, MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&to), sizeof to);
  if (n < 0) {
    ++tx_errors_;  // EAGAIN/ENOBUFS (busy), EMSGSIZE, no route: the transport's retry covers all
    return false;
  }
  return true;
}

// Writes the IPv4 + UDP header the sender's kernel sent in front of a payload
// received at slot + kHdrs.
void UdpIo::wrap(std::uint8_t* h, std::size_t payload, const sockaddr_in& from) const {
  h[0] = 0x45;  // version 4, IHL 5
  h[1] = 0;     // TOS: not visible to a socket; masked out of the ICRC anyway
  put16(h + 2, static_cast<std::uint16_t>(kHdrs + payload));
  put16(h + 4, 0);       // IP ID: 0 on unconnected DF datagrams
  put16(h + 6, 0x4000);  // DF, no fragment offset
  h[8] = 64;             // TTL: masked out of the ICRC
  h[9] = IPPROTO_UDP;
  put16(h + 10, 0);
  std::memcpy(h + 12, &from.sin_addr, 4);
  std::memcpy(h + 16, &ip_, 4);
  put16(h + 10, ip_header_checksum(h, 20));
  std::uint8_t* u = h + 20;
  std::memcpy(u, &from.sin_port, 2);
  put16(u + 2, kRocePort);
  put16(u + 4, static_cast<std::uint16_t>(8 + payload));
  put16(u + 6, 0);  // checksum 0: what rxe sends, and masked out of the ICRC
}

// rx points into slots_, or into the copy a fault injector over this
// back-end made: writable memory either way, until the next recv_burst.
bool UdpIo::repair_icrc(const RxPacket& rx) {
  if (!solve_id_ || rx.len < kHdrs) return false;
  const auto id = wire::solve_ip_id(std::span<const std::uint8_t>(rx.data, rx.len));
  if (!id) return false;
  auto* h = const_cast<std::uint8_t*>(rx.data);
  put16(h + 4, *id);
  put16(h + 10, 0);
  put16(h + 10, ip_header_checksum(h, 20));
  ++rx_ip_id_solved_;
  return true;
}

std::size_t UdpIo::recv_burst(std::vector<RxPacket>& out, std::size_t max) {
  const std::size_t want = std::min(max, kBatch);
  if (want == 0) return 0;
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  for (std::size_t i = 0; i < want; ++i) {
    iov[i] = {slots_.data() + i * slot_size_ + kHdrs, slot_size_ - kHdrs};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from_[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from_[i];
  }
  const int n = ::recvmmsg(fd_.get(), msgs.data(), static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
  if (n <= 0) return 0;  // EAGAIN: nothing waiting; other errors (ICMP reports) carry no packet
  std::size_t got = 0;
  for (int i = 0; i < n; ++i) {
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      ++rx_truncated_;
      continue;
    }
    std::uint8_t* slot = slots_.data() + static_cast<std::size_t>(i) * slot_size_;
    wrap(slot, msgs[i].msg_len, from_[i]);
    out.push_back({slot, kHdrs + msgs[i].msg_len});
    ++got;
  }
  return got;
}

}  // namespace

std::unique_ptr<PacketIo> open_udp_io(const IoSpec& spec) {
  const std::string ip = spec.get("ip");
  if (ip.empty()) throw std::runtime_error("urdma: udp back-end: no address; pass ip=A.B.C.D (a local address)");
  in_addr addr{};
  if (inet_pton(AF_INET, ip.c_str(), &addr) != 1)
    throw std::runtime_error("urdma: udp back-end: ip=" + ip + " is not an IPv4 address (A.B.C.D)");
  const int mtu = static_cast<int>(spec.get_int("mtu", 1500, 576, 9216));
  const std::string id = spec.get("ip_id", "zero");
  if (id != "zero" && id != "solve")
    throw std::runtime_error("urdma: udp back-end: ip_id=" + id +
                             " is not zero or solve (solve: recover the IP ID of each packet from its ICRC, for a "
                             "peer such as rxe that does not send ID 0)");
  return std::make_unique<UdpIo>(addr, mtu, id == "solve");
}

}  // namespace urdma
