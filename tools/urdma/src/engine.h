// SPDX-License-Identifier: GPL-2.0
// The engine: one per Device, owns the packet I/O, the memory-region and QP
// tables, and the thread that plays the NIC.
//
// Locking: mr_mu_ guards mrs_ (written by reg/dereg, read by the engine);
// qp_mu_ guards qps_ (shared while the engine runs one pass, exclusive to add
// or remove a QP, so a QP is never destroyed mid-pass).  A QP's own mutex is
// taken inside a pass; a CQ's mutex inside a QP's (order: qp_mu_, QP, CQ).
#pragma once

#include <infiniband/verbs.h>
#include <pthread.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "fastpath/unique_fd.h"
#include "nicop.h"
#include "urdma/packet_io.h"
#include "urdma/verbs.h"
#include "wire.h"

namespace urdma {

class QpImpl;

struct MrInfo {
  std::uint8_t* addr;
  std::size_t length;
  int access;
};

// Where a remote request may touch memory: the bytes, or the NAK syndrome
// explaining why not.
struct RemoteCheck {
  std::uint8_t* ptr = nullptr;
  std::uint8_t nak = 0;
};

class Engine {
 public:
  // spin_ns: how long the engine keeps polling after its last work before it
  // sleeps (a reply often comes back within it; spinning longer steals the
  // CPU the peer or the application needs on a small machine).
  Engine(std::string name, std::unique_ptr<PacketIo> io, std::uint64_t spin_ns = kDefaultSpinNs);
  // 0 on the project's 2-core machines: volt-bench measured 2461 -> 6123 VOLT
  // acquisitions/s at 1 client going from 50 us to 0 (spinning threads steal
  // the core the peer needs).
  static constexpr std::uint64_t kDefaultSpinNs = 0;
  ~Engine();

  const std::string& name() const { return name_; }
  PacketIo& io() { return *io_; }
  in_addr ip() const { return ip_; }
  ibv_mtu active_mtu() const { return active_mtu_; }
  const ibv_device_attr& attr() const { return attr_; }
  DeviceStats stats() const;

  std::uint32_t add_mr(void* addr, std::size_t len, int access);
  void remove_mr(std::uint32_t key);
  // Remote access: [va, va+len) inside the MR named by rkey, with `access`.
  RemoteCheck check_remote(std::uint32_t rkey, std::uint64_t va, std::uint64_t len, int access) const;
  // Local access for a work request's SGE; returns the bytes or nullptr.
  std::uint8_t* check_local(const ibv_sge& sge, bool write) const;

  std::uint32_t add_qp(QpImpl* qp);
  void remove_qp(std::uint32_t qpn);

  // NIC operations.  nicop_mu_ guards the runtime: the engine runs programs,
  // load/unload come from application threads.
  void load_nicop(std::uint32_t op_id, const std::string& path, const std::string& section, std::uint32_t timeout_ms);
  void unload_nicop(std::uint32_t op_id);
  bool nicop_loaded(std::uint32_t op_id);
  // Whether qpn holds NIC-operation state (a hold or a parked request).
  bool nicop_has_state(std::uint32_t qpn);
  // A QP with NIC-operation state whose peer has been silent this long
  // probes it (0: never); see QpImpl::keep_alive.
  void set_keepalive_ns(std::uint64_t ns) { keepalive_ns_.store(ns); }
  std::uint64_t keepalive_ns() const { return keepalive_ns_.load(std::memory_order_relaxed); }
  static constexpr std::uint64_t kDefaultKeepAliveNs = 500'000'000;
  // Engine thread, inside a QP's lock: runs a request; answers for other
  // requests (woken waiters) must go through defer_answers.
  bool run_nicop(const NicOpRequest& r, std::uint32_t park_limit, std::vector<NicOpAnswer>& out);
  void region_of(std::uint32_t rkey, std::uint8_t*& base, std::uint64_t& va, std::uint64_t& len) const;
  // Answers to deliver to (other) QPs once no QP lock is held; any thread.
  void defer_answers(std::vector<NicOpAnswer>&& answers);
  // A QP entered ERROR, RESET, or is being destroyed; any thread.
  void note_qp_dead(std::uint32_t qpn);

  // Wakes the engine thread if it sleeps (after a post).
  void wake();
  // An application thread lends the engine its CPU: one pass (receive, run
  // the QPs' timers, transmit) unless a pass is already running elsewhere.
  // Called when a CQ poll finds nothing and after a post, so a thread that
  // polls its CQ moves packets itself, with no hand-over to the engine thread
  // (a context switch costs more than the whole pass on a small VM).  While
  // application threads poll, the engine thread stops waking on every packet
  // and only covers timers and gaps.  Returns false if another thread held
  // the pass.
  // polling: the caller polls in a loop (a CQ poll, Device::progress), as
  // opposed to a one-off after a post.
  bool progress(bool polling);
  // An application thread is about to sleep on a CQ event: the engine thread
  // must wake on packets again.
  void app_sleeps() {
    app_polling_.store(false);  // seq_cst, against sleeping_ (Dekker)
    wake();
  }
  // After a post: progress() here, or wake the engine thread if that could not run.
  void kick() {
    work_hint_.store(true);
    if (!progress(false)) wake();
  }
  // Engine thread only: builds the packet (addresses, source port, ICRC) and sends it.
  void transmit(wire::Packet& p, std::uint32_t dst_ip, std::uint32_t src_qpn);

  // Counters, updated by the engine thread only (relaxed atomics so stats() may read).
  struct Counters {
    std::atomic<std::uint64_t> rx_packets{0}, tx_packets{0}, rx_bad_icrc{0}, rx_malformed{0}, rx_unknown_opcode{0},
        rx_no_qp{0}, retransmits{0}, naks_sent{0}, rnr_naks_sent{0}, duplicates{0}, engine_busy_ns{0},
        engine_wakeups{0};
  };
  Counters& counters() { return counters_; }

 private:
  void run();
  // One pass by the engine thread; received: the packets it took in.
  bool locked_pass(std::uint64_t now_ns, std::uint64_t& next_deadline, std::size_t& received);
  void receive(const RxPacket& rx, std::uint64_t now);
  // Fills rx_ from the packet I/O; returns how many.
  std::size_t receive_burst();
  // The part of a pass after receive_burst (n packets).
  bool process(std::size_t n, std::uint64_t now, std::uint64_t& next_deadline);
  // on_io: also wake when packets arrive (else only on wake() and the deadline).
  void sleep_until(std::uint64_t deadline_ns, bool on_io);
  void sleep_for(std::uint64_t ns, bool on_io);
  void nicop_housekeeping(std::uint64_t now, std::uint64_t& next_deadline);

  std::string name_;
  std::unique_ptr<PacketIo> io_;
  in_addr ip_{};
  ibv_mtu active_mtu_ = IBV_MTU_1024;
  ibv_device_attr attr_{};
  std::uint16_t fixed_sport_ = 0;
  std::uint64_t spin_ns_;

  mutable std::shared_mutex mr_mu_;
  std::map<std::uint32_t, MrInfo> mrs_;
  std::uint32_t next_mr_index_ = 1;

  std::shared_mutex qp_mu_;
  std::map<std::uint32_t, QpImpl*> qps_;
  std::uint32_t next_qpn_ = 0x11;  // rxe's first user QP number

  std::mutex nicop_mu_;
  NicOpRuntime nicops_;
  std::mutex inbox_mu_;  // guards the two lists below
  std::vector<NicOpAnswer> pending_answers_;
  std::vector<std::uint32_t> dead_qps_;
  std::atomic<bool> inbox_nonempty_{false};

  fastpath::UniqueFd wake_fd_, epoll_fd_, wake_epoll_fd_;
  std::atomic<bool> sleeping_{false};
  std::mutex pass_mu_;                       // one pass at a time: the engine thread's or an application thread's
  std::atomic<bool> app_polling_{false};     // an application thread polls (progress(true))
  std::atomic<std::uint64_t> app_polls_{0};  // its polls, to see whether it still does
  std::atomic<bool> work_hint_{false};       // posted or woken since the last full pass
  std::atomic<std::uint64_t> keepalive_ns_{kDefaultKeepAliveNs};
  std::uint64_t next_deadline_ = 0;  // of the last full pass (under pass_mu_)
  std::atomic<bool> stop_{false};
  std::vector<std::uint8_t> tx_buf_;
  std::vector<RxPacket> rx_;
  Counters counters_;
  std::thread thread_;
  pthread_t thread_handle_{};
  std::atomic<bool> engine_running_{false};
};

std::uint64_t now_ns();
std::uint64_t coarse_now_ns();
std::uint64_t coarse_tick_ns();

}  // namespace urdma
