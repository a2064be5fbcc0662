// SPDX-License-Identifier: GPL-2.0-only
// dfused's access to /dev/fuse, installed into libfuse with
// fuse_session_custom_io() right after fuse_session_mount():
//
//  - read: waits (poll) for a request or for stop(), so worker threads can
//    be stopped without cancellation; the descriptor is made non-blocking so
//    a thread that loses the race for a request goes back to poll.
//  - writev: every reply libfuse sends passes here; the reply to FUSE_INIT
//    gets dfused's extra capability bits (leases, direct-I/O mmap).
//  - write: dfused's own messages (lease replies, revoke notifications),
//    which libfuse knows nothing about.
//
// libfuse 3.14 facts this relies on (lib/fuse_lowlevel.c): custom io only
// sets se->io and se->fd, so it may follow fuse_session_mount();
// fuse_session_receive_buf() and fuse_send_msg() call io->read and
// io->writev; without io->splice_receive / io->splice_send do_init() does
// not even offer FUSE_CAP_SPLICE_READ / SPLICE_WRITE, so every request sits
// in memory; fuse_send_msg() sets fuse_out_header.len before io->writev.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "fastpath/unique_fd.h"
#include "fuse_init.h"

namespace dfuse::dfused {

class Device {
 public:
  Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Starts using the session's descriptor (not owned: libfuse closes it).
  void attach(int fd);
  int fd() const { return fd_.load(); }

  // The FUSE_INIT request with this unique gets `accept` in its reply.
  void expect_init(uint64_t unique, const InitAccept& accept);
  // The reply to that request has been written (patched or not).
  bool init_replied() const { return init_replied_.load(); }

  // Writes one message of ours (reply or notification). Returns 0 or -errno.
  // May block: a revoke notification returns once the kernel has flushed.
  int write(const iovec* iov, int count);

  // Wakes every thread in io_read(); they return EINTR. Call after
  // fuse_session_exit().
  void stop();

  // fuse_custom_io.read and .writev (the session's userdata leads here).
  ssize_t io_read(int fd, void* buf, size_t len);
  ssize_t io_writev(int fd, iovec* iov, int count);

 private:
  std::atomic<int> fd_{-1};
  fastpath::UniqueFd stop_fd_;  // eventfd, readable once stop() ran
  std::atomic<uint64_t> init_unique_{0};
  InitAccept init_accept_;  // written before the INIT request is processed, read in its reply
  std::atomic<bool> init_replied_{false};
};

}  // namespace dfuse::dfused
