// SPDX-License-Identifier: GPL-2.0
// The head of a chain: orders writes, applies them, hands them to the node's
// Forwarder (which streams them to the successor and keeps them until the
// tail acknowledges them) and answers a client once the tail has
// acknowledged the write.
//
// A write holds no thread while it waits: it completes through a callback
// once the tail's cumulative acknowledgement covers its entry (or fails when
// the chain breaks, or times out after --ack-timeout).
//
// Batching: the sender thread ships at most --max-inflight batches that the
// tail has not acknowledged yet (the SendWindow); entries that arrive
// meanwhile leave together in the next batch.  Under load, one replication
// message and one acknowledgement per hop carry many client writes.
//
// Baseline mode: each write is one key-value entry; the sender thread applies
// each batch to the head's RocksDB as one WriteBatch, then ships it.
// Rubble mode: a writer thread applies the writes that queued while the
// window was closed to RocksDB as one WriteBatch (one WAL record); the head's
// file system mirror turns the resulting WAL/MANIFEST/SST operations into
// entries, and each write of the group waits for the entry that carried the
// group's WAL record.
//
// A head starts afresh (start: it opens its database and forms the chain
// with the successor given by --next) or takes over from a failed head (a
// replica promoted by a new view: its entries go on from its last applied
// one, and in rubble mode it reopens its database as primary first).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "chain.h"
#include "forwarder.h"
#include "identity.h"
#include "options.h"
#include "rubble.pb.h"
#include "sequencer.h"
#include "slot_fs.h"
#include "store.h"

namespace fastpath::rubble {

class RubbleHead;
struct ReplicaPool;

// What a replica brings when it takes over as head.
struct Takeover {
  std::uint64_t applied = 0;             // its last applied entry: the new head goes on from there
  std::unique_ptr<Store> store;          // baseline: its database
  std::vector<ReplicaPool> pools;        // rubble: its successors' pools and the slots they hold
  std::map<std::string, SlotFile> live;  // rubble: the SSTs it copied out of its slots
};

class Head {
 public:
  Head(NodeOptions options, Identity identity, Forwarder& forwarder);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  // A fresh head: opens the database and forms the chain with --next.
  // Returns the successor's Hello reply (the members after the head).
  // Throws std::runtime_error with the cause and the fix.
  wire::ChainAck start(const std::string& self);
  // A replica taking over.  Throws std::runtime_error.
  void take_over(Takeover t);
  // Every waiting and later write fails with why.
  void stop(const std::string& why);

  // Called exactly once with the write's outcome (reply is filled first),
  // maybe before put or del returns.
  using Done = std::function<void(grpc::Status)>;
  void put(const std::string& key, const std::string& value, wire::WriteReply* reply, Done done);
  void del(const std::string& key, wire::WriteReply* reply, Done done);
  // Several puts and deletes, applied in order and answered together (see
  // WriteRequest in rubble.proto).  reply->seq covers the last of them.
  void write_many(std::vector<wire::KvOp> ops, wire::WriteReply* reply, Done done);
  void on_ack(const wire::ChainAck& ack);
  void on_view(const wire::View& view);
  // Rubble: what each replica reports holding (see RubbleHead::reconcile).
  std::uint32_t reconcile(const std::vector<ReplicaPool>& reports);
  grpc::Status add_replica(const wire::Member& member, wire::AddReplicaReply* reply);
  void fill_stats(wire::StatsReply* reply) const;
  std::uint64_t applied() const;
  std::uint64_t acked() const { return acks_.acked(); }
  bool accepting() const { return ready_.load() && acks_.failure().empty(); }

 private:
  struct Pending {
    std::vector<wire::KvOp> ops;  // one client call: applied in order, answered together
    wire::WriteReply* reply;
    Done done;
    std::chrono::steady_clock::time_point deadline;
  };

  void write(std::vector<wire::KvOp> ops, wire::WriteReply* reply, Done done);
  void complete_when_acked(std::uint64_t seq, Pending p);
  grpc::Status timeout_status(std::uint64_t seq) const;
  grpc::Status wait_ack(std::uint64_t seq, wire::WriteReply* reply);
  void sender_loop();
  void writer_loop();
  void ship_now();
  void expire_queued();
  bool ship(std::vector<wire::Entry>& entries);

  const NodeOptions options_;
  const Identity identity_;
  Forwarder& forwarder_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Sequencer> sequencer_;
  AckTracker acks_;
  SendWindow window_;
  std::unique_ptr<RubbleHead> rubble_;  // rubble mode only
  std::mutex ship_mu_;                  // one thread takes and ships a batch at a time (so batches leave in order)
  std::thread sender_;

  // Rubble: client writes waiting for the writer thread.
  std::mutex writes_mu_;
  std::condition_variable writes_cv_;
  std::deque<Pending> writes_;  // guarded by writes_mu_
  bool writes_closed_ = false;  // guarded by writes_mu_
  std::thread writer_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace fastpath::rubble
