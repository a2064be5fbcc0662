// SPDX-License-Identifier: GPL-2.0
// A small client of etcd's v3 gRPC API (etcd.proto), for what rubble-ctl and
// dfuse-leased agree on through etcd: a key (or every key under a prefix)
// read with its revisions, a put guarded by a revision (compare-and-swap),
// a transaction of puts and deletes guarded by several revisions, leases
// kept alive by a thread, and a leader campaign on a leased key.
//
// Every call returns "" or why not; an etcd that does not answer gives an
// error that names its address and says that --etcd must point to a running
// etcd.  Revisions are etcd's: a key's mod_revision is the store revision
// of its last change, its create_revision that of its creation; a missing
// key has 0 for both, so "expected revision 0" means "only if absent".
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "etcd.grpc.pb.h"

namespace fastpath::etcd {

// A key's value and revisions.
struct KeyValue {
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;  // 0: none
};

// Which revision of the key a guarded put compares.
enum class Guard { kModRevision, kCreateRevision };

// What a guarded put did.
struct PutResult {
  bool done = false;          // the guard held and the key was put
  bool found = false;         // not done: whether the key exists now...
  KeyValue current;           // ... and what it holds
  std::int64_t revision = 0;  // done: the key's new mod_revision
};

// One condition of a transaction: the key's revision (or lease) named by
// target equals value.  A missing key has 0 for all of them.
struct Condition {
  enum class Target { kModRevision, kCreateRevision, kLease };
  std::string key;
  Target target = Target::kModRevision;
  std::int64_t value = 0;
};

// One write of a transaction: a put of value (attached to lease, 0: none),
// or, when erase, a delete of the key.
struct Write {
  std::string key;
  std::string value;
  bool erase = false;
  std::int64_t lease = 0;
};

class Client {
 public:
  // endpoint: HOST:PORT of an etcd v3 server (its client URL; a leading
  // "http://" is accepted, TLS is not supported).  No connection is made
  // yet.
  explicit Client(std::string endpoint, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  const std::string& endpoint() const { return endpoint_; }

  // Whether etcd answers (a read of an unlikely key).  "" or why not.
  std::string check();
  // Reads key: *found false when it does not exist.
  std::string get(const std::string& key, KeyValue* kv, bool* found);
  // Puts value at key (attached to lease, 0: none) if the key's revision
  // named by guard is still expected (0: only if the key does not exist);
  // otherwise leaves it and reports what it holds.  One transaction.
  std::string put_if(const std::string& key, const std::string& value, Guard guard, std::int64_t expected,
                     PutResult* result, std::int64_t lease = 0);
  // Every key that starts with prefix, in key order (one read).
  std::string get_prefix(const std::string& prefix, std::vector<std::pair<std::string, KeyValue>>* kvs);
  // If every condition holds, applies every write, as one revision of the
  // store: *done says whether it did, *revision is that revision (the
  // store's revision either way).  etcd takes at most 128 writes in one
  // transaction (its --max-txn-ops).
  std::string txn(const std::vector<Condition>& conditions, const std::vector<Write>& writes, bool* done,
                  std::int64_t* revision);
  // A lease of ttl (etcd may grant more: its minimum is about 2 s).
  std::string grant(std::chrono::seconds ttl, std::int64_t* id, std::chrono::seconds* granted);
  std::string revoke(std::int64_t id);

  etcdserverpb::Lease::Stub& lease_stub() { return *lease_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // The error for a failed call: unreachable, or what etcd said.
  std::string failed(const std::string& what, const grpc::Status& st) const;

 private:
  void set_deadline(grpc::ClientContext& ctx) const;

  std::string endpoint_;
  std::string invalid_;  // why endpoint_ cannot be used ("" if it can)
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
};

// A lease, kept alive by a thread (a keep-alive every third of its TTL on
// one stream, reopened when it breaks) until revoke() or destruction, which
// revokes it (its keys vanish at once rather than after the TTL).
class Lease {
 public:
  explicit Lease(Client& client);
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  // Grants a lease of ttl and starts keeping it alive.  A lease granted
  // before is revoked first.
  std::string grant(std::chrono::seconds ttl);
  // Stops the keep-alives and revokes the lease (errors ignored: it then
  // expires after its TTL).
  void revoke();
  std::int64_t id() const;
  // Granted and, as far as this process knows, not expired: etcd renewed it
  // less than its TTL ago.  A lease that expired stays expired (grant a new
  // one).
  bool alive() const;

 private:
  void keep_alive_loop(std::int64_t id, std::chrono::seconds ttl);
  void stop_thread();

  Client& client_;
  mutable std::mutex mu_;
  std::int64_t id_ = 0;                              // guarded by mu_
  std::chrono::seconds ttl_{0};                      // guarded by mu_
  std::chrono::steady_clock::time_point renewed_;    // guarded by mu_
  bool expired_ = false;                             // guarded by mu_
  bool stop_ = false;                                // guarded by mu_
  std::shared_ptr<grpc::ClientContext> stream_ctx_;  // guarded by mu_: cancelled to stop
  std::condition_variable cv_;
  std::thread thread_;
};

// A leader campaign: the leader is whoever created key, attached to its
// lease; it leads while the key exists with that lease.  The key vanishes
// when the leader resigns (its lease is revoked) or dies (its lease
// expires); then the next campaign() of another candidate wins.
class Election {
 public:
  // name: what the key holds while this candidate leads (who leads, for
  // the others' messages).
  Election(Client& client, std::string key, std::string name, std::chrono::seconds ttl);
  ~Election();
  Election(const Election&) = delete;
  Election& operator=(const Election&) = delete;

  // One attempt (one transaction): creates the key if it is absent; then
  // *leading says whether this candidate holds it and *leader names who
  // does ("" if nobody: cannot happen after a successful call).  A lost
  // lease is replaced by a new one first.
  std::string campaign(bool* leading, std::string* leader);
  // Gives up the lead (revokes the lease: the key vanishes now).
  void resign();
  const std::string& key() const { return key_; }
  const std::string& name() const { return name_; }
  // While leading (after a campaign() that said so): the create revision of
  // the key, which stays the same exactly as long as this lead lasts, and
  // the lease it is attached to.  Transactions guard on them.
  std::int64_t created_revision() const { return created_; }
  std::int64_t lease_id() const { return lease_.id(); }
  // The lease is alive as far as this process knows (see Lease::alive()).
  bool alive() const { return lease_.alive(); }

 private:
  Client& client_;
  const std::string key_;
  const std::string name_;
  const std::chrono::seconds ttl_;
  Lease lease_;
  std::int64_t created_ = 0;
};

}  // namespace fastpath::etcd
