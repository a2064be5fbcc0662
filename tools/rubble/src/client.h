// SPDX-License-Identifier: GPL-2.0
// A client of a chain: writes to the head, reads from the tail.
#pragma once

#include <grpcpp/grpcpp.h>

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

  grpc::Status put(const std::string& key, const std::string& value, std::uint64_t* seq = nullptr);
  grpc::Status del(const std::string& key, std::uint64_t* seq = nullptr);
  // found is false (and value empty) when the key does not exist.
  grpc::Status get(const std::string& key, std::string* value, bool* found);
  // Up to limit keys >= start, in key order.
  grpc::Status scan(const std::string& start, std::uint32_t limit,
                    std::vector<std::pair<std::string, std::string>>* out);

  static grpc::Status stats(const std::string& addr, wire::StatsReply* reply);

 private:
  std::unique_ptr<wire::Rubble::Stub> head_;
  std::unique_ptr<wire::Rubble::Stub> tail_;
};

// "CODE: message" for an error status.
std::string describe(const grpc::Status& status);

}  // namespace fastpath::rubble
