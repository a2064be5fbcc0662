// SPDX-License-Identifier: GPL-2.0-only
// Description: two "nodes" (an inode table and a lease bridge each, over one
// backend directory) against dfuse-leased running in-process, through the
// real gRPC LeaseClient. Only the kernel is simulated: each node's /dev/fuse
// is a recorder. A read request on B makes the service revoke A's write
// lease; A's bridge writes the revoke notification for A's nodeid and acks,
// and only then B is answered, with a newer generation. A lease released on
// forget costs the next node no revoke. The whole daemon in lease mode,
// driven by a fake kernel, acquires, revokes and re-acquires.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "daemon.h"
#include "dfuse/kernel_abi.h"
#include "fake_kernel.h"
#include "lease_bridge.h"
#include "lease_connect.h"
#include "server.h"
#include "test_util.h"

using namespace dfuse;
using namespace dfuse::dfused;
using dfuse::dfused::test::TempDir;

namespace {

std::atomic<int> g_sequence{0};  // orders messages across both nodes

struct Recorded {
  int seq = 0;
  fuse_out_header hdr{};
  std::vector<char> body;
};

// One node: its inode table, its "kernel" (a recorder) and its bridge.
class Node {
 public:
  Node(const std::string& backend, const std::string& address, const std::string& name)
      : inodes_(fastpath::UniqueFd(::open(backend.c_str(), O_PATH | O_DIRECTORY))),
        bridge_(
            inodes_, [this](const iovec* iov, int count) { return record(iov, count); }, 1.0) {
    LeaseClientOptions o;
    o.address = address;
    o.node_id = name;
    o.heartbeat = std::chrono::milliseconds(200);
    o.unreachable_timeout = std::chrono::milliseconds(3000);
    client_ = connect_lease_client(o, [this](const Revoke& r) { bridge_.handle_revoke(r); });
    bridge_.set_client(client_.get());
  }
  ~Node() {
    bridge_.stop();
    bridge_.set_client(nullptr);
    client_.reset();
  }

  Inode& lookup(const std::string& path) {
    fastpath::UniqueFd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW));
    struct stat st {};
    fstat(fd.get(), &st);
    return inodes_.remember(std::move(fd), st);
  }
  void request(uint64_t unique, Inode& inode, uint32_t mode) {
    bridge_.handle_request(unique, inodes_.share(inode), dfuse::abi::LeaseIn{mode, dfuse::abi::kLeaseNone});
  }
  std::vector<Recorded> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  InodeTable& inodes() { return inodes_; }
  LeaseBridge& bridge() { return bridge_; }

 private:
  int record(const iovec* iov, int count) {
    Recorded r;
    r.seq = ++g_sequence;
    std::vector<char> all;
    for (int i = 0; i < count; ++i)
      all.insert(all.end(), static_cast<const char*>(iov[i].iov_base),
                 static_cast<const char*>(iov[i].iov_base) + iov[i].iov_len);
    std::memcpy(&r.hdr, all.data(), sizeof(r.hdr));
    r.body.assign(all.begin() + sizeof(r.hdr), all.end());
    std::lock_guard lock(mu_);
    messages_.push_back(r);
    return 0;
  }

  InodeTable inodes_;
  std::mutex mu_;
  std::vector<Recorded> messages_;  // protected by mu_
  LeaseBridge bridge_;
  std::unique_ptr<LeaseClient> client_;  // destroyed first: its threads call bridge_
};

dfuse::abi::LeaseOut lease_out(const Recorded& r) {
  dfuse::abi::LeaseOut out{};
  EXPECT_EQ(r.body.size(), sizeof(out));
  std::memcpy(&out, r.body.data(), std::min(r.body.size(), sizeof(out)));
  return out;
}

class LeaseServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    leased::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.ttl = std::chrono::milliseconds(2000);
    o.state_dir = dir_.sub("state");
    o.log = &log_;
    o.verbose = true;
    server_ = std::make_unique<leased::LeaseServer>(o);
    address_ = server_->start();
    backend_ = dir_.sub("backend");
    std::ofstream(backend_ + "/f") << "data";
  }
  void TearDown() override {
    server_->stop();
    if (HasFailure()) std::cerr << "service log:\n" << log_.str();
  }

  TempDir dir_;
  std::ostringstream log_;
  std::unique_ptr<leased::LeaseServer> server_;
  std::string address_;
  std::string backend_;
};

}  // namespace

TEST_F(LeaseServiceTest, ReaderOnBRevokesWriterOnAFirst) {
  Node a(backend_, address_, "node-a");
  Node b(backend_, address_, "node-b");
  Inode& fa = a.lookup(backend_ + "/f");
  Inode& fb = b.lookup(backend_ + "/f");
  ASSERT_EQ(fa.ino, fb.ino) << "the same FileId on both nodes";

  a.request(1, fa, dfuse::abi::kLeaseWrite);
  auto ma = a.messages();
  ASSERT_EQ(ma.size(), 1u);
  ASSERT_EQ(ma[0].hdr.error, 0);
  const auto grant_a = lease_out(ma[0]);
  EXPECT_EQ(grant_a.mode, dfuse::abi::kLeaseWrite);
  EXPECT_EQ(grant_a.attr.size, 4u);

  b.request(2, fb, dfuse::abi::kLeaseRead);
  const auto mb = b.messages();
  ASSERT_EQ(mb.size(), 1u);
  ASSERT_EQ(mb[0].hdr.error, 0);
  const auto grant_b = lease_out(mb[0]);
  EXPECT_GE(grant_b.mode, dfuse::abi::kLeaseRead);
  EXPECT_GT(grant_b.generation, grant_a.generation);

  ma = a.messages();
  ASSERT_EQ(ma.size(), 2u) << "A's kernel got a revoke";
  EXPECT_EQ(ma[1].hdr.unique, 0u);
  EXPECT_EQ(ma[1].hdr.error, dfuse::abi::kNotifyLeaseRevoke);
  dfuse::abi::NotifyLeaseRevoke n{};
  ASSERT_EQ(ma[1].body.size(), sizeof(n));
  std::memcpy(&n, ma[1].body.data(), sizeof(n));
  EXPECT_EQ(n.nodeid, a.inodes().nodeid(fa));
  EXPECT_EQ(n.generation, grant_a.generation);
  EXPECT_LT(ma[1].seq, mb[0].seq) << "B is answered only after A's kernel gave the lease up";
  EXPECT_LE(a.bridge().held(fa.ino), dfuse::abi::kLeaseRead);
}

TEST_F(LeaseServiceTest, LeaseReleasedOnForgetCostsTheNextNodeNoRevoke) {
  Node a(backend_, address_, "node-a");
  Node b(backend_, address_, "node-b");
  Inode& fa = a.lookup(backend_ + "/f");
  const ino_t ino = fa.ino;
  a.request(1, fa, dfuse::abi::kLeaseWrite);
  ASSERT_TRUE(a.inodes().forget(fa, 1));
  a.bridge().on_forgotten(ino);
  a.bridge().stop();  // the release ran
  EXPECT_EQ(a.bridge().held(ino), dfuse::abi::kLeaseNone);

  Inode& fb = b.lookup(backend_ + "/f");
  b.request(2, fb, dfuse::abi::kLeaseWrite);
  ASSERT_EQ(b.messages().size(), 1u);
  EXPECT_EQ(b.messages()[0].hdr.error, 0);
  EXPECT_EQ(a.messages().size(), 1u) << "no revoke was sent to A";
}

// The whole daemon in lease mode, with a fake kernel over a socketpair in
// place of the patched kernel's /dev/fuse, and a second node that is a bare
// LeaseClient.
TEST_F(LeaseServiceTest, DaemonInLeaseModeEndToEnd) {
  Options o;
  o.backend = backend_;
  o.mountpoint = "(fake kernel)";
  o.mode = Mode::kAuto;
  o.lease_service = address_;
  o.node_id = "dfused-a";
  o.threads = 2;
  Daemon daemon(o);
  daemon.connect_lease_service();
  dfuse::dfused::test::FakeKernel kernel;

  // FUSE_INIT offering lease mode: accepted in flags2, writeback cache on,
  // atomic_o_trunc and auto_inval_data off.
  auto started = std::async(std::launch::async, [&] { return daemon.start(kernel.daemon_end()); });
  const uint32_t lease2 = static_cast<uint32_t>(dfuse::abi::kInitLeases >> 32);
  kernel.send_init(FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_ATOMIC_O_TRUNC | FUSE_AUTO_INVAL_DATA,
                   lease2);
  auto r = kernel.recv();
  ASSERT_TRUE(r);
  const ModeDecision d = started.get();
  ASSERT_TRUE(d.ok) << d.why;
  EXPECT_EQ(d.mode, Mode::kLease);
  const auto init = r->as<fuse_init_out>();
  EXPECT_TRUE(init.flags & FUSE_INIT_EXT);
  EXPECT_NE(init.flags2 & lease2, 0u) << "lease mode accepted";
  EXPECT_TRUE(init.flags & FUSE_WRITEBACK_CACHE);
  EXPECT_FALSE(init.flags & FUSE_ATOMIC_O_TRUNC);
  EXPECT_FALSE(init.flags & FUSE_AUTO_INVAL_DATA);

  kernel.send(FUSE_LOOKUP, FUSE_ROOT_ID, "f", 2);
  r = kernel.recv();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->hdr.error, 0);
  const auto entry = r->as<fuse_entry_out>();
  // Names are not covered by leases: lease mode caches none.
  EXPECT_EQ(entry.entry_valid, 0u);
  EXPECT_EQ(entry.attr_valid, 0u);

  // The kernel asks for a write lease.
  const uint64_t u1 = kernel.send(dfuse::abi::kOpLease, entry.nodeid,
                                  dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, dfuse::abi::kLeaseNone});
  r = kernel.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hdr.unique, u1);
  ASSERT_EQ(r->hdr.error, 0);
  const auto g1 = r->as<dfuse::abi::LeaseOut>();
  EXPECT_EQ(g1.mode, dfuse::abi::kLeaseWrite);
  EXPECT_EQ(g1.attr.size, 4u);
  EXPECT_EQ(g1.attr.ino, entry.attr.ino);

  // Node B reads the file: the daemon must revoke the kernel's write lease.
  LeaseClientOptions bo;
  bo.address = address_;
  bo.node_id = "node-b";
  std::unique_ptr<LeaseClient> b;
  b = connect_lease_client(bo, [&b](const Revoke& rv) { b->ack(rv); });
  auto b_grant = std::async(std::launch::async,
                            [&] { return b->acquire(std::to_string(entry.attr.ino), dfuse::abi::kLeaseRead); });
  r = kernel.recv();
  ASSERT_TRUE(r) << "no revoke reached the kernel";
  EXPECT_EQ(r->hdr.unique, 0u);
  EXPECT_EQ(r->hdr.error, dfuse::abi::kNotifyLeaseRevoke);
  const auto n = r->as<dfuse::abi::NotifyLeaseRevoke>();
  EXPECT_EQ(n.nodeid, entry.nodeid);
  EXPECT_EQ(n.generation, g1.generation);
  EXPECT_LE(n.mode, dfuse::abi::kLeaseRead);
  const Grant gb = b_grant.get();  // granted once the daemon acked
  EXPECT_GT(gb.generation, g1.generation);

  // The kernel wants to write again: B's read lease is revoked first.
  const uint64_t u2 =
      kernel.send(dfuse::abi::kOpLease, entry.nodeid, dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, n.mode});
  r = kernel.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hdr.unique, u2);
  ASSERT_EQ(r->hdr.error, 0);
  EXPECT_GT(r->as<dfuse::abi::LeaseOut>().generation, gb.generation);
  b.reset();
  daemon.stop(false);
}
