// SPDX-License-Identifier: GPL-2.0
// The XRP back-end and what it runs on: a driver that performs one
// read_xrp() call (docs/xrp.md), either in the kernel or emulated in user
// space by running the programs' step functions (bpf/bpfkv_xrp_logic.h) over
// pread with the same rules.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "backend.h"

struct bpfkv_xrp_out;  // bpf/bpfkv_xrp_logic.h

namespace fastpath::bpfkv {

enum class XrpProgram { Get, Range, Agg };

class XrpDriver {
 public:
  virtual ~XrpDriver() = default;
  // One read_xrp(db fd, buf, count, offset, program, scratch): returns count,
  // or -errno (the scratch is then unchanged).  scratch holds
  // BPFKV_XRP_SCRATCH_SIZE bytes.
  virtual long call(XrpProgram prog, std::uint64_t offset, std::uint32_t count, std::byte* scratch) = 0;
  // Blocks read so far, when the driver knows (the emulator does).
  virtual std::uint64_t reads() const { return 0; }
};

// A program's per-block step, as bpf/bpfkv_xrp_logic.h defines them.
using XrpStep = std::function<void(const __u8* data, __u32 data_len, __u64 cur_addr, __u32 iteration, __u8* scratch,
                                   bpfkv_xrp_out* out)>;
XrpStep xrp_step(XrpProgram prog);

// read_xrp() in user space with step as the program: reads the block at
// offset (pread on db), runs step on it, follows next_addr until step sets
// done, with read_xrp()'s checks: count and addresses aligned to the file's
// I/O alignment and count <= 4096 (EINVAL), addresses inside the file
// (ENXIO), at most BPFKV_XRP_MAX_READS reads (ELOOP).  Returns count or
// -errno; the scratch is copied back only on success.  *reads counts blocks.
long emulate_read_xrp(const DbFile& db, const XrpStep& step, std::uint64_t offset, std::uint32_t count,
                      std::byte* scratch, std::uint64_t* reads = nullptr);

// A driver that calls emulate_read_xrp() with the programs' step functions.
std::unique_ptr<XrpDriver> make_emulated_xrp(const DbFile& db);

// Empty when read_xrp() and the BPF-KV programs can be used here; otherwise
// why not, starting with "read_xrp not available".
std::string xrp_unavailable_reason();
// Loads the three programs and calls the real read_xrp().  Throws Error
// with xrp_unavailable_reason() on a kernel without XRP.
std::unique_ptr<XrpDriver> make_kernel_xrp(const DbFile& db);

// name: "xrp" or "xrp-emu".  Throws Error when the driver is unavailable.
std::unique_ptr<Backend> make_xrp_backend(const DbFile& db, std::unique_ptr<XrpDriver> driver, std::string name,
                                          const BackendOptions& opts);

}  // namespace fastpath::bpfkv
