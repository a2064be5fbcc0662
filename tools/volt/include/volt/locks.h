// SPDX-License-Identifier: GPL-2.0
// Remote lock clients on standard verbs, one connected RC QP each (Conn<V>):
//
//   CasLock<V>     compare-and-swap spin lock, with or without truncated
//                  exponential backoff (reader-writer: bit 63 = writer, the
//                  low bits count readers; the loop retries while the CAS did
//                  NOT observe the expected value, unlike the 2019 VOLT code)
//   TicketLock<V>  DSLR-style fetch-and-add ticket lock polled with READ
//   RpcLock<V>     two-sided: SEND a request, a target thread answers
//                  (RpcServer, rpc_server.h)
//   VoltLock       one NIC operation per acquire and per release (volt_lock.h)
//
// Every lock lives in a 16-byte slot of a lock table in a remote region:
// lock i at table.base + 16 * i (VOLT_LOCK_SIZE, so one table serves all).
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "volt/conn.h"

namespace volt {

enum class Mode { kExclusive, kShared };

// Where the locks are.
struct LockTable {
  static constexpr std::uint64_t kSlot = 16;
  std::uint64_t base = 0;  // remote address of lock 0
  std::uint32_t rkey = 0;
  std::uint64_t count = 0;
  std::uint64_t addr(std::uint64_t lock) const { return base + kSlot * lock; }
};

// What an acquire got.
struct Grant {
  bool interrupted = false;  // the previous exclusive holder died holding it (VOLT)
  bool has_seq = false;      // seq is the lock's grant order (VOLT, RPC)
  std::uint64_t seq = 0;
  std::uint32_t tries = 1;  // lock messages sent for this acquire (CAS attempts, READ polls)
};

class LockClient {
 public:
  virtual ~LockClient() = default;
  // Blocks until the lock is held in `mode`.  Throws LockError.
  virtual Grant acquire(std::uint64_t lock, Mode mode) = 0;
  // Releases a lock this client holds.  Throws LockError.
  virtual void release(std::uint64_t lock) = 0;
};

// Remembers the mode of each lock a client holds (the baselines' words do
// not say who holds them).
class HeldModes {
 public:
  void set(std::uint64_t lock, Mode m) { held_[lock] = m; }
  Mode take(std::uint64_t lock) {
    auto it = held_.find(lock);
    if (it == held_.end())
      throw LockError("release of lock " + std::to_string(lock) + " that this client does not hold");
    const Mode m = it->second;
    held_.erase(it);
    return m;
  }

 private:
  std::unordered_map<std::uint64_t, Mode> held_;
};

// Truncated exponential backoff with a random delay in [cur/2, cur].
class Backoff {
 public:
  Backoff(std::uint64_t initial_ns, std::uint64_t cap_ns, std::uint64_t seed)
      : initial_(initial_ns), cap_(cap_ns), cur_(initial_ns), rng_(seed) {}
  void reset() { cur_ = initial_; }
  void wait() {
    std::uniform_int_distribution<std::uint64_t> d(cur_ / 2, cur_);
    pause_ns(d(rng_));
    cur_ = std::min(cap_, cur_ * 2);
  }
  // Short delays spin; longer ones sleep (the machine may have few cores).
  static void pause_ns(std::uint64_t ns) {
    if (ns == 0) return;
    if (ns < 20'000) {
      const std::uint64_t end = mono_ns() + ns;
      while (mono_ns() < end) {
      }
      return;
    }
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    ::nanosleep(&ts, nullptr);
  }

 private:
  std::uint64_t initial_, cap_, cur_;
  std::mt19937_64 rng_;
};

struct BackoffParams {
  bool enabled = false;
  std::uint64_t initial_ns = 2'000;
  std::uint64_t cap_ns = 1'000'000;
};

template <class V>
class CasLock : public LockClient {
 public:
  static constexpr std::uint64_t kWriter = 1ULL << 63;

  CasLock(Conn<V>& conn, LockTable table, BackoffParams backoff, std::uint64_t seed)
      : c_(conn), t_(table), bp_(backoff), backoff_(backoff.initial_ns, backoff.cap_ns, seed) {}

  Grant acquire(std::uint64_t lock, Mode mode) override {
    Grant g;
    g.tries = 0;
    backoff_.reset();
    std::uint64_t expect = 0;
    for (;;) {
      const std::uint64_t desired = mode == Mode::kExclusive ? kWriter : expect + 1;
      const std::uint64_t old = c_.cas(t_.addr(lock), t_.rkey, expect, desired);
      ++g.tries;
      if (old == expect) break;  // the CAS observed what it expected: ours
      // Readers only: the count moved but nobody writes, try again at once.
      const bool writer_or_excl = mode == Mode::kExclusive || (old & kWriter);
      expect = mode == Mode::kShared && !(old & kWriter) ? old : 0;
      if (writer_or_excl && bp_.enabled) backoff_.wait();
    }
    held_.set(lock, mode);
    return g;
  }

  void release(std::uint64_t lock) override {
    if (held_.take(lock) == Mode::kExclusive)
      c_.write_word(t_.addr(lock), t_.rkey, 0);  // only the writer touches the word while kWriter is set
    else
      c_.faa(t_.addr(lock), t_.rkey, ~std::uint64_t{0});  // -1
  }

 private:
  Conn<V>& c_;
  LockTable t_;
  BackoffParams bp_;
  Backoff backoff_;
  HeldModes held_;
};

// DSLR-style ticket lock on one 64-bit word, four 16-bit fields:
//   bits 48-63 writer tickets issued   bits 32-47 reader tickets issued
//   bits 16-31 writers released        bits  0-15 readers released
// Each field counts modulo 2^15; bit 15 of a field is a guard that absorbs
// the carry when the count wraps, and whoever caused the wrap clears it with
// one more FAA, so a wrap never spills into the next field (DSLR resets its
// counters instead).  An acquire is one FAA on its "issued" field: the old
// word is the ticket (writers and readers issued before it) and the current
// releases, so a free lock takes one round trip.  Then it polls the word with
// READ until all earlier writers (and, for a writer, readers) released:
// arrival order at the target is grant order (FIFO, readers together).
template <class V>
class TicketLock : public LockClient {
 public:
  static constexpr unsigned kIssuedX = 48, kIssuedS = 32, kDoneX = 16, kDoneS = 0;
  static std::uint64_t field(std::uint64_t w, unsigned shift) { return (w >> shift) & 0x7fff; }

  TicketLock(Conn<V>& conn, LockTable table, std::uint64_t poll_delay_ns = 0)
      : c_(conn), t_(table), poll_delay_ns_(poll_delay_ns) {}

  Grant acquire(std::uint64_t lock, Mode mode) override {
    const unsigned issued = mode == Mode::kExclusive ? kIssuedX : kIssuedS;
    std::uint64_t w = add(lock, issued);
    const std::uint64_t my_x = field(w, kIssuedX), my_s = field(w, kIssuedS);
    Grant g;
    g.seq = my_x + my_s;
    while (!(field(w, kDoneX) == my_x && (mode == Mode::kShared || field(w, kDoneS) == my_s))) {
      Backoff::pause_ns(poll_delay_ns_);
      w = c_.read_word(t_.addr(lock), t_.rkey);
      ++g.tries;
    }
    held_.set(lock, mode);
    return g;
  }

  void release(std::uint64_t lock) override { add(lock, held_.take(lock) == Mode::kExclusive ? kDoneX : kDoneS); }

 private:
  // FAA +1 on a field; clears the guard bit if this add set it.
  std::uint64_t add(std::uint64_t lock, unsigned shift) {
    const std::uint64_t old = c_.faa(t_.addr(lock), t_.rkey, 1ULL << shift);
    if (field(old, shift) == 0x7fff) c_.faa(t_.addr(lock), t_.rkey, std::uint64_t{0} - (0x8000ULL << shift));
    return old;
  }

  Conn<V>& c_;
  LockTable t_;
  std::uint64_t poll_delay_ns_;
  HeldModes held_;
};

// The RPC lock's messages (client -> server: RpcRequest; server -> client: RpcReply).
struct RpcRequest {
  std::uint32_t cmd = 0;  // kRpcAcquireExcl, kRpcAcquireShared, kRpcRelease
  std::uint32_t pad = 0;
  std::uint64_t lock = 0;
};
struct RpcReply {
  std::uint32_t status = 0;  // 0 granted, else an error (kRpcSt*)
  std::uint32_t pad = 0;
  std::uint64_t seq = 0;  // the lock's grant number
  std::uint64_t lock = 0;
};
constexpr std::uint32_t kRpcAcquireExcl = 1, kRpcAcquireShared = 2, kRpcRelease = 3;
constexpr std::uint32_t kRpcStOk = 0, kRpcStBadLock = 1, kRpcStBadCommand = 2;

template <class V>
class RpcLock : public LockClient {
 public:
  explicit RpcLock(Conn<V>& conn) : c_(conn) {}

  Grant acquire(std::uint64_t lock, Mode mode) override {
    std::uint8_t* reply = c_.own() + kReplyOff;
    c_.post_recv(reply, sizeof(RpcReply));
    send(mode == Mode::kExclusive ? kRpcAcquireExcl : kRpcAcquireShared, lock);
    if (c_.wait_recv() != sizeof(RpcReply)) throw LockError("RPC lock: short reply from the lock server");
    RpcReply r;
    std::memcpy(&r, reply, sizeof r);
    if (r.status != kRpcStOk || r.lock != lock)
      throw LockError("RPC lock: the server refused lock " + std::to_string(lock) + " (status " +
                      std::to_string(r.status) + ")");
    Grant g;
    g.has_seq = true;
    g.seq = r.seq;
    return g;
  }

  // A SEND without a reply: the server hands the lock over when it arrives.
  void release(std::uint64_t lock) override { send(kRpcRelease, lock); }

 private:
  static constexpr std::uint32_t kRequestOff = Conn<V>::kOwnFree + 16;  // 32
  static constexpr std::uint32_t kReplyOff = kRequestOff + 32;          // 64

  void send(std::uint32_t cmd, std::uint64_t lock) {
    RpcRequest q;
    q.cmd = cmd;
    q.lock = lock;
    std::memcpy(c_.own() + kRequestOff, &q, sizeof q);
    c_.send(c_.own() + kRequestOff, sizeof q);
  }

  Conn<V>& c_;
};

}  // namespace volt
