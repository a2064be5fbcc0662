// SPDX-License-Identifier: GPL-2.0
#include "common.h"

#include <cstdio>

#include "fastpath/cli.h"

#include "fastpath/report.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

namespace urdma::tools {
namespace {

std::runtime_error sys_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

std::string connect_failure(const std::string& host, int port, int err) {
  std::string m = "cannot connect to " + host + ":" + std::to_string(port) + ": " + std::strerror(err);
  switch (err) {
    case ECONNREFUSED:
      return m + "; is the server running? Start the server side first (same test, same -p " + std::to_string(port) +
             ") and make sure it printed that it is waiting for a client";
    case ENETUNREACH:
    case EHOSTUNREACH:
      return m + "; check the server address and the routes to it";
    case ETIMEDOUT:
      return m + "; the host does not answer: check the address and any firewall";
    default:
      return m;
  }
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string peer_name(const sockaddr* sa) {
  char host[NI_MAXHOST] = "?";
  char serv[NI_MAXSERV] = "?";
  const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  ::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  return std::string(host) + ":" + serv;
}

// One attempt over every address; returns the socket or sets err.
fastpath::UniqueFd try_connect(const addrinfo* res, int& err) {
  err = EHOSTUNREACH;
  for (const addrinfo* t = res; t; t = t->ai_next) {
    fastpath::UniqueFd fd(::socket(t->ai_family, t->ai_socktype | SOCK_CLOEXEC, t->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    if (::connect(fd.get(), t->ai_addr, t->ai_addrlen) == 0) return fd;
    err = errno;
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------- TCP

TcpConn TcpConn::connect(const std::string& host, int port, int retry_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0)
    throw std::runtime_error("cannot resolve server '" + host + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(retry_ms);
  for (;;) {
    int err = 0;
    fastpath::UniqueFd fd = try_connect(res, err);
    if (fd) {
      set_nodelay(fd.get());
      return TcpConn(std::move(fd), host + ":" + service);
    }
    if (err != ECONNREFUSED || std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error(connect_failure(host, port, err));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void TcpConn::send_all(const void* data, std::size_t n, std::string_view what) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd_.get(), p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;
      if (err == EPIPE || err == ECONNRESET)
        throw std::runtime_error("the peer (" + peer_ + ") closed the TCP connection before we could send " +
                                 std::string(what) + "; see the peer's own error message");
      throw sys_error("cannot send " + std::string(what) + " to " + peer_, err);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool TcpConn::try_send(const void* data, std::size_t n) {
  return ::send(fd_.get(), data, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

void TcpConn::recv_exact(void* data, std::size_t n, int timeout_ms, std::string_view what) {
  auto* p = static_cast<std::uint8_t*>(data);
  const std::size_t want = n;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (n > 0) {
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0)
        throw std::runtime_error("timed out after " + std::to_string(timeout_ms / 1000) + " s waiting for " +
                                 std::string(what) + " from " + peer_ +
                                 "; is the peer running the same test, and is it stuck or waiting for something else?");
      wait_ms = static_cast<int>(left);
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) throw sys_error("poll on the TCP connection to " + peer_, errno);
    if (pr == 0) continue;
    const ssize_t r = ::recv(fd_.get(), p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw sys_error("cannot receive " + std::string(what) + " from " + peer_, errno);
    if (r == 0)
      throw std::runtime_error("the peer (" + peer_ + ") closed the TCP connection while we waited for " +
                               std::string(what) + " (" + std::to_string(want - n) + " of " + std::to_string(want) +
                               " bytes received); see the peer's own error message");
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

TcpListener::TcpListener(int port) {
  auto bind_any = [&](int family) -> bool {
    fastpath::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    const int one = 1, zero = 0;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (family == AF_INET6) {
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_any;
      a->sin6_port = htons(static_cast<std::uint16_t>(port));
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_ANY);
      a->sin_port = htons(static_cast<std::uint16_t>(port));
      len = sizeof *a;
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      if (errno == EADDRINUSE)
        throw std::runtime_error("TCP port " + std::to_string(port) +
                                 " is in use: another server (or an earlier run) still holds it; stop it or pick "
                                 "another port with -p on both sides");
      return false;
    }
    if (::listen(fd.get(), 1) != 0) throw sys_error("listen on TCP port " + std::to_string(port), errno);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                               : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    fd_ = std::move(fd);
    return true;
  };
  if (!bind_any(AF_INET6) && !bind_any(AF_INET))
    throw sys_error("cannot listen on TCP port " + std::to_string(port), errno);
}

TcpConn TcpListener::accept() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    fastpath::UniqueFd fd(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC));
    if (!fd && errno == EINTR) continue;
    if (!fd) throw sys_error("accept on TCP port " + std::to_string(port_), errno);
    set_nodelay(fd.get());
    return TcpConn(std::move(fd), peer_name(reinterpret_cast<sockaddr*>(&ss)));
  }
}

// ---------------------------------------------------------------- memory

void Buffer::Free::operator()(std::uint8_t* p) const {
  std::free(p);
}

Buffer::Buffer(std::size_t size) : size_(size) {
  const std::size_t page = page_size();
  const std::size_t rounded = (size + page - 1) / page * page;
  void* p = std::aligned_alloc(page, rounded == 0 ? page : rounded);
  if (p == nullptr) throw std::runtime_error("cannot allocate a " + std::to_string(size) + "-byte buffer");
  std::memset(p, 0, rounded);
  mem_.reset(static_cast<std::uint8_t*>(p));
}

std::size_t page_size() {
  const long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::size_t>(p) : 4096;
}

// ---------------------------------------------------------------- verbs helpers

std::unique_ptr<Device> open_device(const std::string& name, const std::string& spec) {
  try {
    return Device::open(name, spec);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot open urdma device '" + name + "' with --backend " + spec + ": " + e.what());
  }
}

std::string gid_to_string(const ibv_gid& gid) {
  char s[INET6_ADDRSTRLEN] = "";
  ::inet_ntop(AF_INET6, gid.raw, s, sizeof s);
  return s;
}

bool gid_is_v4_mapped(const ibv_gid& gid) {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(gid.raw, kPrefix, sizeof kPrefix) == 0;
}

void check_peer_gid(const ibv_gid& gid, std::string_view gid_option) {
  if (gid.global.interface_id == 0)
    throw std::runtime_error("the peer sent no GID (" + gid_to_string(gid) +
                             "), so RoCE cannot address it: run it with " + std::string(gid_option) +
                             " <index of its ::ffff:a.b.c.d GID> (on rxe usually 1; see `rdma link`/`ibv_devinfo -v`)");
  if (!gid_is_v4_mapped(gid))
    throw std::runtime_error("the peer's GID " + gid_to_string(gid) +
                             " is not IPv4-mapped; urdma speaks RoCEv2 over IPv4 only: give the peer " +
                             std::string(gid_option) + " <index of its ::ffff:a.b.c.d GID> (on rxe usually 1)");
}

void modify_qp(Qp& qp, const ibv_qp_attr& attr, int mask, std::string_view state_name) {
  if (const int err = qp.modify(attr, mask); err != 0)
    throw std::runtime_error("cannot move the QP to " + std::string(state_name) + ": " + std::strerror(err));
}

namespace {

const char* wr_kind(ibv_wc_opcode op) {
  switch (op) {
    case IBV_WC_SEND:
      return "SEND";
    case IBV_WC_RDMA_WRITE:
      return "RDMA WRITE";
    case IBV_WC_RDMA_READ:
      return "RDMA READ";
    case IBV_WC_COMP_SWAP:
      return "compare-and-swap";
    case IBV_WC_FETCH_ADD:
      return "fetch-and-add";
    case IBV_WC_RECV:
    case IBV_WC_RECV_RDMA_WITH_IMM:
      return "receive";
    default:
      return "work request";
  }
}

}  // namespace

std::string completion_error(const ibv_wc& wc, const Qp& qp) {
  std::string reason = qp.error_reason();
  if (reason.empty()) reason = "the work completion reports " + std::string(wc_status_str(wc.status));
  std::string m = "QP went to ERROR: " + reason + " (" + wc_status_str(wc.status) + " on " + wr_kind(wc.opcode) +
                  " wr_id " + std::to_string(wc.wr_id) + ")";
  switch (wc.status) {
    case IBV_WC_RETRY_EXC_ERR:
      m += "; the peer stopped answering: is it still running, and do the GIDs/addresses match both back-ends?";
      break;
    case IBV_WC_RNR_RETRY_EXC_ERR:
      m += "; the peer posted no receive in time";
      break;
    case IBV_WC_REM_ACCESS_ERR:
      m += "; the peer refused the rkey or address range: do both sides run the same test with the same -s/-a?";
      break;
    case IBV_WC_REM_INV_REQ_ERR:
      m += "; the peer's QP does not allow this operation, or the message is larger than its receive: do both sides "
           "run the same test with the same options (-s, -a)?";
      break;
    default:
      break;
  }
  return m;
}

namespace {

std::string device_counters(const Device& dev) {
  const DeviceStats st = dev.stats();
  return std::to_string(st.rx_packets) + " packets in, " + std::to_string(st.tx_packets) + " out, " +
         std::to_string(st.retransmits) + " retransmissions, " +
         std::to_string(st.rx_bad_icrc + st.rx_malformed + st.rx_no_qp + st.rx_unknown_opcode) + " dropped on receive";
}

}  // namespace

StallWatch::StallWatch(const Device& dev, const Qp& qp, std::chrono::milliseconds timeout)
    : dev_(dev), qp_(qp), timeout_(timeout) {
  restart();
}

void StallWatch::restart() {
  start_ns_ = coarse_ns();
  check_ns_ = start_ns_ + static_cast<std::uint64_t>(timeout_.count()) * 1'000'000;
  rx_seen_ = dev_.rx_packets();
}

bool StallWatch::due() const {
  return coarse_ns() >= check_ns_;
}

int StallWatch::ms_to_check() const {
  const std::uint64_t now = coarse_ns();
  return now >= check_ns_ ? 0 : static_cast<int>((check_ns_ - now + 999'999) / 1'000'000);
}

void StallWatch::check(const std::function<std::string()>& what) {
  const std::uint64_t now = coarse_ns();
  if (now < check_ns_) return;
  const std::uint64_t timeout_ns = static_cast<std::uint64_t>(timeout_.count()) * 1'000'000;
  const std::uint64_t rx = dev_.rx_packets();
  const bool moving = rx != rx_seen_;
  if (moving && now - start_ns_ < kLivelock * timeout_ns) {
    rx_seen_ = rx;
    check_ns_ = now + timeout_ns;
    return;
  }
  const std::string secs = fastpath::fixed(double(now - start_ns_) / 1e9, 1);
  std::string m = moving ? "no completion for " + secs + " s although packets kept arriving, while waiting for "
                         : "nothing arrived for " + secs + " s while waiting for ";
  m += what() + " (QP " + std::string(qp_state_str(qp_.state()));
  const std::string reason = qp_.error_reason();
  if (!reason.empty()) m += ": " + reason;
  m += "; device: " + device_counters(dev_) + ")";
  m += moving ? "; the peer may be answering with RNR NAKs (no receive posted: same test and options on both sides?) "
                "or the link loses most packets"
              : "; is the peer still running, and can the two back-ends reach each other (addresses, GIDs)?";
  throw std::runtime_error(m);
}

int CqWaiter::wait(ibv_wc* wc, int n, const std::function<std::string()>& what) {
  watch_.restart();
  int got = 0;
  for (unsigned spins = 1; got == 0; ++spins) {
    if (events_) {
      got = cq_.wait(n, wc, std::max(watch_.ms_to_check(), 1));
      if (got == 0) watch_.check(what);
      continue;
    }
    got = cq_.poll(n, wc);
    if (got == 0 && (spins & 1023) == 0 && watch_.due()) watch_.check(what);
    if (got == 0) spin_pause(spins);
  }
  for (int i = 0; i < got; ++i)
    if (wc[i].status != IBV_WC_SUCCESS) throw std::runtime_error(completion_error(wc[i], qp_));
  return got;
}

void spin_pause(unsigned spins) {
  if ((spins & 63) == 0) sched_yield();
}

void linger(const Device& dev, std::chrono::milliseconds quiet, std::chrono::milliseconds at_most) {
  const auto end = std::chrono::steady_clock::now() + at_most;
  DeviceStats last = dev.stats();
  auto last_change = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end && std::chrono::steady_clock::now() - last_change < quiet) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const DeviceStats now = dev.stats();
    if (now.rx_packets != last.rx_packets || now.tx_packets != last.tx_packets) {
      last = now;
      last_change = std::chrono::steady_clock::now();
    }
  }
}

std::uint32_t random_psn() {
  static std::mt19937 gen(std::random_device{}());
  return gen() & 0xffffff;
}

int tool_main(const char* tool, CLI::App& app, int argc, char** argv, const std::function<void()>& body) {
  if (const int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  try {
    body();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fastpath::cli::error(tool, e.what());
    return 1;
  }
  return 0;
}

}  // namespace urdma::tools
