// SPDX-License-Identifier: GPL-2.0-only
// Description: the lease state machine on a fake clock: sharing, conflicts,
// revoke-before-grant, downgrade, upgrade, FIFO fairness, expiry of dead
// nodes, generations, reclaim after a restart (grace period), and the
// minimum hold before a revoke (rule 8; the tests above it run with 0).
#include "lease_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

using namespace dfuse;
using namespace dfuse::leased;
using std::chrono::milliseconds;

namespace {

constexpr LeaseMode R = dfuse::abi::kLeaseRead;
constexpr LeaseMode W = dfuse::abi::kLeaseWrite;
constexpr LeaseMode N = dfuse::abi::kLeaseNone;
using Kind = Action::Kind;

uint64_t gen(uint32_t epoch, uint32_t counter) {
  return (uint64_t{epoch} << 32) | counter;
}

class LeaseTableTest : public ::testing::Test {
 protected:
  // A table as after a first start (epoch 1, no grace), TTL 1 s, no
  // minimum hold.
  void make(bool restarted = false, uint32_t last_epoch = 0, milliseconds min_hold = milliseconds(0)) {
    epoch_ = last_epoch;
    TableOptions o;
    o.ttl = milliseconds(1000);
    o.grace = milliseconds(2000);
    o.min_hold = min_hold;
    o.restarted = restarted;
    table_ = std::make_unique<LeaseTable>(
        o, [this] { return ++epoch_; }, now_);
  }
  void SetUp() override { make(); }

  void advance(milliseconds d) {
    now_ += d;
    table_->tick(now_);
  }
  std::vector<ReclaimResult> reg(const NodeId& n, const std::vector<Lease>& held = {}) {
    return table_->register_node(n, held, now_);
  }
  void acquire(const NodeId& n, uint64_t id, LeaseMode m, const FileId& f = "f") { table_->acquire(n, id, f, m, now_); }
  void ack(const NodeId& n, uint64_t g, LeaseMode m, const FileId& f = "f") { table_->ack(n, f, g, m, now_); }
  std::vector<Action> take() { return table_->take_actions(); }
  static std::vector<Action> only(const std::vector<Action>& all, Kind k) {
    std::vector<Action> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), [k](const Action& a) { return a.kind == k; });
    return out;
  }
  // The one grant in `all`, which must be for node/request.
  static Action the_grant(const std::vector<Action>& all, const NodeId& n, uint64_t id) {
    const auto grants = only(all, Kind::kGrant);
    EXPECT_EQ(grants.size(), 1u);
    if (grants.empty()) return {};
    EXPECT_EQ(grants[0].node, n);
    EXPECT_EQ(grants[0].request_id, id);
    return grants[0];
  }
  LeaseMode mode_of(const NodeId& n, const FileId& f = "f") const {
    const auto h = table_->holders(f);
    auto it = h.find(n);
    return it == h.end() ? N : it->second.mode;
  }

  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
  uint32_t epoch_ = 0;
  std::unique_ptr<LeaseTable> table_;
};

TEST_F(LeaseTableTest, GrantsAFreeFileAtOnce) {
  reg("a");
  acquire("a", 1, W);
  const auto g = the_grant(take(), "a", 1);
  EXPECT_EQ(g.mode, W);
  EXPECT_EQ(g.generation, gen(1, 1));
  EXPECT_EQ(mode_of("a"), W);
}

TEST_F(LeaseTableTest, ReadersShare) {
  reg("a");
  reg("b");
  acquire("a", 1, R);
  acquire("b", 2, R);
  const auto acts = take();
  EXPECT_EQ(only(acts, Kind::kGrant).size(), 2u);
  EXPECT_TRUE(only(acts, Kind::kRevoke).empty());
  EXPECT_EQ(mode_of("a"), R);
  EXPECT_EQ(mode_of("b"), R);
}

TEST_F(LeaseTableTest, WriterIsGrantedOnlyAfterEveryReaderAcked) {
  reg("a");
  reg("b");
  reg("c");
  acquire("a", 1, R);
  acquire("b", 2, R);
  const auto grants = only(take(), Kind::kGrant);
  acquire("c", 3, W);
  auto acts = take();
  const auto revokes = only(acts, Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 2u);
  for (const auto& r : revokes) EXPECT_EQ(r.mode, N) << "readers give way to a writer entirely";
  EXPECT_TRUE(only(acts, Kind::kGrant).empty());

  ack("a", grants[0].generation, N);
  EXPECT_TRUE(only(take(), Kind::kGrant).empty()) << "b has not acked yet";
  ack("b", grants[1].generation, N);
  const auto g = the_grant(take(), "c", 3);
  EXPECT_EQ(g.mode, W);
  EXPECT_EQ(mode_of("a"), N);
  EXPECT_EQ(mode_of("b"), N);
}

TEST_F(LeaseTableTest, WriterGivesWayToAReaderByDowngrading) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, R);
  auto acts = take();
  const auto revokes = only(acts, Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(revokes[0].mode, R) << "downgrade, not drop";
  EXPECT_EQ(revokes[0].generation, ga.generation);
  EXPECT_TRUE(only(acts, Kind::kGrant).empty());
  ack("a", ga.generation, R);
  const auto gb = the_grant(take(), "b", 2);
  EXPECT_EQ(gb.mode, R);
  EXPECT_EQ(mode_of("a"), R);
  EXPECT_EQ(mode_of("b"), R);
}

TEST_F(LeaseTableTest, WriterGivesWayToAWriterEntirely) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, W);
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].mode, N);
  ack("a", ga.generation, N);
  the_grant(take(), "b", 2);
  EXPECT_EQ(mode_of("a"), N);
}

TEST_F(LeaseTableTest, UpgradeBySoleReaderIsImmediate) {
  reg("a");
  acquire("a", 1, R);
  const auto g1 = the_grant(take(), "a", 1);
  acquire("a", 2, W);
  const auto acts = take();
  EXPECT_TRUE(only(acts, Kind::kRevoke).empty());
  const auto g2 = the_grant(acts, "a", 2);
  EXPECT_EQ(g2.mode, W);
  EXPECT_GT(g2.generation, g1.generation);
}

TEST_F(LeaseTableTest, UpgradeWithAnotherReaderRevokesIt) {
  reg("a");
  reg("b");
  acquire("a", 1, R);
  acquire("b", 2, R);
  const auto grants = only(take(), Kind::kGrant);
  acquire("a", 3, W);
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "b");
  ack("b", grants[1].generation, N);
  EXPECT_EQ(the_grant(take(), "a", 3).mode, W);
}

TEST_F(LeaseTableTest, AGrantIsAtLeastTheModeAskedFor) {
  reg("a");
  acquire("a", 1, W);
  take();
  acquire("a", 2, R);
  EXPECT_EQ(the_grant(take(), "a", 2).mode, W);
}

TEST_F(LeaseTableTest, QueuedWriterIsNotStarvedByLaterReaders) {
  reg("a");
  reg("b");
  reg("c");
  acquire("a", 1, R);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, W);  // waits for a
  take();
  acquire("c", 3, R);  // compatible with a, but queued behind b
  EXPECT_TRUE(only(take(), Kind::kGrant).empty()) << "a reader overtook a waiting writer";
  EXPECT_EQ(table_->waiting("f"), 2u);
  ack("a", ga.generation, N);
  auto acts = take();
  const auto gb = the_grant(acts, "b", 2);
  // Now c is at the head: b is downgraded for it.
  const auto revokes = only(acts, Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "b");
  EXPECT_EQ(revokes[0].mode, R);
  ack("b", gb.generation, R);
  the_grant(take(), "c", 3);
}

TEST_F(LeaseTableTest, DeadNodeExpiresAndItsPendingRevokeCountsAsAcked) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  take();
  acquire("b", 2, W);
  ASSERT_EQ(only(take(), Kind::kRevoke).size(), 1u);
  // b keeps sending heartbeats, a is silent.
  for (int i = 0; i < 4; ++i) {
    now_ += milliseconds(300);
    table_->heartbeat("b", now_);
  }
  auto acts = take();
  const auto expired = only(acts, Kind::kExpire);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].node, "a");
  the_grant(acts, "b", 2);
  EXPECT_FALSE(table_->registered("a"));
  EXPECT_TRUE(table_->registered("b"));
}

TEST_F(LeaseTableTest, ExpiryHappensAtTheTtlNotBefore) {
  reg("a");
  acquire("a", 1, R);
  take();
  advance(milliseconds(999));
  EXPECT_TRUE(table_->registered("a"));
  EXPECT_EQ(table_->next_deadline(), now_ + milliseconds(1));
  advance(milliseconds(1));
  EXPECT_FALSE(table_->registered("a"));
  EXPECT_EQ(mode_of("a"), N);
}

TEST_F(LeaseTableTest, ExpiredNodeIsRefusedAndItsReclaimToo) {
  reg("a");
  acquire("a", 1, W);
  const auto g = the_grant(take(), "a", 1);
  advance(milliseconds(1000));
  acquire("a", 2, R);
  auto refused = only(take(), Kind::kRefuse);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0].reason.find("not registered"), std::string::npos) << refused[0].reason;
  const auto res = reg("a", {{"f", W, g.generation}});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_FALSE(res[0].accepted);
  EXPECT_NE(res[0].reason.find("expired"), std::string::npos) << res[0].reason;
}

TEST_F(LeaseTableTest, StaleAcksAndReleasesAreIgnored) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  const auto g = the_grant(take(), "a", 1);
  acquire("b", 2, W);
  take();
  ack("a", g.generation - 1, N);
  table_->release("a", "f", g.generation + 1, now_);
  EXPECT_TRUE(only(take(), Kind::kGrant).empty());
  EXPECT_EQ(mode_of("a"), W);
  table_->release("a", "f", g.generation, now_);
  the_grant(take(), "b", 2);
}

TEST_F(LeaseTableTest, DisconnectDropsQueuedRequestsButKeepsLeases) {
  reg("a");
  reg("b");
  reg("c");
  acquire("a", 1, R);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, W);
  acquire("c", 3, R);
  take();
  table_->disconnect("b", now_);
  EXPECT_FALSE(table_->registered("b")) << "b holds nothing: nothing to wait for";
  // c is at the head now and compatible with a's read lease.
  the_grant(take(), "c", 3);
  table_->disconnect("a", now_);
  EXPECT_TRUE(table_->registered("a")) << "a's lease stays until its TTL";
  EXPECT_EQ(mode_of("a"), R);
  EXPECT_EQ(table_->waiting("f"), 0u);
  ack("a", ga.generation, N);  // the revoke b caused is still answered
  EXPECT_EQ(mode_of("a"), N);
}

TEST_F(LeaseTableTest, GenerationsStrictlyIncreaseAcrossFilesAndRestarts) {
  reg("a");
  reg("b");
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    const FileId f = "f" + std::to_string(i % 3);
    acquire(i % 2 ? "a" : "b", static_cast<uint64_t>(i), i % 4 ? R : W, f);
    for (bool again = true; again;) {
      again = false;
      for (const auto& a : take()) {
        if (a.kind == Kind::kGrant) {
          EXPECT_GT(a.generation, last);
          last = a.generation;
        }
        if (a.kind == Kind::kRevoke) {
          ack(a.node, a.generation, a.mode, a.file);
          again = true;
        }
      }
    }
  }
  // A restart: the epoch persisted by the service was 1, the next is 2.
  make(true, 1);
  EXPECT_EQ(table_->epoch(), 2u);
  reg("a");
  advance(milliseconds(2000));  // the grace period
  reg("a");
  acquire("a", 100, W, "f0");
  EXPECT_GT(the_grant(take(), "a", 100).generation, last);
}

// ---- after a restart ----

class LeaseTableRestartTest : public LeaseTableTest {
 protected:
  void SetUp() override { make(true, 6); }  // epoch 7
  const uint64_t old5 = gen(6, 5);
  const uint64_t old9 = gen(6, 9);
};

TEST_F(LeaseTableRestartTest, ReclaimInGraceKeepsTheGeneration) {
  EXPECT_TRUE(table_->in_grace());
  const auto res = reg("a", {{"f", W, old5}, {"g", R, old9}});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_TRUE(res[0].accepted) << res[0].reason;
  EXPECT_TRUE(res[1].accepted) << res[1].reason;
  EXPECT_EQ(table_->holders("f").at("a").generation, old5);
  EXPECT_EQ(mode_of("a", "g"), R);
}

TEST_F(LeaseTableRestartTest, ConflictingReclaimIsRefused) {
  ASSERT_TRUE(reg("a", {{"f", W, old9}})[0].accepted);
  const auto read = reg("b", {{"f", R, old5}});
  EXPECT_FALSE(read[0].accepted);
  EXPECT_NE(read[0].reason.find("conflicts"), std::string::npos) << read[0].reason;
  EXPECT_FALSE(reg("c", {{"f", W, old5}})[0].accepted);
  EXPECT_EQ(mode_of("a"), W);
  EXPECT_EQ(mode_of("b"), N);
  // Readers reclaim side by side.
  EXPECT_TRUE(reg("d", {{"g", R, old5}})[0].accepted);
  EXPECT_TRUE(reg("e", {{"g", R, old9}})[0].accepted);
}

TEST_F(LeaseTableRestartTest, AReclaimWithANewerGenerationEvictsTheStaleOne) {
  // b's write was granted after a's had been given up (a missed that): a's
  // claim is stale even though it came first.
  ASSERT_TRUE(reg("a", {{"f", W, old5}})[0].accepted);
  const auto res = reg("b", {{"f", W, old9}});
  EXPECT_TRUE(res[0].accepted) << res[0].reason;
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(revokes[0].mode, N);
  EXPECT_EQ(mode_of("a"), N);
  EXPECT_EQ(mode_of("b"), W);
}

TEST_F(LeaseTableRestartTest, NoNewGrantDuringGrace) {
  reg("a", {{"f", R, old5}});
  reg("b");
  acquire("b", 1, R, "f");
  acquire("b", 2, W, "other");
  acquire("a", 3, R, "f");  // a already holds read: answered at once
  auto acts = take();
  const auto g = the_grant(acts, "a", 3);
  EXPECT_GT(g.generation, old9);
  for (int i = 0; i < 3; ++i) {
    advance(milliseconds(500));
    table_->heartbeat("a", now_);
    table_->heartbeat("b", now_);
  }
  EXPECT_TRUE(only(take(), Kind::kGrant).empty()) << "granted during the grace period";
  advance(milliseconds(500));
  EXPECT_FALSE(table_->in_grace());
  acts = take();
  EXPECT_EQ(only(acts, Kind::kGrant).size(), 2u) << "the queued requests go once the grace ends";
}

TEST_F(LeaseTableRestartTest, ReclaimAfterGraceIsRefused) {
  advance(milliseconds(2000));
  const auto res = reg("a", {{"f", R, old5}});
  EXPECT_FALSE(res[0].accepted);
  EXPECT_NE(res[0].reason.find("grace"), std::string::npos) << res[0].reason;
}

TEST_F(LeaseTableRestartTest, ReclaimOfAGenerationNeverIssuedIsRefused) {
  const auto res = reg("a", {{"f", W, gen(9, 1)}});
  EXPECT_FALSE(res[0].accepted);
  EXPECT_NE(res[0].reason.find("never issued"), std::string::npos) << res[0].reason;
}

// ---- a node registering again on a new stream (same service run) ----

TEST_F(LeaseTableTest, ReRegistrationResendsPendingRevokes) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  const auto g = the_grant(take(), "a", 1);
  acquire("b", 2, W);
  take();
  const auto res = reg("a", {{"f", W, g.generation}});
  EXPECT_TRUE(res[0].accepted);
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u) << "the revoke may have been lost with a's old stream";
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(revokes[0].generation, g.generation);
}

TEST_F(LeaseTableTest, ReRegistrationWithoutALeaseReleasesIt) {
  reg("a");
  reg("b");
  acquire("a", 1, W);
  take();
  acquire("b", 2, W);
  take();
  reg("a", {});  // a acked while its stream was down
  the_grant(take(), "b", 2);
}

TEST_F(LeaseTableTest, ReRegistrationKeepsTheOlderGrantWhenTheNewerWasLost) {
  reg("a");
  acquire("a", 1, R);
  const auto g1 = the_grant(take(), "a", 1);
  acquire("a", 2, W);
  const auto g2 = the_grant(take(), "a", 2);
  ASSERT_GT(g2.generation, g1.generation);
  const auto res = reg("a", {{"f", R, g1.generation}});  // the W grant never arrived
  EXPECT_TRUE(res[0].accepted);
  EXPECT_EQ(mode_of("a"), R);
  EXPECT_EQ(table_->holders("f").at("a").generation, g1.generation);
  // A lease the service never granted to a is refused.
  const auto bad = reg("a", {{"f", W, g2.generation + 5}});
  EXPECT_FALSE(bad[0].accepted);
}

TEST_F(LeaseTableTest, BadRequestsAreRefused) {
  reg("a");
  acquire("a", 1, N);
  acquire("a", 2, W, "");
  acquire("ghost", 3, R);
  EXPECT_EQ(only(take(), Kind::kRefuse).size(), 3u);
}

// ---- minimum hold (rule 8) ----

class LeaseTableMinHoldTest : public LeaseTableTest {
 protected:
  static constexpr milliseconds kHold{10};
  void SetUp() override {
    make(false, 0, kHold);
    reg("a");
    reg("b");
    reg("c");
  }
  // Moves the clock to start_ + t; every node still registered sends a
  // heartbeat (each call ticks the table first, as in the service).
  void at(milliseconds t) {
    now_ = start_ + t;
    for (const NodeId n : {"a", "b", "c"})
      if (table_->registered(n)) table_->heartbeat(n, now_);
  }
  const TimePoint start_ = now_;
};

TEST_F(LeaseTableMinHoldTest, ARevokeWaitsUntilTheHolderHadItsGrantForTheMinimumHold) {
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  at(milliseconds(3));
  acquire("b", 2, R);
  auto acts = take();
  EXPECT_TRUE(only(acts, Kind::kRevoke).empty()) << "a got its write lease 3 ms ago";
  EXPECT_TRUE(only(acts, Kind::kGrant).empty()) << "granted while a conflicting lease is held";
  EXPECT_EQ(table_->next_deadline(), start_ + kHold);
  EXPECT_EQ(table_->next_hold_end(), start_ + kHold);
  at(milliseconds(9));
  EXPECT_TRUE(take().empty());
  at(milliseconds(10));
  acts = take();
  const auto revokes = only(acts, Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u) << "the hold is over";
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(revokes[0].mode, R);
  EXPECT_EQ(revokes[0].generation, ga.generation);
  EXPECT_TRUE(only(acts, Kind::kGrant).empty());
  EXPECT_EQ(table_->next_hold_end(), TimePoint::max());
  ack("a", ga.generation, R);
  EXPECT_EQ(the_grant(take(), "b", 2).mode, R);
  at(milliseconds(50));
  EXPECT_TRUE(only(take(), Kind::kRevoke).empty()) << "one revoke per conflict";
}

TEST_F(LeaseTableMinHoldTest, TheTimerAloneSendsTheRevoke) {
  acquire("a", 1, W);
  take();
  acquire("b", 2, W);
  EXPECT_TRUE(only(take(), Kind::kRevoke).empty());
  advance(std::chrono::duration_cast<milliseconds>(table_->next_deadline() - now_));  // as the timer does
  EXPECT_EQ(now_, start_ + kHold);
  ASSERT_EQ(only(take(), Kind::kRevoke).size(), 1u);
}

TEST_F(LeaseTableMinHoldTest, AGrantOlderThanTheMinimumHoldIsRevokedAtOnce) {
  acquire("a", 1, W);
  take();
  at(kHold);
  acquire("b", 2, W);
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(revokes[0].mode, N);
}

TEST_F(LeaseTableMinHoldTest, ZeroMinimumHoldRevokesAtOnce) {
  make(false, 0, milliseconds(0));
  reg("a");
  reg("b");
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, R);  // the same instant
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].generation, ga.generation);
  EXPECT_EQ(table_->next_hold_end(), TimePoint::max());
  ack("a", ga.generation, R);
  the_grant(take(), "b", 2);
}

TEST_F(LeaseTableMinHoldTest, AVoluntaryReleaseIsNotDelayed) {
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  at(milliseconds(2));
  acquire("b", 2, W);
  take();
  at(milliseconds(4));
  table_->release("a", "f", ga.generation, now_);
  auto acts = take();
  the_grant(acts, "b", 2);
  EXPECT_TRUE(only(acts, Kind::kRevoke).empty());
  EXPECT_EQ(table_->next_hold_end(), TimePoint::max());
  at(milliseconds(20));
  EXPECT_TRUE(only(take(), Kind::kRevoke).empty()) << "a revoke for a lease already given back";
}

TEST_F(LeaseTableMinHoldTest, ExpiryIsNotDelayed) {
  // A hold longer than the TTL: a goes silent at once, b keeps talking, and
  // a's lease expires at the TTL as before, in the middle of its hold.
  make(false, 0, milliseconds(5000));
  reg("a");
  reg("b");
  acquire("a", 1, W);
  take();
  acquire("b", 2, W);
  EXPECT_TRUE(take().empty());
  for (int i = 1; i <= 4; ++i) {
    now_ += milliseconds(250);
    table_->heartbeat("b", now_);
  }
  const auto acts = take();
  const auto expired = only(acts, Kind::kExpire);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].node, "a");
  EXPECT_TRUE(only(acts, Kind::kRevoke).empty());
  the_grant(acts, "b", 2);
  EXPECT_EQ(table_->next_hold_end(), TimePoint::max());
}

TEST_F(LeaseTableMinHoldTest, EachHolderIsRevokedWhenItsOwnHoldEnds) {
  acquire("a", 1, R);
  const auto ga = the_grant(take(), "a", 1);
  at(milliseconds(6));
  acquire("c", 3, R);
  const auto gc = the_grant(take(), "c", 3);
  at(milliseconds(7));
  acquire("b", 2, W);
  EXPECT_TRUE(take().empty());
  at(milliseconds(10));
  auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "a");
  ack("a", ga.generation, N);
  EXPECT_TRUE(take().empty()) << "c still holds a read lease in its hold";
  EXPECT_EQ(table_->next_hold_end(), start_ + milliseconds(16));
  at(milliseconds(16));
  revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "c");
  ack("c", gc.generation, N);
  the_grant(take(), "b", 2);
}

TEST_F(LeaseTableMinHoldTest, FifoOrderHoldsAndEveryGrantStartsAHold) {
  // A reader and a writer taking turns, with a second reader queued behind
  // the writer: nobody overtakes, and each grant is held for kHold.
  acquire("a", 1, R);
  const auto ga = the_grant(take(), "a", 1);
  at(milliseconds(1));
  acquire("b", 2, W);  // waits for a's hold
  at(milliseconds(2));
  acquire("c", 3, R);  // compatible with a, but behind b
  auto acts = take();
  EXPECT_TRUE(only(acts, Kind::kGrant).empty()) << "a reader overtook a waiting writer during the hold";
  EXPECT_EQ(table_->waiting("f"), 2u);
  at(milliseconds(10));
  acts = take();
  EXPECT_TRUE(only(acts, Kind::kGrant).empty()) << "a reader overtook a waiting writer after the hold";
  ASSERT_EQ(only(acts, Kind::kRevoke).size(), 1u);
  at(milliseconds(12));
  ack("a", ga.generation, N);
  const auto gb = the_grant(take(), "b", 2);
  // c is at the head now; b's write lease was granted at 12 ms.
  EXPECT_EQ(table_->next_hold_end(), start_ + milliseconds(22));
  at(milliseconds(21));
  EXPECT_TRUE(take().empty());
  at(milliseconds(22));
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].node, "b");
  EXPECT_EQ(revokes[0].mode, R);
  ack("b", gb.generation, R);
  the_grant(take(), "c", 3);
  EXPECT_EQ(table_->waiting("f"), 0u);
}

TEST_F(LeaseTableMinHoldTest, ADowngradeKeepsTheHoldOfItsGrantAnUpgradeStartsANewOne) {
  acquire("a", 1, W);
  const auto ga = the_grant(take(), "a", 1);
  acquire("b", 2, R);
  at(kHold);
  take();
  ack("a", ga.generation, R);  // a: read since 10 ms, of its grant at 0 ms
  the_grant(take(), "b", 2);   // b: read since 10 ms
  at(milliseconds(12));
  acquire("c", 3, W);
  auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u) << "a's hold began with its write grant";
  EXPECT_EQ(revokes[0].node, "a");
  EXPECT_EQ(table_->next_hold_end(), start_ + milliseconds(20)) << "b's began with its read grant";

  // An upgrade by a sole reader is a new grant, with a new hold.
  make(false, 0, kHold);
  reg("a");
  reg("b");
  acquire("a", 1, R);
  take();
  at(milliseconds(30));
  acquire("a", 2, W);
  the_grant(take(), "a", 2);
  acquire("b", 3, R);
  EXPECT_TRUE(only(take(), Kind::kRevoke).empty());
  EXPECT_EQ(table_->next_hold_end(), start_ + milliseconds(40));
}

TEST_F(LeaseTableMinHoldTest, AReclaimedLeaseHasNoHold) {
  make(true, 6, kHold);  // a restart: epoch 7, grace until +2 s
  ASSERT_TRUE(reg("a", {{"f", W, gen(6, 5)}})[0].accepted);
  reg("b");
  at(milliseconds(900));
  at(milliseconds(1800));
  at(milliseconds(1995));
  acquire("b", 1, W);
  EXPECT_TRUE(take().empty()) << "the grace period";
  at(milliseconds(2000));
  EXPECT_FALSE(table_->in_grace());
  const auto revokes = only(take(), Kind::kRevoke);
  ASSERT_EQ(revokes.size(), 1u) << "a held its lease across the restart: no hold to wait for";
  EXPECT_EQ(revokes[0].node, "a");
}

}  // namespace
