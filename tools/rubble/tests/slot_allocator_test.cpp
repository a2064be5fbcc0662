// SPDX-License-Identifier: GPL-2.0
// Description: the head's slot allocator.  A slot is held by every replica
// from allocation on and is reused only after every replica released it;
// freed slots are reused oldest-free first; a full pool waits, then fails.
#include <gtest/gtest.h>

#include <thread>

#include "slot_allocator.h"

using namespace fastpath::rubble;
using namespace std::chrono_literals;

TEST(SlotAllocator, ASlotIsFreeOnlyAfterEveryReplicaReleasedIt) {
  SlotAllocator a(2, 3);
  const auto s = a.try_allocate();
  ASSERT_TRUE(s);
  EXPECT_EQ(a.holders(*s), 0b111u);
  EXPECT_EQ(a.release(0, *s), "");
  EXPECT_EQ(a.release(2, *s), "");
  EXPECT_EQ(a.in_use(), 1u) << "replica 2 (index 1) still holds it";
  const auto other = a.try_allocate();
  ASSERT_TRUE(other);
  EXPECT_NE(*other, *s);
  EXPECT_FALSE(a.try_allocate()) << "both slots are held";
  EXPECT_EQ(a.release(1, *s), "");
  EXPECT_EQ(a.in_use(), 1u);
  EXPECT_EQ(a.try_allocate(), s) << "now it can be reused";
}

TEST(SlotAllocator, InvalidReleasesAreRefused) {
  SlotAllocator a(4, 2);
  const auto s = a.try_allocate();
  ASSERT_TRUE(s);
  EXPECT_EQ(a.release(0, *s), "");
  EXPECT_NE(a.release(0, *s).find("does not hold"), std::string::npos) << "a double release";
  EXPECT_NE(a.release(0, 3).find("does not hold"), std::string::npos) << "a free slot";
  EXPECT_NE(a.release(2, *s).find("unknown replica"), std::string::npos);
  EXPECT_NE(a.release(1, 99).find("outside"), std::string::npos);
  EXPECT_EQ(a.holders(*s), 0b10u) << "bad releases change nothing";
}

TEST(SlotAllocator, FreedSlotsAreReusedLast) {
  SlotAllocator a(3, 1);
  const auto first = a.try_allocate();
  ASSERT_EQ(first, 0u);
  ASSERT_EQ(a.release(0, 0), "");
  EXPECT_EQ(a.try_allocate(), 1u);
  EXPECT_EQ(a.try_allocate(), 2u);
  EXPECT_EQ(a.try_allocate(), 0u) << "the slot freed first comes back after the never-used ones";
}

TEST(SlotAllocator, AFullPoolWaitsForARelease) {
  SlotAllocator a(1, 2);
  ASSERT_EQ(a.try_allocate(), 0u);
  EXPECT_FALSE(a.allocate(std::chrono::steady_clock::now() + 20ms)) << "times out when nothing is released";
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    a.release(0, 0);
    a.release(1, 0);
  });
  EXPECT_EQ(a.allocate(std::chrono::steady_clock::now() + 5s), 0u);
  releaser.join();
}

TEST(SlotAllocator, AbandonAndClose) {
  SlotAllocator a(1, 2);
  ASSERT_EQ(a.try_allocate(), 0u);
  a.abandon(0);  // the write to the replicas failed: nobody holds it
  EXPECT_EQ(a.in_use(), 0u);
  ASSERT_EQ(a.try_allocate(), 0u);
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    a.close();
  });
  EXPECT_FALSE(a.allocate(std::chrono::steady_clock::now() + 5s));
  closer.join();
  EXPECT_THROW(SlotAllocator(0, 1), std::invalid_argument);
  EXPECT_THROW(SlotAllocator(1, 65), std::invalid_argument);
}

TEST(SlotAllocator, ReplicasComeAndGo) {
  SlotAllocator a(4, 2);
  const auto s = a.try_allocate();  // held by replicas 0 and 1
  ASSERT_TRUE(s);
  a.remove_replica(1);  // replica 1 failed
  EXPECT_EQ(a.holders(*s), 0b01u);
  EXPECT_EQ(a.replicas(), 1u);
  EXPECT_NE(a.release(1, *s).find("unknown replica"), std::string::npos);
  const auto joiner = a.add_replica();
  ASSERT_EQ(joiner, 1u) << "the lowest free bit is reused";
  EXPECT_EQ(a.hold(*joiner, *s), "") << "the new replica received the file in slot s";
  EXPECT_EQ(a.holders(*s), 0b11u);
  const auto t = a.try_allocate();
  ASSERT_TRUE(t);
  EXPECT_EQ(a.holders(*t), 0b11u) << "new slots go to every replica, the new one too";
  a.remove_replica(0);
  EXPECT_EQ(a.release(1, *t), "");
  EXPECT_EQ(a.in_use(), 1u) << "only s is still held (by the new replica)";
}

TEST(SlotAllocator, AHeadTakingOverStartsFromWhatTheReplicasHold) {
  SlotAllocator a(4, std::vector<std::vector<std::uint32_t>>{{0, 2}, {2, 3}});
  EXPECT_EQ(a.holders(0), 0b01u);
  EXPECT_EQ(a.holders(2), 0b11u);
  EXPECT_EQ(a.holders(3), 0b10u);
  EXPECT_EQ(a.in_use(), 3u);
  EXPECT_EQ(a.try_allocate(), 1u) << "the only slot nobody holds";
  EXPECT_FALSE(a.try_allocate());
  EXPECT_THROW(SlotAllocator(2, std::vector<std::vector<std::uint32_t>>{{5}}), std::invalid_argument);
}

TEST(SlotAllocator, HoldingsReportedByAReplicaReplaceLostReleases) {
  SlotAllocator a(4, 2);
  ASSERT_EQ(a.try_allocate(), 0u);
  ASSERT_EQ(a.try_allocate(), 1u);
  ASSERT_EQ(a.release(0, 0), "");
  // Replica 1 released slot 0 too, but the release died with a failed node.
  EXPECT_EQ(a.keep_only(1, {1}), 1u);
  EXPECT_EQ(a.holders(0), 0u) << "slot 0 is free again";
  EXPECT_EQ(a.holders(1), 0b11u);
  EXPECT_EQ(a.in_use(), 1u);
  // A report older than a release that already arrived does not undo it.
  ASSERT_EQ(a.release(1, 1), "");
  EXPECT_EQ(a.keep_only(1, {1}), 0u);
  EXPECT_EQ(a.holders(1), 0b01u);
}
