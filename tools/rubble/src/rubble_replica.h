// SPDX-License-Identifier: GPL-2.0
// Rubble mode on a replica (not implemented yet in this commit).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.h"
#include "rubble.pb.h"

namespace fastpath::rubble {

class RubbleReplica {
 public:
  explicit RubbleReplica(const NodeOptions&) {
    throw std::runtime_error("--mode rubble is not implemented yet: use --mode baseline");
  }
  std::uint64_t slot_size() const { return 0; }
  std::string pool_id() const { return ""; }
  std::string reset(const std::string&) { return ""; }
  std::string apply(const wire::ChainBatch&, bool) { return ""; }
  std::string tick() { return ""; }
  std::vector<std::uint32_t> take_released() { return {}; }
  grpc::Status get(const std::string&, wire::GetReply*) { return grpc::Status::OK; }
  void fill_stats(wire::StatsReply*) {}
};

}  // namespace fastpath::rubble
