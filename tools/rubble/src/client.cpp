// SPDX-License-Identifier: GPL-2.0
#include "client.h"

#include "downstream.h"

namespace fastpath::rubble {

namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);

void set_deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
}

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return "ERROR";
  }
}

}  // namespace

std::string describe(const grpc::Status& status) {
  return std::string(code_name(status.error_code())) + ": " + status.error_message();
}

ChainClient::ChainClient(const std::string& head, const std::string& tail)
    : head_(wire::Rubble::NewStub(make_channel(head))), tail_(wire::Rubble::NewStub(make_channel(tail))) {}

grpc::Status ChainClient::put(const std::string& key, const std::string& value, std::uint64_t* seq) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  wire::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  wire::WriteReply reply;
  auto st = head_->Put(&ctx, req, &reply);
  if (seq) *seq = reply.seq();
  return st;
}

grpc::Status ChainClient::del(const std::string& key, std::uint64_t* seq) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  wire::DeleteRequest req;
  req.set_key(key);
  wire::WriteReply reply;
  auto st = head_->Delete(&ctx, req, &reply);
  if (seq) *seq = reply.seq();
  return st;
}

grpc::Status ChainClient::get(const std::string& key, std::string* value, bool* found) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  wire::GetRequest req;
  req.set_key(key);
  wire::GetReply reply;
  auto st = tail_->Get(&ctx, req, &reply);
  *found = reply.found();
  *value = std::move(*reply.mutable_value());
  return st;
}

grpc::Status ChainClient::scan(const std::string& start, std::uint32_t limit,
                               std::vector<std::pair<std::string, std::string>>* out) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  wire::ScanRequest req;
  req.set_start(start);
  req.set_limit(limit);
  wire::ScanReply reply;
  auto st = tail_->Scan(&ctx, req, &reply);
  for (auto& item : *reply.mutable_items())
    out->emplace_back(std::move(*item.mutable_key()), std::move(*item.mutable_value()));
  return st;
}

grpc::Status ChainClient::stats(const std::string& addr, wire::StatsReply* reply) {
  auto stub = wire::Rubble::NewStub(make_channel(addr));
  grpc::ClientContext ctx;
  set_deadline(ctx);
  return stub->Stats(&ctx, wire::StatsRequest{}, reply);
}

}  // namespace fastpath::rubble
