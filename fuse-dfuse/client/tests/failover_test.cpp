// SPDX-License-Identifier: GPL-2.0-only
// Description: dfuse-leased replicated through a real etcd (Debian's
// etcd-server on free loopback ports): two or three dfuse-leased binaries
// of which one leads; clients given every address find the leader. kill -9
// of the leader under three nodes that keep taking leases from each other:
// a standby takes over, the nodes keep what they hold, generations never go
// backwards, a writer never overlaps another holder, and the time without
// service is printed. etcd unreachable at start is a clear error; etcd lost
// while running stops new grants and the nodes say so and keep their leases
// until the TTL; two services that both believe they lead cannot both
// commit (etcd's lease and revision checks).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <random>
#include <set>

#include "etcd_store.h"
#include "fastpath/etcd_server.h"
#include "lease.pb.h"
#include "testutil.h"

using namespace dfuse;
using namespace dfuse::test;
using fastpath::etcd::test::EtcdServer;

namespace {

#define REQUIRE_ETCD()                                                                  \
  do {                                                                                  \
    if (!EtcdServer::installed())                                                       \
      GTEST_SKIP() << fastpath::etcd::test::kEtcdBinary                                 \
                   << " is missing: run scripts/install-deps.sh (package etcd-server)"; \
  } while (0)

template <class Pred>
bool wait_for(Pred pred, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// Several dfuse-leased binaries sharing one etcd.
class Cluster {
 public:
  Cluster(const EtcdServer& etcd, int n, std::vector<std::string> extra) {
    for (int i = 0; i < n; ++i) {
      dirs_.push_back(std::make_unique<TempDir>("dfuse-ha"));
      std::vector<std::string> args{"--etcd", etcd.endpoint(), "--etcd-prefix", "/test", "--verbose"};
      args.insert(args.end(), extra.begin(), extra.end());
      services_.push_back(std::make_unique<ServiceProcess>(dirs_.back()->path(), args));
      services_.back()->start();
    }
  }
  ServiceProcess& operator[](std::size_t i) { return *services_[i]; }
  std::size_t size() const { return services_.size(); }
  std::string addresses() const {
    std::string a;
    for (const auto& s : services_) a += (a.empty() ? "" : ",") + s->address();
    return a;
  }
  // Index of the service whose log says it leads on its address (after
  // `from` bytes of its log), -1 if none within limit.
  int wait_leader(milliseconds limit, const std::vector<bool>& skip = {}) {
    int found = -1;
    wait_for(
        [&] {
          for (std::size_t i = 0; i < services_.size(); ++i) {
            if (i < skip.size() && skip[i]) continue;
            if (contains(read_file(services_[i]->log()), "leading on " + services_[i]->address())) {
              found = static_cast<int>(i);
              return true;
            }
          }
          return false;
        },
        limit);
    return found;
  }
  void dump() {
    for (std::size_t i = 0; i < services_.size(); ++i)
      std::cerr << "---- service " << i << " (" << services_[i]->address() << ") log:\n"
                << read_file(services_[i]->log());
  }

 private:
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::vector<std::unique_ptr<ServiceProcess>> services_;
};

// What every node's kernel holds, checked on every change: a writer never
// shares a file with another holder.
class Checker {
 public:
  void hold(const std::string& node, const FileId& file, LeaseMode mode) {
    std::lock_guard lock(mu_);
    for (const auto& [other, m] : held_[file])
      if (other != node && m != kNone && (m == kWrite || mode == kWrite)) {
        ++violations_;
        if (first_.empty())
          first_ = node + " got " + (mode == kWrite ? "write" : "read") + " on " + file + " while " + other +
                   " holds " + (m == kWrite ? "write" : "read");
      }
    held_[file][node] = mode;
  }
  void drop(const std::string& node, const FileId& file, LeaseMode to) {
    std::lock_guard lock(mu_);
    held_[file][node] = to;
  }
  int violations() {
    std::lock_guard lock(mu_);
    return violations_;
  }
  std::string first() {
    std::lock_guard lock(mu_);
    return first_;
  }

 private:
  std::mutex mu_;
  std::map<FileId, std::map<std::string, LeaseMode>> held_;
  int violations_ = 0;
  std::string first_;
};

// A node whose "kernel" is a table of leases: a lease is installed when
// acquire() returns, and a revoke waits for the install of its grant (as
// dfused does) before it downgrades and acks.
class KernelNode {
 public:
  KernelNode(const std::string& addresses, std::string id, Checker& checker) : id_(std::move(id)), checker_(checker) {
    LeaseClientOptions o;
    o.address = addresses;
    o.node_id = id_;
    o.heartbeat = milliseconds(100);
    o.unreachable_timeout = milliseconds(20000);
    o.log = [this](const std::string& line) {
      std::lock_guard lock(mu_);
      log_.push_back(line);
    };
    client_ = LeaseClient::connect(o, [this](const Revoke& r) { on_revoke(r); });
  }

  // Makes sure the kernel holds at least mode; returns the grant when a new
  // one was needed (generation 0: the lease was there).
  Grant ensure(const FileId& file, LeaseMode mode) {
    {
      std::lock_guard lock(mu_);
      if (auto it = kernel_.find(file); it != kernel_.end() && it->second.mode >= mode) return {};
    }
    const Grant g = client_->acquire(file, mode);
    std::lock_guard lock(mu_);
    Grant& k = kernel_[file];
    if (g.generation > k.generation) {
      if (g.generation <= last_gen_[file]) ++backwards_;
      last_gen_[file] = g.generation;
      k = g;
      checker_.hold(id_, file, g.mode);
    }
    cv_.notify_all();
    return g;
  }
  std::vector<std::string> log() {
    std::lock_guard lock(mu_);
    return log_;
  }
  bool logged(const std::string& what) {
    for (const auto& l : log())
      if (contains(l, what)) return true;
    return false;
  }
  int backwards() {
    std::lock_guard lock(mu_);
    return backwards_;
  }
  LeaseClient& client() { return *client_; }
  const std::string& id() const { return id_; }

 private:
  void on_revoke(const Revoke& r) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [&] { return kernel_[r.file].generation >= r.generation; });
      Grant& k = kernel_[r.file];
      if (k.generation == r.generation && k.mode > r.new_mode) {
        k.mode = r.new_mode;
        checker_.drop(id_, r.file, r.new_mode);
      }
    }
    client_->ack(r);
  }

  const std::string id_;
  Checker& checker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<FileId, Grant> kernel_;
  std::map<FileId, uint64_t> last_gen_;
  int backwards_ = 0;
  std::vector<std::string> log_;
  std::unique_ptr<LeaseClient> client_;  // last: its threads stop first
};

TEST(LeasedEtcd, UnreachableEtcdAtStartIsAClearError) {
  TempDir dir("dfuse-ha");
  const std::string endpoint = "127.0.0.1:" + std::to_string(fastpath::free_loopback_port());
  const std::string log = dir.path() + "/leased.log";
  const auto t0 = Clock::now();
  const pid_t pid = ServiceProcess::spawn({DFUSE_LEASED_BIN, "--listen", "127.0.0.1:0", "--etcd", endpoint}, log);
  int status = 0;
  ASSERT_TRUE(wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, milliseconds(10000)))
      << "dfuse-leased kept running without etcd";
  EXPECT_LT(Clock::now() - t0, milliseconds(5000));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string text = read_file(log);
  EXPECT_TRUE(contains(text, "cannot reach etcd at " + endpoint)) << text;
  EXPECT_TRUE(contains(text, "--etcd must point to a running etcd")) << text;
}

TEST(LeasedEtcd, OneOfThreeLeadsAndClientsFindIt) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  Cluster c(etcd, 3, {"--ttl", "2", "--etcd-ttl", "1"});
  const int leader = c.wait_leader(milliseconds(5000));
  ASSERT_GE(leader, 0) << (c.dump(), "nobody leads");
  std::this_thread::sleep_for(milliseconds(300));
  int leading = 0;
  for (std::size_t i = 0; i < c.size(); ++i)
    leading += contains(read_file(c[i].log()), "leading on " + c[i].address()) ? 1 : 0;
  EXPECT_EQ(leading, 1) << (c.dump(), "more than one leads");
  fastpath::etcd::Client raw(etcd.endpoint());
  fastpath::etcd::KeyValue kv;
  bool found = false;
  ASSERT_EQ(raw.get("/test/leader", &kv, &found), "");
  ASSERT_TRUE(found);
  EXPECT_EQ(kv.value, c[static_cast<std::size_t>(leader)].address());

  // Given the addresses in any order, a node is redirected to the leader.
  Checker checker;
  std::string reversed;
  for (std::size_t i = c.size(); i-- > 0;) reversed += (reversed.empty() ? "" : ",") + c[i].address();
  KernelNode a(reversed, "a", checker);
  const Grant g1 = a.ensure("f1", kWrite);
  EXPECT_EQ(g1.mode, kWrite);
  EXPECT_EQ(g1.generation >> 32, 1u);

  // A leader that stops cleanly resigns: another one leads at once.
  const auto t0 = Clock::now();
  c[static_cast<std::size_t>(leader)].stop();
  std::vector<bool> skip(c.size());
  skip[static_cast<std::size_t>(leader)] = true;
  const int next = c.wait_leader(milliseconds(5000), skip);
  ASSERT_GE(next, 0) << (c.dump(), "no new leader");
  const Grant g2 = a.ensure("f2", kRead);
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  std::cout << "[ failover ] clean stop of the leader: served again after " << took << " ms" << std::endl;
  EXPECT_EQ(g2.generation >> 32, 2u);
  EXPECT_LT(took, 3000);
  EXPECT_EQ(a.client().held().size(), 2u) << "f1 was not kept across the change of leader";
  EXPECT_EQ(checker.violations(), 0) << checker.first();
}

// What keeping grants in etcd costs: 200 grants of fresh files, one after
// the other, from one node; the same against one service without etcd.
// Prints the figures; asserts only that both work.
TEST(LeasedEtcd, GrantLatencyWithAndWithoutEtcd) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  Cluster c(etcd, 1, {"--ttl", "5"});
  ASSERT_EQ(c.wait_leader(milliseconds(5000)), 0) << (c.dump(), "nobody leads");
  TempDir dir("dfuse-ha");
  ServiceProcess single(dir.path(), {"--ttl", "5"});
  single.start();
  for (const auto& [what, address] : {std::pair<std::string, std::string>{"with etcd", c.addresses()},
                                      std::pair<std::string, std::string>{"without etcd", single.address()}}) {
    Checker checker;
    KernelNode a(address, "a", checker);
    std::vector<double> us;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = Clock::now();
      ASSERT_EQ(a.ensure("g" + std::to_string(i), i % 2 ? kRead : kWrite).generation >> 32, 1u);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    double sum = 0;
    for (double u : us) sum += u;
    std::cout << "[ grant latency ] " << what << ": 200 grants of new files, median " << us[100] << " us, mean "
              << sum / 200 << " us, p99 " << us[198] << " us" << std::endl;
  }
}

// DFUSE_FAILOVER_ETCD_TTL=S runs it with --etcd-ttl S (default 1, node
// TTL 3 s; any other value: node TTL 5 s, the service's defaults with 2).
TEST(LeasedEtcd, KillNineOfTheLeaderUnderLoad) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  const std::string etcd_ttl = getenv("DFUSE_FAILOVER_ETCD_TTL") ? getenv("DFUSE_FAILOVER_ETCD_TTL") : "1";
  const std::string ttl = etcd_ttl == "1" ? "3" : "5";
  Cluster c(etcd, 2, {"--ttl", ttl, "--etcd-ttl", etcd_ttl, "--min-hold-ms", "2"});
  const int leader = c.wait_leader(milliseconds(5000));
  ASSERT_GE(leader, 0) << (c.dump(), "nobody leads");

  Checker checker;
  std::vector<std::unique_ptr<KernelNode>> nodes;
  for (int i = 0; i < 3; ++i)
    nodes.push_back(std::make_unique<KernelNode>(c.addresses(), "n" + std::to_string(i), checker));

  std::atomic<bool> stop{false};
  std::atomic<long> grants{0};
  std::atomic<int> errors{0};
  std::mutex times_mu;
  std::vector<std::pair<Clock::time_point, uint64_t>> granted;  // when, generation
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i)
    workers.emplace_back([&, i] {
      std::mt19937 rng(static_cast<unsigned>(i + 1));
      while (!stop) {
        const FileId file = "f" + std::to_string(rng() % 4);
        const LeaseMode mode = rng() % 10 < 4 ? kWrite : kRead;
        try {
          const Grant g = nodes[static_cast<std::size_t>(i)]->ensure(file, mode);
          if (g.generation != 0) {
            ++grants;
            std::lock_guard lock(times_mu);
            granted.emplace_back(Clock::now(), g.generation);
          }
        } catch (const LeaseError& e) {
          ++errors;
          std::cerr << "node " << i << ": " << e.what() << std::endl;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
      }
    });

  std::this_thread::sleep_for(milliseconds(1500));
  const long before = grants;
  std::size_t held_at_kill = 0;
  for (auto& n : nodes) held_at_kill += n->client().held().size();
  const auto killed = Clock::now();
  c[static_cast<std::size_t>(leader)].kill9();
  std::vector<bool> skip(c.size());
  skip[static_cast<std::size_t>(leader)] = true;
  const int next = c.wait_leader(milliseconds(10000), skip);
  const auto took_over = Clock::now();
  std::this_thread::sleep_for(milliseconds(2500));
  stop = true;
  for (auto& w : workers) w.join();
  if (HasFailure() || next < 0 || getenv("DFUSE_TEST_LOG")) c.dump();
  ASSERT_GE(next, 0) << "the standby did not take over";

  // The time without service: from the kill to the first grant of the new
  // leader's epoch, and the longest pause between grants around the kill.
  std::sort(granted.begin(), granted.end());
  const uint64_t old_epoch = 1;
  double first_new_ms = -1, longest_gap_ms = 0;
  for (std::size_t i = 0; i < granted.size(); ++i) {
    if (first_new_ms < 0 && (granted[i].second >> 32) > old_epoch)
      first_new_ms = std::chrono::duration<double, std::milli>(granted[i].first - killed).count();
    if (i > 0 && granted[i].first > killed - milliseconds(500))
      longest_gap_ms = std::max(
          longest_gap_ms, std::chrono::duration<double, std::milli>(granted[i].first - granted[i - 1].first).count());
  }
  const double takeover_ms = std::chrono::duration<double, std::milli>(took_over - killed).count();
  std::size_t kept = 0, dropped_logs = 0;
  for (auto& n : nodes) {
    dropped_logs += n->logged("dropping the") ? 1 : 0;
    kept += n->logged("it confirmed") ? 1 : 0;
  }
  std::cout << "[ failover ] kill -9 of the leader (etcd lease TTL " << etcd_ttl << " s, node TTL " << ttl
            << " s, 3 nodes, 4 files): "
            << "standby leads after " << takeover_ms << " ms (its log line seen), first grant of the new epoch after "
            << first_new_ms << " ms, longest pause between grants " << longest_gap_ms << " ms; grants " << before
            << " before the kill, " << grants - before << " after; " << held_at_kill << " leases held at the kill; "
            << kept << " of 3 nodes re-registered with the new leader, " << dropped_logs << " dropped their leases"
            << std::endl;
  RecordProperty("failover_first_grant_ms", std::to_string(first_new_ms));
  RecordProperty("failover_longest_gap_ms", std::to_string(longest_gap_ms));

  EXPECT_EQ(checker.violations(), 0) << checker.first();
  for (auto& n : nodes) EXPECT_EQ(n->backwards(), 0) << n->id() << " saw a generation go backwards";
  EXPECT_EQ(errors, 0);
  EXPECT_GT(before, 10);
  EXPECT_GT(grants - before, 10) << "little work after the failover";
  ASSERT_GE(first_new_ms, 0) << "no grant from the new leader";
  EXPECT_LT(first_new_ms, 5000) << "the standby took too long";
  EXPECT_EQ(kept, 3u) << "a node did not move to the new leader";
  EXPECT_EQ(dropped_logs, 0u) << "a node dropped its leases: the failover took longer than 3/4 TTL";
  const std::string new_log = read_file(c[static_cast<std::size_t>(next)].log());
  EXPECT_TRUE(contains(new_log, "restored from etcd")) << new_log;
}

TEST(LeasedEtcd, EtcdLostWhileRunningStopsGrantsAndNodesKeepTheirLeasesUntilTheTtl) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  Cluster c(etcd, 1, {"--ttl", "2", "--etcd-ttl", "2"});
  ASSERT_EQ(c.wait_leader(milliseconds(5000)), 0) << (c.dump(), "nobody leads");
  Checker checker;
  KernelNode a(c.addresses(), "a", checker);
  ASSERT_EQ(a.ensure("f1", kWrite).mode, kWrite);

  etcd.pause();
  const auto paused = Clock::now();
  auto g2 = std::async(std::launch::async, [&] { return a.ensure("f2", kWrite); });
  // No new grant; the node is told, and keeps what it holds meanwhile.
  EXPECT_TRUE(wait_for([&] { return a.logged("etcd unreachable"); }, milliseconds(3000)))
      << (c.dump(), "the node was not told");
  EXPECT_EQ(g2.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "granted without etcd";
  EXPECT_EQ(a.client().held().size(), 1u);
  // The service's etcd lease lapses: it stops answering, and the node drops
  // its leases 3/4 TTL after the last answered heartbeat, saying so.
  EXPECT_TRUE(wait_for([&] { return a.logged("keeps its 1 leases"); }, milliseconds(4000)))
      << (c.dump(), "the node did not say it keeps its leases");
  EXPECT_TRUE(wait_for([&] { return a.logged("dropping the 1 leases"); }, milliseconds(4000)))
      << (c.dump(), "the node kept its leases past the TTL");
  const auto dropped = Clock::now();
  EXPECT_LT(dropped - paused, milliseconds(2000 + 2000 + 1500 + 500));
  EXPECT_TRUE(a.client().held().empty());
  EXPECT_EQ(g2.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "granted without etcd";
  EXPECT_TRUE(contains(read_file(c[0].log()), "no longer leading")) << (c.dump(), "");

  // etcd back: the service leads again (a new epoch) and the request is granted.
  etcd.resume();
  ASSERT_EQ(g2.wait_for(std::chrono::seconds(15)), std::future_status::ready)
      << (c.dump(), "no grant after etcd came back");
  const Grant g = g2.get();
  EXPECT_EQ(g.mode, kWrite);
  EXPECT_GE(g.generation >> 32, 2u);
  for (const auto& l : a.log()) std::cout << "[ node log ] " << l << std::endl;
}

// The leader paused (SIGSTOP) past its etcd lease: the standby takes over
// and the nodes move to it with their leases (a node gives a connection to
// the hung service 0.5 s, then tries the next address). When the old
// leader runs again it believes it leads until it looks: its role thread,
// or a node's message (here b's registration, queued while it was
// stopped), finds the etcd lease lapsed; it steps down and redirects b to
// the new leader. Nothing conflicting is granted meanwhile.
TEST(LeasedEtcd, APausedLeaderStepsDownWhenItRunsAgain) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  // Node TTL 5 s: a node notices a hung service after TTL/2 without answered
  // heartbeats, then gives a connection attempt to it 0.5 s; its leases
  // stand for 3/4 TTL.
  Cluster c(etcd, 2, {"--ttl", "5", "--etcd-ttl", "1"});
  const int l = c.wait_leader(milliseconds(5000));
  ASSERT_GE(l, 0) << (c.dump(), "nobody leads");
  const std::size_t old = static_cast<std::size_t>(l), other = 1 - old;
  Checker checker;
  KernelNode a(c.addresses(), "a", checker);
  const Grant w = a.ensure("f1", kWrite);
  ASSERT_EQ(w.generation >> 32, 1u);

  c[old].signal(SIGSTOP);
  std::vector<bool> skip(c.size());
  skip[old] = true;
  const int next = c.wait_leader(milliseconds(5000), skip);
  ASSERT_EQ(next, static_cast<int>(other)) << (c.dump(), "the standby did not take over");
  EXPECT_TRUE(wait_for([&] { return a.logged("now dfuse-leased at " + c[other].address()); }, milliseconds(4000)))
      << (c.dump(), "node a did not move to the new leader");
  EXPECT_FALSE(a.logged("dropping the")) << "node a lost its lease in the failover";

  // b knows only the old leader; its registration waits there.
  auto b = std::async(std::launch::async, [&] { return std::make_unique<KernelNode>(c[old].address(), "b", checker); });
  std::this_thread::sleep_for(milliseconds(300));
  c[old].signal(SIGCONT);
  std::unique_ptr<KernelNode> node_b = b.get();
  const Grant r = node_b->ensure("f1", kRead);
  EXPECT_EQ(r.generation >> 32, 2u) << "granted by the old leader";
  EXPECT_GT(r.generation, w.generation);
  EXPECT_TRUE(wait_for([&] { return contains(read_file(c[old].log()), "no longer leading"); }, milliseconds(3000)))
      << (c.dump(), "the old leader did not step down");
  EXPECT_EQ(checker.violations(), 0) << checker.first();
  if (HasFailure() || getenv("DFUSE_TEST_LOG")) c.dump();
}

// Two stores that both believe they lead: only the one etcd knows as leader
// commits. A's etcd lease is revoked behind its back (as when A was paused
// past its TTL): B wins the election and takes the next epoch; A's commit
// is refused and etcd keeps what B decided. Then a leader whose epoch key
// changed under it (a second leader by a bug) is refused too.
TEST(LeasedEtcd, TwoWouldBeLeadersOnlyOneCanCommit) {
  REQUIRE_ETCD();
  EtcdServer etcd;
  using leased::EtcdStore;
  leased::StoreOptions o;
  o.endpoint = etcd.endpoint();
  o.prefix = "/two";
  o.ttl = std::chrono::seconds(2);
  o.name = "A";
  EtcdStore a(o);
  o.name = "B";
  EtcdStore b(o);

  bool leading = false;
  std::string leader;
  ASSERT_EQ(a.campaign(&leading, &leader), "");
  ASSERT_TRUE(leading);
  uint32_t epoch = 0;
  std::vector<std::pair<leased::NodeId, leased::Lease>> leases;
  ASSERT_EQ(a.take_over(&epoch, &leases), "");
  EXPECT_EQ(epoch, 1u);
  std::string why;
  const leased::Lease l1{"f", kWrite, (uint64_t{1} << 32) | 1};
  ASSERT_EQ(a.commit({{"f", {{"n1", l1}}}}, &why), EtcdStore::Commit::kDone) << why;
  ASSERT_EQ(b.campaign(&leading, &leader), "");
  EXPECT_FALSE(leading);
  EXPECT_EQ(leader, "A");

  // A's lease ends without A knowing; B leads.
  fastpath::etcd::Client raw(etcd.endpoint());
  fastpath::etcd::KeyValue kv;
  bool found = false;
  ASSERT_EQ(raw.get("/two/leader", &kv, &found), "");
  ASSERT_TRUE(found);
  ASSERT_EQ(raw.revoke(kv.lease), "");
  ASSERT_EQ(b.campaign(&leading, &leader), "");
  ASSERT_TRUE(leading);
  ASSERT_EQ(b.take_over(&epoch, &leases), "");
  EXPECT_EQ(epoch, 2u);
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].first, "n1");
  EXPECT_EQ(leases[0].second.generation, l1.generation);

  // A, believing it leads, grants n2 a conflicting write lease: refused.
  const leased::Lease a2{"f", kWrite, (uint64_t{1} << 32) | 2};
  EXPECT_EQ(a.commit({{"f", {{"n2", a2}}}}, &why), EtcdStore::Commit::kDeposed);
  EXPECT_TRUE(contains(why, "/two/leader")) << why;
  const leased::Lease b2{"f", kRead, (uint64_t{2} << 32) | 1};
  EXPECT_EQ(b.commit({{"f", {{"n3", b2}}}}, &why), EtcdStore::Commit::kDone) << why;
  ASSERT_EQ(raw.get("/two/files/f", &kv, &found), "");
  ASSERT_TRUE(found);
  wire::FileRecord record;
  ASSERT_TRUE(record.ParseFromString(kv.value));
  ASSERT_EQ(record.holders_size(), 1);
  EXPECT_EQ(record.holders(0).node(), "n3") << "A's write got through";

  // The epoch key changes under the leader B (another service bumped it):
  // B's next commit is refused although its lease lives.
  fastpath::etcd::PutResult put;
  ASSERT_EQ(raw.put_if("/two/epoch", "3", fastpath::etcd::Guard::kModRevision, 0, &put), "");
  ASSERT_EQ(raw.get("/two/epoch", &kv, &found), "");
  fastpath::etcd::PutResult bumped;
  ASSERT_EQ(raw.put_if("/two/epoch", "3", fastpath::etcd::Guard::kModRevision, kv.mod_revision, &bumped), "");
  ASSERT_TRUE(bumped.done);
  EXPECT_TRUE(b.alive());
  EXPECT_EQ(b.commit({{"f", {}}}, &why), EtcdStore::Commit::kDeposed);
  ASSERT_EQ(raw.get("/two/files/f", &kv, &found), "");
  EXPECT_TRUE(found) << "a refused commit deleted the record";
}

}  // namespace
