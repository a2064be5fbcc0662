// SPDX-License-Identifier: GPL-2.0
//
// fpinfo: report what this machine (usually the fastpath VM) offers the
// fastpath systems: kernel, NVMe devices, RDMA devices, FUSE, BPF, nvmet, and
// which fastpath kernel features are present.  Every line is probed, not
// assumed: a missing feature says why.
//
//   $ fpinfo
//   item          value
//   ------------  ---------------------------------------------
//   kernel        6.1.192-fastpath (fastpath kernel)
//   nvme          nvme0n1: QEMU NVMe Ctrl, 1024 MiB, 512 B blocks
//   ...
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "fastpath/cli.h"
#include "fastpath/report.h"
#include "fastpath/temp_dir.h"
#include "fastpath/unique_fd.h"

namespace fs = std::filesystem;

namespace {

std::string read_line(const fs::path& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

struct Row {
  std::string item, value;
};

std::string kernel_row(bool& fastpath_kernel) {
  utsname u{};
  ::uname(&u);
  const std::string rel = u.release;
  fastpath_kernel = rel.find("-fastpath") != std::string::npos;
  return rel + (fastpath_kernel ? " (fastpath kernel)" : " (not a fastpath kernel: run inside the VM, make shell)");
}

std::vector<std::string> nvme_rows() {
  std::vector<std::string> out;
  const fs::path blk = "/sys/block";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(blk, ec)) {
    const std::string name = e.path().filename();
    if (name.rfind("nvme", 0) != 0) continue;
    const auto sectors = std::stoull("0" + read_line(e.path() / "size"));
    const std::string lbs = read_line(e.path() / "queue/logical_block_size");
    const std::string model = read_line(e.path() / "device/model");
    out.push_back(name + ": " + (model.empty() ? "?" : model) + ", " + std::to_string(sectors * 512 >> 20) + " MiB, " +
                  lbs + " B blocks");
  }
  if (out.empty()) out.push_back("none (start the VM with --nvme IMG)");
  return out;
}

std::string rdma_row() {
  std::string devs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/class/infiniband", ec)) {
    if (!devs.empty()) devs += ", ";
    devs += e.path().filename().string();
  }
  if (!devs.empty()) return devs;
  if (fs::exists("/sys/class/infiniband_verbs") || fs::exists("/sys/class/infiniband"))
    return "RDMA core present, no device (create one: rdma link add rxe0 type rxe netdev IFACE)";
  return "no RDMA core in this kernel";
}

std::string fuse_row() {
  fastpath::UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (fd.get() >= 0) return "/dev/fuse opens";
  return std::string("/dev/fuse: ") + std::strerror(errno);
}

std::string bpf_row() {
  // The smallest valid program: r0 = 0; exit.
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[1].code = BPF_JMP | BPF_EXIT;
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = reinterpret_cast<std::uint64_t>(insns);
  attr.insn_cnt = 2;
  const char license[] = "GPL";
  attr.license = reinterpret_cast<std::uint64_t>(license);
  const long fd = ::syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
  if (fd < 0) return std::string("bpf(BPF_PROG_LOAD): ") + std::strerror(errno);
  fastpath::UniqueFd guard(static_cast<int>(fd));
  std::string jit = read_line("/proc/sys/net/core/bpf_jit_enable");
  return "loads programs, JIT " + std::string(jit == "1" ? "on" : "off (" + jit + ")");
}

std::string nvmet_row() {
  if (fs::exists("/sys/kernel/config/nvmet")) return "configfs /sys/kernel/config/nvmet present";
  if (fs::exists("/sys/kernel/config")) return "configfs mounted, no nvmet in this kernel";
  return "configfs not mounted (mount -t configfs none /sys/kernel/config)";
}

// read_xrp is syscall 451 only on the fastpath kernel (upstream later gave
// 451 to cachestat), so only probe there.  A bad fd gives EBADF when the call
// exists, ENOSYS when it does not.
std::string xrp_row(bool fastpath_kernel) {
  if (!fastpath_kernel) return "unknown: not a fastpath kernel";
  const long rc = ::syscall(451, -1, nullptr, 0, 0, -1, nullptr);
  if (rc < 0 && errno == ENOSYS) return "read_xrp missing (kernel built without CONFIG_XRP)";
  if (rc < 0 && errno == EBADF) return "read_xrp (syscall 451) present";
  return std::string("read_xrp probe: unexpected ") + std::strerror(errno);
}

// FUSE lease mode (patches/linux/0009, 0012): the kernel offers FUSE_LEASES
// in the FUSE_INIT request it sends a new mount's daemon.  Mount a throw-away
// FUSE file system, read that request, detach.  The bit sits far from the
// ones upstream allocates, so it is defined here, not taken from the
// system's <linux/fuse.h>.
constexpr std::uint64_t kFuseLeases = 1ULL << 62;

std::string fuse_leases_row() {
  if (::geteuid() != 0) return "unknown: the probe mounts a FUSE file system (run as root)";
  fastpath::UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return std::string("unknown: /dev/fuse: ") + std::strerror(errno);
  fastpath::TempDir dir("fpinfo-fuse");
  const std::string opts = "fd=" + std::to_string(fd.get()) + ",rootmode=40000,user_id=0,group_id=0";
  if (::mount("fpinfo", dir.path().c_str(), "fuse.fpinfo", MS_NOSUID | MS_NODEV | MS_RDONLY, opts.c_str()) != 0)
    return std::string("unknown: mounting a FUSE file system: ") + std::strerror(errno);
  std::vector<char> buf(1 << 17);  // at least FUSE_MIN_READ_BUFFER
  pollfd pfd{fd.get(), POLLIN, 0};
  ssize_t n = -1;
  if (::poll(&pfd, 1, 5000) == 1) n = ::read(fd.get(), buf.data(), buf.size());
  const int err = errno;
  ::umount2(dir.path().c_str(), MNT_DETACH);  // the daemon never answers: closing fd aborts the connection
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags2) + 4))
    return std::string("unknown: no FUSE_INIT request read: ") + (n < 0 ? std::strerror(err) : "too short");
  fuse_in_header h{};
  fuse_init_in in{};
  std::memcpy(&h, buf.data(), sizeof h);
  std::memcpy(&in, buf.data() + sizeof h, std::min<std::size_t>(sizeof in, n - sizeof h));
  if (h.opcode != FUSE_INIT) return "unknown: the first FUSE request was opcode " + std::to_string(h.opcode);
  std::uint64_t flags = in.flags;
  if (in.flags & FUSE_INIT_EXT) flags |= std::uint64_t{in.flags2} << 32;
  const std::string proto = "protocol " + std::to_string(in.major) + "." + std::to_string(in.minor);
  if (flags & kFuseLeases) return "offered at FUSE_INIT (" + proto + "; DFUSE can cache with leases)";
  return "not offered at FUSE_INIT (" + proto +
         "): a kernel without FUSE lease mode (dfused --mode auto runs "
         "write-through)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fpinfo: report the fastpath platform features of this machine"};
  std::string json_path;
  app.add_option("--json", json_path, "also write the report as JSON to this file ('-' for stdout)");
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;

  bool fastpath_kernel = false;
  fastpath::Table t({"item", "value"});
  t.add_row({"kernel", kernel_row(fastpath_kernel)});
  t.add_row({"cpus", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN))});
  t.add_row({"memory", std::to_string(::sysconf(_SC_PHYS_PAGES) * ::sysconf(_SC_PAGE_SIZE) >> 20) + " MiB"});
  for (const auto& n : nvme_rows()) t.add_row({"nvme", n});
  t.add_row({"rdma", rdma_row()});
  t.add_row({"fuse", fuse_row()});
  t.add_row({"bpf", bpf_row()});
  t.add_row({"nvmet", nvmet_row()});

  // fastpath kernel features: each names the issue that adds it.
  t.add_row({"xrp", xrp_row(fastpath_kernel)});
  t.add_row({"dfuse leases", fuse_leases_row()});

  if (json_path.empty()) {
    t.print(std::cout);
    return 0;
  }
  t.print(std::cerr);
  try {
    fastpath::write_json({{"tool", "fpinfo"}, {"fastpath_kernel", fastpath_kernel}, {"items", t.to_json()}}, json_path);
  } catch (const std::exception& e) {
    fastpath::cli::error("fpinfo", e.what());
    return 1;
  }
  return 0;
}
