// SPDX-License-Identifier: GPL-2.0
// A small client of etcd's v3 gRPC API (etcd.proto), for what rubble-ctl
// agrees on through etcd: a key read with its revisions, a put guarded by a
// revision (compare-and-swap), leases kept alive by a thread, and a leader
// campaign on a leased key.
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

#include "etcd.grpc.pb.h"

namespace fastpath::rubble::etcd {

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

 private:
  Client& client_;
  const std::string key_;
  const std::string name_;
  const std::chrono::seconds ttl_;
  Lease lease_;
};

}  // namespace fastpath::rubble::etcd
