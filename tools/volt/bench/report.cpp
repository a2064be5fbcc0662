// SPDX-License-Identifier: GPL-2.0
// volt-bench's table and JSON.
#include <cmath>
#include <ostream>
#include <thread>

#include "bench.h"
#include "fastpath/report.h"

namespace volt::bench {
namespace {

std::string us(std::uint64_t ns) {
  return fastpath::fixed(static_cast<double>(ns) / 1000.0, 1);
}

std::string ratio(double v) {
  return std::isinf(v) ? "inf" : fastpath::fixed(v, 2);
}

double per_acq_us(double cpu_s, std::uint64_t acq) {
  return acq ? cpu_s * 1e6 / static_cast<double>(acq) : 0;
}

}  // namespace

void print_table(const std::vector<RunResult>& runs, std::ostream& out) {
  fastpath::Table t({"kind", "clients", "goodput/s", "p50 us", "p99 us", "p99.9 us", "jain", "max/min", "fifo",
                     "lock msgs/acq", "pkts/acq", "tgt app cpu s", "tgt engine cpu s", "engine us/acq", "verified"});
  for (const RunResult& r : runs)
    t.add_row({kind_name(r.kind), std::to_string(r.clients), fastpath::fixed(r.goodput(), 0),
               us(r.latency.percentile(50)), us(r.latency.percentile(99)), us(r.latency.percentile(99.9)),
               fastpath::fixed(r.jain(), 4), ratio(r.max_min()), r.fifo_text, fastpath::fixed(r.lock_msgs_per_acq, 2),
               fastpath::fixed(r.packets_per_acq, 2), fastpath::fixed(r.target_app_cpu_s, 3),
               fastpath::fixed(r.target_engine_cpu_s, 3),
               fastpath::fixed(per_acq_us(r.target_engine_cpu_s, r.acquisitions), 2),
               r.error.empty() ? (r.verified ? "yes" : "NO") : "ERROR"});
  t.print(out);
  for (const RunResult& r : runs) {
    if (!r.error.empty()) out << kind_name(r.kind) << " " << r.clients << " clients: " << r.error << "\n";
    if (!r.verify_note.empty()) out << kind_name(r.kind) << " " << r.clients << " clients: " << r.verify_note << "\n";
  }
}

nlohmann::json to_json(const Options& opt, const std::vector<RunResult>& runs) {
  nlohmann::json cfg = {{"locks", opt.locks},
                        {"distribution", opt.zipfian ? "zipfian" : "uniform"},
                        {"zipf_theta", opt.zipf_theta},
                        {"shared_fraction", opt.shared},
                        {"data_size", opt.data_size},
                        {"think_ns", opt.think_ns},
                        {"duration_s", opt.duration_s},
                        {"warmup_s", opt.warmup_s},
                        {"target_backend", opt.target_backend},
                        {"client_backends", opt.client_backends},
                        {"backoff_initial_ns", opt.backoff_initial_ns},
                        {"backoff_cap_ns", opt.backoff_cap_ns},
                        {"spin_ns", opt.spin_ns},
                        {"rpc_spin", opt.rpc_spin},
                        {"batch_release", opt.batch_release},
                        {"fifo_check", opt.fifo_check}};
  nlohmann::json rs = nlohmann::json::array();
  for (const RunResult& r : runs)
    rs.push_back({{"kind", kind_name(r.kind)},
                  {"clients", r.clients},
                  {"seconds", r.seconds},
                  {"acquisitions", r.acquisitions},
                  {"goodput", r.goodput()},
                  {"latency", r.latency.to_json()},
                  {"per_client", r.per_client},
                  {"jain", r.jain()},
                  {"max_min", std::isinf(r.max_min()) ? nlohmann::json(nullptr) : nlohmann::json(r.max_min())},
                  {"fifo", r.fifo_text},
                  {"fifo_overtakes", r.fifo.checked ? nlohmann::json(r.fifo.overtakes) : nlohmann::json(nullptr)},
                  {"interrupted", r.interrupted},
                  {"lock_msgs_per_acq", r.lock_msgs_per_acq},
                  {"packets_per_acq", r.packets_per_acq},
                  {"target_app_cpu_s", r.target_app_cpu_s},
                  {"target_engine_wakeups_per_acq", r.target_wakeups_per_acq},
                  {"client_engine_wakeups_per_acq", r.client_wakeups_per_acq},
                  {"target_engine_cpu_s", r.target_engine_cpu_s},
                  {"target_engine_busy_s", r.target_engine_busy_s},
                  {"client_engine_cpu_s", r.client_engine_cpu_s},
                  {"verified", r.verified},
                  {"host_load_before", r.load_before},
                  {"host_load_after", r.load_after},
                  {"error", r.error}});
  return {{"tool", "volt-bench"}, {"host_cpus", std::thread::hardware_concurrency()}, {"config", cfg}, {"runs", rs}};
}

}  // namespace volt::bench
