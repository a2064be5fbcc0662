// SPDX-License-Identifier: GPL-2.0
// XRP back-end: packs a request into the scratch area (bpf/bpfkv.h), makes
// read_xrp() calls until the program has finished it, and unpacks the
// results.  A GET batch usually takes one call; a call that runs out of reads
// or of result space stops with its cursor in the scratch, and the next call
// goes on from walk.want.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xrp.h"

namespace fastpath::bpfkv {

namespace {

const char* program_name(XrpProgram p) {
  switch (p) {
    case XrpProgram::Get:
      return "bpfkv_get";
    case XrpProgram::Range:
      return "bpfkv_range";
    case XrpProgram::Agg:
      return "bpfkv_agg";
  }
  return "?";
}

std::string errno_hint(int err) {
  switch (err) {
    case ENODATA:
      return " (the file has a hole or an unwritten extent where the tree points: use the pread back-end)";
    case ESTALE:
      return " (the file's extents changed during the call: retry)";
    case EOPNOTSUPP:
      return " (the file is not on ext4 or an NVMe block device)";
    case ELOOP:
      return " (the program asked for more than 256 reads)";
    default:
      return "";
  }
}

class XrpBackend : public Backend {
 public:
  XrpBackend(const DbFile& db, std::unique_ptr<XrpDriver> driver, std::string name, const BackendOptions& opts)
      : db_(db),
        g_(db.geo()),
        driver_(std::move(driver)),
        name_(std::move(name)),
        max_reads_(std::clamp<std::uint32_t>(opts.max_reads, 1, BPFKV_XRP_MAX_READS)),
        io_size_(std::max(g_.node_size, db.io_align())),
        scratch_(BPFKV_XRP_SCRATCH_SIZE) {
    if (io_size_ > BPFKV_XRP_DATA_SIZE || (io_size_ & (io_size_ - 1)))
      throw Error(db.path() + ": XRP reads of " + std::to_string(io_size_) + " bytes are not possible");
  }

  std::string name() const override { return name_; }
  void get(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values) override;
  std::size_t range(RangeCursor& cursor, std::size_t max, std::vector<std::byte>& out) override;
  AggResult aggregate(AggOp op, std::uint64_t lo, std::uint64_t hi) override;

 private:
  template <class Scratch>
  Scratch* fresh() {
    std::memset(scratch_.data(), 0, BPFKV_XRP_SCRATCH_SIZE);
    auto* s = reinterpret_cast<Scratch*>(scratch_.data());
    fill_params(s->p);
    s->w.hi = ~0ULL;
    return s;
  }
  void fill_params(bpfkv_xrp_params& p) const;
  void call(XrpProgram prog, bpfkv_xrp_walk& w);
  void get_batch(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values);
  bpfkv_scan_scratch* scan_start(std::uint64_t lo, std::uint64_t hi);

  const DbFile& db_;
  const Geometry& g_;
  std::unique_ptr<XrpDriver> driver_;
  std::string name_;
  std::uint32_t max_reads_;
  std::uint32_t io_size_;
  AlignedBuffer scratch_;
};

void XrpBackend::fill_params(bpfkv_xrp_params& p) const {
  p.node_size = g_.node_size;
  p.fanout = g_.fanout;
  p.layers = g_.layers;
  p.value_size = g_.value_size;
  p.io_size = io_size_;
  p.max_reads = max_reads_;
  p.log_off = g_.log_off;
  p.log_end = g_.log_end();
  for (std::uint32_t d = 0; d <= g_.layers; ++d) p.level_off[d] = g_.level_off[d];
}

// One read_xrp() at the block that holds w.want; then the program's verdict.
void XrpBackend::call(XrpProgram prog, bpfkv_xrp_walk& w) {
  // Each call makes progress, so a request needs about one call per block
  // of the database at most: far more means the program is stuck.
  if (w.calls > 2 * (g_.min_file_size() / BPFKV_VALUE_BLOCK) + 16)
    throw Error(db_.path() + ": " + program_name(prog) + " makes no progress");
  const std::uint64_t reads_before = w.reads;
  const long rc = driver_->call(prog, w.want / io_size_ * io_size_, io_size_, scratch_.data());
  ++stats_.syscalls;
  if (rc < 0)
    throw Error(db_.path() + ": read_xrp (" + program_name(prog) + "): " + std::strerror(static_cast<int>(-rc)) +
                errno_hint(static_cast<int>(-rc)));
  ++w.calls;
  stats_.reads += w.reads - reads_before;
  if (w.status == BPFKV_OK) return;
  const char* what = w.status == BPFKV_E_VALUE ? "value" : w.status == BPFKV_E_PARAMS ? "request" : "node";
  throw_corrupt(db_.path(), w.status, what, w.bad_addr, std::string("found by the XRP program ") + program_name(prog));
}

void XrpBackend::get(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values) {
  const std::size_t batch = BPFKV_GET_BATCH(g_.value_size);
  for (std::size_t i = 0; i < keys.size(); i += batch) {
    const std::size_t n = std::min(batch, keys.size() - i);
    get_batch(keys.subspan(i, n), found.subspan(i, n), values.subspan(i * g_.value_size, n * g_.value_size));
  }
}

void XrpBackend::get_batch(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found,
                           std::span<std::byte> values) {
  auto* s = fresh<bpfkv_get_scratch>();
  s->nkeys = static_cast<std::uint32_t>(keys.size());
  std::copy(keys.begin(), keys.end(), s->keys);
  while (s->next < s->nkeys) call(XrpProgram::Get, s->w);
  std::copy(s->found, s->found + keys.size(), found.begin());
  std::memcpy(values.data(), scratch_.data() + BPFKV_GET_VALUES, keys.size() * g_.value_size);
}

bpfkv_scan_scratch* XrpBackend::scan_start(std::uint64_t lo, std::uint64_t hi) {
  auto* s = fresh<bpfkv_scan_scratch>();
  s->cur = lo;
  s->end = hi;
  s->phase = lo < hi ? BPFKV_SCAN_DESCEND : BPFKV_SCAN_END;
  s->min = ~0ULL;
  return s;
}

std::size_t XrpBackend::range(RangeCursor& cursor, std::size_t max, std::vector<std::byte>& out) {
  if (cursor.done || max == 0) return 0;
  auto* s = scan_start(cursor.next, cursor.end);
  std::size_t n = 0;
  while (n < max && s->phase != BPFKV_SCAN_END) {
    s->nresults = 0;
    s->max_results = static_cast<std::uint32_t>(std::min<std::size_t>(BPFKV_RANGE_BATCH(g_.value_size), max - n));
    call(XrpProgram::Range, s->w);
    const std::byte* v = scratch_.data() + BPFKV_RANGE_VALUES;
    out.insert(out.end(), v, v + std::size_t{s->nresults} * g_.value_size);
    n += s->nresults;
  }
  cursor.next = s->cur;
  cursor.done = s->phase == BPFKV_SCAN_END;
  return n;
}

AggResult XrpBackend::aggregate(AggOp op, std::uint64_t lo, std::uint64_t hi) {
  auto* s = scan_start(lo, hi);
  switch (op) {
    case AggOp::Count:
      s->op = BPFKV_AGG_COUNT;
      break;
    case AggOp::Sum:
      s->op = BPFKV_AGG_SUM;
      break;
    case AggOp::Min:
      s->op = BPFKV_AGG_MIN;
      break;
    case AggOp::Max:
      s->op = BPFKV_AGG_MAX;
      break;
  }
  while (s->phase != BPFKV_SCAN_END) call(XrpProgram::Agg, s->w);
  return {s->count, s->sum, s->min, s->max};
}

}  // namespace

std::unique_ptr<Backend> make_xrp_backend(const DbFile& db, std::unique_ptr<XrpDriver> driver, std::string name,
                                          const BackendOptions& opts) {
  return std::make_unique<XrpBackend>(db, std::move(driver), std::move(name), opts);
}

}  // namespace fastpath::bpfkv
