// SPDX-License-Identifier: GPL-2.0
#include "create.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ostream>
#include <vector>

#include "dbfile.h"
#include "fastpath/progress.h"

namespace fastpath::bpfkv {

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

void pwrite_all(int fd, const std::string& path, const std::byte* p, std::size_t len, std::uint64_t off) {
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path + ": write at offset " + std::to_string(off) + ": " + errno_text());
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
}

// Sequential writer with a 1 MiB buffer.
class Writer {
 public:
  Writer(int fd, std::string path) : fd_(fd), path_(std::move(path)), buf_(1 << 20) {}

  void append(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const std::size_t n = std::min(bytes.size(), buf_.size() - used_);
      std::memcpy(buf_.data() + used_, bytes.data(), n);
      used_ += n;
      bytes = bytes.subspan(n);
      if (used_ == buf_.size()) flush();
    }
  }
  void zeros_to(std::uint64_t off) {
    const std::vector<std::byte> zero(4096);
    while (pos() < off)
      append(std::span(zero).first(static_cast<std::size_t>(std::min<std::uint64_t>(4096, off - pos()))));
  }
  std::uint64_t pos() const { return flushed_ + used_; }
  void flush() {
    pwrite_all(fd_, path_, buf_.data(), used_, flushed_);
    flushed_ += used_;
    used_ = 0;
  }

 private:
  int fd_;
  std::string path_;
  std::vector<std::byte> buf_;
  std::size_t used_ = 0;
  std::uint64_t flushed_ = 0;
};

bool all_zero(std::span<const std::byte> b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

// An empty file, a bpfkv database, or a block device that looks blank or
// holds a database: safe to overwrite without --force.
bool replaceable(int fd, std::uint64_t size) {
  if (size == 0) return true;
  if (size < BPFKV_SUPER_SIZE) return false;
  std::vector<std::byte> head(4096), tail(BPFKV_SUPER_SIZE);
  if (::pread(fd, tail.data(), tail.size(), static_cast<off_t>(size - BPFKV_SUPER_SIZE)) !=
      static_cast<ssize_t>(tail.size()))
    return false;
  std::uint64_t magic = 0;
  std::memcpy(&magic, tail.data(), sizeof(magic));
  if (magic == BPFKV_SUPER_MAGIC) return true;
  if (!is_block_device(fd)) return false;
  if (::pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) return false;
  return all_zero(head) && all_zero(tail);
}

std::uint64_t ipow(std::uint64_t b, std::uint32_t e) {
  std::uint64_t r = 1;
  while (e--) r *= b;
  return r;
}

void write_level(Writer& w, const Geometry& g, std::uint32_t level, Progress& progress) {
  const bool leaf = level + 1 == g.layers;
  const std::uint64_t nodes = g.level_nodes(level);
  const std::uint64_t per_child = ipow(g.fanout, g.layers - level - 1);  // keys under one child
  std::vector<std::byte> node(g.node_size);
  std::vector<std::uint64_t> keys(g.fanout), ptrs(g.fanout);
  for (std::uint64_t j = 0; j < nodes; ++j) {
    for (std::uint32_t c = 0; c < g.fanout; ++c) {
      const std::uint64_t child = j * g.fanout + c;
      keys[c] = g.key(child * per_child);
      ptrs[c] = leaf ? g.value_off(child) : g.level_off[level + 1] + child * g.node_size;
    }
    const std::uint64_t next = leaf && j + 1 < nodes ? g.level_off[level] + (j + 1) * g.node_size : BPFKV_NO_NEXT;
    encode_node(node, g.node_size, leaf, next, keys, ptrs);
    w.append(node);
    progress.add();
  }
}

void write_values(Writer& w, const Geometry& g, Progress& progress) {
  std::vector<std::byte> block(BPFKV_VALUE_BLOCK);
  for (std::uint64_t i = 0; i < g.nkeys; i += g.values_per_block) {
    std::fill(block.begin(), block.end(), std::byte{0});
    const std::uint64_t n = std::min<std::uint64_t>(g.values_per_block, g.nkeys - i);
    for (std::uint64_t v = 0; v < n; ++v)
      fill_value(g.key(i + v), std::span(block).subspan(v * g.value_size, g.value_size));
    w.append(block);
    progress.add(n);
  }
}

}  // namespace

CreateResult create_db(const std::string& path, const CreateOptions& opts) {
  const Geometry g = Geometry::make(opts.params);
  const int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (raw < 0) throw Error(path + ": cannot open for writing: " + errno_text());
  Fd fd(raw);
  const bool blockdev = is_block_device(fd.get());
  const std::uint64_t old_size = file_size(fd.get(), path);
  if (!opts.force && !replaceable(fd.get(), old_size))
    throw Error(path + ": exists and is not a bpfkv database (" + std::to_string(old_size) +
                " bytes); use --force to overwrite it");
  const std::uint64_t size = blockdev ? old_size : g.min_file_size();
  if (size < g.min_file_size())
    throw Error(path + ": the device has " + std::to_string(size) + " bytes, the database needs " +
                std::to_string(g.min_file_size()) + " (use fewer layers or a smaller fanout)");
  if (!blockdev && ::ftruncate(fd.get(), 0) != 0) throw Error(path + ": truncate: " + errno_text());

  std::ostream null_out(nullptr);
  Progress progress("create " + path, g.level_off[g.layers] / g.node_size + g.nkeys,
                    opts.progress ? *opts.progress : null_out, opts.progress_terminal);
  Writer w(fd.get(), path);
  for (std::uint32_t level = 0; level < g.layers; ++level) write_level(w, g, level, progress);
  w.zeros_to(g.log_off);
  write_values(w, g, progress);
  w.zeros_to(g.log_end());
  w.flush();

  std::vector<std::byte> super(BPFKV_SUPER_SIZE);
  const bpfkv_super s = make_super(g, size);
  std::memcpy(super.data(), &s, sizeof(s));
  pwrite_all(fd.get(), path, super.data(), super.size(), size - BPFKV_SUPER_SIZE);
  if (::fsync(fd.get()) != 0) throw Error(path + ": fsync: " + errno_text());
  progress.finish();
  return {g, size};
}

}  // namespace fastpath::bpfkv
