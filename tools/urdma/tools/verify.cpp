// SPDX-License-Identifier: GPL-2.0
// urdma-verify: every verbs operation at every size between two urdma
// processes, with the data checked at both ends.  perftest and rc_pingpong
// measure but do not look at what arrived; this tool does, so it is what the
// host integration test runs over a veth between two network namespaces,
// with fault injection on the back-ends.
//
//   urdma-verify --backend dpdk:iface=va,ip=10.0.0.11,drop=0.01      # server
//   urdma-verify --backend dpdk:iface=vb,ip=10.0.0.12 10.0.0.1        # client
//
// The client drives; the server owns a target region (remote write, read
// and atomic) and a receive buffer, and obeys commands sent over the TCP
// side channel: fill the region with a pattern, check it, post a receive and
// check what the next receive completion brought, read or set an atomic
// word.  For each size the client runs RDMA WRITE, WRITE with immediate,
// SEND (inline where it fits), SEND with immediate and RDMA READ, each
// through two scatter-gather entries when the size allows; then
// fetch-and-add and compare-and-swap on one word.  The client prints TAP,
// one line per check; both ends exit 1 on the first mismatch or error.
#include <arpa/inet.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "fastpath/cli.h"

namespace urdma::tools::verify {
namespace {

constexpr char kTool[] = "urdma-verify";
constexpr std::uint32_t kMagic = 0x75766679;  // "uvfy"

// The server's region: max_size bytes of data, then (8-aligned, a cache
// line further) the word the atomics work on, its last 8 bytes.
std::uint64_t word_offset(std::uint64_t max_size) {
  return (max_size + 7) / 8 * 8 + 64;
}

struct Options {
  std::string host;  // empty: server
  unsigned port = 18620;
  std::string backend;
  std::string sizes_text = "1,3,64,255,1024,1025,4096,65536,1M,16M";
  std::vector<std::uint64_t> sizes;
  std::string max_size_text;
  std::uint64_t max_size = 0;
  std::uint64_t seed = 1;
  int mtu = 0;  // 0: the device's active MTU
  int atomics = 64;
  double timeout_s = 30;
  double connect_retry_s = 10;
  bool client() const { return !host.empty(); }
};

// What each end tells the other over TCP, in host byte order (both ends are
// this tool on the same kind of machine).
struct Hello {
  std::uint32_t magic = kMagic;
  std::uint32_t qpn = 0, psn = 0, rkey = 0;
  std::uint64_t addr = 0, len = 0;  // server: the target region
  ibv_gid gid{};
  std::uint32_t mtu = 0;  // bytes
  std::uint32_t pad = 0;
};

enum class CmdOp : std::uint32_t { Fill = 1, Check, PostRecv, ExpectRecv, SetWord, GetWord, Done };

struct Cmd {
  CmdOp op{};
  std::uint32_t imm = 0;     // ExpectRecv: the immediate expected (with_imm)
  std::uint64_t size = 0;    // bytes
  std::uint64_t seed = 0;    // pattern
  std::uint64_t value = 0;   // SetWord
  std::uint32_t opcode = 0;  // ExpectRecv: IBV_WC_RECV or IBV_WC_RECV_RDMA_WITH_IMM
  std::uint32_t with_imm = 0;
};

struct Reply {
  std::uint32_t ok = 0;
  std::uint32_t pad = 0;
  std::uint64_t value = 0;
  char why[240] = {};
};

// The pattern: 8 bytes per offset i (a multiple of 8) from a mix of the
// seed and i, so that a block written to the wrong place, a stale block and
// a message of another step all show.
std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t x = (seed * 0x9e3779b97f4a7c15ULL) ^ ((i + 1) * 0xbf58476d1ce4e5b9ULL);
  x ^= x >> 31;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 29);
}

void fill_pattern(std::uint8_t* p, std::uint64_t n, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < n; i += 8) {
    const std::uint64_t x = pattern_word(seed, i);
    std::memcpy(p + i, &x, std::min<std::uint64_t>(8, n - i));
  }
}

// "" or where the first difference is.
std::string check_pattern(const std::uint8_t* p, std::uint64_t n, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < n; i += 8) {
    const std::uint64_t k = std::min<std::uint64_t>(8, n - i);
    std::uint8_t want[8];
    const std::uint64_t x = pattern_word(seed, i);
    std::memcpy(want, &x, 8);
    if (std::memcmp(p + i, want, k) != 0) {
      std::uint64_t j = 0;
      while (j < k && p[i + j] == want[j]) ++j;
      char why[128];
      std::snprintf(why, sizeof(why), "byte %" PRIu64 " of %" PRIu64 " is 0x%02x, expected 0x%02x", i + j, n, p[i + j],
                    want[j]);
      return why;
    }
  }
  return "";
}

void add_options(CLI::App& app, Options& o) {
  app.add_option("SERVER", o.host, "server to connect to (none: be the server and wait for a client)");
  app.add_option("--backend", o.backend, "packet I/O: dpdk:iface=IF,ip=A.B.C.D | udp:ip=A.B.C.D (see Device::open)")
      ->required();
  app.add_option("-p,--port", o.port, "TCP port of the side channel")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--sizes", o.sizes_text, "client: message sizes, comma-separated (K, M suffixes)")
      ->capture_default_str();
  app.add_option("--max-size", o.max_size_text, "server: largest message the client may use (default: 16M)")
      ->check(fastpath::cli::size_validator());
  app.add_option("--seed", o.seed, "client: pattern seed")->capture_default_str();
  app.add_option("-m,--mtu", o.mtu, "path MTU (default: the device's active MTU)");
  app.add_option("--atomics", o.atomics, "client: fetch-and-adds to run (then compare-and-swaps)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--timeout", o.timeout_s, "give up when nothing arrives for this long (seconds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-retry", o.connect_retry_s, "client: retry a refused TCP connection this long (seconds)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

void validate(Options& o) {
  std::string item;
  for (std::size_t start = 0; start <= o.sizes_text.size();) {
    const std::size_t comma = std::min(o.sizes_text.find(',', start), o.sizes_text.size());
    item = o.sizes_text.substr(start, comma - start);
    std::uint64_t s = 0;
    try {
      s = fastpath::cli::parse_size(item);
    } catch (const std::exception& e) {
      throw std::runtime_error("--sizes: '" + item + "': " + e.what());
    }
    if (s == 0 || s > (1ULL << 30)) throw std::runtime_error("--sizes: " + item + " is not between 1 byte and 1 GiB");
    o.sizes.push_back(s);
    start = comma + 1;
  }
  if (!o.max_size_text.empty()) o.max_size = fastpath::cli::parse_size(o.max_size_text);
  if (o.max_size == 0) o.max_size = o.client() ? *std::max_element(o.sizes.begin(), o.sizes.end()) : 16ULL << 20;
  if (o.mtu != 0 && mtu_from_bytes(o.mtu) == 0)
    throw std::runtime_error("-m: the path MTU must be 256, 512, 1024, 2048 or 4096");
}

struct Context {
  std::unique_ptr<Device> dev;
  std::unique_ptr<Pd> pd;
  std::unique_ptr<Buffer> region;  // server: target of WRITE/READ/atomics; client: its local buffer
  std::unique_ptr<Buffer> recv;    // server: receive buffer
  std::unique_ptr<Buffer> word;    // client: where atomics return the original value
  std::unique_ptr<Mr> region_mr, recv_mr, word_mr;
  std::unique_ptr<Cq> cq;
  std::unique_ptr<Qp> qp;
  int mtu = 1024;
};

Context make_context(const Options& o) {
  Context c;
  c.dev = open_device("urdma0", o.backend);
  c.mtu = o.mtu ? o.mtu : mtu_to_bytes(c.dev->active_mtu());
  if (mtu_from_bytes(c.mtu) > c.dev->active_mtu())
    throw std::runtime_error("-m " + std::to_string(c.mtu) + " is larger than the device's active MTU " +
                             std::to_string(mtu_to_bytes(c.dev->active_mtu())));
  c.pd = c.dev->alloc_pd();
  const int all = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  c.region = std::make_unique<Buffer>(word_offset(o.max_size) + 8);
  c.region_mr = c.pd->reg_mr(c.region->data(), c.region->size(), o.client() ? IBV_ACCESS_LOCAL_WRITE : all);
  if (o.client()) {
    c.word = std::make_unique<Buffer>(64);
    c.word_mr = c.pd->reg_mr(c.word->data(), c.word->size(), IBV_ACCESS_LOCAL_WRITE);
  } else {
    c.recv = std::make_unique<Buffer>(o.max_size);
    c.recv_mr = c.pd->reg_mr(c.recv->data(), c.recv->size(), IBV_ACCESS_LOCAL_WRITE);
  }
  c.cq = c.dev->create_cq(256);
  QpInitAttr init;
  init.send_cq = c.cq.get();
  init.recv_cq = c.cq.get();
  init.cap.max_send_wr = 64;
  init.cap.max_recv_wr = 16;
  init.cap.max_send_sge = 2;
  init.cap.max_recv_sge = 2;
  init.cap.max_inline_data = 64;
  c.qp = c.pd->create_qp(init);
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = o.client() ? 0 : all;
  modify_qp(*c.qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  return c;
}

void connect_qp(Context& c, std::uint32_t my_psn, const Hello& peer) {
  check_peer_gid(peer.gid, "--backend ip=");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = mtu_from_bytes(std::min<int>(c.mtu, static_cast<int>(peer.mtu)));
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = 16;
  a.min_rnr_timer = 1;
  a.ah_attr.is_global = 1;
  a.ah_attr.port_num = 1;
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.sgid_index = 1;
  modify_qp(*c.qp, a,
            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                IBV_QP_MIN_RNR_TIMER,
            "RTR");
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 12;  // 16.8 ms: drops are injected, so tail losses wait for the timer
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.sq_psn = my_psn;
  a.max_rd_atomic = 16;
  modify_qp(
      *c.qp, a,
      IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC,
      "RTS");
}

Hello my_hello(const Context& c, std::uint32_t psn) {
  Hello h;
  h.qpn = c.qp->qp_num();
  h.psn = psn;
  h.rkey = c.region_mr->rkey();
  h.addr = reinterpret_cast<std::uint64_t>(c.region->data());
  h.len = c.region->size();
  h.gid = c.dev->gid();
  h.mtu = static_cast<std::uint32_t>(c.mtu);
  return h;
}

void check_hello(const Hello& h) {
  if (h.magic != kMagic)
    throw std::runtime_error("the peer on the TCP port is not urdma-verify (bad greeting); check --port");
}

std::chrono::milliseconds timeout_of(const Options& o) {
  return std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000));
}

// ---- server ----

class Server {
 public:
  Server(Context& c, const Options& o, TcpConn& conn)
      : c_(c), o_(o), conn_(conn), cq_(*c.cq, *c.qp, *c.dev, false, timeout_of(o)) {}

  // Serves commands until Done; true when every check passed.
  bool run() {
    bool all_ok = true;
    for (;;) {
      Cmd cmd;
      conn_.recv_exact(&cmd, sizeof(cmd), -1, "the client's next command");
      if (cmd.op == CmdOp::Done) break;
      Reply r;
      std::string why;
      try {
        why = execute(cmd, r.value);
      } catch (const std::exception& e) {
        why = e.what();
      }
      r.ok = why.empty();
      std::snprintf(r.why, sizeof(r.why), "%s", why.c_str());
      if (!r.ok) {
        all_ok = false;
        std::fprintf(stderr, "%s: check failed: %s\n", kTool, why.c_str());
      }
      conn_.send_all(&r, sizeof(r), "a reply");
    }
    return all_ok;
  }

 private:
  std::string execute(const Cmd& cmd, std::uint64_t& value) {
    if (cmd.size > o_.max_size)
      return "size " + std::to_string(cmd.size) + " is larger than the server's --max-size " +
             std::to_string(o_.max_size);
    std::uint8_t* region = c_.region->data();
    auto* word = reinterpret_cast<std::uint64_t*>(region + word_offset(o_.max_size));
    switch (cmd.op) {
      case CmdOp::Fill:
        fill_pattern(region, cmd.size, cmd.seed);
        return "";
      case CmdOp::Check:
        return check_pattern(region, cmd.size, cmd.seed);
      case CmdOp::PostRecv: {
        std::memset(c_.recv->data(), 0, cmd.size);
        // Two entries when the size allows: the scatter list is checked too.
        const std::uint32_t half = static_cast<std::uint32_t>(cmd.size / 2);
        ibv_sge sge[2] = {{reinterpret_cast<std::uint64_t>(c_.recv->data()), half, c_.recv_mr->lkey()},
                          {reinterpret_cast<std::uint64_t>(c_.recv->data()) + half,
                           static_cast<std::uint32_t>(cmd.size - half), c_.recv_mr->lkey()}};
        ibv_recv_wr wr{};
        wr.wr_id = cmd.size;
        wr.sg_list = half ? sge : sge + 1;
        wr.num_sge = half ? 2 : 1;
        ibv_recv_wr* bad = nullptr;
        if (const int err = c_.qp->post_recv(&wr, &bad)) return std::string("post_recv: ") + std::strerror(err);
        return "";
      }
      case CmdOp::ExpectRecv: {
        ibv_wc wc{};
        cq_.wait(&wc, 1, [] { return std::string("the receive completion"); });
        if (wc.opcode != static_cast<ibv_wc_opcode>(cmd.opcode))
          return std::string("completion opcode ") + wc_opcode_str(wc.opcode) + ", expected " +
                 wc_opcode_str(static_cast<ibv_wc_opcode>(cmd.opcode));
        if (bool(wc.wc_flags & IBV_WC_WITH_IMM) != bool(cmd.with_imm))
          return cmd.with_imm ? "no immediate data in the completion" : "unexpected immediate data";
        if (cmd.with_imm && wc.imm_data != htonl(cmd.imm))
          return "immediate " + std::to_string(ntohl(wc.imm_data)) + ", expected " + std::to_string(cmd.imm);
        if (cmd.opcode == IBV_WC_RECV) {
          if (wc.byte_len != cmd.size)
            return "byte_len " + std::to_string(wc.byte_len) + ", expected " + std::to_string(cmd.size);
          return check_pattern(c_.recv->data(), cmd.size, cmd.seed);
        }
        return check_pattern(region, cmd.size, cmd.seed);  // WRITE with immediate
      }
      case CmdOp::SetWord:
        *word = cmd.value;
        return "";
      case CmdOp::GetWord:
        value = *word;
        return "";
      case CmdOp::Done:
        break;
    }
    return "unknown command " + std::to_string(static_cast<unsigned>(cmd.op));
  }

  Context& c_;
  const Options& o_;
  TcpConn& conn_;
  CqWaiter cq_;
};

// ---- client ----

class Client {
 public:
  Client(Context& c, const Options& o, TcpConn& conn, const Hello& peer)
      : c_(c), o_(o), conn_(conn), peer_(peer), cq_(*c.cq, *c.qp, *c.dev, false, timeout_of(o)) {}

  int run() {
    const int per_size = 5;
    std::printf("TAP version 13\n1..%zu\n", o_.sizes.size() * per_size + 2);
    std::uint64_t seed = o_.seed;
    for (const std::uint64_t size : o_.sizes) {
      check(size, "RDMA WRITE", write(size, ++seed, false));
      check(size, "RDMA WRITE with immediate", write(size, ++seed, true));
      check(size, "SEND", send(size, ++seed, false));
      check(size, "SEND with immediate", send(size, ++seed, true));
      check(size, "RDMA READ", read(size, ++seed));
    }
    check(8, "fetch-and-add", fetch_add(++seed));
    check(8, "compare-and-swap", compare_swap(++seed));
    Cmd done;
    done.op = CmdOp::Done;
    conn_.send_all(&done, sizeof(done), "the last command");
    std::printf("# %d passed, %d failed\n", n_ - failed_, failed_);
    const DeviceStats s = c_.dev->stats();
    std::printf("# client: %" PRIu64 " packets in, %" PRIu64 " out, %" PRIu64 " retransmits, %" PRIu64
                " duplicates, %" PRIu64 " bad ICRC, %" PRIu64 " NAKs sent\n",
                s.rx_packets, s.tx_packets, s.retransmits, s.duplicates, s.rx_bad_icrc, s.naks_sent);
    return failed_ ? 1 : 0;
  }

 private:
  void check(std::uint64_t size, const char* what, const std::string& why) {
    ++n_;
    if (why.empty()) {
      std::printf("ok %d - %s, %" PRIu64 " B\n", n_, what, size);
    } else {
      ++failed_;
      std::printf("not ok %d - %s, %" PRIu64 " B: %s\n", n_, what, size, why.c_str());
    }
    std::fflush(stdout);
  }

  // Sends a command and returns the server's verdict ("" when it passed).
  std::string ask(const Cmd& cmd, std::uint64_t* value = nullptr) {
    conn_.send_all(&cmd, sizeof(cmd), "a command");
    Reply r;
    conn_.recv_exact(&r, sizeof(r), static_cast<int>(o_.timeout_s * 1000), "the server's reply");
    if (value) *value = r.value;
    return r.ok ? "" : std::string("server: ") + r.why;
  }

  std::string ask(CmdOp op, std::uint64_t size, std::uint64_t seed) {
    Cmd cmd;
    cmd.op = op;
    cmd.size = size;
    cmd.seed = seed;
    return ask(cmd);
  }

  // Posts one work request over the first `size` bytes of the local buffer
  // (two scatter-gather entries when size >= 2) and waits for its completion.
  void post_and_wait(ibv_send_wr& wr, std::uint64_t size, const char* what) {
    const std::uint32_t half = static_cast<std::uint32_t>(size / 2);
    const auto base = reinterpret_cast<std::uint64_t>(c_.region->data());
    ibv_sge sge[2] = {{base, half, c_.region_mr->lkey()},
                      {base + half, static_cast<std::uint32_t>(size - half), c_.region_mr->lkey()}};
    wr.sg_list = half ? sge : sge + 1;
    wr.num_sge = half ? 2 : 1;
    wr.send_flags |= IBV_SEND_SIGNALED;
    wr.wr_id = ++wr_id_;
    ibv_send_wr* bad = nullptr;
    if (const int err = c_.qp->post_send(&wr, &bad))
      throw std::runtime_error(std::string("cannot post ") + what + ": " + std::strerror(err) + " (QP " +
                               qp_state_str(c_.qp->state()) + ")");
    ibv_wc wc{};
    cq_.wait(&wc, 1, [what] { return std::string("the completion of ") + what; });
    if (wc.wr_id != wr_id_) throw std::runtime_error("completion for wr_id " + std::to_string(wc.wr_id));
  }

  std::string write(std::uint64_t size, std::uint64_t seed, bool imm) {
    if (imm)
      if (auto why = ask(CmdOp::PostRecv, 0, 0); !why.empty()) return why;
    fill_pattern(c_.region->data(), size, seed);
    ibv_send_wr wr{};
    wr.opcode = imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE;
    wr.imm_data = htonl(static_cast<std::uint32_t>(seed));
    wr.wr.rdma.remote_addr = peer_.addr;
    wr.wr.rdma.rkey = peer_.rkey;
    post_and_wait(wr, size, imm ? "RDMA WRITE with immediate" : "RDMA WRITE");
    if (!imm) return ask(CmdOp::Check, size, seed);
    Cmd cmd;
    cmd.op = CmdOp::ExpectRecv;
    cmd.size = size;
    cmd.seed = seed;
    cmd.opcode = IBV_WC_RECV_RDMA_WITH_IMM;
    cmd.with_imm = 1;
    cmd.imm = static_cast<std::uint32_t>(seed);
    return ask(cmd);
  }

  std::string send(std::uint64_t size, std::uint64_t seed, bool imm) {
    if (auto why = ask(CmdOp::PostRecv, size, 0); !why.empty()) return why;
    fill_pattern(c_.region->data(), size, seed);
    ibv_send_wr wr{};
    wr.opcode = imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
    wr.imm_data = htonl(static_cast<std::uint32_t>(seed));
    if (size <= 64) wr.send_flags = IBV_SEND_INLINE;
    post_and_wait(wr, size, imm ? "SEND with immediate" : "SEND");
    Cmd cmd;
    cmd.op = CmdOp::ExpectRecv;
    cmd.size = size;
    cmd.seed = seed;
    cmd.opcode = IBV_WC_RECV;
    cmd.with_imm = imm;
    cmd.imm = static_cast<std::uint32_t>(seed);
    return ask(cmd);
  }

  std::string read(std::uint64_t size, std::uint64_t seed) {
    if (auto why = ask(CmdOp::Fill, size, seed); !why.empty()) return why;
    std::memset(c_.region->data(), 0, size);
    ibv_send_wr wr{};
    wr.opcode = IBV_WR_RDMA_READ;
    wr.wr.rdma.remote_addr = peer_.addr;
    wr.wr.rdma.rkey = peer_.rkey;
    post_and_wait(wr, size, "RDMA READ");
    return check_pattern(c_.region->data(), size, seed);
  }

  // One atomic on the server's word; returns the original value it saw.
  std::uint64_t atomic(ibv_wr_opcode op, std::uint64_t compare_add, std::uint64_t swap) {
    auto* result = reinterpret_cast<std::uint64_t*>(c_.word->data());
    *result = 0xdeadbeefdeadbeefULL;
    ibv_sge sge{reinterpret_cast<std::uint64_t>(result), 8, c_.word_mr->lkey()};
    ibv_send_wr wr{};
    wr.opcode = op;
    wr.wr.atomic.remote_addr = peer_.addr + peer_.len - 8;
    wr.wr.atomic.rkey = peer_.rkey;
    wr.wr.atomic.compare_add = compare_add;
    wr.wr.atomic.swap = swap;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr_id = ++wr_id_;
    ibv_send_wr* bad = nullptr;
    if (const int err = c_.qp->post_send(&wr, &bad))
      throw std::runtime_error(std::string("cannot post an atomic: ") + std::strerror(err));
    ibv_wc wc{};
    cq_.wait(&wc, 1, [] { return std::string("the completion of an atomic"); });
    return *result;
  }

  std::string set_word(std::uint64_t v) {
    Cmd cmd;
    cmd.op = CmdOp::SetWord;
    cmd.value = v;
    return ask(cmd);
  }

  std::string word_is(std::uint64_t want) {
    Cmd cmd;
    cmd.op = CmdOp::GetWord;
    std::uint64_t v = 0;
    if (auto why = ask(cmd, &v); !why.empty()) return why;
    if (v != want) return "the word is " + std::to_string(v) + ", expected " + std::to_string(want);
    return "";
  }

  std::string fetch_add(std::uint64_t seed) {
    std::uint64_t v = seed << 32;
    if (auto why = set_word(v); !why.empty()) return why;
    for (int i = 0; i < o_.atomics; ++i) {
      const std::uint64_t add = 1 + std::uint64_t(i) * 7;
      const std::uint64_t orig = atomic(IBV_WR_ATOMIC_FETCH_AND_ADD, add, 0);
      if (orig != v)
        return "fetch-and-add #" + std::to_string(i + 1) + " returned " + std::to_string(orig) + ", expected " +
               std::to_string(v) + " (an atomic ran twice or not at all)";
      v += add;
    }
    return word_is(v);
  }

  std::string compare_swap(std::uint64_t seed) {
    std::uint64_t v = seed;
    if (auto why = set_word(v); !why.empty()) return why;
    for (int i = 0; i < o_.atomics; ++i) {
      // A compare that fails leaves the word alone and returns it.
      std::uint64_t orig = atomic(IBV_WR_ATOMIC_CMP_AND_SWP, v + 1, 0);
      if (orig != v) return "a failing compare-and-swap returned " + std::to_string(orig);
      orig = atomic(IBV_WR_ATOMIC_CMP_AND_SWP, v, v * 3 + 1);
      if (orig != v) return "compare-and-swap #" + std::to_string(i + 1) + " returned " + std::to_string(orig);
      v = v * 3 + 1;
    }
    return word_is(v);
  }

  Context& c_;
  const Options& o_;
  TcpConn& conn_;
  Hello peer_;
  CqWaiter cq_;
  std::uint64_t wr_id_ = 0;
  int n_ = 0, failed_ = 0;
};

int run(const Options& o) {
  Context c = make_context(o);
  const std::uint32_t psn = random_psn();
  const int tcp_ms = static_cast<int>(o.timeout_s * 1000);
  if (o.client()) {
    TcpConn conn = TcpConn::connect(o.host, static_cast<int>(o.port), static_cast<int>(o.connect_retry_s * 1000));
    const Hello mine = my_hello(c, psn);
    conn.send_all(&mine, sizeof(mine), "our greeting");
    Hello peer;
    conn.recv_exact(&peer, sizeof(peer), tcp_ms, "the server's greeting");
    check_hello(peer);
    if (peer.len < o.max_size + 8)
      throw std::runtime_error("the server's region holds " + std::to_string(peer.len) +
                               " bytes, less than the largest --sizes: give the server --max-size " +
                               std::to_string(o.max_size));
    connect_qp(c, psn, peer);
    Client client(c, o, conn, peer);
    const int rc = client.run();
    linger(*c.dev, std::chrono::milliseconds(100), std::chrono::seconds(1));
    return rc;
  }
  TcpListener listener(static_cast<int>(o.port));
  std::printf("%s: %s, waiting on TCP port %d\n", kTool, c.dev->backend().c_str(), listener.port());
  std::fflush(stdout);
  TcpConn conn = listener.accept();
  Hello peer;
  conn.recv_exact(&peer, sizeof(peer), tcp_ms, "the client's greeting");
  check_hello(peer);
  connect_qp(c, psn, peer);
  const Hello mine = my_hello(c, psn);
  conn.send_all(&mine, sizeof(mine), "our greeting");
  Server server(c, o, conn);
  const bool ok = server.run();
  const DeviceStats s = c.dev->stats();
  std::printf(
      "%s: server: %s; %" PRIu64 " packets in, %" PRIu64 " out, %" PRIu64 " retransmits, %" PRIu64 " duplicates\n",
      kTool, ok ? "every check passed" : "a check FAILED", s.rx_packets, s.tx_packets, s.retransmits, s.duplicates);
  linger(*c.dev, std::chrono::milliseconds(100), std::chrono::seconds(1));
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace urdma::tools::verify

int main(int argc, char** argv) {
  using namespace urdma::tools::verify;
  CLI::App app{"urdma-verify: every verbs operation at every size between two urdma processes, data checked"};
  Options o;
  add_options(app, o);
  int rc = 0;
  const int err = urdma::tools::tool_main(kTool, app, argc, argv, [&] {
    validate(o);
    rc = run(o);
  });
  return err ? err : rc;
}
