// SPDX-License-Identifier: GPL-2.0
// The SST pool of a rubble replica: a block device (an NVMe namespace, local
// or reached over NVMe-oF) or, on one machine, a pre-allocated file standing
// in for it.  Same code path for both: O_DIRECT I/O on fixed-size slots.
//
//   offset 0          1 MiB                1 MiB + S          1 MiB + 2S
//   | header (4 KiB)  | slot 0 (S bytes)   | slot 1           | ...
//
// S = 1.5 x the SST target size + 1 MiB, rounded up to 4 KiB (the published
// prototype used target + 1 MiB).  The largest SST the head makes is a
// flush: one memtable (the target size; the head's writer keeps RocksDB
// from merging two into one flush, head.cpp), the one write that crossed its size (at most
// a quarter of it, max_rubble_write) and RocksDB's encoding overhead (about
// 7% with 1 KiB values).  The replica that owns the pool formats it; the head opens it
// and writes each finished SST into a slot with one O_DIRECT|O_DSYNC write.
//
// The replica reads its slots through the page cache (read_cached), like a
// baseline replica reads its own SSTs, with readahead off.  The head's
// writes (remote ones over NVMe-oF in particular) do not go through that
// page cache, so the pages of a slot may be stale once the head reuses it;
// drop_cached(slot) must run before the new occupant is first read, and
// after the head has written it (SlotFileSystem does it when RocksDB opens
// the SST, which follows its INSTALL_SST, which follows the head's write).
// Pages cannot straddle two slots (4 KiB-aligned), and without readahead
// only explicit reads of installed SSTs bring a slot's pages in.
#pragma once

#include "fastpath/unique_fd.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fastpath::rubble {

inline constexpr std::uint64_t kBlock = 4096;
inline constexpr std::uint64_t kPoolDataOffset = 1 << 20;
inline constexpr std::uint64_t kSlotSlack = 1 << 20;
inline constexpr std::uint32_t kDefaultPoolSlots = 64;

inline std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
  return (v + to - 1) / to * to;
}
inline std::uint64_t slot_size_for(std::uint64_t sst_size) {
  return round_up(sst_size + sst_size / 2 + kSlotSlack, kBlock);
}
// The most key and value bytes a rubble head puts into its memtable at once
// (one client call, one group of the writer): larger writes are refused.
inline std::uint64_t max_rubble_write(std::uint64_t sst_size) {
  return sst_size / 4;
}

// A zeroed buffer aligned for O_DIRECT.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size);
  char* data() { return p_.get(); }
  const char* data() const { return p_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> p_;
  std::size_t size_ = 0;
};

using UniqueFd = fastpath::UniqueFd;

struct PoolHeader {
  std::uint64_t slot_size = 0;
  std::uint32_t slot_count = 0;
  std::string pool_id;   // random, set when the pool is first formatted
  std::string chain_id;  // "" until a chain adopts the pool
};

class Pool {
  struct Private {
    explicit Private() = default;
  };

 public:
  // Replica side: opens path, creating a regular file of the needed size
  // when it does not exist, and (re)formats it; every slot is free
  // afterwards.  slots = 0: kDefaultPoolSlots for a new file, else as many as
  // fit.  Keeps the pool id and chain of an existing pool with the same slot
  // size.  Throws std::runtime_error naming the cause and the fix.
  static std::unique_ptr<Pool> format(const std::string& path, std::uint64_t slot_size, std::uint32_t slots);
  // Head side: opens a pool its replica formatted and checks the slot size.
  static std::unique_ptr<Pool> open(const std::string& path, std::uint64_t slot_size);
  // The header at path, read with O_DIRECT (a pool reached over NVMe-oF is
  // read from the device, not from a stale page cache); nullopt when path
  // cannot be read or holds no pool.
  static std::optional<PoolHeader> peek(const std::string& path);

  Pool(Private, std::string path, UniqueFd fd, PoolHeader header);

  const PoolHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  std::uint64_t slot_offset(std::uint32_t slot) const { return kPoolDataOffset + slot * header_.slot_size; }

  // Records the chain in the header.  Throws on I/O error.
  void set_chain_id(const std::string& chain_id);
  // Writes len bytes (a multiple of kBlock, at most the slot size) from an
  // aligned buffer into slot with one write.  "" or the error.
  std::string write_slot(std::uint32_t slot, const char* data, std::size_t len);
  // Reads n bytes at offset inside slot into dst (any alignment) with
  // O_DIRECT.  Returns n, or -errno.
  long read_slot(std::uint32_t slot, std::uint64_t offset, std::size_t n, char* dst) const;
  // The same through the page cache (replica side only; see the top).
  long read_cached(std::uint32_t slot, std::uint64_t offset, std::size_t n, char* dst) const;
  // Forgets the page cache's copy of slot.
  void drop_cached(std::uint32_t slot) const;

 private:
  void write_header();

  const std::string path_;
  UniqueFd fd_;
  UniqueFd cached_fd_;  // replica side: buffered reads, POSIX_FADV_RANDOM
  PoolHeader header_;
};

// Where this machine reaches the pool whose id is pool_id: the first path
// matching one of globs (in order; glob(3) patterns, a plain path matches
// itself), then fallback, whose header carries that id.  "" when none does;
// then *why says what was tried and what to do.
std::string locate_pool(const std::string& pool_id, const std::vector<std::string>& globs, const std::string& fallback,
                        std::string* why);

}  // namespace fastpath::rubble
