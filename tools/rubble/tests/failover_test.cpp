// SPDX-License-Identifier: GPL-2.0
// Description: failure handling with real rubble-node processes on
// loopback, in both modes.  Under a write load, the head, the middle or the
// tail of a three-node chain is killed with SIGKILL; the watcher (rubble-ctl
// watch, in-process) removes it, the chain re-forms, writes go on, and every
// write that was acknowledged is readable at the (new) tail, while a reader
// never sees a counter go backwards.  A new node added as tail receives the
// chain's state while writes go on, takes over, and answers exactly as the
// old tail did.  No assertion depends on timing: waits are for conditions,
// with generous limits that only turn a hang into a failure.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "client.h"
#include "ctl.h"
#include "runner.h"
#include "testutil.h"
#include "view.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kSstSize = 256 << 10;

ChainSpec spec(const TempDir& dir, Mode mode) {
  ChainSpec s;
  s.node_binary = RUBBLE_NODE_BIN;
  s.dir = dir.path();
  s.mode = mode;
  s.sst_size = kSstSize;
  s.pool_slots = 64;
  s.extra_args = {"--ack-timeout", "20", "--connect-timeout", "2"};
  return s;
}

std::string value_for(const std::string& key) {
  std::string v = key + "-";
  v.resize(1024, static_cast<char>('a' + key.size() % 26));
  return v;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Writers of unique keys and one counter, and a reader of the counter, all
// following the chain's view.  A key is recorded once its put returned OK.
class Load {
 public:
  Load(std::vector<std::string> seeds, int writers, std::string prefix)
      : seeds_(std::move(seeds)), prefix_(std::move(prefix)) {
    for (int t = 0; t < writers; ++t) threads_.emplace_back([this, t] { write_keys(t); });
    threads_.emplace_back([this] { write_counter(); });
    threads_.emplace_back([this] { read_counter(); });
  }
  ~Load() { stop(); }

  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  std::size_t acked() const {
    std::lock_guard lock(mu_);
    return acked_.size();
  }
  std::map<std::string, std::string> acked_keys() const {
    std::lock_guard lock(mu_);
    return acked_;
  }
  int went_back() const { return went_back_.load(); }
  std::uint64_t counter_reads() const { return counter_reads_.load(); }
  std::string first_error() const {
    std::lock_guard lock(mu_);
    return first_error_;
  }

 private:
  void error(const grpc::Status& st) {
    std::lock_guard lock(mu_);
    if (first_error_.empty()) first_error_ = describe(st);
  }

  void write_keys(int t) {
    auto c = ChainClient::follow(seeds_);
    for (int i = 0; !stop_; ++i) {
      const std::string key = prefix_ + std::to_string(t) + "-" + std::to_string(i);
      const auto st = c.put(key, value_for(key));
      if (!st.ok()) {
        error(st);
        continue;
      }
      std::lock_guard lock(mu_);
      acked_[key] = value_for(key);
    }
  }

  void write_counter() {
    auto c = ChainClient::follow(seeds_);
    for (std::uint64_t i = 1; !stop_; ++i) {
      char v[21];
      std::snprintf(v, sizeof v, "%020llu", static_cast<unsigned long long>(i));
      if (const auto st = c.put(prefix_ + "counter", v); !st.ok()) error(st);
    }
  }

  // Reads at whichever node is the tail: a value once seen never goes back.
  void read_counter() {
    auto c = ChainClient::follow(seeds_);
    std::string seen;
    while (!stop_) {
      std::string v;
      bool found = false;
      if (!c.get(prefix_ + "counter", &v, &found).ok() || !found) continue;
      if (v < seen) went_back_++;
      seen = std::max(seen, v);
      counter_reads_++;
    }
  }

  const std::vector<std::string> seeds_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, std::string> acked_;  // guarded by mu_
  std::string first_error_;                   // guarded by mu_
  std::atomic<int> went_back_{0};
  std::atomic<std::uint64_t> counter_reads_{0};
  std::vector<std::thread> threads_;
};

std::string current_tail(const std::vector<std::string>& seeds) {
  wire::View v;
  if (!ChainClient::fetch_view(seeds, &v).empty()) return "";
  return tail_of(v);
}

// Every acknowledged key, read at the tail (directly, no retries): how
// many are wrong, and the first few.
std::string wrong_at(const std::string& tail, const std::map<std::string, std::string>& acked) {
  ChainClient c(tail, tail);
  int wrong = 0;
  std::string first;
  for (const auto& [key, want] : acked) {
    std::string got;
    bool found = false;
    const auto st = c.get(key, &got, &found);
    if (st.ok() && found && got == want) continue;
    if (++wrong <= 3)
      first += " " + key + (st.ok() ? (found ? " (other value)" : " (not found)") : " (" + describe(st) + ")");
  }
  return wrong ? std::to_string(wrong) + " of " + std::to_string(acked.size()) + ", e.g." + first : "";
}

std::string logs(const Chain& chain) {
  std::string out;
  for (const auto& n : chain.nodes()) out += "--- " + n.name + " (" + n.addr + "):\n" + log_tail(n.log, 3000) + "\n";
  return out;
}

Watcher::Options watch_options(const Chain& chain, std::ostream& log) {
  Watcher::Options o;
  o.seeds = chain.addresses();
  o.interval = 100ms;
  o.failure_timeout = 1000ms;
  o.log = &log;
  return o;
}

// kill: SIGKILL, else a planned removal of the live node (rubble-ctl remove).
void fail_under_load(Mode mode, std::size_t victim, bool kill) {
  TempDir dir;
  Chain chain(spec(dir, mode));
  std::ostringstream log;
  Watcher watcher(watch_options(chain, log));
  watcher.start();
  const std::string killed = chain.nodes().at(victim).addr;
  Load load(chain.addresses(), 3, "k");
  // Enough data for flushes and a compaction (rubble: SSTs in the replicas' slots).
  ASSERT_TRUE(wait_for(
      [&] {
        wire::StatsReply h;
        return load.acked() >= 1000 && ChainClient::stats(chain.head(), &h).ok() &&
               (mode == Mode::kBaseline || h.ssts_shipped() >= 3);
      },
      60s))
      << "no progress before the kill: " << load.first_error();
  if (kill)
    chain.kill_node_at(victim);
  else
    ASSERT_EQ(remove_node(chain.addresses(), killed, &log), "") << log.str();
  ASSERT_TRUE(wait_for(
      [&] {
        const auto r = watcher.removed();
        return !kill || std::find(r.begin(), r.end(), killed) != r.end();
      },
      30s))
      << "the watcher did not remove " << killed << "\n"
      << log.str();
  const std::size_t before = load.acked();
  EXPECT_TRUE(wait_for([&] { return load.acked() >= before + 500; }, 60s))
      << "writes did not resume after the chain re-formed: " << load.first_error() << "\n"
      << log.str() << logs(chain);
  load.stop();
  watcher.stop();
  const auto acked = load.acked_keys();
  const auto tail = current_tail(chain.addresses());
  ASSERT_FALSE(tail.empty());
  ASSERT_NE(tail, killed);
  EXPECT_EQ(wrong_at(tail, acked), "") << "acknowledged writes missing at the new tail " << tail << "\n"
                                       << log.str() << logs(chain);
  EXPECT_EQ(load.went_back(), 0) << "a read returned an older counter than one already returned";
  EXPECT_GT(load.counter_reads(), 0u);
  if (mode == Mode::kRubble) {
    // No slot leaks: releases lost with the failed node are reconciled.
    wire::View v;
    ASSERT_EQ(ChainClient::fetch_view(chain.addresses(), &v), "");
    std::string last;
    EXPECT_TRUE(wait_for(
        [&] {
          wire::StatsReply h;
          if (!ChainClient::stats(head_of(v), &h).ok()) return false;
          last = "head: " + std::to_string(h.slots_in_use()) + " slots in use, " + std::to_string(h.live_sst_files()) +
                 " live SSTs;";
          bool settled = h.slots_in_use() == h.live_sst_files();
          for (int i = 1; i < v.members_size(); ++i) {
            wire::StatsReply r;
            const auto st = ChainClient::stats(v.members(i).addr(), &r);
            settled = settled && st.ok() && r.slots_in_use() == h.live_sst_files();
            last += " " + v.members(i).addr() + ": " + (st.ok() ? std::to_string(r.slots_in_use()) : describe(st));
          }
          return settled;
        },
        30s))
        << "slots did not settle to the live SSTs: " << last << "\n"
        << logs(chain);
  }
}

}  // namespace

TEST(FailoverBaseline, KillTheHeadUnderLoad) {
  fail_under_load(Mode::kBaseline, 0, true);
}
TEST(FailoverBaseline, KillTheMiddleUnderLoad) {
  fail_under_load(Mode::kBaseline, 1, true);
}
TEST(FailoverBaseline, KillTheTailUnderLoad) {
  fail_under_load(Mode::kBaseline, 2, true);
}
TEST(FailoverRubble, KillTheHeadUnderLoad) {
  fail_under_load(Mode::kRubble, 0, true);
}
TEST(FailoverRubble, KillTheMiddleUnderLoad) {
  fail_under_load(Mode::kRubble, 1, true);
}
TEST(FailoverRubble, KillTheTailUnderLoad) {
  fail_under_load(Mode::kRubble, 2, true);
}
// A planned hand-over: the old head stays alive, is told to leave first,
// and must not write into the replicas' slots any more.
TEST(FailoverRubble, RemoveTheLiveHeadUnderLoad) {
  fail_under_load(Mode::kRubble, 0, false);
}

namespace {

// The tail dies; a new node joins as tail while writes go on, and then
// answers exactly as the old tail did.
void new_tail_catches_up(Mode mode) {
  TempDir dir;
  Chain chain(spec(dir, mode));
  std::ostringstream log;
  {
    Load first(chain.addresses(), 2, "a");
    ASSERT_TRUE(wait_for([&] { return first.acked() >= 600; }, 60s)) << first.first_error();
    first.stop();
    chain.kill_node_at(2);
    ASSERT_EQ(remove_node(chain.addresses(), chain.nodes()[2].addr, &log), "") << log.str();
  }
  // What the old tail (the former middle) answers now, for every key.
  const std::string old_tail = chain.nodes()[1].addr;
  ASSERT_EQ(current_tail(chain.addresses()), old_tail);
  std::vector<std::pair<std::string, std::string>> before;
  {
    ChainClient c(old_tail, old_tail);
    ASSERT_TRUE(c.scan("", kMaxScanKeys, &before).ok());
  }
  ASSERT_GT(before.size(), 600u);

  const auto spare = chain.start_spare("spare");
  Load during(chain.addresses(), 2, "b");  // keys "b...": no overlap with "a..."
  ASSERT_TRUE(wait_for([&] { return during.acked() >= 100; }, 60s)) << during.first_error();
  wire::View joined;
  const auto e = add_node(chain.addresses(), spare.addr, 120s, &log, &joined);
  ASSERT_EQ(e, "") << log.str();
  EXPECT_EQ(tail_of(joined), spare.addr);
  const std::size_t at_join = during.acked();
  EXPECT_TRUE(wait_for([&] { return during.acked() >= at_join + 200; }, 60s)) << during.first_error();
  during.stop();

  // The same answers as the old tail for every key it had...
  ChainClient c(spare.addr, spare.addr);
  int differ = 0;
  for (const auto& [key, value] : before) {
    std::string got;
    bool found = false;
    const auto st = c.get(key, &got, &found);
    if (!st.ok() || !found || got != value) ++differ;
  }
  EXPECT_EQ(differ, 0) << "the new tail answers differently from the old one\n" << log.str();
  // ... and every write acknowledged while it joined and after.
  EXPECT_EQ(wrong_at(spare.addr, during.acked_keys()), "") << log.str();
  EXPECT_EQ(during.went_back(), 0);
  // A scan too: the old keys ("a...") sort before the new ones ("b...").
  std::vector<std::pair<std::string, std::string>> after;
  ASSERT_TRUE(c.scan("", static_cast<std::uint32_t>(before.size()), &after).ok());
  EXPECT_TRUE(after == before) << "a scan at the new tail differs from the old tail's";
}

}  // namespace

TEST(JoinBaseline, ANewTailCatchesUpAndAnswersLikeTheOldOne) {
  new_tail_catches_up(Mode::kBaseline);
}
TEST(JoinRubble, ANewTailCatchesUpAndAnswersLikeTheOldOne) {
  new_tail_catches_up(Mode::kRubble);
}
