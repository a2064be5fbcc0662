// SPDX-License-Identifier: GPL-2.0
// The verbs a lock client needs, on one connected RC QP, as synchronous calls.
//
// Conn<V> is written once over a tiny adapter V, so the same lock code runs
// over urdma (UrdmaVerbs: urdma::Qp/Cq) and over libibverbs (IbvVerbs:
// ibv_qp/ibv_cq, e.g. rxe in the VM).  An adapter provides:
//
//   int post_send(ibv_send_wr*, ibv_send_wr**)   ibv_post_send
//   int post_recv(ibv_recv_wr*, ibv_recv_wr**)   ibv_post_recv
//   int poll_send(int n, ibv_wc*)                ibv_poll_cq on the send CQ
//   int poll_recv(int n, ibv_wc*)                ibv_poll_cq on the recv CQ
//   int wait_send(int n, ibv_wc*, int ms)        poll, sleeping up to ms on the
//   int wait_recv(int n, ibv_wc*, int ms)        CQ's event where the adapter can
//   std::string error_reason()                   why the QP failed ("" if unknown)
//   static const char* status_str(ibv_wc_status) "IBV_WC_..." name
//
// Every call posts one signalled work request and waits for its completion:
// it spins on the CQ for `spin` and then, when the adapter can, sleeps on the
// CQ's event (the machine may have fewer cores than busy threads).  A failed
// completion or a stall throws LockError.
#pragma once

#include <infiniband/verbs.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace volt {

class LockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline std::uint64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// How a Conn waits for a completion.
struct WaitPolicy {
  std::uint64_t spin_ns = 20'000;           // busy-poll this long first
  std::uint64_t stall_ns = 10'000'000'000;  // then give up (a lost peer)
};

// Local memory a Conn uses for its operands and results: `len` bytes at
// `addr`, registered with `lkey` (LOCAL_WRITE).
struct LocalBuf {
  std::uint8_t* addr = nullptr;
  std::uint32_t len = 0;
  std::uint32_t lkey = 0;
};

template <class V>
class Conn {
 public:
  // scratch: at least kOwn bytes; the first kOwn are the Conn's own (own()),
  // the rest the caller's (data() / data_len()).
  Conn(V verbs, LocalBuf scratch, WaitPolicy wait = {}) : v_(std::move(verbs)), buf_(scratch), wait_(wait) {
    if (buf_.len < kOwn) throw std::invalid_argument("volt::Conn: scratch buffer below kOwn bytes");
  }

  V& verbs() { return v_; }
  std::uint8_t* data() const { return buf_.addr + kOwn; }
  std::uint32_t data_len() const { return buf_.len - kOwn; }
  std::uint32_t lkey() const { return buf_.lkey; }
  std::uint64_t ops() const { return ops_; }  // work requests posted (remote messages)

  // 64-bit compare-and-swap; returns the old value.
  std::uint64_t cas(std::uint64_t raddr, std::uint32_t rkey, std::uint64_t expect, std::uint64_t swap) {
    ibv_send_wr wr = atomic_wr(IBV_WR_ATOMIC_CMP_AND_SWP, raddr, rkey);
    wr.wr.atomic.compare_add = expect;
    wr.wr.atomic.swap = swap;
    post_wait(wr);
    return result_word();
  }
  // 64-bit fetch-and-add (wraps); returns the old value.
  std::uint64_t faa(std::uint64_t raddr, std::uint32_t rkey, std::uint64_t add) {
    ibv_send_wr wr = atomic_wr(IBV_WR_ATOMIC_FETCH_AND_ADD, raddr, rkey);
    wr.wr.atomic.compare_add = add;
    post_wait(wr);
    return result_word();
  }
  // READ of one 64-bit word.
  std::uint64_t read_word(std::uint64_t raddr, std::uint32_t rkey) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(buf_.addr), 8, buf_.lkey};
    post_wait(rdma_wr(IBV_WR_RDMA_READ, raddr, rkey, &sge));
    return result_word();
  }
  // WRITE of one 64-bit word (inline).
  void write_word(std::uint64_t raddr, std::uint32_t rkey, std::uint64_t value) {
    std::memcpy(buf_.addr + 8, &value, 8);
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(buf_.addr + 8), 8, buf_.lkey};
    post_wait(rdma_wr(IBV_WR_RDMA_WRITE, raddr, rkey, &sge));
  }
  // READ/WRITE of [data()+off, +len) from/to the remote range.
  void read(std::uint64_t raddr, std::uint32_t rkey, std::uint32_t off, std::uint32_t len) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(data() + off), len, buf_.lkey};
    post_wait(rdma_wr(IBV_WR_RDMA_READ, raddr, rkey, &sge));
  }
  void write(std::uint64_t raddr, std::uint32_t rkey, std::uint32_t off, std::uint32_t len) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(data() + off), len, buf_.lkey};
    post_wait(rdma_wr(IBV_WR_RDMA_WRITE, raddr, rkey, &sge));
  }
  // WRITE of [data()+off, +len) without waiting: the next call that waits
  // (the release, posted right behind it) also reaps its completion.  RC
  // executes the two in order at the target, so the data lands before the
  // lock is handed over, and the holder saves a round trip.
  void write_async(std::uint64_t raddr, std::uint32_t rkey, std::uint32_t off, std::uint32_t len) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(data() + off), len, buf_.lkey};
    ibv_send_wr wr = rdma_wr(IBV_WR_RDMA_WRITE, raddr, rkey, &sge);
    wr.wr_id = ++next_id_;
    wr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (const int rc = v_.post_send(&wr, &bad); rc != 0) fail("post_send", rc);
    ++ops_;
    ++pending_;
  }
  // SEND of [p, p+len), p inside the scratch buffer.
  void send(const std::uint8_t* p, std::uint32_t len) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(p), len, buf_.lkey};
    ibv_send_wr wr{};
    wr.opcode = IBV_WR_SEND;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    post_wait(wr);
  }
  // Posts a receive into [p, p+len), p inside the scratch buffer.
  void post_recv(std::uint8_t* p, std::uint32_t len) {
    ibv_sge sge{reinterpret_cast<std::uintptr_t>(p), len, buf_.lkey};
    ibv_recv_wr wr{};
    wr.wr_id = ++next_id_;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    if (const int rc = v_.post_recv(&wr, &bad); rc != 0) fail("post_recv", rc);
  }
  // Waits for one receive completion; returns its byte length.
  std::uint32_t wait_recv() {
    ibv_wc wc{};
    wait_one(wc, /*send=*/false, "a message from the lock server");
    return wc.byte_len;
  }

  // Posts wr (signalled) and waits for its completion.
  void post_wait(ibv_send_wr wr) {
    wr.wr_id = ++next_id_;
    wr.send_flags |= IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (const int rc = v_.post_send(&wr, &bad); rc != 0) fail("post_send", rc);
    ++ops_;
    ibv_wc wc{};
    reap_pending();
    wait_one(wc, /*send=*/true, "the completion of a work request");
  }
  // Waits for the completion of a request posted by the caller through the
  // adapter itself (e.g. urdma's NIC operations); counts it as one op.
  void wait_posted(ibv_wc& wc) {
    ++ops_;
    reap_pending();
    wait_one(wc, /*send=*/true, "the completion of a work request");
  }
  // Waits for the completions of write_async calls.
  void reap_pending() {
    for (; pending_ > 0; --pending_) {
      ibv_wc wc{};
      wait_one(wc, /*send=*/true, "the completion of a WRITE");
    }
  }
  // The Conn's own bytes: [0, 16) its word operands and results, the rest
  // for the lock clients' messages (kOwnFree onwards).
  std::uint8_t* own() const { return buf_.addr; }
  static constexpr std::uint32_t kOwn = 128;
  static constexpr std::uint32_t kOwnFree = 16;

 private:
  ibv_send_wr atomic_wr(ibv_wr_opcode op, std::uint64_t raddr, std::uint32_t rkey) {
    sge_ = ibv_sge{reinterpret_cast<std::uintptr_t>(buf_.addr), 8, buf_.lkey};
    ibv_send_wr wr{};
    wr.opcode = op;
    wr.sg_list = &sge_;
    wr.num_sge = 1;
    wr.wr.atomic.remote_addr = raddr;
    wr.wr.atomic.rkey = rkey;
    return wr;
  }
  static ibv_send_wr rdma_wr(ibv_wr_opcode op, std::uint64_t raddr, std::uint32_t rkey, ibv_sge* sge) {
    ibv_send_wr wr{};
    wr.opcode = op;
    wr.sg_list = sge;
    wr.num_sge = 1;
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    return wr;
  }
  std::uint64_t result_word() const {
    std::uint64_t v = 0;
    std::memcpy(&v, buf_.addr, 8);
    return v;
  }

  void wait_one(ibv_wc& wc, bool send, const char* what) {
    const std::uint64_t start = mono_ns();
    for (;;) {
      const int n = send ? v_.poll_send(1, &wc) : v_.poll_recv(1, &wc);
      if (n < 0) fail("poll_cq", -n);
      if (n > 0) break;
      const std::uint64_t waited = mono_ns() - start;
      if (waited > wait_.stall_ns)
        throw LockError(std::string("no completion for ") + std::to_string(waited / 1'000'000) +
                        " ms while waiting for " + what + reason_suffix());
      if (waited < wait_.spin_ns) continue;
      const int m = send ? v_.wait_send(1, &wc, 10) : v_.wait_recv(1, &wc, 10);
      if (m < 0) fail("waiting on the CQ", -m);
      if (m > 0) break;
    }
    if (wc.status != IBV_WC_SUCCESS)
      throw LockError(std::string("work request failed: ") + V::status_str(wc.status) + reason_suffix());
  }
  std::string reason_suffix() {
    const std::string r = v_.error_reason();
    return r.empty() ? std::string() : " (" + r + ")";
  }
  [[noreturn]] void fail(const char* call, int err) {
    throw LockError(std::string(call) + " failed: " + std::strerror(err) + reason_suffix());
  }

  V v_;
  LocalBuf buf_;
  WaitPolicy wait_;
  ibv_sge sge_{};
  std::uint64_t next_id_ = 0;
  std::uint64_t ops_ = 0;
  std::uint32_t pending_ = 0;  // write_async completions not reaped yet
};

}  // namespace volt
