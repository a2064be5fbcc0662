// SPDX-License-Identifier: GPL-2.0
// volt-bench: remote locks over urdma, VOLT against the verbs baselines.
#include <iostream>
#include <sstream>

#include "bench.h"
#include "fastpath/cli.h"
#include "fastpath/report.h"
#include "link.h"

namespace {

constexpr const char* kTool = "volt-bench";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

// Returns an error message, or "" when the lists parse.
std::string parse_lists(const std::string& kinds, const std::string& clients, volt::bench::Options& o) {
  o.kinds.clear();
  for (const std::string& k : split(kinds)) {
    auto kind = volt::parse_kind(k);
    if (!kind) return "unknown lock kind '" + k + "'; known: " + volt::all_kind_names();
    o.kinds.push_back(*kind);
  }
  o.clients.clear();
  for (const std::string& c : split(clients)) {
    int n = 0;
    try {
      n = std::stoi(c);
    } catch (const std::exception&) {
    }
    if (n < 1 || n > 64) return "--clients: '" + c + "' is not a count from 1 to 64";
    o.clients.push_back(static_cast<std::uint32_t>(n));
  }
  if (o.kinds.empty() || o.clients.empty()) return "--kinds and --clients need at least one value";
  return "";
}

struct ModeArgs {
  std::string mode = "single";
  bool once = false;
};

void add_mode_options(CLI::App& app, volt::bench::Options& o, ModeArgs& m) {
  app.add_option("--mode", m.mode,
                 "single: target and clients in this process; target: serve clients of other processes over "
                 "a TCP side channel; client: run against --target")
      ->check(CLI::IsMember({"single", "target", "client"}))
      ->capture_default_str();
  app.add_option("--target", o.target_host, "--mode client: host of the --mode target process");
  app.add_option("--port", o.port, "TCP port of the side channel")->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_flag("--once", m.once, "--mode target: exit after serving one client process");
}

void add_options(CLI::App& app, volt::bench::Options& o, std::string& kinds, std::string& clients, std::string& dist) {
  app.add_option("--kinds", kinds, "lock kinds, comma-separated: " + volt::all_kind_names())->capture_default_str();
  app.add_option("--clients", clients, "client counts to sweep, e.g. 1,2,4,8,16 (each client a thread with its own QP)")
      ->capture_default_str();
  app.add_option("--locks", o.locks, "number of locks")->check(CLI::Range(1, 1'000'000))->capture_default_str();
  app.add_option("--dist", dist, "lock choice: uniform or zipfian")
      ->check(CLI::IsMember({"uniform", "zipfian"}))
      ->capture_default_str();
  app.add_option("--zipf-theta", o.zipf_theta, "zipfian skew")->check(CLI::Range(0.01, 0.999))->capture_default_str();
  app.add_option("--shared", o.shared, "fraction of acquires in shared (reader) mode")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--data-size", o.data_size, "bytes of guarded data the critical section READs and WRITEs")
      ->check(CLI::Range(8, 1 << 20))
      ->capture_default_str();
  app.add_option("--think-ns", o.think_ns, "pause after each release (ns)")->capture_default_str();
  app.add_option("--duration", o.duration_s, "measured seconds per run")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "seconds before measuring")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  app.add_option("--target-backend", o.target_backend, "urdma back-end spec of the lock target")->capture_default_str();
  app.add_option("--client-backend", o.client_backends,
                 "urdma back-end spec of a client device (repeat for several; clients go round-robin)")
      ->capture_default_str();
  app.add_option("--volt-object", o.volt_object, "the VOLT program (ELF built from bpf/volt.bpf.c)")
      ->capture_default_str();
  app.add_option("--backoff-initial-ns", o.backoff_initial_ns, "cas-backoff: first delay")->capture_default_str();
  app.add_option("--backoff-cap-ns", o.backoff_cap_ns, "cas-backoff: largest delay")->capture_default_str();
  app.add_option("--spin-ns", o.spin_ns, "clients busy-poll their CQ this long before sleeping on it")
      ->capture_default_str();
  app.add_flag("--rpc-spin", o.rpc_spin, "the RPC lock server busy-polls (else it sleeps when idle)");
  app.add_flag("!--no-fifo-check", o.fifo_check,
               "skip the arrival log and the FIFO check (the target's device is then opened from its spec, so "
               "its keys such as spin_us apply)");
  app.add_flag("!--no-batch-release", o.batch_release,
               "wait for the critical section's WRITE before posting the release (default: back to back)");
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--json", o.json, "also write the results as JSON to this file ('-' = stdout)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"volt-bench: remote lock goodput, latency, fairness and cost over urdma (VOLT vs verbs baselines)"};
  volt::bench::Options o;
  std::string kinds = volt::all_kind_names(), clients = "8", dist = "uniform";
  ModeArgs m;
  add_options(app, o, kinds, clients, dist);
  add_mode_options(app, o, m);
  if (const int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  if ((m.mode == "client") != !o.target_host.empty()) {
    fastpath::cli::error(kTool, "--target HOST goes with --mode client (and only with it)");
    return 2;
  }
  if (const std::string err = parse_lists(kinds, clients, o); !err.empty()) {
    fastpath::cli::error(kTool, err);
    return 2;
  }
  o.zipfian = dist == "zipfian";
  try {
    if (m.mode == "target") {
      volt::bench::TargetParams tp{o.target_backend, o.locks, o.data_size, "", o.fifo_check};
      for (volt::Kind k : o.kinds)
        if (k == volt::Kind::kVolt) tp.volt_object = o.volt_object;
      volt::bench::serve_target(tp, o.port, m.once);
      return 0;
    }
    const auto runs = volt::bench::run_all(o);
    volt::bench::print_table(runs, std::cout);
    if (!o.json.empty()) fastpath::write_json(volt::bench::to_json(o, runs), o.json);
    for (const auto& r : runs)
      if (!r.error.empty() || !r.verified) return 1;
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
  return 0;
}
