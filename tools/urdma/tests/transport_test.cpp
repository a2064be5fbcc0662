// SPDX-License-Identifier: GPL-2.0
// The RC transport end to end: two urdma devices over a simulated link, with
// and without seeded faults.  Every operation must complete exactly once with
// the right data; atomics must never run twice.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "sim_link.h"
#include "urdma/verbs.h"
#include "wire.h"

namespace urdma {
namespace {

constexpr int kAll =
    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

// One side: device, PD, CQ, a registered buffer and a QP.
struct Side {
  std::unique_ptr<Device> dev;
  std::unique_ptr<Pd> pd;
  std::unique_ptr<Cq> cq;
  std::vector<std::uint8_t> buf;
  std::unique_ptr<Mr> mr;
  std::unique_ptr<Qp> qp;

  Side(std::unique_ptr<PacketIo> io, std::size_t size, int mr_access = kAll) {
    dev = Device::open("sim", std::move(io));
    pd = dev->alloc_pd();
    cq = dev->create_cq(4096);
    buf.assign(size, 0);
    mr = pd->reg_mr(buf.data(), buf.size(), mr_access);
    add_qp();
  }
  void add_qp() {
    QpInitAttr init;
    init.send_cq = init.recv_cq = cq.get();
    init.cap.max_send_wr = init.cap.max_recv_wr = 1024;
    qp = pd->create_qp(init);
  }
  std::uint64_t addr(std::size_t off = 0) { return reinterpret_cast<std::uint64_t>(buf.data() + off); }

  ibv_wc wait_one(int timeout_ms = 20000) {
    ibv_wc wc{};
    if (cq->wait(1, &wc, timeout_ms) != 1) {
      ADD_FAILURE() << "no completion within " << timeout_ms << " ms; QP " << qp_state_str(qp->state()) << " "
                    << qp->error_reason() << "\n  " << qp->debug_state();
      wc.status = IBV_WC_GENERAL_ERR;
    }
    return wc;
  }
};

struct QpParams {
  std::uint32_t psn_a = 0x1234, psn_b = 0xabcd;
  ibv_mtu mtu = IBV_MTU_1024;
  std::uint8_t timeout = 10;  // 4 ms
  std::uint8_t retry = 7, rnr_retry = 7, rnr_timer = 1;
  int access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  std::uint8_t rd_atomic = 16;
};

void connect(Qp& qp, Device& peer_dev, std::uint32_t peer_qpn, std::uint32_t my_psn, std::uint32_t peer_psn,
             const QpParams& p) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = p.access;
  ASSERT_EQ(qp.modify(a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS), 0);
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = p.mtu;
  a.dest_qp_num = peer_qpn;
  a.rq_psn = peer_psn;
  a.max_dest_rd_atomic = p.rd_atomic;
  a.min_rnr_timer = p.rnr_timer;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer_dev.gid();
  a.ah_attr.port_num = 1;
  ASSERT_EQ(qp.modify(a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                             IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER),
            0);
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = my_psn;
  a.timeout = p.timeout;
  a.retry_cnt = p.retry;
  a.rnr_retry = p.rnr_retry;
  a.max_rd_atomic = p.rd_atomic;
  ASSERT_EQ(qp.modify(a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                             IBV_QP_MAX_QP_RD_ATOMIC),
            0);
}

struct Pair {
  std::shared_ptr<test::SimLink> link;
  std::unique_ptr<Side> a, b;
  Pair(std::size_t size, test::Faults f = {}, QpParams p = {}, int mtu_link = 1500) {
    auto [ia, ib] = test::SimLink::make("10.0.0.1", "10.0.0.2", f, mtu_link);
    link = static_cast<test::SimLink::End&>(*ia).link();
    a = std::make_unique<Side>(std::move(ia), size);
    b = std::make_unique<Side>(std::move(ib), size);
    connect(*a->qp, *b->dev, b->qp->qp_num(), p.psn_a, p.psn_b, p);
    connect(*b->qp, *a->dev, a->qp->qp_num(), p.psn_b, p.psn_a, p);
  }
};

ibv_sge sge(Side& s, std::size_t off, std::uint32_t len) {
  return ibv_sge{s.addr(off), len, s.mr->lkey()};
}

int post(Side& s, ibv_wr_opcode op, std::uint64_t wr_id, ibv_sge* sg, int nsg, std::uint64_t raddr = 0,
         std::uint32_t rkey = 0, unsigned flags = IBV_SEND_SIGNALED) {
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.opcode = op;
  wr.sg_list = sg;
  wr.num_sge = nsg;
  wr.send_flags = flags;
  wr.wr.rdma.remote_addr = raddr;
  wr.wr.rdma.rkey = rkey;
  ibv_send_wr* bad = nullptr;
  return s.qp->post_send(&wr, &bad);
}

int post_recv(Side& s, std::uint64_t wr_id, std::size_t off, std::uint32_t len) {
  ibv_sge g = sge(s, off, len);
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &g;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  return s.qp->post_recv(&wr, &bad);
}

void fill(std::uint8_t* p, std::size_t n, std::uint32_t seed) {
  std::mt19937 r(seed);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(r());
}

// A QP in RTR tells the packet I/O its peer's address once, before it
// sends, so that a back-end that resolves link addresses starts at once.
TEST(Transport, ConnectedQpAnnouncesItsPeerToThePacketIo) {
  Pair p(4096);
  for (int end = 0; end < 2; ++end) {
    const auto want = inet_addr(end == 0 ? "10.0.0.2" : "10.0.0.1");
    for (int i = 0; i < 500 && p.link->resolves_[end].load() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(p.link->resolved_[end].load(), want) << "end " << end;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // many passes later
  EXPECT_EQ(p.link->resolves_[0].load(), 1);
  EXPECT_EQ(p.link->resolves_[1].load(), 1);
}

TEST(Transport, SendWithImmediateAcrossSegments) {
  Pair p(64 << 10);
  const std::uint32_t n = 5000;  // 5 packets at MTU 1024
  fill(p.a->buf.data(), n, 1);
  ASSERT_EQ(post_recv(*p.b, 77, 8192, 8192), 0);
  ibv_sge g = sge(*p.a, 0, n);
  ibv_send_wr wr{};
  wr.wr_id = 5;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.imm_data = htonl(0xfeedbeef);
  wr.sg_list = &g;
  wr.num_sge = 1;
  wr.send_flags = IBV_SEND_SIGNALED;
  ibv_send_wr* bad;
  ASSERT_EQ(p.a->qp->post_send(&wr, &bad), 0);
  ibv_wc r = p.b->wait_one();
  EXPECT_EQ(r.status, IBV_WC_SUCCESS);
  EXPECT_EQ(r.opcode, IBV_WC_RECV);
  EXPECT_EQ(r.wr_id, 77u);
  EXPECT_EQ(r.byte_len, n);
  EXPECT_TRUE(r.wc_flags & IBV_WC_WITH_IMM);
  EXPECT_EQ(ntohl(r.imm_data), 0xfeedbeefu);
  EXPECT_EQ(r.src_qp, p.a->qp->qp_num());
  ibv_wc s = p.a->wait_one();
  EXPECT_EQ(s.status, IBV_WC_SUCCESS);
  EXPECT_EQ(s.opcode, IBV_WC_SEND);
  EXPECT_EQ(s.wr_id, 5u);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 8192, n), 0);
}

TEST(Transport, WriteReadAtomicsScatterGatherInline) {
  Pair p(1 << 20);
  Side& a = *p.a;
  Side& b = *p.b;
  // WRITE from three SGEs.
  fill(a.buf.data(), 30000, 2);
  ibv_sge sg[3] = {sge(a, 0, 1000), sge(a, 1000, 20000), sge(a, 21000, 9000)};
  ASSERT_EQ(post(a, IBV_WR_RDMA_WRITE, 1, sg, 3, b.addr(4096), b.mr->rkey()), 0);
  EXPECT_EQ(a.wait_one().status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(a.buf.data(), b.buf.data() + 4096, 30000), 0);
  // Inline WRITE of 64 bytes.
  std::uint8_t small[64];
  fill(small, sizeof small, 3);
  ibv_sge is{reinterpret_cast<std::uint64_t>(small), sizeof small, 0};
  ASSERT_EQ(post(a, IBV_WR_RDMA_WRITE, 2, &is, 1, b.addr(100), b.mr->rkey(), IBV_SEND_SIGNALED | IBV_SEND_INLINE), 0);
  std::memset(small, 0, sizeof small);  // inline data was copied at post time
  EXPECT_EQ(a.wait_one().status, IBV_WC_SUCCESS);
  fill(small, sizeof small, 3);
  EXPECT_EQ(std::memcmp(small, b.buf.data() + 100, 64), 0);
  // READ back 100000 bytes into two SGEs.
  fill(b.buf.data() + 200000, 100000, 4);
  ibv_sge rs[2] = {sge(a, 500000, 40000), sge(a, 600000, 60000)};
  ASSERT_EQ(post(a, IBV_WR_RDMA_READ, 3, rs, 2, b.addr(200000), b.mr->rkey()), 0);
  ibv_wc wc = a.wait_one();
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.opcode, IBV_WC_RDMA_READ);
  EXPECT_EQ(wc.byte_len, 100000u);
  EXPECT_EQ(std::memcmp(a.buf.data() + 500000, b.buf.data() + 200000, 40000), 0);
  EXPECT_EQ(std::memcmp(a.buf.data() + 600000, b.buf.data() + 240000, 60000), 0);
  // Fetch-and-add and compare-and-swap.
  std::uint64_t* target = reinterpret_cast<std::uint64_t*>(b.buf.data() + 8);
  *target = 40;
  ibv_sge as = sge(a, 16, 8);
  ibv_send_wr w{};
  w.wr_id = 4;
  w.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
  w.sg_list = &as;
  w.num_sge = 1;
  w.send_flags = IBV_SEND_SIGNALED;
  w.wr.atomic.remote_addr = b.addr(8);
  w.wr.atomic.rkey = b.mr->rkey();
  w.wr.atomic.compare_add = 2;
  ibv_send_wr* bad;
  ASSERT_EQ(a.qp->post_send(&w, &bad), 0);
  wc = a.wait_one();
  EXPECT_EQ(wc.opcode, IBV_WC_FETCH_ADD);
  EXPECT_EQ(*reinterpret_cast<std::uint64_t*>(a.buf.data() + 16), 40u);
  EXPECT_EQ(*target, 42u);
  w.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
  w.wr.atomic.compare_add = 42;
  w.wr.atomic.swap = 7;
  ASSERT_EQ(a.qp->post_send(&w, &bad), 0);
  wc = a.wait_one();
  EXPECT_EQ(wc.opcode, IBV_WC_COMP_SWAP);
  EXPECT_EQ(*target, 7u);
  w.wr.atomic.compare_add = 42;  // fails: value is 7 now
  w.wr.atomic.swap = 9;
  ASSERT_EQ(a.qp->post_send(&w, &bad), 0);
  EXPECT_EQ(a.wait_one().status, IBV_WC_SUCCESS);
  EXPECT_EQ(*target, 7u);
  EXPECT_EQ(*reinterpret_cast<std::uint64_t*>(a.buf.data() + 16), 7u);
}

TEST(Transport, WriteWithImmediateConsumesAReceive) {
  Pair p(1 << 16);
  fill(p.a->buf.data(), 3000, 5);
  ASSERT_EQ(post_recv(*p.b, 9, 0, 0), 0);
  ibv_sge g = sge(*p.a, 0, 3000);
  ibv_send_wr wr{};
  wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
  wr.imm_data = htonl(42);
  wr.sg_list = &g;
  wr.num_sge = 1;
  wr.wr.rdma.remote_addr = p.b->addr(10000);
  wr.wr.rdma.rkey = p.b->mr->rkey();
  ibv_send_wr* bad;
  ASSERT_EQ(p.a->qp->post_send(&wr, &bad), 0);  // unsignaled: no send completion
  ibv_wc r = p.b->wait_one();
  EXPECT_EQ(r.opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(r.byte_len, 3000u);
  EXPECT_EQ(ntohl(r.imm_data), 42u);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 10000, 3000), 0);
  ibv_wc none;
  EXPECT_EQ(p.a->cq->wait(1, &none, 100), 0);
}

// The PSN space wraps at 2^24: a message that crosses it arrives intact.
TEST(Transport, PsnWrap) {
  QpParams qp;
  qp.psn_a = 0xfffffd;
  qp.psn_b = 0xfffffe;
  Pair p(1 << 16, {}, qp);
  fill(p.a->buf.data(), 10000, 6);
  for (int i = 0; i < 3; ++i) {
    ibv_sge g = sge(*p.a, 0, 10000);
    ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, i, &g, 1, p.b->addr(20000), p.b->mr->rkey()), 0);
    EXPECT_EQ(p.a->wait_one().status, IBV_WC_SUCCESS);
    ibv_sge r = sge(*p.b, 40000, 10000);
    ASSERT_EQ(post(*p.b, IBV_WR_RDMA_READ, i, &r, 1, p.a->addr(0), p.a->mr->rkey()), 0);
    EXPECT_EQ(p.b->wait_one().status, IBV_WC_SUCCESS);
  }
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 20000, 10000), 0);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 40000, 10000), 0);
  ibv_qp_attr a;
  p.a->qp->query(a);
  EXPECT_LT(a.sq_psn, 0x100u);  // wrapped
}

// Drops, duplicates, reordering and corruption with a seed: every operation
// completes exactly once, in order, with the right data; no atomic runs twice.
class Lossy : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(Lossy, EveryOperationExactlyOnce) {
  test::Faults f{.drop = 0.05, .dup = 0.05, .reorder = 0.05, .corrupt = 0.02, .seed = GetParam()};
  Pair p(4 << 20, f);
  Side& a = *p.a;
  Side& b = *p.b;
  std::uint64_t* counter = reinterpret_cast<std::uint64_t*>(b.buf.data());
  fill(a.buf.data() + 65536, 1 << 20, 7);
  fill(b.buf.data() + (2 << 20), 1 << 20, 8);
  constexpr int kOps = 60;
  for (int i = 0; i < kOps; ++i) ASSERT_EQ(post_recv(b, 1000 + i, (1 << 20) + i * 8192, 8192), 0);
  std::set<std::uint64_t> fetched;
  int expect = 0;
  std::mt19937 r(GetParam());
  for (int i = 0; i < kOps; ++i) {
    const std::uint32_t len = 1 + r() % 8000;
    ibv_send_wr wr{};
    ibv_sge g{};
    wr.wr_id = i;
    wr.sg_list = &g;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    switch (i % 4) {
      case 0:
        g = sge(a, 65536 + i * 8192, len);
        wr.opcode = IBV_WR_SEND;
        break;
      case 1:
        g = sge(a, 65536 + i * 8192, len);
        wr.opcode = IBV_WR_RDMA_WRITE;
        wr.wr.rdma.remote_addr = b.addr((3 << 20) + i * 8192);
        wr.wr.rdma.rkey = b.mr->rkey();
        break;
      case 2:
        g = sge(a, (2 << 20) + i * 8192, len);
        wr.opcode = IBV_WR_RDMA_READ;
        wr.wr.rdma.remote_addr = b.addr((2 << 20) + i * 8192);
        wr.wr.rdma.rkey = b.mr->rkey();
        break;
      default:
        g = sge(a, 8 + i * 8, 8);
        wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
        wr.wr.atomic.remote_addr = b.addr(0);
        wr.wr.atomic.rkey = b.mr->rkey();
        wr.wr.atomic.compare_add = 1;
        break;
    }
    ibv_send_wr* bad;
    ASSERT_EQ(a.qp->post_send(&wr, &bad), 0);
    ++expect;
  }
  for (int i = 0; i < expect; ++i) {
    ibv_wc wc = a.wait_one(60000);
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << wc_status_str(wc.status) << " " << a.qp->error_reason()
                                         << "\n  responder: " << b.qp->error_reason() << "\n  " << b.qp->debug_state();
    ASSERT_EQ(wc.wr_id, static_cast<std::uint64_t>(i)) << "completions out of order";
    if (i % 4 == 3) fetched.insert(*reinterpret_cast<std::uint64_t*>(a.buf.data() + 8 + i * 8));
  }
  int recvs = 0;
  ibv_wc wc;
  while (b.cq->wait(1, &wc, recvs < kOps / 4 ? 20000 : 200) == 1) {
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    ASSERT_EQ(wc.wr_id, 1000u + recvs) << "receive completed twice or out of order";
    ++recvs;
  }
  EXPECT_EQ(recvs, kOps / 4);
  EXPECT_EQ(*counter, static_cast<std::uint64_t>(kOps / 4)) << "an atomic ran twice or never";
  EXPECT_EQ(fetched.size(), static_cast<std::size_t>(kOps / 4)) << "two fetch-and-adds saw the same value";
  // Data: SEND i landed in receive buffer i/4 (in order), WRITE and READ in place.
  r.seed(GetParam());
  int ri = 0;
  for (int i = 0; i < kOps; ++i) {
    const std::uint32_t len = 1 + r() % 8000;
    const std::uint8_t* want = a.buf.data() + (i % 4 == 2 ? (2 << 20) : 65536) + i * 8192;
    const std::uint8_t* got = i % 4 == 0   ? b.buf.data() + (1 << 20) + (ri++) * 8192
                              : i % 4 == 1 ? b.buf.data() + (3 << 20) + i * 8192
                                           : b.buf.data() + (2 << 20) + i * 8192;
    if (i % 4 != 3) {
      EXPECT_EQ(std::memcmp(want, got, len), 0) << "operation " << i;
    }
  }
  const auto s = p.link->stats();
  EXPECT_GT(s.dropped + s.duplicated + s.reordered + s.corrupted, 0u);
  EXPECT_GT(a.dev->stats().retransmits + b.dev->stats().duplicates, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, Lossy, ::testing::Range<std::uint64_t>(1, 13));

TEST(Transport, LargeMessageUnderLoss) {
  test::Faults f{.drop = 0.01, .dup = 0.01, .reorder = 0.01, .corrupt = 0.0, .seed = 9};
  Pair p(16 << 20, f);
  const std::uint32_t n = 8 << 20;
  fill(p.a->buf.data(), n, 10);
  ibv_sge g = sge(*p.a, 0, n);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 1, &g, 1, p.b->addr(n), p.b->mr->rkey()), 0);
  EXPECT_EQ(p.a->wait_one(120000).status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + n, n), 0);
  ibv_sge r = sge(*p.a, n, n);
  std::memset(p.a->buf.data() + n, 0, n);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_READ, 2, &r, 1, p.b->addr(n), p.b->mr->rkey()), 0);
  EXPECT_EQ(p.a->wait_one(120000).status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.a->buf.data() + n, n), 0);
}

TEST(Transport, RnrWaitsForAReceive) {
  Pair p(1 << 16);
  fill(p.a->buf.data(), 100, 11);
  ibv_sge g = sge(*p.a, 0, 100);
  ASSERT_EQ(post(*p.a, IBV_WR_SEND, 1, &g, 1), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_GT(p.b->dev->stats().rnr_naks_sent, 0u);
  ASSERT_EQ(post_recv(*p.b, 2, 1000, 100), 0);
  EXPECT_EQ(p.a->wait_one().status, IBV_WC_SUCCESS);
  EXPECT_EQ(p.b->wait_one().status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 1000, 100), 0);
}

TEST(Transport, RnrRetryExhausted) {
  QpParams qp;
  qp.rnr_retry = 2;
  Pair p(1 << 16, {}, qp);
  ibv_sge g = sge(*p.a, 0, 100);
  ASSERT_EQ(post(*p.a, IBV_WR_SEND, 1, &g, 1), 0);
  ibv_wc wc = p.a->wait_one();
  EXPECT_EQ(wc.status, IBV_WC_RNR_RETRY_EXC_ERR);
  EXPECT_EQ(p.a->qp->state(), IBV_QPS_ERR);
  EXPECT_NE(p.a->qp->error_reason().find("RNR"), std::string::npos);
}

TEST(Transport, BadRkeyIsRemoteAccessErrorAndOtherQpsCarryOn) {
  Pair p(1 << 16);
  // A second QP pair on the same devices.
  auto qa1 = std::move(p.a->qp);
  auto qb1 = std::move(p.b->qp);
  p.a->add_qp();
  p.b->add_qp();
  auto qa2 = std::move(p.a->qp);
  auto qb2 = std::move(p.b->qp);
  QpParams params;
  connect(*qa2, *p.b->dev, qb2->qp_num(), 1, 2, params);
  connect(*qb2, *p.a->dev, qa2->qp_num(), 2, 1, params);
  ibv_sge g = sge(*p.a, 0, 64);
  ibv_send_wr wr{};
  wr.wr_id = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.sg_list = &g;
  wr.num_sge = 1;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = p.b->addr(0);
  wr.wr.rdma.rkey = p.b->mr->rkey() ^ 0x100;
  ibv_send_wr* bad;
  ASSERT_EQ(qa2->post_send(&wr, &bad), 0);
  p.a->qp = std::move(qa2);
  ibv_wc wc = p.a->wait_one();
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(p.a->qp->state(), IBV_QPS_ERR);
  EXPECT_NE(p.a->qp->error_reason().find("NAK 0x62"), std::string::npos) << p.a->qp->error_reason();
  // Work posted to a QP in ERROR is flushed.
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 3, &g, 1, 0, 0), 0);
  EXPECT_EQ(p.a->wait_one().status, IBV_WC_WR_FLUSH_ERR);
  // The other pair on the same devices never noticed.
  p.a->qp = std::move(qa1);
  fill(p.a->buf.data(), 64, 13);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 4, &g, 1, p.b->addr(128), p.b->mr->rkey()), 0);
  wc = p.a->wait_one();
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.wr_id, 4u);
  EXPECT_EQ(std::memcmp(p.a->buf.data(), p.b->buf.data() + 128, 64), 0);
  EXPECT_EQ(qb1->state(), IBV_QPS_RTS);
}

TEST(Transport, AccessAndAlignmentChecks) {
  struct Case {
    ibv_wr_opcode op;
    std::uint64_t off;
    int qp_access;
    ibv_wc_status want;
  };
  const Case cases[] = {
      {IBV_WR_RDMA_WRITE, 0, IBV_ACCESS_REMOTE_READ, IBV_WC_REM_INV_REQ_ERR},              // QP forbids WRITE
      {IBV_WR_RDMA_READ, 0, IBV_ACCESS_REMOTE_WRITE, IBV_WC_REM_INV_REQ_ERR},              // QP forbids READ
      {IBV_WR_ATOMIC_FETCH_AND_ADD, 4, IBV_ACCESS_REMOTE_ATOMIC, IBV_WC_REM_INV_REQ_ERR},  // misaligned
      {IBV_WR_RDMA_READ, (1 << 16) - 10, IBV_ACCESS_REMOTE_READ, IBV_WC_REM_ACCESS_ERR},   // out of bounds
  };
  for (const Case& c : cases) {
    QpParams qp;
    qp.access = c.qp_access;
    Pair p(1 << 16, {}, qp);
    ibv_sge g = sge(*p.a, 0, c.op == IBV_WR_ATOMIC_FETCH_AND_ADD ? 8 : 64);
    ibv_send_wr wr{};
    wr.opcode = c.op;
    wr.sg_list = &g;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = p.b->addr(c.off);
    wr.wr.rdma.rkey = p.b->mr->rkey();
    ibv_send_wr* bad;
    ASSERT_EQ(p.a->qp->post_send(&wr, &bad), 0);
    EXPECT_EQ(p.a->wait_one().status, c.want) << "op " << c.op;
    // The responder QP went to ERROR too (as rxe).
    for (int i = 0; i < 100 && p.b->qp->state() != IBV_QPS_ERR; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(p.b->qp->state(), IBV_QPS_ERR);
  }
  // A region registered without remote write refuses WRITEs with rkey checks.
  Pair p(1 << 16);
  auto ro = p.b->pd->reg_mr(p.b->buf.data(), 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  ibv_sge g = sge(*p.a, 0, 64);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 1, &g, 1, p.b->addr(0), ro->rkey()), 0);
  EXPECT_EQ(p.a->wait_one().status, IBV_WC_REM_ACCESS_ERR);
}

TEST(Transport, PeerVanishesRetryExceeded) {
  QpParams qp;
  qp.retry = 2;
  qp.timeout = 8;  // ~1 ms
  Pair p(1 << 16, {}, qp);
  p.link->cut(true);
  ibv_sge g = sge(*p.a, 0, 64);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 1, &g, 1, p.b->addr(0), p.b->mr->rkey()), 0);
  ASSERT_EQ(post(*p.a, IBV_WR_RDMA_WRITE, 2, &g, 1, p.b->addr(0), p.b->mr->rkey()), 0);
  ibv_wc wc = p.a->wait_one();
  EXPECT_EQ(wc.status, IBV_WC_RETRY_EXC_ERR);
  EXPECT_EQ(wc.wr_id, 1u);
  wc = p.a->wait_one();
  EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(wc.wr_id, 2u);
  EXPECT_NE(p.a->qp->error_reason().find("retry count exceeded"), std::string::npos);
  EXPECT_GE(p.a->dev->stats().retransmits, 2u);
}

TEST(QpState, TransitionsFollowIbverbs) {
  auto [ia, ib] = test::SimLink::make("10.0.0.1", "10.0.0.2");
  Side a(std::move(ia), 4096);
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE), EINVAL);  // RESET -> RTR is illegal
  attr.qp_state = IBV_QPS_INIT;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE), EINVAL);  // INIT needs port, pkey, access
  attr.port_num = 1;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS), 0);
  EXPECT_EQ(a.qp->state(), IBV_QPS_INIT);
  ibv_sge g = sge(a, 0, 8);
  EXPECT_EQ(post(a, IBV_WR_SEND, 1, &g, 1), EINVAL);  // not in RTS
  EXPECT_EQ(post_recv(a, 1, 0, 8), 0);                // receives may be posted from INIT
  attr.qp_state = IBV_QPS_RTS;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE), EINVAL);  // INIT -> RTS is illegal
  attr.qp_state = IBV_QPS_ERR;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE), 0);
  ibv_wc wc = a.wait_one();
  EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);  // the posted receive is flushed
  EXPECT_EQ(wc.opcode, IBV_WC_RECV);
  attr.qp_state = IBV_QPS_RESET;
  EXPECT_EQ(a.qp->modify(attr, IBV_QP_STATE), 0);
  EXPECT_EQ(a.qp->state(), IBV_QPS_RESET);
  EXPECT_EQ(post_recv(a, 2, 0, 8), EINVAL);  // nothing may be posted in RESET
}

TEST(Transport, ManyQpsAtOnce) {
  auto [ia, ib] = test::SimLink::make("10.0.0.1", "10.0.0.2");
  Side a(std::move(ia), 1 << 20);
  Side b(std::move(ib), 1 << 20);
  constexpr int kQps = 64;
  std::vector<std::unique_ptr<Qp>> qa, qb;
  QpParams params;
  for (int i = 0; i < kQps; ++i) {
    a.add_qp();
    b.add_qp();
    qa.push_back(std::move(a.qp));
    qb.push_back(std::move(b.qp));
  }
  for (int i = 0; i < kQps; ++i) {
    connect(*qa[i], *b.dev, qb[i]->qp_num(), i * 1000, i * 7, params);
    connect(*qb[i], *a.dev, qa[i]->qp_num(), i * 7, i * 1000, params);
  }
  fill(a.buf.data(), 1 << 16, 12);
  for (int i = 0; i < kQps; ++i) {
    ibv_sge g = sge(a, i * 1024, 1024);
    ibv_send_wr wr{};
    wr.wr_id = i;
    wr.opcode = IBV_WR_RDMA_WRITE;
    wr.sg_list = &g;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = b.addr((1 << 19) + i * 1024);
    wr.wr.rdma.rkey = b.mr->rkey();
    ibv_send_wr* bad;
    ASSERT_EQ(qa[i]->post_send(&wr, &bad), 0);
  }
  std::set<std::uint64_t> done;
  for (int i = 0; i < kQps; ++i) {
    ibv_wc wc = a.wait_one();
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    done.insert(wc.wr_id);
  }
  EXPECT_EQ(done.size(), static_cast<std::size_t>(kQps));
  EXPECT_EQ(std::memcmp(a.buf.data(), b.buf.data() + (1 << 19), 1 << 16), 0);
}

TEST(Transport, IdleEngineSleeps) {
  Pair p(4096);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto s0 = p.a->dev->stats();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto s1 = p.a->dev->stats();
  // An idle engine wakes only for its own 100 ms safety tick.
  EXPECT_LT(s1.engine_wakeups - s0.engine_wakeups, 10u);
  EXPECT_LT(s1.engine_busy_ns - s0.engine_busy_ns, 30'000'000u) << "idle engine burned CPU";
}

}  // namespace
}  // namespace urdma

namespace urdma {
namespace {

// Seeded fuzzing of the receive path: packets with valid ICRCs but random
// opcodes, PSNs, rkeys, lengths and payloads, aimed at a live QP pair.  The
// engine must not crash, and a second QP pair on the same devices must keep
// working throughout.
TEST(Transport, FuzzedPacketsNeverHurtOtherQps) {
  Pair p(1 << 16);
  auto victim_a = std::move(p.a->qp);
  auto victim_b = std::move(p.b->qp);
  p.a->add_qp();
  p.b->add_qp();
  QpParams params;
  connect(*p.a->qp, *p.b->dev, p.b->qp->qp_num(), 100, 200, params);
  connect(*p.b->qp, *p.a->dev, p.a->qp->qp_num(), 200, 100, params);
  std::mt19937_64 rng(4242);
  std::vector<std::uint8_t> pkt, payload(4096);
  const std::uint32_t a_ip = p.a->dev->ip().s_addr, b_ip = p.b->dev->ip().s_addr;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 200; ++i) {
      wire::Packet w;
      w.src_ip = b_ip;
      w.dst_ip = a_ip;
      w.src_port = 0xc000;
      static constexpr std::uint8_t kOps[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                                              0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14};
      w.opcode = kOps[rng() % sizeof kOps];
      w.dest_qp = rng() % 4 ? victim_a->qp_num() : static_cast<std::uint32_t>(rng() & 0xffffff);
      w.psn = rng() % 2 ? static_cast<std::uint32_t>(rng() & 0xffffff) : static_cast<std::uint32_t>(0x1234 + rng() % 8);
      w.ack_req = rng() % 2;
      w.va = rng() % 2 ? p.a->addr(rng() % 70000) : rng();
      w.rkey = rng() % 2 ? p.a->mr->rkey() : static_cast<std::uint32_t>(rng());
      w.dma_len = static_cast<std::uint32_t>(rng() % 2 ? rng() % 5000 : rng());
      w.syndrome = static_cast<std::uint8_t>(rng());
      w.swap_add = rng();
      w.compare = rng();
      if (wire::op_info(w.opcode).payload) w.payload = std::span<const std::uint8_t>(payload.data(), rng() % 1025);
      wire::build(w, pkt);
      p.link->deliver(0, pkt);
    }
    // The healthy pair still does a round trip.
    fill(p.b->buf.data(), 256, round);
    ibv_sge g = sge(*p.b, 0, 256);
    ASSERT_EQ(post(*p.b, IBV_WR_RDMA_WRITE, round, &g, 1, p.a->addr(60000), p.a->mr->rkey()), 0);
    ibv_wc wc = p.b->wait_one();
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << p.b->qp->error_reason();
    ASSERT_EQ(std::memcmp(p.b->buf.data(), p.a->buf.data() + 60000, 256), 0);
  }
  EXPECT_EQ(p.a->qp->state(), IBV_QPS_RTS);
  const DeviceStats s = p.a->dev->stats();
  EXPECT_GT(s.rx_no_qp + s.naks_sent + s.duplicates, 0u);
}

}  // namespace
}  // namespace urdma
