// SPDX-License-Identifier: GPL-2.0
// The sending side of the chain link from a node to its successor (link.h):
// ChainBatch messages down, ChainAck messages up, over one TCP connection to
// the successor's link address, which its State reports.
//
// Threading: write() is called by one thread at a time (the node's sender or
// its upstream reader); an internal reader thread delivers acknowledgements
// to on_ack and, once, the reason the stream ended to on_end.  close() (also
// run by the destructor) cancels the stream and joins the reader; it must not
// be called from on_ack or on_end.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "link.h"
#include "rubble.grpc.pb.h"

namespace fastpath::rubble {

// Channel arguments for chain links and clients: large messages, and one
// connection per channel so that parallel clients do not share one.
grpc::ChannelArguments channel_arguments();
std::shared_ptr<grpc::Channel> make_channel(const std::string& addr);

class Downstream {
 public:
  using AckFn = std::function<void(const wire::ChainAck&)>;
  using EndFn = std::function<void(const std::string&)>;

  Downstream(std::string addr, std::chrono::milliseconds timeout);
  ~Downstream();
  Downstream(const Downstream&) = delete;
  Downstream& operator=(const Downstream&) = delete;

  // Waits up to the timeout until the successor answers and learns its link
  // address.  "" or why not, with what to do.
  std::string connect();
  // Connects the link and sends hello; waits up to the timeout for the
  // successor's reply (stored in reply).  "" when the successor accepted.
  std::string open(const wire::Hello& hello, wire::ChainAck* reply, AckFn on_ack, EndFn on_end);
  // False once the stream has ended.
  bool write(const wire::ChainBatch& batch);
  // Aborts the stream (a blocked write returns); any thread, any time.
  void cancel();
  bool ended() const { return ended_.load(); }
  // write() fails from now on (callers serialise it with their writes).
  void stop_writes() { ended_ = true; }
  void close();

  const std::string& addr() const { return addr_; }
  std::uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  void read_loop(std::shared_ptr<std::promise<wire::ChainAck>> first);
  void end(const std::string& why);

  const std::string addr_;
  const std::chrono::milliseconds timeout_;
  std::string link_addr_;  // from the successor's State
  std::mutex socket_mu_;   // guards socket_ being set (cancel may race with open)
  std::unique_ptr<LinkSocket> socket_;
  std::atomic<bool> cancelled_{false};
  AckFn on_ack_;
  EndFn on_end_;
  std::thread reader_;
  std::atomic<bool> ended_{false};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::mutex close_mu_;  // serialises close()
  bool closed_ = false;  // guarded by close_mu_
};

}  // namespace fastpath::rubble
