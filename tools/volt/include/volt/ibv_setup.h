// SPDX-License-Identifier: GPL-2.0
// libibverbs plumbing for the baselines (rxe in the VM, or any RDMA device):
// a device with its PD, RC QPs with their CQs, a passive lock target (region
// = lock table + guarded data, as Target) and client connections.  The lock
// clients themselves are the same templates as over urdma (Conn<IbvVerbs>).
// The RPC lock's server and VOLT are urdma only.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "volt/conn.h"
#include "volt/ibv_verbs.h"
#include "volt/locks.h"
#include "volt/setup.h"

namespace volt {

struct IbvDeleter {
  void operator()(ibv_context* p) const { ibv_close_device(p); }
  void operator()(ibv_pd* p) const { ibv_dealloc_pd(p); }
  void operator()(ibv_cq* p) const { ibv_destroy_cq(p); }
  void operator()(ibv_qp* p) const { ibv_destroy_qp(p); }
  void operator()(ibv_mr* p) const { ibv_dereg_mr(p); }
};
template <class T>
using IbvPtr = std::unique_ptr<T, IbvDeleter>;

class IbvDevice {
 public:
  // Opens device `name` (e.g. "rxe0"); gid_index 1 is the IPv4-mapped RoCEv2
  // GID on rxe.  Throws std::runtime_error naming what is missing.
  IbvDevice(const std::string& name, int gid_index);
  ~IbvDevice();
  ibv_context* ctx() const { return ctx_.get(); }
  ibv_pd* pd() const { return pd_.get(); }
  const ibv_gid& gid() const { return gid_; }
  int gid_index() const { return gid_index_; }

 private:
  IbvPtr<ibv_context> ctx_;
  IbvPtr<ibv_pd> pd_;
  ibv_gid gid_{};
  int gid_index_;
};

// An RC QP with its own send and receive CQs (destroyed QP first).
struct IbvQp {
  IbvPtr<ibv_cq> send_cq, recv_cq;
  IbvPtr<ibv_qp> qp;
  IbvQp(IbvDevice& dev, int depth);
  IbvVerbs verbs() const { return {qp.get(), send_cq.get(), recv_cq.get()}; }
  QpAddr addr(const IbvDevice& dev, std::uint32_t psn) const { return {dev.gid(), qp->qp_num, psn}; }
  // RESET -> INIT -> RTR -> RTS.
  void connect(const IbvDevice& dev, const QpAddr& peer, std::uint32_t my_psn, const ConnectParams& p = {});
};

// A passive lock host over libibverbs (one-sided kinds only).
class IbvTarget {
 public:
  IbvTarget(IbvDevice& dev, std::uint64_t locks, std::uint32_t data_size);
  ~IbvTarget();
  LockTable table() const;
  std::uint64_t data_addr(std::uint64_t lock) const;
  std::uint32_t rkey() const { return mr_->rkey; }
  std::uint8_t* host(std::uint64_t addr) const { return reinterpret_cast<std::uint8_t*>(addr); }
  IbvQp& add_qp();

 private:
  IbvDevice& dev_;
  std::uint64_t locks_;
  std::uint32_t data_size_;
  Buffer region_;
  IbvPtr<ibv_mr> mr_;
  std::vector<std::unique_ptr<IbvQp>> qps_;
};

class IbvClientConn {
 public:
  IbvClientConn(IbvDevice& dev, std::uint32_t data_size, WaitPolicy wait = {});
  ~IbvClientConn();
  IbvQp& qp() { return qp_; }
  Conn<IbvVerbs>& conn() { return *conn_; }

 private:
  IbvQp qp_;
  Buffer buf_;
  IbvPtr<ibv_mr> mr_;
  std::unique_ptr<Conn<IbvVerbs>> conn_;
};

}  // namespace volt
