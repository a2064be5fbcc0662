// SPDX-License-Identifier: GPL-2.0
// Rubble mode on the head (not implemented yet in this commit).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "chain.h"
#include "identity.h"
#include "options.h"
#include "rubble.pb.h"
#include "sequencer.h"
#include "store.h"

namespace fastpath::rubble {

class RubbleHead {
 public:
  RubbleHead(const NodeOptions&, const Identity&, AckTracker&) {
    throw std::runtime_error("--mode rubble is not implemented yet: use --mode baseline");
  }
  std::uint64_t slot_size() const { return 0; }
  void check_hello_reply(const wire::ChainAck&) const {}
  std::unique_ptr<Store> open_store(const std::string&, const StoreOptions&, Sequencer&) { return nullptr; }
  void on_releases(const wire::ChainAck&) {}
  void fill_stats(wire::StatsReply*) const {}
};

}  // namespace fastpath::rubble
