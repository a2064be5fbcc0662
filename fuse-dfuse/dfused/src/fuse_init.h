// SPDX-License-Identifier: GPL-2.0-only
// FUSE_INIT as dfused sees it: what the kernel offers, and the bits dfused
// adds to libfuse's reply. libfuse 3.14 builds the reply from the
// capabilities it knows; DFUSE's lease bit, FUSE_HANDLE_KILLPRIV_V2 and
// upstream's FUSE_DIRECT_IO_ALLOW_MMAP (newer than libfuse 3.14) are unknown
// to it, so dfused's custom writev sets them in fuse_init_out on the way out.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include <linux/fuse.h>

namespace dfuse::dfused {

// Upstream 6.6+ (FUSE_DIRECT_IO_RELAX, renamed FUSE_DIRECT_IO_ALLOW_MMAP):
// MAP_SHARED mmap of FOPEN_DIRECT_IO files. Not in Debian 12's headers.
inline constexpr uint64_t kInitDirectIoAllowMmap = 1ULL << 36;

struct InitOffer {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint64_t flags = 0;  // flags | flags2 << 32 (flags2 only with FUSE_INIT_EXT)
  bool leases() const;
  bool direct_io_allow_mmap() const;
  bool handle_killpriv_v2() const;
};

// Parses a FUSE_INIT request (fuse_in_header + fuse_init_in); nullopt when
// `len` is too short or the opcode is not FUSE_INIT.
std::optional<InitOffer> parse_init_request(const void* buf, size_t len);

// What dfused accepts beyond what libfuse negotiated.
struct InitAccept {
  bool leases = false;
  bool direct_io_allow_mmap = false;
  // FUSE_HANDLE_KILLPRIV_V2 (7.33, unknown to libfuse 3.14): the kernel
  // marks WRITE, SETATTR, OPEN and CREATE whose caller lacks CAP_FSETID, and
  // dfused clears the set-user-ID and set-group-ID bits itself.
  bool handle_killpriv_v2 = false;
  bool any() const { return leases || direct_io_allow_mmap || handle_killpriv_v2; }
};

// Sets the accepted bits in a reply body (fuse_init_out, `len` bytes as
// libfuse sends it). Returns false, changing nothing, when the body is too
// short to carry flags2 (protocol older than 7.23).
bool patch_init_out(void* body, size_t len, const InitAccept& accept);

}  // namespace dfuse::dfused
