// SPDX-License-Identifier: GPL-2.0
// urdma packet I/O: moves whole IPv4 packets (IPv4 header + UDP + RoCE) between
// the transport and a link.  The transport builds and checks every byte of the
// IPv4/UDP/BTH/.../ICRC; a back-end only adds and strips the link layer.
//
// Back-ends:
//   dpdk  DPDK 22.11 EAL without hugepages; any port (net_af_packet on a veth by
//         default).  Adds Ethernet, answers ARP for its address and resolves
//         its peers' MAC addresses by ARP.
//   udp   a kernel UDP socket bound to ADDR:4791.  The kernel builds the IPv4
//         header; the back-end hands the transport a reconstructed one (the
//         received addresses and lengths, IP ID 0, DF).  Linux puts IP ID 0 on
//         unconnected DF datagrams, so ICRCs match between urdma peers; peers
//         that pick their own IP IDs (rxe) need the dpdk back-end.
//   fault wrapper over any back-end: drops, duplicates, reorders and corrupts
//         received packets with a seeded generator (tests).
//
// Threading: one engine pass at a time calls send/flush/recv_burst (the
// engine thread or an application thread lending itself, never both at once).
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace urdma {

// A received IPv4 packet; `data` stays valid until the next recv_burst call.
struct RxPacket {
  const std::uint8_t* data;
  std::size_t len;
};

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  // Sends one IPv4 packet (header included) to its destination address.
  // Returns false if it could not be sent now (no ARP entry yet, ring full):
  // the transport treats that as a loss and its retransmission recovers.
  // A back-end may hold packets back to send them in one burst at flush().
  virtual bool send(std::span<const std::uint8_t> ip_packet) = 0;
  // The transport will send to ip (network order) soon: a back-end that
  // resolves link addresses starts now (an ARP request), so that the first
  // burst does not wait for, or overflow, the queue of unresolved packets.
  // Called by the engine pass; cheap when the address is known.
  virtual void resolve(std::uint32_t /*ip*/) {}
  // Sends whatever send() held back; the engine calls it at the end of every
  // pass, so nothing waits longer than one pass.
  virtual void flush() {}
  // Appends up to max received IPv4 packets addressed to this device (UDP port
  // 4791 only; other traffic is dropped or handled, e.g. ARP) and returns the
  // count.  Never blocks.
  virtual std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) = 0;
  // A file descriptor that becomes readable when packets may be waiting, so an
  // idle engine can sleep in epoll; -1 if the back-end cannot provide one (the
  // engine then naps in short steps).
  virtual int poll_fd() const = 0;
  // Drains whatever made poll_fd() readable (called before recv_burst after a wake-up).
  virtual void ack_poll_fd() {}
  virtual in_addr local_ip() const = 0;
  // Link MTU in bytes (IP packet size limit), e.g. 1500.
  virtual int link_mtu() const = 0;
  virtual std::string describe() const = 0;
  // Non-zero when the back-end cannot choose the UDP source port (a socket
  // bound to 4791 sends from 4791): the transport then builds packets with it,
  // so that the ICRC, which covers the ports, matches the wire.
  virtual int fixed_udp_sport() const { return 0; }
  // Back-end counters for diagnostics and tests (ARP traffic, frames dropped
  // by the link layer, injected faults), by name; empty if there are none.
  // Callable from any thread.
  virtual std::map<std::string, std::uint64_t> counters() const { return {}; }
  // A packet from recv_burst whose ICRC did not check.  A back-end that
  // rebuilt the IPv4 header without seeing all of it (udp: the IP ID) may
  // fix the header in place so that it checks, and return true to have the
  // packet parsed again.
  virtual bool repair_icrc(const RxPacket& /*rx*/) { return false; }
};

// A back-end counter: bumped by the engine thread only, read from any thread
// (relaxed atomics: no locked instruction on the packet path).
class IoCounter {
 public:
  void operator++() { v_.store(v_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// "backend:key=value,key=value" split into its parts.  A value may be quoted
// with "..." or '...' to hold commas or spaces: dev="net_tap0,iface=t0".
struct IoSpec {
  std::string backend;
  std::map<std::string, std::string> keys;
  // Parses; throws std::invalid_argument naming the bad part and the expected form.
  static IoSpec parse(const std::string& spec);
  std::string get(const std::string& key, const std::string& def = "") const;
  // The value of key as a number in [lo, hi], def when absent.  Throws
  // std::runtime_error naming the key, the value and the range.
  std::int64_t get_int(const std::string& key, std::int64_t def, std::int64_t lo, std::int64_t hi) const;
  double get_real(const std::string& key, double def, double lo, double hi) const;
};

// Opens the back-end named by spec (see verbs.h Device::open), wrapped in the
// fault injector when any of drop/dup/reorder/corrupt is set.  Throws
// std::runtime_error with the cause and the fix.
std::unique_ptr<PacketIo> open_packet_io(const std::string& spec);

std::unique_ptr<PacketIo> open_udp_io(const IoSpec& spec);
std::unique_ptr<PacketIo> open_dpdk_io(const IoSpec& spec);
std::unique_ptr<PacketIo> wrap_fault_io(std::unique_ptr<PacketIo> inner, const IoSpec& spec);

}  // namespace urdma
