// SPDX-License-Identifier: GPL-2.0-only
// Description: LeaseClients against the lease service running in-process on
// 127.0.0.1 (any free port), TTL 1 s, heartbeats every 200 ms: a conflicting
// acquire revokes the holder and is granted only after its ack; readers
// share and downgrade a writer; a node that dies loses its leases after the
// TTL; an unreachable service is an error naming its address; with a
// minimum hold, nodes taking turns on a file wait for the holder's hold, and
// not longer.
#include <gtest/gtest.h>

#include <future>

#include "server.h"
#include "testutil.h"

using namespace dfuse;
using namespace dfuse::test;

namespace {

constexpr milliseconds kTtl{1000};

class LeaseClientTest : public ::testing::Test {
 protected:
  void SetUp() override { start(leased::kDefaultMinHold); }
  void start(milliseconds min_hold) {
    leased::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.ttl = kTtl;
    o.min_hold = min_hold;
    o.state_dir = dir_.path();
    o.log = &log_;
    o.verbose = true;
    server_ = std::make_unique<leased::LeaseServer>(o);
    address_ = server_->start();
  }
  void TearDown() override {
    server_->stop();
    if (HasFailure()) std::cerr << "service log:\n" << log_.str();
  }

  TempDir dir_;
  std::ostringstream log_;
  std::unique_ptr<leased::LeaseServer> server_;
  std::string address_;
};

TEST_F(LeaseClientTest, ConflictingAcquireRevokesTheHolderAndIsGrantedOnlyAfterItsAck) {
  Node a(address_, "a", milliseconds(300));  // its kernel takes 300 ms to flush
  Node b(address_, "b");
  const Grant ga = a->acquire("f", kWrite);
  EXPECT_EQ(ga.mode, kWrite);
  EXPECT_EQ(ga.generation >> 32, server_->epoch());

  const Grant gb = b->acquire("f", kWrite);
  const auto granted_at = Clock::now();
  EXPECT_EQ(gb.mode, kWrite);
  EXPECT_GT(gb.generation, ga.generation);

  const auto seen = a.revokes();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].revoke.file, "f");
  EXPECT_EQ(seen[0].revoke.new_mode, kNone);
  EXPECT_EQ(seen[0].revoke.generation, ga.generation);
  EXPECT_LT(seen[0].acked, granted_at) << "granted before the holder acked";
  EXPECT_GE(granted_at - seen[0].at, milliseconds(300));
  EXPECT_EQ(a.mode_of("f"), kNone);
  EXPECT_EQ(b.mode_of("f"), kWrite);
  EXPECT_TRUE(b.revokes().empty());
}

TEST_F(LeaseClientTest, ReadersShareAndAWriterIsDowngradedForAReader) {
  Node a(address_, "a");
  Node b(address_, "b");
  Node c(address_, "c");
  const Grant ga = a->acquire("f", kWrite);
  const Grant gb = b->acquire("f", kRead);
  ASSERT_EQ(a.revokes().size(), 1u);
  EXPECT_EQ(a.revokes()[0].revoke.new_mode, kRead);
  EXPECT_EQ(a.mode_of("f"), kRead) << "downgraded, not dropped";
  EXPECT_GT(gb.generation, ga.generation);
  c->acquire("f", kRead);
  EXPECT_EQ(a.revokes().size(), 1u) << "readers share: no more revokes";
  EXPECT_TRUE(b.revokes().empty());
}

TEST_F(LeaseClientTest, UpgradeBySoleReaderIsImmediate) {
  Node a(address_, "a");
  const Grant r = a->acquire("f", kRead);
  const auto t0 = Clock::now();
  const Grant w = a->acquire("f", kWrite);
  EXPECT_LT(Clock::now() - t0, milliseconds(200));
  EXPECT_EQ(w.mode, kWrite);
  EXPECT_GT(w.generation, r.generation);
  EXPECT_TRUE(a.revokes().empty());
  ASSERT_EQ(a->held().size(), 1u);
  EXPECT_EQ(a->held()[0].second.generation, w.generation);
}

TEST_F(LeaseClientTest, ReleaseAllLetsOthersInWithoutARevoke) {
  Node a(address_, "a");
  Node b(address_, "b");
  a->acquire("f", kWrite);
  a->acquire("g", kRead);
  a->release_all();
  EXPECT_TRUE(a->held().empty());
  const auto t0 = Clock::now();
  b->acquire("f", kWrite);
  b->acquire("g", kWrite);
  EXPECT_LT(Clock::now() - t0, milliseconds(500));
  EXPECT_TRUE(a.revokes().empty());
}

TEST_F(LeaseClientTest, RevokesOfDifferentFilesRunConcurrently) {
  Node a(address_, "a", milliseconds(400));
  Node b(address_, "b");
  Node c(address_, "c");
  a->acquire("f1", kWrite);
  a->acquire("f2", kWrite);
  const auto t0 = Clock::now();
  auto fb = std::async(std::launch::async, [&] { return b->acquire("f1", kWrite); });
  auto fc = std::async(std::launch::async, [&] { return c->acquire("f2", kWrite); });
  fb.get();
  fc.get();
  EXPECT_EQ(a.max_concurrent(), 2);
  EXPECT_LT(Clock::now() - t0, milliseconds(750)) << "the two 400 ms revokes ran one after the other";
}

TEST_F(LeaseClientTest, ANodeThatStopsHeartbeatingLosesItsLeasesAfterTheTtl) {
  Node a(address_, "a");
  Node b(address_, "b");
  a->acquire("f", kWrite);
  a.crash();  // no release, no more heartbeats
  const auto t0 = Clock::now();
  const Grant g = b->acquire("f", kWrite);
  const auto waited = Clock::now() - t0;
  EXPECT_EQ(g.mode, kWrite);
  EXPECT_GE(waited, kTtl - milliseconds(250)) << "the dead node's lease went before its TTL";
  EXPECT_LT(waited, kTtl + milliseconds(1000));
  server_->stop();  // its log is ours to read now
  EXPECT_NE(log_.str().find("node a expired"), std::string::npos) << log_.str();
}

TEST_F(LeaseClientTest, AnUnreachableServiceIsAnErrorNamingItsAddress) {
  server_->stop();
  const auto t0 = Clock::now();
  try {
    Node a(address_, "a", milliseconds(0), milliseconds(400));
    FAIL() << "connected to a stopped service";
  } catch (const LeaseError& e) {
    EXPECT_NE(std::string(e.what()).find(address_), std::string::npos) << e.what();
  }
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, milliseconds(400));
  EXPECT_LT(waited, milliseconds(2000));
}

TEST_F(LeaseClientTest, BadArgumentsAreErrors) {
  LeaseClientOptions o;
  o.address = address_;
  EXPECT_THROW(LeaseClient::connect(o, [](const Revoke&) {}), LeaseError) << "empty node id";
  o.node_id = "a";
  EXPECT_THROW(LeaseClient::connect(o, nullptr), LeaseError) << "no handler";
  Node a(address_, "a");
  EXPECT_THROW(a->acquire("f", kNone), LeaseError);
  try {
    a->acquire("", kRead);
    FAIL() << "an empty file id was granted";
  } catch (const LeaseError& e) {
    EXPECT_NE(std::string(e.what()).find("empty file id"), std::string::npos) << e.what();
  }
}

// ---- the minimum hold (lease_table.h rule 8) through the service's timer ----

class LeaseClientMinHoldTest : public LeaseClientTest {
 protected:
  // Well below the service timer's 100 ms round, so that only the wake-up
  // by the acquire that starts a hold sends the revoke in time.
  static constexpr milliseconds kHold{20};
  void SetUp() override { start(kHold); }
};

TEST_F(LeaseClientMinHoldTest, NodesTakingTurnsWaitForTheHoldersHoldAndNoLonger) {
  // A writer and a reader taking turns. Each conflicting acquire is granted
  // once the holder had its grant for kHold: not before, and not only at the
  // timer's next 100 ms round (the acquire that starts a hold wakes it).
  Node a(address_, "a");
  Node b(address_, "b");
  auto asked = Clock::now();  // the holder's grant was made after this
  a->acquire("f", kWrite);
  auto granted = Clock::now();  // and before this
  for (int turn = 0; turn < 4; ++turn) {
    Node& next = turn % 2 == 0 ? b : a;
    const auto t0 = Clock::now();
    const Grant g = next->acquire("f", turn % 2 == 0 ? kRead : kWrite);
    const auto t1 = Clock::now();
    EXPECT_EQ(g.mode, turn % 2 == 0 ? kRead : kWrite);
    EXPECT_GE(t1 - asked, kHold) << "turn " << turn << ": revoked within the holder's minimum hold";
    EXPECT_LT(t1 - granted, kHold + milliseconds(40)) << "turn " << turn << ": the revoke waited for a timer round";
    asked = t0;
    granted = t1;
  }
  EXPECT_EQ(a.revokes().size(), 2u);
  EXPECT_EQ(b.revokes().size(), 2u);
}

class LeaseClientLongHoldTest : public LeaseClientTest {
 protected:
  void SetUp() override { start(milliseconds(1000)); }
};

TEST_F(LeaseClientLongHoldTest, AReleasedLeaseIsNotHeldBack) {
  Node a(address_, "a");
  Node b(address_, "b");
  a->acquire("f", kWrite);
  a->release("f");
  const auto t0 = Clock::now();
  b->acquire("f", kWrite);
  EXPECT_LT(Clock::now() - t0, milliseconds(500)) << "waited for the hold of a lease given back";
  EXPECT_TRUE(a.revokes().empty());
}

}  // namespace
