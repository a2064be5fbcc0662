// SPDX-License-Identifier: GPL-2.0
// The successor side of a node, for the node's whole life (the head's and a
// replica's alike): where the entries it has applied go next, and the log
// that lets it resend them.
//
// Every batch the node applies goes through send().  With a successor, the
// batch is kept in the log until the tail acknowledges its entries (the
// cumulative ack from the successor), so that when the chain re-forms the
// node can resend what its new successor lacks: connect() learns the
// successor's last applied entry from the Hello reply and a pump thread
// resends the log from there before the stream goes live.  Without a
// successor the node is the tail: send() acknowledges each batch at once.
// With a joining successor the node is still the tail (it acknowledges
// itself) and also streams to the newcomer, which starts from a snapshot;
// finish_join() hands the tail over: from then on acks come from the
// newcomer.
//
// A lost successor is not fatal: batches keep going into the log until
// connect() (a new view, or a reconnect to the same node) or disconnect()
// (this node becomes the tail).
//
// Threading: send(), send_view(), connect(), disconnect(), finish_join() and
// shutdown() may be called from any thread (connect/disconnect/shutdown are
// serialised among themselves).  on_ack runs on the thread of send() (self
// acks), of connect() (the acknowledgement in the successor's Hello reply)
// or on the link's reader thread; on_lost on the reader thread.  Neither may
// call connect(), disconnect() or shutdown().
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "downstream.h"
#include "rubble.pb.h"

namespace fastpath::rubble {

class Forwarder {
 public:
  using Batch = std::shared_ptr<const wire::ChainBatch>;
  using AckFn = std::function<void(const wire::ChainAck&)>;
  using LostFn = std::function<void(const std::string&)>;
  using WriteFn = std::function<bool(const wire::ChainBatch&)>;
  // Baseline state transfer to a joining successor: writes snapshot batches
  // with write (false once the link broke), sets seq to the last entry the
  // snapshot contains.  "" or the error.
  using SnapshotFn = std::function<std::string(const WriteFn& write, std::uint64_t* seq)>;

  Forwarder(std::chrono::milliseconds timeout, AckFn on_ack, LostFn on_lost);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // No successor, empty log; the last entry so far is last_seq.
  void reset(std::uint64_t last_seq);
  // Streams to addr from now on: sends hello (its head_seq set to the last
  // entry so far) and resends what the successor lacks, or, for a joining
  // successor, the snapshot (baseline: snapshot set) or nothing (rubble: the
  // head sends it one).  "" or why not; then entries wait in the log.
  std::string connect(const std::string& addr, wire::Hello hello, bool joining, SnapshotFn snapshot,
                      wire::ChainAck* reply);
  // No successor from now on: this node is the tail; everything sent so far
  // is acknowledged now.
  void disconnect();
  // This node left the chain: no stream, no acknowledgement, ever.
  void shutdown();
  // The joining successor becomes the tail: view goes to it in-band, after
  // every entry sent so far, and its acks count from now on.
  void finish_join(const wire::View& view);

  void send(Batch batch);
  void send_view(const wire::View& view);

  struct Status {
    std::string successor;
    bool connected = false;
    bool joining = false;
    std::uint64_t last = 0;   // last entry sent through
    std::uint64_t acked = 0;  // last entry acknowledged (by the tail, or by this node as tail)
    std::uint64_t log_entries = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t batches_sent = 0;
    std::uint64_t entries_sent = 0;
  };
  Status status() const;
  // Slots of the INSTALL_SST entries in the log after seq (files on their way
  // to a replica that has applied up to seq).
  std::vector<std::uint32_t> installs_after(std::uint64_t seq) const;

 private:
  struct Item {
    std::uint64_t id = 0;
    std::uint64_t first = 0, last = 0;  // entries; a view-only item: last = the entry it follows
    bool view_only = false;
    Batch batch;
  };

  void close_link();
  void self_ack(std::uint64_t seq);
  void pump(std::uint64_t gen, SnapshotFn snapshot);
  bool collect(wire::ChainBatch* out);  // log_mu_ held
  bool write_link(std::uint64_t gen, const wire::ChainBatch& batch);
  void on_link_ack(std::uint64_t gen, const wire::ChainAck& ack);
  void on_link_end(std::uint64_t gen, const std::string& why);
  void push_locked(Batch batch, std::uint64_t first, std::uint64_t last, bool view_only);
  void trim_locked();
  std::uint64_t first_logged_locked() const;

  const std::chrono::milliseconds timeout_;
  const AckFn on_ack_;
  const LostFn on_lost_;

  std::mutex conn_mu_;  // serialises connect, disconnect, shutdown
  std::thread pump_;    // guarded by conn_mu_

  std::mutex write_mu_;  // one writer on the link at a time; taken while log_mu_ is held (never the reverse)

  mutable std::mutex log_mu_;  // guards everything below
  std::string successor_;      // "" = this node is the tail
  bool joining_ = false;
  bool shut_ = false;
  std::shared_ptr<Downstream> link_;
  std::uint64_t gen_ = 0;  // link generation: callbacks of an old link are ignored
  bool live_ = false;      // caught up: send() writes directly
  std::deque<Item> log_;
  std::uint64_t next_id_ = 1;
  std::uint64_t cursor_ = 0;      // pump: next item id to send
  std::uint64_t skip_below_ = 0;  // pump: entries below this seq are not sent
  std::uint64_t last_ = 0;
  std::uint64_t acked_ = 0;  // from the successor
  void count_sent(const wire::ChainBatch& batch);

  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> batches_sent_{0};
  std::atomic<std::uint64_t> entries_sent_{0};
};

}  // namespace fastpath::rubble
