// SPDX-License-Identifier: GPL-2.0
// Rubble mode on the head: the replicas' pools, the slot allocator, and the
// mirror file system under the head's RocksDB.
//
// Every SST the head's RocksDB finishes (flush or compaction output) is read
// back once and written with one O_DIRECT|O_DSYNC write into the same free
// slot of every replica's pool; then INSTALL_SST(name, slot, size) and the
// MANIFEST bytes with the version edit follow on the chain, in order.
// Replicas return slots (SlotRelease on the ack stream) once they no longer
// use them; a slot is reused only when every replica has returned it.
//
// Membership: a failed replica's pool is dropped (on_view), a new replica
// gets the live SSTs written into its pool at their slots and a snapshot of
// the head's other files, addressed to it alone, in order on the chain
// (add_replica).  A replica that takes over as head (a Takeover) starts from
// the slots its successors hold.
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "chain.h"
#include "identity.h"
#include "mirror_fs.h"
#include "options.h"
#include "pool.h"
#include "rubble.pb.h"
#include "sequencer.h"
#include "slot_allocator.h"
#include "slot_fs.h"
#include "store.h"

namespace fastpath::rubble {

// A replica's pool as a head taking over finds it, or as a replica reports
// it (State: its last applied entry, then the slots it uses).
struct ReplicaPool {
  std::string path;
  std::string pool_id;
  std::vector<std::uint32_t> held;  // slots the replica still uses
  std::uint64_t applied = 0;
};

class RubbleHead : public FileOpSink, public SstShipper {
 public:
  // A head starting afresh: opens every --replica-pool.  Throws
  // std::runtime_error with the cause and the fix (pool missing,
  // unformatted, of another chain, sizes differ).
  RubbleHead(const NodeOptions& options, const Identity& identity);
  // A replica taking over: its successors' pools, and the live SSTs it holds
  // (the same slot in every pool).
  RubbleHead(const NodeOptions& options, const Identity& identity, const std::vector<ReplicaPool>& pools,
             std::map<std::string, SlotFile> live);
  ~RubbleHead() override;

  std::uint64_t slot_size() const { return slot_size_; }
  // Checks that the chain's replicas use exactly our pools, in order.
  void check_hello_reply(const wire::ChainAck& reply) const;
  // Opens RocksDB on dir through the mirror; entries go to sequencer.  A
  // fresh head first sends what dir already holds and finally tells the
  // replicas to open their databases; a head taking over does neither (its
  // successors have the same files).
  std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions so, Sequencer& sequencer, bool takeover);
  void on_releases(const wire::ChainAck& ack);
  // Drops the pools of replicas that left the view.
  void on_view(const wire::View& view);
  // This node is no longer the head: it writes into no pool from now on
  // (its RocksDB may still flush or compact; those fail).
  void fence();
  // Entries up to seq are at every replica.
  void on_acked(std::uint64_t seq);
  // Frees what the allocator believes a replica holds beyond what it
  // reports plus the files shipped to it after its last applied entry
  // (releases that died with a failed middle would leak slots otherwise).
  // Returns the number of slots given back.
  std::uint32_t reconcile(const std::vector<ReplicaPool>& reports);
  // A new replica: writes the live SSTs into its pool and queues its
  // snapshot (addressed to its pool).  "" or why not.
  std::string add_replica(const wire::Member& member, wire::AddReplicaReply* reply);
  void fill_stats(wire::StatsReply* reply) const;

  void file_op(wire::FileOp op) override;
  std::shared_mutex* op_lock() override { return &op_mu_; }
  std::string ship(const std::string& name, const std::string& path, std::uint32_t* slot, std::uint64_t* size) override;
  std::string ship_and_install(const std::string& name, const std::string& path, FileOpSink& sink) override;

 private:
  struct Target {
    std::unique_ptr<Pool> pool;
    std::string id;
    std::uint32_t bit = 0;
  };

  std::unique_ptr<Pool> open_pool(const std::string& path, const std::string& chain_id) const;
  void mirror_existing(const std::string& dir);
  void mirror_file(const std::string& name, const std::string& path);
  std::string write_all(std::uint32_t slot, const AlignedBuffer& data);
  void submit(wire::FileOp op);
  void emit_snapshot(const std::string& pool_id);

  const std::uint64_t slot_size_;
  const std::chrono::milliseconds slot_wait_;
  const std::string chain_id_;
  const std::vector<std::string> find_pools_;  // --find-pools: where this machine reaches replicas' pools
  std::mutex ship_mu_;           // one shipment (slot writes + INSTALL_SST) or membership change at a time
  std::vector<Target> targets_;  // guarded by ship_mu_
  bool fenced_ = false;          // guarded by ship_mu_
  std::unique_ptr<SlotAllocator> slots_;
  std::shared_mutex op_mu_;                                 // shared: a mirrored change; exclusive: a snapshot
  std::mutex live_mu_;                                      // guards live_
  std::map<std::string, SlotFile> live_;                    // installed and not deleted SSTs
  std::map<std::uint64_t, std::uint32_t> recent_installs_;  // guarded by live_mu_: seq -> slot, not yet acknowledged
  std::string dir_;
  Sequencer* sequencer_ = nullptr;
  std::shared_ptr<MirrorFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::atomic<std::uint64_t> ssts_shipped_{0};
  std::atomic<std::uint64_t> bytes_shipped_{0};
};

}  // namespace fastpath::rubble
