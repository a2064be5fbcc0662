// SPDX-License-Identifier: GPL-2.0
// bpfkv bench: random GETs through several back-ends, thread counts and
// batch sizes in one run; every answer verified; throughput and latency
// percentiles per configuration as a table and as JSON.
#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "commands.h"
#include "fastpath/histogram.h"
#include "fastpath/progress.h"
#include "fastpath/report.h"
#include "verify.h"

namespace fastpath::bpfkv {

namespace {

using Clock = std::chrono::steady_clock;

struct Run {
  std::string file;
  std::string backend;
  std::uint32_t layers = 0;
  unsigned threads = 0;
  unsigned batch = 0;
  std::uint64_t ops = 0;
  double secs = 0;
  LatencyHistogram latency;  // per get() call, ns
  BackendStats io;
};

// One thread's share: ops random lookups of existing keys, batch at a time.
void lookups(Backend& b, const DbFile& db, std::uint64_t ops, unsigned batch, std::uint64_t seed,
             LatencyHistogram& latency, Progress& progress) {
  const Geometry& g = db.geo();
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> keys(batch);
  std::vector<std::uint8_t> found(batch);
  std::vector<std::byte> values(std::size_t{batch} * g.value_size);
  for (std::uint64_t done = 0; done < ops;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(batch, ops - done));
    for (std::size_t i = 0; i < n; ++i) keys[i] = g.key(rng() % g.nkeys);
    const auto t0 = Clock::now();
    b.get(std::span(keys).first(n), std::span(found).first(n), std::span(values).first(n * g.value_size));
    latency.record(static_cast<std::uint64_t>(std::chrono::nanoseconds(Clock::now() - t0).count()));
    verify_get(db, b.name(), std::span(keys).first(n), std::span(found).first(n),
               std::span(values).first(n * g.value_size));
    done += n;
    progress.add(n);
  }
}

class BenchCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("bench", "random GETs through several back-ends side by side");
    sub->add_option("FILE", files_, "databases (e.g. one per layer count)")->required();
    sub->add_option("--backends", backends_, "back-ends to compare")
        ->delimiter(',')
        ->check(CLI::IsMember(backend_names()))
        ->capture_default_str();
    sub->add_option("--threads", threads_, "thread counts to run")
        ->delimiter(',')
        ->check(CLI::Range(1u, 256u))
        ->capture_default_str();
    sub->add_option("--batch", batches_, "keys per get() call")
        ->delimiter(',')
        ->check(CLI::Range(1u, 4096u))
        ->capture_default_str();
    sub->add_option("--ops", ops_, "lookups per configuration")->check(CLI::PositiveNumber)->capture_default_str();
    sub->add_option("--seed", seed_, "random seed")->capture_default_str();
    sub->add_option("--json", json_, "also write the results as JSON to this file ('-' for stdout)");
    q_.add_to(*sub, false);
    return sub;
  }

  int run() override {
    nlohmann::json skipped = nlohmann::json::array();
    std::vector<Run> runs;
    for (const std::string& file : files_) {
      const DbFile db = DbFile::open(file, {.direct = !q_.buffered});
      for (const std::string& backend : backends_) {
        if (const std::string why = unavailable(db, backend); !why.empty()) {
          std::cerr << "bench: " << backend << " skipped: " << why << '\n';
          skipped.push_back({{"file", file}, {"backend", backend}, {"reason", why}});
          continue;
        }
        for (unsigned threads : threads_)
          for (unsigned batch : batches_) runs.push_back(run_one(db, backend, threads, batch));
      }
    }
    if (runs.empty()) throw Error("bench: no back-end could run (see above)");
    report(runs, skipped);
    return 0;
  }

 private:
  std::string unavailable(const DbFile& db, const std::string& backend) const {
    try {
      (void)make_backend(backend, db, q_.backend_opts);
    } catch (const Error& e) {
      return e.what();
    }
    return {};
  }

  Run run_one(const DbFile& db, const std::string& backend, unsigned threads, unsigned batch) const {
    Run r;
    r.file = std::filesystem::path(db.path()).filename();
    r.backend = backend;
    r.layers = db.geo().layers;
    r.threads = threads;
    r.batch = batch;
    r.ops = ops_;
    std::vector<std::unique_ptr<Backend>> backends;
    for (unsigned t = 0; t < threads; ++t) backends.push_back(make_backend(backend, db, q_.backend_opts));
    std::vector<LatencyHistogram> latency(threads);
    std::vector<std::exception_ptr> errors(threads);
    Progress progress(
        "bench " + r.file + " " + backend + " threads=" + std::to_string(threads) + " batch=" + std::to_string(batch),
        ops_);
    const auto t0 = Clock::now();
    {
      std::vector<std::jthread> workers;
      for (unsigned t = 0; t < threads; ++t) {
        const std::uint64_t share = ops_ / threads + (t < ops_ % threads);
        workers.emplace_back([&, t, share] {
          try {
            lookups(*backends[t], db, share, batch, seed_ * 1000003 + t, latency[t], progress);
          } catch (...) {
            errors[t] = std::current_exception();
          }
        });
      }
    }
    r.secs = std::chrono::duration<double>(Clock::now() - t0).count();
    progress.finish();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    for (unsigned t = 0; t < threads; ++t) {
      r.latency.merge(latency[t]);
      r.io.reads += backends[t]->stats().reads;
      r.io.syscalls += backends[t]->stats().syscalls;
    }
    return r;
  }

  void report(const std::vector<Run>& runs, const nlohmann::json& skipped) const {
    Table t({"file", "layers", "backend", "threads", "batch", "ops", "ops_per_s", "p50_us", "p99_us", "p999_us",
             "mean_us", "reads_per_op", "syscalls_per_op"});
    nlohmann::json latencies = nlohmann::json::array();
    for (const Run& r : runs) {
      const double ops = static_cast<double>(r.ops);
      auto us = [](double ns) { return fixed(ns / 1000.0, 1); };
      t.add_row({r.file, std::to_string(r.layers), r.backend, std::to_string(r.threads), std::to_string(r.batch),
                 std::to_string(r.ops), fixed(ops / r.secs, 0), us(static_cast<double>(r.latency.percentile(50))),
                 us(static_cast<double>(r.latency.percentile(99))), us(static_cast<double>(r.latency.percentile(99.9))),
                 us(r.latency.mean()), fixed(static_cast<double>(r.io.reads) / ops, 2),
                 fixed(static_cast<double>(r.io.syscalls) / ops, 2)});
      latencies.push_back(r.latency.to_json());
    }
    t.print(std::cout);
    std::cout << "latency is per get() call of `batch` keys; every answer was verified\n";
    if (json_.empty()) return;
    nlohmann::json doc{{"tool", "bpfkv bench"},  {"ops", ops_},        {"seed", seed_},
                       {"direct", !q_.buffered}, {"skipped", skipped}, {"results", t.to_json()}};
    for (std::size_t i = 0; i < runs.size(); ++i) doc["results"][i]["latency_ns"] = latencies[i];
    write_json(doc, json_);
  }

  std::vector<std::string> files_;
  std::vector<std::string> backends_{"pread", "io_uring", "xrp"};
  std::vector<unsigned> threads_{1};
  std::vector<unsigned> batches_{1};
  std::uint64_t ops_ = 20000;
  std::uint64_t seed_ = 1;
  std::string json_;
  QueryOptions q_;
};

}  // namespace

std::unique_ptr<Command> make_bench_command() {
  return std::make_unique<BenchCommand>();
}

}  // namespace fastpath::bpfkv
