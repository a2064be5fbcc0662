// SPDX-License-Identifier: GPL-2.0
// How volt-bench's clients reach the lock target: in the same process
// (LocalLink) or in a `volt-bench --mode target` process over a TCP side
// channel (RemoteLink; serve_target is the other end), as perftest does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "volt/arrivals.h"
#include "volt/session.h"
#include "volt/setup.h"

namespace volt::bench {

// The target's counters at one instant.
struct TargetSnap {
  std::uint64_t engine_busy_ns = 0;  // urdma's count of its engine's busy time (DeviceStats)
  std::uint64_t engine_cpu_ns = 0;   // the engine thread's whole on-CPU time (wake-ups included)
  std::uint64_t tx_packets = 0;
  std::uint64_t wakeups = 0;     // times the engine left its idle sleep
  std::uint64_t app_cpu_ns = 0;  // the target application: its other threads
};

// What the target reports when a run ends.
struct Closing {
  std::vector<Arrival> arrivals;
  bool truncated = false;
  bool logged = false;              // the target has an arrival log (opened without --no-fifo-check)
  std::vector<std::uint32_t> qpns;  // the target's QP of each client
  std::uint64_t guarded_sum = 0;    // sum of the first word of every lock's guarded data
};

struct OpenRequest {
  Kind kind = Kind::kCas;
  std::uint32_t clients = 1;
  bool log_arrivals = false;
  bool rpc_spin = false;
  ConnectParams connect{};
};

class TargetLink {
 public:
  virtual ~TargetLink() = default;
  // A fresh run: region zeroed, `clients` target QPs; their addresses.
  virtual RemoteRegion open(const OpenRequest& req, std::vector<QpAddr>& target_addrs) = 0;
  // Connects the target's QPs to the clients' and starts serving.
  virtual void connect(const std::vector<QpAddr>& client_addrs) = 0;
  virtual TargetSnap snap() = 0;
  // After the clients stopped: what the run left, and the target's QPs go.
  virtual Closing close() = 0;
  // "udp:ip=127.0.0.1 (in this process)"
  virtual std::string describe() const = 0;
};

struct TargetParams {
  std::string backend = "udp:ip=127.0.0.1";
  std::uint64_t locks = 1;
  std::uint32_t data_size = 64;
  std::string volt_object;  // empty: VOLT not loaded
  bool arrival_log = true;  // tap the packet I/O (else the device opens from its spec: spin_us=... applies)
};

std::unique_ptr<TargetLink> local_link(const TargetParams& p);
std::unique_ptr<TargetLink> remote_link(const std::string& host, int port);

// --mode target: serves client processes on `port`, one at a time (all
// their runs on one connection), until one has been served when `once`.
void serve_target(const TargetParams& p, int port, bool once);

}  // namespace volt::bench
