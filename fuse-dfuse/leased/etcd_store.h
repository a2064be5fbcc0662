// SPDX-License-Identifier: GPL-2.0-only
// Where a replicated dfuse-leased keeps its decisions: etcd (tools/etcd).
//
// Keys under the prefix (--etcd-prefix, default /dfuse-leased):
//   PREFIX/leader       the election key: the address of the leading service,
//                       attached to its etcd lease (gone when it dies)
//   PREFIX/epoch        the epoch of the newest leader, decimal; every leader
//                       takes the next one, so its generations
//                       (epoch << 32 | counter) exceed every earlier grant
//   PREFIX/files/FILE   who holds a lease on FILE (FileRecord, lease.proto)
//
// Only the leader writes, and every write is one transaction guarded twice:
// the leader key still has the create revision of this leader's campaign
// (its etcd lease has not expired: the key would be gone) and the epoch key
// still has the revision this leader wrote (nobody took over since). A
// service that believes it leads but does not commits nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fastpath/etcd.h"
#include "lease_table.h"

namespace dfuse::leased {

struct StoreOptions {
  std::string endpoint;  // etcd HOST:PORT
  std::string prefix = "/dfuse-leased";
  std::string name;  // this service's address for the nodes (the leader key's value)
  std::chrono::seconds ttl{2};
};

// One file's holders, as written: node -> lease. Empty: the key is deleted.
using FileHolders = std::map<NodeId, Lease>;

// Thread-safe; the campaign (campaign(), take_over(), resign()) belongs to
// one thread.
class EtcdStore {
 public:
  explicit EtcdStore(StoreOptions options);

  const std::string& endpoint() const { return client_.endpoint(); }
  const StoreOptions& options() const { return options_; }
  // "" or why etcd does not answer (names the endpoint and what to do).
  std::string check();
  // One campaign attempt; *leader is the leading service's address ("" none).
  std::string campaign(bool* leading, std::string* leader);
  // After a won campaign: takes the next epoch and reads every recorded
  // lease (node, lease). Fails if the lead was lost meanwhile.
  std::string take_over(uint32_t* epoch, std::vector<std::pair<NodeId, Lease>>* leases);
  // The next epoch while leading (the generation counter ran out).
  std::string next_epoch(uint32_t* epoch);

  enum class Commit { kDone, kDeposed, kUnreachable };
  // Writes the files' records in transactions of at most 100 files, each
  // guarded by this lead. kDeposed: the guard failed (another service leads,
  // or this one's etcd lease expired); *why says which.
  Commit commit(const std::map<FileId, FileHolders>& files, std::string* why);
  // This lead's etcd lease is alive as far as this process knows.
  bool alive() const { return election_.alive(); }
  // Gives up the lead now (the key vanishes; a standby takes over).
  void resign() { election_.resign(); }

 private:
  std::string key(const std::string& what) const { return options_.prefix + "/" + what; }
  std::vector<fastpath::etcd::Condition> guard() const;

  StoreOptions options_;
  fastpath::etcd::Client client_;
  fastpath::etcd::Election election_;  // campaign(), resign(): one thread (the service's role thread)
  mutable std::mutex mu_;              // guards the three below (commit() runs on another thread)
  std::int64_t leader_revision_ = 0;   // create revision of our leader key, while leading
  std::int64_t epoch_revision_ = 0;    // mod revision of the epoch key we wrote
  uint32_t epoch_ = 0;
};

}  // namespace dfuse::leased
