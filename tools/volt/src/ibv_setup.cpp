// SPDX-License-Identifier: GPL-2.0
#include "volt/ibv_setup.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace volt {
namespace {

std::runtime_error err(const std::string& what, int e) {
  return std::runtime_error(what + ": " + std::strerror(e));
}

void modify(ibv_qp* qp, ibv_qp_attr& a, int mask, const char* state) {
  if (const int rc = ibv_modify_qp(qp, &a, mask); rc != 0)
    throw err("cannot move QP " + std::to_string(qp->qp_num) + " to " + state, rc);
}

}  // namespace

IbvDevice::IbvDevice(const std::string& name, int gid_index) : gid_index_(gid_index) {
  int n = 0;
  std::unique_ptr<ibv_device*, decltype(&ibv_free_device_list)> list(ibv_get_device_list(&n), ibv_free_device_list);
  if (!list) throw err("ibv_get_device_list", errno);
  for (int i = 0; i < n && !ctx_; ++i)
    if (name == ibv_get_device_name(list.get()[i])) ctx_.reset(ibv_open_device(list.get()[i]));
  if (!ctx_) throw std::runtime_error("no RDMA device '" + name + "' (see rdma link show; rxe: rdma link add)");
  pd_.reset(ibv_alloc_pd(ctx_.get()));
  if (!pd_) throw err("ibv_alloc_pd on " + name, errno);
  if (ibv_query_gid(ctx_.get(), 1, gid_index, &gid_) != 0) throw err("ibv_query_gid on " + name, errno);
}

IbvDevice::~IbvDevice() {
  pd_.reset();
}

IbvQp::IbvQp(IbvDevice& dev, int depth)
    : send_cq(ibv_create_cq(dev.ctx(), depth, nullptr, nullptr, 0)),
      recv_cq(ibv_create_cq(dev.ctx(), depth, nullptr, nullptr, 0)) {
  if (!send_cq || !recv_cq) throw err("ibv_create_cq", errno);
  ibv_qp_init_attr init{};
  init.send_cq = send_cq.get();
  init.recv_cq = recv_cq.get();
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = static_cast<std::uint32_t>(depth);
  init.cap.max_recv_wr = static_cast<std::uint32_t>(depth);
  init.cap.max_send_sge = init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = 64;
  qp.reset(ibv_create_qp(dev.pd(), &init));
  if (!qp) throw err("ibv_create_qp", errno);
}

void IbvQp::connect(const IbvDevice& dev, const QpAddr& peer, std::uint32_t my_psn, const ConnectParams& p) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
  modify(qp.get(), a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = peer.qpn;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = p.rd_atomic;
  a.min_rnr_timer = 1;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(dev.gid_index());
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  modify(qp.get(), a,
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
  modify(qp.get(), a,
         IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC,
         "RTS");
}

IbvTarget::IbvTarget(IbvDevice& dev, std::uint64_t locks, std::uint32_t data_size)
    : dev_(dev), locks_(locks), data_size_(data_size), region_(locks * (LockTable::kSlot + data_size)) {
  mr_.reset(
      ibv_reg_mr(dev.pd(), region_.data(), region_.size(),
                 IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC));
  if (!mr_) throw err("ibv_reg_mr (target region)", errno);
}

IbvTarget::~IbvTarget() {
  qps_.clear();
  mr_.reset();
}

LockTable IbvTarget::table() const {
  return LockTable{reinterpret_cast<std::uint64_t>(region_.data()), mr_->rkey, locks_};
}

std::uint64_t IbvTarget::data_addr(std::uint64_t lock) const {
  return reinterpret_cast<std::uint64_t>(region_.data()) + locks_ * LockTable::kSlot + lock * data_size_;
}

IbvQp& IbvTarget::add_qp() {
  qps_.push_back(std::make_unique<IbvQp>(dev_, 16));
  return *qps_.back();
}

IbvClientConn::IbvClientConn(IbvDevice& dev, std::uint32_t data_size, WaitPolicy wait)
    : qp_(dev, 64), buf_(Conn<IbvVerbs>::kOwn + data_size) {
  mr_.reset(ibv_reg_mr(dev.pd(), buf_.data(), buf_.size(), IBV_ACCESS_LOCAL_WRITE));
  if (!mr_) throw err("ibv_reg_mr (client buffer)", errno);
  conn_ = std::make_unique<Conn<IbvVerbs>>(
      qp_.verbs(), LocalBuf{buf_.data(), static_cast<std::uint32_t>(buf_.size()), mr_->lkey}, wait);
}

IbvClientConn::~IbvClientConn() {
  conn_.reset();
  qp_.qp.reset();
  mr_.reset();
}

}  // namespace volt
