// SPDX-License-Identifier: GPL-2.0
// urdma-perf: perftest's ib_{write,read,send,atomic}_{lat,bw} as one tool on
// urdma, speaking perftest 4.5's TCP exchange byte for byte, so the real
// perftest programs (on rxe or hardware) are its peers in either role.
//
//   urdma-perf write_lat --backend dpdk:iface=veth1,ip=10.0.0.2            # server
//   urdma-perf write_lat --backend udp:ip=127.0.0.2 127.0.0.1             # client
//
// What each test does, as perftest does it:
//   write_lat   both sides RDMA WRITE `size` bytes to the other's buffer and
//               spin on its last byte (1, 2, 3, ... mod 256); the server writes
//               first; one write in flight.
//   read_lat    the client RDMA READs `size` bytes, one at a time; the server
//   atomic_lat  only answers (fetch-and-add 1, or compare-and-swap 0 -> 0).
//   send_lat    SEND ping-pong, the client first; receives posted before a
//               handshake for each size.
//   *_bw        the client keeps tx-depth WRs in flight, a completion asked for
//               every cq-mod WRs; WRITE/READ/atomic servers wait in the final
//               handshake and print the client's figures; the SEND server
//               counts receives and prints its own (no peak).
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "fastpath/cli.h"
#include "fastpath/report.h"
#include "perf_report.h"
#include "perftest_exchange.h"

namespace urdma::tools::perf {
namespace {

using perftest::BwReport;
using perftest::KeyMsg;
using perftest::TestKind;
using perftest::Verb;

constexpr char kTool[] = "urdma-perf";
constexpr std::uint64_t kCqModLimit = 8192;  // perftest signals every WR above this size
constexpr int kMinIters = 5;

struct Options {
  std::string test;
  TestKind kind;
  std::string host;  // empty: server
  int port = 18515;
  std::string dev = "urdma0";
  int ib_port = 1;
  int mtu = 0;  // 0: the device's active MTU
  std::string size_text;
  std::uint64_t size = 0;
  bool all = false;
  int iters = 0;
  int tx_depth = 0;
  int rx_depth = 0;
  int cq_mod = 100;
  bool cq_mod_given = false;
  std::string atomic_type = "FETCH_AND_ADD";
  int outs = 0;
  int inline_size = -1;
  int gid_index = -1;
  int qp_timeout = 14;
  int sl = 0;
  bool events = false;
  bool report_gbits = false;
  std::string connection = "RC";
  int qps = 1;
  int duration = 0;
  bool bidirectional = false;
  bool rdma_cm = false;
  bool comm_rdma_cm = false;
  bool no_peak = false;
  bool cpu_freq = false;
  std::string backend;
  std::string json;
  double timeout_s = 10;
  double tcp_timeout_s = 60;
  double connect_retry_s = 0;

  bool client() const { return !host.empty(); }
  bool lat() const { return !kind.bw; }
};

// ---------------------------------------------------------------- options

void add_options(CLI::App& app, Options& o) {
  app.add_option("TEST", o.test,
                 "write_lat | read_lat | send_lat | atomic_lat | write_bw | read_bw | send_bw | atomic_bw")
      ->required()
      ->check(CLI::IsMember(
          {"write_lat", "read_lat", "send_lat", "atomic_lat", "write_bw", "read_bw", "send_bw", "atomic_bw"}));
  app.add_option("SERVER", o.host, "server's host name or address (none: be the server)");
  app.add_option("--backend", o.backend, "packet I/O: dpdk:iface=IF,ip=A.B.C.D | udp:ip=A.B.C.D (see Device::open)")
      ->required();
  app.add_option("-p,--port", o.port, "TCP port of the exchange")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("-d,--ib-dev", o.dev, "urdma device name")->capture_default_str();
  app.add_option("-i,--ib-port", o.ib_port, "device port (urdma has one: 1)")->capture_default_str();
  app.add_option("-m,--mtu", o.mtu, "path MTU: 256..4096 (default: the device's active MTU)");
  app.add_option("-s,--size", o.size_text, "message size (default 2, 65536 for _bw, 8 for atomics)")
      ->check(fastpath::cli::size_validator());
  app.add_flag("-a,--all", o.all, "run sizes 2, 4, .. 8 MiB");
  app.add_option("-n,--iters", o.iters, "iterations per size (default 1000, 5000 for write_bw)")
      ->check(CLI::Range(kMinIters, 100'000'000));
  app.add_option("-t,--tx-depth", o.tx_depth, "send queue depth (default 1, 128 for _bw)")->check(CLI::Range(1, 15000));
  app.add_option("-r,--rx-depth", o.rx_depth, "receives posted (SEND tests; default 512)")->check(CLI::Range(1, 16384));
  app.add_option("-Q,--cq-mod", o.cq_mod, "ask for a completion every this many WRs (_bw; default 100)")
      ->check(CLI::Range(1, 1024));
  app.add_option("-A,--atomic_type", o.atomic_type, "CMP_AND_SWAP | FETCH_AND_ADD")
      ->capture_default_str()
      ->check(CLI::IsMember({"CMP_AND_SWAP", "FETCH_AND_ADD"}));
  app.add_option("-o,--outs", o.outs, "outstanding READs/atomics (default: the device's maximum)");
  app.add_option("-I,--inline_size", o.inline_size, "largest message sent inline")->check(CLI::Range(0, 4096));
  app.add_option("-x,--gid-index", o.gid_index, "accepted; urdma always uses its ::ffff:IPv4 GID");
  app.add_flag("-F,--CPU-freq", o.cpu_freq, "accepted (no CPU frequency check is made)");
  app.add_option("-u,--qp-timeout", o.qp_timeout, "QP timeout exponent (4.096 us << N)")
      ->capture_default_str()
      ->check(CLI::Range(0, 31));
  app.add_option("-S,--sl", o.sl, "service level (accepted)")->check(CLI::Range(0, 15));
  app.add_flag("-e,--events", o.events, "sleep on CQ events instead of busy polling");
  app.add_flag("--report_gbits", o.report_gbits, "bandwidth in Gb/sec instead of MB/sec");
  app.add_option("-c,--connection", o.connection, "connection type (RC only)")->capture_default_str();
  app.add_option("-q,--qp", o.qps, "number of QPs (1 only)");
  app.add_option("-D,--duration", o.duration, "not supported: use -n");
  app.add_flag("-b,--bidirectional", o.bidirectional, "not supported");
  app.add_flag("-R,--rdma_cm", o.rdma_cm, "not supported");
  app.add_flag("-z,--comm_rdma_cm", o.comm_rdma_cm, "not supported");
  app.add_flag("-N,--noPeak", o.no_peak, "do not compute the peak bandwidth");
  app.add_option("--json", o.json, "also write the figures as JSON to this file ('-' for stdout)");
  app.add_option("--timeout", o.timeout_s, "give up when no completion arrives for this long (seconds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--tcp-timeout", o.tcp_timeout_s, "give up when the peer is silent this long during set-up (seconds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-retry", o.connect_retry_s, "client: retry a refused TCP connection this long (seconds)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.callback([&o, &app] { o.cq_mod_given = app.count("-Q") > 0; });
}

void refuse_unsupported(const Options& o) {
  auto refuse = [](const std::string& what) { throw std::runtime_error(what); };
  if (o.duration) refuse("-D (duration mode) is not supported by urdma-perf; use -n ITERATIONS on both sides");
  if (o.bidirectional) refuse("-b (bidirectional) is not supported by urdma-perf; run it without -b on both sides");
  if (o.rdma_cm || o.comm_rdma_cm)
    refuse("-R/-z (rdma_cm) is not supported: urdma-perf exchanges over TCP as perftest does by default");
  if (o.qps != 1) refuse("-q: urdma-perf runs one QP; drop -q on both sides");
  if (o.connection != "RC") refuse("-c " + o.connection + ": urdma speaks RC only");
  if (o.ib_port != 1) refuse("-i " + std::to_string(o.ib_port) + ": an urdma device has one port, 1");
  if (o.events && o.kind.verb == Verb::kWrite) refuse("-e: events are not available for WRITE tests (as in perftest)");
  if (o.outs && o.kind.verb != Verb::kRead && o.kind.verb != Verb::kAtomic)
    refuse("-o: outstanding reads only apply to READ and atomic tests");
  if (o.inline_size > 0 && (o.kind.verb == Verb::kRead || o.kind.verb == Verb::kAtomic))
    refuse("-I: inline data is not available for READ and atomic tests");
}

// perftest's defaults and force_dependencies, for the options we have.
void apply_defaults(Options& o) {
  o.kind = *perftest::parse_test(o.test);
  refuse_unsupported(o);
  const bool atomic = o.kind.verb == Verb::kAtomic;
  if (atomic && (o.all || (!o.size_text.empty() && fastpath::cli::parse_size(o.size_text) != 8)))
    throw std::runtime_error("the message size cannot be changed for atomic tests (8 bytes, no -a)");
  o.size = atomic ? 8 : (o.kind.bw ? 65536 : 2);
  if (!o.size_text.empty()) o.size = fastpath::cli::parse_size(o.size_text);
  if (o.size == 0 || o.size > 0x7fffffff)
    throw std::runtime_error("-s: the message size must be 1 .. 2147483647 bytes");
  if (o.iters == 0) o.iters = (o.kind.bw && o.kind.verb == Verb::kWrite) ? 5000 : 1000;
  if (o.tx_depth == 0) o.tx_depth = o.kind.bw ? 128 : 1;
  o.tx_depth = std::min(o.tx_depth, o.iters);
  if (o.rx_depth == 0) o.rx_depth = o.kind.verb == Verb::kSend ? 512 : 1;
  if (o.kind.verb == Verb::kSend) o.rx_depth = std::min(o.rx_depth, o.iters);
  if (o.size > kCqModLimit && !o.all && !o.events && !o.cq_mod_given) o.cq_mod = 1;
  o.cq_mod = std::min(o.cq_mod, o.tx_depth);
  if (o.inline_size < 0) {
    o.inline_size = 0;
    if (o.lat() && o.kind.verb == Verb::kWrite) o.inline_size = 220;
    if (o.lat() && o.kind.verb == Verb::kSend) o.inline_size = 236;
  }
  if (o.mtu && mtu_from_bytes(o.mtu) == 0) throw std::runtime_error("-m: the MTU must be 256, 512, 1024, 2048 or 4096");
}

// ---------------------------------------------------------------- resources

std::uint64_t buff_size(std::uint64_t size, int cycle_buffer) {
  return std::max<std::uint64_t>(size, static_cast<std::uint64_t>(cycle_buffer));
}

std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
  return (v + to - 1) / to * to;
}

// Declared in the order they are made, so they go in the reverse order.
struct Resources {
  const Device* dev = nullptr;
  std::unique_ptr<Pd> pd;
  std::unique_ptr<Buffer> buf;
  std::unique_ptr<Mr> mr;
  std::unique_ptr<Cq> send_cq;
  std::unique_ptr<Cq> recv_cq;  // SEND tests only; else send_cq serves both
  std::unique_ptr<Qp> qp;
  std::uint64_t half = 0;  // offset of the receive half (what vaddr points at)
  std::uint32_t psn = 0;
  std::uint32_t out_reads = 1;

  std::uint8_t* send_area() const { return buf->data(); }
  std::uint8_t* recv_area() const { return buf->data() + half; }
  Cq& rcq() const { return recv_cq ? *recv_cq : *send_cq; }
};

int mr_access(Verb v) {
  switch (v) {
    case Verb::kWrite:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
    case Verb::kRead:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ;
    case Verb::kAtomic:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
    case Verb::kSend:
      break;
  }
  return IBV_ACCESS_LOCAL_WRITE;
}

int qp_access(Verb v) {
  switch (v) {
    case Verb::kWrite:
      return IBV_ACCESS_REMOTE_WRITE;
    case Verb::kRead:
      return IBV_ACCESS_REMOTE_READ;
    case Verb::kAtomic:
      return IBV_ACCESS_REMOTE_ATOMIC;
    case Verb::kSend:
      break;
  }
  return IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;
}

Resources make_resources(Device& dev, const Options& o, const perftest::Negotiated& neg) {
  Resources r;
  r.dev = &dev;
  const std::uint64_t max_size = o.all ? perftest::kMaxSize : o.size;
  r.half = buff_size(max_size, neg.cycle_buffer);
  const std::uint64_t total = round_up(r.half, static_cast<std::uint64_t>(neg.cache_line)) * 2;
  r.pd = dev.alloc_pd();
  r.buf = std::make_unique<Buffer>(total);
  if (!(o.kind.verb == Verb::kWrite && o.lat()))  // write_lat spins on zeroed bytes
    for (std::uint64_t i = 0; i < total; ++i) r.buf->data()[i] = static_cast<std::uint8_t>(i * 131 + 7);
  r.mr = r.pd->reg_mr(r.buf->data(), total, mr_access(o.kind.verb));
  r.send_cq = dev.create_cq(o.tx_depth + 1);
  if (o.kind.verb == Verb::kSend) r.recv_cq = dev.create_cq(o.rx_depth + 1);
  QpInitAttr init;
  init.send_cq = r.send_cq.get();
  init.recv_cq = r.recv_cq ? r.recv_cq.get() : r.send_cq.get();
  init.cap.max_send_wr = static_cast<std::uint32_t>(o.tx_depth);
  init.cap.max_recv_wr = static_cast<std::uint32_t>(o.rx_depth);
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = static_cast<std::uint32_t>(o.inline_size);
  r.qp = r.pd->create_qp(init);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = 1;
  a.qp_access_flags = qp_access(o.kind.verb);
  modify_qp(*r.qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  r.psn = random_psn();
  const bool reads = o.kind.verb == Verb::kRead || o.kind.verb == Verb::kAtomic;
  r.out_reads = reads ? static_cast<std::uint32_t>(o.outs > 0 ? std::min(o.outs, dev.attr().max_qp_rd_atom)
                                                              : dev.attr().max_qp_rd_atom)
                      : 1;
  return r;
}

KeyMsg my_keys(const Device& dev, const Resources& r) {
  KeyMsg k;
  k.lid = 0;
  k.out_reads = r.out_reads;
  k.qpn = r.qp->qp_num();
  k.psn = r.psn;
  k.rkey = r.mr->rkey();
  k.vaddr = reinterpret_cast<std::uint64_t>(r.recv_area());
  k.gid = dev.gid();
  k.srqn = 0;
  return k;
}

std::string hex(std::uint64_t v, int width) {
  char s[32];
  std::snprintf(s, sizeof s, "%#0*llx", width, static_cast<unsigned long long>(v));
  return s;
}

void print_address(const char* side, const KeyMsg& k, Verb verb) {
  std::string line =
      std::string(" ") + side + " address: LID " + hex(k.lid, 4) + " QPN " + hex(k.qpn, 6) + " PSN " + hex(k.psn, 6);
  if (verb == Verb::kRead || verb == Verb::kAtomic) line += " OUT " + hex(k.out_reads, 4);
  if (verb != Verb::kSend) line += " RKey " + hex(k.rkey, 8) + " VAddr " + hex(k.vaddr, 16);
  std::printf("%s\n GID: ", line.c_str());
  for (int i = 0; i < 16; ++i) std::printf("%02d%s", k.gid.raw[i], i < 15 ? ":" : "\n");
}

// perftest's ctx_connect: RTR always; RTS for latency tests and clients.
void connect_qp(const Device& dev, Resources& r, const Options& o, const perftest::Negotiated& neg,
                const KeyMsg& peer) {
  check_peer_gid(peer.gid, "-x");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = neg.mtu;
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = static_cast<std::uint8_t>(r.out_reads);
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(o.gid_index >= 0 ? o.gid_index : 1);
  a.ah_attr.grh.hop_limit = 0xff;
  a.ah_attr.sl = static_cast<std::uint8_t>(o.sl);
  a.ah_attr.port_num = 1;
  modify_qp(*r.qp, a,
            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                IBV_QP_MIN_RNR_TIMER,
            "RTR");
  if (o.lat() || o.client()) {
    a.qp_state = IBV_QPS_RTS;
    a.sq_psn = r.psn;
    a.timeout = static_cast<std::uint8_t>(o.qp_timeout);
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    const int max_rd = std::max(1, std::min<int>(static_cast<int>(peer.out_reads), dev.attr().max_qp_init_rd_atom));
    a.max_rd_atomic = static_cast<std::uint8_t>(max_rd);
    modify_qp(
        *r.qp, a,
        IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC,
        "RTS");
  }
}

// ---------------------------------------------------------------- posting

// Holds one WR and its SGE (the WR points at the SGE, so this is not copied).
struct WorkRequest {
  ibv_sge sge{};
  ibv_send_wr wr{};
  WorkRequest(const WorkRequest&) = delete;
  WorkRequest& operator=(const WorkRequest&) = delete;
  WorkRequest(const Resources& r, const Options& o, const KeyMsg& peer, std::uint64_t size) {
    sge.addr = reinterpret_cast<std::uint64_t>(r.send_area());
    sge.length = static_cast<std::uint32_t>(size);
    sge.lkey = r.mr->lkey();
    wr.sg_list = &sge;
    wr.num_sge = 1;
    switch (o.kind.verb) {
      case Verb::kSend:
        wr.opcode = IBV_WR_SEND;
        break;
      case Verb::kWrite:
        wr.opcode = IBV_WR_RDMA_WRITE;
        break;
      case Verb::kRead:
        wr.opcode = IBV_WR_RDMA_READ;
        break;
      case Verb::kAtomic:
        wr.opcode = o.atomic_type == "CMP_AND_SWAP" ? IBV_WR_ATOMIC_CMP_AND_SWP : IBV_WR_ATOMIC_FETCH_AND_ADD;
        break;
    }
    if (o.kind.verb == Verb::kAtomic) {
      wr.wr.atomic.remote_addr = peer.vaddr;
      wr.wr.atomic.rkey = peer.rkey;
      wr.wr.atomic.compare_add = wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD ? 1 : 0;  // add 1; or compare 0
      wr.wr.atomic.swap = 0;
    } else if (o.kind.verb != Verb::kSend) {
      wr.wr.rdma.remote_addr = peer.vaddr;
      wr.wr.rdma.rkey = peer.rkey;
    }
    const bool may_inline = o.kind.verb == Verb::kSend || o.kind.verb == Verb::kWrite;
    if (may_inline && size <= static_cast<std::uint64_t>(o.inline_size)) wr.send_flags |= IBV_SEND_INLINE;
  }
  void post(Qp& qp, std::uint64_t id, bool signaled) {
    wr.wr_id = id;
    wr.send_flags = signaled ? (wr.send_flags | IBV_SEND_SIGNALED) : (wr.send_flags & ~IBV_SEND_SIGNALED);
    ibv_send_wr* bad = nullptr;
    if (const int err = qp.post_send(&wr, &bad))
      throw std::runtime_error(std::string("cannot post a send work request: ") + std::strerror(err) + " (QP " +
                               qp_state_str(qp.state()) + ")");
  }
};

void post_receives(Resources& r, std::uint64_t size, int n) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<std::uint64_t>(r.recv_area());
  sge.length = static_cast<std::uint32_t>(size);
  sge.lkey = r.mr->lkey();
  ibv_recv_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  for (int i = 0; i < n; ++i) {
    ibv_recv_wr* bad = nullptr;
    if (const int err = r.qp->post_recv(&wr, &bad))
      throw std::runtime_error(std::string("cannot post a receive: ") + std::strerror(err));
  }
}

const char* op_name(const Options& o) {
  switch (o.kind.verb) {
    case Verb::kSend:
      return "SEND";
    case Verb::kWrite:
      return "RDMA WRITE";
    case Verb::kRead:
      return "RDMA READ";
    case Verb::kAtomic:
      return o.atomic_type == "CMP_AND_SWAP" ? "CMP_AND_SWAP" : "FETCH_AND_ADD";
  }
  return "?";
}

std::chrono::milliseconds timeout_of(const Options& o) {
  return std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000));
}

// Spins until *p == want (the peer's RDMA WRITE landed), or gives up.
void wait_for_byte(std::uint8_t* p, std::uint8_t want, const Device& dev, const Qp& qp, StallWatch& watch,
                   const std::function<std::string()>& what) {
  std::atomic_ref<std::uint8_t> byte(*p);
  watch.restart();
  for (unsigned spins = 1; byte.load(std::memory_order_acquire) != want; ++spins) {
    dev.progress();  // the peer's WRITE lands without waking the engine thread
    spin_pause(spins);
    if ((spins & 4095) != 0) continue;
    if (qp.state() == IBV_QPS_ERR) throw std::runtime_error("QP went to ERROR: " + qp.error_reason());
    if (watch.due()) watch.check(what);
  }
}

// ---------------------------------------------------------------- latency tests

// ib_write_lat's loop: the server writes first, each side then waits for the
// peer's write before its next.
LatResult run_write_lat(Resources& r, const Options& o, const KeyMsg& peer, std::uint64_t size) {
  WorkRequest w(r, o, peer, size);
  CqWaiter cq(*r.send_cq, *r.qp, *r.dev, false, timeout_of(o));
  StallWatch watch(*r.dev, *r.qp, timeout_of(o));
  std::uint8_t* post_byte = r.send_area() + size - 1;
  std::uint8_t* poll_byte = r.recv_area() + size - 1;
  const std::uint64_t iters = static_cast<std::uint64_t>(o.iters);
  std::vector<std::uint64_t> posted(iters);
  std::uint64_t scnt = 0, rcnt = 0, ccnt = 0;
  ibv_wc wc[1];
  while (scnt < iters || rcnt < iters || ccnt < iters) {
    if (rcnt < iters && !(scnt == 0 && !o.client())) {
      ++rcnt;
      wait_for_byte(poll_byte, static_cast<std::uint8_t>(rcnt), *r.dev, *r.qp, watch, [&] {
        return "the peer's RDMA WRITE #" + std::to_string(rcnt) + " (" + std::to_string(size) + " bytes)";
      });
    }
    if (scnt < iters) {
      posted[scnt] = now_ns();
      std::atomic_ref<std::uint8_t>(*post_byte).store(static_cast<std::uint8_t>(++scnt), std::memory_order_release);
      w.post(*r.qp, scnt, true);
    }
    if (ccnt < iters) {
      cq.wait(wc, 1, [&] { return "the ACK of our RDMA WRITE #" + std::to_string(scnt); });
      ++ccnt;
    }
  }
  return latency_stats(posted, size, true);
}

// ib_read_lat / ib_atomic_lat client: one operation at a time.
LatResult run_lat_client(Resources& r, const Options& o, const KeyMsg& peer, std::uint64_t size) {
  WorkRequest w(r, o, peer, size);
  CqWaiter cq(*r.send_cq, *r.qp, *r.dev, o.events, timeout_of(o));
  const std::uint64_t iters = static_cast<std::uint64_t>(o.iters);
  std::vector<std::uint64_t> posted(iters);
  ibv_wc wc[1];
  for (std::uint64_t i = 0; i < iters; ++i) {
    posted[i] = now_ns();
    w.post(*r.qp, i, true);
    cq.wait(wc, 1, [&] { return "the response to our " + std::string(op_name(o)) + " #" + std::to_string(i + 1); });
  }
  return latency_stats(posted, size, false);
}

// ib_send_lat's loop: the client sends first; receives are reposted only
// while more will arrive, so none is left over for the next size.
LatResult run_send_lat(Resources& r, const Options& o, const KeyMsg& peer, std::uint64_t size) {
  WorkRequest w(r, o, peer, size);
  CqWaiter scq(*r.send_cq, *r.qp, *r.dev, o.events, timeout_of(o));
  CqWaiter rcq(r.rcq(), *r.qp, *r.dev, o.events, timeout_of(o));
  const std::uint64_t iters = static_cast<std::uint64_t>(o.iters);
  const std::uint64_t posted_recvs = static_cast<std::uint64_t>(o.rx_depth);
  std::vector<std::uint64_t> posted(iters);
  std::uint64_t scnt = 0, rcnt = 0;
  ibv_wc wc[1];
  while (scnt < iters || rcnt < iters) {
    if (rcnt < iters && !(scnt == 0 && o.client())) {
      rcq.wait(wc, 1, [&] { return "the peer's SEND #" + std::to_string(rcnt + 1); });
      ++rcnt;
      if (rcnt + posted_recvs <= iters) post_receives(r, size, 1);
    }
    if (scnt < iters) {
      posted[scnt] = now_ns();
      ++scnt;
      const bool signaled = scnt % static_cast<std::uint64_t>(o.cq_mod) == 0 || scnt == iters;
      w.post(*r.qp, scnt, signaled);
      if (signaled) scq.wait(wc, 1, [&] { return "the ACK of our SEND #" + std::to_string(scnt); });
    }
  }
  return latency_stats(posted, size, true);
}

// ---------------------------------------------------------------- bandwidth tests

// Every _bw client: tx-depth WRs in flight, every cq-mod-th (and the last)
// signalled; a completion covers every WR before it.
BwReport run_bw_client(Resources& r, const Options& o, const KeyMsg& peer, std::uint64_t size) {
  WorkRequest w(r, o, peer, size);
  CqWaiter cq(*r.send_cq, *r.qp, *r.dev, o.events, timeout_of(o));
  const std::uint64_t iters = static_cast<std::uint64_t>(o.iters);
  const std::uint64_t depth = static_cast<std::uint64_t>(o.tx_depth);
  const std::uint64_t mod = static_cast<std::uint64_t>(o.cq_mod);
  std::vector<std::uint64_t> posted(iters);
  std::vector<Completion> done;
  done.reserve(iters / mod + 2);
  std::uint64_t scnt = 0, ccnt = 0;
  ibv_wc wc[16];
  while (ccnt < iters) {
    while (scnt < iters && scnt - ccnt < depth) {
      const bool signaled = (scnt + 1) % mod == 0 || scnt + 1 == iters;
      posted[scnt] = now_ns();
      w.post(*r.qp, scnt, signaled);
      ++scnt;
    }
    const int n = cq.wait(wc, 16, [&] {
      return "completions of our " + std::string(op_name(o)) + "s (" + std::to_string(ccnt) + " of " +
             std::to_string(iters) + " complete, " + std::to_string(scnt - ccnt) + " in flight)";
    });
    const std::uint64_t t = now_ns();
    for (int i = 0; i < n; ++i) {
      ccnt = wc[i].wr_id + 1;
      done.push_back({wc[i].wr_id, t});
    }
  }
  BwReport rep = bw_stats(size, posted, done, o.report_gbits);
  if (o.no_peak) rep.bw_peak = 0;
  return rep;
}

// ib_send_bw's server: counts receives, reposting while more will come.
BwReport run_send_bw_server(Resources& r, const Options& o, std::uint64_t size) {
  CqWaiter cq(r.rcq(), *r.qp, *r.dev, o.events, timeout_of(o));
  const std::uint64_t iters = static_cast<std::uint64_t>(o.iters);
  std::uint64_t rcnt = 0, posted = static_cast<std::uint64_t>(o.rx_depth), first = 0;
  ibv_wc wc[16];
  while (rcnt < iters) {
    const int n = cq.wait(
        wc, 16, [&] { return "the client's SEND #" + std::to_string(rcnt + 1) + " of " + std::to_string(iters); });
    if (rcnt == 0) first = now_ns();
    rcnt += static_cast<std::uint64_t>(n);
    for (int i = 0; i < n && posted < iters; ++i, ++posted) post_receives(r, size, 1);
  }
  return bw_stats_receiver(size, iters, first, now_ns(), o.report_gbits);
}

// ---------------------------------------------------------------- one run

nlohmann::json stats_json(const DeviceStats& st) {
  return {{"rx_packets", st.rx_packets},
          {"tx_packets", st.tx_packets},
          {"rx_bad_icrc", st.rx_bad_icrc},
          {"rx_malformed", st.rx_malformed},
          {"rx_unknown_opcode", st.rx_unknown_opcode},
          {"rx_no_qp", st.rx_no_qp},
          {"retransmits", st.retransmits},
          {"naks_sent", st.naks_sent},
          {"rnr_naks_sent", st.rnr_naks_sent},
          {"duplicates", st.duplicates},
          {"engine_busy_ns", st.engine_busy_ns},
          {"engine_wakeups", st.engine_wakeups}};
}

// One test between two hosts: what run_session calls back into.
struct TestRun {
  const Options& o;
  Device& dev;
  std::string peer_name;
  perftest::Negotiated neg;
  Resources res;
  KeyMsg mine;
  KeyMsg peer;
  nlohmann::json results = nlohmann::json::array();

  void record(nlohmann::json figures, const char* source) {
    figures["test"] = o.test;
    figures["role"] = o.client() ? "client" : "server";
    figures["source"] = source;
    figures["backend"] = dev.backend();
    figures["peer"] = peer_name;
    figures["mtu"] = mtu_to_bytes(neg.mtu);
    figures["device_stats"] = stats_json(dev.stats());  // cumulative, up to this size
    figures["io_counters"] = dev.io_counters();
    results.push_back(std::move(figures));
  }

  std::optional<BwReport> run_size(std::uint64_t size) {
    const Verb v = o.kind.verb;
    if (o.lat()) {
      LatResult l = v == Verb::kWrite  ? run_write_lat(res, o, peer, size)
                    : v == Verb::kSend ? run_send_lat(res, o, peer, size)
                                       : run_lat_client(res, o, peer, size);
      std::printf("%s\n", lat_line(l).c_str());
      std::fflush(stdout);
      record(lat_json(l), "local");
      return std::nullopt;
    }
    BwReport b = o.client() ? run_bw_client(res, o, peer, size) : run_send_bw_server(res, o, size);
    std::printf("%s\n", bw_line(b, o.report_gbits).c_str());
    std::fflush(stdout);
    record(bw_json(b, o.report_gbits), "local");
    return b;
  }

  void prepare(std::uint64_t size) {
    if (o.kind.verb == Verb::kSend && (o.lat() || !o.client())) post_receives(res, size, o.rx_depth);
  }

  void peer_report(const BwReport& b) {
    std::printf("%s\n", bw_line(b, o.report_gbits).c_str());
    record(bw_json(b, o.report_gbits), "peer");
  }

  void print_results_header() {
    std::printf("%s\n%s\n", kRule, o.lat() ? lat_header().c_str() : bw_header(o.report_gbits).c_str());
    std::fflush(stdout);
  }

  void connect(const KeyMsg& p) {
    peer = p;
    connect_qp(dev, res, o, neg, peer);
    print_address("local", mine, o.kind.verb);
    print_address("remote", peer, o.kind.verb);
    // A passive latency server prints no figures (ib_read_lat's neither).
    if (!(o.lat() && !o.client() && perftest::server_is_passive(o.kind))) print_results_header();
  }

  perftest::SessionHooks hooks() {
    perftest::SessionHooks h;
    h.connect = [this](const KeyMsg& p) { connect(p); };
    h.prepare = [this](std::uint64_t size) { prepare(size); };
    h.run = [this](std::uint64_t size) { return run_size(size); };
    h.peer_report = [this](const BwReport& b) { peer_report(b); };
    return h;
  }
};

void print_test_info(const Options& o, const Device& dev, const perftest::Negotiated& neg, std::uint32_t out_reads) {
  static constexpr const char* kVerbNames[] = {"Send", "RDMA_Write", "RDMA_Read", "Atomic"};
  std::string title = kVerbNames[static_cast<int>(o.kind.verb)];
  if (o.kind.verb == Verb::kAtomic) title += " " + o.atomic_type;
  title += o.kind.bw ? " BW Test" : " Latency Test";
  std::printf("%s\n                    %s\n", kRule, title.c_str());
  std::printf(" Dual-port       : OFF\t\tDevice         : %s\n", dev.name().c_str());
  std::printf(" Number of qps   : 1\t\tTransport type : IB\n");
  std::printf(" Connection type : RC\t\tUsing SRQ      : OFF\n");
  std::printf(" Back-end        : %s\n", dev.backend().c_str());
  if (o.client() || o.lat()) std::printf(" TX depth        : %d\n", o.tx_depth);
  if (o.kind.verb == Verb::kSend && (!o.client() || o.lat())) std::printf(" RX depth        : %d\n", o.rx_depth);
  if (o.kind.bw) std::printf(" CQ Moderation   : %d\n", o.cq_mod);
  std::printf(" Mtu             : %d[B]\n", mtu_to_bytes(neg.mtu));
  std::printf(" Link type       : Ethernet\n");
  std::printf(" GID index       : %d\n", o.gid_index >= 0 ? o.gid_index : 1);
  if (o.kind.verb == Verb::kRead || o.kind.verb == Verb::kAtomic) std::printf(" Outstand reads  : %u\n", out_reads);
  std::printf(" Max inline data : %d[B]\n", o.inline_size);
  std::printf(" rdma_cm QPs\t : OFF\n Data ex. method : Ethernet\n%s\n", kRule);
  std::fflush(stdout);
}

perftest::SizePlan sizes_of(const Options& o) {
  return o.all ? perftest::SizePlan::sweep() : perftest::SizePlan::one(o.size);
}

ibv_mtu choose_mtu(const Options& o, const Device& dev) {
  const ibv_mtu active = dev.active_mtu();
  if (o.mtu == 0) return active;
  const ibv_mtu want = mtu_from_bytes(o.mtu);
  if (want > active) {
    std::printf("Requested mtu is higher than active mtu \nChanging to active mtu - %d\n", static_cast<int>(active));
    return active;
  }
  return want;
}

TcpConn open_connection(const Options& o) {
  if (o.client()) return TcpConn::connect(o.host, o.port, static_cast<int>(o.connect_retry_s * 1000));
  TcpListener listener(o.port);
  std::printf(
      "\n************************************\n* Waiting for client to connect... *\n"
      "************************************\n");
  std::fflush(stdout);
  return listener.accept();
}

void run(const Options& o) {
  std::unique_ptr<Device> dev = open_device(o.dev, o.backend);
  const ibv_mtu mtu = choose_mtu(o, *dev);
  TcpConn conn = open_connection(o);
  perftest::Comm comm(conn, o.client(), static_cast<int>(o.tcp_timeout_s * 1000));
  const int cache_line = static_cast<int>(std::max(64L, ::sysconf(_SC_LEVEL1_DCACHE_LINESIZE)));
  TestRun t{o, *dev, conn.peer(), comm.negotiate(static_cast<int>(page_size()), cache_line, mtu), {}, {}, {}};
  t.res = make_resources(*dev, o, t.neg);
  t.mine = my_keys(*dev, t.res);
  print_test_info(o, *dev, t.neg, t.res.out_reads);
  perftest::run_session(comm, o.kind, t.mine, sizes_of(o), t.hooks());
  std::printf("%s\n", kRule);
  std::fflush(stdout);
  // ib_write_lat ends without a handshake: let our last ACK reach the peer.
  if (o.kind.verb == Verb::kWrite && o.lat()) linger(*dev, std::chrono::milliseconds(100), std::chrono::seconds(1));
  if (!o.json.empty()) fastpath::write_json(t.results, o.json);
}

}  // namespace
}  // namespace urdma::tools::perf

int main(int argc, char** argv) {
  using namespace urdma::tools::perf;
  CLI::App app{"urdma-perf: perftest's latency and bandwidth tests on urdma, a peer of ib_*_lat/ib_*_bw"};
  Options o;
  add_options(app, o);
  return urdma::tools::tool_main(kTool, app, argc, argv, [&] {
    apply_defaults(o);
    run(o);
  });
}
