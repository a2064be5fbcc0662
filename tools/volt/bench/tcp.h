// SPDX-License-Identifier: GPL-2.0
// The side channel between volt-bench --mode client and --mode target: one
// TCP connection, length-checked binary messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fastpath/unique_fd.h"

namespace volt::bench {

class Tcp {
 public:
  Tcp() = default;
  explicit Tcp(fastpath::UniqueFd fd) : fd_(std::move(fd)) {}
  // HOST:PORT or HOST (default port); retries a refused connection for retry_ms.
  static Tcp connect(const std::string& host, int port, int retry_ms);
  void send(const void* p, std::size_t n);
  // Throws on EOF or error.
  void recv(void* p, std::size_t n);
  // false on an orderly EOF before the first byte.
  bool recv_or_eof(void* p, std::size_t n);
  template <class T>
  void put(const T& v) {
    send(&v, sizeof v);
  }
  template <class T>
  T get() {
    T v{};
    recv(&v, sizeof v);
    return v;
  }
  void put_string(const std::string& s);
  std::string get_string();

 private:
  fastpath::UniqueFd fd_;
};

class TcpListener {
 public:
  explicit TcpListener(int port);
  Tcp accept();
  int port() const { return port_; }

 private:
  fastpath::UniqueFd fd_;
  int port_ = 0;
};

}  // namespace volt::bench
