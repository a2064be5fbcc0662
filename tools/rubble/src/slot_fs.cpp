// SPDX-License-Identifier: GPL-2.0
#include "slot_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "filenames.h"

namespace fastpath::rubble {

using rocksdb::IOStatus;

// ---- SlotTable ----

std::string SlotTable::install(const std::string& name, SlotFile file) {
  std::lock_guard lock(mu_);
  if (files_.count(name)) return "protocol error: " + name + " is already installed";
  if (auto it = owners_.find(file.slot); it != owners_.end())
    return "protocol error: slot " + std::to_string(file.slot) + " is still used by " + it->second +
           ": the head reused a slot before this replica released it";
  files_[name] = Entry{file, 0, false};
  owners_[file.slot] = name;
  return "";
}

std::optional<SlotFile> SlotTable::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  const auto it = files_.find(name);
  if (it == files_.end()) return std::nullopt;
  return it->second.file;
}

std::optional<SlotFile> SlotTable::add_reader(const std::string& name, bool deleted_too) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(name);
  if (it == files_.end() || (it->second.deleted && !deleted_too)) return std::nullopt;
  it->second.readers++;
  return it->second.file;
}

void SlotTable::release_locked(Iter it) {
  released_.push_back(it->second.file.slot);
  owners_.erase(it->second.file.slot);
  files_.erase(it);
}

void SlotTable::close_reader(const std::string& name) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(name);
  if (it == files_.end()) return;
  it->second.readers--;
  if (releasable(it->second)) release_locked(it);
}

void SlotTable::remove(const std::string& name) {
  std::lock_guard lock(mu_);
  const auto it = files_.find(name);
  if (it == files_.end() || it->second.deleted) return;
  it->second.deleted = true;
  it->second.deleted_at = begun_;
}

std::uint64_t SlotTable::begin_catch_up() {
  std::lock_guard lock(mu_);
  return ++begun_;
}

void SlotTable::end_catch_up(std::uint64_t ticket) {
  std::lock_guard lock(mu_);
  settled_ = std::max(settled_, ticket);
  for (auto it = files_.begin(); it != files_.end();) {
    auto next = std::next(it);
    if (releasable(it->second)) release_locked(it);
    it = next;
  }
}

std::vector<std::uint32_t> SlotTable::take_released() {
  std::lock_guard lock(mu_);
  return std::exchange(released_, {});
}

void SlotTable::requeue_released(const std::vector<std::uint32_t>& slots) {
  std::lock_guard lock(mu_);
  released_.insert(released_.end(), slots.begin(), slots.end());
}

std::vector<std::uint32_t> SlotTable::held() const {
  std::lock_guard lock(mu_);
  std::vector<std::uint32_t> out;
  for (const auto& [slot, name] : owners_) out.push_back(slot);
  return out;
}

std::vector<std::pair<std::string, SlotFile>> SlotTable::files() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, SlotFile>> out;
  for (const auto& [name, e] : files_)
    if (!e.deleted) out.emplace_back(name, e.file);
  return out;
}

std::uint32_t SlotTable::in_use() const {
  std::lock_guard lock(mu_);
  return static_cast<std::uint32_t>(owners_.size());
}

std::uint32_t SlotTable::retired() const {
  std::lock_guard lock(mu_);
  std::uint32_t n = 0;
  for (const auto& [name, e] : files_) n += e.deleted;
  return n;
}

void SlotTable::reset() {
  std::lock_guard lock(mu_);
  files_.clear();
  owners_.clear();
  released_.clear();
  begun_ = settled_ = 0;
}

// ---- SlotFileSystem ----

namespace {

// An SST served from its slot.  Keeps the slot in use while open.
class SlotReader : public rocksdb::FSRandomAccessFile {
 public:
  SlotReader(const Pool& pool, SlotTable& table, std::string name, SlotFile file)
      : pool_(pool), table_(table), name_(std::move(name)), file_(file) {}
  ~SlotReader() override { table_.close_reader(name_); }

  IOStatus Read(std::uint64_t offset, std::size_t n, const rocksdb::IOOptions&, rocksdb::Slice* result, char* scratch,
                rocksdb::IODebugContext*) const override {
    if (offset >= file_.size) {
      *result = rocksdb::Slice(scratch, 0);
      return IOStatus::OK();
    }
    n = std::min<std::uint64_t>(n, file_.size - offset);
    const long got = pool_.read_cached(file_.slot, offset, n, scratch);
    if (got < 0)
      return IOStatus::IOError("reading " + name_ + " from slot " + std::to_string(file_.slot) + " of pool " +
                               pool_.path() + ": " + std::strerror(static_cast<int>(-got)));
    *result = rocksdb::Slice(scratch, static_cast<std::size_t>(got));
    return IOStatus::OK();
  }

 private:
  const Pool& pool_;
  SlotTable& table_;
  const std::string name_;
  const SlotFile file_;
};

IOStatus not_installed(const std::string& name) {
  return IOStatus::PathNotFound(name + " is not installed in this replica's slot pool");
}

}  // namespace

SlotFileSystem::SlotFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::string dir, const Pool& pool,
                               SlotTable& table, bool hide_wal, std::function<void(const std::string&)> on_open)
    : FileSystemWrapper(std::move(base)),
      dir_(std::move(dir)),
      pool_(pool),
      table_(table),
      hide_wal_(hide_wal),
      on_open_(std::move(on_open)) {}

namespace {

bool is_wal(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0;
}

constexpr std::size_t kGatherBytes = 256 << 10;  // MirrorApplier: WAL appends written together

}  // namespace

bool SlotFileSystem::hidden(const std::string& path) const {
  if (!hide_wal_) return false;
  const auto name = name_in_dir(path, dir_);
  return name && is_wal(*name);
}

std::optional<std::string> SlotFileSystem::sst_name(const std::string& path) const {
  auto name = name_in_dir(path, dir_);
  if (!name || classify(*name) != FileKind::kSst) return std::nullopt;
  return name;
}

IOStatus SlotFileSystem::NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                             std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                             rocksdb::IODebugContext* dbg) {
  const auto name = sst_name(f);
  if (!name) return target()->NewRandomAccessFile(f, o, r, dbg);
  const auto file = table_.open_reader(*name);
  if (!file) return not_installed(*name);
  // The first reader of this SST: the page cache may still hold the slot's
  // previous occupant (pool.h).  A second reader of the same SST just reads
  // it again.
  pool_.drop_cached(file->slot);
  *r = std::make_unique<SlotReader>(pool_, table_, *name, *file);
  if (on_open_) on_open_(*name);
  return IOStatus::OK();
}

IOStatus SlotFileSystem::NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                           rocksdb::IODebugContext* dbg) {
  if (sst_name(f)) return IOStatus::NotSupported("rubble replicas read SST slots only at random");
  if (hidden(f)) return IOStatus::PathNotFound(f + ": the WAL is not replayed by this replica's secondary");
  return target()->NewSequentialFile(f, o, r, dbg);
}

IOStatus SlotFileSystem::FileExists(const std::string& f, const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) {
  const auto name = sst_name(f);
  if (hidden(f)) return IOStatus::NotFound();
  if (!name) return target()->FileExists(f, o, dbg);
  return table_.find(*name) ? IOStatus::OK() : IOStatus::NotFound();
}

IOStatus SlotFileSystem::GetFileSize(const std::string& f, const rocksdb::IOOptions& o, std::uint64_t* size,
                                     rocksdb::IODebugContext* dbg) {
  const auto name = sst_name(f);
  if (!name) return target()->GetFileSize(f, o, size, dbg);
  const auto file = table_.find(*name);
  if (!file) return not_installed(*name);
  *size = file->size;
  return IOStatus::OK();
}

IOStatus SlotFileSystem::GetFileModificationTime(const std::string& f, const rocksdb::IOOptions& o, std::uint64_t* t,
                                                 rocksdb::IODebugContext* dbg) {
  const auto name = sst_name(f);
  if (!name) return target()->GetFileModificationTime(f, o, t, dbg);
  if (!table_.find(*name)) return not_installed(*name);
  *t = 0;
  return IOStatus::OK();
}

IOStatus SlotFileSystem::GetChildren(const std::string& dir, const rocksdb::IOOptions& o, std::vector<std::string>* r,
                                     rocksdb::IODebugContext* dbg) {
  auto st = target()->GetChildren(dir, o, r, dbg);
  if (!st.ok() || !same_dir(dir, dir_)) return st;
  if (hide_wal_) r->erase(std::remove_if(r->begin(), r->end(), is_wal), r->end());
  for (const auto& [name, file] : table_.files()) r->push_back(name);
  return st;
}

IOStatus SlotFileSystem::GetChildrenFileAttributes(const std::string& dir, const rocksdb::IOOptions& o,
                                                   std::vector<rocksdb::FileAttributes>* r,
                                                   rocksdb::IODebugContext* dbg) {
  auto st = target()->GetChildrenFileAttributes(dir, o, r, dbg);
  if (!st.ok() || !same_dir(dir, dir_)) return st;
  if (hide_wal_) r->erase(std::remove_if(r->begin(), r->end(), [](const auto& a) { return is_wal(a.name); }), r->end());
  for (const auto& [name, file] : table_.files()) r->push_back(rocksdb::FileAttributes{name, file.size});
  return st;
}

// ---- MirrorApplier ----

MirrorApplier::MirrorApplier(std::string dir, SlotTable& table, const PoolHeader& pool)
    : dir_(std::move(dir)), table_(table), pool_(pool) {}

std::string MirrorApplier::apply(const wire::FileOp& op) {
  if (op.type() == wire::FileOp::APPEND && is_wal(op.name()) && check_file_name(op.name()).empty()) {
    if (op.name() == pending_name_ && op.offset() == pending_offset_ + pending_.size()) {
      pending_.append(op.data());
    } else {
      if (auto e = flush(); !e.empty()) return e;
      pending_name_ = op.name();
      pending_offset_ = op.offset();
      pending_.assign(op.data());
    }
    return pending_.size() >= kGatherBytes ? flush() : "";
  }
  if (auto e = flush(); !e.empty()) return e;
  if (op.type() == wire::FileOp::OPEN_DB) return "";
  if (auto e = check_file_name(op.name()); !e.empty()) return "malformed file operation: " + e;
  const bool sst = classify(op.name()) == FileKind::kSst;
  switch (op.type()) {
    case wire::FileOp::APPEND:
    case wire::FileOp::TRUNCATE:
    case wire::FileOp::RENAME:
      if (sst) return "protocol error: SST " + op.name() + " must arrive through a slot, not as file data";
      return op.type() == wire::FileOp::APPEND     ? append(op)
             : op.type() == wire::FileOp::TRUNCATE ? truncate(op)
                                                   : rename(op);
    case wire::FileOp::DELETE:
      return remove(op);
    case wire::FileOp::INSTALL_SST:
      if (!sst) return "protocol error: INSTALL_SST of " + op.name() + ", which is not an SST";
      return install(op);
    default:
      return "malformed file operation: unknown type " + std::to_string(op.type());
  }
}

int MirrorApplier::fd_for(const std::string& name) {
  auto it = fds_.find(name);
  if (it != fds_.end()) return it->second.get();
  UniqueFd fd(::open(path(name).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return -1;
  return fds_.emplace(name, std::move(fd)).first->second.get();
}

MirrorApplier::~MirrorApplier() {
  flush();
}

std::string MirrorApplier::flush() {
  if (pending_name_.empty()) return "";
  const auto e = write_at(pending_name_, pending_offset_, pending_);
  pending_name_.clear();
  pending_.clear();
  if (pending_.capacity() > 4 * kGatherBytes) std::string().swap(pending_);
  return e;
}

std::string MirrorApplier::append(const wire::FileOp& op) {
  return write_at(op.name(), op.offset(), op.data());
}

std::string MirrorApplier::write_at(const std::string& name, std::uint64_t offset, std::string_view data) {
  const int fd = fd_for(name);
  if (fd < 0) return "cannot open mirror file " + path(name) + ": " + std::strerror(errno);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "cannot write mirror file " + path(name) + ": " + std::strerror(errno);
    done += static_cast<std::size_t>(n);
  }
  return "";
}

std::string MirrorApplier::truncate(const wire::FileOp& op) {
  const int fd = fd_for(op.name());
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(op.size())) != 0)
    return "cannot truncate mirror file " + path(op.name()) + ": " + std::strerror(errno);
  return "";
}

std::string MirrorApplier::rename(const wire::FileOp& op) {
  if (auto e = check_file_name(op.target()); !e.empty()) return "malformed rename: " + e;
  if (classify(op.target()) == FileKind::kSst) return "protocol error: rename onto an SST name";
  if (::rename(path(op.name()).c_str(), path(op.target()).c_str()) != 0)
    return "cannot rename mirror file " + op.name() + " to " + op.target() + ": " + std::strerror(errno);
  fds_.erase(op.target());
  if (auto it = fds_.find(op.name()); it != fds_.end()) {
    auto fd = std::move(it->second);
    fds_.erase(it);
    fds_.emplace(op.target(), std::move(fd));
  }
  return "";
}

std::string MirrorApplier::remove(const wire::FileOp& op) {
  if (classify(op.name()) == FileKind::kSst) {
    table_.remove(op.name());
    return "";
  }
  fds_.erase(op.name());
  if (::unlink(path(op.name()).c_str()) != 0 && errno != ENOENT)
    return "cannot delete mirror file " + path(op.name()) + ": " + std::strerror(errno);
  return "";
}

std::string MirrorApplier::install(const wire::FileOp& op) {
  if (op.slot() >= pool_.slot_count)
    return "protocol error: slot " + std::to_string(op.slot()) + " is outside this replica's pool of " +
           std::to_string(pool_.slot_count) + " slots: the head's --replica-pool differs from this replica's --pool";
  if (op.size() > pool_.slot_size)
    return "protocol error: " + op.name() + " has " + std::to_string(op.size()) + " bytes, more than a slot";
  return table_.install(op.name(), SlotFile{op.slot(), op.size()});
}

void MirrorApplier::reset() {
  pending_name_.clear();
  pending_.clear();
  fds_.clear();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  std::filesystem::create_directories(dir_, ec);
}

}  // namespace fastpath::rubble
