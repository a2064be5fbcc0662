// SPDX-License-Identifier: GPL-2.0
// The head of a chain: orders writes, applies them, streams them to its
// successor and answers a client once the tail has acknowledged the write.
//
// Baseline mode: each write is one key-value entry; the sender thread applies
// queued entries to the head's RocksDB in sequence order, then ships them.
// Rubble mode: the client thread writes to RocksDB directly; the head's file
// system mirror turns the resulting WAL/MANIFEST/SST operations into entries,
// and the client waits for the entry that carried its WAL record.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "chain.h"
#include "downstream.h"
#include "identity.h"
#include "options.h"
#include "rubble.pb.h"
#include "sequencer.h"
#include "store.h"

namespace fastpath::rubble {

class RubbleHead;

class Head {
 public:
  Head(NodeOptions options, Identity identity);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  // Connects the chain and opens the database.  Throws std::runtime_error
  // with the cause and the fix.
  void start();
  void stop();

  grpc::Status put(const std::string& key, const std::string& value, wire::WriteReply* reply);
  grpc::Status del(const std::string& key, wire::WriteReply* reply);
  void fill_stats(wire::StatsReply* reply) const;

 private:
  grpc::Status write(wire::KvOp op, wire::WriteReply* reply);
  grpc::Status wait_ack(std::uint64_t seq, wire::WriteReply* reply);
  void connect_chain();
  void check_hello_reply(const wire::ChainAck& reply) const;
  void sender_loop();
  bool ship(std::vector<wire::Entry>& entries);
  void on_ack(const wire::ChainAck& ack);
  void on_end(const std::string& why);

  const NodeOptions options_;
  const Identity identity_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Sequencer> sequencer_;
  AckTracker acks_;
  std::unique_ptr<Downstream> down_;
  std::unique_ptr<RubbleHead> rubble_;  // rubble mode only
  std::thread sender_;
  std::atomic<bool> stopping_{false};
};

}  // namespace fastpath::rubble
