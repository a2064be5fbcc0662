// SPDX-License-Identifier: GPL-2.0
// The chain link's transport: one TCP connection from a node to its
// successor carrying length-prefixed protobuf messages (ChainBatch down,
// ChainAck up), each a 4-byte little-endian length and the serialized
// message.
//
// Why not a gRPC stream: a replication message on a synchronous gRPC stream
// went through gRPC's poller thread and a hand-off to the reading thread,
// HTTP/2 framing and a completion queue on each side; on the 2-core test
// machine that cost about 35 us of CPU per message and dominated a rubble
// replica's CPU.  Here a reader thread blocks in recv() on its own socket
// and a writer sends with one send() per message.  The node's address stays
// its gRPC address: the link's own address is in its State (link_addr).
//
// Threading: one reader and one writer at a time (callers serialise their
// writes); shutdown() may be called from any thread and wakes both.
#pragma once

#include <google/protobuf/message_lite.h>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fastpath/unique_fd.h"

namespace fastpath::rubble {

inline constexpr std::size_t kMaxLinkMessage = 64 << 20;

class LinkSocket {
 public:
  explicit LinkSocket(UniqueFd fd);
  LinkSocket(const LinkSocket&) = delete;
  LinkSocket& operator=(const LinkSocket&) = delete;

  // False once the connection is closed or broken.
  bool write(const google::protobuf::MessageLite& msg);
  // One message; false at the end of the stream, on an error, or when the
  // bytes are not a message of that type (error() says which).
  bool read(google::protobuf::MessageLite* msg);
  // Both directions end: blocked calls return false.
  void shutdown();
  const std::string& error() const { return error_; }
  // Bytes of the last message written or read (header included).
  std::size_t last_write_bytes() const { return last_write_; }
  std::size_t last_read_bytes() const { return last_read_; }

 private:
  bool fill(std::size_t n);

  UniqueFd fd_;
  std::string out_;  // the writer's buffer
  std::size_t last_write_ = 0;
  std::string in_;  // the reader's buffer: bytes received, not yet consumed from in_pos_
  std::size_t in_pos_ = 0;
  std::size_t last_read_ = 0;
  std::string error_;  // the reader's
};

// Connects to HOST:PORT within timeout.  "" or why not.
std::string connect_link(const std::string& addr, std::chrono::milliseconds timeout, std::unique_ptr<LinkSocket>* out);

// Accepts link connections on HOST (the node's --listen host), any free
// port, and runs handler on a thread of its own for each.
class LinkListener {
 public:
  using Handler = std::function<void(LinkSocket&)>;
  // Throws std::runtime_error when it cannot listen.
  LinkListener(const std::string& host, Handler handler);
  ~LinkListener();
  LinkListener(const LinkListener&) = delete;
  LinkListener& operator=(const LinkListener&) = delete;

  // HOST:PORT as peers connect to it.
  const std::string& address() const { return address_; }
  // No new connection; open ones are shut down and their handlers joined.
  void stop();

 private:
  struct Conn {
    std::unique_ptr<LinkSocket> socket;
    std::thread thread;
    bool done = false;
  };
  void accept_loop();
  void reap_locked();

  Handler handler_;
  UniqueFd fd_;
  std::string address_;
  std::thread acceptor_;
  std::mutex mu_;
  std::list<Conn> conns_;  // guarded by mu_
  bool stopped_ = false;   // guarded by mu_
};

}  // namespace fastpath::rubble
