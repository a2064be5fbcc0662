// SPDX-License-Identifier: GPL-2.0
// urdma-iolat: the floor under urdma's latency.  RoCEv2 SEND-only packets
// bounce between two urdma packet I/O back-ends with nothing else: no QP, no
// transport state, no ACK, no engine thread; each side busy-polls its port,
// checks the packet (wire::parse, ICRC included) and, on the echo side,
// builds the answer (wire::build, new ICRC).  What an RDMA latency over the
// same back-end and link cannot go below: a ping-pong of urdma-perf
// send_lat/write_lat adds the transport, an ACK per message, and the handing
// over between application and engine.
//
//   urdma-iolat --backend dpdk:iface=vethB,ip=10.88.0.4                      # echo side
//   urdma-iolat --backend dpdk:iface=vethA,ip=10.88.0.2 10.88.0.4 -s 2 -n 1000
//
// The report is urdma-perf's (perftest's columns; t_* are half round trips,
// as for ib_send_lat), with --json.  The echo side answers until the client
// says it is done (a packet to QP 0xffffff) or --idle seconds pass without a
// packet after the first one.
#include <arpa/inet.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.h"
#include "perf_report.h"
#include "urdma/packet_io.h"
#include "wire.h"

namespace urdma::tools::iolat {
namespace {

constexpr const char* kTool = "urdma-iolat";
constexpr std::uint32_t kPingQpn = 0x11;     // rxe's first user QP: what urdma-perf's packets carry
constexpr std::uint32_t kByeQpn = 0xffffff;  // the client is done

struct Options {
  std::string backend;
  std::string peer;
  std::string json;
  std::uint64_t size = 2;
  int iters = 1000;
  double timeout_s = 10;
  double idle_s = 10;
};

in_addr parse_ip(const std::string& text, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1)
    throw std::runtime_error(std::string(what) + " '" + text + "' is not an IPv4 address (A.B.C.D)");
  return a;
}

// One received packet that parses as RoCE, or nothing.
bool receive(PacketIo& io, std::vector<RxPacket>& rx, wire::Packet& p) {
  rx.clear();
  if (io.recv_burst(rx, 1) == 0) return false;
  return wire::parse(std::span<const std::uint8_t>(rx[0].data, rx[0].len), p) == wire::ParseError::kOk;
}

void send_packet(PacketIo& io, const wire::Packet& p, std::vector<std::uint8_t>& buf) {
  const std::size_t n = wire::build(p, buf);
  io.send(std::span<const std::uint8_t>(buf.data(), n));
  io.flush();
}

void serve(PacketIo& io, const Options& o) {
  std::printf("urdma-iolat: echoing RoCE packets on %s; waiting for the client\n", io.describe().c_str());
  std::fflush(stdout);
  std::vector<RxPacket> rx;
  std::vector<std::uint8_t> buf;
  std::vector<std::uint8_t> payload;
  std::uint64_t answered = 0;
  std::uint64_t last = 0;
  for (unsigned spins = 1;; ++spins) {
    wire::Packet p;
    if (!receive(io, rx, p)) {
      if ((spins & 1023) == 0 && last && now_ns() - last > static_cast<std::uint64_t>(o.idle_s * 1e9))
        throw std::runtime_error("no packet for " + std::to_string(o.idle_s) + " s after " + std::to_string(answered) +
                                 " answers: the client went away without saying so");
      spin_pause(spins);
      continue;
    }
    if (p.dest_qp == kByeQpn) break;
    payload.assign(p.payload.begin(), p.payload.end());  // p.payload points into the receive buffer
    p.payload = payload;
    std::swap(p.src_ip, p.dst_ip);
    std::swap(p.src_port, p.dst_port);
    p.dst_port = wire::kRoceUdpPort;
    if (const int f = io.fixed_udp_sport()) p.src_port = static_cast<std::uint16_t>(f);
    send_packet(io, p, buf);
    ++answered;
    last = now_ns();
  }
  std::printf("urdma-iolat: answered %llu packets\n", static_cast<unsigned long long>(answered));
}

void run_client(PacketIo& io, const Options& o) {
  const in_addr peer = parse_ip(o.peer, "peer");
  wire::Packet ping;
  ping.opcode = wire::kSendOnly;
  ping.src_ip = io.local_ip().s_addr;
  ping.dst_ip = peer.s_addr;
  ping.src_port = wire::udp_sport(kPingQpn, kPingQpn);
  if (const int f = io.fixed_udp_sport()) ping.src_port = static_cast<std::uint16_t>(f);
  ping.dest_qp = kPingQpn;
  std::vector<std::uint8_t> payload(o.size, 0x5a), buf;
  ping.payload = payload;
  std::vector<RxPacket> rx;

  // Until the first echo: the back-end may have to resolve the peer by ARP
  // first (its send() fails meanwhile), so resend every 10 ms.
  const std::uint64_t give_up = now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
  for (std::uint64_t next_try = 0;;) {
    wire::Packet p;
    if (receive(io, rx, p) && p.dest_qp == kPingQpn && p.psn == 0) break;
    const std::uint64_t t = now_ns();
    if (t > give_up)
      throw std::runtime_error("no echo from " + o.peer + " within " + std::to_string(o.timeout_s) +
                               " s: start `urdma-iolat --backend ...` there first, on the same link");
    if (t >= next_try) {
      send_packet(io, ping, buf);
      next_try = t + 10'000'000;
    }
  }

  std::vector<std::uint64_t> stamps;
  stamps.reserve(static_cast<std::size_t>(o.iters) + 1);
  for (int i = 1; i <= o.iters; ++i) {
    ping.psn = static_cast<std::uint32_t>(i) & wire::kPsnMask;
    stamps.push_back(now_ns());
    send_packet(io, ping, buf);
    const std::uint64_t deadline = stamps.back() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    for (unsigned spins = 1;; ++spins) {
      wire::Packet p;
      if (receive(io, rx, p) && p.psn == ping.psn) break;
      if ((spins & 1023) == 0 && now_ns() > deadline)
        throw std::runtime_error("echo " + std::to_string(i) + " did not come back within " +
                                 std::to_string(o.timeout_s) + " s (a lost packet: this tool does not retransmit)");
      spin_pause(spins);
    }
  }
  stamps.push_back(now_ns());
  ping.dest_qp = kByeQpn;
  for (int i = 0; i < 3; ++i) send_packet(io, ping, buf);  // no ACK: say it thrice

  perf::LatResult r = perf::latency_stats(stamps, o.size, true);
  r.iters = static_cast<std::uint64_t>(o.iters);  // stamps holds one more: the end of the last round trip
  std::printf("urdma-iolat: %s -> %s, %d round trips of %llu-byte RoCE SEND packets\n", io.describe().c_str(),
              o.peer.c_str(), o.iters, static_cast<unsigned long long>(o.size));
  std::printf("%s\n%s\n", perf::lat_header().c_str(), perf::lat_line(r).c_str());
  if (!o.json.empty()) {
    nlohmann::json j = perf::lat_json(r);
    j["test"] = "io_lat";
    j["role"] = "client";  // what scripts/lib/urdma_bench.py looks for, as in urdma-perf's JSON
    j["source"] = "local";
    j["backend"] = io.describe();
    j["peer"] = o.peer;
    std::ofstream f(o.json);
    f << j.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write '" + o.json + "'");
  }
}

}  // namespace
}  // namespace urdma::tools::iolat

int main(int argc, char** argv) {
  using namespace urdma::tools::iolat;
  CLI::App app{
      "urdma-iolat: round trips of bare RoCE packets between two urdma back-ends (no transport): the floor under "
      "urdma-perf's latency on the same link"};
  Options o;
  app.add_option("PEER", o.peer, "the echo side's urdma address (none: be the echo side)");
  app.add_option("--backend", o.backend, "packet I/O: dpdk:iface=IF,ip=A.B.C.D | udp:ip=A.B.C.D (see Device::open)")
      ->required();
  app.add_option("-s,--size", o.size, "payload bytes per packet")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("-n,--iters", o.iters, "round trips")->capture_default_str()->check(CLI::Range(5, 100'000'000));
  app.add_option("--timeout", o.timeout_s, "seconds to wait for an echo")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--idle", o.idle_s, "echo side: give up after this many seconds without a packet")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--json", o.json, "client: write the result as JSON to this file");
  return urdma::tools::tool_main(kTool, app, argc, argv, [&] {
    auto io = urdma::open_packet_io(o.backend);
    if (o.peer.empty())
      serve(*io, o);
    else
      run_client(*io, o);
  });
}
