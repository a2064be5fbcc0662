// SPDX-License-Identifier: GPL-2.0
// An open BPF-KV database: the descriptor, its checked geometry, and the
// alignment direct I/O needs on it.  Plus the small RAII helpers the back-ends
// share (file descriptor, aligned buffer).
#pragma once

#include "fastpath/unique_fd.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "layout.h"

namespace fastpath::bpfkv {

// Owns a file descriptor (tools/common).
using Fd = fastpath::UniqueFd;

// Zeroed memory aligned for O_DIRECT (4096 bytes).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size);
  std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::span<std::byte> span() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte[], Free> data_;
  std::size_t size_ = 0;
};

// Size in bytes of a regular file or block device.
std::uint64_t file_size(int fd, const std::string& path);
bool is_block_device(int fd);

struct OpenOptions {
  bool direct = true;  // O_DIRECT; false for file systems without it
};

class DbFile {
 public:
  // Opens path read-only, reads and checks the superblock.  Throws Error.
  static DbFile open(const std::string& path, OpenOptions opts = {});

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  const Geometry& geo() const { return geo_; }
  std::uint64_t size() const { return size_; }
  bool direct() const { return direct_; }
  // Offset, length and memory alignment of a read (the device's logical
  // block size under O_DIRECT, at least 512).
  std::uint32_t io_align() const { return io_align_; }
  // Reads exactly len bytes at off into buf (aligned for O_DIRECT).  Throws
  // Error naming the file, offset and cause, "truncated" on a short read.
  void read(void* buf, std::size_t len, std::uint64_t off) const;

 private:
  std::string path_;
  Fd fd_;
  Geometry geo_;
  std::uint64_t size_ = 0;
  bool direct_ = true;
  std::uint32_t io_align_ = 512;
};

// The aligned read that covers [off, off + len): offset and size multiples of align.
struct Extent {
  std::uint64_t off;
  std::uint32_t len;
};
inline Extent covering(std::uint64_t off, std::uint32_t len, std::uint32_t align) {
  const std::uint64_t start = off / align * align;
  const std::uint64_t end = (off + len + align - 1) / align * align;
  return {start, static_cast<std::uint32_t>(end - start)};
}

}  // namespace fastpath::bpfkv
