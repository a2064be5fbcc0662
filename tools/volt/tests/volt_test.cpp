// SPDX-License-Identifier: GPL-2.0
// VOLT's promises beyond mutual exclusion: FIFO grants (in arrival order at
// the target), readers together and writers alone, a holder that dies hands
// the lock on with LOCK_INTERRUPTED, a waiter that dies is never granted.
// FIFO is also checked for the RPC and ticket locks, which promise it too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../../bpf/nicop.h"
#include "../../../bpf/volt.h"
#include "harness.h"
#include "volt/volt_lock.h"

namespace volt::test {
namespace {

using namespace std::chrono_literals;

// An acquire running on its own thread.
class Pending {
 public:
  Pending(LockSession& s, std::uint32_t client, std::uint64_t lock, Mode m, std::atomic<int>& order)
      : t_([this, &s, client, lock, m, &order] {
          try {
            grant = s.lock(client).acquire(lock, m);
            granted_as = order.fetch_add(1) + 1;
          } catch (const std::exception& e) {
            error = e.what();
          }
          done.store(true);
        }) {}
  ~Pending() {
    if (t_.joinable()) t_.join();
  }
  void join() { t_.join(); }

  std::atomic<bool> done{false};
  Grant grant;
  int granted_as = 0;  // 1 = first of the test's pending acquires granted
  std::string error;

 private:
  std::thread t_;
};

std::uint64_t lock_word(const Rig& rig, std::uint64_t lock, int w) {
  std::uint64_t v = 0;
  std::memcpy(&v, rig.target->host(rig.target->table().addr(lock)) + 8 * w, 8);
  return v;
}

class Fifo : public ::testing::TestWithParam<Kind> {};

// Client 0 holds the lock; clients 1, 2, 3 ask in that order, 40 ms apart;
// they must be granted in that order.
TEST_P(Fifo, WaitersAreGrantedInArrivalOrder) {
  Rig rig(GetParam() == Kind::kVolt);
  auto s = rig.session(GetParam(), 4);
  s->lock(0).acquire(0, Mode::kExclusive);
  std::atomic<int> order{0};
  std::vector<std::unique_ptr<Pending>> p;
  for (std::uint32_t c = 1; c <= 3; ++c) {
    p.push_back(std::make_unique<Pending>(*s, c, 0, Mode::kExclusive, order));
    std::this_thread::sleep_for(40ms);
  }
  for (auto& x : p) EXPECT_FALSE(x->done.load()) << "granted while client 0 held the lock";
  s->lock(0).release(0);
  for (std::uint32_t c = 1; c <= 3; ++c) {
    while (!p[c - 1]->done.load()) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(p[c - 1]->error, "");
    EXPECT_EQ(p[c - 1]->granted_as, static_cast<int>(c));
    s->lock(c).release(0);
  }
  if (GetParam() != Kind::kTicket) {
    EXPECT_LT(p[0]->grant.seq, p[1]->grant.seq);
    EXPECT_LT(p[1]->grant.seq, p[2]->grant.seq);
  }
}

// Six clients hammer one lock; every grant's sequence number, set against
// the arrival order of the acquire requests at the target's packet I/O,
// must show no overtaking.
class FifoContention : public ::testing::TestWithParam<Kind> {};

TEST_P(FifoContention, NoOvertaking) {
  Rig rig(GetParam() == Kind::kVolt);
  auto s = rig.session(GetParam(), 6);
  rig.arrivals->start(1 << 20);
  std::vector<ClientGrants> grants(s->size());
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < s->size(); ++i) {
    grants[i].target_qpn = s->target_qpn(i);
    threads.emplace_back([&, i] {
      for (int k = 0; k < 150; ++k) {
        const Grant g = s->lock(i).acquire(0, Mode::kExclusive);
        grants[i].lock.push_back(0);
        grants[i].seq.push_back(g.seq);
        s->lock(i).release(0);
      }
    });
  }
  for (auto& t : threads) t.join();
  rig.arrivals->stop();
  const bool volt = GetParam() == Kind::kVolt;
  const FifoResult r = check_fifo(rig.arrivals->take(), grants, [&](const Arrival& a, std::uint64_t& lock) {
    if (volt) {
      if (a.opcode != 0xc0 || (a.arg != VOLT_ACQUIRE_EXCL && a.arg != VOLT_ACQUIRE_SHARED)) return false;
      lock = (a.va - rig.target->table().base) / LockTable::kSlot;
      return true;
    }
    const auto cmd = static_cast<std::uint32_t>(a.va);
    if (a.opcode != 0x04 || (cmd != kRpcAcquireExcl && cmd != kRpcAcquireShared)) return false;
    lock = a.arg;
    return true;
  });
  ASSERT_TRUE(r.checked) << r.note;
  EXPECT_EQ(r.grants, 6u * 150u);
  EXPECT_EQ(r.overtakes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, Fifo, ::testing::Values(Kind::kVolt, Kind::kRpc, Kind::kTicket),
                         [](const auto& info) { return kind_name(info.param); });
// (The ticket lock's ticket is its arrival order: nothing to compare.)
INSTANTIATE_TEST_SUITE_P(Kinds, FifoContention, ::testing::Values(Kind::kVolt, Kind::kRpc),
                         [](const auto& info) { return kind_name(info.param); });

// Readers overlap; a writer that comes while they hold waits for all of
// them; a reader that comes after the writer does not overtake it.
TEST(Volt, ReadersTogetherWriterAloneNoOvertaking) {
  Rig rig(true);
  auto s = rig.session(Kind::kVolt, 5);
  std::atomic<int> order{0};
  for (std::uint32_t c = 0; c < 3; ++c) s->lock(c).acquire(0, Mode::kShared);  // all three hold it at once
  EXPECT_EQ(lock_word(rig, 0, 0), 3u);
  Pending writer(*s, 3, 0, Mode::kExclusive, order);
  std::this_thread::sleep_for(40ms);
  Pending late_reader(*s, 4, 0, Mode::kShared, order);
  std::this_thread::sleep_for(40ms);
  EXPECT_FALSE(writer.done.load());
  EXPECT_FALSE(late_reader.done.load()) << "a reader overtook a waiting writer";
  s->lock(0).release(0);
  s->lock(1).release(0);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(writer.done.load()) << "the writer was granted while a reader held the lock";
  s->lock(2).release(0);
  writer.join();
  ASSERT_EQ(writer.error, "");
  EXPECT_EQ(writer.granted_as, 1);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(late_reader.done.load());
  s->lock(3).release(0);
  late_reader.join();
  ASSERT_EQ(late_reader.error, "");
  EXPECT_GT(late_reader.grant.seq, writer.grant.seq);
  s->lock(4).release(0);
  EXPECT_EQ(lock_word(rig, 0, 0), 0u);
}

// A holder's connection dies: the next waiter is granted, told so.
TEST(Volt, HolderDeathGrantsNextWithInterrupted) {
  Rig rig(true);
  auto s = rig.session(Kind::kVolt, 3);
  s->lock(0).acquire(0, Mode::kExclusive);
  std::atomic<int> order{0};
  Pending next(*s, 1, 0, Mode::kExclusive, order);
  std::this_thread::sleep_for(40ms);
  EXPECT_FALSE(next.done.load());
  s->kill_client(0);
  next.join();
  ASSERT_EQ(next.error, "");
  EXPECT_TRUE(next.grant.interrupted) << "the new holder was not told that the last one died";
  s->lock(1).release(0);
  const Grant after = s->lock(2).acquire(0, Mode::kExclusive);
  EXPECT_FALSE(after.interrupted) << "the writer after the repair was still told INTERRUPTED";
  s->lock(2).release(0);
}

// A holder's process is killed (kill -9): nothing tells the target, whose QP
// stays up.  The keep-alive finds the silent peer dead (urdma's transport,
// at the target), the QP enters ERROR and the next waiter is granted, told so.
TEST(Volt, SilentHolderDeathFoundByKeepAlive) {
  Rig rig(true);
  rig.target->dev().set_nic_op_keepalive(100);
  auto s = rig.session(Kind::kVolt, 2);
  s->lock(0).acquire(0, Mode::kExclusive);
  std::atomic<int> order{0};
  Pending next(*s, 1, 0, Mode::kExclusive, order);
  std::this_thread::sleep_for(250ms);  // longer than the keep-alive: a live holder's probes are answered
  EXPECT_FALSE(next.done.load()) << "the lock was taken from a live holder";
  const auto t0 = std::chrono::steady_clock::now();
  s->vanish_client(0);
  next.join();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(next.error, "");
  EXPECT_TRUE(next.grant.interrupted) << "the new holder was not told that the last one died";
  EXPECT_LT(took.count(), 5000) << "keep-alive 100 ms + 8 probes at the 67 ms timeout should take about 0.7 s";
  std::printf("# holder found dead %lld ms after it vanished\n", static_cast<long long>(took.count()));
  s->lock(1).release(0);
}

// Client 0 holds the lock, client 1 waits and dies (`kill`), client 2 waits
// behind it: when 0 releases, 2 gets the lock with OK and 1 never does.
void dead_waiter_is_skipped(Rig& rig, LockSession& s, const std::function<void()>& kill) {
  s.lock(0).acquire(0, Mode::kExclusive);
  // Client 1 asks without waiting for the answer (it is about to die).
  static_cast<VoltLock&>(s.lock(1)).post_acquire(0, Mode::kExclusive);
  std::this_thread::sleep_for(40ms);
  std::atomic<int> order{0};
  Pending behind(s, 2, 0, Mode::kExclusive, order);
  std::this_thread::sleep_for(40ms);
  kill();
  s.lock(0).release(0);
  behind.join();
  ASSERT_EQ(behind.error, "");
  EXPECT_FALSE(behind.grant.interrupted);
  EXPECT_EQ(lock_word(rig, 0, 1) & VOLT_HOLDER_MASK, s.target_qpn(2)) << "the lock went to someone else";
  s.lock(2).release(0);
  EXPECT_EQ(lock_word(rig, 0, 0), 0u);
}

// A waiter's connection dies (both ends of it): it leaves the queue.
TEST(Volt, WaiterDeathIsNeverGranted) {
  Rig rig(true);
  auto s = rig.session(Kind::kVolt, 3);
  dead_waiter_is_skipped(rig, *s, [&] {
    s->kill_client(1);
    std::this_thread::sleep_for(20ms);
  });
}

// A waiter's process is killed: nothing tells the target; its parked request
// stops being probed, the keep-alive finds the peer dead and the QP's parked
// request is dropped.  Fails without the keep-alive (the grant goes to the
// dead waiter, the one behind it stalls).
TEST(Volt, SilentWaiterDeathIsNeverGranted) {
  Rig rig(true);
  rig.target->dev().set_nic_op_keepalive(100);
  auto s = rig.session(Kind::kVolt, 3);
  dead_waiter_is_skipped(rig, *s, [&] {
    s->vanish_client(1);
    std::this_thread::sleep_for(2000ms);  // keep-alive 100 ms + 8 probes at 67 ms: found dead
  });
}

// A release by a client that does not hold the lock is refused, and the
// holder keeps it.
TEST(Volt, ReleaseByNonOwnerIsRefused) {
  Rig rig(true);
  auto s = rig.session(Kind::kVolt, 2);
  s->lock(0).acquire(0, Mode::kExclusive);
  auto& other = static_cast<VoltLock&>(s->lock(1));
  EXPECT_THROW(other.release(0), LockError);
  EXPECT_EQ(other.last_status(), static_cast<std::uint32_t>(VOLT_ST_NOT_OWNER));
  EXPECT_EQ(lock_word(rig, 0, 1) & VOLT_HOLDER_MASK, s->target_qpn(0));
  s->lock(0).release(0);
}

}  // namespace
}  // namespace volt::test

namespace volt::test {
namespace {

// The FIFO checker itself: a grant that overtakes an earlier request is
// counted; a request that never arrived is reported, not ignored.
TEST(FifoCheck, CountsOvertakesAndMismatches) {
  auto acq = [](std::uint32_t qpn) { return Arrival{qpn, 0xc0, 0, 1}; };
  const std::vector<Arrival> arrivals{acq(10), acq(11), acq(12)};  // clients 0, 1, 2 in that order
  auto is_acquire = [](const Arrival& a, std::uint64_t& lock) {
    lock = 0;
    return a.opcode == 0xc0;
  };
  std::vector<ClientGrants> g{{10, {0}, {1}}, {11, {0}, {2}}, {12, {0}, {3}}};
  EXPECT_TRUE(check_fifo(arrivals, g, is_acquire).strict());
  g[1].seq = {3};  // client 1 (arrived second) granted last,
  g[2].seq = {2};  // client 2 (arrived third) before it: one overtake
  const FifoResult r = check_fifo(arrivals, g, is_acquire);
  EXPECT_TRUE(r.checked);
  EXPECT_EQ(r.overtakes, 1u);
  g[2].seq = {2, 4};
  g[2].lock = {0, 0};
  EXPECT_FALSE(check_fifo(arrivals, g, is_acquire).checked);
}

}  // namespace
}  // namespace volt::test
