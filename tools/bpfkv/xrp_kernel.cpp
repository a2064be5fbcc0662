// SPDX-License-Identifier: GPL-2.0
// read_xrp() on the fastpath kernel: loads bpfkv_{get,range,agg} from their
// libbpf skeletons as BPF_PROG_TYPE_XRP programs and calls the system call.
//
// BPFKV_HAVE_XRP_UAPI is set by CMake when the patched uapi headers
// (linux/usr/include) define BPF_PROG_TYPE_XRP; __NR_read_xrp and the program
// type come from them, never from a literal.  Without them this file only
// explains why the back-end is unavailable.
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "xrp.h"

#ifdef BPFKV_HAVE_XRP_UAPI
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>

#include "bpfkv_agg.skel.h"
#include "bpfkv_get.skel.h"
#include "bpfkv_range.skel.h"

static_assert(BPFKV_XRP_DATA_SIZE == XRP_DATA_SIZE);
static_assert(BPFKV_XRP_SCRATCH_SIZE == XRP_SCRATCH_SIZE);
static_assert(BPFKV_XRP_MAX_READS == XRP_MAX_RESUBMIT);
#endif

namespace fastpath::bpfkv {

std::string xrp_unavailable_reason() {
  // On other kernels syscall 451 may be something else (cachestat since
  // 6.5), so only a fastpath kernel is asked.
  utsname u{};
  ::uname(&u);
  if (!std::strstr(u.release, "-fastpath"))
    return std::string("read_xrp not available: ENOSYS; run inside the fastpath VM (kernel ") + u.release +
           " is not the fastpath kernel)";
#ifndef BPFKV_HAVE_XRP_UAPI
  return "read_xrp not available: bpfkv was built without the XRP uapi (no BPF_PROG_TYPE_XRP in "
         "linux/usr/include/linux/bpf.h); run make kernel, then rebuild the tools";
#else
  if (::syscall(__NR_read_xrp, -1, nullptr, 0, 0, -1, nullptr) < 0 && errno == ENOSYS)
    return "read_xrp not available: ENOSYS; this fastpath kernel was built without XRP (make kernel)";
  return {};
#endif
}

#ifdef BPFKV_HAVE_XRP_UAPI
namespace {

// One program, loaded from its skeleton as BPF_PROG_TYPE_XRP.
template <class Skel>
class Program {
 public:
  template <class ProgOf>
  Program(const char* name, ProgOf prog_of) : skel_(Skel::open(), &Skel::destroy) {
    if (!skel_) throw Error(std::string("Failed to open BPF program ") + name + ": " + std::strerror(errno));
    bpf_program* prog = prog_of(*skel_);
    bpf_program__set_type(prog, static_cast<bpf_prog_type>(BPF_PROG_TYPE_XRP));
    if (const int rc = Skel::load(skel_.get()); rc != 0)
      throw Error(std::string("Failed to load BPF program ") + name + ": " + std::strerror(-rc) +
                  " (the verifier log is above)");
    fd_ = bpf_program__fd(prog);
  }
  int fd() const { return fd_; }

 private:
  std::unique_ptr<Skel, void (*)(Skel*)> skel_;
  int fd_ = -1;
};

// Programs are loaded on first use, so that a GET-only run does not depend on
// the RANGE and AGG programs passing the verifier.
class KernelXrp : public XrpDriver {
 public:
  explicit KernelXrp(const DbFile& db) : db_(db), buf_(BPFKV_XRP_DATA_SIZE) {}

  long call(XrpProgram prog, std::uint64_t offset, std::uint32_t count, std::byte* scratch) override {
    const long rc = ::syscall(__NR_read_xrp, db_.fd(), buf_.data(), count, offset, prog_fd(prog), scratch);
    return rc < 0 ? -errno : rc;
  }

 private:
  int prog_fd(XrpProgram prog) {
    switch (prog) {
      case XrpProgram::Get:
        if (!get_) get_.emplace("bpfkv_get", [](bpfkv_get_bpf& s) { return s.progs.bpfkv_get; });
        return get_->fd();
      case XrpProgram::Range:
        if (!range_) range_.emplace("bpfkv_range", [](bpfkv_range_bpf& s) { return s.progs.bpfkv_range; });
        return range_->fd();
      default:
        if (!agg_) agg_.emplace("bpfkv_agg", [](bpfkv_agg_bpf& s) { return s.progs.bpfkv_agg; });
        return agg_->fd();
    }
  }

  const DbFile& db_;
  std::optional<Program<bpfkv_get_bpf>> get_;
  std::optional<Program<bpfkv_range_bpf>> range_;
  std::optional<Program<bpfkv_agg_bpf>> agg_;
  AlignedBuffer buf_;
};

}  // namespace
#endif

std::unique_ptr<XrpDriver> make_kernel_xrp([[maybe_unused]] const DbFile& db) {
  if (const std::string why = xrp_unavailable_reason(); !why.empty()) throw Error(why);
#ifdef BPFKV_HAVE_XRP_UAPI
  if (!db.direct()) throw Error(db.path() + ": the xrp back-end needs O_DIRECT (drop --buffered)");
  return std::make_unique<KernelXrp>(db);
#else
  return nullptr;  // not reached: xrp_unavailable_reason() is never empty here
#endif
}

}  // namespace fastpath::bpfkv
