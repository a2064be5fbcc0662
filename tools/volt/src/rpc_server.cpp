// SPDX-License-Identifier: GPL-2.0
#include "volt/rpc_server.h"

#include <pthread.h>
#include <time.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace volt {
namespace {

constexpr std::uint32_t kMsg = 32;  // receive slot size
constexpr int kCqDepth = 4096;

std::uint64_t clock_ns(clockid_t c) {
  timespec ts{};
  ::clock_gettime(c, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

RpcServer::RpcServer(urdma::Device& dev, urdma::Pd& pd, Options opt)
    : dev_(dev), pd_(pd), opt_(opt), recv_cq_(dev.create_cq(kCqDepth)), send_cq_(dev.create_cq(kCqDepth)) {}

RpcServer::~RpcServer() {
  stop();
  qps_.clear();
  mr_.reset();
}

urdma::Qp& RpcServer::add_client() {
  if (thread_.joinable()) throw std::logic_error("RpcServer::add_client after start()");
  urdma::QpInitAttr init;
  init.send_cq = send_cq_.get();
  init.recv_cq = recv_cq_.get();
  init.cap.max_send_wr = 64;
  init.cap.max_recv_wr = opt_.recv_depth;
  qps_.push_back(pd_.create_qp(init));
  by_qpn_[qps_.back()->qp_num()] = static_cast<std::uint32_t>(qps_.size() - 1);
  return *qps_.back();
}

std::uint8_t* RpcServer::slot_addr(std::uint32_t client, std::uint32_t slot) const {
  return buf_->data() + (std::size_t{client} * opt_.recv_depth + slot) * kMsg;
}

void RpcServer::post_recv(std::uint32_t client, std::uint32_t slot) {
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(slot_addr(client, slot)), kMsg, mr_->lkey()};
  ibv_recv_wr wr{};
  wr.wr_id = std::uint64_t{client} << 32 | slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  qps_[client]->post_recv(&wr, &bad);  // a dead client's QP refuses: nothing to do
}

void RpcServer::start() {
  buf_ = std::make_unique<Buffer>(std::max<std::size_t>(1, qps_.size()) * opt_.recv_depth * kMsg);
  mr_ = pd_.reg_mr(buf_->data(), buf_->size(), IBV_ACCESS_LOCAL_WRITE);
  for (std::uint32_t c = 0; c < qps_.size(); ++c)
    for (std::uint32_t s = 0; s < opt_.recv_depth; ++s) post_recv(c, s);
  thread_ = std::thread([this] { run(); });
}

void RpcServer::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::uint64_t RpcServer::cpu_ns() const {
  if (cpu_clock_valid_.load()) return clock_ns(cpu_clock_);
  return final_cpu_ns_.load();
}

void RpcServer::run() {
  ::pthread_getcpuclockid(::pthread_self(), &cpu_clock_);
  cpu_clock_valid_.store(true);
  ibv_wc wc[16];
  while (!stop_.load(std::memory_order_relaxed)) {
    const int n = opt_.spin ? recv_cq_->poll(16, wc) : recv_cq_->wait(16, wc, 10);
    for (int i = 0; i < n; ++i) handle(wc[i]);
    while (send_cq_->poll(16, wc) > 0) {
    }
  }
  final_cpu_ns_.store(clock_ns(cpu_clock_));
  cpu_clock_valid_.store(false);
}

void RpcServer::handle(const ibv_wc& wc) {
  if (wc.status != IBV_WC_SUCCESS) return;  // a client's QP died; its receives flush
  const auto client = static_cast<std::uint32_t>(wc.wr_id >> 32);
  const auto slot = static_cast<std::uint32_t>(wc.wr_id & 0xffffffff);
  RpcRequest q;
  std::memcpy(&q, slot_addr(client, slot), sizeof q);
  post_recv(client, slot);
  if (wc.byte_len != sizeof q || q.lock >= opt_.locks ||
      (q.cmd != kRpcAcquireExcl && q.cmd != kRpcAcquireShared && q.cmd != kRpcRelease)) {
    RpcReply r;
    r.status = q.lock >= opt_.locks ? kRpcStBadLock : kRpcStBadCommand;
    r.lock = q.lock;
    if (q.cmd != kRpcRelease) reply(client, r);
    return;
  }
  if (q.cmd == kRpcRelease)
    release(q.lock);
  else
    acquire(client, q.lock, q.cmd == kRpcAcquireExcl);
}

void RpcServer::acquire(std::uint32_t client, std::uint64_t lock, bool excl) {
  LockState& s = locks_[lock];
  const bool free = excl ? (!s.writer && s.readers == 0) : !s.writer;
  if (!free || !s.queue.empty()) {
    s.queue.push_back({client, excl});
    return;
  }
  grant(client, lock, s);
  if (excl)
    s.writer = true;
  else
    ++s.readers;
}

void RpcServer::release(std::uint64_t lock) {
  auto it = locks_.find(lock);
  if (it == locks_.end()) return;
  LockState& s = it->second;
  if (s.writer)
    s.writer = false;
  else if (s.readers > 0)
    --s.readers;
  promote(lock, s);
}

void RpcServer::promote(std::uint64_t lock, LockState& s) {
  while (!s.queue.empty() && !s.writer) {
    const Waiter w = s.queue.front();
    if (w.excl && s.readers > 0) return;
    s.queue.pop_front();
    grant(w.client, lock, s);
    if (w.excl) {
      s.writer = true;
      return;
    }
    ++s.readers;
  }
}

void RpcServer::grant(std::uint32_t client, std::uint64_t lock, LockState& s) {
  RpcReply r;
  r.seq = ++s.seq;
  r.lock = lock;
  grants_.fetch_add(1, std::memory_order_relaxed);
  reply(client, r);
}

void RpcServer::reply(std::uint32_t client, const RpcReply& r) {
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(&r), sizeof r, 0};
  ibv_send_wr wr{};
  wr.opcode = IBV_WR_SEND;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.send_flags = IBV_SEND_INLINE | IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  qps_[client]->post_send(&wr, &bad);  // a dead client: nothing to do
}

}  // namespace volt
