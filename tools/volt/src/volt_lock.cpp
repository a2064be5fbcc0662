// SPDX-License-Identifier: GPL-2.0
#include "volt/volt_lock.h"

#include <cstring>
#include <string>

#include "../../../bpf/nicop.h"
#include "../../../bpf/volt.h"
#include "transport.h"  // urdma's QpImpl: see post() below

namespace volt {
namespace {

constexpr std::uint32_t kResultOff = 16;  // Conn's own bytes [16, 32): struct nicop_result

std::string status_name(std::uint32_t s) {
  switch (s) {
    case VOLT_ST_OK:
      return "VOLT_ST_OK";
    case VOLT_ST_LOCK_INTERRUPTED:
      return "VOLT_ST_LOCK_INTERRUPTED";
    case VOLT_ST_NOT_OWNER:
      return "VOLT_ST_NOT_OWNER";
    case VOLT_ST_BAD_COMMAND:
      return "VOLT_ST_BAD_COMMAND";
    case VOLT_ST_ALREADY_HELD:
      return "VOLT_ST_ALREADY_HELD";
    case VOLT_ST_BAD_OBJECT:
      return "VOLT_ST_BAD_OBJECT";
    default:
      return urdma::nicop_status_str(s);
  }
}

}  // namespace

// urdma's verbs.h declares Qp::post_nic_op but its device.cpp does not
// define it yet: post through the QP's implementation, which does.
int VoltLock::post(std::uint64_t lock, std::uint64_t cmd) {
  std::uint8_t* res = c_.own() + kResultOff;
  urdma::NicOpWr wr;
  wr.op_id = op_id_;
  wr.remote_addr = t_.addr(lock);
  wr.rkey = t_.rkey;
  wr.length = VOLT_LOCK_SIZE;
  wr.arg0 = cmd;
  wr.result = ibv_sge{reinterpret_cast<std::uintptr_t>(res), sizeof(nicop_result), c_.lkey()};
  return c_.verbs().qp->impl().post_nic_op(wr);
}

void VoltLock::post_acquire(std::uint64_t lock, Mode mode) {
  if (const int rc = post(lock, mode == Mode::kExclusive ? VOLT_ACQUIRE_EXCL : VOLT_ACQUIRE_SHARED); rc != 0)
    throw LockError(std::string("post_nic_op failed: ") + std::strerror(rc));
}

std::uint32_t VoltLock::call(std::uint64_t lock, std::uint64_t cmd) {
  std::uint8_t* res = c_.own() + kResultOff;
  if (const int rc = post(lock, cmd); rc != 0)
    throw LockError(std::string("post_nic_op failed: ") + std::strerror(rc) + " (" + c_.verbs().qp->error_reason() +
                    ")");
  ibv_wc wc{};
  c_.wait_posted(wc);
  nicop_result r{};
  std::memcpy(&r, res, sizeof r);
  last_status_ = r.status;
  last_result_ = r.result;
  return r.status;
}

Grant VoltLock::acquire(std::uint64_t lock, Mode mode) {
  const std::uint32_t st = call(lock, mode == Mode::kExclusive ? VOLT_ACQUIRE_EXCL : VOLT_ACQUIRE_SHARED);
  if (st != VOLT_ST_OK && st != VOLT_ST_LOCK_INTERRUPTED)
    throw LockError("VOLT acquire of lock " + std::to_string(lock) + ": " + status_name(st));
  Grant g;
  g.interrupted = st == VOLT_ST_LOCK_INTERRUPTED;
  g.has_seq = true;
  g.seq = last_result_;
  return g;
}

void VoltLock::release(std::uint64_t lock) {
  if (const std::uint32_t st = call(lock, VOLT_RELEASE); st != VOLT_ST_OK)
    throw LockError("VOLT release of lock " + std::to_string(lock) + ": " + status_name(st));
}

}  // namespace volt
