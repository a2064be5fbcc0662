// SPDX-License-Identifier: GPL-2.0
// volt-bench's runs: one target, every kind at every client count.
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "../../../bpf/volt.h"
#include "bench.h"
#include "link.h"
#include "volt/thread_cpu.h"
#include "volt/volt_lock.h"

namespace volt::bench {
namespace {

// YCSB's zipfian generator (Gray et al.): item 0 is the hottest.
class Zipf {
 public:
  Zipf(std::uint64_t n, double theta) : n_(n), theta_(theta) {
    for (std::uint64_t i = 1; i <= n; ++i) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
  }
  std::uint64_t next(double u) const {
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return std::min<std::uint64_t>(1, n_ - 1);
    const auto v = static_cast<std::uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return std::min(v, n_ - 1);
  }

 private:
  std::uint64_t n_;
  double theta_, zetan_ = 0, alpha_ = 0, eta_ = 0;
};

enum Phase : int { kWarmup, kMeasure, kStop };

struct ClientOut {
  std::uint64_t acq = 0, interrupted = 0, excl_total = 0, lock_msgs = 0;
  fastpath::LatencyHistogram hist;
  ClientGrants grants;
  std::string error;
};

struct Shared {
  const Options& opt;
  RemoteRegion region;
  ClientSession& session;
  const Zipf* zipf;
  bool log_grants;
  std::atomic<int> phase{kWarmup};
};

// The critical section: READ the guarded data; a writer increments its
// first word and WRITEs it back.
void critical_section(Conn<UrdmaVerbs>& c, const RemoteRegion& r, std::uint64_t lock, std::uint32_t size, Mode m,
                      bool batch) {
  c.read(r.data_addr(lock), r.table.rkey, 0, size);
  if (m == Mode::kShared) return;
  std::uint64_t v = 0;
  std::memcpy(&v, c.data(), 8);
  ++v;
  std::memcpy(c.data(), &v, 8);
  if (batch)
    c.write_async(r.data_addr(lock), r.table.rkey, 0, size);  // reaped by the release right behind it
  else
    c.write(r.data_addr(lock), r.table.rkey, 0, size);
}

void client_loop(Shared& sh, std::uint32_t i, ClientOut& out) {
  LockClient& lk = sh.session.lock(i);
  Conn<UrdmaVerbs>& c = sh.session.conn(i);
  std::mt19937_64 rng(sh.opt.seed * 1'000'003 + i);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::uniform_int_distribution<std::uint64_t> uni(0, sh.opt.locks - 1);
  while (sh.phase.load(std::memory_order_relaxed) != kStop) {
    const std::uint64_t lock = sh.zipf ? sh.zipf->next(u(rng)) : uni(rng);
    const Mode m = sh.opt.shared > 0 && u(rng) < sh.opt.shared ? Mode::kShared : Mode::kExclusive;
    const bool measured = sh.phase.load(std::memory_order_relaxed) == kMeasure;
    const std::uint64_t ops0 = c.ops(), t0 = mono_ns();
    const Grant g = lk.acquire(lock, m);
    const std::uint64_t t1 = mono_ns();
    if (sh.log_grants) {
      out.grants.lock.push_back(lock);
      out.grants.seq.push_back(g.seq);
    }
    critical_section(c, sh.region, lock, sh.opt.data_size, m, sh.opt.batch_release);
    lk.release(lock);
    if (m == Mode::kExclusive) ++out.excl_total;
    if (measured) {
      ++out.acq;
      out.interrupted += g.interrupted;
      out.hist.record(t1 - t0);
      out.lock_msgs += c.ops() - ops0 - (m == Mode::kExclusive ? 2 : 1);
    }
    if (sh.opt.think_ns) Backoff::pause_ns(sh.opt.think_ns);
  }
}

struct Snapshot {
  std::uint64_t t_ns = 0, client_busy = 0, client_packets = 0, client_wakeups = 0;
  TargetSnap target;
};

Snapshot snap(TargetLink& link, const std::vector<ClientDevice*>& devs) {
  Snapshot x;
  x.target = link.snap();
  x.t_ns = mono_ns();
  for (ClientDevice* d : devs) {
    const urdma::DeviceStats cs = d->dev->stats();
    x.client_packets += cs.tx_packets;
    x.client_wakeups += cs.engine_wakeups;
  }
  x.client_busy = thread_cpu(engine_thread_name("volt-client")).matching_ns;
  return x;
}

bool is_volt_acquire(const Arrival& a, const LockTable& t, std::uint64_t& lock) {
  if (a.opcode != 0xc0 || (a.arg != VOLT_ACQUIRE_EXCL && a.arg != VOLT_ACQUIRE_SHARED)) return false;
  lock = (a.va - t.base) / LockTable::kSlot;
  return true;
}

bool is_rpc_acquire(const Arrival& a, std::uint64_t& lock) {
  const auto cmd = static_cast<std::uint32_t>(a.va);
  if (a.opcode != 0x04 || (cmd != kRpcAcquireExcl && cmd != kRpcAcquireShared)) return false;
  lock = a.arg;
  return true;
}

void check_order(RunResult& r, const RemoteRegion& region, Closing& closing, std::vector<ClientOut>& outs) {
  if (r.kind == Kind::kTicket) {
    r.fifo_text = "by design";
    return;
  }
  if (r.kind != Kind::kVolt && r.kind != Kind::kRpc) {
    r.fifo_text = "n/a";
    return;
  }
  if (!closing.logged) {
    r.fifo_text = "not checked (no arrival log)";
    return;
  }
  if (closing.truncated) {
    r.fifo_text = "not checked (arrival log full)";
    return;
  }
  std::vector<ClientGrants> grants;
  for (std::uint32_t i = 0; i < outs.size(); ++i) {
    outs[i].grants.target_qpn = i < closing.qpns.size() ? closing.qpns[i] : 0;
    grants.push_back(std::move(outs[i].grants));
  }
  const bool volt = r.kind == Kind::kVolt;
  r.fifo = check_fifo(closing.arrivals, grants, [&](const Arrival& a, std::uint64_t& lock) {
    return volt ? is_volt_acquire(a, region.table, lock) : is_rpc_acquire(a, lock);
  });
  r.fifo_text = !r.fifo.checked         ? "not checked: " + r.fifo.note
                : r.fifo.overtakes == 0 ? "strict"
                                        : std::to_string(r.fifo.overtakes) + " overtakes";
}

void verify(RunResult& r, std::uint64_t guarded_sum, const std::vector<ClientOut>& outs) {
  std::uint64_t want = 0;
  for (const ClientOut& o : outs) want += o.excl_total;
  r.verified = want == guarded_sum;
  if (!r.verified)
    r.verify_note = "guarded counters sum to " + std::to_string(guarded_sum) + ", exclusive acquisitions " +
                    std::to_string(want) + ": mutual exclusion failed";
}

// The host's 1-minute load average (other work on the machine skews every figure).
double loadavg() {
  double l = 0;
  std::ifstream("/proc/loadavg") >> l;
  return l;
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

void fill(RunResult& r, const Snapshot& a, const Snapshot& b, const std::vector<ClientOut>& outs) {
  r.seconds = static_cast<double>(b.t_ns - a.t_ns) / 1e9;
  std::uint64_t lock_msgs = 0;
  for (const ClientOut& o : outs) {
    r.acquisitions += o.acq;
    r.interrupted += o.interrupted;
    r.per_client.push_back(o.acq);
    r.latency.merge(o.hist);
    lock_msgs += o.lock_msgs;
    if (r.error.empty() && !o.error.empty()) r.error = o.error;
  }
  const double acq = static_cast<double>(std::max<std::uint64_t>(1, r.acquisitions));
  r.lock_msgs_per_acq = static_cast<double>(lock_msgs) / acq;
  r.packets_per_acq =
      static_cast<double>(b.client_packets - a.client_packets + b.target.tx_packets - a.target.tx_packets) / acq;
  r.target_wakeups_per_acq = static_cast<double>(b.target.wakeups - a.target.wakeups) / acq;
  r.client_wakeups_per_acq = static_cast<double>(b.client_wakeups - a.client_wakeups) / acq;
  r.target_app_cpu_s = static_cast<double>(b.target.app_cpu_ns - a.target.app_cpu_ns) / 1e9;
  r.target_engine_cpu_s = static_cast<double>(b.target.engine_cpu_ns - a.target.engine_cpu_ns) / 1e9;
  r.target_engine_busy_s = static_cast<double>(b.target.engine_busy_ns - a.target.engine_busy_ns) / 1e9;
  r.client_engine_cpu_s = static_cast<double>(b.client_busy - a.client_busy) / 1e9;
}

SessionOptions session_options(const Options& opt, Kind kind, std::uint32_t clients) {
  SessionOptions so;
  so.kind = kind;
  so.clients = clients;
  so.data_size = opt.data_size;
  so.wait.spin_ns = opt.spin_ns;
  so.backoff = {true, opt.backoff_initial_ns, opt.backoff_cap_ns};
  so.rpc_spin = opt.rpc_spin;
  so.seed = opt.seed;
  return so;
}

// Target QPs, client QPs, connected both ways.
std::unique_ptr<ClientSession> connect_run(const Options& opt, TargetLink& link, const std::vector<ClientDevice*>& devs,
                                           Kind kind, std::uint32_t clients, bool log_grants, RemoteRegion& region) {
  const SessionOptions so = session_options(opt, kind, clients);
  std::vector<QpAddr> taddrs, caddrs;
  region = link.open({kind, clients, log_grants, opt.rpc_spin, so.connect}, taddrs);
  if (region.table.count < opt.locks || region.data_size < opt.data_size)
    throw std::runtime_error("the target has " + std::to_string(region.table.count) + " locks of " +
                             std::to_string(region.data_size) + " B; this run needs " + std::to_string(opt.locks) +
                             " of " + std::to_string(opt.data_size) + " B: start it with --locks/--data-size");
  auto cs = std::make_unique<ClientSession>(devs, region, so);
  for (std::uint32_t i = 0; i < clients; ++i) caddrs.push_back(cs->addr(i));
  link.connect(caddrs);
  for (std::uint32_t i = 0; i < clients; ++i) cs->connect(i, taddrs[i]);
  return cs;
}

RunResult run_one(const Options& opt, TargetLink& link, const std::vector<ClientDevice*>& devs, const Zipf* zipf,
                  Kind kind, std::uint32_t clients) {
  const bool log_grants = opt.fifo_check && (kind == Kind::kVolt || kind == Kind::kRpc);
  RemoteRegion region;
  auto session = connect_run(opt, link, devs, kind, clients, log_grants, region);
  Shared sh{opt, region, *session, zipf, log_grants};
  std::vector<ClientOut> outs(clients);
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < clients; ++i)
    threads.emplace_back([&sh, &outs, i] {
      try {
        client_loop(sh, i, outs[i]);
      } catch (const std::exception& e) {
        outs[i].error = "client " + std::to_string(i) + ": " + e.what();
        sh.phase.store(kStop);
      }
    });
  const double load0 = loadavg();
  sleep_s(opt.warmup_s);
  const Snapshot a = snap(link, devs);
  sh.phase.store(kMeasure);
  sleep_s(opt.duration_s);
  const Snapshot b = snap(link, devs);
  sh.phase.store(kStop);
  for (auto& th : threads) th.join();
  session.reset();
  Closing closing = link.close();
  RunResult r;
  r.kind = kind;
  r.clients = clients;
  fill(r, a, b, outs);
  r.load_before = load0;
  r.load_after = loadavg();
  verify(r, closing.guarded_sum, outs);
  check_order(r, region, closing, outs);
  return r;
}

}  // namespace

double RunResult::jain() const {
  double s = 0, s2 = 0;
  for (std::uint64_t x : per_client) {
    s += static_cast<double>(x);
    s2 += static_cast<double>(x) * static_cast<double>(x);
  }
  return s2 > 0 ? s * s / (static_cast<double>(per_client.size()) * s2) : 0;
}

double RunResult::max_min() const {
  if (per_client.empty()) return 0;
  const auto [lo, hi] = std::minmax_element(per_client.begin(), per_client.end());
  return *lo ? static_cast<double>(*hi) / static_cast<double>(*lo) : INFINITY;
}

std::vector<RunResult> run_all(const Options& opt) {
  std::unique_ptr<TargetLink> link;
  if (!opt.target_host.empty()) {
    link = remote_link(opt.target_host, opt.port);
  } else {
    TargetParams tp{opt.target_backend, opt.locks, opt.data_size, "", opt.fifo_check};
    for (Kind k : opt.kinds)
      if (k == Kind::kVolt) tp.volt_object = opt.volt_object;
    link = local_link(tp);
  }
  std::cerr << "volt-bench: target " << link->describe() << std::endl;
  std::vector<std::unique_ptr<ClientDevice>> owned;
  std::vector<ClientDevice*> devs;
  for (std::size_t i = 0; i < opt.client_backends.size(); ++i) {
    owned.push_back(
        std::make_unique<ClientDevice>(urdma::Device::open("volt-client" + std::to_string(i), opt.client_backends[i])));
    devs.push_back(owned.back().get());
  }
  std::unique_ptr<Zipf> zipf;
  if (opt.zipfian) zipf = std::make_unique<Zipf>(opt.locks, opt.zipf_theta);
  std::vector<RunResult> runs;
  for (std::uint32_t n : opt.clients)
    for (Kind k : opt.kinds) {
      std::cerr << "volt-bench: " << kind_name(k) << ", " << n << " clients, " << opt.duration_s << " s ..."
                << std::endl;
      runs.push_back(run_one(opt, *link, devs, zipf.get(), k, n));
      const RunResult& r = runs.back();
      std::cerr << "volt-bench: " << kind_name(k) << ", " << n
                << " clients: " << static_cast<std::uint64_t>(r.goodput()) << " acquisitions/s, p99 "
                << static_cast<double>(r.latency.percentile(99)) / 1000.0 << " us, fifo " << r.fifo_text
                << ", host load " << r.load_before << " -> " << r.load_after
                << (r.error.empty() ? "" : ", ERROR: " + r.error) << std::endl;
    }
  return runs;
}

}  // namespace volt::bench
