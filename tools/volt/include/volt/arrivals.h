// SPDX-License-Identifier: GPL-2.0
// Arrival order at the target, for the FIFO check: a packet I/O wrapper under
// the target's device that logs, in the order the target's engine receives
// them, the lock requests of every QP (NIC operations, SENDs, atomics; a
// retransmitted PSN is logged once).  check_fifo() then compares each lock's
// grant order (the sequence number the lock hands out: VOLT's generation, the
// RPC server's count) with that arrival order.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "urdma/packet_io.h"

namespace volt {

struct Arrival {
  std::uint32_t qpn = 0;  // the target's QP it arrived on
  std::uint8_t opcode = 0;
  std::uint64_t va = 0;   // NIC op / atomic: remote address; SEND: first word of the payload
  std::uint64_t arg = 0;  // NIC op: arg0; atomic: swap/add; SEND: second word of the payload
};

class ArrivalLog {
 public:
  // Logs from now on, at most `cap` arrivals (then truncated() says so).
  void start(std::size_t cap);
  void stop() { on_.store(false); }
  std::vector<Arrival> take();
  bool truncated() const { return truncated_; }
  // Engine thread: one received IPv4 packet.
  void record(const std::uint8_t* ip, std::size_t len);
  bool on() const { return on_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> on_{false};
  std::mutex mu_;
  std::size_t cap_ = 0;
  bool truncated_ = false;
  std::vector<Arrival> log_;
  std::unordered_map<std::uint32_t, std::uint32_t> last_psn_;
};

// The wrapper: pass it to urdma::Device::open in place of the back-end.
std::unique_ptr<urdma::PacketIo> tap_arrivals(std::unique_ptr<urdma::PacketIo> inner, std::shared_ptr<ArrivalLog> log);

// One client's acquisitions in the order it made them.
struct ClientGrants {
  std::uint32_t target_qpn = 0;
  std::vector<std::uint64_t> lock;
  std::vector<std::uint64_t> seq;
};

struct FifoResult {
  bool checked = false;
  std::uint64_t grants = 0;     // acquisitions compared
  std::uint64_t overtakes = 0;  // granted before a request on the same lock that arrived earlier
  std::string note;             // why not checked, or a mismatch
  bool strict() const { return checked && overtakes == 0; }
};

// is_acquire(a, lock) says whether an arrival is an acquire request and of
// which lock.
template <class F>
FifoResult check_fifo(const std::vector<Arrival>& arrivals, const std::vector<ClientGrants>& clients, F is_acquire);

}  // namespace volt

#include "volt/arrivals_impl.h"
