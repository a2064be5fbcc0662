// SPDX-License-Identifier: GPL-2.0
// What a rubble-node is told on its command line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "chain.h"

namespace fastpath::rubble {

struct NodeOptions {
  Role role = Role::kTail;
  Mode mode = Mode::kBaseline;
  std::string listen;                      // HOST:PORT (port 0: any free port)
  std::string next;                        // successor, HOST:PORT (head and middle)
  std::string db;                          // data directory
  std::string chain_id;                    // optional; the head makes one up when empty
  std::string ready_file;                  // optional: written with the bound address once serving
  std::string pool;                        // rubble replica: its SST pool (file or block device)
  std::uint32_t pool_slots = 0;            // rubble replica: slots (0: 64 for a new file, else all that fit)
  std::vector<std::string> replica_pools;  // rubble head: each replica's pool, in chain order
  std::vector<std::string> find_pools;     // rubble: globs where other replicas' pools are reached (by pool id)
  std::uint64_t sst_size = 8 << 20;        // SST target size = memtable size; slot = this + 1 MiB
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds ack_timeout{10000};
  std::chrono::microseconds catch_up_interval{50000};  // rubble replicas: at most one catch-up per interval
  bool warm_cache = true;          // rubble tail: read each SST it opens while serving reads (warmer.h)
  std::uint32_t max_inflight = 1;  // head: batches on their way down the chain before the next one waits
};

// "" when the options are consistent, else the first problem and its fix.
std::string validate(const NodeOptions& o);

}  // namespace fastpath::rubble
