// SPDX-License-Identifier: GPL-2.0
// The rubble tail's view of writes its secondary RocksDB has not installed
// yet.
//
// WalParser decodes the head's WAL from the mirrored APPEND operations
// (RocksDB's documented log format: 32 KiB blocks of records with a 7-byte
// header, crc32c + length + type FULL/FIRST/MIDDLE/LAST, fragments joined;
// WAL recycling and WAL compression are off).  Each record is a WriteBatch.
//
// Overlay keeps, per key, the newest value or deletion from those batches
// with the chain sequence number of the entry that carried it.  The tail
// answers reads from the overlay first, so it can acknowledge a write as
// soon as it has applied it, and catch up (TryCatchUpWithPrimary, which
// costs a new version of the LSM tree each time) only now and then; after a
// catch-up that began once entry N was applied, entries <= N are in the
// secondary and leave the overlay.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rocksdb {
class Iterator;
}

namespace fastpath::rubble {

class WalParser {
 public:
  using RecordFn = std::function<std::string(std::string_view record)>;
  // Feeds the bytes written at offset (appends must be contiguous).  Calls
  // on_record for each complete record.  "" or why the log is malformed.
  std::string feed(std::uint64_t offset, std::string_view data, const RecordFn& on_record);
  // The file was truncated to size (0: a new log).
  std::string truncate(std::uint64_t size);

 private:
  std::string parse(const RecordFn& on_record);

  std::uint64_t end_ = 0;     // file offset after the last byte fed
  std::uint64_t parsed_ = 0;  // file offset of pending_[0]
  std::string pending_;       // bytes fed but not parsed yet
  std::string fragments_;     // payload of a record split over FIRST/MIDDLE
  bool in_record_ = false;
};

// Thread-safe: one writer (the replication stream), many readers.
class Overlay {
 public:
  // Applies a WriteBatch representation carried by entry seq.
  std::string apply(std::string_view batch_rep, std::uint64_t seq);
  // nullopt: not in the overlay (ask the secondary); else the value, or an
  // empty optional inside for a deletion.
  std::optional<std::optional<std::string>> get(const std::string& key) const;
  // Up to limit keys >= start in key order, the overlay's newest values
  // merged over an iterator of the secondary, which make_iterator creates
  // while the overlay can neither gain nor drop entries (so the two agree:
  // what the overlay no longer holds is in that iterator).  "" or the
  // iterator's error.
  using KeyValues = std::vector<std::pair<std::string, std::string>>;
  std::string scan(const std::string& start, std::size_t limit,
                   const std::function<std::unique_ptr<rocksdb::Iterator>()>& make_iterator, KeyValues* out) const;
  // Drops what entries <= seq wrote (they are in the secondary now).
  void trim(std::uint64_t seq);
  void clear();
  std::size_t size() const;

 private:
  struct Value {
    std::optional<std::string> value;
    std::uint64_t seq;
  };
  friend class OverlayWriter;
  void set(std::string key, std::optional<std::string> value, std::uint64_t seq);

  mutable std::shared_mutex mu_;
  std::map<std::string, Value, std::less<>> map_;            // guarded by mu_
  std::deque<std::pair<std::uint64_t, std::string>> order_;  // guarded by mu_: (seq, key) in seq order
};

}  // namespace fastpath::rubble
