// SPDX-License-Identifier: GPL-2.0-only
#include "passthrough.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "lease_bridge.h"
#include "log.h"

namespace dfuse::dfused {

FsConfig config_for(Mode mode) {
  FsConfig c;
  c.mode = mode;
  if (mode == Mode::kWritethrough) {
    c.timeout = 0;
    c.writeback = false;
    c.direct_io = true;
    c.keep_cache = false;
  } else {
    // Leases cover a regular file's data and attributes (the kernel keeps
    // them while it holds one, whatever the timeout) but not names or
    // directories: in lease mode those are looked up again every time.
    c.timeout = mode == Mode::kLease ? 0 : 1.0;
    c.writeback = true;
    c.direct_io = false;
    c.keep_cache = true;
  }
  return c;
}

bool request_kills_suidgid(const void* buf, size_t len) {
  fuse_in_header in;
  if (len < sizeof(in)) return false;
  std::memcpy(&in, buf, sizeof(in));
  const char* arg = static_cast<const char*>(buf) + sizeof(in);
  const size_t arg_len = len - sizeof(in);
  // Reads one field of the request's argument, or 0 if the body is shorter.
  auto field = [&](size_t offset) -> uint32_t {
    uint32_t v = 0;
    if (arg_len >= offset + sizeof(v)) std::memcpy(&v, arg + offset, sizeof(v));
    return v;
  };
  switch (in.opcode) {
    case FUSE_WRITE:
      return field(offsetof(fuse_write_in, write_flags)) & FUSE_WRITE_KILL_SUIDGID;
    case FUSE_SETATTR:
      return field(offsetof(fuse_setattr_in, valid)) & FATTR_KILL_SUIDGID;
    case FUSE_OPEN:
      return field(offsetof(fuse_open_in, open_flags)) & FUSE_OPEN_KILL_SUIDGID;
    case FUSE_CREATE:
      return field(offsetof(fuse_create_in, open_flags)) & FUSE_OPEN_KILL_SUIDGID;
    default:
      return false;
  }
}

namespace {

// request_kills_suidgid() of the request this thread is serving.
thread_local bool t_kill_suidgid = false;

Filesystem& fs(fuse_req_t req) {
  return *static_cast<SessionContext*>(fuse_req_userdata(req))->fs;
}

bool is_dot_or_dotdot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// An open directory: fi->fh while the kernel has it open.
struct Dir {
  struct Closer {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, Closer> dp;
  struct dirent* entry = nullptr;  // read but not yet returned
  off_t offset = 0;
};

Dir& dir_of(fuse_file_info* fi) {
  return *reinterpret_cast<Dir*>(static_cast<uintptr_t>(fi->fh));
}

void reply_errno(fuse_req_t req, int res) {
  fuse_reply_err(req, res == -1 ? errno : 0);
}

// The trampolines libfuse calls.
void op_init(void* userdata, fuse_conn_info* conn) {
  static_cast<SessionContext*>(userdata)->fs->init(conn);
}
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fs(req).lookup(req, parent, name);
}
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  fs(req).forget(req, ino, n);
}
void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* f) {
  fs(req).forget_multi(req, count, f);
}
void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).getattr(req, ino, fi);
}
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi) {
  fs(req).setattr(req, ino, attr, valid, fi);
}
void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  fs(req).readlink(req, ino);
}
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  fs(req).mknod(req, parent, name, mode, rdev);
}
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  fs(req).mkdir(req, parent, name, mode);
}
void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  fs(req).symlink(req, link, parent, name);
}
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  fs(req).link(req, ino, parent, name);
}
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fs(req).unlink(req, parent, name);
}
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fs(req).rmdir(req, parent, name);
}
void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  fs(req).rename(req, parent, name, newparent, newname, flags);
}
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  fs(req).create(req, parent, name, mode, fi);
}
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).open(req, ino, fi);
}
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  fs(req).read(req, ino, size, off, fi);
}
void op_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fs(req).write_buf(req, ino, in, off, fi);
}
void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).flush(req, ino, fi);
}
void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).release(req, ino, fi);
}
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  fs(req).fsync(req, ino, datasync, fi);
}
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).opendir(req, ino, fi);
}
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  fs(req).readdir(req, ino, size, off, fi, false);
}
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  fs(req).readdir(req, ino, size, off, fi, true);
}
void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fs(req).releasedir(req, ino, fi);
}
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  fs(req).fsyncdir(req, ino, datasync, fi);
}
void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  fs(req).statfs(req, ino);
}
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi) {
  fs(req).fallocate(req, ino, mode, off, len, fi);
}
void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in, fuse_ino_t ino_out,
                        off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  fs(req).copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out, len, flags);
}
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  fs(req).lseek(req, ino, off, whence, fi);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.symlink = op_symlink;
  o.link = op_link;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.rename = op_rename;
  o.create = op_create;
  o.open = op_open;
  o.read = op_read;
  o.write_buf = op_write_buf;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.readdirplus = op_readdirplus;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.fallocate = op_fallocate;
  o.copy_file_range = op_copy_file_range;
  o.lseek = op_lseek;
  return o;
}

}  // namespace

const fuse_lowlevel_ops& Filesystem::ops() {
  static const fuse_lowlevel_ops kOps = make_ops();
  return kOps;
}

void Filesystem::note_request(const void* buf, size_t len) {
  t_kill_suidgid = request_kills_suidgid(buf, len);
}

Filesystem::Filesystem(InodeTable& inodes, LeaseBridge* leases)
    : inodes_(inodes),
      leases_(leases),
      proc_fd_(::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC)),
      as_root_(geteuid() == 0) {
  if (!proc_fd_) throw std::system_error(errno, std::generic_category(), "open /proc/self/fd");
}

void Filesystem::init(fuse_conn_info* conn) {
  // Requests must arrive in memory: dfused reads the opcode of each one.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // The daemon writes as root, so the backend never clears suid/sgid by
  // itself: the kernel does it (SETATTR of the mode), or, with
  // FUSE_HANDLE_KILLPRIV_V2 (kill_suidgid), marks the requests for dfused.
  // Never v1, which would leave the whole job to dfused without saying when.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  if (config_.writeback) {
    if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
      conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else
      logf("the kernel does not offer writeback_cache; running without it");
  } else {
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }
  if (config_.mode == Mode::kLease) {
    // Truncation at open goes through SETATTR, under the kernel's lease
    // checks; a cached size is never second-guessed by mtime.
    conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_AUTO_INVAL_DATA);
  }
}

std::string Filesystem::proc_path(const Inode& inode) const {
  return "/proc/self/fd/" + std::to_string(inode.fd.get());
}

int Filesystem::proc_open(const Inode& inode, int flags) const {
  return ::openat(proc_fd_.get(), std::to_string(inode.fd.get()).c_str(), (flags & ~O_NOFOLLOW) | O_CLOEXEC);
}

int Filesystem::do_lookup(Inode& dir, const char* name, fuse_entry_param* e) {
  *e = fuse_entry_param{};
  e->attr_timeout = config_.timeout;
  e->entry_timeout = config_.timeout;
  fastpath::UniqueFd fd(::openat(dir.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno;
  if (fstatat(fd.get(), "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) return errno;
  // FileId is st_ino: one backend file system only.
  if (e->attr.st_dev != inodes_.dev()) return EXDEV;
  Inode& inode = inodes_.remember(std::move(fd), e->attr);
  e->ino = inodes_.nodeid(inode);
  return 0;
}

void Filesystem::reply_entry_or_err(fuse_req_t req, Inode& dir, const char* name) {
  fuse_entry_param e;
  const int err = do_lookup(dir, name, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else if (fuse_reply_entry(req, &e) == -ENOENT) {
    // The request was interrupted: the kernel did not take the lookup.
    (void)inodes_.forget(inodes_.get(e.ino), 1);
  }
}

void Filesystem::chown_new(fuse_req_t req, Inode& dir, int fd, const char* name) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (!as_root_ || (ctx->uid == 0 && ctx->gid == 0)) return;
  struct stat parent {};
  const bool setgid_dir = fstatat(dir.fd.get(), "", &parent, AT_EMPTY_PATH) == 0 && (parent.st_mode & S_ISGID);
  const gid_t gid = setgid_dir ? static_cast<gid_t>(-1) : ctx->gid;
  const int res =
      fd >= 0 ? fchown(fd, ctx->uid, gid) : fchownat(dir.fd.get(), name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
  if (res == -1) logf("chown of new file %s to uid %u: %s", name, ctx->uid, std::strerror(errno));
}

bool Filesystem::caller_in_group(fuse_req_t req, gid_t gid) const {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  // Root stands for CAP_FSETID here: the kernel marks every chown, whoever
  // calls it.
  if (ctx->uid == 0 || ctx->gid == gid) return true;
  std::vector<gid_t> groups(32);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  for (int i = 0; i < n && i < static_cast<int>(groups.size()); ++i)
    if (groups[static_cast<size_t>(i)] == gid) return true;
  return false;
}

int Filesystem::kill_suidgid(fuse_req_t req, const Inode& inode, int fd) {
  if (!config_.kill_suidgid || !t_kill_suidgid) return 0;
  struct stat st {};
  if ((fd >= 0 ? fstat(fd, &st) : fstatat(inode.fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) == -1)
    return errno;
  if (!S_ISREG(st.st_mode)) return 0;
  const mode_t mode = st.st_mode & 07777;
  mode_t kill = mode & S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || !caller_in_group(req, st.st_gid))) kill |= S_ISGID;
  if (kill == 0) return 0;
  const int res = fd >= 0 ? fchmod(fd, mode & ~kill) : chmod(proc_path(inode).c_str(), mode & ~kill);
  return res == -1 ? errno : 0;
}

ino_t Filesystem::ino_of(Inode& dir, const char* name) const {
  struct stat st {};
  return fstatat(dir.fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino : 0;
}

void Filesystem::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_entry_or_err(req, inodes_.get(parent), name);
}

void Filesystem::forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  if (auto gone = inodes_.forget(inodes_.get(ino), nlookup); gone && leasing()) leases_->on_forgotten(gone->ino);
  fuse_reply_none(req);
}

void Filesystem::forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i)
    if (auto gone = inodes_.forget(inodes_.get(forgets[i].ino), forgets[i].nlookup); gone && leasing())
      leases_->on_forgotten(gone->ino);
  fuse_reply_none(req);
}

void Filesystem::getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  struct stat st {};
  if (fstatat(inodes_.get(ino).fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
    return (void)fuse_reply_err(req, errno);
  fuse_reply_attr(req, &st, config_.timeout);
}

void Filesystem::setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi) {
  Inode& inode = inodes_.get(ino);
  const int fh = fi ? static_cast<int>(fi->fh) : -1;
  const std::string path = proc_path(inode);
  // Before a chown, whose check is against the file's old group.
  if (const int err = kill_suidgid(req, inode, fh); err != 0) return (void)fuse_reply_err(req, err);
  if (valid & FUSE_SET_ATTR_MODE) {
    const int res = fh >= 0 ? fchmod(fh, attr->st_mode) : chmod(path.c_str(), attr->st_mode);
    if (res == -1) return (void)fuse_reply_err(req, errno);
  }
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    const uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    const gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    if (fchownat(inode.fd.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
      return (void)fuse_reply_err(req, errno);
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    const int res = fh >= 0 ? ftruncate(fh, attr->st_size) : truncate(path.c_str(), attr->st_size);
    if (res == -1) return (void)fuse_reply_err(req, errno);
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) {
    timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
      tv[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
      tv[0] = attr->st_atim;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
      tv[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
      tv[1] = attr->st_mtim;
    int res;
    if (fh >= 0)
      res = futimens(fh, tv);
    else if (inode.type == S_IFLNK)
      res = utimensat(inode.fd.get(), "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    else
      res = utimensat(AT_FDCWD, path.c_str(), tv, 0);
    if (res == -1) return (void)fuse_reply_err(req, errno);
  }
  getattr(req, ino, fi);
}

void Filesystem::readlink(fuse_req_t req, fuse_ino_t ino) {
  std::vector<char> buf(PATH_MAX + 1);
  const ssize_t n = readlinkat(inodes_.get(ino).fd.get(), "", buf.data(), buf.size());
  if (n == -1) return (void)fuse_reply_err(req, errno);
  if (static_cast<size_t>(n) == buf.size()) return (void)fuse_reply_err(req, ENAMETOOLONG);
  buf[static_cast<size_t>(n)] = '\0';
  fuse_reply_readlink(req, buf.data());
}

void Filesystem::mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Inode& dir = inodes_.get(parent);
  if (mknodat(dir.fd.get(), name, mode, rdev) == -1) return (void)fuse_reply_err(req, errno);
  chown_new(req, dir, -1, name);
  reply_entry_or_err(req, dir, name);
}

void Filesystem::mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Inode& dir = inodes_.get(parent);
  if (mkdirat(dir.fd.get(), name, mode) == -1) return (void)fuse_reply_err(req, errno);
  chown_new(req, dir, -1, name);
  reply_entry_or_err(req, dir, name);
}

void Filesystem::symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Inode& dir = inodes_.get(parent);
  if (symlinkat(link, dir.fd.get(), name) == -1) return (void)fuse_reply_err(req, errno);
  chown_new(req, dir, -1, name);
  reply_entry_or_err(req, dir, name);
}

void Filesystem::link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  Inode& inode = inodes_.get(ino);
  Inode& dir = inodes_.get(parent);
  if (linkat(AT_FDCWD, proc_path(inode).c_str(), dir.fd.get(), name, AT_SYMLINK_FOLLOW) == -1)
    return (void)fuse_reply_err(req, errno);
  fuse_entry_param e{};
  e.attr_timeout = config_.timeout;
  e.entry_timeout = config_.timeout;
  if (fstatat(inode.fd.get(), "", &e.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
    return (void)fuse_reply_err(req, errno);
  inodes_.ref(inode);
  e.ino = inodes_.nodeid(inode);
  if (fuse_reply_entry(req, &e) == -ENOENT) (void)inodes_.forget(inode, 1);
}

void Filesystem::unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Inode& dir = inodes_.get(parent);
  const ino_t ino = leasing() ? ino_of(dir, name) : 0;
  const int res = unlinkat(dir.fd.get(), name, 0);
  if (res == 0 && ino != 0) leases_->on_unlinked(ino);
  reply_errno(req, res);
}

void Filesystem::rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_errno(req, unlinkat(inodes_.get(parent).fd.get(), name, AT_REMOVEDIR));
}

void Filesystem::rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                        unsigned int flags) {
  Inode& dir = inodes_.get(parent);
  Inode& newdir = inodes_.get(newparent);
  // A replaced target loses a link like an unlinked file.
  const ino_t replaced = leasing() && !(flags & RENAME_EXCHANGE) ? ino_of(newdir, newname) : 0;
  const ino_t moved = replaced != 0 ? ino_of(dir, name) : 0;
  const int res = renameat2(dir.fd.get(), name, newdir.fd.get(), newname, flags);
  if (res == 0 && replaced != 0 && replaced != moved) leases_->on_unlinked(replaced);
  reply_errno(req, res);
}

int Filesystem::open_flags(int flags) const {
  if (config_.writeback) {
    // The kernel reads whole pages around partial writes and positions
    // appends itself (passthrough_ll does the same).
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

void Filesystem::set_open_options(fuse_file_info* fi) const {
  fi->direct_io = config_.direct_io ? 1 : 0;
  fi->keep_cache = config_.keep_cache ? 1 : 0;
}

void Filesystem::create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Inode& dir = inodes_.get(parent);
  const int flags = (open_flags(fi->flags) | O_CREAT | O_CLOEXEC) & ~O_NOFOLLOW;
  // Create exclusively first, so that only a file made here changes owner.
  bool created = true;
  int fd = ::openat(dir.fd.get(), name, flags | O_EXCL, mode);
  if (fd == -1 && errno == EEXIST && !(fi->flags & O_EXCL)) {
    created = false;
    fd = ::openat(dir.fd.get(), name, flags & ~O_CREAT, mode);
  }
  if (fd == -1) return (void)fuse_reply_err(req, errno);
  fastpath::UniqueFd file(fd);
  if (created) {
    chown_new(req, dir, file.get(), name);
  } else if (const int err = kill_suidgid(req, dir, file.get()); err != 0) {
    return (void)fuse_reply_err(req, err);  // an existing file opened with O_TRUNC
  }
  fuse_entry_param e;
  if (const int err = do_lookup(dir, name, &e); err != 0) return (void)fuse_reply_err(req, err);
  fi->fh = static_cast<uint64_t>(file.release());
  set_open_options(fi);
  if (fuse_reply_create(req, &e, fi) == -ENOENT) {
    ::close(static_cast<int>(fi->fh));
    (void)inodes_.forget(inodes_.get(e.ino), 1);
  }
}

void Filesystem::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode& inode = inodes_.get(ino);
  const int fd = proc_open(inode, open_flags(fi->flags));
  if (fd == -1) return (void)fuse_reply_err(req, errno);
  if (const int err = kill_suidgid(req, inode, fd); err != 0) {  // O_TRUNC
    ::close(fd);
    return (void)fuse_reply_err(req, err);
  }
  fi->fh = static_cast<uint64_t>(fd);
  set_open_options(fi);
  if (fuse_reply_open(req, fi) == -ENOENT) ::close(fd);
}

void Filesystem::read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = static_cast<int>(fi->fh);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_NO_SPLICE);
}

void Filesystem::write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  // Before the data, as file_remove_privs() does.
  if (const int err = kill_suidgid(req, inodes_.get(ino), static_cast<int>(fi->fh)); err != 0)
    return (void)fuse_reply_err(req, err);
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = static_cast<int>(fi->fh);
  out.buf[0].pos = off;
  const ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_NO_SPLICE);
  if (n < 0)
    fuse_reply_err(req, static_cast<int>(-n));
  else
    fuse_reply_write(req, static_cast<size_t>(n));
}

void Filesystem::flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  // close() of a duplicate: what close(2) would do to the backend file (an
  // NFS backend writes back on close).
  const int dup = ::dup(static_cast<int>(fi->fh));
  reply_errno(req, dup == -1 ? -1 : ::close(dup));
}

void Filesystem::release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  ::close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void Filesystem::fsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  const int fd = static_cast<int>(fi->fh);
  reply_errno(req, datasync ? fdatasync(fd) : ::fsync(fd));
}

void Filesystem::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const int fd = ::openat(inodes_.get(ino).fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) return (void)fuse_reply_err(req, errno);
  auto d = std::make_unique<Dir>();
  d->dp.reset(fdopendir(fd));
  if (!d->dp) {
    const int err = errno;
    ::close(fd);
    return (void)fuse_reply_err(req, err);
  }
  fi->fh = reinterpret_cast<uintptr_t>(d.get());
  if (fuse_reply_open(req, fi) == 0) (void)d.release();  // owned by the kernel's open directory now
}

void Filesystem::readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  Dir& d = dir_of(fi);
  Inode& dir = inodes_.get(ino);
  std::vector<char> buf(size);
  size_t used = 0;
  if (off != d.offset) {
    seekdir(d.dp.get(), off);
    d.entry = nullptr;
    d.offset = off;
  }
  int err = 0;
  for (;;) {
    if (d.entry == nullptr) {
      errno = 0;
      d.entry = ::readdir(d.dp.get());
      if (d.entry == nullptr) {
        err = errno;
        break;
      }
    }
    const off_t next = d.entry->d_off;
    const char* name = d.entry->d_name;
    size_t len;
    fuse_ino_t looked_up = 0;
    if (plus) {
      fuse_entry_param e{};
      // "." and "..", and entries that vanished or cannot be looked up, go
      // out without attributes (nodeid 0: the kernel only lists them).
      if (is_dot_or_dotdot(name) || do_lookup(dir, name, &e) != 0) {
        e = fuse_entry_param{};
        e.attr.st_ino = d.entry->d_ino;
        e.attr.st_mode = static_cast<mode_t>(d.entry->d_type) << 12;
      } else {
        looked_up = e.ino;
      }
      len = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, next);
    } else {
      struct stat st {};
      st.st_ino = d.entry->d_ino;
      st.st_mode = static_cast<mode_t>(d.entry->d_type) << 12;
      len = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, next);
    }
    if (len > size - used) {
      if (looked_up != 0) (void)inodes_.forget(inodes_.get(looked_up), 1);
      break;
    }
    used += len;
    d.entry = nullptr;
    d.offset = next;
  }
  // An error after some entries: return those (their lookups are counted).
  if (err != 0 && used == 0) return (void)fuse_reply_err(req, err);
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  std::unique_ptr<Dir> d(&dir_of(fi));
  d.reset();
  fuse_reply_err(req, 0);
}

void Filesystem::fsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  const int fd = dirfd(dir_of(fi).dp.get());
  reply_errno(req, datasync ? fdatasync(fd) : ::fsync(fd));
}

void Filesystem::statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs st {};
  if (fstatvfs(inodes_.get(ino).fd.get(), &st) == -1) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &st);
}

void Filesystem::fallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t off, off_t len, fuse_file_info* fi) {
  reply_errno(req, ::fallocate(static_cast<int>(fi->fh), mode, off, len));
}

void Filesystem::copy_file_range(fuse_req_t req, fuse_ino_t /*ino_in*/, off_t off_in, fuse_file_info* fi_in,
                                 fuse_ino_t /*ino_out*/, off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  const ssize_t n = ::copy_file_range(static_cast<int>(fi_in->fh), &off_in, static_cast<int>(fi_out->fh), &off_out, len,
                                      static_cast<unsigned>(flags));
  if (n == -1) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, static_cast<size_t>(n));
}

void Filesystem::lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence, fuse_file_info* fi) {
  const off_t r = ::lseek(static_cast<int>(fi->fh), off, whence);
  if (r == -1) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

}  // namespace dfuse::dfused
