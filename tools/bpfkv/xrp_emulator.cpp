// SPDX-License-Identifier: GPL-2.0
// The XRP emulator: read_xrp() in user space.  It reads the block, runs the
// very step function the BPF program runs (bpf/bpfkv_xrp_logic.h), and
// follows next_addr until the step sets done, applying read_xrp()'s checks
// and its 256-read cap, so host tests exercise the programs' logic.
#include <cerrno>
#include <cstring>

#include "bpfkv_xrp_logic.h"
#include "xrp.h"

namespace fastpath::bpfkv {

XrpStep xrp_step(XrpProgram prog) {
  switch (prog) {
    case XrpProgram::Get:
      return bpfkv_get_step;
    case XrpProgram::Range:
      return bpfkv_range_step;
    case XrpProgram::Agg:
      return bpfkv_agg_step;
  }
  return {};
}

namespace {

__u8* u8(std::byte* p) {
  return reinterpret_cast<__u8*>(p);
}

}  // namespace

long emulate_read_xrp(const DbFile& db, const XrpStep& step, std::uint64_t offset, std::uint32_t count,
                      std::byte* scratch, std::uint64_t* reads) {
  const std::uint32_t lbs = db.io_align();
  if (count == 0 || count > BPFKV_XRP_DATA_SIZE || count % lbs != 0) return -EINVAL;
  AlignedBuffer block(BPFKV_XRP_DATA_SIZE), copy(BPFKV_XRP_SCRATCH_SIZE);
  std::memcpy(copy.data(), scratch, BPFKV_XRP_SCRATCH_SIZE);  // copied in at the start
  std::uint64_t addr = offset;
  std::uint32_t size = count;
  for (std::uint32_t iteration = 0;; ++iteration) {
    if (iteration >= BPFKV_XRP_MAX_READS) return -ELOOP;
    if (addr % lbs != 0 || size % lbs != 0 || size > count) return -EINVAL;
    if (addr >= db.size() || size > db.size() - addr) return -ENXIO;
    std::memset(block.data(), 0, BPFKV_XRP_DATA_SIZE);  // all of data is readable
    try {
      db.read(block.data(), size, addr);
    } catch (const Error&) {
      return -EIO;
    }
    if (reads) ++*reads;
    bpfkv_xrp_out out{};  // next_addr, next_size and done are zeroed before every run
    step(u8(block.data()), size, addr, iteration, u8(copy.data()), &out);
    if (out.done) {
      std::memcpy(scratch, copy.data(), BPFKV_XRP_SCRATCH_SIZE);  // copied back on success only
      return count;
    }
    addr = out.next_addr;
    size = out.next_size ? out.next_size : count;
  }
}

namespace {

class EmulatedXrp : public XrpDriver {
 public:
  explicit EmulatedXrp(const DbFile& db) : db_(db) {}

  long call(XrpProgram prog, std::uint64_t offset, std::uint32_t count, std::byte* scratch) override {
    return emulate_read_xrp(db_, xrp_step(prog), offset, count, scratch, &reads_);
  }
  std::uint64_t reads() const override { return reads_; }

 private:
  const DbFile& db_;
  std::uint64_t reads_ = 0;
};

}  // namespace

std::unique_ptr<XrpDriver> make_emulated_xrp(const DbFile& db) {
  return std::make_unique<EmulatedXrp>(db);
}

}  // namespace fastpath::bpfkv
