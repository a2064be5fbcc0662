// SPDX-License-Identifier: GPL-2.0
// A middle or tail of the chain.  It accepts one replication stream at a
// time from its predecessor, applies the entries in sequence order and
// hands them to the node's Forwarder, which passes them on (middle) or
// acknowledges them (tail); the tail serves reads.
//
// Baseline mode: entries are key-value writes applied to the node's own
// RocksDB, which flushes and compacts as usual.
// Rubble mode: entries are the head's file operations; see rubble_replica.h.
//
// Re-forming: the stream from the predecessor may end (it failed) and a new
// one start (from the failed node's predecessor); the node keeps its state
// and its successor, and the new predecessor resends from the entry after
// this node's last applied one (the Hello reply says which).  A stream from
// a predecessor with a newer view, or from the same predecessor, replaces
// the current one.  The node changes role (tail, middle, head) only when the
// node above it (Node) says so.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "chain.h"
#include "forwarder.h"
#include "identity.h"
#include "link.h"
#include "options.h"
#include "rubble.grpc.pb.h"
#include "store.h"

namespace fastpath::rubble {

class RubbleReplica;
class Session;

class Replica {
 public:
  // What the replica asks of its node.
  struct Hooks {
    std::function<wire::View()> view;                     // the node's current view
    std::function<void(const wire::View&)> adopt_view;    // from a Hello
    std::function<void(const wire::View&)> in_band_view;  // from the stream, after the entries before it
  };

  Replica(NodeOptions options, std::optional<Identity> identity, Forwarder& forwarder, Hooks hooks);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Opens the store or pool and, for a middle, checks that the successor is
  // reachable.  Throws std::runtime_error with the cause and the fix.
  void start();
  // The address the server is bound to.
  void set_address(std::string address) { address_ = std::move(address); }

  // One replication stream from a predecessor, on a chain link connection;
  // returns when the stream ends.
  void replicate(LinkSocket& link);
  grpc::Status get(const std::string& key, wire::GetReply* reply);
  grpc::Status scan(const std::string& start, std::size_t limit, wire::ScanReply* reply);
  void fill_stats(wire::StatsReply* reply);
  void fill_state(wire::NodeState* state);

  // An acknowledgement from the Forwarder (the successor's, or this node's
  // own as tail): goes up to the predecessor with this node's slot releases.
  void on_downstream_ack(const wire::ChainAck& ack);

  // Role changes, by the node.
  std::string become_tail();  // serve reads (a rubble replica prepares first)
  void stop_serving();
  bool serving() const { return serving_.load(); }
  // A joining node becomes the tail only on its predecessor's word: the
  // in-band view that ends its join (after every entry the old tail
  // acknowledged), or, if that predecessor failed, once it has applied
  // everything its new predecessor had when it connected.
  bool awaiting_handover() const { return awaiting_handover_.load(); }
  void handed_over() { awaiting_handover_ = false; }
  // Ends the predecessor's stream and refuses new ones (the node left the
  // chain or takes over as head).
  void end_upstream(const std::string& why);
  std::uint64_t applied() const { return applied_seq_.load(); }
  bool synced() const;
  // Baseline: a snapshot of the database for a joining successor.
  Forwarder::SnapshotFn snapshot_source();
  // Taking over as head.
  std::unique_ptr<Store> take_store() { return std::move(store_); }
  RubbleReplica* rubble() { return rubble_.get(); }
  wire::Member self_member() const;

 private:
  std::string run_session(Session& s);
  std::string begin_session(Session& s, const wire::Hello& hello);
  std::string connect_successor(const wire::Hello& hello, wire::ChainAck* reply);
  std::string adopt_chain(const wire::Hello& hello);
  std::string on_batch(Session& s, const std::shared_ptr<wire::ChainBatch>& batch);
  std::string on_snapshot(Session& s, const wire::Snapshot& snap);
  std::string apply_kv(const wire::ChainBatch& batch);
  void add_releases(wire::ChainAck& ack);
  void send_up(wire::ChainAck ack);
  void tick_loop();
  LocalIdentity local_identity() const;
  std::string who() const;
  std::string refuse_reads() const;

  const NodeOptions options_;
  Forwarder& forwarder_;
  const Hooks hooks_;
  mutable std::mutex identity_mu_;
  std::optional<Identity> identity_;  // guarded by identity_mu_
  std::unique_ptr<Store> store_;      // baseline
  std::unique_ptr<RubbleReplica> rubble_;
  std::string address_;

  std::timed_mutex session_mu_;  // held for the whole of one replication stream
  std::mutex current_mu_;        // guards the three below
  Session* current_ = nullptr;
  std::uint64_t current_epoch_ = 0;
  std::string current_sender_;
  bool closed_ = false;  // no stream accepted any more

  std::atomic<bool> serving_{false};
  std::atomic<bool> synced_{true};  // baseline: false while a joining node waits for its snapshot
  std::atomic<bool> awaiting_handover_{false};
  std::atomic<std::uint64_t> serve_after_{0};  // see awaiting_handover(); 0: none
  std::atomic<std::uint32_t> position_{0};
  std::atomic<std::uint64_t> applied_seq_{0};
  std::atomic<std::uint64_t> acked_seq_{0};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> ack_bytes_sent_{0};

  // Rubble: catch-ups and slot releases, every 100 ms or when woken.
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool tick_stop_ = false;  // guarded by tick_mu_
  bool tick_wake_ = false;  // guarded by tick_mu_
  std::thread ticker_;
};

}  // namespace fastpath::rubble
