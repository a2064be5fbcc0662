// SPDX-License-Identifier: GPL-2.0
// The one interface every BPF-KV back-end implements, and the factory.
//
//   pread     one pread() per index level and one for the value (O_DIRECT)
//   io_uring  the same reads through liburing, the lookups of a batch in flight together
//   xrp       one read_xrp() per batch of keys: the BPF programs walk the
//             tree in the kernel (only on the fastpath kernel, in the VM)
//   xrp-emu   the XRP programs' step functions run in user space over pread,
//             with read_xrp()'s rules (a test aid; works anywhere)
//
// Threading: a back-end object is used by one thread at a time; several
// back-ends may share one DbFile.  Errors (corruption, I/O) are thrown as
// Error with the file name and the cause; a back-end checks every node it
// reads and never returns a value that does not carry the key asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dbfile.h"

namespace fastpath::bpfkv {

enum class AggOp { Count, Sum, Min, Max };

// Aggregation over a key range.  min and max are meaningful when count > 0;
// for AggOp::Count only count is computed.
struct AggResult {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t min = ~0ULL;
  std::uint64_t max = 0;
  std::uint64_t value(AggOp op) const;
  void add(std::uint64_t v);
};

// Position of a RANGE scan over [next, end); resumable across range() calls
// and across back-ends.
struct RangeCursor {
  std::uint64_t next = 0;
  std::uint64_t end = 0;
  bool done = false;
};

struct BackendOptions {
  std::uint32_t queue_depth = 64;                 // io_uring: reads in flight
  std::uint32_t max_reads = BPFKV_XRP_MAX_READS;  // xrp: reads per read_xrp() call
};

// Counters of the I/O a back-end did, for reports.
struct BackendStats {
  std::uint64_t reads = 0;     // blocks read
  std::uint64_t syscalls = 0;  // pread, io_uring_enter or read_xrp calls
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Looks up keys; found[i] tells whether keys[i] is present and, if so, its
  // value is at values[i * value_size].  Any number of keys.
  virtual void get(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values) = 0;

  // Appends to out the values (each starts with its key) of the next keys in
  // [cursor.next, cursor.end), at most max of them, in key order; advances the
  // cursor and sets cursor.done when no key is left.  Returns how many.
  virtual std::size_t range(RangeCursor& cursor, std::size_t max, std::vector<std::byte>& out) = 0;

  // op over the aggregation field of the values of the keys in [lo, hi).
  virtual AggResult aggregate(AggOp op, std::uint64_t lo, std::uint64_t hi) = 0;

  const BackendStats& stats() const { return stats_; }

 protected:
  BackendStats stats_;
};

// "pread", "io_uring", "xrp", "xrp-emu".
const std::vector<std::string>& backend_names();
// Throws Error when the back-end cannot run here (e.g. xrp on a stock kernel)
// and std::invalid_argument for an unknown name.
std::unique_ptr<Backend> make_backend(std::string_view name, const DbFile& db, const BackendOptions& opts = {});

std::unique_ptr<Backend> make_pread_backend(const DbFile& db);
std::unique_ptr<Backend> make_uring_backend(const DbFile& db, const BackendOptions& opts);

}  // namespace fastpath::bpfkv
