// SPDX-License-Identifier: GPL-2.0-only
// The lease glue between the kernel and dfuse-leased.
//
//   kernel --kOpLease(nodeid, LeaseIn)--> worker --> lease thread:
//       LeaseClient::acquire(FileId, mode) --> reply LeaseOut {generation,
//       attr (fstatat of the backend file), attr_valid, mode}
//   dfuse-leased --Revoke(FileId, generation, new_mode)--> client thread:
//       FileId -> nodeid (inode table); write NotifyLeaseRevoke to
//       /dev/fuse (returns once the kernel has flushed and, for kLeaseNone,
//       dropped its cache; ENOENT: not cached); then LeaseClient::ack.
//
// Ordering, per file (FileLease):
//  - `seq` orders acquire and release RPCs of one file: a release for a
//    forgotten inode never overtakes the acquire of its successor.
//  - A revoke of generation g waits (bounded) until the reply carrying g has
//    been written to the kernel, so the kernel never sees a revoke of a grant
//    it has not received yet. Revokes never take `seq`: the service may be
//    waiting for this revoke before it answers an acquire of ours.
// Threads: FUSE workers only enqueue; acquire/release run on the bridge's
// own pool; revokes run on the LeaseClient's threads (never a FUSE worker,
// since the revoke write needs workers to serve the kernel's FUSE_WRITEs).
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "dfuse/kernel_abi.h"
#include "dfuse/lease_client.h"
#include "inode_table.h"
#include "task_pool.h"

namespace dfuse::dfused {

// libfuse's convert_stat() is internal; the lease reply needs the same.
fuse_attr to_fuse_attr(const struct stat& st);
FileId file_id(ino_t ino);

class LeaseBridge {
 public:
  // Writes one message to /dev/fuse; returns 0 or -errno.
  using Writer = std::function<int(const iovec* iov, int count)>;

  LeaseBridge(InodeTable& inodes, Writer write, double attr_timeout,
              std::chrono::milliseconds revoke_wait = std::chrono::seconds(5));
  ~LeaseBridge();  // stops the pool: waits for acquires in progress
  LeaseBridge(const LeaseBridge&) = delete;
  LeaseBridge& operator=(const LeaseBridge&) = delete;

  // Set once, before the mount serves requests; nullptr = no lease service.
  void set_client(LeaseClient* client) { client_ = client; }

  // A kOpLease request from a FUSE worker: validated, then answered from
  // the lease pool.
  void submit_request(uint64_t unique, fuse_ino_t nodeid, const abi::LeaseIn& in);
  // The same, synchronously (tests; the pool's task).
  void handle_request(uint64_t unique, const std::shared_ptr<Inode>& inode, const abi::LeaseIn& in);
  // An error reply to a request that never reaches the service.
  void reply_error(uint64_t unique, int err);

  // LeaseClient::RevokeHandler.
  void handle_revoke(const Revoke& revoke);

  // The kernel forgot the last inode of `ino`; release its lease (async).
  void on_forgotten(ino_t ino);
  // A name of `ino` was removed; release the lease if no link is left (async).
  void on_unlinked(ino_t ino);

  // Shutdown: from now on nothing is written to the device (replies are
  // dropped, revokes acked at once); returns when writes in progress ended.
  void close_device();
  // Waits for queued work (acquires in progress included) and stops the pool.
  void stop();

  // Test hook: the lease this node holds for `ino` according to the bridge.
  LeaseMode held(ino_t ino);

 private:
  struct FileLease {
    std::mutex seq;  // held across acquire/release RPCs of this file
    std::mutex mu;   // protects the fields below
    std::condition_variable replied_cv;
    LeaseMode held = abi::kLeaseNone;
    uint64_t generation = 0;  // of the grant held
    uint64_t replied = 0;     // newest generation written to the kernel
    int acquiring = 0;
  };

  std::shared_ptr<FileLease> file(ino_t ino, bool create);
  void prune(ino_t ino);
  void release(ino_t ino, bool only_if_forgotten);
  int write(const iovec* iov, int count);

  InodeTable& inodes_;
  const Writer write_;
  const double attr_timeout_;
  const std::chrono::milliseconds revoke_wait_;
  LeaseClient* client_ = nullptr;

  std::mutex files_mu_;
  std::unordered_map<ino_t, std::shared_ptr<FileLease>> files_;  // protected by files_mu_

  std::mutex dev_mu_;
  std::condition_variable dev_cv_;
  bool dev_closed_ = false;  // protected by dev_mu_
  int dev_writers_ = 0;      // protected by dev_mu_

  TaskPool pool_;  // last: its threads use the members above
};

}  // namespace dfuse::dfused
