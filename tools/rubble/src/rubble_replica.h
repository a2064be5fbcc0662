// SPDX-License-Identifier: GPL-2.0
// Rubble mode on a replica (middle or tail).
//
// The replica never flushes or compacts.  It applies the head's file
// operations in order to a mirror directory (MANIFEST, WAL, CURRENT as
// regular files; SSTs as slots of its own pool).  The tail runs RocksDB as a
// secondary instance on that directory (DB::OpenAsSecondary) which sees the
// MANIFEST and the SSTs but not the WAL, and decodes the head's WAL as it
// arrives into an overlay of recent writes (overlay.h) that it reads before
// the secondary: it acknowledges a write as soon as it has applied it, and
// no write is inserted into a memtable a second time.  The secondary catches
// up (TryCatchUpWithPrimary: installs the head's version edits; RocksDB 7.8
// builds a new version of the LSM tree each time) only when the MANIFEST
// changed or the head deleted a file, and at most once per
// --catch-up-interval, on the replica's catch-up thread.
//
// A middle serves no reads and opens no secondary: it keeps the head's files
// (mirror and slots) and returns the slot of a deleted SST at once.  It opens
// the secondary when it becomes the tail.
//
// Layout of --db: CHAIN, mirror/ (the head's files), secondary/ (the
// secondary instance's own LOG), rocksdb/ (once it took over as head).
//
// Membership: a replica that becomes the tail (its successor failed, or it
// joined) rebuilds its overlay from the WAL files in its mirror, opens its
// secondary and catches up once before it serves reads; a tail that becomes
// a middle closes it.  A joining replica applies only the
// operations addressed to its pool (the head's snapshot) until the snapshot
// ends with its OPEN_DB; everything before that is passed over.  A replica
// taking over as head copies its mirror and its SSTs (from their slots) into
// a regular RocksDB directory and opens it as primary.
#pragma once

#include <grpcpp/grpcpp.h>
#include <rocksdb/env.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "options.h"
#include "overlay.h"
#include "pool.h"
#include "rubble.pb.h"
#include "slot_fs.h"
#include "store.h"
#include "warmer.h"

namespace fastpath::rubble {

class RubbleReplica {
 public:
  // Formats --pool.  Throws std::runtime_error with the cause and the fix.
  explicit RubbleReplica(const NodeOptions& options);
  ~RubbleReplica();

  std::uint64_t slot_size() const { return pool_->header().slot_size; }
  std::string pool_id() const { return pool_->header().pool_id; }

  // A (re)started head: drop the secondary, empty the mirror, free every
  // slot, and record the chain in the pool.  "" or why not.
  std::string reset(const std::string& chain_id);
  // Joining as a new tail: reset, then wait for the head's snapshot.
  std::string begin_join(const std::string& chain_id);
  // Applies the batch's file operations in order (the tail: also to its
  // overlay).
  std::string apply(const wire::ChainBatch& batch);
  // Serve reads: overlay from the mirrored WALs, the secondary opened and
  // caught up.  "" or why not.
  std::string become_tail();
  // No reads any more: drops the overlay, closes the secondary.
  void become_middle();
  // Has the head's database (a joining replica: its snapshot is complete).
  bool synced() const { return !awaiting_snapshot_.load(); }
  std::uint64_t applied() const { return applied_.load(); }
  std::vector<std::uint32_t> held_slots() const { return table_.held(); }
  void requeue_released(const std::vector<std::uint32_t>& slots) { table_.requeue_released(slots); }
  const std::string& pool_path() const { return pool_->path(); }
  // Taking over as head: closes the secondary and copies the mirror and
  // the live SSTs into dir (emptied first).  Returns the SSTs and their
  // slots.  Throws std::runtime_error.
  std::map<std::string, SlotFile> materialize(const std::string& dir);
  // Whether the MANIFEST changed or a file was deleted since the last
  // catch-up, and that catch-up began at least --catch-up-interval ago, and
  // at least 20 times as long ago as it lasted (a catch-up builds a new
  // version of the whole LSM tree: this keeps it under 5% of a core however
  // many SSTs there are).
  bool catch_up_due() const;
  // Catches up when due (the session's worker).
  std::string tick() { return catch_up_due() ? catch_up() : ""; }
  std::vector<std::uint32_t> take_released() { return table_.take_released(); }

  grpc::Status get(const std::string& key, wire::GetReply* reply);
  grpc::Status scan(const std::string& start, std::size_t limit, wire::ScanReply* reply);
  void fill_stats(wire::StatsReply* reply);

 private:
  std::string open_secondary();
  std::string catch_up();
  std::string reset_locked(const std::string& chain_id);
  void close_secondary();
  void settle_slots();

  const NodeOptions options_;
  const std::string mirror_dir_;
  const std::string secondary_dir_;
  std::unique_ptr<Pool> pool_;
  SlotTable table_;
  std::unique_ptr<MirrorApplier> applier_;
  std::mutex apply_mu_;            // one of apply / reset / become_tail at a time
  std::atomic<bool> tail_{false};  // decode the WAL into the overlay
  std::atomic<bool> awaiting_snapshot_{false};
  std::shared_ptr<SlotFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::shared_mutex db_mu_;                  // exclusive: open/close the secondary; shared: use it
  std::unique_ptr<Store> store_;             // guarded by db_mu_
  std::atomic<bool> secondary_open_{false};  // store_ != nullptr; changes under apply_mu_
  std::atomic<bool> db_open_{false};         // the head's database is in the mirror (OPEN_DB applied)
  std::mutex catch_up_mu_;                   // one TryCatchUpWithPrimary at a time
  std::atomic<std::chrono::steady_clock::rep> last_catch_up_{0};  // steady_clock ticks: when the last one began
  std::atomic<std::chrono::steady_clock::rep> catch_up_gap_{0};   // ticks until the next may begin
  std::atomic<bool> dirty_{false};         // MANIFEST changed or a file deleted since the last catch-up
  std::atomic<std::uint64_t> applied_{0};  // last entry applied to the mirror
  std::atomic<std::uint64_t> catchups_{0};
  std::atomic<std::uint64_t> catchup_ns_{0};  // time spent in TryCatchUpWithPrimary
  WalOverlay wal_;                            // tail only; apply/load/clear under apply_mu_
  std::unique_ptr<SlotWarmer> warmer_;        // --warm-cache; declared last: stops first
};

}  // namespace fastpath::rubble
