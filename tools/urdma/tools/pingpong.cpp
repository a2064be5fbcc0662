// SPDX-License-Identifier: GPL-2.0
// urdma-pingpong: rdma-core's ibv_rc_pingpong on urdma.  Same options,
// defaults, TCP exchange, QP attributes, SEND ping-pong and output, so either
// end can be the real ibv_rc_pingpong (give it -g <index of its ::ffff:IPv4
// GID>, usually -g 1 on rxe).
//
//   urdma-pingpong --backend dpdk:iface=veth1,ip=10.0.0.2            # server
//   urdma-pingpong --backend udp:ip=127.0.0.2 127.0.0.1              # client
//
// The loop, as rc_pingpong's: rx-depth receives posted up front (topped up
// when one or none is left), the client sends first, and each side posts its
// next SEND once its previous SEND has completed and the peer's has arrived.
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.h"
#include "fastpath/cli.h"
#include "perftest_exchange.h"

namespace urdma::tools::pingpong {
namespace {

constexpr char kTool[] = "urdma-pingpong";
constexpr std::uint64_t kRecvWrid = 1;
constexpr std::uint64_t kSendWrid = 2;

struct Options {
  std::string host;  // empty: server
  unsigned port = 18515;
  std::string dev = "urdma0";
  int ib_port = 1;
  std::string size_text = "4096";
  std::uint32_t size = 4096;
  int mtu = 1024;
  int rx_depth = 500;
  int iters = 1000;
  int sl = 0;
  bool events = false;
  int gid_idx = -1;
  bool odp = false, iodp = false, prefetch = false, ts = false, dm = false, new_send = false;
  bool chk = false;
  std::string backend;
  double timeout_s = 10;
  double tcp_timeout_s = 60;
  double connect_retry_s = 0;

  bool client() const { return !host.empty(); }
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("SERVER", o.host, "server to connect to (none: be the server and wait for a client)");
  app.add_option("--backend", o.backend, "packet I/O: dpdk:iface=IF,ip=A.B.C.D | udp:ip=A.B.C.D (see Device::open)")
      ->required();
  app.add_option("-p,--port", o.port, "listen on/connect to this TCP port")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("-d,--ib-dev", o.dev, "urdma device name")->capture_default_str();
  app.add_option("-i,--ib-port", o.ib_port, "device port (urdma has one: 1)")->capture_default_str();
  app.add_option("-s,--size", o.size_text, "size of message to exchange")
      ->capture_default_str()
      ->check(fastpath::cli::size_validator());
  app.add_option("-m,--mtu", o.mtu, "path MTU")->capture_default_str();
  app.add_option("-r,--rx-depth", o.rx_depth, "number of receives to post at a time")
      ->capture_default_str()
      ->check(CLI::Range(1, 16384));
  app.add_option("-n,--iters", o.iters, "number of exchanges")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("-l,--sl", o.sl, "service level value (accepted)")->check(CLI::Range(0, 15));
  app.add_flag("-e,--events", o.events, "sleep on CQ events (default poll)");
  app.add_option("-g,--gid-idx", o.gid_idx, "local port gid index (accepted; urdma uses its ::ffff:IPv4 GID)");
  app.add_flag("-o,--odp", o.odp, "use on demand paging (not supported)");
  app.add_flag("-O,--iodp", o.iodp, "use implicit on demand paging (not supported)");
  app.add_flag("-P,--prefetch", o.prefetch, "prefetch an ODP MR (not supported)");
  app.add_flag("-t,--ts", o.ts, "get CQE with timestamp (not supported)");
  app.add_flag("-c,--chk", o.chk, "validate received buffer");
  app.add_flag("-j,--dm", o.dm, "use device memory (not supported)");
  app.add_flag("-N,--new_send", o.new_send, "use new post send WR API (same wire; accepted)");
  app.add_option("--timeout", o.timeout_s, "give up when no completion arrives for this long (seconds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--tcp-timeout", o.tcp_timeout_s, "give up when the peer is silent this long in the exchange (s)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-retry", o.connect_retry_s, "client: retry a refused TCP connection this long (seconds)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

void validate(Options& o) {
  auto refuse = [](const std::string& flag, const std::string& what) {
    throw std::runtime_error(flag + ": " + what +
                             " is not supported by urdma (it has no on-demand paging, "
                             "completion timestamps or device memory); run without it");
  };
  if (o.odp) refuse("-o", "on demand paging");
  if (o.iodp) refuse("-O", "implicit on demand paging");
  if (o.prefetch) refuse("-P", "prefetching an ODP MR");
  if (o.ts) refuse("-t", "CQE timestamps");
  if (o.dm) refuse("-j", "device memory");
  if (o.ib_port != 1) throw std::runtime_error("-i " + std::to_string(o.ib_port) + ": an urdma device has one port, 1");
  if (mtu_from_bytes(o.mtu) == 0) throw std::runtime_error("-m: the path MTU must be 256, 512, 1024, 2048 or 4096");
  const std::uint64_t size = fastpath::cli::parse_size(o.size_text);
  if (size == 0 || size > 0x7fffffff) throw std::runtime_error("-s: the message size must be 1 .. 2147483647 bytes");
  o.size = static_cast<std::uint32_t>(size);
}

// rc_pingpong's pp_init_ctx; members in the order they are made.
struct Context {
  std::unique_ptr<Device> dev;
  std::unique_ptr<Pd> pd;
  std::unique_ptr<Buffer> buf;
  std::unique_ptr<Mr> mr;
  std::unique_ptr<Cq> cq;
  std::unique_ptr<Qp> qp;
  unsigned send_flags = IBV_SEND_SIGNALED;
};

Context make_context(const Options& o) {
  Context c;
  c.dev = open_device(o.dev, o.backend);
  if (mtu_from_bytes(o.mtu) > c.dev->active_mtu())
    throw std::runtime_error("-m " + std::to_string(o.mtu) + " is larger than the device's active MTU " +
                             std::to_string(mtu_to_bytes(c.dev->active_mtu())) +
                             " (from the link MTU): use a smaller -m, or mtu=BYTES in --backend");
  c.pd = c.dev->alloc_pd();
  c.buf = std::make_unique<Buffer>(o.size);
  std::memset(c.buf->data(), 0x7b, o.size);
  c.mr = c.pd->reg_mr(c.buf->data(), o.size, IBV_ACCESS_LOCAL_WRITE);
  c.cq = c.dev->create_cq(o.rx_depth + 1);
  QpInitAttr init;
  init.send_cq = c.cq.get();
  init.recv_cq = c.cq.get();
  init.cap.max_send_wr = 1;
  init.cap.max_recv_wr = static_cast<std::uint32_t>(o.rx_depth);
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  c.qp = c.pd->create_qp(init);
  if (init.cap.max_inline_data >= o.size) c.send_flags |= IBV_SEND_INLINE;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = 1;
  a.qp_access_flags = 0;
  modify_qp(*c.qp, a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  return c;
}

// rc_pingpong's pp_connect_ctx.
void connect_qp(Context& c, const Options& o, std::uint32_t my_psn, const PingpongDest& peer) {
  check_peer_gid(peer.gid, "-g");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = mtu_from_bytes(o.mtu);
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.dlid = static_cast<std::uint16_t>(peer.lid);
  a.ah_attr.sl = static_cast<std::uint8_t>(o.sl);
  a.ah_attr.port_num = static_cast<std::uint8_t>(o.ib_port);
  a.ah_attr.grh.hop_limit = 1;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(o.gid_idx >= 0 ? o.gid_idx : 1);
  modify_qp(*c.qp, a,
            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                IBV_QP_MIN_RNR_TIMER,
            "RTR");
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.sq_psn = my_psn;
  a.max_rd_atomic = 1;
  modify_qp(
      *c.qp, a,
      IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC,
      "RTS");
}

int post_recvs(Context& c, std::uint32_t size, int n) {
  ibv_sge sge{reinterpret_cast<std::uint64_t>(c.buf->data()), size, c.mr->lkey()};
  ibv_recv_wr wr{};
  wr.wr_id = kRecvWrid;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  int i = 0;
  for (ibv_recv_wr* bad = nullptr; i < n && c.qp->post_recv(&wr, &bad) == 0; ++i) {
  }
  return i;
}

void post_send(Context& c, std::uint32_t size) {
  ibv_sge sge{reinterpret_cast<std::uint64_t>(c.buf->data()), size, c.mr->lkey()};
  ibv_send_wr wr{};
  wr.wr_id = kSendWrid;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = c.send_flags;
  ibv_send_wr* bad = nullptr;
  if (const int err = c.qp->post_send(&wr, &bad))
    throw std::runtime_error(std::string("Couldn't post send: ") + std::strerror(err) + " (QP " +
                             qp_state_str(c.qp->state()) + ")");
}

void print_dest(const char* label, const PingpongDest& d) {
  std::printf("  %s LID 0x%04x, QPN 0x%06x, PSN 0x%06x, GID %s\n", label, d.lid, d.qpn, d.psn,
              gid_to_string(d.gid).c_str());
  std::fflush(stdout);
}

// The exchange: returns the peer's address; the server connects its QP
// before answering, the client after (as rc_pingpong).
PingpongDest exchange(Context& c, const Options& o, const PingpongDest& mine) {
  const int tcp_ms = static_cast<int>(o.tcp_timeout_s * 1000);
  if (o.client()) {
    TcpConn conn = TcpConn::connect(o.host, static_cast<int>(o.port), static_cast<int>(o.connect_retry_s * 1000));
    return pingpong_client_exchange(conn, mine, tcp_ms);
  }
  TcpListener listener(static_cast<int>(o.port));
  TcpConn conn = listener.accept();
  const PingpongDest peer = pingpong_server_receive(conn, tcp_ms);
  connect_qp(c, o, mine.psn, peer);
  pingpong_server_reply(conn, mine, tcp_ms);
  return peer;
}

// rc_pingpong's main loop and its parse_single_wc.
class PingPong {
 public:
  PingPong(Context& c, const Options& o, int routs)
      : c_(c),
        o_(o),
        routs_(routs),
        cq_(*c.cq, *c.qp, *c.dev, o.events, std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000))) {}

  void start() {
    pending_ = kRecvWrid;
    if (o_.client()) {
      post_send(c_, o_.size);
      pending_ |= kSendWrid;
    }
  }

  void run() {
    const int iters = o_.iters;
    ibv_wc wc[2];
    while (rcnt_ < iters || scnt_ < iters) {
      const int n = cq_.wait(wc, 2, [this] { return outstanding(); });
      for (int i = 0; i < n; ++i) complete(wc[i]);
    }
  }

 private:
  std::string outstanding() const {
    std::string m;
    if (pending_ & kRecvWrid) m = "the peer's SEND #" + std::to_string(rcnt_ + 1);
    if (pending_ & kSendWrid)
      m += (m.empty() ? "" : " and ") + std::string("the ACK of our SEND #") + std::to_string(scnt_ + 1);
    return m.empty() ? "a completion" : m;
  }

  void complete(const ibv_wc& wc) {
    if (wc.wr_id == kSendWrid) {
      ++scnt_;
    } else if (wc.wr_id == kRecvWrid) {
      if (--routs_ <= 1) {
        routs_ += post_recvs(c_, o_.size, o_.rx_depth - routs_);
        if (routs_ < o_.rx_depth) throw std::runtime_error("Couldn't post receive (" + std::to_string(routs_) + ")");
      }
      ++rcnt_;
    } else {
      throw std::runtime_error("Completion for unknown wr_id " + std::to_string(wc.wr_id));
    }
    pending_ &= ~wc.wr_id;
    if (scnt_ < o_.iters && !pending_) {
      post_send(c_, o_.size);
      pending_ = kRecvWrid | kSendWrid;
    }
  }

  Context& c_;
  const Options& o_;
  int routs_;
  CqWaiter cq_;
  std::uint64_t pending_ = 0;
  int rcnt_ = 0, scnt_ = 0;
};

void print_results(const Options& o, double usec) {
  const long long bytes = static_cast<long long>(o.size) * o.iters * 2;
  std::printf("%lld bytes in %.2f seconds = %.2f Mbit/sec\n", bytes, usec / 1000000., double(bytes) * 8. / usec);
  std::printf("%d iters in %.2f seconds = %.2f usec/iter\n", o.iters, usec / 1000000., usec / o.iters);
}

// rc_pingpong -c: the client zeroes the first byte of every page it sends
// (i / page_size % sizeof(char), which is 0), the server checks them.
void fill_pages(Context& c, std::uint32_t size) {
  for (std::size_t i = 0; i < size; i += page_size()) c.buf->data()[i] = 0;
}

void check_pages(const Context& c, std::uint32_t size) {
  for (std::size_t i = 0; i < size; i += page_size())
    if (c.buf->data()[i] != 0) std::printf("invalid data in page %zu\n", i / page_size());
}

void run(const Options& o) {
  Context c = make_context(o);
  const int routs = post_recvs(c, o.size, o.rx_depth);
  if (routs < o.rx_depth) throw std::runtime_error("Couldn't post receive (" + std::to_string(routs) + ")");

  PingpongDest mine;
  mine.lid = 0;  // RoCE
  mine.gid = c.dev->gid();
  mine.qpn = c.qp->qp_num();
  mine.psn = random_psn();
  print_dest("local address: ", mine);
  const PingpongDest peer = exchange(c, o, mine);
  print_dest("remote address:", peer);
  if (o.client()) connect_qp(c, o, mine.psn, peer);

  PingPong pp(c, o, routs);
  if (o.client() && o.chk) fill_pages(c, o.size);
  const std::uint64_t start = now_ns();
  pp.start();
  pp.run();
  const double usec = double(now_ns() - start) / 1000.0;
  print_results(o, usec);
  if (!o.client() && o.chk) check_pages(c, o.size);
  std::fflush(stdout);
  linger(*c.dev, std::chrono::milliseconds(100), std::chrono::seconds(1));
}

}  // namespace
}  // namespace urdma::tools::pingpong

int main(int argc, char** argv) {
  using namespace urdma::tools::pingpong;
  CLI::App app{"urdma-pingpong: ibv_rc_pingpong's SEND ping-pong on urdma (a peer of ibv_rc_pingpong)"};
  Options o;
  add_options(app, o);
  return urdma::tools::tool_main(kTool, app, argc, argv, [&] {
    validate(o);
    run(o);
  });
}
