// SPDX-License-Identifier: GPL-2.0
// Every lock kind against the same test: many clients (threads, each its own
// QP) take a lock and, inside it, READ a remote counter, increment it and
// WRITE it back (not atomic); the final count must equal the acquisitions,
// and an overlap detector must never see two writers (or a writer and a
// reader) inside at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace volt::test {
namespace {

constexpr std::uint32_t kClients = 4;

// Inside-the-lock bookkeeping shared by the client threads.
struct Occupancy {
  std::atomic<int> writers{0};
  std::atomic<int> readers{0};
  std::atomic<int> max_readers{0};
  std::atomic<std::uint64_t> violations{0};
  std::mutex mu;
  std::string first_error;

  void enter(Mode m) {
    if (m == Mode::kExclusive) {
      if (writers.fetch_add(1) != 0 || readers.load() != 0) violations.fetch_add(1);
    } else {
      const int r = readers.fetch_add(1) + 1;
      if (writers.load() != 0) violations.fetch_add(1);
      int m0 = max_readers.load();
      while (r > m0 && !max_readers.compare_exchange_weak(m0, r)) {
      }
    }
  }
  void leave(Mode m) { (m == Mode::kExclusive ? writers : readers).fetch_sub(1); }
  void fail(const std::string& e) {
    std::lock_guard lk(mu);
    if (first_error.empty()) first_error = e;
  }
};

std::uint64_t read_counter(Conn<UrdmaVerbs>& c, const Target& t) {
  c.read(t.data_addr(0), t.rkey(), 0, 8);
  std::uint64_t v = 0;
  std::memcpy(&v, c.data(), 8);
  return v;
}

void write_counter(Conn<UrdmaVerbs>& c, const Target& t, std::uint64_t v) {
  std::memcpy(c.data(), &v, 8);
  c.write(t.data_addr(0), t.rkey(), 0, 8);
}

// Client i's loop: `iters` acquisitions of lock 0; every `shared_every`-th
// (0: none) in shared mode, where it READs the counter twice and checks that
// nobody changed it.  Returns the exclusive acquisitions it made.
std::uint64_t client_loop(LockSession& s, const Target& t, std::uint32_t i, int iters, int shared_every,
                          Occupancy& occ) {
  std::uint64_t excl = 0;
  for (int k = 0; k < iters; ++k) {
    const Mode m = shared_every && (k + static_cast<int>(i)) % shared_every == 0 ? Mode::kShared : Mode::kExclusive;
    s.lock(i).acquire(0, m);
    occ.enter(m);
    Conn<UrdmaVerbs>& c = s.conn(i);
    if (m == Mode::kExclusive) {
      write_counter(c, t, read_counter(c, t) + 1);
      ++excl;
    } else if (read_counter(c, t) != read_counter(c, t)) {
      occ.violations.fetch_add(1);
    }
    occ.leave(m);
    s.lock(i).release(0);
  }
  return excl;
}

struct Outcome {
  std::uint64_t excl = 0;
  std::uint64_t counter = 0;
};

Outcome run_clients(Rig& rig, LockSession& s, int iters, int shared_every, Occupancy& occ) {
  std::atomic<std::uint64_t> excl{0};
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < s.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        excl.fetch_add(client_loop(s, *rig.target, i, iters, shared_every, occ));
      } catch (const std::exception& e) {
        occ.fail("client " + std::to_string(i) + ": " + e.what());
      }
    });
  for (auto& t : threads) t.join();
  Outcome o;
  o.excl = excl.load();
  std::memcpy(&o.counter, rig.target->host(rig.target->data_addr(0)), 8);
  return o;
}

class MutualExclusion : public ::testing::TestWithParam<Kind> {};

TEST_P(MutualExclusion, NonAtomicCounterIsExact) {
  Rig rig(GetParam() == Kind::kVolt);
  auto s = rig.session(GetParam(), kClients);
  Occupancy occ;
  const int iters = 150;
  const Outcome o = run_clients(rig, *s, iters, 0, occ);
  ASSERT_EQ(occ.first_error, "");
  EXPECT_EQ(o.excl, std::uint64_t{kClients} * iters);
  EXPECT_EQ(o.counter, o.excl) << "lost updates: two clients were inside at once";
  EXPECT_EQ(occ.violations.load(), 0u);
}

TEST_P(MutualExclusion, ReadersShareWritersExclude) {
  Rig rig(GetParam() == Kind::kVolt);
  auto s = rig.session(GetParam(), kClients);
  Occupancy occ;
  const Outcome o = run_clients(rig, *s, 120, 2, occ);
  ASSERT_EQ(occ.first_error, "");
  EXPECT_EQ(o.counter, o.excl);
  EXPECT_EQ(occ.violations.load(), 0u) << "a writer overlapped another holder, or a reader saw the counter change";
}

INSTANTIATE_TEST_SUITE_P(Kinds, MutualExclusion,
                         ::testing::Values(Kind::kVolt, Kind::kCas, Kind::kCasBackoff, Kind::kTicket, Kind::kRpc),
                         [](const auto& info) {
                           std::string n = kind_name(info.param);
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// The 2019 VOLT code's CAS loop, `do { CAS(0 -> 1) } while (old == 0)`:
// it loops while the CAS succeeds and enters after one that failed.  The
// test above must catch it (a negative control for the detector).
class InvertedCasLock : public LockClient {
 public:
  InvertedCasLock(Conn<UrdmaVerbs>& c, LockTable t) : c_(c), t_(t) {}
  Grant acquire(std::uint64_t lock, Mode) override {
    while (c_.cas(t_.addr(lock), t_.rkey, 0, 1) == 0) {
    }
    return {};
  }
  void release(std::uint64_t lock) override { c_.write_word(t_.addr(lock), t_.rkey, 0); }

 private:
  Conn<UrdmaVerbs>& c_;
  LockTable t_;
};

TEST(MutualExclusionDetector, CatchesTheInvertedCasLoop) {
  Rig rig(false);
  auto s = rig.session(Kind::kCas, kClients);
  std::vector<std::unique_ptr<InvertedCasLock>> bad;
  for (std::uint32_t i = 0; i < kClients; ++i)
    bad.push_back(std::make_unique<InvertedCasLock>(s->conn(i), rig.target->table()));
  Occupancy occ;
  std::atomic<std::uint64_t> done{0};
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 100; ++k) {
        bad[i]->acquire(0, Mode::kExclusive);
        occ.enter(Mode::kExclusive);
        write_counter(s->conn(i), *rig.target, read_counter(s->conn(i), *rig.target) + 1);
        occ.leave(Mode::kExclusive);
        bad[i]->release(0);
        done.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  std::uint64_t counter = 0;
  std::memcpy(&counter, rig.target->host(rig.target->data_addr(0)), 8);
  EXPECT_TRUE(occ.violations.load() > 0 || counter != done.load()) << "the detector missed a lock that excludes nobody";
}

// The guard bits of the ticket lock: counts wrap at 2^15 without spilling
// into the next field.
TEST(TicketLock, CountersWrapWithoutSpilling) {
  Rig rig(false);
  auto s = rig.session(Kind::kTicket, 1);
  const std::uint64_t near_wrap = 0x7ffeULL << 48 | 0x7ffdULL << 32 | 0x7ffeULL << 16 | 0x7ffdULL;
  std::memcpy(rig.target->host(rig.target->table().addr(0)), &near_wrap, 8);
  for (int k = 0; k < 6; ++k) {
    const Mode m = k % 2 ? Mode::kShared : Mode::kExclusive;
    s->lock(0).acquire(0, m);
    s->lock(0).release(0);
  }
  std::uint64_t w = 0;
  std::memcpy(&w, rig.target->host(rig.target->table().addr(0)), 8);
  using T = TicketLock<UrdmaVerbs>;
  EXPECT_EQ(T::field(w, T::kIssuedX), T::field(w, T::kDoneX));
  EXPECT_EQ(T::field(w, T::kIssuedS), T::field(w, T::kDoneS));
  EXPECT_EQ(w & 0x8000800080008000ULL, 0u) << "a guard bit was left set";
  EXPECT_EQ(T::field(w, T::kIssuedX), 1u);  // 0x7ffe + 3 wraps to 1
}

}  // namespace
}  // namespace volt::test
