// SPDX-License-Identifier: GPL-2.0-only
// dfuse-leased's gRPC service around the LeaseTable (lease_table.h): one
// bidirectional stream per node session (proto/lease.proto). Usable
// in-process (tests) and by the dfuse-leased binary.
//
// Threads: gRPC runs one handler per stream; it writes the stream's outbox
// while a reader thread of its own feeds the node's messages to the table. A
// timer thread expires nodes, ends the grace period and sends the revokes a
// minimum hold kept back; a request that starts a hold wakes it early. The
// table and the session map are guarded by mu_; each outbox has its own lock,
// so a node that stops reading blocks nobody else. Lock order: mu_, then
// timer_mu_.
//
// With ServerOptions::etcd the service is one of several (etcd_store.h): a
// role thread campaigns in etcd; while it stands by, every node that
// registers is redirected to the leader. On winning it takes the next epoch,
// restores every lease recorded in etcd and serves. A commit thread writes
// the files whose holders changed to etcd; a grant (and whatever follows it
// for any node) goes out only once the record that holds it is committed.
// When etcd does not answer, grants wait and the nodes are told; heartbeats
// are still answered while this service's etcd lease lives, so nodes keep
// their leases; when the lease lapses or a commit finds another leader, the
// service steps down: it closes every stream and stands by again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

#include "lease_table.h"

namespace grpc {
class Server;
}

namespace dfuse::leased {

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // port 0: any free port
  std::chrono::milliseconds ttl{5000};
  std::chrono::milliseconds grace{-1};                   // < 0: 2 x ttl
  std::chrono::milliseconds min_hold = kDefaultMinHold;  // lease_table.h rule 8; 0: off
  std::filesystem::path state_dir;
  bool verbose = false;         // log every grant, revoke, ack and registration
  std::ostream* log = nullptr;  // default std::cerr
  // Replicated: etcd HOST:PORT ("" : one service, epoch in state_dir).
  std::string etcd;
  std::string etcd_prefix = "/dfuse-leased";
  std::string advertise;             // address nodes use for this service ("": the bound one)
  std::chrono::seconds etcd_ttl{2};  // of the leader's etcd lease: a dead leader is replaced after it
  std::chrono::milliseconds campaign_every{100};
};

class EtcdStore;

class LeaseServer {
 public:
  explicit LeaseServer(ServerOptions options);
  ~LeaseServer();
  LeaseServer(const LeaseServer&) = delete;
  LeaseServer& operator=(const LeaseServer&) = delete;

  // Bumps the epoch in the state directory and starts serving (with etcd:
  // checks that etcd answers and starts campaigning). Returns the bound
  // address (host:port). Throws std::runtime_error with the cause and what
  // to do (state directory, address in use, etcd unreachable).
  std::string start();
  // Closes every stream and stops. Idempotent.
  void stop();

  [[nodiscard]] uint32_t epoch() const;  // 0 while standing by
  [[nodiscard]] bool restarted() const { return restarted_; }
  [[nodiscard]] std::chrono::milliseconds grace() const;
  // Whether this service leads (always, without etcd), and who does.
  [[nodiscard]] bool leading() const;
  [[nodiscard]] std::string leader() const;

  class Impl;  // the gRPC service; public only so server.cpp's helpers can name it

 private:
  [[nodiscard]] TableOptions table_options() const;
  void timer_loop();
  void role_loop();                             // with etcd: campaign, take over, watch the lead
  void commit_loop();                           // with etcd: write changed records, release grants
  bool sleep_for(std::chrono::milliseconds d);  // false when stopping
  // Makes the timer tick by `t` at the latest. Called under Impl's mu_.
  void wake_timer(TimePoint t);

  ServerOptions options_;
  bool restarted_ = false;
  std::string advertise_;  // with etcd: this service's address in the leader key
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<EtcdStore> store_;  // with etcd; used by role_ and commit_ threads only
  std::thread timer_;
  std::thread role_;
  std::thread commit_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;                 // guarded by timer_mu_
  TimePoint wake_at_ = TimePoint::max();  // guarded by timer_mu_: the timer's next tick
};

}  // namespace dfuse::leased
