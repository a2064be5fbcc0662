// SPDX-License-Identifier: GPL-2.0-only
// The file system dfused serves: a passthrough of the backend directory
// through libfuse's low-level API, modelled on libfuse's
// example/passthrough_ll.c. Every kernel inode is an O_PATH descriptor of a
// backend file (InodeTable); every open file a backend descriptor in fh.
//
// Caching per mode (FsConfig), chosen at FUSE_INIT:
//   lease, writeback: writeback_cache, keep_cache, entry/attr timeouts of 1 s
//                     (writeback) or 0 (lease: the kernel keeps a regular
//                     file's attributes while it holds its lease);
//                     the backend descriptor is opened O_RDWR for O_WRONLY and
//                     without O_APPEND (the kernel writes back whole pages and
//                     positions appends itself).
//   writethrough:     FOPEN_DIRECT_IO, 0 s timeouts: every read, write and
//                     stat reaches the backend; O_APPEND stays on the backend
//                     descriptor so appends from several nodes never overlap.
#pragma once

#include <fuse_lowlevel.h>

#include "fastpath/unique_fd.h"
#include "inode_table.h"
#include "mode.h"

namespace dfuse::dfused {

class Device;
class LeaseBridge;
class Filesystem;

// libfuse's one userdata pointer: the operations and the custom io both
// receive it.
struct SessionContext {
  Filesystem* fs = nullptr;
  Device* device = nullptr;
};

struct FsConfig {
  Mode mode = Mode::kWritethrough;
  double timeout = 0;  // entry and attribute timeout, seconds
  bool writeback = false;
  bool direct_io = true;
  bool keep_cache = false;
  // FUSE_HANDLE_KILLPRIV_V2 was accepted: dfused clears the set-ID bits
  // where the kernel marks a request (see note_request()).
  bool kill_suidgid = false;
};
FsConfig config_for(Mode mode);

// Whether a request (fuse_in_header and its argument, as read from
// /dev/fuse) carries the kernel's mark that its caller lacks CAP_FSETID, so
// the set-ID bits go (FUSE_HANDLE_KILLPRIV_V2): WRITE with
// FUSE_WRITE_KILL_SUIDGID, SETATTR with FATTR_KILL_SUIDGID (truncate, and
// every chown), OPEN and CREATE with FUSE_OPEN_KILL_SUIDGID (O_TRUNC).
// libfuse 3.14 passes none of these marks on.
bool request_kills_suidgid(const void* buf, size_t len);

class Filesystem {
 public:
  // `leases` is null unless the mount may run in lease mode.
  Filesystem(InodeTable& inodes, LeaseBridge* leases);
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Called once at FUSE_INIT, before libfuse's init() and before any other
  // request (the kernel sends none until INIT is answered).
  void configure(const FsConfig& config) { config_ = config; }
  const FsConfig& config() const { return config_; }

  static const fuse_lowlevel_ops& ops();

  // Called by the receive loop with each request before libfuse dispatches
  // it on the same thread: remembers request_kills_suidgid() for the
  // operation.
  static void note_request(const void* buf, size_t len);

  // The operations (public for the trampolines in passthrough.cpp).
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
  void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets);
  void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
  void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name);
  void unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
  void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags);
  void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi);
  void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus);
  void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void statfs(fuse_req_t req, fuse_ino_t ino);
  void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi);
  void copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in, fuse_ino_t ino_out,
                       off_t off_out, fuse_file_info* fi_out, size_t len, int flags);
  void lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);

 private:
  // Looks `name` up in `dir` and counts a lookup; 0 or an errno.
  int do_lookup(Inode& dir, const char* name, fuse_entry_param* e);
  void reply_entry_or_err(fuse_req_t req, Inode& dir, const char* name);
  // Gives a file created by root on behalf of another user to that user.
  void chown_new(fuse_req_t req, Inode& dir, int fd, const char* name);
  // If the kernel marked this request (kill_suidgid mode): clears what the
  // VFS clears for a caller without CAP_FSETID (setattr_should_drop_suidgid):
  // S_ISUID, and S_ISGID if the file is group-executable or the caller is not
  // in its group. `fd` is an open descriptor of the file, or -1. 0 or an errno.
  int kill_suidgid(fuse_req_t req, const Inode& inode, int fd);
  bool caller_in_group(fuse_req_t req, gid_t gid) const;
  int open_flags(int flags) const;
  void set_open_options(fuse_file_info* fi) const;
  int proc_open(const Inode& inode, int flags) const;
  std::string proc_path(const Inode& inode) const;
  // The backend number of `name` in `dir` (lease bookkeeping), 0 if none.
  ino_t ino_of(Inode& dir, const char* name) const;
  // Lease mode: forgets and unlinks give leases back.
  bool leasing() const { return leases_ != nullptr && config_.mode == Mode::kLease; }

  InodeTable& inodes_;
  LeaseBridge* const leases_;
  FsConfig config_;             // written at INIT, read-only afterwards
  fastpath::UniqueFd proc_fd_;  // /proc/self/fd
  const bool as_root_;
};

}  // namespace dfuse::dfused
