// SPDX-License-Identifier: GPL-2.0-only
#include "lease_bridge.h"

#include <fcntl.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "log.h"

namespace dfuse::dfused {

fuse_attr to_fuse_attr(const struct stat& st) {
  fuse_attr a{};
  a.ino = st.st_ino;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = static_cast<uint32_t>(st.st_rdev);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  return a;
}

FileId file_id(ino_t ino) {
  return std::to_string(ino);
}

namespace {

std::optional<ino_t> parse_file_id(const FileId& id) {
  ino_t ino = 0;
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), ino);
  if (ec != std::errc{} || end != id.data() + id.size()) return std::nullopt;
  return ino;
}

void split_timeout(double seconds, uint64_t* sec, uint32_t* nsec) {
  if (seconds < 0) seconds = 0;
  *sec = static_cast<uint64_t>(seconds);
  *nsec = static_cast<uint32_t>((seconds - static_cast<double>(*sec)) * 1e9);
}

}  // namespace

LeaseBridge::LeaseBridge(InodeTable& inodes, Writer write, double attr_timeout, std::chrono::milliseconds revoke_wait)
    : inodes_(inodes),
      write_(std::move(write)),
      attr_timeout_(attr_timeout),
      revoke_wait_(revoke_wait),
      pool_("dfused-lease", 256) {}

LeaseBridge::~LeaseBridge() {
  stop();
}

void LeaseBridge::stop() {
  pool_.stop();
}

std::shared_ptr<LeaseBridge::FileLease> LeaseBridge::file(ino_t ino, bool create) {
  std::lock_guard lock(files_mu_);
  auto it = files_.find(ino);
  if (it != files_.end()) return it->second;
  if (!create) return nullptr;
  return files_.emplace(ino, std::make_shared<FileLease>()).first->second;
}

void LeaseBridge::prune(ino_t ino) {
  std::lock_guard lock(files_mu_);
  auto it = files_.find(ino);
  if (it == files_.end() || it->second.use_count() != 1) return;  // someone else works on it
  std::lock_guard flock(it->second->mu);
  if (it->second->held == abi::kLeaseNone && it->second->acquiring == 0) files_.erase(it);
}

int LeaseBridge::write(const iovec* iov, int count) {
  {
    std::lock_guard lock(dev_mu_);
    if (dev_closed_) return -ENODEV;
    ++dev_writers_;
  }
  const int r = write_(iov, count);
  {
    std::lock_guard lock(dev_mu_);
    --dev_writers_;
  }
  dev_cv_.notify_all();
  return r;
}

void LeaseBridge::close_device() {
  std::unique_lock lock(dev_mu_);
  dev_closed_ = true;
  dev_cv_.wait(lock, [this] { return dev_writers_ == 0; });
}

void LeaseBridge::reply_error(uint64_t unique, int err) {
  fuse_out_header out{};
  out.len = sizeof(out);
  out.error = -err;
  out.unique = unique;
  const iovec iov{&out, sizeof(out)};
  const int r = write(&iov, 1);
  if (r < 0 && r != -ENOENT && r != -ENODEV) logf("lease reply: %s", std::strerror(-r));
}

void LeaseBridge::submit_request(uint64_t unique, fuse_ino_t nodeid, const abi::LeaseIn& in) {
  if (client_ == nullptr) return reply_error(unique, ENOSYS);
  if (in.mode != abi::kLeaseRead && in.mode != abi::kLeaseWrite) return reply_error(unique, EINVAL);
  // The kernel holds the inode while this request is pending, so get() is
  // safe here; the pool task keeps its own reference.
  auto inode = inodes_.share(inodes_.get(nodeid));
  if (!inode) return reply_error(unique, ESTALE);
  pool_.submit([this, unique, inode = std::move(inode), in] { handle_request(unique, inode, in); });
}

void LeaseBridge::handle_request(uint64_t unique, const std::shared_ptr<Inode>& inode, const abi::LeaseIn& in) {
  if (client_ == nullptr) return reply_error(unique, ENOSYS);
  const auto mode = static_cast<LeaseMode>(in.mode);
  const FileId id = file_id(inode->ino);
  auto fl = file(inode->ino, true);
  std::lock_guard seq(fl->seq);
  {
    std::lock_guard lock(fl->mu);
    ++fl->acquiring;
  }
  int err = 0;
  Grant grant;
  try {
    grant = client_->acquire(id, mode);
    if (grant.mode < mode) {
      logf("lease service granted mode %u for file %s, asked %u", grant.mode, id.c_str(), mode);
      err = EIO;
    }
  } catch (const std::exception& e) {
    logf("lease acquire for file %s: %s", id.c_str(), e.what());
    err = EIO;
  }
  struct stat st {};
  if (err == 0) {
    {
      std::lock_guard lock(fl->mu);
      fl->held = grant.mode;
      fl->generation = grant.generation;
    }
    if (fstatat(inode->fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
      err = (errno == ENOENT || errno == ESTALE) ? ESTALE : errno;
  }
  if (err != 0) {
    reply_error(unique, err);
  } else {
    struct {
      fuse_out_header hdr;
      abi::LeaseOut body;
    } msg{};
    msg.hdr.len = sizeof(msg);
    msg.hdr.unique = unique;
    msg.body.generation = grant.generation;
    split_timeout(attr_timeout_, &msg.body.attr_valid, &msg.body.attr_valid_nsec);
    msg.body.mode = grant.mode;
    msg.body.attr = to_fuse_attr(st);
    static_assert(sizeof(msg) == sizeof(fuse_out_header) + sizeof(abi::LeaseOut));
    const iovec iov{&msg, sizeof(msg)};
    const int r = write(&iov, 1);
    // ENOENT: the kernel gave up on the request (interrupted); the grant
    // stays held and is revoked by the service like any other.
    if (r < 0 && r != -ENOENT && r != -ENODEV) logf("lease reply for file %s: %s", id.c_str(), std::strerror(-r));
  }
  {
    std::lock_guard lock(fl->mu);
    --fl->acquiring;
    if (err == 0 && grant.generation > fl->replied) fl->replied = grant.generation;
  }
  fl->replied_cv.notify_all();
}

void LeaseBridge::handle_revoke(const Revoke& revoke) {
  const auto ino = parse_file_id(revoke.file);
  auto fl = ino ? file(*ino, false) : nullptr;
  if (fl) {
    // A grant the kernel has not been told of yet: let its reply go first.
    std::unique_lock lock(fl->mu);
    if (!fl->replied_cv.wait_for(lock, revoke_wait_,
                                 [&] { return fl->acquiring == 0 || fl->replied >= revoke.generation; }))
      logf("revoke of file %s generation %llu: no reply for it after %lld ms, revoking anyway", revoke.file.c_str(),
           static_cast<unsigned long long>(revoke.generation), static_cast<long long>(revoke_wait_.count()));
  }
  auto inode = ino ? inodes_.find(*ino) : nullptr;
  if (inode) {
    struct {
      fuse_out_header hdr;
      abi::NotifyLeaseRevoke body;
    } msg{};
    msg.hdr.len = sizeof(msg);
    msg.hdr.error = abi::kNotifyLeaseRevoke;
    msg.hdr.unique = 0;
    msg.body.nodeid = inodes_.nodeid(*inode);
    msg.body.generation = revoke.generation;
    msg.body.mode = revoke.new_mode;
    const iovec iov{&msg, sizeof(msg)};
    // Blocks until the kernel has written back and (kLeaseNone) invalidated.
    const int r = write(&iov, 1);
    if (r < 0 && r != -ENOENT && r != -ENODEV)
      logf("revoke of file %s (nodeid %llu): %s", revoke.file.c_str(), static_cast<unsigned long long>(msg.body.nodeid),
           std::strerror(-r));
  }
  if (fl) {
    std::lock_guard lock(fl->mu);
    if (fl->generation <= revoke.generation && fl->held > revoke.new_mode) fl->held = revoke.new_mode;
  }
  fl.reset();
  if (ino) prune(*ino);
  try {
    if (client_ != nullptr) client_->ack(revoke);
  } catch (const std::exception& e) {
    logf("ack of revoke of file %s: %s", revoke.file.c_str(), e.what());
  }
}

void LeaseBridge::release(ino_t ino, bool only_if_forgotten) {
  auto fl = file(ino, false);
  if (!fl || client_ == nullptr) return;
  {
    std::lock_guard seq(fl->seq);
    if (only_if_forgotten && inodes_.find(ino)) return;  // a newer kernel inode holds it now
    {
      std::lock_guard lock(fl->mu);
      if (fl->held == abi::kLeaseNone) return;
      fl->held = abi::kLeaseNone;
    }
    try {
      client_->release(file_id(ino));
    } catch (const std::exception& e) {
      logf("lease release of file %llu: %s", static_cast<unsigned long long>(ino), e.what());
    }
  }
  fl.reset();
  prune(ino);
}

void LeaseBridge::on_forgotten(ino_t ino) {
  if (client_ == nullptr || !file(ino, false)) return;
  pool_.submit([this, ino] { release(ino, true); });
}

void LeaseBridge::on_unlinked(ino_t ino) {
  if (client_ == nullptr || !file(ino, false)) return;
  pool_.submit([this, ino] {
    auto inode = inodes_.find(ino);
    struct stat st {};
    if (inode && fstatat(inode->fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink > 0)
      return;  // another name is left
    release(ino, false);
  });
}

LeaseMode LeaseBridge::held(ino_t ino) {
  auto fl = file(ino, false);
  if (!fl) return abi::kLeaseNone;
  std::lock_guard lock(fl->mu);
  return fl->held;
}

}  // namespace dfuse::dfused
