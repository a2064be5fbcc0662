// SPDX-License-Identifier: GPL-2.0
// The gRPC service of one rubble-node: a head or a replica behind the same
// Rubble service, plus the server that runs it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "head.h"
#include "options.h"
#include "replica.h"
#include "rubble.grpc.pb.h"

namespace fastpath::rubble {

class Node final : public wire::Rubble::Service {
 public:
  explicit Node(NodeOptions options);
  ~Node() override;

  // Checks --db, opens the store, connects the chain (head) and starts
  // serving.  Returns the bound address.  Throws std::runtime_error with the
  // cause and the fix.
  std::string start();
  // Stops serving (in-flight streams are cancelled) and closes the store.
  void stop();

  grpc::Status Put(grpc::ServerContext*, const wire::PutRequest*, wire::WriteReply*) override;
  grpc::Status Delete(grpc::ServerContext*, const wire::DeleteRequest*, wire::WriteReply*) override;
  grpc::Status Get(grpc::ServerContext*, const wire::GetRequest*, wire::GetReply*) override;
  grpc::Status Scan(grpc::ServerContext*, const wire::ScanRequest*, wire::ScanReply*) override;
  grpc::Status Stats(grpc::ServerContext*, const wire::StatsRequest*, wire::StatsReply*) override;
  grpc::Status Replicate(grpc::ServerContext*, grpc::ServerReaderWriter<wire::ChainAck, wire::ChainBatch>*) override;

 private:
  std::string listen();
  Identity head_identity(const std::optional<Identity>& found) const;

  const NodeOptions options_;
  std::unique_ptr<Head> head_;
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<std::uint64_t> reply_bytes_sent_{0};
};

}  // namespace fastpath::rubble
