// SPDX-License-Identifier: GPL-2.0
// Description: the chain protocol state machine: who serves which request,
// request validation, a replica's replication session (Hello, then entries
// strictly in sequence) and the head's wait for acknowledgements.
#include <gtest/gtest.h>

#include <thread>

#include "chain.h"
#include "options.h"

using namespace fastpath::rubble;
using namespace std::chrono_literals;

namespace {

HelloInfo hello(std::string chain = "c1", std::string mode = "baseline", std::uint64_t head_seq = 0) {
  HelloInfo h;
  h.chain_id = std::move(chain);
  h.mode = std::move(mode);
  h.position = 1;
  h.head_seq = head_seq;
  return h;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(Roles, WritesAtTheHeadReadsAtTheTail) {
  EXPECT_EQ(check_client_op(Role::kHead, ClientOp::kPut), "");
  EXPECT_EQ(check_client_op(Role::kHead, ClientOp::kDelete), "");
  EXPECT_EQ(check_client_op(Role::kTail, ClientOp::kGet), "");
  EXPECT_TRUE(contains(check_client_op(Role::kMiddle, ClientOp::kPut), "writes enter the chain at the head"));
  EXPECT_TRUE(contains(check_client_op(Role::kTail, ClientOp::kDelete), "head"));
  EXPECT_TRUE(contains(check_client_op(Role::kHead, ClientOp::kGet), "reads are served by the tail"));
  EXPECT_EQ(parse_role("middle"), Role::kMiddle);
  EXPECT_FALSE(parse_role("leader"));
  EXPECT_EQ(parse_mode("rubble"), Mode::kRubble);
  EXPECT_FALSE(parse_mode("fast"));
}

TEST(Requests, MalformedKeysAndValuesAreRefused) {
  EXPECT_EQ(check_key_value("k", 10), "");
  EXPECT_TRUE(contains(check_key_value("", 0), "key is empty"));
  EXPECT_TRUE(contains(check_key_value(std::string(kMaxKeyBytes + 1, 'k'), 0), "1 to 65536"));
  EXPECT_TRUE(contains(check_key_value("k", kMaxValueBytes + 1), "at most 8 MiB"));
}

TEST(Options, AddressesAndRoleConsistency) {
  EXPECT_EQ(check_address("127.0.0.1:7000", "--listen"), "");
  EXPECT_EQ(check_address("localhost:0", "--listen"), "");
  EXPECT_EQ(check_address("10.77.0.2:7000", "--listen"), "");
  EXPECT_EQ(check_address("[::1]:7000", "--next"), "");
  EXPECT_TRUE(contains(check_address("::1:7000", "--next"), "brackets"));
  EXPECT_TRUE(contains(check_address(":7000", "--next"), "HOST:PORT"));
  EXPECT_TRUE(contains(check_address("127.0.0.1", "--next"), "HOST:PORT"));
  EXPECT_TRUE(contains(check_address("127.0.0.1:99999", "--next"), "port"));

  NodeOptions o;
  o.listen = "127.0.0.1:0";
  o.db = "/tmp/x";
  o.role = Role::kTail;
  EXPECT_EQ(validate(o), "");
  o.next = "127.0.0.1:1";
  EXPECT_TRUE(contains(validate(o), "a tail has no successor"));
  o.role = Role::kHead;
  o.next.clear();
  EXPECT_TRUE(contains(validate(o), "needs --next"));
  o.next = "127.0.0.1:1";
  EXPECT_EQ(validate(o), "");
  o.mode = Mode::kRubble;
  EXPECT_TRUE(contains(validate(o), "--replica-pool"));
  o.replica_pools = {"/tmp/p1"};
  EXPECT_EQ(validate(o), "");
  o.role = Role::kMiddle;
  o.replica_pools.clear();
  EXPECT_TRUE(contains(validate(o), "needs --pool"));
}

TEST(ReplicaSession, HelloThenEntriesInOrder) {
  ReplicaSession s(LocalIdentity{"", Mode::kBaseline, 0, 0});
  EXPECT_EQ(s.state(), ReplicaSession::State::kAwaitHello);
  ASSERT_EQ(s.on_hello(hello()), "");
  EXPECT_TRUE(s.adopted());
  EXPECT_EQ(s.state(), ReplicaSession::State::kStreaming);
  EXPECT_EQ(s.on_entry(1), "");
  EXPECT_EQ(s.on_entry(2), "");
  EXPECT_EQ(s.next_seq(), 3u);
}

TEST(ReplicaSession, GapsRepeatsAndReorderingCloseTheSession) {
  for (std::uint64_t bad : {1u, 2u, 4u}) {
    ReplicaSession s(LocalIdentity{"c1", Mode::kBaseline, 0, 0});
    ASSERT_EQ(s.on_hello(hello()), "");
    ASSERT_EQ(s.on_entry(1), "");
    ASSERT_EQ(s.on_entry(2), "");
    const auto e = s.on_entry(bad);
    EXPECT_TRUE(contains(e, "3 was expected")) << e;
    EXPECT_EQ(s.state(), ReplicaSession::State::kClosed);
    EXPECT_FALSE(s.on_entry(3).empty()) << "a closed session accepts nothing";
  }
}

TEST(ReplicaSession, EntriesBeforeHelloAndSecondHelloAreRefused) {
  ReplicaSession s(LocalIdentity{"", Mode::kBaseline, 0, 0});
  EXPECT_TRUE(contains(s.on_entry(1), "before the Hello"));
  ReplicaSession t(LocalIdentity{"", Mode::kBaseline, 0, 0});
  ASSERT_EQ(t.on_hello(hello()), "");
  EXPECT_TRUE(contains(t.on_hello(hello()), "second Hello"));
}

TEST(ReplicaSession, AnotherChainsDataIsRefused) {
  ReplicaSession s(LocalIdentity{"other", Mode::kBaseline, 0, 0});
  const auto e = s.on_hello(hello("c1"));
  EXPECT_TRUE(contains(e, "chain 'other'")) << e;
  EXPECT_TRUE(contains(e, "empty --db")) << e;
  EXPECT_EQ(s.state(), ReplicaSession::State::kClosed);
}

TEST(ReplicaSession, ModeAndSequenceMismatchesAreRefused) {
  ReplicaSession mode(LocalIdentity{"c1", Mode::kRubble, 0, 1 << 20});
  EXPECT_TRUE(contains(mode.on_hello(hello("c1", "baseline")), "same --mode"));

  ReplicaSession ahead(LocalIdentity{"c1", Mode::kBaseline, 9, 0});
  EXPECT_TRUE(contains(ahead.on_hello(hello("c1", "baseline", 5)), "diverged")) << "a replica ahead of its predecessor";

  ReplicaSession behind(LocalIdentity{"c1", Mode::kBaseline, 5, 0});
  ASSERT_EQ(behind.on_hello(hello("c1", "baseline", 9)), "");
  EXPECT_EQ(behind.next_seq(), 6u) << "the predecessor resends from the entry after the replica's last one";

  ReplicaSession same(LocalIdentity{"c1", Mode::kBaseline, 9, 0});
  ASSERT_EQ(same.on_hello(hello("c1", "baseline", 9)), "");
  EXPECT_FALSE(same.adopted());
  EXPECT_EQ(same.next_seq(), 10u);

  ReplicaSession slots(LocalIdentity{"c1", Mode::kRubble, 0, 2 << 20});
  HelloInfo h = hello("c1", "rubble");
  h.slot_size = 3 << 20;
  EXPECT_TRUE(contains(slots.on_hello(h), "same --sst-size"));
}

TEST(ReplicaSession, ViewsOnlyMoveForward) {
  LocalIdentity local{"c1", Mode::kBaseline, 0, 0, 3};
  HelloInfo h = hello();
  h.epoch = 2;
  ReplicaSession stale(local);
  EXPECT_TRUE(contains(stale.on_hello(h), "stale view"));
  h.epoch = 0;  // a head starting afresh after the chain was reconfigured
  ReplicaSession restarted(local);
  EXPECT_TRUE(contains(restarted.on_hello(h), "rubble-ctl add"));
  h.epoch = 3;
  ReplicaSession current(local);
  EXPECT_EQ(current.on_hello(h), "");
}

TEST(ReplicaSession, AJoiningNodeStartsFromASnapshot) {
  HelloInfo h = hello("c1", "baseline", 40);
  h.join = true;
  ReplicaSession s(LocalIdentity{"", Mode::kBaseline, 0, 0});
  ASSERT_EQ(s.on_hello(h), "");
  EXPECT_EQ(s.state(), ReplicaSession::State::kAwaitSnapshot);
  EXPECT_TRUE(contains(s.on_entry(41), "before the end of the snapshot"));
  ReplicaSession t(LocalIdentity{"", Mode::kBaseline, 0, 0});
  ASSERT_EQ(t.on_hello(h), "");
  ASSERT_EQ(t.on_snapshot_done(37), "");
  EXPECT_EQ(t.on_entry(38), "") << "entries resume right after the snapshot";

  ReplicaSession full(LocalIdentity{"c1", Mode::kBaseline, 12, 0});
  EXPECT_TRUE(contains(full.on_hello(h), "empty --db"));

  HelloInfo r = hello("c1", "rubble", 40);
  r.join = true;
  ReplicaSession rubble(LocalIdentity{"", Mode::kRubble, 0, 0});
  ASSERT_EQ(rubble.on_hello(r), "");
  EXPECT_EQ(rubble.next_seq(), 41u) << "a rubble newcomer takes the stream from here and waits for the head's snapshot";
}

TEST(AckTracker, CumulativeAcksWakeWaiters) {
  AckTracker acks;
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    acks.ack(5);
  });
  EXPECT_EQ(acks.wait(3, std::chrono::steady_clock::now() + 5s), AckTracker::Wait::kAcked);
  t.join();
  acks.ack(2);  // older acks never move it back
  EXPECT_EQ(acks.acked(), 5u);
  EXPECT_EQ(acks.wait(6, std::chrono::steady_clock::now() + 10ms), AckTracker::Wait::kTimeout);
}

TEST(AckTracker, FailureReachesEveryWaiter) {
  AckTracker acks;
  acks.ack(1);
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    acks.fail("successor gone");
  });
  EXPECT_EQ(acks.wait(2, std::chrono::steady_clock::now() + 5s), AckTracker::Wait::kFailed);
  t.join();
  EXPECT_EQ(acks.failure(), "successor gone");
  EXPECT_EQ(acks.wait(1, std::chrono::steady_clock::now()), AckTracker::Wait::kAcked) << "acked stays acked";
}
