// SPDX-License-Identifier: GPL-2.0
// Description: the head's batching.  Writes that arrive while a batch is on
// its way down the chain leave together in the next one; batches keep the
// sequence order; no write is answered before the tail's acknowledgement
// covers its entry, and every write is answered exactly once (acknowledged,
// failed with the chain, or timed out).
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <thread>

#include "chain.h"
#include "entries.h"
#include "sequencer.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::put;
using namespace std::chrono_literals;

namespace {

auto soon() {
  return std::chrono::steady_clock::now() + 10s;
}

}  // namespace

TEST(AckTracker, CallbacksCompleteInSequenceOrderOnlyOnceAcknowledged) {
  AckTracker acks;
  std::vector<std::uint64_t> done;
  for (std::uint64_t seq : {3, 1, 2, 5})
    acks.when_acked(seq, soon(), [&done, seq](AckTracker::Wait w) {
      EXPECT_EQ(w, AckTracker::Wait::kAcked);
      done.push_back(seq);
    });
  EXPECT_TRUE(done.empty());
  acks.ack(2);
  EXPECT_EQ(done, (std::vector<std::uint64_t>{1, 2}));
  acks.ack(1);  // cumulative: an older acknowledgement changes nothing
  EXPECT_EQ(done.size(), 2u);
  acks.ack(4);
  EXPECT_EQ(done, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(acks.waiting(), 1u);
  bool at_once = false;
  acks.when_acked(4, soon(), [&](AckTracker::Wait w) { at_once = w == AckTracker::Wait::kAcked; });
  EXPECT_TRUE(at_once) << "an entry already acknowledged completes at once";
  acks.ack(5);
  EXPECT_EQ(done.back(), 5u);
  EXPECT_EQ(acks.waiting(), 0u);
}

TEST(AckTracker, FailureAndTimeoutCompleteEachCallbackOnce) {
  AckTracker acks;
  std::map<std::uint64_t, std::vector<AckTracker::Wait>> got;
  const auto record = [&](std::uint64_t seq) { return [&got, seq](AckTracker::Wait w) { got[seq].push_back(w); }; };
  const auto now = std::chrono::steady_clock::now();
  acks.when_acked(1, now - 1ms, record(1));  // already past its deadline
  acks.when_acked(2, now + 1h, record(2));
  acks.expire(now);
  EXPECT_EQ(got[1], std::vector<AckTracker::Wait>{AckTracker::Wait::kTimeout});
  EXPECT_TRUE(got[2].empty());
  acks.fail("the tail went away");
  EXPECT_EQ(got[2], std::vector<AckTracker::Wait>{AckTracker::Wait::kFailed});
  acks.when_acked(3, now + 1h, record(3));
  EXPECT_EQ(got[3], std::vector<AckTracker::Wait>{AckTracker::Wait::kFailed}) << "a later write fails at once";
  acks.ack(10);
  acks.expire(now + 2h);
  EXPECT_EQ(got[1].size() + got[2].size() + got[3].size(), 3u) << "nothing completes twice";
}

TEST(SendWindow, HoldsTheNextBatchUntilTheTailAcknowledges) {
  SendWindow w(1);
  EXPECT_TRUE(w.wait_open(std::chrono::steady_clock::now()));
  w.sent(5);
  EXPECT_FALSE(w.wait_open(std::chrono::steady_clock::now() + 5ms));
  w.acked(4);
  EXPECT_FALSE(w.wait_open(std::chrono::steady_clock::now() + 5ms)) << "part of the batch is not acknowledged";
  w.acked(5);
  EXPECT_TRUE(w.wait_open(std::chrono::steady_clock::now()));
  w.sent(3);  // already acknowledged (entries the tail had): not in flight
  EXPECT_EQ(w.in_flight(), 0u);

  SendWindow two(2);
  two.sent(1);
  two.sent(2);
  EXPECT_FALSE(two.wait_open(std::chrono::steady_clock::now()));
  std::thread acker([&] {
    std::this_thread::sleep_for(20ms);
    two.acked(1);
  });
  EXPECT_TRUE(two.wait_open(soon())) << "an acknowledgement wakes the waiting sender";
  acker.join();
  two.close();
  EXPECT_FALSE(two.wait_open(soon()));
  EXPECT_TRUE(two.closed());
}

// The head's loop against a simulated chain: 8 writers submit and wait for
// their acknowledgement, one sender ships batches with take_batch, and the
// "tail" acknowledges each batch after a delay.
TEST(Batching, WritesShareBatchesInOrderAndAreAnsweredOnlyAfterTheTail) {
  constexpr int kWriters = 8, kPerWriter = 200;
  Sequencer seq(0, 64 << 20);
  SendWindow window(1);
  AckTracker acks;
  std::mutex chain_mu;
  std::condition_variable chain_cv;
  std::deque<std::uint64_t> on_the_wire;  // last entry of each batch the tail has not acknowledged
  std::atomic<std::uint64_t> tail_acked{0};
  std::atomic<std::size_t> max_in_flight{0}, batches{0}, early{0};
  std::atomic<bool> stop{false};

  std::thread tail([&] {
    for (;;) {
      std::unique_lock lock(chain_mu);
      chain_cv.wait(lock, [&] { return stop || !on_the_wire.empty(); });
      if (on_the_wire.empty()) return;
      const std::uint64_t last = on_the_wire.front();
      on_the_wire.pop_front();
      lock.unlock();
      std::this_thread::sleep_for(200us);  // the chain's round trip
      tail_acked = last;
      window.acked(last);
      acks.ack(last);
    }
  });
  std::thread sender([&] {
    std::vector<wire::Entry> out;
    std::uint64_t expect = 1;
    for (;;) {
      const auto r = take_batch(seq, window, out, 1 << 20, 10ms);
      if (r == TakeBatch::kClosed) return;
      if (r != TakeBatch::kBatch) continue;
      for (const auto& e : out) EXPECT_EQ(e.seq(), expect++) << "batches keep the sequence order, no gap";
      max_in_flight = std::max(max_in_flight.load(), window.in_flight());
      batches++;
      {
        std::lock_guard lock(chain_mu);
        on_the_wire.push_back(out.back().seq());
      }
      chain_cv.notify_one();
      out.clear();
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int> answered{0};
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        const std::uint64_t s = seq.submit(put("w" + std::to_string(w) + "-" + std::to_string(i)));
        std::promise<AckTracker::Wait> p;
        acks.when_acked(s, soon(), [&, s](AckTracker::Wait r) {
          if (tail_acked.load() < s) early++;
          answered++;
          p.set_value(r);
        });
        ASSERT_EQ(p.get_future().get(), AckTracker::Wait::kAcked);
      }
    });
  for (auto& t : writers) t.join();
  stop = true;
  window.close();
  seq.close();
  sender.join();
  chain_cv.notify_all();
  tail.join();
  EXPECT_EQ(answered.load(), kWriters * kPerWriter);
  EXPECT_EQ(early.load(), 0u) << "a write was answered before the tail had it";
  EXPECT_EQ(max_in_flight.load(), 1u) << "more batches on the wire than the window allows";
  EXPECT_LT(batches.load(), static_cast<std::size_t>(kWriters * kPerWriter) / 2)
      << "writes that wait for the window should share batches";
}
