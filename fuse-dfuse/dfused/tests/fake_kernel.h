// SPDX-License-Identifier: GPL-2.0-only
// Plays the kernel's side of /dev/fuse over a SOCK_SEQPACKET socketpair (one
// message per read, as on the device), so a Daemon's receive loop, FUSE_INIT
// interception and lease opcode can be driven on a kernel without DFUSE.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <linux/fuse.h>

#include "fastpath/unique_fd.h"

namespace dfuse::dfused::test {

struct Reply {
  fuse_out_header hdr{};
  std::vector<char> body;
  template <typename T>
  T as() const {
    T t{};
    std::memcpy(&t, body.data(), std::min(body.size(), sizeof(T)));
    return t;
  }
};

class FakeKernel {
 public:
  FakeKernel() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    kernel_ = fastpath::UniqueFd(sv[0]);
    daemon_end_ = sv[1];
  }
  // The end to give to Daemon::start() (the session closes it).
  int daemon_end() const { return daemon_end_; }

  // Sends a request; returns its unique.
  uint64_t send(uint32_t opcode, uint64_t nodeid, const void* body, size_t len) {
    fuse_in_header in{};
    in.len = static_cast<uint32_t>(sizeof(in) + len);
    in.opcode = opcode;
    in.unique = ++unique_;
    in.nodeid = nodeid;
    std::vector<char> msg(sizeof(in) + len);
    std::memcpy(msg.data(), &in, sizeof(in));
    if (len) std::memcpy(msg.data() + sizeof(in), body, len);
    if (::write(kernel_.get(), msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
      throw std::runtime_error("fake kernel: write");
    return in.unique;
  }
  template <typename T>
  uint64_t send(uint32_t opcode, uint64_t nodeid, const T& body) {
    return send(opcode, nodeid, &body, sizeof(body));
  }

  uint64_t send_init(uint32_t flags, uint32_t flags2) {
    fuse_init_in arg{};
    arg.major = 7;
    arg.minor = 38;
    arg.max_readahead = 128 << 10;
    arg.flags = flags;
    arg.flags2 = flags2;
    return send(FUSE_INIT, 0, arg);
  }

  // The next message from the daemon, or nullopt after `timeout_ms`.
  std::optional<Reply> recv(int timeout_ms = 5000) {
    pollfd p{kernel_.get(), POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    std::vector<char> buf(1 << 20);
    const ssize_t n = ::read(kernel_.get(), buf.data(), buf.size());
    if (n < static_cast<ssize_t>(sizeof(fuse_out_header))) return std::nullopt;
    Reply r;
    std::memcpy(&r.hdr, buf.data(), sizeof(r.hdr));
    r.body.assign(buf.begin() + sizeof(r.hdr), buf.begin() + n);
    return r;
  }

 private:
  fastpath::UniqueFd kernel_;
  int daemon_end_ = -1;
  uint64_t unique_ = 0;
};

}  // namespace dfuse::dfused::test
