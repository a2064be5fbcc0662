// SPDX-License-Identifier: GPL-2.0-only
#include "inode_table.h"

#include <fcntl.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <limits>
#include <system_error>

namespace dfuse::dfused {

InodeTable::InodeTable(fastpath::UniqueFd root_fd) {
  struct stat st {};
  if (fstatat(root_fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
    throw std::system_error(errno, std::generic_category(), "stat of the backend directory");
  dev_ = st.st_dev;
  root_ = std::make_shared<Inode>(std::move(root_fd), st.st_ino, st.st_mode & S_IFMT);
  root_->nlookup = std::numeric_limits<uint64_t>::max() / 2;  // never forgotten
  by_ino_.emplace(st.st_ino, root_);
}

fuse_ino_t InodeTable::nodeid(const Inode& inode) const {
  return &inode == root_.get() ? FUSE_ROOT_ID : reinterpret_cast<uintptr_t>(&inode);
}

Inode& InodeTable::get(fuse_ino_t nodeid) {
  return nodeid == FUSE_ROOT_ID ? *root_ : *reinterpret_cast<Inode*>(static_cast<uintptr_t>(nodeid));
}

std::shared_ptr<Inode> InodeTable::share(const Inode& inode) const {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(inode.ino);
  return it != by_ino_.end() && it->second.get() == &inode ? it->second : nullptr;
}

Inode& InodeTable::remember(fastpath::UniqueFd fd, const struct stat& st) {
  std::lock_guard lock(mu_);
  auto [it, added] = by_ino_.try_emplace(st.st_ino);
  if (added) it->second = std::make_shared<Inode>(std::move(fd), st.st_ino, st.st_mode & S_IFMT);
  ++it->second->nlookup;
  return *it->second;
}

void InodeTable::ref(Inode& inode, uint64_t n) {
  std::lock_guard lock(mu_);
  inode.nlookup += n;
}

std::shared_ptr<Inode> InodeTable::forget(Inode& inode, uint64_t n) {
  if (&inode == root_.get()) return nullptr;
  std::lock_guard lock(mu_);
  assert(inode.nlookup >= n);
  inode.nlookup -= std::min(n, inode.nlookup);
  if (inode.nlookup > 0) return nullptr;
  auto it = by_ino_.find(inode.ino);
  if (it == by_ino_.end() || it->second.get() != &inode) return nullptr;
  auto gone = std::move(it->second);
  by_ino_.erase(it);
  return gone;
}

std::shared_ptr<Inode> InodeTable::find(ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : it->second;
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_ino_.size();
}

}  // namespace dfuse::dfused
