// SPDX-License-Identifier: GPL-2.0
#include "options.h"

#include "identity.h"

namespace fastpath::rubble {

namespace {

std::string validate_links(const NodeOptions& o) {
  if (auto e = check_address(o.listen, "--listen"); !e.empty()) return e;
  if (o.role == Role::kTail && !o.next.empty()) return "--next is for the head and middles: a tail has no successor";
  if (o.role != Role::kTail && o.next.empty())
    return std::string("a ") + to_string(o.role) + " needs --next ADDR, the address of its successor";
  if (!o.next.empty()) return check_address(o.next, "--next");
  return "";
}

std::string validate_pools(const NodeOptions& o) {
  if (o.mode == Mode::kBaseline) {
    if (!o.pool.empty() || !o.replica_pools.empty() || !o.find_pools.empty())
      return "--pool, --replica-pool and --find-pools are for --mode rubble; baseline replicas keep their own SSTs";
    return "";
  }
  if (o.role == Role::kHead) {
    if (o.replica_pools.empty())
      return "a rubble head needs one --replica-pool PATH per replica (in chain order) to write SSTs into";
    if (!o.pool.empty()) return "--pool is for replicas; the head writes into the --replica-pool paths";
    return "";
  }
  if (o.pool.empty()) return "a rubble replica needs --pool PATH, the file or block device that holds its SST slots";
  if (!o.replica_pools.empty()) return "--replica-pool is for the head";
  return "";
}

}  // namespace

std::string validate(const NodeOptions& o) {
  if (auto e = validate_links(o); !e.empty()) return e;
  if (o.db.empty()) return "--db DIR is required";
  if (!o.chain_id.empty())
    if (auto e = check_chain_id(o.chain_id); !e.empty()) return "--chain-id: " + e;
  if (o.sst_size < (64 << 10) || o.sst_size % 4096 != 0)
    return "--sst-size must be at least 64 KiB and a multiple of 4 KiB";
  if (o.connect_timeout.count() <= 0 || o.ack_timeout.count() <= 0) return "timeouts must be positive";
  if (o.max_inflight < 1 || o.max_inflight > 1024) return "--max-inflight must be 1 to 1024";
  return validate_pools(o);
}

}  // namespace fastpath::rubble
