// SPDX-License-Identifier: GPL-2.0-only
// Description: FUSE_INIT interception: the kernel's offer is read from the
// request, and the reply libfuse writes through the custom writev gets the
// lease bit (flags2 bit 62-32) and FUSE_INIT_EXT, or
// FUSE_HANDLE_KILLPRIV_V2; other replies pass unchanged. The kernel's
// kill-suid/sgid marks on requests, which libfuse 3.14 drops.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "device.h"
#include "dfuse/kernel_abi.h"
#include "fuse_init.h"
#include "passthrough.h"

using namespace dfuse::dfused;

namespace {

std::vector<char> init_request(uint64_t unique, uint32_t flags, uint32_t flags2) {
  fuse_in_header in{};
  fuse_init_in arg{};
  in.len = sizeof(in) + sizeof(arg);
  in.opcode = FUSE_INIT;
  in.unique = unique;
  arg.major = 7;
  arg.minor = 38;
  arg.flags = flags;
  arg.flags2 = flags2;
  std::vector<char> buf(sizeof(in) + sizeof(arg));
  std::memcpy(buf.data(), &in, sizeof(in));
  std::memcpy(buf.data() + sizeof(in), &arg, sizeof(arg));
  return buf;
}

}  // namespace

TEST(FuseInit, ReadsTheLeaseOfferOnlyWithInitExt) {
  const uint32_t lease2 = static_cast<uint32_t>(dfuse::abi::kInitLeases >> 32);
  auto buf = init_request(9, FUSE_INIT_EXT | FUSE_ASYNC_READ, lease2);
  auto offer = parse_init_request(buf.data(), buf.size());
  ASSERT_TRUE(offer.has_value());
  EXPECT_EQ(offer->minor, 38u);
  EXPECT_TRUE(offer->leases());
  EXPECT_FALSE(offer->direct_io_allow_mmap());

  buf = init_request(9, FUSE_ASYNC_READ, lease2);  // flags2 is meaningless without FUSE_INIT_EXT
  offer = parse_init_request(buf.data(), buf.size());
  ASSERT_TRUE(offer.has_value());
  EXPECT_FALSE(offer->leases());

  buf = init_request(9, FUSE_INIT_EXT, static_cast<uint32_t>(kInitDirectIoAllowMmap >> 32));
  EXPECT_TRUE(parse_init_request(buf.data(), buf.size())->direct_io_allow_mmap());

  EXPECT_FALSE(parse_init_request(buf.data(), 20).has_value());
}

TEST(FuseInit, PatchSetsFlags2AndInitExt) {
  fuse_init_out out{};
  out.major = 7;
  out.flags = FUSE_ASYNC_READ;
  out.flags2 = 1;  // whatever libfuse set stays
  InitAccept accept;
  accept.leases = true;
  ASSERT_TRUE(patch_init_out(&out, sizeof(out), accept));
  EXPECT_EQ(out.flags, static_cast<uint32_t>(FUSE_ASYNC_READ | FUSE_INIT_EXT));
  EXPECT_EQ(out.flags2, 1u | static_cast<uint32_t>(dfuse::abi::kInitLeases >> 32));
  EXPECT_FALSE(patch_init_out(&out, 24, accept)) << "a pre-7.23 reply has no flags2";
}

TEST(FuseInit, PatchSetsHandleKillprivV2InFlags) {
  fuse_init_out out{};
  out.major = 7;
  out.flags = FUSE_ASYNC_READ;
  InitAccept accept;
  accept.handle_killpriv_v2 = true;
  EXPECT_TRUE(accept.any());
  ASSERT_TRUE(patch_init_out(&out, sizeof(out), accept));
  EXPECT_EQ(out.flags, static_cast<uint32_t>(FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2)) << "no FUSE_INIT_EXT needed";
  EXPECT_EQ(out.flags2, 0u);
  const auto offer = parse_init_request(init_request(1, FUSE_HANDLE_KILLPRIV_V2, 0).data(),
                                        sizeof(fuse_in_header) + sizeof(fuse_init_in));
  ASSERT_TRUE(offer.has_value());
  EXPECT_TRUE(offer->handle_killpriv_v2());
}

// A request: fuse_in_header, then `arg`.
template <typename Arg>
std::vector<char> request(uint32_t opcode, const Arg& arg) {
  fuse_in_header in{};
  in.len = sizeof(in) + sizeof(arg);
  in.opcode = opcode;
  std::vector<char> buf(in.len);
  std::memcpy(buf.data(), &in, sizeof(in));
  std::memcpy(buf.data() + sizeof(in), &arg, sizeof(arg));
  return buf;
}

TEST(FuseInit, KillMarksOfRequests) {
  const auto kills = [](const std::vector<char>& b) { return request_kills_suidgid(b.data(), b.size()); };
  fuse_write_in w{};
  w.write_flags = FUSE_WRITE_LOCKOWNER;
  EXPECT_FALSE(kills(request(FUSE_WRITE, w)));
  w.write_flags |= FUSE_WRITE_KILL_SUIDGID;
  EXPECT_TRUE(kills(request(FUSE_WRITE, w)));
  fuse_setattr_in sa{};
  sa.valid = FATTR_SIZE;
  EXPECT_FALSE(kills(request(FUSE_SETATTR, sa)));
  sa.valid |= FATTR_KILL_SUIDGID;
  EXPECT_TRUE(kills(request(FUSE_SETATTR, sa)));
  fuse_open_in o{};
  o.flags = O_TRUNC;
  EXPECT_FALSE(kills(request(FUSE_OPEN, o)));
  o.open_flags = FUSE_OPEN_KILL_SUIDGID;
  EXPECT_TRUE(kills(request(FUSE_OPEN, o)));
  fuse_create_in c{};
  c.flags = O_TRUNC;
  EXPECT_FALSE(kills(request(FUSE_CREATE, c)));
  c.open_flags = FUSE_OPEN_KILL_SUIDGID;
  EXPECT_TRUE(kills(request(FUSE_CREATE, c)));
  EXPECT_FALSE(kills(request(FUSE_READ, w))) << "other opcodes carry no mark";
  auto short_write = request(FUSE_WRITE, w);
  short_write.resize(sizeof(fuse_in_header) + offsetof(fuse_write_in, write_flags));
  EXPECT_FALSE(kills(short_write)) << "a body too short for the field";
  EXPECT_FALSE(request_kills_suidgid(short_write.data(), 8));
}

TEST(FuseInit, DeviceWritevPatchesOnlyTheInitReply) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  Device dev;
  InitAccept accept;
  accept.leases = true;
  dev.expect_init(42, accept);

  fuse_out_header hdr{};
  fuse_init_out out{};
  out.flags = FUSE_ASYNC_READ;
  hdr.len = sizeof(hdr) + sizeof(out);
  hdr.unique = 41;  // another request's reply: untouched
  iovec iov[2] = {{&hdr, sizeof(hdr)}, {&out, sizeof(out)}};
  ASSERT_EQ(dev.io_writev(p[1], iov, 2), static_cast<ssize_t>(hdr.len));
  EXPECT_FALSE(dev.init_replied());
  hdr.unique = 42;
  ASSERT_EQ(dev.io_writev(p[1], iov, 2), static_cast<ssize_t>(hdr.len));
  EXPECT_TRUE(dev.init_replied());
  EXPECT_EQ(out.flags2, 0u) << "libfuse's own buffer is not modified";

  char got[2][sizeof(hdr) + sizeof(out)];
  ASSERT_EQ(read(p[0], got, sizeof(got)), static_cast<ssize_t>(sizeof(got)));
  fuse_init_out first{}, second{};
  std::memcpy(&first, got[0] + sizeof(hdr), sizeof(first));
  std::memcpy(&second, got[1] + sizeof(hdr), sizeof(second));
  EXPECT_EQ(first.flags2, 0u);
  EXPECT_EQ(first.flags, static_cast<uint32_t>(FUSE_ASYNC_READ));
  EXPECT_EQ(second.flags2, static_cast<uint32_t>(dfuse::abi::kInitLeases >> 32));
  EXPECT_TRUE(second.flags & FUSE_INIT_EXT);
  close(p[0]);
  close(p[1]);
}
