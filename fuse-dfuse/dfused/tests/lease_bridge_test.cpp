// SPDX-License-Identifier: GPL-2.0-only
// Description: the lease glue without a kernel: a kOpLease request becomes
// LeaseClient::acquire and a LeaseOut reply (generation, mode, current
// attributes); a revoke becomes a NotifyLeaseRevoke written to the device,
// then an ack; a revoke of a grant whose reply is still on its way waits
// for that reply; forget and unlink release the lease. The device is a
// recording function, the service a fake LeaseClient.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "dfuse/kernel_abi.h"
#include "lease_bridge.h"
#include "test_util.h"

using namespace dfuse;
using namespace dfuse::dfused;
using dfuse::dfused::test::TempDir;

namespace {

struct Message {
  fuse_out_header hdr{};
  std::vector<char> body;
};

class FakeClient : public LeaseClient {
 public:
  Grant acquire(const FileId& file, LeaseMode mode) override {
    std::unique_lock lock(mu);
    acquired.push_back(file);
    in_acquire = true;
    cv.notify_all();
    cv.wait(lock, [this] { return !hold_acquire; });
    in_acquire = false;
    if (fail) throw LeaseError("service at localhost:1 unreachable");
    return Grant{mode, next_generation};
  }
  void ack(const Revoke& r) override {
    std::lock_guard lock(mu);
    acks.push_back(r);
  }
  void release(const FileId& file) override {
    std::lock_guard lock(mu);
    released.push_back(file);
  }
  void release_all() override {}
  std::vector<std::pair<FileId, Grant>> held() const override { return {}; }

  std::mutex mu;
  std::condition_variable cv;
  bool hold_acquire = false;
  bool in_acquire = false;
  bool fail = false;
  uint64_t next_generation = 5;
  std::vector<FileId> acquired;
  std::vector<Revoke> acks;
  std::vector<FileId> released;
};

class LeaseBridgeTest : public ::testing::Test {
 protected:
  LeaseBridgeTest()
      : inodes_(fastpath::UniqueFd(::open(dir_.path().c_str(), O_PATH | O_DIRECTORY))),
        bridge_(
            inodes_, [this](const iovec* iov, int count) { return record(iov, count); }, 1.0,
            std::chrono::milliseconds(2000)) {
    bridge_.set_client(&client_);
  }

  // Creates a backend file with `size` bytes and looks it up once.
  Inode& add_file(const std::string& name, size_t size) {
    std::ofstream(dir_.path() + "/" + name) << std::string(size, 'x');
    fastpath::UniqueFd fd(::open((dir_.path() + "/" + name).c_str(), O_PATH | O_NOFOLLOW));
    struct stat st {};
    fstat(fd.get(), &st);
    return inodes_.remember(std::move(fd), st);
  }

  int record(const iovec* iov, int count) {
    Message m;
    std::vector<char> all;
    for (int i = 0; i < count; ++i)
      all.insert(all.end(), static_cast<const char*>(iov[i].iov_base),
                 static_cast<const char*>(iov[i].iov_base) + iov[i].iov_len);
    std::memcpy(&m.hdr, all.data(), sizeof(m.hdr));
    EXPECT_EQ(m.hdr.len, all.size());
    m.body.assign(all.begin() + sizeof(m.hdr), all.end());
    std::lock_guard lock(mu_);
    messages_.push_back(m);
    return write_result_;
  }

  std::vector<Message> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }

  TempDir dir_;
  InodeTable inodes_;
  FakeClient client_;
  std::mutex mu_;
  std::vector<Message> messages_;  // protected by mu_
  int write_result_ = 0;
  LeaseBridge bridge_;  // last: destroyed first
};

}  // namespace

TEST_F(LeaseBridgeTest, RequestIsAnsweredWithGrantAndCurrentAttributes) {
  Inode& inode = add_file("f", 1234);
  bridge_.handle_request(77, inodes_.share(inode),
                         dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, dfuse::abi::kLeaseNone});
  ASSERT_EQ(client_.acquired, std::vector<FileId>{std::to_string(inode.ino)}) << "FileId is st_ino in decimal";
  const auto msgs = messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].hdr.unique, 77u);
  EXPECT_EQ(msgs[0].hdr.error, 0);
  ASSERT_EQ(msgs[0].body.size(), sizeof(dfuse::abi::LeaseOut));
  dfuse::abi::LeaseOut out;
  std::memcpy(&out, msgs[0].body.data(), sizeof(out));
  EXPECT_EQ(out.generation, 5u);
  EXPECT_EQ(out.mode, dfuse::abi::kLeaseWrite);
  EXPECT_EQ(out.attr.size, 1234u);
  EXPECT_EQ(out.attr.ino, inode.ino);
  EXPECT_EQ(out.attr_valid, 1u);
  EXPECT_EQ(bridge_.held(inode.ino), dfuse::abi::kLeaseWrite);
}

TEST_F(LeaseBridgeTest, UnreachableServiceIsEio) {
  Inode& inode = add_file("f", 1);
  client_.fail = true;
  bridge_.handle_request(3, inodes_.share(inode), dfuse::abi::LeaseIn{dfuse::abi::kLeaseRead, dfuse::abi::kLeaseNone});
  const auto msgs = messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].hdr.error, -EIO);
  EXPECT_TRUE(msgs[0].body.empty());
  EXPECT_EQ(bridge_.held(inode.ino), dfuse::abi::kLeaseNone);
}

TEST_F(LeaseBridgeTest, BadModeAndMissingServiceAreRefused) {
  Inode& inode = add_file("f", 1);
  bridge_.submit_request(4, inodes_.nodeid(inode), dfuse::abi::LeaseIn{7, 0});
  bridge_.set_client(nullptr);
  bridge_.submit_request(5, inodes_.nodeid(inode), dfuse::abi::LeaseIn{dfuse::abi::kLeaseRead, 0});
  const auto msgs = messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].hdr.error, -EINVAL);
  EXPECT_EQ(msgs[1].hdr.error, -ENOSYS);
}

TEST_F(LeaseBridgeTest, RevokeIsWrittenToTheKernelThenAcked) {
  Inode& inode = add_file("f", 1);
  bridge_.handle_request(1, inodes_.share(inode), dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, dfuse::abi::kLeaseNone});
  bridge_.handle_revoke(Revoke{std::to_string(inode.ino), dfuse::abi::kLeaseRead, 5});
  const auto msgs = messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].hdr.unique, 0u);
  EXPECT_EQ(msgs[1].hdr.error, dfuse::abi::kNotifyLeaseRevoke);
  ASSERT_EQ(msgs[1].body.size(), sizeof(dfuse::abi::NotifyLeaseRevoke));
  dfuse::abi::NotifyLeaseRevoke n;
  std::memcpy(&n, msgs[1].body.data(), sizeof(n));
  EXPECT_EQ(n.nodeid, inodes_.nodeid(inode));
  EXPECT_EQ(n.generation, 5u);
  EXPECT_EQ(n.mode, dfuse::abi::kLeaseRead);
  ASSERT_EQ(client_.acks.size(), 1u);
  EXPECT_EQ(client_.acks[0].generation, 5u);
  EXPECT_EQ(bridge_.held(inode.ino), dfuse::abi::kLeaseRead);
}

TEST_F(LeaseBridgeTest, RevokeOfUnknownFileOrUncachedInodeIsAckedAtOnce) {
  bridge_.handle_revoke(Revoke{"999999999", dfuse::abi::kLeaseNone, 1});
  bridge_.handle_revoke(Revoke{"not-a-number", dfuse::abi::kLeaseNone, 1});
  EXPECT_TRUE(messages().empty());
  Inode& inode = add_file("f", 1);
  write_result_ = -ENOENT;  // the kernel no longer caches it
  bridge_.handle_revoke(Revoke{std::to_string(inode.ino), dfuse::abi::kLeaseNone, 2});
  EXPECT_EQ(messages().size(), 1u);
  EXPECT_EQ(client_.acks.size(), 3u);
}

TEST_F(LeaseBridgeTest, RevokeWaitsForTheReplyOfItsGrant) {
  Inode& inode = add_file("f", 1);
  {
    std::lock_guard lock(client_.mu);
    client_.hold_acquire = true;
  }
  auto request = std::async(std::launch::async, [&] {
    bridge_.handle_request(8, inodes_.share(inode),
                           dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, dfuse::abi::kLeaseNone});
  });
  {
    std::unique_lock lock(client_.mu);
    client_.cv.wait(lock, [&] { return client_.in_acquire; });
  }
  // The service granted generation 5 and revokes it before dfused replied.
  auto revoke = std::async(std::launch::async, [&] {
    bridge_.handle_revoke(Revoke{std::to_string(inode.ino), dfuse::abi::kLeaseNone, 5});
  });
  EXPECT_EQ(revoke.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  EXPECT_TRUE(messages().empty());
  {
    std::lock_guard lock(client_.mu);
    client_.hold_acquire = false;
  }
  client_.cv.notify_all();
  request.get();
  revoke.get();
  const auto msgs = messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].hdr.unique, 8u) << "the grant reaches the kernel first";
  EXPECT_EQ(msgs[1].hdr.error, dfuse::abi::kNotifyLeaseRevoke);
  EXPECT_EQ(bridge_.held(inode.ino), dfuse::abi::kLeaseNone);
}

TEST_F(LeaseBridgeTest, ForgetAndUnlinkReleaseTheLease) {
  Inode& a = add_file("a", 1);
  Inode& b = add_file("b", 1);
  const ino_t ino_a = a.ino, ino_b = b.ino;
  bridge_.handle_request(1, inodes_.share(a), dfuse::abi::LeaseIn{dfuse::abi::kLeaseRead, dfuse::abi::kLeaseNone});
  bridge_.handle_request(2, inodes_.share(b), dfuse::abi::LeaseIn{dfuse::abi::kLeaseWrite, dfuse::abi::kLeaseNone});

  ASSERT_TRUE(inodes_.forget(a, 1));
  bridge_.on_forgotten(ino_a);
  ASSERT_EQ(unlink((dir_.path() + "/b").c_str()), 0);
  bridge_.on_unlinked(ino_b);
  bridge_.stop();
  std::sort(client_.released.begin(), client_.released.end());
  std::vector<FileId> want = {std::to_string(ino_a), std::to_string(ino_b)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(client_.released, want);
  EXPECT_EQ(bridge_.held(ino_a), dfuse::abi::kLeaseNone);
  EXPECT_EQ(bridge_.held(ino_b), dfuse::abi::kLeaseNone);
}

TEST_F(LeaseBridgeTest, NothingIsWrittenAfterCloseDevice) {
  Inode& inode = add_file("f", 1);
  bridge_.close_device();
  bridge_.handle_request(1, inodes_.share(inode), dfuse::abi::LeaseIn{dfuse::abi::kLeaseRead, dfuse::abi::kLeaseNone});
  bridge_.handle_revoke(Revoke{std::to_string(inode.ino), dfuse::abi::kLeaseNone, 5});
  EXPECT_TRUE(messages().empty());
  EXPECT_EQ(client_.acks.size(), 1u) << "a revoke is still acknowledged";
}
