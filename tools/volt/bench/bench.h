// SPDX-License-Identifier: GPL-2.0
// volt-bench: what a run is given and what it measures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastpath/histogram.h"
#include "volt/arrivals.h"
#include "volt/session.h"

namespace volt::bench {

struct Options {
  std::vector<Kind> kinds;
  std::vector<std::uint32_t> clients{8};
  std::uint64_t locks = 1;
  bool zipfian = false;
  double zipf_theta = 0.99;
  double shared = 0.0;  // fraction of acquires in shared mode
  std::uint32_t data_size = 64;
  std::uint64_t think_ns = 0;
  double duration_s = 5;
  double warmup_s = 0.5;
  std::string target_backend = "udp:ip=127.0.0.1,spin_us=0";
  std::vector<std::string> client_backends{"udp:ip=127.0.0.2,spin_us=0"};
  std::string volt_object = VOLT_DEFAULT_OBJECT;
  std::uint64_t backoff_initial_ns = 2'000;
  std::uint64_t backoff_cap_ns = 1'000'000;
  std::uint64_t spin_ns = 0;  // on 2 cores every spinning thread steals from the engines
  bool rpc_spin = false;
  std::uint64_t seed = 1;
  std::string json;
  bool fifo_check = true;
  bool batch_release = true;  // post the CS's WRITE and the release back to back
  std::string target_host;    // --mode client: where the --mode target process runs
  int port = 18515;           // its side channel
};

// Everything one (kind, clients) run measured.
struct RunResult {
  Kind kind = Kind::kCas;
  std::uint32_t clients = 0;
  double seconds = 0;
  std::uint64_t acquisitions = 0;  // in the measured window
  std::uint64_t interrupted = 0;
  std::vector<std::uint64_t> per_client;
  fastpath::LatencyHistogram latency;  // acquire latency, ns
  double lock_msgs_per_acq = 0;        // lock requests the clients posted per acquisition (CS excluded)
  double packets_per_acq = 0;          // RoCE packets on the wire, both ways, CS included
  double target_wakeups_per_acq = 0;   // engine wake-ups from idle sleep per acquisition
  double client_wakeups_per_acq = 0;
  double target_app_cpu_s = 0;
  double target_engine_cpu_s = 0;   // the engine thread's on-CPU time
  double target_engine_busy_s = 0;  // urdma's own busy count (excludes its sleeps and wake-ups)
  double client_engine_cpu_s = 0;
  FifoResult fifo;
  std::string fifo_text;  // "strict", "3 overtakes", "n/a", "by design"
  bool verified = false;  // guarded counters == exclusive acquisitions
  std::string verify_note;
  std::string error;
  double load_before = 0, load_after = 0;  // host 1-minute load average

  double goodput() const { return seconds > 0 ? static_cast<double>(acquisitions) / seconds : 0; }
  double jain() const;
  double max_min() const;
};

// Runs every kind at every client count on one target.
std::vector<RunResult> run_all(const Options& opt);

void print_table(const std::vector<RunResult>& runs, std::ostream& out);
nlohmann::json to_json(const Options& opt, const std::vector<RunResult>& runs);

}  // namespace volt::bench
