// SPDX-License-Identifier: GPL-2.0
// NIC-operation runtime: eBPF programs loaded with DPDK's librte_bpf, the
// helpers they call, FIFO wait queues of parked requests, and the holds that
// let a program clean up after a QP that died.  Engine thread only (no locks),
// except load/unload, which the engine serialises.
//
// The transport does the wire part (opcodes, PSNs, duplicates, the ACK that
// tells the requester a request is parked); this runtime decides answers.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../../bpf/nicop.h"

namespace urdma {

// NIC-operation id the transport uses for keep-alive probes: answered by the
// responder's transport at once, never by a program; cannot be loaded.
constexpr std::uint32_t kNicOpKeepAliveId = 0xffffffff;

// A request, after the engine checked rkey, rights, bounds and alignment.
struct NicOpRequest {
  std::uint64_t token = 0;  // the transport's name for it (QP number << 24 | PSN)
  std::uint32_t qpn = 0;    // local QP the request arrived on
  std::uint32_t op_id = 0;
  std::uint64_t va = 0;
  std::uint32_t len = 0;
  std::uint64_t arg0 = 0, arg1 = 0;
  std::uint8_t* obj = nullptr;  // host address of va
  // The region around it, for nicop_region_load.
  std::uint8_t* region = nullptr;
  std::uint64_t region_va = 0, region_len = 0;
  // The run's clock (ctx.now_ns, the parked time for timeouts); 0: the
  // runtime reads CLOCK_MONOTONIC.
  std::uint64_t now_ns = 0;
};

// An answer for a request (this run's, or a parked one that was woken).
struct NicOpAnswer {
  std::uint64_t token = 0;
  std::uint32_t qpn = 0;
  std::uint32_t status = 0;
  std::uint64_t result = 0;
};

class NicOpRuntime {
 public:
  NicOpRuntime();
  ~NicOpRuntime();
  NicOpRuntime(const NicOpRuntime&) = delete;
  NicOpRuntime& operator=(const NicOpRuntime&) = delete;

  // Loads the program in ELF section `section` of `path` as operation op_id
  // (replacing none: loading an id twice is an error).  timeout_ns: parked
  // requests older than this are answered NICOP_ST_TIMEOUT (0 = never).
  // Throws std::runtime_error with the cause: file missing, not a BPF ELF,
  // section missing, or librte_bpf's validator's reason (e.g. a loop, an
  // out-of-bounds access, an unknown helper).
  void load(std::uint32_t op_id, const std::string& path, const std::string& section, std::uint64_t timeout_ns = 0);
  // Unloads; its parked requests are answered NICOP_ST_UNLOADED.
  void unload(std::uint32_t op_id, std::vector<NicOpAnswer>& out);
  bool loaded(std::uint32_t op_id) const;
  // Whether the JIT is in use for op_id (else the interpreter).
  bool jitted(std::uint32_t op_id) const;
  // Use librte_bpf's JIT where it gave one (default), or always its
  // interpreter (measurements, debugging).
  void set_jit(bool on);
  // Why op_id's last failed run failed (a helper's rule, a non-zero return,
  // answer and park both...), empty if none did.
  std::string last_error(std::uint32_t op_id) const;

  // Per-QP bound on parked requests (the transport passes max_dest_rd_atomic);
  // kDefaultParkLimit until set, forgotten when the QP dies.
  static constexpr std::uint32_t kDefaultParkLimit = 16;
  void set_park_limit(std::uint32_t qpn, std::uint32_t limit);

  // Runs a request.  Appends any answers for waiters it woke, then its own
  // answer (unless parked), to `out`.  Returns true if the request was
  // parked.  An op_id that is not loaded is answered NICOP_ST_UNLOADED.
  bool run(const NicOpRequest& r, std::vector<NicOpAnswer>& out);
  // A QP is gone (ERROR or destroyed): its parked requests are dropped
  // (nobody to answer; a queue that lost its first waiter and still has
  // others is handed to its program with NICOP_EV_WAITER_GONE), then every
  // object it held is handed to its program with NICOP_EV_QP_DIED (once per
  // hold count); the wakes of those runs are appended to `out`.
  void qp_died(std::uint32_t qpn, std::vector<NicOpAnswer>& out);
  // Answers NICOP_ST_TIMEOUT for requests parked past their op's timeout
  // (then NICOP_EV_WAITER_GONE as in qp_died).
  void expire(std::uint64_t now_ns, std::vector<NicOpAnswer>& out);
  // A region is being deregistered: its parked requests are answered
  // NICOP_ST_REGION_GONE and its holds forgotten (no NICOP_EV_QP_DIED run
  // will touch its memory any more).  Holds and parked requests keep host
  // pointers into their region: call this before the memory may go.
  void forget_region(const std::uint8_t* region, std::vector<NicOpAnswer>& out);
  // Earliest parked-request deadline (UINT64_MAX if none).
  std::uint64_t next_deadline() const;

  std::size_t parked(std::uint32_t qpn) const;
  // Whether qpn holds anything (nicop_hold) or has requests parked.
  bool has_state(std::uint32_t qpn) const;
  std::size_t parked_total() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace urdma
