// SPDX-License-Identifier: GPL-2.0-only
// Description: the daemon's receive loop and FUSE_INIT interception, driven
// by a fake kernel over a socketpair instead of /dev/fuse: auto mode without
// a lease offer answers INIT like libfuse (no lease bit) and accepts
// FUSE_DIRECT_IO_ALLOW_MMAP for writethrough; writeback mode asks for
// writeback_cache; --mode lease is refused with EPROTO when the kernel offers
// nothing; a lease request in a mode without leases gets ENOSYS; ordinary
// requests reach the passthrough file system.
#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "daemon.h"
#include "dfuse/kernel_abi.h"
#include "fake_kernel.h"
#include "fuse_init.h"
#include "test_util.h"

using namespace dfuse::dfused;
using namespace dfuse::dfused::test;

namespace {

constexpr uint32_t kLeaseBit2 = static_cast<uint32_t>(dfuse::abi::kInitLeases >> 32);
constexpr uint32_t kAllowMmapBit2 = static_cast<uint32_t>(kInitDirectIoAllowMmap >> 32);

Options options(const TempDir& dir, Mode mode) {
  Options o;
  o.backend = dir.sub("backend");
  o.mountpoint = "(fake kernel)";
  o.mode = mode;
  o.threads = 2;
  return o;
}

// Starts `daemon` on the fake kernel and answers FUSE_INIT; returns the
// daemon's decision and the INIT reply.
std::pair<ModeDecision, Reply> start(Daemon& daemon, FakeKernel& kernel, uint32_t flags, uint32_t flags2) {
  auto started = std::async(std::launch::async, [&] { return daemon.start(kernel.daemon_end()); });
  const uint64_t unique = kernel.send_init(flags, flags2);
  auto reply = kernel.recv();
  EXPECT_TRUE(reply.has_value()) << "no reply to FUSE_INIT";
  if (reply) {
    EXPECT_EQ(reply->hdr.unique, unique);
  }
  return {started.get(), reply.value_or(Reply{})};
}

}  // namespace

TEST(DaemonProtocol, AutoWithoutOfferRunsWritethroughAndAcceptsDirectIoMmap) {
  TempDir dir;
  std::ofstream(dir.sub("backend") + "/f") << "12345";
  Daemon daemon(options(dir, Mode::kAuto));
  FakeKernel kernel;
  const auto [d, reply] =
      start(daemon, kernel, FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_MAX_PAGES, kAllowMmapBit2);
  ASSERT_TRUE(d.ok) << d.why;
  EXPECT_EQ(d.mode, Mode::kWritethrough);
  ASSERT_EQ(reply.hdr.error, 0);
  const auto out = reply.as<fuse_init_out>();
  EXPECT_EQ(out.major, 7u);
  EXPECT_TRUE(out.flags & FUSE_INIT_EXT);
  EXPECT_FALSE(out.flags & FUSE_WRITEBACK_CACHE) << "writethrough caches nothing";
  EXPECT_EQ(out.flags2 & kLeaseBit2, 0u);
  EXPECT_NE(out.flags2 & kAllowMmapBit2, 0u);

  // An ordinary request goes to the passthrough file system.
  const uint64_t u = kernel.send(FUSE_LOOKUP, FUSE_ROOT_ID, "f", 2);
  auto r = kernel.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hdr.unique, u);
  ASSERT_EQ(r->hdr.error, 0);
  const auto entry = r->as<fuse_entry_out>();
  EXPECT_EQ(entry.attr.size, 5u);
  EXPECT_EQ(entry.attr_valid, 0u) << "writethrough: attributes are not cached";

  // The lease opcode without lease mode: ENOSYS (the kernel turns leases off).
  const dfuse::abi::LeaseIn in{dfuse::abi::kLeaseRead, dfuse::abi::kLeaseNone};
  const uint64_t ul = kernel.send(dfuse::abi::kOpLease, entry.nodeid, in);
  r = kernel.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hdr.unique, ul);
  EXPECT_EQ(r->hdr.error, -ENOSYS);
  daemon.stop(false);
}

TEST(DaemonProtocol, WritebackAsksForWritebackCache) {
  TempDir dir;
  Daemon daemon(options(dir, Mode::kWriteback));
  FakeKernel kernel;
  const auto [d, reply] = start(daemon, kernel, FUSE_INIT_EXT | FUSE_WRITEBACK_CACHE, kLeaseBit2 | kAllowMmapBit2);
  ASSERT_TRUE(d.ok) << d.why;
  EXPECT_EQ(d.mode, Mode::kWriteback);
  const auto out = reply.as<fuse_init_out>();
  EXPECT_TRUE(out.flags & FUSE_WRITEBACK_CACHE);
  EXPECT_EQ(out.flags2 & (kLeaseBit2 | kAllowMmapBit2), 0u) << "neither leases nor direct-I/O mmap in writeback";
  daemon.stop(false);
}

TEST(DaemonProtocol, LeaseModeIsRefusedWhenTheKernelOffersNothing) {
  TempDir dir;
  auto o = options(dir, Mode::kLease);
  o.lease_service = "127.0.0.1:1";  // never contacted: connect_lease_service() is not called
  Daemon daemon(o);
  FakeKernel kernel;
  const auto [d, reply] = start(daemon, kernel, FUSE_INIT_EXT | FUSE_ASYNC_READ, 0);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.why.find("did not offer DFUSE lease mode"), std::string::npos) << d.why;
  EXPECT_EQ(reply.hdr.error, -EPROTO);
  EXPECT_TRUE(reply.body.empty());
  daemon.stop(false);
}
