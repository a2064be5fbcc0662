// SPDX-License-Identifier: GPL-2.0
#include "pool.h"

#include <fcntl.h>
#include <glob.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "identity.h"

namespace fastpath::rubble {

namespace {

constexpr char kMagic[8] = {'R', 'U', 'B', 'B', 'L', 'E', 'P', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kIdBytes = 40, kChainBytes = 128, kSumOffset = 200;

template <typename T>
void put(char* p, T v) {
  std::memcpy(p, &v, sizeof(v));  // little-endian hosts only (x86_64)
}

template <typename T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

std::uint64_t fnv1a(const char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ULL;
  return h;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

void encode(const PoolHeader& h, char* b) {
  std::memset(b, 0, kBlock);
  std::memcpy(b, kMagic, sizeof(kMagic));
  put<std::uint32_t>(b + 8, kVersion);
  put<std::uint32_t>(b + 12, h.slot_count);
  put<std::uint64_t>(b + 16, h.slot_size);
  put<std::uint64_t>(b + 24, kPoolDataOffset);
  std::memcpy(b + 32, h.pool_id.data(), std::min(h.pool_id.size(), kIdBytes - 1));
  std::memcpy(b + 72, h.chain_id.data(), std::min(h.chain_id.size(), kChainBytes - 1));
  put<std::uint64_t>(b + kSumOffset, fnv1a(b, kSumOffset));
}

bool decode(const char* b, PoolHeader* h) {
  if (std::memcmp(b, kMagic, sizeof(kMagic)) != 0) return false;
  if (get<std::uint32_t>(b + 8) != kVersion) return false;
  if (get<std::uint64_t>(b + kSumOffset) != fnv1a(b, kSumOffset)) return false;
  if (get<std::uint64_t>(b + 24) != kPoolDataOffset) return false;
  h->slot_count = get<std::uint32_t>(b + 12);
  h->slot_size = get<std::uint64_t>(b + 16);
  h->pool_id.assign(b + 32, strnlen(b + 32, kIdBytes - 1));
  h->chain_id.assign(b + 72, strnlen(b + 72, kChainBytes - 1));
  return true;
}

UniqueFd open_direct(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_DIRECT | O_CLOEXEC, 0644));
  if (fd.get() >= 0) return fd;
  const int err = errno;
  if (err == EINVAL)
    throw std::runtime_error("pool " + path +
                             ": its file system does not support O_DIRECT (tmpfs?): put the pool on a disk file "
                             "system or use a block device");
  throw std::runtime_error("cannot open pool " + path + ": " + errno_text(err));
}

std::uint64_t device_size(int fd, const std::string& path, bool* is_file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error("cannot stat pool " + path + ": " + errno_text(errno));
  *is_file = S_ISREG(st.st_mode);
  if (*is_file) return static_cast<std::uint64_t>(st.st_size);
  if (!S_ISBLK(st.st_mode)) throw std::runtime_error("pool " + path + " is neither a regular file nor a block device");
  std::uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0)
    throw std::runtime_error("cannot get the size of block device " + path + ": " + errno_text(errno));
  return bytes;
}

void allocate_file(int fd, const std::string& path, std::uint64_t bytes) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0) return;
  if (errno != EOPNOTSUPP || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0)
    throw std::runtime_error("cannot allocate " + std::to_string(bytes >> 20) + " MiB for pool " + path + ": " +
                             errno_text(errno) + " (free some disk space or lower --pool-slots)");
}

std::optional<PoolHeader> read_header(int fd) {
  AlignedBuffer b(kBlock);
  if (::pread(fd, b.data(), kBlock, 0) != static_cast<ssize_t>(kBlock)) return std::nullopt;
  PoolHeader h;
  if (!decode(b.data(), &h)) return std::nullopt;
  return h;
}

std::uint32_t fit_slots(std::uint64_t bytes, std::uint64_t slot_size) {
  return bytes <= kPoolDataOffset ? 0 : static_cast<std::uint32_t>((bytes - kPoolDataOffset) / slot_size);
}

std::string mib(std::uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// Size check of an existing pool file or device; returns the slot count.
std::uint32_t size_pool(const std::string& path, std::uint64_t bytes, bool is_file, std::uint64_t slot_size,
                        std::uint32_t slots) {
  if (bytes % kBlock != 0)
    throw std::runtime_error("pool " + path + " is " + std::to_string(bytes) +
                             " bytes, not a multiple of 4096: it cannot be a pool; use a new file or a block device");
  const std::uint32_t fit = fit_slots(bytes, slot_size);
  if (slots > fit)
    throw std::runtime_error("pool " + path + " is " + mib(bytes) + ", too small for " + std::to_string(slots) +
                             " slots of " + mib(slot_size) + " (needs " +
                             mib(kPoolDataOffset + std::uint64_t{slots} * slot_size) + "): " +
                             (is_file ? "remove it to have it re-created, or lower --pool-slots"
                                      : "use a larger namespace or lower --pool-slots"));
  if (fit < 2)
    throw std::runtime_error("pool " + path + " is " + mib(bytes) + ", room for fewer than 2 slots of " +
                             mib(slot_size) + ": use a larger device or a smaller --sst-size");
  return slots ? slots : fit;
}

}  // namespace

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(size) {
  void* p = nullptr;
  if (::posix_memalign(&p, kBlock, std::max<std::size_t>(size, kBlock)) != 0) throw std::bad_alloc();
  std::memset(p, 0, std::max<std::size_t>(size, kBlock));
  p_.reset(static_cast<char*>(p));
}

Pool::Pool(Private, std::string path, UniqueFd fd, PoolHeader header)
    : path_(std::move(path)), fd_(std::move(fd)), header_(std::move(header)) {}

std::unique_ptr<Pool> Pool::format(const std::string& path, std::uint64_t slot_size, std::uint32_t slots) {
  const bool existed = ::access(path.c_str(), F_OK) == 0;
  UniqueFd fd = open_direct(path, O_RDWR | O_CREAT);
  bool is_file = true;
  if (!existed) {
    if (!slots) slots = kDefaultPoolSlots;
    allocate_file(fd.get(), path, kPoolDataOffset + std::uint64_t{slots} * slot_size);
  }
  const std::uint64_t bytes = device_size(fd.get(), path, &is_file);
  PoolHeader h;
  h.slot_size = slot_size;
  h.slot_count = size_pool(path, bytes, is_file, slot_size, slots);
  const auto old = read_header(fd.get());
  h.pool_id = old && old->slot_size == slot_size ? old->pool_id : random_id();
  h.chain_id = old && old->slot_size == slot_size ? old->chain_id : "";
  auto pool = std::make_unique<Pool>(Private{}, path, std::move(fd), h);
  pool->write_header();
  pool->cached_fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pool->cached_fd_) throw std::runtime_error("cannot open pool " + path + ": " + errno_text(errno));
  ::posix_fadvise(pool->cached_fd_.get(), 0, 0, POSIX_FADV_RANDOM);  // no readahead into other slots
  return pool;
}

std::unique_ptr<Pool> Pool::open(const std::string& path, std::uint64_t slot_size) {
  UniqueFd fd = open_direct(path, O_RDWR | O_DSYNC);
  const auto h = read_header(fd.get());
  if (!h)
    throw std::runtime_error("pool " + path +
                             " has no rubble pool header: start the replica that owns it (it formats its --pool) "
                             "before the head, or fix --replica-pool");
  if (h->slot_size != slot_size)
    throw std::runtime_error("pool " + path + " has slots of " + std::to_string(h->slot_size) +
                             " bytes but this head writes " + std::to_string(slot_size) +
                             "-byte slots: start every node with the same --sst-size");
  bool is_file = true;
  const std::uint64_t bytes = device_size(fd.get(), path, &is_file);
  if (bytes < kPoolDataOffset + h->slot_count * h->slot_size)
    throw std::runtime_error("pool " + path + " is smaller than its header says (" + mib(bytes) +
                             "): it was truncated; restart its replica to re-format it");
  return std::make_unique<Pool>(Private{}, path, std::move(fd), *h);
}

std::optional<PoolHeader> Pool::peek(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) return std::nullopt;
  return read_header(fd.get());
}

std::string locate_pool(const std::string& pool_id, const std::vector<std::string>& globs, const std::string& fallback,
                        std::string* why) {
  std::vector<std::string> candidates;
  for (const auto& pattern : globs) {
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
      for (std::size_t i = 0; i < g.gl_pathc; ++i) candidates.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
  }
  if (!fallback.empty()) candidates.push_back(fallback);
  std::string tried;
  for (const auto& path : candidates) {
    const auto h = Pool::peek(path);
    if (h && h->pool_id == pool_id) return path;
    tried += (tried.empty() ? "" : ", ") + path + (h ? " (pool " + h->pool_id + ")" : " (no pool)");
  }
  *why = "no path on this machine reaches pool " + pool_id + " (tried: " + (tried.empty() ? "nothing" : tried) +
         "): connect the replica's namespace here (nvme connect) and name it with --find-pools";
  return "";
}

void Pool::write_header() {
  AlignedBuffer b(kBlock);
  encode(header_, b.data());
  if (::pwrite(fd_.get(), b.data(), kBlock, 0) != static_cast<ssize_t>(kBlock))
    throw std::runtime_error("cannot write the header of pool " + path_ + ": " + errno_text(errno));
}

void Pool::set_chain_id(const std::string& chain_id) {
  header_.chain_id = chain_id;
  write_header();
}

std::string Pool::write_slot(std::uint32_t slot, const char* data, std::size_t len) {
  if (slot >= header_.slot_count) return "slot " + std::to_string(slot) + " is outside pool " + path_;
  if (len % kBlock != 0 || len > header_.slot_size)
    return "write of " + std::to_string(len) + " bytes does not fit a slot of pool " + path_;
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pwrite(fd_.get(), data + done, len - done, static_cast<off_t>(slot_offset(slot) + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "writing slot " + std::to_string(slot) + " of pool " + path_ + ": " + errno_text(errno);
    done += static_cast<std::size_t>(n);
  }
  return "";
}

long Pool::read_slot(std::uint32_t slot, std::uint64_t offset, std::size_t n, char* dst) const {
  if (slot >= header_.slot_count || offset + n > header_.slot_size) return -EINVAL;
  const std::uint64_t start = offset / kBlock * kBlock;
  const std::uint64_t end = round_up(offset + n, kBlock);
  thread_local AlignedBuffer bounce;
  if (bounce.size() < end - start) bounce = AlignedBuffer(round_up(end - start, 64 * 1024));
  std::size_t got = 0;
  while (got < end - start) {
    const ssize_t r =
        ::pread(fd_.get(), bounce.data() + got, end - start - got, static_cast<off_t>(slot_offset(slot) + start + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -EIO;
    got += static_cast<std::size_t>(r);
  }
  std::memcpy(dst, bounce.data() + (offset - start), n);
  return static_cast<long>(n);
}

long Pool::read_cached(std::uint32_t slot, std::uint64_t offset, std::size_t n, char* dst) const {
  if (!cached_fd_) return read_slot(slot, offset, n, dst);
  if (slot >= header_.slot_count || offset + n > header_.slot_size) return -EINVAL;
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r =
        ::pread(cached_fd_.get(), dst + got, n - got, static_cast<off_t>(slot_offset(slot) + offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -EIO;
    got += static_cast<std::size_t>(r);
  }
  return static_cast<long>(n);
}

void Pool::drop_cached(std::uint32_t slot) const {
  if (!cached_fd_ || slot >= header_.slot_count) return;
  ::posix_fadvise(cached_fd_.get(), static_cast<off_t>(slot_offset(slot)), static_cast<off_t>(header_.slot_size),
                  POSIX_FADV_DONTNEED);
}

}  // namespace fastpath::rubble
