// SPDX-License-Identifier: GPL-2.0-only
// The DFUSE additions to the FUSE wire protocol, as patched into
// include/uapi/linux/fuse.h by patches/linux (fs/fuse lease mode). libfuse
// 3.14 ships its own copy of the FUSE header without them, so the daemon
// carries the definitions here. Keep the two in step: the values are ABI.
#pragma once

#include <cstdint>

#include <linux/fuse.h>

namespace dfuse::abi {

// FUSE_INIT flags2 bit (bit 62 of the 64-bit flags): the kernel offers lease
// mode in fuse_init_in; the daemon accepts it by setting the same bit in
// fuse_init_out. Kept far from upstream's allocations.
inline constexpr uint64_t kInitLeases = 1ULL << 62;

// Kernel -> daemon request: "give this inode a lease of at least `mode`".
// fuse_in_header.nodeid names the inode; the body is LeaseIn; the reply body
// is LeaseOut, or an error (the operation that needed the lease fails with
// it; ENOSYS turns lease mode off for the connection).
inline constexpr uint32_t kOpLease = 4000;

// Daemon -> kernel notification (fuse_out_header.unique = 0, .error = code):
// revoke or downgrade a lease. Body is NotifyLeaseRevoke. The write(2)
// returns once the kernel has waited for operations under the lease, written
// back dirty pages and (for kLeaseNone) dropped the page cache and cached
// attributes: its return is the acknowledgement. ENOENT: inode not cached.
inline constexpr int32_t kNotifyLeaseRevoke = 64;

enum LeaseMode : uint32_t {
  kLeaseNone = 0,
  kLeaseRead = 1,
  kLeaseWrite = 2,
};

struct LeaseIn {
  uint32_t mode;  // kLeaseRead or kLeaseWrite
  uint32_t held;  // mode the kernel holds now (an upgrade when kLeaseRead)
};

struct LeaseOut {
  uint64_t generation;  // > every generation granted before for this inode
  uint64_t attr_valid;  // attribute cache timeout, seconds
  uint32_t attr_valid_nsec;
  uint32_t mode;  // granted, at least the mode asked for
  struct fuse_attr attr;  // current attributes (size!) at grant time
};

struct NotifyLeaseRevoke {
  uint64_t nodeid;
  uint64_t generation;  // the grant being revoked; older grants go with it
  uint32_t mode;        // new mode: kLeaseNone or kLeaseRead
  uint32_t padding;
};

static_assert(sizeof(LeaseIn) == 8);
static_assert(sizeof(LeaseOut) == 24 + sizeof(struct fuse_attr));
static_assert(sizeof(NotifyLeaseRevoke) == 24);

}  // namespace dfuse::abi
