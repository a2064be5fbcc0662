// SPDX-License-Identifier: GPL-2.0
// A middle or tail of the chain.  It accepts one replication stream at a
// time from its predecessor, applies the entries in sequence order, passes
// them on (middle) or acknowledges them (tail), and serves reads (tail).
//
// Baseline mode: entries are key-value writes applied to the node's own
// RocksDB, which flushes and compacts as usual.
// Rubble mode: entries are the head's file operations; see rubble_replica.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "chain.h"
#include "identity.h"
#include "options.h"
#include "rubble.grpc.pb.h"
#include "store.h"

namespace fastpath::rubble {

class RubbleReplica;
class Session;

class Replica {
 public:
  using Stream = grpc::ServerReaderWriter<wire::ChainAck, wire::ChainBatch>;

  Replica(NodeOptions options, std::optional<Identity> identity);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Opens the store or pool and, for a middle, checks that the successor is
  // reachable.  Throws std::runtime_error with the cause and the fix.
  void start();
  // The address the server is bound to (for messages naming this node).
  void set_address(std::string address) { address_ = std::move(address); }

  grpc::Status replicate(grpc::ServerContext* ctx, Stream* stream);
  grpc::Status get(const std::string& key, wire::GetReply* reply);
  grpc::Status scan(const std::string& start, std::size_t limit, wire::ScanReply* reply);
  void fill_stats(wire::StatsReply* reply);

 private:
  grpc::Status run_session(Session& s);
  std::string begin_session(Session& s, const wire::Hello& hello);
  std::string connect_successor(Session& s, const wire::Hello& hello, wire::ChainAck* reply);
  std::string adopt_chain(const wire::Hello& hello);
  std::string on_batch(Session& s, const wire::ChainBatch& batch);
  std::string apply_kv(const wire::ChainBatch& batch);
  void acknowledge(Session& s, std::uint64_t seq);
  void forward_ack(Session& s, const wire::ChainAck& ack);
  void add_releases(wire::ChainAck& ack, std::uint32_t position);
  void tick(Session& s);
  LocalIdentity local_identity() const;
  std::string who() const;

  const NodeOptions options_;
  mutable std::mutex identity_mu_;
  std::optional<Identity> identity_;  // guarded by identity_mu_
  std::unique_ptr<Store> store_;      // baseline
  std::unique_ptr<RubbleReplica> rubble_;
  std::string address_;
  std::mutex session_mu_;  // held for the whole of one replication stream
  std::atomic<std::uint32_t> position_{0};
  std::atomic<std::uint64_t> applied_seq_{0};
  std::atomic<std::uint64_t> acked_seq_{0};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> ack_bytes_sent_{0};
};

}  // namespace fastpath::rubble
