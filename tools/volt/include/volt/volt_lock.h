// SPDX-License-Identifier: GPL-2.0
// The VOLT lock client: one NIC operation per acquire and one per release
// (bpf/volt.bpf.c run by urdma's responder; bpf/volt.h has the commands and
// statuses).  urdma only: libibverbs has no NIC operations.
#pragma once

#include <cstdint>

#include "urdma/verbs.h"
#include "volt/conn.h"
#include "volt/locks.h"
#include "volt/urdma_verbs.h"

namespace volt {

// The operation id volt-bench and the tests load bpf/volt.bpf.o under (any
// id works: the target's loader and the clients must agree).
constexpr std::uint32_t kVoltOpId = 1;

class VoltLock : public LockClient {
 public:
  VoltLock(Conn<UrdmaVerbs>& conn, LockTable table, std::uint32_t op_id = kVoltOpId)
      : c_(conn), t_(table), op_id_(op_id) {}

  // A grant with VOLT_ST_LOCK_INTERRUPTED is a grant: Grant::interrupted says
  // the previous exclusive holder died holding the lock.
  Grant acquire(std::uint64_t lock, Mode mode) override;
  void release(std::uint64_t lock) override;

  // Posts an acquire and returns without waiting for the answer (tests: a
  // waiter whose connection then dies).
  void post_acquire(std::uint64_t lock, Mode mode);

  // The last answer's status and result (tests).
  std::uint32_t last_status() const { return last_status_; }
  std::uint64_t last_result() const { return last_result_; }

 private:
  int post(std::uint64_t lock, std::uint64_t cmd);
  // One NIC operation; returns its status (result in last_result_).
  std::uint32_t call(std::uint64_t lock, std::uint64_t cmd);

  Conn<UrdmaVerbs>& c_;
  LockTable t_;
  std::uint32_t op_id_;
  std::uint32_t last_status_ = 0;
  std::uint64_t last_result_ = 0;
};

}  // namespace volt
