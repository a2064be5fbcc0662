// SPDX-License-Identifier: GPL-2.0
//
// rubble-bench: YCSB-style load and workloads A to F on a three-node chain of
// rubble-node processes, in baseline and rubble mode one after the other,
// reporting throughput, latency, and per node the CPU time (utime + stime
// from /proc/PID/stat), the bytes written (/proc/PID/io write_bytes, and
// RocksDB's own WAL, flush and compaction counters) and the bytes sent
// (replication stream, acknowledgements, client replies; counted in the node).
//
//   A  50% read, 50% update          D  95% read (latest), 5% insert
//   B  95% read,  5% update          E  95% scan (1-100 keys), 5% insert
//   C  100% read                     F  50% read, 50% read-modify-write
//
//   $ rubble-bench --records 50000 --ops 20000 --workloads A,C
//   mode      phase      ops    s     kops/s  p50 us  p99 us ...
//   --------  ---------  -----  ----  ------  ------  ------
//   baseline  load       50000  ...
//   ...
//   total CPU: rubble 12.3 s vs baseline 20.1 s (-38.8%); replicas 2.1 s vs 9.8 s (baseline/rubble 4.67x); ...
//   load phase alone: CPU rubble 8.3 s vs baseline 15.0 s (-44.7%); replicas baseline/rubble 5.41x
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <thread>

#include "client.h"
#include "fastpath/cli.h"
#include "fastpath/histogram.h"
#include "fastpath/progress.h"
#include "fastpath/report.h"
#include "procstat.h"
#include "runner.h"
#include "workload.h"

namespace fs = std::filesystem;
using namespace fastpath::rubble;

namespace {

constexpr const char* kTool = "rubble-bench";

struct Config {
  std::uint64_t records = 30000;
  std::uint64_t ops = 20000;
  std::size_t value_size = 1024;
  int threads = 8;
  std::uint32_t batch = 1;  // records per Write call in the load phase
  bool settle = true;       // wait for the load's flushes and compactions before the workloads
  int replicas = 2;
  std::uint64_t sst_size = 1 << 20;
  std::uint32_t pool_slots = 0;
  double catch_up_ms = 50;
  bool warm_cache = true;  // rubble tails warm their page cache while serving reads
  std::vector<Mode> modes;
  std::vector<KeyChooser::Kind> dists;
  std::string workloads;  // letters A to F, in the order given
  std::uint32_t max_scan = 100;
  std::string node, dir, json;
  bool keep = false;
};

struct Phase {
  std::string mode, name;
  std::uint64_t ops = 0, errors = 0;
  double seconds = 0;
  double settle_seconds = 0;  // load: until the nodes' flushes and compactions finished
  fastpath::LatencyHistogram all, reads, writes;
  std::string first_error;
};

struct NodeCpu {
  std::string mode, name, role;
  std::vector<double> cpu;   // seconds at each phase boundary
  long long io_start = 0;    // /proc/PID/io write_bytes at the start
  long long io_written = 0;  // ... and its growth over the run
  wire::StatsReply stats;
};

// One operation: returns "" on success, else the error.
using Op = std::function<std::string(ChainClient&, std::mt19937_64&, std::uint64_t, bool* read)>;

void run_thread(const Chain& chain, const Op& op, std::uint64_t first, std::uint64_t total, int stride,
                fastpath::Progress& progress, Phase& out, std::mutex& mu) {
  ChainClient client(chain.head(), chain.tail());
  std::mt19937_64 rng(first * 7919 + 17);
  Phase local;
  for (std::uint64_t i = first; i < total; i += stride) {
    bool read = false;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string err = op(client, rng, i, &read);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
    local.all.record(ns.count());
    (read ? local.reads : local.writes).record(ns.count());
    if (!err.empty() && local.errors++ == 0) local.first_error = err;
    progress.add();
  }
  std::lock_guard lock(mu);
  out.all.merge(local.all);
  out.reads.merge(local.reads);
  out.writes.merge(local.writes);
  out.errors += local.errors;
  if (out.first_error.empty()) out.first_error = local.first_error;
}

// total: calls of op; ops: the operations they make (more than total when
// each call carries a batch).
Phase run_phase(const Chain& chain, const Config& cfg, const std::string& mode, const std::string& name,
                std::uint64_t total, const Op& op, std::uint64_t ops = 0) {
  Phase p;
  p.mode = mode;
  p.name = name;
  p.ops = ops ? ops : total;
  std::mutex mu;
  fastpath::Progress progress(mode + " " + name, total);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < cfg.threads; ++t)
    ts.emplace_back([&, t] { run_thread(chain, op, t, total, cfg.threads, progress, p, mu); });
  for (auto& t : ts) t.join();
  progress.finish();
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (p.errors)
    fastpath::cli::error(kTool,
                         mode + " " + name + ": " + std::to_string(p.errors) + " errors, first: " + p.first_error);
  return p;
}

// Call i inserts records i*batch .. (i+1)*batch-1 (fewer at the end): a
// put each, or one Write call with them all.
Op load_op(const ValueSource& values, std::uint64_t records, std::uint32_t batch) {
  return [&values, records, batch](ChainClient& c, std::mt19937_64& rng, std::uint64_t i, bool* read) -> std::string {
    *read = false;
    if (batch == 1) {
      const auto st = c.put(ycsb_key(i), std::string(values.next(rng)));
      return st.ok() ? "" : describe(st);
    }
    wire::WriteRequest req;
    for (std::uint64_t r = i * batch; r < std::min(records, (i + 1) * batch); ++r) {
      auto* op = req.add_ops();
      op->set_type(wire::KvOp::PUT);
      op->set_key(ycsb_key(r));
      op->set_value(std::string(values.next(rng)));
    }
    const auto st = c.write(req);
    return st.ok() ? "" : describe(st);
  };
}

// The share of each operation in a workload (YCSB core workloads A to F).
struct Mix {
  double read = 0, update = 0, insert = 0, scan = 0, rmw = 0;
  bool latest = false;  // reads pick recent inserts (workload D)
};

Mix mix_of(char w) {
  switch (w) {
    case 'A':
      return {.read = 0.5, .update = 0.5};
    case 'B':
      return {.read = 0.95, .update = 0.05};
    case 'C':
      return {.read = 1.0};
    case 'D':
      return {.read = 0.95, .insert = 0.05, .latest = true};
    case 'E':
      return {.insert = 0.05, .scan = 0.95};
    default:  // 'F'
      return {.read = 0.5, .rmw = 0.5};
  }
}

// What a workload's operations share: values, key choice, inserts.
struct OpContext {
  const ValueSource& values;
  const KeyChooser& keys;    // existing records (uniform or zipfian)
  const KeyChooser& recent;  // zipfian ranks for "latest"
  InsertCounter& inserts;
  std::uint32_t max_scan;
};

std::string read_key(ChainClient& c, const std::string& key, std::string* value) {
  bool found = false;
  const auto st = c.get(key, value, &found);
  if (!st.ok()) return describe(st);
  return found ? "" : "read of " + key + " found nothing";  // every record read was loaded or inserted
}

std::string write_key(ChainClient& c, const std::string& key, std::string_view value) {
  const auto st = c.put(key, std::string(value));
  return st.ok() ? "" : describe(st);
}

Op workload_op(Mix mix, const OpContext& ctx) {
  return [mix, &ctx](ChainClient& c, std::mt19937_64& rng, std::uint64_t, bool* read) -> std::string {
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if ((u -= mix.insert) < 0) {
      *read = false;
      const std::uint64_t n = ctx.inserts.next();
      auto err = write_key(c, ycsb_key(n), ctx.values.next(rng));
      if (err.empty()) ctx.inserts.done(n);
      return err;
    }
    const std::uint64_t record = mix.latest ? ctx.recent.latest(rng, ctx.inserts.limit()) : ctx.keys.choose(rng);
    const std::string key = ycsb_key(record);
    std::string value;
    if ((u -= mix.scan) < 0) {
      *read = true;
      const auto len = std::uniform_int_distribution<std::uint32_t>(1, ctx.max_scan)(rng);
      std::vector<std::pair<std::string, std::string>> items;
      const auto st = c.scan(key, len, &items);
      if (!st.ok()) return describe(st);
      return !items.empty() && items.front().first == key ? "" : "scan from " + key + " did not find it";
    }
    if ((u -= mix.read) < 0) {
      *read = true;
      return read_key(c, key, &value);
    }
    *read = false;
    if ((u -= mix.update) < 0) return write_key(c, key, ctx.values.next(rng));
    // Read-modify-write: read the record, write a new value back.
    if (auto err = read_key(c, key, &value); !err.empty()) return err;
    return write_key(c, key, ctx.values.next(rng));
  };
}

// Waits until no node has a flush or compaction pending or running (two
// polls in a row), so that the workloads start on a settled LSM tree, as
// db_bench's wait for compaction does, and the load's CPU includes the
// compactions it caused.  Returns the seconds waited.
double settle(const Chain& chain, const std::string& mode) {
  const auto start = std::chrono::steady_clock::now();
  auto last_say = start, last_progress = start;
  std::uint64_t done = 0;  // flushes and compactions so far, all nodes
  int quiet = 0;
  while (quiet < 2) {
    bool busy = false;
    std::uint64_t now_done = 0;
    for (const auto& n : chain.nodes()) {
      wire::StatsReply s;
      const auto st = ChainClient::stats(n.addr, &s);
      if (!st.ok()) throw std::runtime_error("stats of " + n.name + " while settling: " + describe(st));
      busy = busy || s.background_work();
      now_done += s.flushes() + s.compactions();
    }
    quiet = busy ? 0 : quiet + 1;
    const auto now = std::chrono::steady_clock::now();
    if (now_done != done) done = now_done, last_progress = now;
    if (busy && now - last_progress > std::chrono::seconds(120))
      throw std::runtime_error(mode +
                               ": flushes or compactions stay pending after the load and none finished for 120 s: "
                               "a node's RocksDB stopped (see the nodes' logs: run with --keep or --dir)");
    if (busy && now - last_say > std::chrono::seconds(10)) {
      last_say = now;
      std::cerr << kTool << ": " << mode << ": waiting for the load's flushes and compactions ("
                << fastpath::fixed(std::chrono::duration<double>(now - start).count(), 0) << " s)" << std::endl;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void snapshot_cpu(const Chain& chain, std::vector<NodeCpu>& nodes) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const pid_t pid = chain.nodes()[i].pid;
    nodes[i].cpu.push_back(cpu_seconds(pid));
    const long long io = io_write_bytes(pid);
    if (nodes[i].cpu.size() == 1)
      nodes[i].io_start = io;
    else
      nodes[i].io_written = io - nodes[i].io_start;
  }
}

ChainSpec chain_spec(const Config& cfg, Mode mode) {
  ChainSpec s;
  s.node_binary = cfg.node;
  s.dir = cfg.dir + "/" + to_string(mode);
  s.mode = mode;
  s.replicas = cfg.replicas;
  s.sst_size = cfg.sst_size;
  s.pool_slots = cfg.pool_slots;
  s.extra_args = {"--ack-timeout", "60", "--catch-up-interval", std::to_string(cfg.catch_up_ms)};
  if (!cfg.warm_cache) s.extra_args.emplace_back("--no-warm-cache");
  return s;
}

const char* dist_name(KeyChooser::Kind k) {
  return k == KeyChooser::Kind::kZipfian ? "zipfian" : "uniform";
}

// The phases of one mode: the load, then each workload, per distribution
// (D uses the "latest" distribution only, so it runs once).  Workloads that
// insert (D, E) run after the others, as YCSB recommends.
std::vector<std::pair<char, KeyChooser::Kind>> plan(const Config& cfg) {
  std::vector<std::pair<char, KeyChooser::Kind>> out;
  std::string order;
  for (char w : std::string("ABCF")) order += cfg.workloads.find(w) != std::string::npos ? std::string(1, w) : "";
  for (char w : std::string("DE")) order += cfg.workloads.find(w) != std::string::npos ? std::string(1, w) : "";
  for (char w : order) {
    if (w == 'D') {
      out.emplace_back(w, KeyChooser::Kind::kZipfian);
      continue;
    }
    for (auto kind : cfg.dists) out.emplace_back(w, kind);
  }
  return out;
}

void run_mode(const Config& cfg, Mode mode, const ValueSource& values, std::vector<Phase>& phases,
              std::vector<NodeCpu>& cpus) {
  const std::string m = to_string(mode);
  std::cerr << kTool << ": starting a " << cfg.replicas + 1 << "-node chain in " << m << " mode" << std::endl;
  Chain chain(chain_spec(cfg, mode));
  std::vector<NodeCpu> nodes;
  for (const auto& n : chain.nodes()) nodes.push_back(NodeCpu{m, n.name, to_string(n.role), {}, 0, 0, {}});
  snapshot_cpu(chain, nodes);
  const std::uint64_t load_calls = (cfg.records + cfg.batch - 1) / cfg.batch;
  phases.push_back(run_phase(chain, cfg, m, "load", load_calls, load_op(values, cfg.records, cfg.batch), cfg.records));
  if (cfg.settle) phases.back().settle_seconds = settle(chain, m);
  snapshot_cpu(chain, nodes);
  InsertCounter inserts(cfg.records);
  const KeyChooser recent(KeyChooser::Kind::kZipfian, cfg.records);
  const KeyChooser uniform(KeyChooser::Kind::kUniform, cfg.records);
  for (const auto& [w, kind] : plan(cfg)) {
    const KeyChooser& keys = kind == KeyChooser::Kind::kZipfian ? recent : uniform;
    const OpContext ctx{values, keys, recent, inserts, cfg.max_scan};
    const std::string name = std::string(1, w) + "-" + (w == 'D' ? "latest" : dist_name(kind));
    phases.push_back(run_phase(chain, cfg, m, name, cfg.ops, workload_op(mix_of(w), ctx)));
    snapshot_cpu(chain, nodes);
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto st = ChainClient::stats(chain.nodes()[i].addr, &nodes[i].stats);
    if (!st.ok()) fastpath::cli::error(kTool, "stats of " + nodes[i].name + ": " + describe(st));
  }
  chain.stop();
  cpus.insert(cpus.end(), nodes.begin(), nodes.end());
}

std::string us(std::uint64_t ns) {
  return fastpath::fixed(static_cast<double>(ns) / 1000.0, 0);
}
std::string mb(std::uint64_t bytes) {
  return fastpath::fixed(static_cast<double>(bytes) / (1 << 20), 1);
}

fastpath::Table phase_table(const std::vector<Phase>& phases) {
  fastpath::Table t({"mode", "phase", "ops", "s", "settle s", "kops/s", "p50 us", "p99 us", "read p50 us",
                     "read p99 us", "write p50 us", "write p99 us", "errors"});
  for (const auto& p : phases)
    t.add_row({p.mode, p.name, std::to_string(p.ops), fastpath::fixed(p.seconds, 1),
               p.name == "load" ? fastpath::fixed(p.settle_seconds, 1) : "-",
               fastpath::fixed(static_cast<double>(p.ops) / p.seconds / 1000.0, 2), us(p.all.percentile(50)),
               us(p.all.percentile(99)), us(p.reads.percentile(50)), us(p.reads.percentile(99)),
               us(p.writes.percentile(50)), us(p.writes.percentile(99)), std::to_string(p.errors)});
  return t;
}

// db written: RocksDB's own WAL + flush + compaction bytes (a rubble
// replica's RocksDB is a secondary and writes none; its copy of the head's
// WAL and MANIFEST shows in io written).  io written: /proc/PID/io
// write_bytes over the run.  sent: replication stream + acknowledgements +
// client replies, gRPC payload bytes counted in the node.  shipped: SST bytes
// the head wrote into replica pools (over NVMe-oF in a real deployment).
fastpath::Table node_table(const std::vector<NodeCpu>& nodes) {
  fastpath::Table t({"mode", "node", "cpu load s", "cpu run s", "cpu s", "flushes", "compactions", "db written MB",
                     "io written MB", "shipped MB", "sent MB"});
  for (const auto& n : nodes) {
    const auto& s = n.stats;
    t.add_row({n.mode, n.name, fastpath::fixed(n.cpu[1] - n.cpu[0], 2), fastpath::fixed(n.cpu.back() - n.cpu[1], 2),
               fastpath::fixed(n.cpu.back() - n.cpu[0], 2), std::to_string(s.flushes()),
               std::to_string(s.compactions()), mb(s.wal_bytes() + s.flush_bytes() + s.compact_bytes()),
               mb(static_cast<std::uint64_t>(std::max(0LL, n.io_written))), mb(s.bytes_shipped()),
               mb(s.bytes_sent() + s.ack_bytes_sent() + s.reply_bytes_sent())});
  }
  return t;
}

// Every counter behind the node table, in bytes, for --json.
nlohmann::json node_details(const std::vector<NodeCpu>& nodes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& n : nodes) {
    const auto& s = n.stats;
    out.push_back({{"mode", n.mode},
                   {"node", n.name},
                   {"role", n.role},
                   {"cpu_s", n.cpu.back() - n.cpu[0]},
                   {"cpu_s_at_phase_ends", n.cpu},
                   {"io_write_bytes", n.io_written},
                   {"rocksdb_wal_bytes", s.wal_bytes()},
                   {"rocksdb_flush_bytes", s.flush_bytes()},
                   {"rocksdb_compaction_bytes", s.compact_bytes()},
                   {"flushes", s.flushes()},
                   {"compactions", s.compactions()},
                   {"sst_bytes_shipped", s.bytes_shipped()},
                   {"replication_bytes_sent", s.bytes_sent()},
                   {"replication_batches_sent", s.batches_sent()},
                   {"catchups", s.catchups()},
                   {"sst_bytes_warmed", s.sst_bytes_warmed()},
                   {"catchup_s", s.catchup_seconds()},
                   {"overlay_keys", s.overlay_keys()},
                   {"replication_entries_sent", s.entries_sent()},
                   {"ack_bytes_sent", s.ack_bytes_sent()},
                   {"reply_bytes_sent", s.reply_bytes_sent()},
                   {"replication_bytes_received", s.bytes_received()}});
  }
  return out;
}

struct Totals {
  double all = 0, replicas = 0;            // the whole run
  double load_all = 0, load_replicas = 0;  // the load phase alone
};

Totals totals(const std::vector<NodeCpu>& nodes, const std::string& mode) {
  Totals t;
  for (const auto& n : nodes) {
    if (n.mode != mode) continue;
    const double cpu = n.cpu.back() - n.cpu[0], load = n.cpu[1] - n.cpu[0];
    t.all += cpu;
    t.load_all += load;
    if (n.role != "head") {
      t.replicas += cpu;
      t.load_replicas += load;
    }
  }
  return t;
}

nlohmann::json summary(const std::vector<NodeCpu>& nodes, const std::vector<Phase>& phases) {
  const auto b = totals(nodes, "baseline"), r = totals(nodes, "rubble");
  nlohmann::json j = {{"baseline_cpu_s", b.all},
                      {"rubble_cpu_s", r.all},
                      {"baseline_replica_cpu_s", b.replicas},
                      {"rubble_replica_cpu_s", r.replicas}};
  if (b.all > 0 && r.all > 0) {
    j["total_cpu_reduction_pct"] = 100.0 * (1.0 - r.all / b.all);
    j["replica_cpu_ratio"] = r.replicas > 0 ? b.replicas / r.replicas : 0.0;
    j["baseline_load_cpu_s"] = b.load_all;
    j["rubble_load_cpu_s"] = r.load_all;
    j["load_cpu_reduction_pct"] = b.load_all > 0 ? 100.0 * (1.0 - r.load_all / b.load_all) : 0.0;
    j["load_replica_cpu_ratio"] = r.load_replicas > 0 ? b.load_replicas / r.load_replicas : 0.0;
    double bl = 0, rl = 0;
    for (const auto& p : phases)
      if (p.name == "load") (p.mode == "baseline" ? bl : rl) = static_cast<double>(p.ops) / p.seconds;
    j["load_throughput_ratio"] = bl > 0 ? rl / bl : 0.0;
    // rubble/baseline throughput of every phase both modes ran.
    nlohmann::json ratios = nlohmann::json::object();
    for (const auto& p : phases) {
      if (p.mode != "rubble") continue;
      for (const auto& q : phases)
        if (q.mode == "baseline" && q.name == p.name && p.seconds > 0 && q.seconds > 0)
          ratios[p.name] = (static_cast<double>(p.ops) / p.seconds) / (static_cast<double>(q.ops) / q.seconds);
    }
    j["throughput_ratio"] = ratios;
  }
  return j;
}

std::string signed_pct(double v) {
  return (v > 0 ? "+" : "") + fastpath::fixed(v, 1) + "%";
}

void print_summary(const nlohmann::json& s) {
  if (!s.contains("total_cpu_reduction_pct")) return;
  std::cout << "\ntotal CPU: rubble " << fastpath::fixed(s["rubble_cpu_s"], 2) << " s vs baseline "
            << fastpath::fixed(s["baseline_cpu_s"], 2) << " s ("
            << signed_pct(-s["total_cpu_reduction_pct"].get<double>()) << "); replicas "
            << fastpath::fixed(s["rubble_replica_cpu_s"], 2) << " s vs "
            << fastpath::fixed(s["baseline_replica_cpu_s"], 2) << " s (baseline/rubble "
            << fastpath::fixed(s["replica_cpu_ratio"], 2) << "x); load throughput rubble/baseline "
            << fastpath::fixed(s["load_throughput_ratio"], 2) << "\n"
            << "load phase alone: CPU rubble " << fastpath::fixed(s["rubble_load_cpu_s"], 2) << " s vs baseline "
            << fastpath::fixed(s["baseline_load_cpu_s"], 2) << " s ("
            << signed_pct(-s["load_cpu_reduction_pct"].get<double>()) << "); replicas baseline/rubble "
            << fastpath::fixed(s["load_replica_cpu_ratio"], 2) << "x\n";
}

std::string default_node_binary() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "rubble-node").string();
}

std::string parse_lists(Config& cfg, const std::string& modes, const std::string& dists, const std::string& workloads) {
  for (char c : workloads) {
    const char w = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (w == ',' || w == ' ') continue;
    if (w < 'A' || w > 'F') return std::string("--workloads: '") + c + "' is not a YCSB workload (A to F)";
    if (cfg.workloads.find(w) == std::string::npos) cfg.workloads += w;
  }
  for (const auto& m : {std::string("baseline"), std::string("rubble")})
    if (modes.find(m) != std::string::npos) cfg.modes.push_back(*parse_mode(m));
  if (cfg.modes.empty()) return "--modes must name baseline, rubble or both (baseline,rubble)";
  if (dists.find("uniform") != std::string::npos) cfg.dists.push_back(KeyChooser::Kind::kUniform);
  if (dists.find("zipfian") != std::string::npos) cfg.dists.push_back(KeyChooser::Kind::kZipfian);
  if (cfg.dists.empty()) return "--distribution must name uniform, zipfian or both (uniform,zipfian)";
  return "";
}

std::string finish(Config& cfg, const std::string& value_size, const std::string& sst_size) {
  cfg.value_size = fastpath::cli::parse_size(value_size);
  cfg.sst_size = fastpath::cli::parse_size(sst_size);
  if (cfg.value_size == 0 || cfg.value_size > (4 << 20)) return "--value-size must be 1 byte to 4 MiB";
  if (cfg.records == 0) return "--records must be at least 1";
  if (cfg.threads < 1 || cfg.threads > 256) return "--threads must be 1 to 256";
  if (cfg.batch < 1 || cfg.batch > kMaxWriteOps) return "--batch must be 1 to " + std::to_string(kMaxWriteOps);
  if (cfg.batch * (cfg.value_size + 32) > kMaxWriteBytes)
    return "--batch " + std::to_string(cfg.batch) + " of --value-size " + std::to_string(cfg.value_size) +
           " exceeds a Write call's " + std::to_string(kMaxWriteBytes >> 20) + " MiB: use a smaller batch";
  if (cfg.max_scan < 1 || cfg.max_scan > kMaxScanKeys) return "--max-scan must be 1 to 10000";
  if (cfg.replicas < 1 || cfg.replicas > 8) return "--replicas must be 1 to 8";
  if (cfg.node.empty()) cfg.node = default_node_binary();
  if (::access(cfg.node.c_str(), X_OK) != 0)
    return "rubble-node not found at " + cfg.node + ": build it or pass --node";
  if (!cfg.pool_slots) {
    // Room for the live data three times over (compaction inputs and outputs coexist), plus slack.
    const std::uint64_t data = cfg.records * (cfg.value_size + 32);
    cfg.pool_slots = static_cast<std::uint32_t>(std::max<std::uint64_t>(64, 3 * data / cfg.sst_size + 32));
  }
  return "";
}

int run(Config& cfg) {
  const bool temp = cfg.dir.empty();
  if (temp) {
    std::string tmpl = (fs::temp_directory_path() / "rubble-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot create a directory in " + fs::temp_directory_path().string());
    cfg.dir = tmpl;
  }
  const ValueSource values(cfg.value_size);
  std::vector<Phase> phases;
  std::vector<NodeCpu> nodes;
  for (auto mode : cfg.modes) run_mode(cfg, mode, values, phases, nodes);
  const auto pt = phase_table(phases);
  const auto nt = node_table(nodes);
  pt.print(std::cout);
  std::cout << "\n";
  nt.print(std::cout);
  const auto sum = summary(nodes, phases);
  print_summary(sum);
  if (!cfg.json.empty()) {
    nlohmann::json doc = {{"config",
                           {{"records", cfg.records},
                            {"ops", cfg.ops},
                            {"value_size", cfg.value_size},
                            {"threads", cfg.threads},
                            {"batch", cfg.batch},
                            {"settle", cfg.settle},
                            {"warm_cache", cfg.warm_cache},
                            {"workloads", cfg.workloads},
                            {"max_scan", cfg.max_scan},
                            {"replicas", cfg.replicas},
                            {"sst_size", cfg.sst_size},
                            {"pool_slots", cfg.pool_slots}}},
                          {"phases", pt.to_json()},
                          {"nodes", nt.to_json()},
                          {"node_bytes", node_details(nodes)},
                          {"summary", sum}};
    fastpath::write_json(doc, cfg.json);
  }
  if (temp && !cfg.keep) fs::remove_all(cfg.dir);
  std::uint64_t errors = 0;
  for (const auto& p : phases) errors += p.errors;
  return errors ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rubble-bench: YCSB load and workloads A-F on a three-node RubbleDB chain, baseline vs rubble mode"};
  Config cfg;
  cfg.ops = 10000;
  std::string value_size = "1K", sst_size = "1M", modes = "baseline,rubble", dists = "uniform,zipfian",
              workloads = "A,B,C,D,E,F";
  app.add_option("--records", cfg.records, "records inserted by the load phase")->capture_default_str();
  app.add_option("--ops", cfg.ops, "operations of each workload phase")->capture_default_str();
  app.add_option("--workloads", workloads,
                 "YCSB workloads to run after the load: A (50/50 read/update), B (95/5), C (read only), "
                 "D (read latest, 5% insert), E (scans, 5% insert), F (read-modify-write); '' for the load only")
      ->capture_default_str();
  app.add_option("--max-scan", cfg.max_scan, "workload E: longest scan (keys; lengths are uniform from 1)")
      ->capture_default_str();
  app.add_option("--value-size", value_size, "value size")
      ->check(fastpath::cli::size_validator())
      ->capture_default_str();
  app.add_option("--distribution", dists,
                 "key distribution(s) of workloads A, B, C, E, F: uniform, zipfian or both (D: latest)")
      ->capture_default_str();
  app.add_option("--modes", modes, "baseline, rubble or both (run one after the other)")->capture_default_str();
  app.add_option("--threads", cfg.threads, "client threads")->capture_default_str();
  app.add_option("--batch", cfg.batch,
                 "load phase: records per Write call (YCSB batch insert; latencies are then per call)")
      ->capture_default_str();
  app.add_flag("!--no-settle", cfg.settle,
               "start the workloads right after the load, while its flushes and compactions still run (by "
               "default the bench waits for them, and the load's CPU includes them)");
  app.add_option("--replicas", cfg.replicas, "nodes after the head (2 = head, middle, tail)")->capture_default_str();
  app.add_option("--sst-size", sst_size, "SST target and memtable size of the nodes")
      ->check(fastpath::cli::size_validator())
      ->capture_default_str();
  app.add_option("--pool-slots", cfg.pool_slots, "slots per replica pool (default: 3x the data, at least 64)");
  app.add_flag("!--no-warm-cache", cfg.warm_cache,
               "rubble tails do not read the SSTs they open into the page cache while serving reads");
  app.add_option("--catch-up-interval", cfg.catch_up_ms,
                 "rubble replicas: milliseconds between catch-ups (rubble-node)")
      ->capture_default_str();
  app.add_option("--node", cfg.node, "rubble-node binary (default: next to rubble-bench)");
  app.add_option("--dir", cfg.dir, "directory for the nodes' data (default: a temporary one, removed)");
  app.add_flag("--keep", cfg.keep, "keep the temporary directory (logs, data)");
  app.add_option("--json", cfg.json, "also write the results as JSON to this file ('-' for stdout)");
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  try {
    if (auto e = parse_lists(cfg, modes, dists, workloads); !e.empty()) throw std::invalid_argument(e);
    if (auto e = finish(cfg, value_size, sst_size); !e.empty()) throw std::invalid_argument(e);
    return run(cfg);
  } catch (const std::invalid_argument& e) {
    fastpath::cli::error(kTool, e.what());
    return 2;
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
}
