// SPDX-License-Identifier: GPL-2.0
// A client of a chain: writes to the head, reads from the tail.
//
// A following client (ChainClient::follow) finds the head and the tail in
// the chain's view, which it asks any member for (the newest epoch wins),
// and asks again whenever a request fails in a way a re-forming chain
// explains (the node is gone, is no longer head or tail, the tail did not
// acknowledge in time); it retries until its retry budget is spent.  Puts
// and deletes are idempotent, so a retried write is harmless; a write whose
// reply was lost may still be in the chain.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rubble.grpc.pb.h"

namespace fastpath::rubble {

class ChainClient {
 public:
  ChainClient(const std::string& head, const std::string& tail);
  // Follows the view of the chain that any of seeds belongs to.
  static ChainClient follow(std::vector<std::string> seeds,
                            std::chrono::milliseconds retry_for = std::chrono::seconds(30));

  grpc::Status put(const std::string& key, const std::string& value, std::uint64_t* seq = nullptr);
  grpc::Status del(const std::string& key, std::uint64_t* seq = nullptr);
  // Several puts and deletes in one call, applied in order; seq is the
  // entry that covers the last.  Not atomic (see WriteRequest).
  grpc::Status write(const wire::WriteRequest& req, std::uint64_t* seq = nullptr);
  // found is false (and value empty) when the key does not exist.
  grpc::Status get(const std::string& key, std::string* value, bool* found);
  // Up to limit keys >= start, in key order.
  grpc::Status scan(const std::string& start, std::uint32_t limit,
                    std::vector<std::pair<std::string, std::string>>* out);

  static grpc::Status stats(const std::string& addr, wire::StatsReply* reply);
  static grpc::Status state(const std::string& addr, wire::NodeState* reply,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The newest view any of addrs (and then its members) holds, and each
  // reachable node's state.  "" or why not (none answered).
  static std::string fetch_view(const std::vector<std::string>& addrs, wire::View* view,
                                std::chrono::milliseconds timeout = std::chrono::seconds(2),
                                std::vector<wire::NodeState>* states = nullptr);

  const std::string& head_addr() const { return head_addr_; }
  const std::string& tail_addr() const { return tail_addr_; }

 private:
  ChainClient() = default;
  void connect(const std::string& head, const std::string& tail);
  bool refresh();
  template <class Call>
  grpc::Status retry(bool write, Call call);
  // Put, Delete or Write (method) at the head, with retries; seq from its reply.
  template <class Request, class Method>
  grpc::Status write_call(const Request& req, Method method, std::uint64_t* seq);

  std::unique_ptr<wire::Rubble::Stub> head_;
  std::unique_ptr<wire::Rubble::Stub> tail_;
  std::string head_addr_, tail_addr_;
  bool follow_ = false;
  std::vector<std::string> seeds_;
  std::chrono::milliseconds retry_for_{0};
};

// "CODE: message" for an error status.
std::string describe(const grpc::Status& status);

}  // namespace fastpath::rubble
