// SPDX-License-Identifier: GPL-2.0
// One node's RocksDB instance: a primary (baseline nodes and the rubble head)
// or a read-only secondary that follows a mirrored primary directory (rubble
// replicas).  Counts the flushes and compactions it runs itself.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/statistics.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "rubble.pb.h"

namespace fastpath::rubble {

struct StoreOptions {
  std::uint64_t sst_size = 8 << 20;    // target SST size = memtable size
  rocksdb::Env* env = nullptr;         // nullptr: the default environment
  bool with_meta = true;               // keep the applied sequence number (baseline)
  std::size_t block_cache = 64 << 20;  // block cache bytes (the same in both modes)
};

struct StoreStats {
  std::uint64_t flushes = 0;
  std::uint64_t compactions = 0;
  std::uint64_t flush_bytes = 0;
  std::uint64_t compact_bytes = 0;
  std::uint64_t wal_bytes = 0;
  std::uint64_t live_sst_files = 0;
  std::uint64_t live_sst_bytes = 0;
  bool background_work = false;  // a flush or compaction is pending or running (primary)
};

class CountingListener : public rocksdb::EventListener {
 public:
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    flushes++;
    std::lock_guard lock(flush_mu);
    flushed.notify_all();
  }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { compactions++; }

  std::atomic<std::uint64_t> flushes{0};
  std::atomic<std::uint64_t> compactions{0};
  std::mutex flush_mu;
  std::condition_variable flushed;
};

class Store {
  struct Private {
    explicit Private() = default;
  };

 public:
  // Throw std::runtime_error naming the directory and RocksDB's reason.
  static std::unique_ptr<Store> open_primary(const std::string& dir, const StoreOptions& options);
  static std::unique_ptr<Store> open_secondary(const std::string& primary_dir, const std::string& secondary_dir,
                                               const StoreOptions& options);
  explicit Store(Private) {}
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  rocksdb::Status get(std::string_view key, std::string* value);
  // An iterator over the data (not the chain metadata).
  std::unique_ptr<rocksdb::Iterator> iterator();
  // Up to limit keys >= start, in order, appended to out.
  rocksdb::Status scan(std::string_view start, std::size_t limit,
                       std::vector<std::pair<std::string, std::string>>* out);
  // Applies the batch's key-value entries atomically and records the last
  // one's sequence number as applied (baseline replication).
  rocksdb::Status apply(const wire::ChainBatch& batch);
  // Plain writes (the rubble head: its WAL is what gets replicated).
  rocksdb::Status put(std::string_view key, std::string_view value);
  rocksdb::Status del(std::string_view key);
  // The puts and deletes of ops as one WriteBatch (the rubble head's writes
  // that go down the chain together).
  rocksdb::Status write(const std::vector<const wire::KvOp*>& ops);
  // Baseline state transfer.  snapshot(): every key-value pair of a
  // consistent snapshot, in chunks of about chunk_bytes, then seq = the
  // applied sequence number the snapshot holds; emit returning false stops
  // it.  "" or the error.  load(): writes the pairs; set_applied(): records
  // the snapshot's sequence number.
  std::string snapshot(const std::function<bool(std::vector<std::pair<std::string, std::string>>&)>& emit,
                       std::size_t chunk_bytes, std::uint64_t* seq);
  rocksdb::Status load(const std::vector<std::pair<std::string, std::string>>& kvs);
  rocksdb::Status set_applied(std::uint64_t seq);
  // Primary: waits (at most max) while a write of bytes could make RocksDB
  // switch memtables with a flush still pending, since its next flush would
  // then merge both memtables into one SST of up to twice the memtable size
  // (too large for a rubble slot): returns at once when no flush is pending
  // or the active memtable is less than half full.
  void wait_for_memtable_room(std::size_t bytes, std::chrono::milliseconds max);
  // Primary only: flushes the memtable and compacts everything (tests).
  rocksdb::Status flush_and_compact();
  // Secondary only: installs what the primary directory gained since.
  rocksdb::Status catch_up();

  std::uint64_t applied_seq() const { return applied_seq_.load(); }
  // File names (NNNNNN.sst) of the live SSTs.
  std::vector<std::string> live_files() const;
  StoreStats stats() const;

 private:
  static rocksdb::Options make_options(const StoreOptions& so, std::shared_ptr<CountingListener> listener);
  void open_handles(std::vector<rocksdb::ColumnFamilyHandle*> handles);
  void load_applied_seq();

  struct HandleDeleter {
    rocksdb::DB* db;
    void operator()(rocksdb::ColumnFamilyHandle* h) const { db->DestroyColumnFamilyHandle(h); }
  };
  using Handle = std::unique_ptr<rocksdb::ColumnFamilyHandle, HandleDeleter>;

  std::unique_ptr<rocksdb::DB> db_;
  Handle data_cf_{nullptr, {nullptr}};
  Handle meta_cf_{nullptr, {nullptr}};
  std::shared_ptr<CountingListener> listener_;
  std::shared_ptr<rocksdb::Statistics> statistics_;
  std::atomic<std::uint64_t> applied_seq_{0};
  std::uint64_t memtable_bytes_ = 0;  // write_buffer_size
};

}  // namespace fastpath::rubble
