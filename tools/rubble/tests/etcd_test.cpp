// SPDX-License-Identifier: GPL-2.0
// Description: rubble-ctl with --etcd, against a real etcd (one member on
// loopback, started per test) and real rubble-node processes.  The etcd
// client itself (revisions, guarded puts, leases, a leader campaign); view
// changes committed with a compare-and-swap, so that racing removals get
// distinct epochs and a stale revision is refused; etcd seeded from the
// nodes and following them when they were changed without etcd; two
// watchers of one chain, of which one leads and removes each failed node
// once, and the other takes over when the leader stops; and an etcd that
// does not answer.  Waits are for conditions, with limits that only turn a
// hang into a failure.  Skipped without /usr/bin/etcd (install-deps.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "client.h"
#include "ctl.h"
#include "fastpath/etcd.h"
#include "fastpath/etcd_server.h"
#include "fastpath/report.h"
#include "runner.h"
#include "testutil.h"
#include "view.h"

using namespace fastpath::rubble;
using fastpath::etcd::test::EtcdServer;
using fastpath::rubble::test::TempDir;
using namespace std::chrono_literals;

namespace {

#define REQUIRE_ETCD()                                            \
  do {                                                            \
    if (!EtcdServer::installed())                                 \
      GTEST_SKIP() << fastpath::etcd::test::kEtcdBinary           \
                   << " is missing: run scripts/install-deps.sh " \
                      "(package etcd-server)";                    \
  } while (0)

template <class Pred>
bool wait_for(Pred pred, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

ChainSpec spec(const TempDir& dir, int replicas) {
  ChainSpec s;
  s.node_binary = RUBBLE_NODE_BIN;
  s.dir = dir.path();
  s.mode = Mode::kBaseline;
  s.replicas = replicas;
  s.extra_args = {"--ack-timeout", "20", "--connect-timeout", "2"};
  return s;
}

std::string value_for(const std::string& key) {
  return key + "-" + std::string(100, static_cast<char>('a' + key.size() % 26));
}

// Writers of unique keys, following the chain's view; a key is recorded
// once its put returned OK.
class Writers {
 public:
  Writers(std::vector<std::string> seeds, int n) : seeds_(std::move(seeds)) {
    for (int t = 0; t < n; ++t) threads_.emplace_back([this, t] { run(t); });
  }
  ~Writers() { stop(); }
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
  std::string first_error() const {
    std::lock_guard lock(mu_);
    return first_error_;
  }

 private:
  void run(int t) {
    auto c = ChainClient::follow(seeds_);
    for (int i = 0; !stop_; ++i) {
      const std::string key = "w" + std::to_string(t) + "-" + std::to_string(i);
      const auto st = c.put(key, value_for(key));
      std::lock_guard lock(mu_);
      if (st.ok())
        acked_[key] = value_for(key);
      else if (first_error_.empty())
        first_error_ = describe(st);
    }
  }

  const std::vector<std::string> seeds_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, std::string> acked_;  // guarded by mu_
  std::string first_error_;                   // guarded by mu_
  std::vector<std::thread> threads_;
};

// Every acknowledged key read at the tail: "" or how many are wrong.
std::string wrong_at(const std::string& tail, const std::map<std::string, std::string>& acked) {
  ChainClient c(tail, tail);
  int wrong = 0;
  std::string first;
  for (const auto& [key, want] : acked) {
    std::string got;
    bool found = false;
    const auto st = c.get(key, &got, &found);
    if (st.ok() && found && got == want) continue;
    if (++wrong <= 3) first += " " + key;
  }
  return wrong ? std::to_string(wrong) + " of " + std::to_string(acked.size()) + ", e.g." + first : "";
}

// Writes go on (n more acknowledged), then every acknowledged key is read
// at the tail of view.
void writes_survive(Writers& w, const wire::View& view, std::size_t n = 200) {
  const auto before = w.acked();
  EXPECT_TRUE(wait_for([&] { return w.acked() >= before + n; }, 60s)) << "writes did not go on: " << w.first_error();
  w.stop();
  EXPECT_GT(w.acked(), 0u);
  EXPECT_EQ(wrong_at(tail_of(view), w.acked_keys()), "") << "acknowledged writes missing at " << tail_of(view);
}

std::string chain_id_of(const std::string& addr) {
  wire::NodeState st;
  EXPECT_TRUE(ChainClient::state(addr, &st).ok());
  return st.chain_id();
}

// "" if every member of view holds exactly view, else what differs.
std::string members_hold(const wire::View& view) {
  std::string out;
  for (const auto& m : view.members()) {
    wire::NodeState st;
    if (const auto s = ChainClient::state(m.addr(), &st); !s.ok())
      out += m.addr() + ": " + describe(s) + "; ";
    else if (st.view().SerializeAsString() != view.SerializeAsString())
      out += m.addr() + " holds " + describe(st.view()) + "; ";
  }
  return out;
}

std::string role_of(const std::string& addr) {
  wire::NodeState st;
  return ChainClient::state(addr, &st).ok() ? st.role() : "unreachable";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(EtcdClient, RevisionsGuardedPutsLeasesAndACampaign) {
  REQUIRE_ETCD();
  EtcdServer server;
  etcd::Client c(server.endpoint());
  const std::string key = "/test/key";
  etcd::KeyValue kv;
  bool found = true;
  ASSERT_EQ(c.get(key, &kv, &found), "");
  EXPECT_FALSE(found);

  // Revision 0: only if absent.
  etcd::PutResult r;
  ASSERT_EQ(c.put_if(key, "a", etcd::Guard::kModRevision, 0, &r), "");
  ASSERT_TRUE(r.done);
  const auto rev_a = r.revision;
  EXPECT_GT(rev_a, 0);
  ASSERT_EQ(c.put_if(key, "b", etcd::Guard::kModRevision, 0, &r), "");
  EXPECT_FALSE(r.done);
  EXPECT_TRUE(r.found);
  EXPECT_EQ(r.current.value, "a");
  EXPECT_EQ(r.current.mod_revision, rev_a);
  // The revision it was read at: done; a stale one: refused, the key kept.
  ASSERT_EQ(c.put_if(key, "b", etcd::Guard::kModRevision, rev_a, &r), "");
  ASSERT_TRUE(r.done);
  const auto rev_b = r.revision;
  EXPECT_GT(rev_b, rev_a);
  ASSERT_EQ(c.put_if(key, "c", etcd::Guard::kModRevision, rev_a, &r), "");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.current.value, "b");
  ASSERT_EQ(c.get(key, &kv, &found), "");
  EXPECT_TRUE(found);
  EXPECT_EQ(kv.value, "b");
  EXPECT_EQ(kv.mod_revision, rev_b);
  EXPECT_EQ(kv.create_revision, rev_a);
  // Guarded by the creation: a key that exists is not created again.
  ASSERT_EQ(c.put_if(key, "d", etcd::Guard::kCreateRevision, 0, &r), "");
  EXPECT_FALSE(r.done);
  ASSERT_EQ(c.put_if(key, "d", etcd::Guard::kCreateRevision, rev_a, &r), "");
  EXPECT_TRUE(r.done);

  // A campaign: the first leads, the second stands by; the first keeps the
  // lead across campaigns and past its lease's TTL (kept alive).
  const std::string election = "/test/leader";
  etcd::Election one(c, election, "one", 2s), two(c, election, "two", 2s);
  bool leading = false;
  std::string leader;
  ASSERT_EQ(one.campaign(&leading, &leader), "");
  EXPECT_TRUE(leading);
  EXPECT_EQ(leader, "one");
  ASSERT_EQ(two.campaign(&leading, &leader), "");
  EXPECT_FALSE(leading);
  EXPECT_EQ(leader, "one");
  std::this_thread::sleep_for(3500ms);  // longer than the TTL
  ASSERT_EQ(one.campaign(&leading, &leader), "");
  EXPECT_TRUE(leading) << "the lead was lost: the lease was not kept alive";
  ASSERT_EQ(two.campaign(&leading, &leader), "");
  EXPECT_FALSE(leading);
  // Resigning ends the lead at once.
  one.resign();
  ASSERT_EQ(two.campaign(&leading, &leader), "");
  EXPECT_TRUE(leading);
  EXPECT_EQ(leader, "two");
  ASSERT_EQ(one.campaign(&leading, &leader), "");
  EXPECT_FALSE(leading);
  EXPECT_EQ(leader, "two");
  two.resign();

  // A leader that dies: its lease is not renewed, and the key vanishes
  // once etcd expires it; then another candidate leads.
  std::int64_t lease = 0;
  std::chrono::seconds granted{0};
  ASSERT_EQ(c.grant(2s, &lease, &granted), "");
  EXPECT_GE(granted, 2s);
  ASSERT_EQ(c.put_if(election, "dead", etcd::Guard::kCreateRevision, 0, &r, lease), "");
  ASSERT_TRUE(r.done);
  etcd::Election three(c, election, "three", 2s);
  ASSERT_EQ(three.campaign(&leading, &leader), "");
  EXPECT_FALSE(leading);
  EXPECT_EQ(leader, "dead");
  EXPECT_TRUE(wait_for(
      [&] {
        leading = false;
        return three.campaign(&leading, &leader).empty() && leading;
      },
      30s))
      << "the dead leader's key did not expire (leader: " << leader << ")";
}

// (a) Two removals race through etcd: the one that loses the
// compare-and-swap pushes nothing, is built again on the winner's view and
// gets the next epoch; a commit on a stale revision is refused.
TEST(EtcdCtl, RacingRemovalsCommitDistinctEpochs) {
  REQUIRE_ETCD();
  EtcdServer server;
  TempDir dir;
  Chain chain(spec(dir, 3));  // head, middle1, middle2, tail
  const auto seeds = chain.addresses();
  const std::string m1 = chain.nodes()[1].addr, m2 = chain.nodes()[2].addr;
  const auto id = chain_id_of(chain.head());
  ASSERT_FALSE(id.empty());
  Writers writers(seeds, 2);
  ASSERT_TRUE(wait_for([&] { return writers.acked() >= 200; }, 60s)) << writers.first_error();

  EtcdViews store(server.endpoint());
  wire::View committed;
  std::int64_t rev0 = -1;
  ASSERT_EQ(store.read(id, &committed, &rev0), "");
  EXPECT_EQ(rev0, 0) << "nothing is committed before the first change";

  // The removal of m1 reads its base, then, before it commits, another
  // rubble-ctl (its own etcd client) removes m2 completely.
  std::ostringstream log1, log2;
  wire::View w1, w2;
  std::int64_t rev_w2 = 0;
  std::string other_error = "did not run";
  int commits = 0;
  store.before_commit = [&] {
    if (commits++ > 0) return;
    EtcdViews other(server.endpoint());
    other_error = remove_node(seeds, m2, &log2, &w2, &other);
    wire::View v;
    other.read(id, &v, &rev_w2);
  };
  ASSERT_EQ(remove_node(seeds, m1, &log1, &w1, &store), "") << log1.str();
  ASSERT_EQ(other_error, "") << log2.str();
  EXPECT_EQ(commits, 2) << "the first commit should have failed and the second succeeded\n" << log1.str();
  EXPECT_EQ(w2.epoch(), 2u) << log2.str();
  EXPECT_EQ(w1.epoch(), 3u) << log1.str();
  EXPECT_EQ(describe(w1), "epoch 3: " + chain.head() + " -> " + chain.tail());
  EXPECT_NE(log1.str().find("the chain changed meanwhile"), std::string::npos) << log1.str();
  // m1's removal said (and pushed) one view only: epoch 3.
  EXPECT_EQ(count(log1.str(), "removing " + m1), 1u) << log1.str();
  EXPECT_NE(log1.str().find("removing " + m1 + ": epoch 3"), std::string::npos) << log1.str();

  ASSERT_EQ(store.read(id, &committed, &rev0), "");
  EXPECT_EQ(committed.SerializeAsString(), w1.SerializeAsString());
  EXPECT_EQ(members_hold(w1), "");
  EXPECT_EQ(role_of(m1), "removed");
  EXPECT_EQ(role_of(m2), "removed");

  // A commit on the revision of epoch 2 (stale now) is refused and changes
  // nothing; so is one that assumes nothing was committed.
  wire::View stale, current;
  ASSERT_EQ(remove_member(w2, m1, &stale), "");  // another epoch 3, built on epoch 2
  bool ok = true;
  ASSERT_EQ(store.commit(id, stale, rev_w2, &ok, &current), "");
  EXPECT_FALSE(ok);
  EXPECT_EQ(current.SerializeAsString(), w1.SerializeAsString());
  ASSERT_EQ(store.commit(id, stale, 0, &ok, &current), "");
  EXPECT_FALSE(ok);
  std::int64_t rev1 = 0;
  ASSERT_EQ(store.read(id, &committed, &rev1), "");
  EXPECT_EQ(rev1, rev0);
  EXPECT_EQ(committed.SerializeAsString(), w1.SerializeAsString());

  // A removal that the winner made impossible says why.
  store.before_commit = nullptr;
  const auto e = remove_node(seeds, m2, &log1, nullptr, &store);
  EXPECT_NE(e.find(m2 + " is not a member"), std::string::npos) << e;
  writes_survive(writers, w1);
}

// (a) The same race between two rubble-ctl processes, started together.
TEST(EtcdCtl, TwoRubbleCtlProcessesRemoveAtOnce) {
  REQUIRE_ETCD();
  EtcdServer server;
  TempDir dir;
  Chain chain(spec(dir, 3));
  const auto seeds = chain.addresses();
  Writers writers(seeds, 2);
  ASSERT_TRUE(wait_for([&] { return writers.acked() >= 200; }, 60s)) << writers.first_error();
  int rc[2] = {-2, -2};
  std::vector<std::thread> ctls;
  for (int i = 0; i < 2; ++i)
    ctls.emplace_back([&, i] {
      rc[i] = run_command(RUBBLE_CTL_BIN,
                          {"--etcd", server.endpoint(), "--chain", chain.head(), "remove", chain.nodes()[1 + i].addr},
                          dir.path() + "/ctl" + std::to_string(i) + ".log", 120);
    });
  for (auto& t : ctls) t.join();
  const std::string out[2] = {read_file(dir.path() + "/ctl0.log"), read_file(dir.path() + "/ctl1.log")};
  ASSERT_EQ(rc[0], 0) << out[0];
  ASSERT_EQ(rc[1], 0) << out[1];
  // Each prints "view epoch N: ..." last: one 2, one 3.  (Other lines may
  // quote a node's refusal, which names the later view.)
  const auto last_view = [](const std::string& o) {
    const auto at = o.rfind("\nview epoch ");
    return at == std::string::npos ? std::string() : o.substr(at + 1);
  };
  const std::string last[2] = {last_view(out[0]), last_view(out[1])};
  const bool second_won = last[0].rfind("view epoch 3: ", 0) == 0;
  EXPECT_EQ(last[second_won ? 1 : 0].rfind("view epoch 2: ", 0), 0u) << out[0] << out[1];
  EXPECT_EQ(last[second_won ? 0 : 1].rfind("view epoch 3: " + chain.head() + " -> " + chain.tail(), 0), 0u)
      << out[0] << out[1];

  const auto id = chain_id_of(chain.head());
  EtcdViews store(server.endpoint());
  wire::View committed;
  std::int64_t rev = 0;
  ASSERT_EQ(store.read(id, &committed, &rev), "");
  EXPECT_EQ(describe(committed), "epoch 3: " + chain.head() + " -> " + chain.tail());
  EXPECT_EQ(members_hold(committed), "");

  // show --etcd: the committed view in the JSON.
  const auto show_log = dir.path() + "/show.json";
  ASSERT_EQ(
      run_command(RUBBLE_CTL_BIN, {"--etcd", server.endpoint(), "--chain", chain.head(), "show", "--json", show_log},
                  dir.path() + "/show.log", 60),
      0)
      << read_file(dir.path() + "/show.log");
  const auto doc = nlohmann::json::parse(read_file(show_log));
  EXPECT_EQ(doc["etcd"]["view"].get<std::string>(), describe(committed));
  EXPECT_EQ(doc["etcd"]["revision"].get<std::int64_t>(), rev);
  writes_survive(writers, committed);
}

// etcd holds nothing: the first change starts from the nodes' view; a
// join commits each of its steps; a change made without --etcd (the nodes
// are ahead of etcd) is the base of the next one through etcd.
TEST(EtcdCtl, SeedsFromTheNodesAndFollowsChangesMadeWithoutIt) {
  REQUIRE_ETCD();
  EtcdServer server;
  TempDir dir;
  Chain chain(spec(dir, 2));  // head, middle, tail
  const auto id = chain_id_of(chain.head());
  Writers writers(chain.addresses(), 2);
  ASSERT_TRUE(wait_for([&] { return writers.acked() >= 200; }, 60s)) << writers.first_error();
  EtcdViews store(server.endpoint());
  std::ostringstream log;

  // Without etcd: epoch 2 (head -> middle).
  wire::View v;
  ASSERT_EQ(remove_node(chain.addresses(), chain.tail(), &log, &v), "") << log.str();
  ASSERT_EQ(v.epoch(), 2u);
  wire::View committed;
  std::int64_t rev = -1;
  ASSERT_EQ(store.read(id, &committed, &rev), "");
  EXPECT_EQ(rev, 0);

  // Through etcd, which holds nothing yet: joining 3, joined 4.
  const auto spare1 = chain.start_spare("spare1");
  ASSERT_EQ(add_node(chain.addresses(), spare1.addr, 120s, &log, &v, &store), "") << log.str();
  EXPECT_EQ(describe(v), "epoch 4: " + chain.head() + " -> " + chain.nodes()[1].addr + " -> " + spare1.addr);
  ASSERT_EQ(store.read(id, &committed, &rev), "");
  EXPECT_EQ(committed.SerializeAsString(), v.SerializeAsString());
  EXPECT_EQ(members_hold(v), "");

  // Without etcd again: the nodes reach epoch 6, etcd stays at 4.
  const auto spare2 = chain.start_spare("spare2");
  ASSERT_EQ(add_node(chain.addresses(), spare2.addr, 120s, &log, &v), "") << log.str();
  ASSERT_EQ(v.epoch(), 6u);
  ASSERT_EQ(store.read(id, &committed, &rev), "");
  ASSERT_EQ(committed.epoch(), 4u);

  // Through etcd: built on the nodes' epoch 6, committed as 7.
  std::ostringstream log2;
  ASSERT_EQ(remove_node(chain.addresses(), spare1.addr, &log2, &v, &store), "") << log2.str();
  EXPECT_EQ(describe(v), "epoch 7: " + chain.head() + " -> " + chain.nodes()[1].addr + " -> " + spare2.addr);
  EXPECT_NE(log2.str().find("changed without --etcd"), std::string::npos) << log2.str();
  ASSERT_EQ(store.read(id, &committed, &rev), "");
  EXPECT_EQ(committed.SerializeAsString(), v.SerializeAsString());
  EXPECT_EQ(members_hold(v), "");
  writes_survive(writers, v);
}

// (b) Two watchers of one chain: one leads; a killed node is removed once,
// by the leader; when the leader stops, the other leads and removes the
// next failed node.
TEST(EtcdWatch, OneOfTwoWatchersLeadsAndTheOtherTakesOver) {
  REQUIRE_ETCD();
  EtcdServer server;
  TempDir dir;
  Chain chain(spec(dir, 3));  // head, middle1, middle2, tail
  const auto seeds = chain.addresses();
  const auto id = chain_id_of(chain.head());
  std::ostringstream log1, log2;
  auto options = [&](const std::string& name, std::ostream& log) {
    Watcher::Options o;
    o.seeds = seeds;
    o.interval = 100ms;
    o.failure_timeout = 1000ms;
    o.log = &log;
    o.etcd = server.endpoint();
    o.name = name;
    return o;
  };
  Watcher w1(options("w1", log1)), w2(options("w2", log2));
  // Never both leading, sampled all along.
  std::atomic<int> both{0};
  std::jthread sampler([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      if (w1.leading() && w2.leading()) both++;
      std::this_thread::sleep_for(5ms);
    }
  });
  w1.start();
  w2.start();
  ASSERT_TRUE(
      wait_for([&] { return w1.leading() != w2.leading() && !w1.leader().empty() && w1.leader() == w2.leader(); }, 30s))
      << log1.str() << log2.str();
  Watcher& leader = w1.leading() ? w1 : w2;
  Watcher& other = w1.leading() ? w2 : w1;
  const std::string leader_log = [&] { return &leader == &w1 ? log1.str() : log2.str(); }();
  EXPECT_NE(leader_log.find("rubble-ctl: watch: leading"), std::string::npos) << leader_log;
  EXPECT_TRUE(wait_for(
      [&] {
        const auto s = (&other == &w1 ? log1 : log2).str();
        return s.find("standing by, " + leader.name() + " leads") != std::string::npos;
      },
      10s))
      << log1.str() << log2.str();

  Writers writers(seeds, 2);
  ASSERT_TRUE(wait_for([&] { return writers.acked() >= 200; }, 60s)) << writers.first_error();

  // Kill middle1: the leader removes it, once.
  const std::string m1 = chain.nodes()[1].addr, m2 = chain.nodes()[2].addr;
  chain.kill_node_at(1);
  ASSERT_TRUE(wait_for([&] { return leader.removed().size() == 1; }, 30s)) << log1.str() << log2.str();
  EXPECT_EQ(leader.removed().front(), m1);
  wire::View committed;
  std::int64_t rev = 0;
  ASSERT_EQ(EtcdViews(server.endpoint()).read(id, &committed, &rev), "");
  EXPECT_EQ(committed.epoch(), 2u);
  EXPECT_EQ(find_member(committed, m1), -1);
  // Longer than the failure timeout: nobody removes anything more.
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(other.removed().empty()) << "the watcher standing by removed a node";
  EXPECT_EQ(leader.removed().size(), 1u);
  ASSERT_EQ(EtcdViews(server.endpoint()).read(id, &committed, &rev), "");
  EXPECT_EQ(committed.epoch(), 2u) << describe(committed);
  EXPECT_EQ(members_hold(committed), "");

  // Stop the leader: the other takes over, then removes middle2.
  leader.stop();
  ASSERT_TRUE(wait_for([&] { return other.leading(); }, 30s)) << log1.str() << log2.str();
  chain.kill_node_at(2);
  ASSERT_TRUE(wait_for([&] { return other.removed().size() == 1; }, 30s)) << log1.str() << log2.str();
  EXPECT_EQ(other.removed().front(), m2);
  ASSERT_EQ(EtcdViews(server.endpoint()).read(id, &committed, &rev), "");
  EXPECT_EQ(describe(committed), "epoch 3: " + chain.head() + " -> " + chain.tail());
  EXPECT_TRUE(wait_for([&] { return members_hold(committed).empty(); }, 30s)) << members_hold(committed);
  other.stop();
  sampler.request_stop();
  sampler.join();
  EXPECT_EQ(both.load(), 0) << "both watchers led at once\n" << log1.str() << log2.str();
  writes_survive(writers, committed);
}

// (b) A leader that dies (a rubble-ctl watch process, SIGKILL) keeps the
// lead until its lease expires; then the other watcher leads and removes
// the next failed node.
TEST(EtcdWatch, AKilledLeaderIsReplacedOnceItsLeaseExpires) {
  REQUIRE_ETCD();
  EtcdServer server;
  TempDir dir;
  Chain chain(spec(dir, 2));  // head, middle, tail
  const auto id = chain_id_of(chain.head());
  const auto proc_log = dir.path() + "/watch.log";
  pid_t proc = fastpath::rubble::spawn_process(
      RUBBLE_CTL_BIN,
      {"--etcd", server.endpoint(), "--chain", chain.head(), "watch", "--failure-timeout", "1", "--name", "proc"},
      proc_log);
  struct Reaper {
    pid_t& pid;
    ~Reaper() {
      if (pid > 0) kill_node(pid);
    }
  } reaper{proc};
  etcd::Client c(server.endpoint());
  ASSERT_TRUE(wait_for(
      [&] {
        etcd::KeyValue kv;
        bool found = false;
        return c.get(EtcdViews::watcher_key(id), &kv, &found).empty() && found && kv.value == "proc";
      },
      30s))
      << read_file(proc_log);
  std::ostringstream log;
  Watcher::Options o;
  o.seeds = chain.addresses();
  o.failure_timeout = 1000ms;
  o.log = &log;
  o.etcd = server.endpoint();
  o.name = "w";
  Watcher w(o);
  w.start();
  ASSERT_TRUE(wait_for([&] { return log.str().find("standing by, proc leads") != std::string::npos; }, 30s))
      << log.str();
  EXPECT_FALSE(w.leading());
  EXPECT_NE(read_file(proc_log).find("rubble-ctl: watch: leading (proc)"), std::string::npos) << read_file(proc_log);

  kill_node(proc);
  proc = -1;
  ASSERT_TRUE(wait_for([&] { return w.leading(); }, 30s)) << log.str();
  Writers writers(chain.addresses(), 2);
  ASSERT_TRUE(wait_for([&] { return writers.acked() >= 200; }, 60s)) << writers.first_error();
  const std::string middle = chain.nodes()[1].addr;
  chain.kill_node_at(1);
  ASSERT_TRUE(wait_for([&] { return w.removed().size() == 1; }, 30s)) << log.str();
  EXPECT_EQ(w.removed().front(), middle);
  wire::View committed;
  std::int64_t rev = 0;
  ASSERT_EQ(EtcdViews(server.endpoint()).read(id, &committed, &rev), "");
  EXPECT_EQ(describe(committed), "epoch 2: " + chain.head() + " -> " + chain.tail());
  EXPECT_TRUE(wait_for([&] { return members_hold(committed).empty(); }, 30s)) << members_hold(committed);
  w.stop();
  writes_survive(writers, committed);
}

// (c) An etcd that does not answer: rubble-ctl says which address and what
// to do, and changes nothing.  (No etcd needed.)
TEST(EtcdCtl, AnUnreachableEtcdIsAClearError) {
  TempDir dir;
  const std::string addr = "127.0.0.1:" + std::to_string(fastpath::rubble::test::closed_port());
  etcd::Client c(addr, 2s);
  const auto e = c.check();
  EXPECT_NE(e.find("cannot reach etcd at " + addr), std::string::npos) << e;
  EXPECT_NE(e.find("--etcd must point to a running etcd"), std::string::npos) << e;
  for (const auto& cmd :
       std::vector<std::vector<std::string>>{{"--etcd", addr, "--chain", "127.0.0.1:1", "remove", "127.0.0.1:1"},
                                             {"--etcd", addr, "--chain", "127.0.0.1:1", "watch"},
                                             {"--etcd", "https://" + addr, "--chain", "127.0.0.1:1", "show"}}) {
    const auto log = dir.path() + "/ctl.log";
    EXPECT_EQ(run_command(RUBBLE_CTL_BIN, cmd, log, 60), 1) << read_file(log);
    const auto out = read_file(log);
    if (cmd[1] == addr)
      EXPECT_NE(out.find("cannot reach etcd at " + addr), std::string::npos) << out;
    else
      EXPECT_NE(out.find("only plain http"), std::string::npos) << out;
    EXPECT_NE(out.find("--etcd"), std::string::npos) << out;
  }
}
