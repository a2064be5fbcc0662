// SPDX-License-Identifier: GPL-2.0
#include "node.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "downstream.h"
#include "procstat.h"

namespace fastpath::rubble {

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() {
  stop();
}

Identity Node::head_identity(const std::optional<Identity>& found) const {
  if (found) return *found;
  Identity id{options_.chain_id.empty() ? random_id() : options_.chain_id, options_.mode};
  write_identity(options_.db, id);
  return id;
}

std::string Node::start() {
  if (auto e = validate(options_); !e.empty()) throw std::runtime_error(e);
  const auto found = check_db_dir(options_.db, options_.mode, options_.chain_id);
  if (options_.role == Role::kHead) {
    head_ = std::make_unique<Head>(options_, head_identity(found));
    head_->start();
    return listen();
  }
  replica_ = std::make_unique<Replica>(options_, found);
  replica_->start();
  auto addr = listen();
  replica_->set_address(addr);
  return addr;
}

std::string Node::listen() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0)
    throw std::runtime_error("cannot listen on " + options_.listen +
                             ": the port is in use or the address is not local; pick another --listen");
  const auto colon = options_.listen.rfind(':');
  return options_.listen.substr(0, colon) + ":" + std::to_string(port);
}

void Node::stop() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  if (head_) head_->stop();
  server_.reset();
  head_.reset();
  replica_.reset();
}

grpc::Status Node::Put(grpc::ServerContext*, const wire::PutRequest* req, wire::WriteReply* reply) {
  if (!head_) return {grpc::StatusCode::FAILED_PRECONDITION, check_client_op(options_.role, ClientOp::kPut)};
  return head_->put(req->key(), req->value(), reply);
}

grpc::Status Node::Delete(grpc::ServerContext*, const wire::DeleteRequest* req, wire::WriteReply* reply) {
  if (!head_) return {grpc::StatusCode::FAILED_PRECONDITION, check_client_op(options_.role, ClientOp::kDelete)};
  return head_->del(req->key(), reply);
}

grpc::Status Node::Get(grpc::ServerContext*, const wire::GetRequest* req, wire::GetReply* reply) {
  if (!replica_) return {grpc::StatusCode::FAILED_PRECONDITION, check_client_op(options_.role, ClientOp::kGet)};
  auto st = replica_->get(req->key(), reply);
  reply_bytes_sent_ += reply->ByteSizeLong();
  return st;
}

grpc::Status Node::Scan(grpc::ServerContext*, const wire::ScanRequest* req, wire::ScanReply* reply) {
  if (!replica_) return {grpc::StatusCode::FAILED_PRECONDITION, check_client_op(options_.role, ClientOp::kGet)};
  if (req->limit() == 0 || req->limit() > kMaxScanKeys)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "scan limit " + std::to_string(req->limit()) + ": ask for 1 to " + std::to_string(kMaxScanKeys) + " keys"};
  auto st = replica_->scan(req->start(), req->limit(), reply);
  reply_bytes_sent_ += reply->ByteSizeLong();
  return st;
}

grpc::Status Node::Stats(grpc::ServerContext*, const wire::StatsRequest*, wire::StatsReply* reply) {
  reply->set_role(to_string(options_.role));
  reply->set_mode(to_string(options_.mode));
  reply->set_pid(::getpid());
  reply->set_cpu_seconds(cpu_seconds(::getpid()));
  reply->set_io_write_bytes(static_cast<std::uint64_t>(std::max(0LL, io_write_bytes(::getpid()))));
  reply->set_reply_bytes_sent(reply_bytes_sent_.load());
  if (head_) head_->fill_stats(reply);
  if (replica_) replica_->fill_stats(reply);
  return grpc::Status::OK;
}

grpc::Status Node::Replicate(grpc::ServerContext* ctx,
                             grpc::ServerReaderWriter<wire::ChainAck, wire::ChainBatch>* stream) {
  if (!replica_) {
    wire::ChainAck no;
    no.set_error("the node at " + options_.listen +
                 " is a head: a head has no predecessor; fix the --next of the node "
                 "that points here");
    stream->Write(no);
    return {grpc::StatusCode::FAILED_PRECONDITION, no.error()};
  }
  return replica_->replicate(ctx, stream);
}

}  // namespace fastpath::rubble
