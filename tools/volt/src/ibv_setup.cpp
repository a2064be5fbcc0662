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
  connect_steps([&](ibv_qp_attr& a, int mask, const char* state) { modify(qp.get(), a, mask, state); }, peer, my_psn, p,
                static_cast<std::uint8_t>(dev.gid_index()));
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
