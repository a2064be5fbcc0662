// SPDX-License-Identifier: GPL-2.0
// The replica side of rubble mode.
//
// SlotTable: which SST file lives in which slot of this replica's pool, and
// when a slot may be given back.  A slot is released to the head only when
//   1. the head has deleted the file,
//   2. a catch-up of the secondary RocksDB that began after that deletion has
//      completed (the head logs the version edit that drops a file before it
//      deletes the file, so that catch-up has moved past every version that
//      still lists it, and will not open it again), and
//   3. no reader still has it open (the secondary keeps every table of a
//      live version open, max_open_files = -1, and closes it when no version
//      or iterator uses it any more).
// Until then a deleted file stays readable, so a catch-up that replays old
// version edits can still open it.
//
// SlotFileSystem: the file system the secondary RocksDB sees.  SST files in
// the mirror directory are served from their slots (through the page cache;
// opening an SST drops the slot's cached pages first, see pool.h); every
// other file (MANIFEST, WAL, CURRENT) is a regular file in the mirror
// directory, written by MirrorApplier from the head's operations.  With
// hide_wal, the WAL files are not there for the secondary (it replays no
// WAL into memtables: the rubble tail reads recent writes from its overlay).
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pool.h"
#include "rubble.pb.h"

namespace fastpath::rubble {

struct SlotFile {
  std::uint32_t slot = 0;
  std::uint64_t size = 0;
};

// Thread-safe.
class SlotTable {
 public:
  // "" or why the install breaks the rules (name exists, slot still used).
  std::string install(const std::string& name, SlotFile file);
  // A file that is installed and not yet released.
  std::optional<SlotFile> find(const std::string& name) const;
  // Like find(), and the slot stays in use until close_reader().
  std::optional<SlotFile> open_reader(const std::string& name) { return add_reader(name, true); }
  void close_reader(const std::string& name);
  // Like open_reader(), but nullopt once the head has deleted the file.
  std::optional<SlotFile> open_live_reader(const std::string& name) { return add_reader(name, false); }
  // The head deleted name (unknown names are ignored).
  void remove(const std::string& name);
  // Bracket every TryCatchUpWithPrimary: begin_catch_up() before it, and
  // end_catch_up(ticket) after it succeeded.
  std::uint64_t begin_catch_up();
  void end_catch_up(std::uint64_t ticket);
  // Slots released since the last call.
  std::vector<std::uint32_t> take_released();
  // Slots taken by take_released() that could not be sent: sent next time.
  void requeue_released(const std::vector<std::uint32_t>& slots);
  // Slots still used here (installed files, deleted or not).
  std::vector<std::uint32_t> held() const;
  // Installed files the head has not deleted.
  std::vector<std::pair<std::string, SlotFile>> files() const;
  std::uint32_t in_use() const;   // slots holding a file (deleted or not)
  std::uint32_t retired() const;  // deleted files whose slot is not released yet
  // Forgets everything (no reader may be open).
  void reset();

 private:
  struct Entry {
    SlotFile file;
    int readers = 0;
    bool deleted = false;
    std::uint64_t deleted_at = 0;  // catch-ups begun when the head deleted it
  };
  using Iter = std::map<std::string, Entry>::iterator;
  std::optional<SlotFile> add_reader(const std::string& name, bool deleted_too);
  bool releasable(const Entry& e) const { return e.deleted && e.readers == 0 && e.deleted_at < settled_; }
  void release_locked(Iter it);

  mutable std::mutex mu_;
  std::map<std::string, Entry> files_;           // guarded by mu_
  std::map<std::uint32_t, std::string> owners_;  // guarded by mu_: slot -> file
  std::vector<std::uint32_t> released_;          // guarded by mu_
  std::uint64_t begun_ = 0;                      // guarded by mu_: catch-ups begun
  std::uint64_t settled_ = 0;                    // guarded by mu_: highest ticket of a completed catch-up
};

class SlotFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // on_open: called with the SST's name each time RocksDB opens one (after
  // its slot's cached pages were dropped); may be empty.
  SlotFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::string dir, const Pool& pool, SlotTable& table,
                 bool hide_wal = false, std::function<void(const std::string&)> on_open = {});

  static const char* kClassName() { return "RubbleSlotFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus FileExists(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetFileSize(const std::string& f, const rocksdb::IOOptions& o, std::uint64_t* size,
                                rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetFileModificationTime(const std::string& f, const rocksdb::IOOptions& o, std::uint64_t* t,
                                            rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetChildren(const std::string& dir, const rocksdb::IOOptions& o, std::vector<std::string>* r,
                                rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetChildrenFileAttributes(const std::string& dir, const rocksdb::IOOptions& o,
                                              std::vector<rocksdb::FileAttributes>* r,
                                              rocksdb::IODebugContext* dbg) override;

 private:
  std::optional<std::string> sst_name(const std::string& path) const;
  bool hidden(const std::string& path) const;

  const std::string dir_;
  const Pool& pool_;
  SlotTable& table_;
  const bool hide_wal_;
  const std::function<void(const std::string&)> on_open_;
};

// Applies the head's file operations, in order, to the mirror directory and
// the slot table.  One thread at a time.
//
// Consecutive appends to a WAL file are gathered in memory and written with
// one pwrite (when another operation comes, when 256 KiB have gathered, or
// on flush()), instead of one per chain batch.  Nothing reads a replica's
// mirrored WAL but the replica itself when it becomes the tail or the head
// (it flushes first), and a replica that crashes rejoins as a new node, so
// holding these bytes in memory rather than in the page cache changes
// nothing else.  Every other operation is applied at once.
class MirrorApplier {
 public:
  MirrorApplier(std::string dir, SlotTable& table, const PoolHeader& pool);
  ~MirrorApplier();

  // "" or why the operation is malformed or failed.
  std::string apply(const wire::FileOp& op);
  // Writes the gathered WAL appends.  "" or the error.
  std::string flush();
  // Closes every file and empties the mirror directory (gathered appends
  // are dropped).
  void reset();

 private:
  std::string append(const wire::FileOp& op);
  std::string write_at(const std::string& name, std::uint64_t offset, std::string_view data);
  std::string truncate(const wire::FileOp& op);
  std::string rename(const wire::FileOp& op);
  std::string remove(const wire::FileOp& op);
  std::string install(const wire::FileOp& op);
  int fd_for(const std::string& name);
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  const std::string dir_;
  SlotTable& table_;
  const PoolHeader pool_;
  std::map<std::string, UniqueFd> fds_;
  std::string pending_name_;  // the WAL whose appends are gathered ("" when none)
  std::uint64_t pending_offset_ = 0;
  std::string pending_;
};

}  // namespace fastpath::rubble
