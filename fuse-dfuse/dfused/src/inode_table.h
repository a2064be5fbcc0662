// SPDX-License-Identifier: GPL-2.0-only
// The inodes the kernel knows through this mount: one per backend inode,
// each holding an O_PATH descriptor of the backend file, named to the kernel
// by a nodeid (the Inode's address; FUSE_ROOT_ID for the root) and counted
// by lookups as the FUSE protocol requires (every entry reply adds one, a
// FORGET drops n).
//
// The same table answers the lease service's question "which kernel inode is
// file F?": FileId is the backend st_ino, which is also the table's key. The
// O_PATH descriptor pins the backend inode, so its number cannot be reused
// while any node caches it.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "fastpath/unique_fd.h"

namespace dfuse::dfused {

struct Inode {
  Inode(fastpath::UniqueFd path_fd, ino_t ino, mode_t type) : fd(std::move(path_fd)), ino(ino), type(type) {}
  const fastpath::UniqueFd fd;  // O_PATH | O_NOFOLLOW descriptor of the backend file
  const ino_t ino;              // backend st_ino: the FileId
  const mode_t type;            // S_IFMT bits
  uint64_t nlookup = 0;         // protected by InodeTable::mu_
};

class InodeTable {
 public:
  // `root_fd` is an O_PATH descriptor of the backend directory.
  explicit InodeTable(fastpath::UniqueFd root_fd);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Inode& root() { return *root_; }
  dev_t dev() const { return dev_; }

  fuse_ino_t nodeid(const Inode& inode) const;
  // The inode behind a nodeid the kernel sent. The kernel only sends nodeids
  // it looked up and has not forgotten, so this needs no lock.
  Inode& get(fuse_ino_t nodeid);
  // A reference that keeps `inode` alive past a FORGET (work handed to
  // another thread); nullptr when it is no longer in the table.
  std::shared_ptr<Inode> share(const Inode& inode) const;

  // Finds or adds the inode described by `st` (of `fd`) and counts one
  // lookup. `fd` is dropped when the inode is known already.
  Inode& remember(fastpath::UniqueFd fd, const struct stat& st);
  // Counts `n` more lookups of a known inode (hard link).
  void ref(Inode& inode, uint64_t n = 1);
  // Drops `n` lookups; returns the inode when it was the last, removed from
  // the table (it lives as long as the caller keeps it).
  std::shared_ptr<Inode> forget(Inode& inode, uint64_t n);

  // The inode with backend number `ino`, if the kernel holds it.
  std::shared_ptr<Inode> find(ino_t ino) const;
  size_t size() const;

 private:
  dev_t dev_ = 0;
  std::shared_ptr<Inode> root_;
  mutable std::mutex mu_;
  std::unordered_map<ino_t, std::shared_ptr<Inode>> by_ino_;  // protected by mu_; the root too
};

}  // namespace dfuse::dfused
