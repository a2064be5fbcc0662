// SPDX-License-Identifier: GPL-2.0
// The head side of rubble mode: the file system under the head's RocksDB.
//
// It behaves exactly like the default file system and, in addition, reports
// every change to the database directory, in the order it happens:
//   - appends, truncations, renames and deletions of the MANIFEST, WAL,
//     CURRENT, IDENTITY and OPTIONS files become FileOps (the version edits
//     travel inside the MANIFEST bytes);
//   - an SST file, once closed, is handed to the shipper, which writes it into
//     a slot of every replica's pool; then an INSTALL_SST FileOp follows.
// RocksDB closes an SST before it logs the version edit that adds it, so the
// INSTALL_SST always precedes the MANIFEST bytes that refer to the file.
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>

#include "rubble.pb.h"

namespace fastpath::rubble {

class FileOpSink {
 public:
  virtual ~FileOpSink() = default;
  // Called in the order the operations happen, from any RocksDB thread.
  virtual void file_op(wire::FileOp op) = 0;
  // When not null, held shared around each mirrored change (the local
  // operation and its file_op), so that whoever holds it exclusively sees
  // the mirrored files exactly as the operations so far left them.
  virtual std::shared_mutex* op_lock() { return nullptr; }
};

class SstShipper {
 public:
  virtual ~SstShipper() = default;
  // Copies the finished SST at path into a slot of every replica's pool.
  // "" (with slot and size set) or the error.
  virtual std::string ship(const std::string& name, const std::string& path, std::uint32_t* slot,
                           std::uint64_t* size) = 0;
  // Ships the SST, then reports INSTALL_SST(name, slot, size) to sink.  An
  // override may make the two one step for its own bookkeeping.
  virtual std::string ship_and_install(const std::string& name, const std::string& path, FileOpSink& sink);
};

class MirrorFileSystem : public rocksdb::FileSystemWrapper {
 public:
  MirrorFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::string dir, FileOpSink& sink, SstShipper& shipper);

  static const char* kClassName() { return "RubbleMirrorFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, std::size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override;

 private:
  rocksdb::IOStatus wrap(const std::string& f, std::uint64_t offset, rocksdb::IOStatus st,
                         std::unique_ptr<rocksdb::FSWritableFile>* r);
  bool watched(const std::string& path) const;

  const std::string dir_;
  FileOpSink& sink_;
  SstShipper& shipper_;
};

}  // namespace fastpath::rubble
