// SPDX-License-Identifier: GPL-2.0
// The two-sided lock's target side: one thread serves every client's QP,
// with a FIFO queue of waiters per lock (reader-writer; readers at the head
// of the queue are granted together, a reader never overtakes a waiting
// writer).  A request is a SEND (RpcRequest, locks.h); a grant is a SEND
// back (RpcReply, inline); a release gets no reply.  This is the baseline
// that spends target CPU: cpu_ns() is the thread's CPU time.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "urdma/verbs.h"
#include "volt/locks.h"
#include "volt/setup.h"

namespace volt {

class RpcServer {
 public:
  struct Options {
    std::uint64_t locks = 1;
    bool spin = false;  // busy-poll the CQ (else sleep on its event when idle)
    std::uint32_t recv_depth = 8;
  };

  RpcServer(urdma::Device& dev, urdma::Pd& pd, Options opt);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // A server QP for one more client (before start()); the caller connects it.
  urdma::Qp& add_client();
  void start();
  void stop();
  // CPU time of the server thread so far (ns).
  std::uint64_t cpu_ns() const;
  std::uint64_t grants() const { return grants_.load(std::memory_order_relaxed); }

 private:
  struct Waiter {
    std::uint32_t client;
    bool excl;
  };
  struct LockState {
    std::uint32_t readers = 0;
    bool writer = false;
    std::uint64_t seq = 0;
    std::deque<Waiter> queue;
  };

  void run();
  void handle(const ibv_wc& wc);
  void post_recv(std::uint32_t client, std::uint32_t slot);
  void acquire(std::uint32_t client, std::uint64_t lock, bool excl);
  void release(std::uint64_t lock);
  void promote(std::uint64_t lock, LockState& s);
  void grant(std::uint32_t client, std::uint64_t lock, LockState& s);
  void reply(std::uint32_t client, const RpcReply& r);
  std::uint8_t* slot_addr(std::uint32_t client, std::uint32_t slot) const;

  urdma::Device& dev_;
  urdma::Pd& pd_;
  Options opt_;
  std::unique_ptr<urdma::Cq> recv_cq_, send_cq_;
  std::vector<std::unique_ptr<urdma::Qp>> qps_;
  std::unordered_map<std::uint32_t, std::uint32_t> by_qpn_;
  std::unique_ptr<Buffer> buf_;
  std::unique_ptr<urdma::Mr> mr_;
  std::unordered_map<std::uint64_t, LockState> locks_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> grants_{0};
  std::atomic<std::uint64_t> final_cpu_ns_{0};
  std::atomic<bool> cpu_clock_valid_{false};
  clockid_t cpu_clock_{};
  std::thread thread_;
};

}  // namespace volt
