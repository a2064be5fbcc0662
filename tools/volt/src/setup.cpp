// SPDX-License-Identifier: GPL-2.0
#include "volt/setup.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace volt {

Buffer::Buffer(std::size_t size) : size_(size) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t rounded = (size + page - 1) / page * page;
  void* p = std::aligned_alloc(page, rounded ? rounded : page);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  mem_.reset(static_cast<std::uint8_t*>(p));
}

void Buffer::Free::operator()(std::uint8_t* p) const {
  std::free(p);
}

QpBundle QpBundle::make(urdma::Device& dev, urdma::Pd& pd, int depth) {
  QpBundle b;
  b.send_cq = dev.create_cq(depth);
  b.recv_cq = dev.create_cq(depth);
  urdma::QpInitAttr init;
  init.send_cq = b.send_cq.get();
  init.recv_cq = b.recv_cq.get();
  init.cap.max_send_wr = static_cast<std::uint32_t>(depth);
  init.cap.max_recv_wr = static_cast<std::uint32_t>(depth);
  b.qp = pd.create_qp(init);
  return b;
}

namespace {

void modify(urdma::Qp& qp, const ibv_qp_attr& a, int mask, const char* state) {
  if (const int rc = qp.modify(a, mask); rc != 0)
    throw std::runtime_error(std::string("cannot move QP ") + std::to_string(qp.qp_num()) + " to " + state + ": " +
                             std::strerror(rc));
}

}  // namespace

void connect_qp(urdma::Qp& qp, const QpAddr& peer, std::uint32_t my_psn, const ConnectParams& p) {
  connect_steps([&](ibv_qp_attr& a, int mask, const char* state) { modify(qp, a, mask, state); }, peer, my_psn, p);
}

QpAddr qp_addr(urdma::Device& dev, urdma::Qp& qp, std::uint32_t psn) {
  return QpAddr{dev.gid(), qp.qp_num(), psn};
}

// ---------------------------------------------------------------- Target

Target::Target(std::unique_ptr<urdma::Device> dev, const TargetConfig& cfg)
    : cfg_(cfg),
      dev_(std::move(dev)),
      pd_(dev_->alloc_pd()),
      region_(cfg.locks * LockTable::kSlot + cfg.locks * cfg.data_size) {
  if (cfg.locks == 0) throw std::invalid_argument("the target needs at least one lock");
  mr_ = pd_->reg_mr(region_.data(), region_.size(),
                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                        IBV_ACCESS_REMOTE_ATOMIC | urdma::URDMA_ACCESS_NIC_OP);
  if (!cfg.volt_object.empty() && !std::filesystem::exists(cfg.volt_object))
    throw std::runtime_error("the VOLT program " + cfg.volt_object +
                             " does not exist: build it (make bpf, or ninja -C build urdma_nicop_programs) or "
                             "name it with --volt-object");
  if (!cfg.volt_object.empty()) dev_->load_nic_op(cfg.volt_op_id, cfg.volt_object, "nicop", cfg.volt_timeout_ms);
}

Target::~Target() {
  qps_.clear();
  if (!cfg_.volt_object.empty()) dev_->unload_nic_op(cfg_.volt_op_id);
}

LockTable Target::table() const {
  return LockTable{reinterpret_cast<std::uint64_t>(region_.data()), mr_->rkey(), cfg_.locks};
}

std::uint64_t Target::data_addr(std::uint64_t lock) const {
  return reinterpret_cast<std::uint64_t>(region_.data()) + cfg_.locks * LockTable::kSlot + lock * cfg_.data_size;
}

void Target::reset() {
  qps_.clear();
  std::memset(region_.data(), 0, region_.size());
}

std::size_t Target::add_passive_qp() {
  qps_.push_back(std::make_unique<QpBundle>(QpBundle::make(*dev_, *pd_, 16)));
  return qps_.size() - 1;
}

// ---------------------------------------------------------------- ClientConn

ClientConn::ClientConn(urdma::Device& dev, urdma::Pd& pd, std::uint32_t data_size, WaitPolicy wait)
    : b_(QpBundle::make(dev, pd, 64)), buf_(Conn<UrdmaVerbs>::kOwn + data_size) {
  mr_ = pd.reg_mr(buf_.data(), buf_.size(), IBV_ACCESS_LOCAL_WRITE);
  conn_ = std::make_unique<Conn<UrdmaVerbs>>(
      b_.verbs(), LocalBuf{buf_.data(), static_cast<std::uint32_t>(buf_.size()), mr_->lkey()}, wait);
}

ClientConn::~ClientConn() {
  conn_.reset();
  b_.qp.reset();
  mr_.reset();
}

void ClientConn::destroy_qp() {
  b_.qp.reset();
}

void connect_pair(urdma::Device& client_dev, ClientConn& c, urdma::Device& target_dev, urdma::Qp& target_qp,
                  const ConnectParams& p) {
  const std::uint32_t cpsn = 0x1000 + c.qp().qp_num(), tpsn = 0x2000 + target_qp.qp_num();
  connect_qp(c.qp(), qp_addr(target_dev, target_qp, tpsn), cpsn, p);
  connect_qp(target_qp, qp_addr(client_dev, c.qp(), cpsn), tpsn, p);
}

}  // namespace volt
