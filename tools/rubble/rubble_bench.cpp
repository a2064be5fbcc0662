// SPDX-License-Identifier: GPL-2.0
//
// rubble-bench: YCSB-style load and workload A (50% reads, 50% updates) on a
// three-node chain of rubble-node processes, in baseline and rubble mode one
// after the other, reporting throughput, latency and each node's CPU time
// (utime + stime from /proc/PID/stat).
//
//   $ rubble-bench --records 50000 --ops 50000
//   mode      phase      ops    s     kops/s  p50 us  p99 us  errors
//   --------  ---------  -----  ----  ------  ------  ------  ------
//   baseline  load       50000  ...
//   ...
//   total CPU: rubble 12.3 s vs baseline 20.1 s (-38.8%); replicas 2.1 s vs 9.8 s (baseline/rubble 4.67x); ...
#include <unistd.h>

#include <atomic>
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
  int replicas = 2;
  std::uint64_t sst_size = 1 << 20;
  std::uint32_t pool_slots = 0;
  double catch_up_ms = 50;
  std::vector<Mode> modes;
  std::vector<KeyChooser::Kind> dists;
  std::string node, dir, json;
  bool keep = false;
};

struct Phase {
  std::string mode, name;
  std::uint64_t ops = 0, errors = 0;
  double seconds = 0;
  fastpath::LatencyHistogram all, reads, writes;
  std::string first_error;
};

struct NodeCpu {
  std::string mode, name, role;
  std::vector<double> cpu;  // seconds at each phase boundary
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

Phase run_phase(const Chain& chain, const Config& cfg, const std::string& mode, const std::string& name,
                std::uint64_t total, const Op& op) {
  Phase p;
  p.mode = mode;
  p.name = name;
  p.ops = total;
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

Op load_op(const ValueSource& values) {
  return [&values](ChainClient& c, std::mt19937_64& rng, std::uint64_t i, bool* read) -> std::string {
    *read = false;
    const auto st = c.put(ycsb_key(i), std::string(values.next(rng)));
    return st.ok() ? "" : describe(st);
  };
}

// Workload A: 50% reads (every key was loaded, so a miss is an error), 50% updates.
Op workload_a(const ValueSource& values, const KeyChooser& keys) {
  return [&values, &keys](ChainClient& c, std::mt19937_64& rng, std::uint64_t, bool* read) -> std::string {
    const std::string key = ycsb_key(keys.choose(rng));
    *read = rng() & 1;
    if (!*read) {
      const auto st = c.put(key, std::string(values.next(rng)));
      return st.ok() ? "" : describe(st);
    }
    std::string v;
    bool found = false;
    const auto st = c.get(key, &v, &found);
    if (!st.ok()) return describe(st);
    return found ? "" : "read of " + key + " found nothing";
  };
}

void snapshot_cpu(const Chain& chain, std::vector<NodeCpu>& nodes) {
  for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].cpu.push_back(cpu_seconds(chain.nodes()[i].pid));
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
  return s;
}

const char* dist_name(KeyChooser::Kind k) {
  return k == KeyChooser::Kind::kZipfian ? "zipfian" : "uniform";
}

void run_mode(const Config& cfg, Mode mode, const ValueSource& values, std::vector<Phase>& phases,
              std::vector<NodeCpu>& cpus) {
  const std::string m = to_string(mode);
  Chain chain(chain_spec(cfg, mode));
  std::vector<NodeCpu> nodes;
  for (const auto& n : chain.nodes()) nodes.push_back(NodeCpu{m, n.name, to_string(n.role), {}, {}});
  snapshot_cpu(chain, nodes);
  phases.push_back(run_phase(chain, cfg, m, "load", cfg.records, load_op(values)));
  snapshot_cpu(chain, nodes);
  for (auto kind : cfg.dists) {
    const KeyChooser keys(kind, cfg.records);
    phases.push_back(run_phase(chain, cfg, m, std::string("A-") + dist_name(kind), cfg.ops, workload_a(values, keys)));
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
  fastpath::Table t(
      {"mode", "phase", "ops", "s", "kops/s", "p50 us", "p99 us", "read p99 us", "update p99 us", "errors"});
  for (const auto& p : phases)
    t.add_row({p.mode, p.name, std::to_string(p.ops), fastpath::fixed(p.seconds, 1),
               fastpath::fixed(static_cast<double>(p.ops) / p.seconds / 1000.0, 2), us(p.all.percentile(50)),
               us(p.all.percentile(99)), us(p.reads.percentile(99)), us(p.writes.percentile(99)),
               std::to_string(p.errors)});
  return t;
}

fastpath::Table node_table(const std::vector<NodeCpu>& nodes) {
  fastpath::Table t({"mode", "node", "cpu load s", "cpu run s", "cpu s", "flushes", "compactions", "written MB",
                     "shipped MB", "sent MB"});
  for (const auto& n : nodes) {
    const auto& s = n.stats;
    t.add_row({n.mode, n.name, fastpath::fixed(n.cpu[1] - n.cpu[0], 2), fastpath::fixed(n.cpu.back() - n.cpu[1], 2),
               fastpath::fixed(n.cpu.back() - n.cpu[0], 2), std::to_string(s.flushes()),
               std::to_string(s.compactions()), mb(s.flush_bytes() + s.compact_bytes()), mb(s.bytes_shipped()),
               mb(s.bytes_sent())});
  }
  return t;
}

struct Totals {
  double all = 0, replicas = 0;
};

Totals totals(const std::vector<NodeCpu>& nodes, const std::string& mode) {
  Totals t;
  for (const auto& n : nodes) {
    if (n.mode != mode) continue;
    const double cpu = n.cpu.back() - n.cpu[0];
    t.all += cpu;
    if (n.role != "head") t.replicas += cpu;
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
    double bl = 0, rl = 0;
    for (const auto& p : phases)
      if (p.name == "load") (p.mode == "baseline" ? bl : rl) = static_cast<double>(p.ops) / p.seconds;
    j["load_throughput_ratio"] = bl > 0 ? rl / bl : 0.0;
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
            << fastpath::fixed(s["load_throughput_ratio"], 2) << "\n";
}

std::string default_node_binary() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "rubble-node").string();
}

std::string parse_lists(Config& cfg, const std::string& modes, const std::string& dists) {
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
                            {"replicas", cfg.replicas},
                            {"sst_size", cfg.sst_size},
                            {"pool_slots", cfg.pool_slots}}},
                          {"phases", pt.to_json()},
                          {"nodes", nt.to_json()},
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
  CLI::App app{"rubble-bench: YCSB load and workload A on a three-node RubbleDB chain, baseline vs rubble mode"};
  Config cfg;
  std::string value_size = "1K", sst_size = "1M", modes = "baseline,rubble", dists = "uniform,zipfian";
  app.add_option("--records", cfg.records, "records inserted by the load phase")->capture_default_str();
  app.add_option("--ops", cfg.ops, "operations of each workload A phase")->capture_default_str();
  app.add_option("--value-size", value_size, "value size")
      ->check(fastpath::cli::size_validator())
      ->capture_default_str();
  app.add_option("--distribution", dists, "key distribution(s) for workload A: uniform, zipfian or both")
      ->capture_default_str();
  app.add_option("--modes", modes, "baseline, rubble or both (run one after the other)")->capture_default_str();
  app.add_option("--threads", cfg.threads, "client threads")->capture_default_str();
  app.add_option("--replicas", cfg.replicas, "nodes after the head (2 = head, middle, tail)")->capture_default_str();
  app.add_option("--sst-size", sst_size, "SST target and memtable size of the nodes")
      ->check(fastpath::cli::size_validator())
      ->capture_default_str();
  app.add_option("--pool-slots", cfg.pool_slots, "slots per replica pool (default: 3x the data, at least 64)");
  app.add_option("--catch-up-interval", cfg.catch_up_ms,
                 "rubble replicas: milliseconds between catch-ups (rubble-node)")
      ->capture_default_str();
  app.add_option("--node", cfg.node, "rubble-node binary (default: next to rubble-bench)");
  app.add_option("--dir", cfg.dir, "directory for the nodes' data (default: a temporary one, removed)");
  app.add_flag("--keep", cfg.keep, "keep the temporary directory (logs, data)");
  app.add_option("--json", cfg.json, "also write the results as JSON to this file ('-' for stdout)");
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  try {
    if (auto e = parse_lists(cfg, modes, dists); !e.empty()) throw std::invalid_argument(e);
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
