// SPDX-License-Identifier: GPL-2.0
// The rubble tail's view of writes its secondary RocksDB has not installed
// yet.
//
// WalParser decodes the head's WAL from the mirrored APPEND operations
// (RocksDB's documented log format: 32 KiB blocks of records with a 7-byte
// header, crc32c + length + type FULL/FIRST/MIDDLE/LAST, fragments joined;
// WAL recycling and WAL compression are off).  Each record is a WriteBatch.
//
// Overlay keeps, per key, the newest value or deletion from those batches,
// tagged with the number of the WAL file that carried it.  The tail answers
// reads from the overlay first, so it acknowledges a write as soon as it has
// applied it.  Its secondary RocksDB does not see the WAL at all (no second
// copy of every write in memtables): it holds only what the head's SSTs
// hold, and installs it when the head's MANIFEST changes.
//
// WalOverlay decides when overlay entries may go: the head deletes WAL file
// N only after the MANIFEST edit that makes it obsolete (every write of N is
// in SSTs the MANIFEST lists), and the mirror sends that edit before the
// deletion.  So once a catch-up that began after the deletion of N was
// applied has completed, the secondary holds every write of WAL files <= N
// (older logs are deleted first) and their entries leave the overlay.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rubble.pb.h"

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
  // Applies a WriteBatch representation, tagged tag (monotonic: the WAL
  // file number).
  std::string apply(std::string_view batch_rep, std::uint64_t tag);
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
  // Drops what was applied with tags <= tag (it is in the secondary now).
  void trim(std::uint64_t tag);
  void clear();
  std::size_t size() const;

 private:
  struct Value {
    std::optional<std::string> value;
    std::uint64_t tag;
  };
  friend class OverlayWriter;
  void set(std::string key, std::optional<std::string> value, std::uint64_t tag);

  mutable std::shared_mutex mu_;
  std::map<std::string, Value, std::less<>> map_;            // guarded by mu_
  std::deque<std::pair<std::uint64_t, std::string>> order_;  // guarded by mu_: (tag, key) in tag order
};

// The tail's overlay fed by the mirrored file operations, and the rule (see
// the top of this file) for dropping what the secondary has installed.
// apply, load and clear: one thread at a time (the replication stream);
// caught_up and trim_pending may run on another thread.
class WalOverlay {
 public:
  // One mirrored operation, carried by entry seq: appends and truncations of
  // a WAL feed its parser, the deletion of a WAL is remembered; other files
  // are ignored.  "" or why the WAL is malformed.
  std::string apply(const wire::FileOp& op, std::uint64_t seq);
  // A whole WAL file already in the mirror (a replica becoming the tail).
  std::string load(const std::string& name, std::string_view data);
  // A catch-up that began after entry seq was applied has completed.
  void caught_up(std::uint64_t seq);
  // A deleted WAL waits for a catch-up before its entries can go.
  bool trim_pending() const;
  void clear();
  Overlay& overlay() { return overlay_; }
  const Overlay& overlay() const { return overlay_; }

 private:
  Overlay overlay_;
  std::map<std::string, WalParser> parsers_;
  mutable std::mutex mu_;
  std::deque<std::pair<std::uint64_t, std::uint64_t>> deleted_;  // guarded by mu_: (entry seq, WAL number)
};

// The number of a WAL file name (NNNNNN.log), or nullopt.
std::optional<std::uint64_t> wal_number(const std::string& name);

}  // namespace fastpath::rubble
