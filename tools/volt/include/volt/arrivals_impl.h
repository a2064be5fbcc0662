// SPDX-License-Identifier: GPL-2.0
// check_fifo (arrivals.h).
#pragma once

#include <algorithm>
#include <limits>

namespace volt {

template <class F>
FifoResult check_fifo(const std::vector<Arrival>& arrivals, const std::vector<ClientGrants>& clients, F is_acquire) {
  FifoResult r;
  std::unordered_map<std::uint32_t, std::size_t> by_qpn;
  for (std::size_t c = 0; c < clients.size(); ++c) by_qpn[clients[c].target_qpn] = c;
  // Each client's acquire arrivals, in order: (arrival index, lock).
  std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> arr(clients.size());
  for (std::size_t i = 0; i < arrivals.size(); ++i) {
    std::uint64_t lock = 0;
    auto it = by_qpn.find(arrivals[i].qpn);
    if (it != by_qpn.end() && is_acquire(arrivals[i], lock)) arr[it->second].push_back({i, lock});
  }
  struct G {
    std::uint64_t seq, arrival;
  };
  std::unordered_map<std::uint64_t, std::vector<G>> per_lock;
  for (std::size_t c = 0; c < clients.size(); ++c) {
    const ClientGrants& g = clients[c];
    if (arr[c].size() != g.seq.size()) {
      r.note = "client " + std::to_string(c) + ": " + std::to_string(arr[c].size()) + " acquire requests arrived, " +
               std::to_string(g.seq.size()) + " grants";
      return r;
    }
    for (std::size_t k = 0; k < g.seq.size(); ++k) {
      if (arr[c][k].second != g.lock[k]) {
        r.note = "client " + std::to_string(c) + ": request " + std::to_string(k) + " was for another lock";
        return r;
      }
      per_lock[g.lock[k]].push_back({g.seq[k], arr[c][k].first});
    }
  }
  for (auto& [lock, v] : per_lock) {
    std::sort(v.begin(), v.end(), [](const G& a, const G& b) { return a.seq < b.seq; });
    std::uint64_t min_later = std::numeric_limits<std::uint64_t>::max();
    for (auto it = v.rbegin(); it != v.rend(); ++it) {
      if (it->arrival > min_later) ++r.overtakes;
      min_later = std::min(min_later, it->arrival);
    }
    r.grants += v.size();
  }
  r.checked = true;
  return r;
}

}  // namespace volt
