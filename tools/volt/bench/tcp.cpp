// SPDX-License-Identifier: GPL-2.0
#include "tcp.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

namespace volt::bench {
namespace {

std::runtime_error sys(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

void nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

Tcp Tcp::connect(const std::string& host, int port, int retry_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0)
    throw std::runtime_error("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(retry_ms);
  for (;;) {
    for (const addrinfo* a = res; a; a = a->ai_next) {
      fastpath::UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      if (fd && ::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
        nodelay(fd.get());
        return Tcp(std::move(fd));
      }
    }
    if (errno != ECONNREFUSED || std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("cannot connect to the volt-bench target at " + host + ":" + std::to_string(port) +
                               ": " + std::strerror(errno) + "; start 'volt-bench --mode target' there first");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Tcp::send(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::send(fd_.get(), b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw sys("side channel: send");
    b += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool Tcp::recv_or_eof(void* p, std::size_t n) {
  auto* b = static_cast<std::uint8_t*>(p);
  const std::size_t want = n;
  while (n > 0) {
    const ssize_t r = ::recv(fd_.get(), b, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw sys("side channel: recv");
    if (r == 0) {
      if (n == want) return false;
      throw std::runtime_error("side channel: the peer closed the connection mid-message");
    }
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void Tcp::recv(void* p, std::size_t n) {
  if (!recv_or_eof(p, n))
    throw std::runtime_error("side channel: the peer closed the connection; see its own error message");
}

void Tcp::put_string(const std::string& s) {
  put(static_cast<std::uint32_t>(s.size()));
  send(s.data(), s.size());
}

std::string Tcp::get_string() {
  const auto n = get<std::uint32_t>();
  if (n > (1u << 20)) throw std::runtime_error("side channel: implausible string length");
  std::string s(n, '\0');
  recv(s.data(), n);
  return s;
}

TcpListener::TcpListener(int port) {
  fd_ = fastpath::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw sys("socket");
  const int one = 1;
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw sys("cannot listen on TCP port " + std::to_string(port) + " (pick another with --port)");
  if (::listen(fd_.get(), 4) != 0) throw sys("listen");
  socklen_t len = sizeof a;
  ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
}

Tcp TcpListener::accept() {
  for (;;) {
    fastpath::UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd && errno == EINTR) continue;
    if (!fd) throw sys("accept");
    nodelay(fd.get());
    return Tcp(std::move(fd));
  }
}

}  // namespace volt::bench
