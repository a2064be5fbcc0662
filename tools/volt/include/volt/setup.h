// SPDX-License-Identifier: GPL-2.0
// urdma plumbing for the lock clients, the tests and volt-bench: a target
// (device, region with the lock table and the guarded data, optionally the
// VOLT program) and client connections (QP + CQs + scratch memory + Conn).
#pragma once

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "urdma/verbs.h"
#include "volt/conn.h"
#include "volt/locks.h"
#include "volt/urdma_verbs.h"

namespace volt {

// Zeroed, page-aligned memory.
class Buffer {
 public:
  explicit Buffer(std::size_t size);
  std::uint8_t* data() const { return mem_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, Free> mem_;
  std::size_t size_ = 0;
};

// A QP with its own send and receive CQs (members in destruction order).
struct QpBundle {
  std::unique_ptr<urdma::Cq> send_cq, recv_cq;
  std::unique_ptr<urdma::Qp> qp;
  static QpBundle make(urdma::Device& dev, urdma::Pd& pd, int depth = 64);
  UrdmaVerbs verbs() const { return {qp.get(), send_cq.get(), recv_cq.get()}; }
};

// What one end needs to connect to the other.
struct QpAddr {
  ibv_gid gid{};
  std::uint32_t qpn = 0;
  std::uint32_t psn = 0;
};

struct ConnectParams {
  std::uint8_t timeout = 14;  // 4.096 us << 14 = 67 ms
  std::uint8_t retry_cnt = 7;
  std::uint8_t rnr_retry = 7;   // infinite
  std::uint8_t rd_atomic = 16;  // also the bound on parked NIC operations per QP
};

// The RESET -> INIT -> RTR -> RTS steps every connection here takes, on
// urdma's QPs and on ibverbs' alike: step(attr, mask, "INIT"|"RTR"|"RTS")
// applies one (attr is the step's own, ibv_modify_qp takes it non-const).
template <class Step>
void connect_steps(Step&& step, const QpAddr& peer, std::uint32_t my_psn, const ConnectParams& p,
                   std::uint8_t sgid_index = 0) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  step(a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = p.rd_atomic;
  a.min_rnr_timer = 1;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.sgid_index = sgid_index;
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  step(a,
       IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
           IBV_QP_MIN_RNR_TIMER,
       "RTR");
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = my_psn;
  a.timeout = p.timeout;
  a.retry_cnt = p.retry_cnt;
  a.rnr_retry = p.rnr_retry;
  a.max_rd_atomic = p.rd_atomic;
  step(a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC,
       "RTS");
}

// RESET -> INIT -> RTR -> RTS.  Throws std::runtime_error naming the step.
void connect_qp(urdma::Qp& qp, const QpAddr& peer, std::uint32_t my_psn, const ConnectParams& p = {});

struct TargetConfig {
  std::uint64_t locks = 1;
  std::uint32_t data_size = 64;  // bytes of guarded data per lock
  std::string volt_object;       // load VOLT from this ELF when not empty
  std::uint32_t volt_op_id = 1;
  std::uint32_t volt_timeout_ms = 0;
};

// The lock host: a device, one region = lock table (16 B per lock) followed
// by the guarded data (data_size per lock), registered for READ, WRITE,
// atomics and NIC operations.  Its application does nothing after set-up.
class Target {
 public:
  Target(std::unique_ptr<urdma::Device> dev, const TargetConfig& cfg);
  ~Target();
  urdma::Device& dev() { return *dev_; }
  urdma::Pd& pd() { return *pd_; }
  LockTable table() const;
  std::uint64_t data_addr(std::uint64_t lock) const;
  std::uint32_t rkey() const { return mr_->rkey(); }
  // The region's host memory (the target application could read it; tests do).
  std::uint8_t* host(std::uint64_t remote_addr) const { return reinterpret_cast<std::uint8_t*>(remote_addr); }
  const TargetConfig& config() const { return cfg_; }
  // A target-side QP for one client of a one-sided lock (CAS, ticket, VOLT);
  // returns its index.
  std::size_t add_passive_qp();
  urdma::Qp& passive_qp(std::size_t i) { return *qps_.at(i)->qp; }
  // Destroys it: the target's side of a connection that died (urdma then
  // releases what that QP held and drops what it had parked).
  void kill_passive_qp(std::size_t i) { qps_.at(i)->qp.reset(); }
  // Between runs (no client connected): drops the passive QPs and zeroes the
  // region (locks free, guarded data 0).
  void reset();

 private:
  TargetConfig cfg_;
  std::unique_ptr<urdma::Device> dev_;
  std::unique_ptr<urdma::Pd> pd_;
  Buffer region_;
  std::unique_ptr<urdma::Mr> mr_;
  std::vector<std::unique_ptr<QpBundle>> qps_;
};

// A client's connection: QP, CQs, scratch memory for the Conn's operands and
// `data_size` bytes of critical-section data.
class ClientConn {
 public:
  ClientConn(urdma::Device& dev, urdma::Pd& pd, std::uint32_t data_size, WaitPolicy wait = {});
  ~ClientConn();
  urdma::Qp& qp() { return *b_.qp; }
  Conn<UrdmaVerbs>& conn() { return *conn_; }
  // Destroys the QP (a client that dies); conn() is then unusable.
  void destroy_qp();

 private:
  QpBundle b_;
  Buffer buf_;
  std::unique_ptr<urdma::Mr> mr_;
  std::unique_ptr<Conn<UrdmaVerbs>> conn_;
};

QpAddr qp_addr(urdma::Device& dev, urdma::Qp& qp, std::uint32_t psn);

// Connects a client to a target-side QP in the same process.
void connect_pair(urdma::Device& client_dev, ClientConn& c, urdma::Device& target_dev, urdma::Qp& target_qp,
                  const ConnectParams& p = {});

}  // namespace volt
