// SPDX-License-Identifier: GPL-2.0
#include "dbfile.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fastpath::bpfkv {

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(size) {
  const std::size_t rounded = (size + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(4096, rounded ? rounded : 4096);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded ? rounded : 4096);
  data_.reset(static_cast<std::byte*>(p));
}

void AlignedBuffer::Free::operator()(std::byte* p) const {
  std::free(p);
}

namespace {

std::string errno_text(int err) {
  return std::string(std::strerror(err));
}

Fd open_or_throw(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EINVAL && (flags & O_DIRECT))
      throw Error(path +
                  ": the file system does not support O_DIRECT (use --buffered, or put the database on "
                  "ext4, xfs or a block device)");
    throw Error(path + ": cannot open: " + errno_text(err));
  }
  return Fd(fd);
}

std::uint32_t dio_alignment(int fd) {
  if (is_block_device(fd)) {
    int lbs = 0;
    if (::ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0) return std::max(512u, static_cast<std::uint32_t>(lbs));
    return 4096;
  }
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align > 0)
    return std::max({512u, stx.stx_dio_offset_align, stx.stx_dio_mem_align});
  return 4096;
}

bpfkv_super read_super(int fd, const std::string& path, std::uint64_t size) {
  if (size < BPFKV_SUPER_SIZE)
    throw Error(path + ": not a bpfkv database: only " + std::to_string(size) +
                " bytes (another kind of file, or a truncated database)");
  if (size % BPFKV_ALIGN != 0)
    throw Error(path + ": not a bpfkv database: its size, " + std::to_string(size) + " bytes, is not a multiple of " +
                std::to_string(BPFKV_ALIGN) + " (another kind of file, or a truncated database)");
  bpfkv_super s{};
  const ssize_t n = ::pread(fd, &s, sizeof(s), static_cast<off_t>(size - BPFKV_SUPER_SIZE));
  if (n < 0) throw Error(path + ": reading the superblock: " + errno_text(errno));
  if (static_cast<std::size_t>(n) != sizeof(s)) throw Error(path + ": reading the superblock: short read");
  return s;
}

}  // namespace

bool is_block_device(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
}

std::uint64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(path + ": stat: " + errno_text(errno));
  if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
  if (!S_ISBLK(st.st_mode)) throw Error(path + ": not a regular file or a block device");
  std::uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) throw Error(path + ": BLKGETSIZE64: " + errno_text(errno));
  return bytes;
}

DbFile DbFile::open(const std::string& path, OpenOptions opts) {
  DbFile db;
  db.path_ = path;
  db.fd_ = open_or_throw(path, O_RDONLY);
  db.size_ = file_size(db.fd_.get(), path);
  db.geo_ = check_super(read_super(db.fd_.get(), path, db.size_), db.size_, path);
  db.direct_ = opts.direct;
  if (opts.direct) {
    db.fd_ = open_or_throw(path, O_RDONLY | O_DIRECT);
    db.io_align_ = dio_alignment(db.fd_.get());
    if (db.io_align_ > BPFKV_ALIGN)
      throw Error(path + ": direct I/O needs " + std::to_string(db.io_align_) +
                  "-byte alignment; bpfkv supports up to 4096 (use --buffered)");
  }
  return db;
}

void DbFile::read(void* buf, std::size_t len, std::uint64_t off) const {
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd_.get(), static_cast<char*>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw Error(path_ + ": read of " + std::to_string(len) + " bytes at offset " + std::to_string(off) + ": " +
                  errno_text(errno));
    if (n == 0)
      throw Error(path_ + ": truncated: read of " + std::to_string(len) + " bytes at offset " + std::to_string(off) +
                  " returned " + std::to_string(done));
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace fastpath::bpfkv
