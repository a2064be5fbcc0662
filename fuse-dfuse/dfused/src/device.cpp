// SPDX-License-Identifier: GPL-2.0-only
#include "device.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace dfuse::dfused {

Device::Device() : stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!stop_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

void Device::attach(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
    throw std::system_error(errno, std::generic_category(), "fcntl O_NONBLOCK on /dev/fuse");
  fd_.store(fd);
}

void Device::expect_init(uint64_t unique, const InitAccept& accept) {
  init_accept_ = accept;
  init_unique_.store(unique);
}

void Device::stop() {
  const uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof(one));
}

ssize_t Device::io_read(int fd, void* buf, size_t len) {
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    const int n = poll(fds, 2, -1);
    if (n == -1) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (fds[1].revents != 0) {
      errno = EINTR;  // fuse_session_receive_buf() sees the session exited and returns 0
      return -1;
    }
    if (fds[0].revents == 0) continue;
    const ssize_t r = ::read(fd, buf, len);
    if (r == -1 && errno == EAGAIN) continue;  // another thread took the request
    return r;                                  // data, or ENODEV once unmounted (POLLERR)
  }
}

ssize_t Device::io_writev(int fd, iovec* iov, int count) {
  const uint64_t init_unique = init_unique_.load();
  if (init_unique != 0 && count >= 2 && !init_replied_.load()) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == init_unique) {
      init_replied_.store(true);
      if (out.error == 0 && init_accept_.any()) {
        // Patch a copy: libfuse's buffer is its own.
        std::vector<char> body(static_cast<const char*>(iov[1].iov_base),
                               static_cast<const char*>(iov[1].iov_base) + iov[1].iov_len);
        if (patch_init_out(body.data(), body.size(), init_accept_)) {
          std::vector<iovec> copy(iov, iov + count);
          copy[1].iov_base = body.data();
          return ::writev(fd, copy.data(), count);
        }
      }
    }
  }
  return ::writev(fd, iov, count);
}

int Device::write(const iovec* iov, int count) {
  const int fd = fd_.load();
  if (fd < 0) return -ENODEV;
  const ssize_t r = ::writev(fd, iov, count);
  return r == -1 ? -errno : 0;
}

}  // namespace dfuse::dfused
