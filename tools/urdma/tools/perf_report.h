// SPDX-License-Identifier: GPL-2.0
// urdma-perf's figures, computed as perftest computes them and printed in
// perftest's columns, with a JSON twin.
//
// Latency: the samples are the times between consecutive posts (halved for
// the ping-pong tests, WRITE and SEND, whose samples are round trips); all
// are sorted, the 2 largest dropped; t_typical is the median, t_max the
// largest sample kept plus one (perftest prints delta[n]), 99% and 99.9% the
// samples at ceil(n * p).  Bandwidth: the average over the first post to the
// last completion; the peak over every window from a post to a later
// signalled completion; MB = 2^20 bytes, or Gb = 10^9 bits with --report_gbits.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "perftest_exchange.h"

namespace urdma::tools::perf {

struct LatResult {
  std::uint64_t size = 0;
  std::uint64_t iters = 0;
  double t_min = 0, t_max = 0, t_typical = 0, t_avg = 0, t_stdev = 0, p99 = 0, p999 = 0;  // microseconds
};

// post_ns: the time of each post (at least 4).  halve: ping-pong round trips.
LatResult latency_stats(const std::vector<std::uint64_t>& post_ns, std::uint64_t size, bool halve);

// A signalled completion: it covers every WR up to and including `index`.
struct Completion {
  std::uint64_t index = 0;
  std::uint64_t ns = 0;
};

// Bandwidth of `iters` messages of `size` bytes; post_ns[i] is when WR i was
// posted; completions in order; the last covers WR iters-1.
perftest::BwReport bw_stats(std::uint64_t size, const std::vector<std::uint64_t>& post_ns,
                            const std::vector<Completion>& completions, bool gbits);
// A receiver's figures (no peak, as perftest's SEND server): first and last
// receive times.
perftest::BwReport bw_stats_receiver(std::uint64_t size, std::uint64_t iters, std::uint64_t first_ns,
                                     std::uint64_t last_ns, bool gbits);

std::string lat_header();
std::string lat_line(const LatResult& r);
std::string bw_header(bool gbits);
std::string bw_line(const perftest::BwReport& r, bool gbits);
extern const char* const kRule;  // perftest's line of dashes

nlohmann::json lat_json(const LatResult& r);
nlohmann::json bw_json(const perftest::BwReport& r, bool gbits);

}  // namespace urdma::tools::perf
