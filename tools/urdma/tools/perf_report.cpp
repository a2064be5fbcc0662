// SPDX-License-Identifier: GPL-2.0
#include "perf_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace urdma::tools::perf {
namespace {

constexpr std::size_t kTail = 2;  // perftest drops this many of the largest samples
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGbitBytes = 125'000'000.0;  // 10^9 bits in bytes

// Bounds the peak search to about this many (post, completion) pairs.
constexpr std::uint64_t kPeakPairs = 50'000'000;

double unit_bytes(bool gbits) {
  return gbits ? kGbitBytes : kMiB;
}

std::string format(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

}  // namespace

const char* const kRule = "---------------------------------------------------------------------------------------";

LatResult latency_stats(const std::vector<std::uint64_t>& post_ns, std::uint64_t size, bool halve) {
  if (post_ns.size() < kTail + 2) throw std::invalid_argument("latency needs at least 4 iterations");
  std::vector<double> d;
  d.reserve(post_ns.size() - 1);
  const double scale = halve ? 2000.0 : 1000.0;  // ns -> usec (one way)
  for (std::size_t i = 0; i + 1 < post_ns.size(); ++i) d.push_back(double(post_ns[i + 1] - post_ns[i]) / scale);
  std::sort(d.begin(), d.end());
  const std::size_t n = d.size() - kTail;
  LatResult r;
  r.size = size;
  r.iters = post_ns.size();
  r.t_min = d[0];
  r.t_max = d[n];
  // The median of the first n, as perftest takes it.
  r.t_typical = (n - 1) % 2 ? (d[n / 2] + d[n / 2 - 1]) / 2 : d[n / 2];
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += d[i];
  r.t_avg = sum / double(n);
  double var = 0;
  for (std::size_t i = 0; i < n; ++i) var += (d[i] - r.t_avg) * (d[i] - r.t_avg);
  r.t_stdev = std::sqrt(var / double(n));
  r.p99 = d[std::min(n, static_cast<std::size_t>(std::ceil(double(n) * 0.99)))];
  r.p999 = d[std::min(n, static_cast<std::size_t>(std::ceil(double(n) * 0.999)))];
  return r;
}

perftest::BwReport bw_stats(std::uint64_t size, const std::vector<std::uint64_t>& post_ns,
                            const std::vector<Completion>& completions, bool gbits) {
  perftest::BwReport r;
  r.size = size;
  r.iters = post_ns.size();
  if (post_ns.empty() || completions.empty()) return r;
  const double total_s = double(completions.back().ns - post_ns.front()) / 1e9;
  r.bw_avg = double(size) * double(r.iters) / total_s / unit_bytes(gbits);
  r.msg_rate = double(r.iters) / total_s / 1e6;
  // Peak: the shortest time per message over any window [post i, completion j].
  const std::uint64_t stride =
      std::max<std::uint64_t>(1, post_ns.size() * completions.size() / kPeakPairs);  // sample when huge
  double best = 0;
  for (std::size_t i = 0; i < post_ns.size(); i += stride) {
    for (const Completion& c : completions) {
      if (c.index < i || c.ns <= post_ns[i]) continue;
      const double per_msg = double(c.ns - post_ns[i]) / double(c.index - i + 1);
      if (best == 0 || per_msg < best) best = per_msg;
    }
  }
  if (best > 0) r.bw_peak = double(size) * 1e9 / best / unit_bytes(gbits);
  return r;
}

perftest::BwReport bw_stats_receiver(std::uint64_t size, std::uint64_t iters, std::uint64_t first_ns,
                                     std::uint64_t last_ns, bool gbits) {
  perftest::BwReport r;
  r.size = size;
  r.iters = iters;
  const double total_s = double(std::max<std::uint64_t>(last_ns - first_ns, 1)) / 1e9;
  r.bw_avg = double(size) * double(iters) / total_s / unit_bytes(gbits);
  r.msg_rate = double(iters) / total_s / 1e6;
  return r;
}

std::string lat_header() {
  return " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   "
         "99% percentile[usec]   99.9% percentile[usec] ";
}

std::string lat_line(const LatResult& r) {
  return format(
      " %-7llu %-11llu    %-9.2f      %-9.2f    %-9.2f         %-9.2f      %-9.2f        %-9.2f              "
      "%-9.2f",
      static_cast<unsigned long long>(r.size), static_cast<unsigned long long>(r.iters), r.t_min, r.t_max, r.t_typical,
      r.t_avg, r.t_stdev, r.p99, r.p999);
}

std::string bw_header(bool gbits) {
  return gbits ? " #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]"
               : " #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]";
}

std::string bw_line(const perftest::BwReport& r, bool gbits) {
  // perftest shows 6 decimals for small Gb/sec figures.
  const char* fmt = gbits && r.bw_avg < 0.1 ? " %-7llu    %-10llu       %-9.6f          %-9.6f            %-9.6f"
                                            : " %-7llu    %-10llu       %-9.2f          %-9.2f            %-9.6f";
  return format(fmt, static_cast<unsigned long long>(r.size), static_cast<unsigned long long>(r.iters), r.bw_peak,
                r.bw_avg, r.msg_rate);
}

nlohmann::json lat_json(const LatResult& r) {
  return {{"size", r.size},
          {"iterations", r.iters},
          {"t_min_usec", r.t_min},
          {"t_max_usec", r.t_max},
          {"t_typical_usec", r.t_typical},
          {"t_avg_usec", r.t_avg},
          {"t_stdev_usec", r.t_stdev},
          {"p99_usec", r.p99},
          {"p99_9_usec", r.p999}};
}

nlohmann::json bw_json(const perftest::BwReport& r, bool gbits) {
  const char* unit = gbits ? "Gb/sec" : "MB/sec";
  return {{"size", r.size},         {"iterations", r.iters}, {"bw_peak", r.bw_peak},
          {"bw_average", r.bw_avg}, {"bw_unit", unit},       {"msg_rate_mpps", r.msg_rate}};
}

}  // namespace urdma::tools::perf
