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
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <chrono>
#include <memory>
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
#include "store.h"

namespace fastpath::rubble {

class RubbleHead : public FileOpSink, public SstShipper {
 public:
  // Opens every --replica-pool.  Throws std::runtime_error with the cause and
  // the fix (pool missing, unformatted, of another chain, sizes differ).
  RubbleHead(const NodeOptions& options, const Identity& identity, AckTracker& acks);
  ~RubbleHead() override;

  std::uint64_t slot_size() const { return slot_size_; }
  // Checks that the chain's replicas use exactly our pools, in order.
  void check_hello_reply(const wire::ChainAck& reply) const;
  // Sends what dir already holds, then opens RocksDB on dir through the
  // mirror; entries go to sequencer.  Finally tells the replicas to open.
  std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions so, Sequencer& sequencer);
  void on_releases(const wire::ChainAck& ack);
  void fill_stats(wire::StatsReply* reply) const;

  void file_op(wire::FileOp op) override;
  std::string ship(const std::string& name, const std::string& path, std::uint32_t* slot, std::uint64_t* size) override;

 private:
  void open_pools(const NodeOptions& options, const Identity& identity);
  void mirror_existing(const std::string& dir);
  void mirror_file(const std::string& name, const std::string& path);
  std::string write_all(std::uint32_t slot, const AlignedBuffer& data);

  const std::uint64_t slot_size_;
  const std::chrono::milliseconds slot_wait_;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::unique_ptr<SlotAllocator> slots_;
  Sequencer* sequencer_ = nullptr;
  std::shared_ptr<MirrorFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::atomic<std::uint64_t> ssts_shipped_{0};
  std::atomic<std::uint64_t> bytes_shipped_{0};
};

}  // namespace fastpath::rubble
