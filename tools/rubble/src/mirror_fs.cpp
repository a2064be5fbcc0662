// SPDX-License-Identifier: GPL-2.0
#include "mirror_fs.h"

#include "filenames.h"

namespace fastpath::rubble {

using rocksdb::IOStatus;

namespace {

wire::FileOp file_op(wire::FileOp::Type type, const std::string& name) {
  wire::FileOp op;
  op.set_type(type);
  op.set_name(name);
  return op;
}

// Shared hold of the sink's op lock (if it has one) for one mirrored change.
std::shared_lock<std::shared_mutex> op_guard(FileOpSink& sink) {
  auto* mu = sink.op_lock();
  return mu ? std::shared_lock(*mu) : std::shared_lock<std::shared_mutex>();
}

// A MANIFEST, WAL, CURRENT... file: every change becomes a FileOp.
class MirroredFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  MirroredFile(std::unique_ptr<rocksdb::FSWritableFile> f, std::string name, std::uint64_t offset, FileOpSink& sink)
      : FSWritableFileOwnerWrapper(std::move(f)), name_(std::move(name)), offset_(offset), sink_(sink) {}

  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    const auto guard = op_guard(sink_);
    auto st = target()->Append(data, o, dbg);
    if (st.ok()) mirror(data, offset_);
    return st;
  }
  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  rocksdb::IODebugContext* dbg) override {
    const auto guard = op_guard(sink_);
    auto st = target()->Append(data, o, v, dbg);
    if (st.ok()) mirror(data, offset_);
    return st;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset, const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
    const auto guard = op_guard(sink_);
    auto st = target()->PositionedAppend(data, offset, o, dbg);
    if (st.ok()) mirror(data, offset);
    return st;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset, const rocksdb::IOOptions& o,
                            const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* dbg) override {
    const auto guard = op_guard(sink_);
    auto st = target()->PositionedAppend(data, offset, o, v, dbg);
    if (st.ok()) mirror(data, offset);
    return st;
  }
  IOStatus Truncate(std::uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    const auto guard = op_guard(sink_);
    auto st = target()->Truncate(size, o, dbg);
    if (!st.ok()) return st;
    auto op = file_op(wire::FileOp::TRUNCATE, name_);
    op.set_size(size);
    sink_.file_op(std::move(op));
    offset_ = size;
    return st;
  }

 private:
  void mirror(const rocksdb::Slice& data, std::uint64_t offset) {
    auto op = file_op(wire::FileOp::APPEND, name_);
    op.set_offset(offset);
    op.set_data(data.data(), data.size());
    sink_.file_op(std::move(op));
    offset_ = offset + data.size();
  }

  const std::string name_;
  std::uint64_t offset_;  // RocksDB writes one file from one thread at a time
  FileOpSink& sink_;
};

// An SST file: written locally as usual, shipped into the slots when closed.
class ShippedSst : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ShippedSst(std::unique_ptr<rocksdb::FSWritableFile> f, std::string name, std::string path, FileOpSink& sink,
             SstShipper& shipper)
      : FSWritableFileOwnerWrapper(std::move(f)),
        name_(std::move(name)),
        path_(std::move(path)),
        sink_(sink),
        shipper_(shipper) {}

  IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    auto st = target()->Close(o, dbg);
    if (!st.ok() || shipped_) return st;
    shipped_ = true;
    if (auto e = shipper_.ship_and_install(name_, path_, sink_); !e.empty())
      return IOStatus::IOError("rubble: cannot ship " + name_ + " to the replicas: " + e);
    return st;
  }

 private:
  const std::string name_;
  const std::string path_;
  FileOpSink& sink_;
  SstShipper& shipper_;
  bool shipped_ = false;
};

}  // namespace

std::string SstShipper::ship_and_install(const std::string& name, const std::string& path, FileOpSink& sink) {
  std::uint32_t slot = 0;
  std::uint64_t size = 0;
  if (auto e = ship(name, path, &slot, &size); !e.empty()) return e;
  auto op = file_op(wire::FileOp::INSTALL_SST, name);
  op.set_slot(slot);
  op.set_size(size);
  sink.file_op(std::move(op));
  return "";
}

MirrorFileSystem::MirrorFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::string dir, FileOpSink& sink,
                                   SstShipper& shipper)
    : FileSystemWrapper(std::move(base)), dir_(std::move(dir)), sink_(sink), shipper_(shipper) {}

bool MirrorFileSystem::watched(const std::string& path) const {
  const auto name = name_in_dir(path, dir_);
  return name && classify(*name) != FileKind::kLocal;
}

IOStatus MirrorFileSystem::wrap(const std::string& f, std::uint64_t offset, IOStatus st,
                                std::unique_ptr<rocksdb::FSWritableFile>* r) {
  if (!st.ok()) return st;
  const auto name = name_in_dir(f, dir_);
  if (!name) return st;
  switch (classify(*name)) {
    case FileKind::kSst:
      *r = std::make_unique<ShippedSst>(std::move(*r), *name, f, sink_, shipper_);
      break;
    case FileKind::kMirrored:
      *r = std::make_unique<MirroredFile>(std::move(*r), *name, offset, sink_);
      break;
    case FileKind::kLocal:
      break;
  }
  return st;
}

IOStatus MirrorFileSystem::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) {
  const auto guard = op_guard(sink_);
  auto st = target()->NewWritableFile(f, o, r, dbg);
  // The file now exists and is empty (an existing one is truncated): the
  // replicas' copy too, even before the first append.
  const auto name = name_in_dir(f, dir_);
  if (st.ok() && name && classify(*name) == FileKind::kMirrored) {
    auto op = file_op(wire::FileOp::TRUNCATE, *name);
    op.set_size(0);
    sink_.file_op(std::move(op));
  }
  return wrap(f, 0, std::move(st), r);
}

IOStatus MirrorFileSystem::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                                              rocksdb::IODebugContext* dbg) {
  std::uint64_t size = 0;
  if (!target()->GetFileSize(f, o.io_options, &size, dbg).ok()) size = 0;
  return wrap(f, size, target()->ReopenWritableFile(f, o, r, dbg), r);
}

IOStatus MirrorFileSystem::ReuseWritableFile(const std::string& f, const std::string& old,
                                             const rocksdb::FileOptions& o, std::unique_ptr<rocksdb::FSWritableFile>* r,
                                             rocksdb::IODebugContext* dbg) {
  if (watched(f) || watched(old))
    return IOStatus::NotSupported("rubble: WAL recycling is not mirrored; keep recycle_log_file_num = 0");
  return target()->ReuseWritableFile(f, old, o, r, dbg);
}

IOStatus MirrorFileSystem::NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSRandomRWFile>* r, rocksdb::IODebugContext* dbg) {
  if (watched(f)) return IOStatus::NotSupported("rubble: random-access writes to " + f + " are not mirrored");
  return target()->NewRandomRWFile(f, o, r, dbg);
}

IOStatus MirrorFileSystem::RenameFile(const std::string& src, const std::string& target_path,
                                      const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) {
  const auto from = name_in_dir(src, dir_);
  const auto to = name_in_dir(target_path, dir_);
  const bool mirrored = from && to && classify(*from) == FileKind::kMirrored && classify(*to) == FileKind::kMirrored;
  if (!mirrored && (watched(src) || watched(target_path)))
    return IOStatus::NotSupported("rubble: cannot mirror the rename of " + src + " to " + target_path);
  const auto guard = op_guard(sink_);
  auto st = target()->RenameFile(src, target_path, o, dbg);
  if (st.ok() && mirrored) {
    auto op = file_op(wire::FileOp::RENAME, *from);
    op.set_target(*to);
    sink_.file_op(std::move(op));
  }
  return st;
}

IOStatus MirrorFileSystem::LinkFile(const std::string& src, const std::string& target_path, const rocksdb::IOOptions& o,
                                    rocksdb::IODebugContext* dbg) {
  if (watched(src) || watched(target_path))
    return IOStatus::NotSupported("rubble: hard links inside the database directory are not mirrored");
  return target()->LinkFile(src, target_path, o, dbg);
}

IOStatus MirrorFileSystem::DeleteFile(const std::string& f, const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) {
  const auto guard = op_guard(sink_);
  auto st = target()->DeleteFile(f, o, dbg);
  if (st.ok() && watched(f)) sink_.file_op(file_op(wire::FileOp::DELETE, *name_in_dir(f, dir_)));
  return st;
}

IOStatus MirrorFileSystem::Truncate(const std::string& f, std::size_t size, const rocksdb::IOOptions& o,
                                    rocksdb::IODebugContext* dbg) {
  const auto name = name_in_dir(f, dir_);
  if (name && classify(*name) == FileKind::kSst)
    return IOStatus::NotSupported("rubble: SST files cannot be truncated once shipped");
  const auto guard = op_guard(sink_);
  auto st = target()->Truncate(f, size, o, dbg);
  if (st.ok() && name && classify(*name) == FileKind::kMirrored) {
    auto op = file_op(wire::FileOp::TRUNCATE, *name);
    op.set_size(size);
    sink_.file_op(std::move(op));
  }
  return st;
}

}  // namespace fastpath::rubble
