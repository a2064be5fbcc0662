// SPDX-License-Identifier: GPL-2.0
#include "link.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace fastpath::rubble {

namespace {

constexpr std::size_t kReadChunk = 256 << 10;

// HOST:PORT (HOST may be [v6]) into host (brackets removed) and port.
bool split_host_port(const std::string& addr, std::string* host, std::string* port) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = addr.substr(0, colon);
  *port = addr.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return !host->empty() && !port->empty();
}

void tune(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

LinkSocket::LinkSocket(UniqueFd fd) : fd_(std::move(fd)) {
  tune(fd_.get());
}

bool LinkSocket::write(const google::protobuf::MessageLite& msg) {
  const std::size_t size = msg.ByteSizeLong();
  if (size > kMaxLinkMessage) return false;
  out_.resize(4 + size);
  auto* p = reinterpret_cast<unsigned char*>(out_.data());
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(size >> (8 * i));
  msg.SerializeWithCachedSizesToArray(p + 4);
  std::size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n = ::send(fd_.get(), out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  last_write_ = out_.size();
  if (out_.capacity() > 4 * kReadChunk) std::string().swap(out_);  // do not keep a snapshot-sized buffer
  return true;
}

// Makes sure n bytes are buffered from in_pos_ on.
bool LinkSocket::fill(std::size_t n) {
  if (in_.size() - in_pos_ >= n) return true;
  if (in_pos_ > 0) {  // keep the unread bytes at the front
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  while (in_.size() < n) {
    const std::size_t have = in_.size();
    in_.resize(std::max(n, have + kReadChunk));
    const ssize_t got = ::recv(fd_.get(), in_.data() + have, in_.size() - have, 0);
    in_.resize(have + static_cast<std::size_t>(std::max<ssize_t>(got, 0)));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      error_ = "the connection broke: " + errno_text(errno);
      return false;
    }
    if (got == 0) {
      error_ = have ? "the connection closed in the middle of a message" : "";
      return false;
    }
  }
  return true;
}

bool LinkSocket::read(google::protobuf::MessageLite* msg) {
  if (!fill(4)) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + in_pos_);
  const std::size_t size = p[0] | (std::size_t{p[1]} << 8) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 24);
  if (size > kMaxLinkMessage) {
    error_ = "a message of " + std::to_string(size) + " bytes, more than the limit: not a rubble chain link?";
    return false;
  }
  if (!fill(4 + size)) return false;
  const bool ok = msg->ParseFromArray(in_.data() + in_pos_ + 4, static_cast<int>(size));
  in_pos_ += 4 + size;
  last_read_ = 4 + size;
  if (in_pos_ == in_.size()) {
    in_pos_ = 0;
    in_.clear();
    if (in_.capacity() > 4 * kReadChunk) std::string().swap(in_);
  }
  if (!ok) error_ = "a malformed message on the chain link";
  return ok;
}

void LinkSocket::shutdown() {
  ::shutdown(fd_.get(), SHUT_RDWR);
}

std::string connect_link(const std::string& addr, std::chrono::milliseconds timeout, std::unique_ptr<LinkSocket>* out) {
  std::string host, port;
  if (!split_host_port(addr, &host, &port)) return "malformed link address '" + addr + "'";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return "cannot resolve " + addr + ": " + ::gai_strerror(rc);
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> free_res(res, ::freeaddrinfo);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string why = "no address";
  for (auto* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) {
      why = errno_text(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd pfd{fd.get(), POLLOUT, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        const int n = ::poll(&pfd, 1, static_cast<int>(std::max<long>(0, left.count())));
        socklen_t len = sizeof err;
        if (n <= 0)
          err = n == 0 ? ETIMEDOUT : errno;
        else if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
          err = errno;
      }
    }
    if (err != 0) {
      why = errno_text(err);
      continue;
    }
    const int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    *out = std::make_unique<LinkSocket>(std::move(fd));
    return "";
  }
  return "cannot connect to the chain link at " + addr + ": " + why;
}

LinkListener::LinkListener(const std::string& host_text, Handler handler) : handler_(std::move(handler)) {
  std::string host = host_text;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), "0", &hints, &res); rc != 0)
    throw std::runtime_error("cannot resolve " + host_text + " for the chain link: " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> free_res(res, ::freeaddrinfo);
  std::string why = "no address";
  for (auto* ai = res; ai && !fd_; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    const int one = 1;
    if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
      why = errno_text(errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      why = errno_text(errno);
      continue;
    }
    const unsigned port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    address_ = host_text + ":" + std::to_string(port);
    fd_ = std::move(fd);
  }
  if (!fd_) throw std::runtime_error("cannot listen for the chain link on " + host_text + ": " + why);
  acceptor_ = std::thread([this] { accept_loop(); });
}

LinkListener::~LinkListener() {
  stop();
}

void LinkListener::accept_loop() {
  for (;;) {
    UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    std::lock_guard lock(mu_);
    if (stopped_) return;
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      return;
    }
    reap_locked();
    auto& c = conns_.emplace_back();
    c.socket = std::make_unique<LinkSocket>(std::move(fd));
    c.thread = std::thread([this, &c] {
      handler_(*c.socket);
      c.socket->shutdown();
      std::lock_guard l(mu_);
      c.done = true;
    });
  }
}

// Joins the handlers that have returned.  mu_ held; a handler that is done
// only needs the lock to set done, which it has.
void LinkListener::reap_locked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    it = conns_.erase(it);
  }
}

void LinkListener::stop() {
  std::list<Conn> conns;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);  // wakes accept()
    for (auto& c : conns_) c.socket->shutdown();
  }
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mu_);
    conns.splice(conns.end(), conns_);
  }
  for (auto& c : conns)
    if (c.thread.joinable()) c.thread.join();
}

}  // namespace fastpath::rubble
