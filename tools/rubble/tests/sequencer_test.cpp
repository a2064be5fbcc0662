// SPDX-License-Identifier: GPL-2.0
// Description: the head's outbox hands out consecutive sequence numbers and
// releases entries in exactly that order, even with concurrent submitters.
#include <gtest/gtest.h>

#include <thread>

#include "entries.h"
#include "sequencer.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::put;
using namespace std::chrono_literals;

TEST(Sequencer, NumbersContinueFromTheLastApplied) {
  Sequencer s(41, 1 << 20);
  EXPECT_EQ(s.submit(put("a")), 42u);
  EXPECT_EQ(s.submit(put("b")), 43u);
  std::vector<wire::Entry> out;
  ASSERT_TRUE(s.take(out, 1 << 20, 0ms));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].seq(), 42u);
  EXPECT_EQ(out[0].kv().key(), "a");
  EXPECT_EQ(out[1].seq(), 43u);
}

TEST(Sequencer, ConcurrentSubmittersYieldOneGaplessOrder) {
  Sequencer s(0, 1 << 20);
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) s.submit(put(std::to_string(t)));
    });
  std::vector<wire::Entry> out;
  while (out.size() < kThreads * kEach) ASSERT_TRUE(s.take(out, 4096, 10ms));
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i].seq(), i + 1);
}

TEST(Sequencer, BatchesAreBoundedAndBackPressureBlocks) {
  Sequencer s(0, 1000);  // about 8 entries of ~110 bytes
  std::atomic<int> submitted{0};
  std::thread producer([&] {
    for (int i = 0; i < 40; ++i) {
      s.submit(put("k"));
      submitted++;
    }
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_LT(submitted.load(), 40) << "submit must block while the queue is full";
  std::vector<wire::Entry> out;
  while (out.size() < 40) {
    const auto before = out.size();
    ASSERT_TRUE(s.take(out, 300, 100ms));
    EXPECT_LE(out.size() - before, 3u) << "a batch stops near max_batch_bytes";
  }
  producer.join();
}

TEST(Sequencer, CloseDrainsThenStops) {
  Sequencer s(0, 1 << 20);
  s.submit(put("a"));
  s.close();
  EXPECT_EQ(s.submit(put("b")), 0u);
  std::vector<wire::Entry> out;
  EXPECT_TRUE(s.take(out, 1 << 20, 0ms));
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  EXPECT_FALSE(s.take(out, 1 << 20, 0ms));
}
