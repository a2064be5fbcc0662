// SPDX-License-Identifier: GPL-2.0
// Description: three rubble-node processes on loopback.  Every write the
// head acknowledged is readable at the tail; bad requests and bad set-ups
// (unreachable successor, another chain's --db) get clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "client.h"
#include "runner.h"
#include "testutil.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;

namespace {

constexpr std::uint64_t kSstSize = 256 << 10;  // small SSTs: flushes and compactions within a few MB

ChainSpec spec(const TempDir& dir, Mode mode) {
  ChainSpec s;
  s.node_binary = RUBBLE_NODE_BIN;
  s.dir = dir.path();
  s.mode = mode;
  s.sst_size = kSstSize;
  s.pool_slots = 48;
  return s;
}

std::string value_for(int thread, int i, int round) {
  std::string v = "t" + std::to_string(thread) + "-i" + std::to_string(i) + "-r" + std::to_string(round) + "-";
  v.resize(1024, static_cast<char>('a' + (i + round) % 26));
  return v;
}

// Writes from several clients: puts, overwrites and deletes.  Returns the
// last acknowledged state of every key (nullopt = deleted).
std::map<std::string, std::optional<std::string>> write_load(const Chain& chain, int threads, int keys_per_thread) {
  std::mutex mu;
  std::map<std::string, std::optional<std::string>> acked;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ChainClient c(chain.head(), chain.tail());
      for (int round = 0; round < 2; ++round)
        for (int i = 0; i < keys_per_thread; ++i) {
          const std::string key = "key-" + std::to_string(t) + "-" + std::to_string(i);
          const bool del = round == 1 && i % 7 == 0;
          const auto v = value_for(t, i, round);
          const auto st = del ? c.del(key) : c.put(key, v);
          ASSERT_TRUE(st.ok()) << describe(st);
          std::lock_guard lock(mu);
          acked[key] = del ? std::nullopt : std::optional<std::string>(v);
        }
    });
  for (auto& t : ts) t.join();
  return acked;
}

void expect_readable_at_tail(const Chain& chain, const std::map<std::string, std::optional<std::string>>& acked) {
  ChainClient c(chain.head(), chain.tail());
  int wrong = 0;
  for (const auto& [key, want] : acked) {
    std::string got;
    bool found = false;
    auto st = c.get(key, &got, &found);
    // A tail that has not caught up with a restarted head refuses reads
    // (UNAVAILABLE) rather than answer from old state: wait for it, as a
    // client would, for at most 60 s. Any other answer is checked as is.
    for (int i = 0; i < 600 && st.error_code() == grpc::StatusCode::UNAVAILABLE; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      st = c.get(key, &got, &found);
    }
    ASSERT_TRUE(st.ok()) << describe(st);
    if (found != want.has_value() || (found && got != *want)) ++wrong;
  }
  EXPECT_EQ(wrong, 0) << "acknowledged writes not visible at the tail";
}

// A scan of the whole key space at the tail lists exactly the keys that
// exist, with their values, in order.
void expect_scan_matches(const Chain& chain, const std::map<std::string, std::optional<std::string>>& acked) {
  ChainClient c(chain.head(), chain.tail());
  std::vector<std::pair<std::string, std::string>> got, want;
  for (const auto& [key, value] : acked)
    if (value) want.emplace_back(key, *value);
  ASSERT_LT(want.size(), kMaxScanKeys);
  const auto st = c.scan("", kMaxScanKeys, &got);
  ASSERT_TRUE(st.ok()) << describe(st);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "the tail's scan differs from the acknowledged writes";
}

// Write calls of 24 ops from several clients: puts, a key put twice and a
// key put then deleted in the same call (order inside a call decides).
// Returns the acknowledged state, as write_load does.
std::map<std::string, std::optional<std::string>> batched_load(const Chain& chain, int threads, int calls) {
  std::mutex mu;
  std::map<std::string, std::optional<std::string>> acked;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ChainClient c(chain.head(), chain.tail());
      for (int i = 0; i < calls; ++i) {
        wire::WriteRequest req;
        std::map<std::string, std::optional<std::string>> mine;
        auto add = [&](wire::KvOp::Type type, const std::string& key, const std::string& value) {
          auto* op = req.add_ops();
          op->set_type(type);
          op->set_key(key);
          op->set_value(value);
          mine[key] = type == wire::KvOp::PUT ? std::optional<std::string>(value) : std::nullopt;
        };
        const std::string base = "batch-" + std::to_string(t) + "-" + std::to_string(i) + "-";
        for (int k = 0; k < 20; ++k) add(wire::KvOp::PUT, base + std::to_string(k), value_for(t, i, k));
        add(wire::KvOp::PUT, base + "0", value_for(t, i, 99));  // the second put of key 0 wins
        add(wire::KvOp::DELETE, base + "1", "");                // deleted after its put
        add(wire::KvOp::DELETE, base + "5", "");
        add(wire::KvOp::PUT, base + "5", value_for(t, i, 55));  // put again after the delete
        std::uint64_t seq = 0;
        const auto st = c.write(req, &seq);
        ASSERT_TRUE(st.ok()) << describe(st);
        EXPECT_GT(seq, 0u);
        std::lock_guard lock(mu);
        for (auto& [k, v] : mine) acked[k] = std::move(v);
      }
    });
  for (auto& t : ts) t.join();
  return acked;
}

// A Write call with one bad op is refused whole, with the op named.
void expect_bad_writes_refused(const Chain& chain) {
  ChainClient c(chain.head(), chain.tail());
  auto st = c.write(wire::WriteRequest{});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("0 ops"), std::string::npos) << st.error_message();
  auto bad = [](auto mutate) {
    wire::WriteRequest req;
    auto* good = req.add_ops();
    good->set_type(wire::KvOp::PUT);
    good->set_key("refused-call-key");
    good->set_value("v");
    mutate(req.add_ops());
    return req;
  };
  const std::pair<wire::WriteRequest, std::string> cases[] = {
      {bad([](wire::KvOp* op) { op->set_type(wire::KvOp::PUT); }), "op 1: key is empty"},
      {bad([](wire::KvOp* op) {
         op->set_type(static_cast<wire::KvOp::Type>(7));
         op->set_key("k");
       }),
       "op 1: unknown type 7"},
      {bad([](wire::KvOp* op) {
         op->set_type(wire::KvOp::DELETE);
         op->set_key("k");
         op->set_value("v");
       }),
       "op 1: a DELETE carries no value"},
  };
  for (const auto& [req, why] : cases) {
    st = c.write(req);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << why;
    EXPECT_NE(st.error_message().find(why), std::string::npos) << st.error_message();
  }
  std::string v;
  bool found = true;
  ASSERT_TRUE(c.get("refused-call-key", &v, &found).ok());
  EXPECT_FALSE(found) << "a refused Write call applied its good op";
  ChainClient wrong(chain.tail(), chain.head());
  st = wrong.write(bad([](wire::KvOp* op) {
    op->set_type(wire::KvOp::PUT);
    op->set_key("k");
  }));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << describe(st);
}

wire::StatsReply stats(const std::string& addr) {
  wire::StatsReply r;
  const auto st = ChainClient::stats(addr, &r);
  EXPECT_TRUE(st.ok()) << describe(st);
  return r;
}

}  // namespace

TEST(ChainBaseline, EveryAcknowledgedWriteIsReadableAtTheTail) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kBaseline));
  const auto acked = write_load(chain, 4, 600);
  expect_readable_at_tail(chain, acked);
  expect_scan_matches(chain, acked);
  const auto head = stats(chain.head());
  for (const auto& n : chain.nodes()) {
    const auto s = stats(n.addr);
    EXPECT_EQ(s.applied_seq(), head.applied_seq()) << n.name;
    EXPECT_GT(s.flushes(), 0u) << n.name << ": a baseline node flushes for itself";
  }
  EXPECT_EQ(head.acked_seq(), head.applied_seq());
}

TEST(ChainBaseline, BatchedWritesApplyInOrderAndBadOnesAreRefusedWhole) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kBaseline));
  const auto acked = batched_load(chain, 3, 40);
  expect_readable_at_tail(chain, acked);
  expect_scan_matches(chain, acked);
  expect_bad_writes_refused(chain);
}

TEST(ChainBaseline, MalformedAndMisdirectedRequestsAreRefused) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kBaseline));
  ChainClient c(chain.head(), chain.tail());
  auto st = c.put("", "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("key is empty"), std::string::npos);
  st = c.put(std::string(70000, 'k'), "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ChainClient wrong(chain.tail(), chain.head());  // writes to the tail, reads from the head
  st = wrong.put("k", "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("head"), std::string::npos) << st.error_message();
  std::string v;
  bool found = false;
  st = wrong.get("k", &v, &found);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("tail"), std::string::npos) << st.error_message();
  std::vector<std::pair<std::string, std::string>> items;
  st = c.scan("k", 0, &items);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << describe(st);
  EXPECT_TRUE(c.put("k", "v").ok()) << "the chain still serves after bad requests";
}

TEST(ChainSetup, UnreachableSuccessorIsReported) {
  TempDir dir;
  const std::string next = "127.0.0.1:" + std::to_string(test::closed_port());
  try {
    spawn_node(RUBBLE_NODE_BIN,
               {"--role", "head", "--listen", "127.0.0.1:0", "--next", next, "--db", dir.path() + "/head",
                "--connect-timeout", "0.3", "--ready-file", dir.path() + "/head.addr"},
               dir.path() + "/head.log", dir.path() + "/head.addr");
    FAIL() << "the head started without a successor";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot reach the successor at " + next), std::string::npos) << e.what();
  }
}

TEST(ChainSetup, AnotherChainsDataIsRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/tail");
  std::ofstream(dir.path() + "/tail/CHAIN") << "chain other\nmode baseline\n";
  auto s = spec(dir, Mode::kBaseline);
  s.chain_id = "mine";
  s.replicas = 1;
  // The tail itself is started without --chain-id: the head's Hello finds the mismatch.
  try {
    auto tail = spawn_node(RUBBLE_NODE_BIN,
                           {"--role", "tail", "--listen", "127.0.0.1:0", "--db", dir.path() + "/tail", "--ready-file",
                            dir.path() + "/tail.addr"},
                           dir.path() + "/tail.log", dir.path() + "/tail.addr");
    try {
      auto head = spawn_node(RUBBLE_NODE_BIN,
                             {"--role", "head", "--listen", "127.0.0.1:0", "--next", tail.addr, "--db",
                              dir.path() + "/head", "--chain-id", "mine", "--ready-file", dir.path() + "/head.addr"},
                             dir.path() + "/head.log", dir.path() + "/head.addr");
      stop_node(head.pid);
      ADD_FAILURE() << "the head joined a tail that holds another chain";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("holds data of chain 'other'"), std::string::npos) << e.what();
    }
    stop_node(tail.pid);
  } catch (const std::runtime_error& e) {
    FAIL() << e.what();
  }
}

namespace {

// Waits until every replica holds exactly the head's live SSTs in its slots
// and the head's allocator agrees (compactions may still be finishing).
bool slots_settle(const Chain& chain, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    const auto head = stats(chain.head());
    bool settled = head.slots_in_use() == head.live_sst_files();
    for (std::size_t i = 1; i < chain.nodes().size(); ++i)
      settled = settled && stats(chain.nodes()[i].addr).slots_in_use() == head.live_sst_files();
    if (settled) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

TEST(ChainRubble, EveryAcknowledgedWriteIsReadableAndOnlyTheHeadCompacts) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kRubble));
  const auto acked = write_load(chain, 4, 600);
  expect_readable_at_tail(chain, acked);  // recent writes come from the tail's overlay
  expect_scan_matches(chain, acked);      // merged over the secondary
  // What the head flushed leaves the overlay once the tail's secondary has
  // installed it: only the writes still in the head's live WAL stay there.
  bool installed = false;
  for (int i = 0; i < 250 && !installed; ++i) {
    installed = stats(chain.tail()).overlay_keys() < acked.size() / 2;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(installed) << "the tail's secondary never caught up with the head's flushes";
  expect_readable_at_tail(chain, acked);
  expect_scan_matches(chain, acked);
  const auto head = stats(chain.head());
  EXPECT_GT(head.flushes(), 0u);
  EXPECT_GT(head.compactions(), 0u) << "the head compacts";
  EXPECT_GT(head.ssts_shipped(), 0u);
  for (std::size_t i = 1; i < chain.nodes().size(); ++i) {
    const auto& n = chain.nodes()[i];
    const auto s = stats(n.addr);
    EXPECT_EQ(s.compactions(), 0u) << n.name;
    EXPECT_EQ(s.compact_bytes(), 0u) << n.name;
    EXPECT_EQ(s.flushes(), 0u) << n.name;
    EXPECT_EQ(s.flush_bytes(), 0u) << n.name;
    EXPECT_GT(s.live_sst_files(), 0u) << n.name << " serves the head's SSTs";
    EXPECT_EQ(s.applied_seq(), head.applied_seq()) << n.name;
  }
  EXPECT_TRUE(slots_settle(chain, 5000)) << "slots of deleted SSTs must come back to the head";
}

TEST(ChainRubble, BatchedWritesApplyInOrderAndBadOnesAreRefusedWhole) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kRubble));
  const auto acked = batched_load(chain, 3, 40);  // ~3 MB: the head flushes and ships SSTs
  expect_readable_at_tail(chain, acked);
  expect_scan_matches(chain, acked);
  expect_bad_writes_refused(chain);
  EXPECT_GT(stats(chain.head()).ssts_shipped(), 0u);
}

// A rubble head takes at most a quarter of a memtable per call, so that
// every flush fits a slot; larger writes are refused and the chain goes on.
TEST(ChainRubble, WritesTooLargeForASlotAreRefused) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kRubble));  // 256 KiB SSTs: at most 64 KiB per call
  ChainClient c(chain.head(), chain.tail());
  auto st = c.put("big", std::string(70 << 10, 'v'));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << describe(st);
  EXPECT_NE(st.error_message().find("at most 65536"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("--sst-size"), std::string::npos) << st.error_message();
  wire::WriteRequest req;
  for (int i = 0; i < 3; ++i) {
    auto* op = req.add_ops();
    op->set_key("part" + std::to_string(i));
    op->set_value(std::string(30 << 10, 'p'));
  }
  st = c.write(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << describe(st);
  const std::string fits(60 << 10, 'f');
  ASSERT_TRUE(c.put("fits", fits).ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(c.put("after" + std::to_string(i), fits).ok()) << i;  // 12 MB: flushes
  std::string v;
  bool found = false;
  ASSERT_TRUE(c.get("fits", &v, &found).ok());
  EXPECT_TRUE(found && v == fits);
  ASSERT_TRUE(c.get("part0", &v, &found).ok());
  EXPECT_FALSE(found) << "a refused call applied an op";
  EXPECT_GT(stats(chain.head()).ssts_shipped(), 0u);
}

TEST(ChainRubble, AFullSlotPoolRefusesWritesLoudly) {
  TempDir dir;
  auto s = spec(dir, Mode::kRubble);
  s.sst_size = 64 << 10;
  s.pool_slots = 3;  // fewer than the four L0 files that trigger a compaction
  s.extra_args = {"--ack-timeout", "1"};
  Chain chain(s);
  ChainClient c(chain.head(), chain.tail());
  grpc::Status st;
  for (int i = 0; i < 2000 && st.ok(); ++i) st = c.put("k" + std::to_string(i), std::string(1024, 'v'));
  ASSERT_FALSE(st.ok()) << "the head kept accepting writes with no slot left";
  EXPECT_NE(st.error_message().find("slot pool is full"), std::string::npos) << describe(st);
  EXPECT_NE(st.error_message().find("--pool-slots"), std::string::npos) << describe(st);
}

TEST(ChainRubble, MiswiredPoolsAreRefused) {
  TempDir dir;
  auto s = spec(dir, Mode::kRubble);
  s.chain_id = "c1";
  Chain chain(s);
  chain.stop_node_at(0);  // the replicas wait for a new head
  const std::string mid = dir.path() + "/middle.pool", tail = dir.path() + "/tail.pool";
  struct Case {
    std::vector<std::string> pools;
    std::string chain, want;
  };
  const std::vector<Case> cases{
      {{tail, mid}, "c1", "is not the pool of replica 1"},
      {{mid}, "c1", "the chain has 2 replicas but the head has 1"},
      {{mid, dir.path() + "/nowhere.pool"}, "c1", "cannot open pool"},
      {{mid, tail}, "c2", "holds slots of chain 'c1'"},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string name = dir.path() + "/head" + std::to_string(++n);
    std::vector<std::string> args{"--role",       "head",
                                  "--listen",     "127.0.0.1:0",
                                  "--next",       chain.nodes()[1].addr,
                                  "--db",         name,
                                  "--mode",       "rubble",
                                  "--chain-id",   c.chain,
                                  "--sst-size",   std::to_string(kSstSize),
                                  "--ready-file", name + ".addr"};
    for (const auto& p : c.pools) args.insert(args.end(), {"--replica-pool", p});
    try {
      auto head = spawn_node(RUBBLE_NODE_BIN, args, name + ".log", name + ".addr");
      stop_node(head.pid);
      ADD_FAILURE() << "a head started with the wrong pools: " << c.want;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(c.want), std::string::npos) << e.what();
    }
  }
}

TEST(ChainRestart, ARestartedHeadKeepsEveryAcknowledgedWrite) {
  for (Mode mode : {Mode::kBaseline, Mode::kRubble}) {
    SCOPED_TRACE(to_string(mode));
    TempDir dir;
    Chain chain(spec(dir, mode));
    auto acked = write_load(chain, 2, 400);
    chain.restart_head();  // rubble: the replicas reset and the head sends its files again
    expect_readable_at_tail(chain, acked);
    ChainClient c(chain.head(), chain.tail());
    ASSERT_TRUE(c.put("after-restart", "v").ok());
    acked["after-restart"] = "v";
    expect_readable_at_tail(chain, acked);
  }
}

TEST(ChainCtl, ShowsTheChainAndRemovesANode) {
  TempDir dir;
  Chain chain(spec(dir, Mode::kBaseline));
  ChainClient c(chain.head(), chain.tail());
  ASSERT_TRUE(c.put("k", "v").ok());
  const std::string out = dir.path() + "/ctl.out", json = dir.path() + "/show.json";
  ASSERT_EQ(run_command(RUBBLE_CTL_BIN, {"--chain", chain.tail(), "show", "--json", json}, out, 30), 0)
      << log_tail(out);
  std::ifstream in(json);
  const auto doc = nlohmann::json::parse(in);
  ASSERT_EQ(doc["members"].size(), 3u);
  EXPECT_EQ(doc["head"], chain.head());
  EXPECT_EQ(doc["tail"], chain.tail());
  EXPECT_EQ(doc["members"][1]["role"], "middle");
  EXPECT_EQ(doc["members"][2]["serving_reads"], true);
  EXPECT_GE(doc["members"][0]["applied_seq"].get<std::uint64_t>(), 1u);

  const std::string middle = chain.nodes()[1].addr;
  ASSERT_EQ(run_command(RUBBLE_CTL_BIN, {"--chain", chain.head(), "remove", middle}, out, 60), 0) << log_tail(out);
  EXPECT_NE(log_tail(out).find(chain.head() + " -> " + chain.tail()), std::string::npos) << log_tail(out);
  ASSERT_TRUE(c.put("k2", "v2").ok()) << "the chain serves without its middle";
  std::string v;
  bool found = false;
  ASSERT_TRUE(c.get("k2", &v, &found).ok());
  EXPECT_TRUE(found);
  wire::StatsReply removed;
  ASSERT_TRUE(ChainClient::stats(middle, &removed).ok());
  EXPECT_EQ(removed.role(), "removed");
  // Bad input: an unknown node, a removal that would leave one node.
  EXPECT_NE(run_command(RUBBLE_CTL_BIN, {"--chain", chain.head(), "remove", "127.0.0.1:1"}, out, 30), 0);
  EXPECT_NE(log_tail(out).find("not a member"), std::string::npos) << log_tail(out);
  EXPECT_NE(run_command(RUBBLE_CTL_BIN, {"--chain", chain.head(), "remove", chain.tail()}, out, 30), 0);
  EXPECT_NE(log_tail(out).find("fewer than two"), std::string::npos) << log_tail(out);
}

// rubble-bench end to end, small: both modes, the load in Write calls, its
// report (phases, every node, the summary) in the JSON.
TEST(RubbleBench, ASmallRunReportsBothModesAndEveryNode) {
  TempDir dir;
  const auto bench = std::filesystem::path(RUBBLE_CTL_BIN).parent_path() / "rubble-bench";
  ASSERT_TRUE(std::filesystem::exists(bench)) << bench << " is not built";
  const std::string out = dir.path() + "/bench.out", json = dir.path() + "/bench.json";
  ASSERT_EQ(run_command(bench.string(),
                        {"--records", "3000", "--batch", "16", "--workloads", "A", "--ops", "400", "--sst-size", "256K",
                         "--threads", "4", "--node", RUBBLE_NODE_BIN, "--json", json},
                        out, 300),
            0)
      << log_tail(out);
  std::ifstream in(json);
  const auto doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["config"]["batch"], 16);
  std::vector<std::string> phases;
  for (const auto& p : doc["phases"]) {
    phases.push_back(p["mode"].get<std::string>() + " " + p["phase"].get<std::string>());
    EXPECT_EQ(p["errors"], 0) << phases.back();
    EXPECT_EQ(p["ops"], p["phase"] == "load" ? 3000 : 400) << phases.back();
  }
  const std::vector<std::string> want = {"baseline load", "baseline A-uniform", "baseline A-zipfian",
                                         "rubble load",   "rubble A-uniform",   "rubble A-zipfian"};
  EXPECT_EQ(phases, want);
  ASSERT_EQ(doc["node_bytes"].size(), 6u);
  for (const auto& n : doc["node_bytes"]) {
    const bool replica = n["role"] != "head";
    const std::string who = n["mode"].get<std::string>() + " " + n["node"].get<std::string>();
    EXPECT_GT(n["cpu_s"].get<double>(), 0) << who;
    if (n["mode"] == "rubble" && replica) {
      EXPECT_EQ(n["compactions"], 0) << who;
      EXPECT_EQ(n["flushes"], 0) << who;
    } else {
      EXPECT_GT(n["flushes"], 0) << who << ": 3 MB of values through 256 KiB memtables";
    }
    if (n["mode"] == "rubble" && !replica) {
      EXPECT_GT(n["sst_bytes_shipped"], 0) << who;
    }
  }
  const auto& s = doc["summary"];
  EXPECT_GT(s["baseline_cpu_s"].get<double>(), 0);
  EXPECT_GT(s["rubble_cpu_s"].get<double>(), 0);
  EXPECT_TRUE(s.contains("load_cpu_reduction_pct"));
  EXPECT_GT(s["throughput_ratio"]["load"].get<double>(), 0);
  // Bad input: a batch that does not fit a Write call.
  EXPECT_NE(run_command(bench.string(), {"--batch", "20000", "--node", RUBBLE_NODE_BIN}, out, 30), 0);
  EXPECT_NE(log_tail(out).find("--batch must be 1 to 10000"), std::string::npos) << log_tail(out);
}
