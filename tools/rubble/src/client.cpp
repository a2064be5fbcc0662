// SPDX-License-Identifier: GPL-2.0
#include "client.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "downstream.h"
#include "view.h"

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

ChainClient::ChainClient(const std::string& head, const std::string& tail) {
  connect(head, tail);
}

void ChainClient::connect(const std::string& head, const std::string& tail) {
  if (head != head_addr_ || !head_) head_ = wire::Rubble::NewStub(make_channel(head));
  if (tail != tail_addr_ || !tail_) tail_ = wire::Rubble::NewStub(make_channel(tail));
  head_addr_ = head;
  tail_addr_ = tail;
}

ChainClient ChainClient::follow(std::vector<std::string> seeds, std::chrono::milliseconds retry_for) {
  ChainClient c;
  c.follow_ = true;
  c.seeds_ = std::move(seeds);
  c.retry_for_ = retry_for;
  if (!c.refresh()) c.connect(c.seeds_.empty() ? "" : c.seeds_.front(), c.seeds_.empty() ? "" : c.seeds_.back());
  return c;
}

std::string ChainClient::fetch_view(const std::vector<std::string>& addrs, wire::View* view,
                                    std::chrono::milliseconds timeout, std::vector<wire::NodeState>* states) {
  std::vector<std::string> asked, todo = addrs;
  wire::View best;
  std::string last_error = "no address given";
  bool any = false;
  while (!todo.empty()) {
    const std::string addr = todo.front();
    todo.erase(todo.begin());
    if (addr.empty() || std::find(asked.begin(), asked.end(), addr) != asked.end()) continue;
    asked.push_back(addr);
    wire::NodeState st;
    if (const auto s = state(addr, &st, timeout); !s.ok()) {
      last_error = addr + ": " + describe(s);
      continue;
    }
    any = true;
    if (states) states->push_back(st);
    if (st.view().epoch() > best.epoch()) best = st.view();
    for (const auto& m : st.view().members()) todo.push_back(m.addr());
  }
  if (!any) return "no node of the chain answered (last: " + last_error + ")";
  if (best.epoch() == 0) return "the chain has not formed yet (no node holds a view)";
  *view = best;
  return "";
}

bool ChainClient::refresh() {
  std::vector<std::string> addrs = seeds_;
  addrs.push_back(head_addr_);
  addrs.push_back(tail_addr_);
  wire::View v;
  if (!fetch_view(addrs, &v, std::chrono::seconds(1)).empty()) return false;
  const auto head = head_of(v), tail = tail_of(v);
  if (head.empty() || tail.empty()) return false;
  for (const auto& m : v.members()) seeds_.push_back(m.addr());
  std::sort(seeds_.begin(), seeds_.end());
  seeds_.erase(std::unique(seeds_.begin(), seeds_.end()), seeds_.end());
  connect(head, tail);
  return true;
}

namespace {

bool reforming(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return true;
    default:
      return false;
  }
}

}  // namespace

template <class Call>
grpc::Status ChainClient::retry(bool write, Call call) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + retry_for_;
  for (int attempt = 0;; ++attempt) {
    auto st = call(write ? *head_ : *tail_);
    if (st.ok() || !follow_ || !reforming(st.error_code())) return st;
    if (std::chrono::steady_clock::now() >= deadline) {
      // Say what was tried and what to do, not only gRPC's last word.
      std::string known;
      for (const auto& s : seeds_) known += (known.empty() ? "" : ", ") + s;
      const auto secs =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count() /
          1000.0;
      char took[32];
      std::snprintf(took, sizeof took, "%.1f", secs);
      return grpc::Status(st.error_code(),
                          std::string("no ") + (write ? "head" : "tail") + " of the chain answered for " + took +
                              " s (members known: " + known + "; last: " + (write ? head_addr_ : tail_addr_) + ": " +
                              describe(st) +
                              "). If those nodes are down, name a live member (rubble-client --chain A,B,C)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 * (attempt + 1), 200)));
    refresh();
  }
}

template <class Request, class Method>
grpc::Status ChainClient::write_call(const Request& req, Method method, std::uint64_t* seq) {
  return retry(true, [&](wire::Rubble::Stub& stub) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    wire::WriteReply reply;
    auto st = (stub.*method)(&ctx, req, &reply);
    if (seq) *seq = reply.seq();
    return st;
  });
}

grpc::Status ChainClient::put(const std::string& key, const std::string& value, std::uint64_t* seq) {
  wire::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  return write_call(req, &wire::Rubble::Stub::Put, seq);
}

grpc::Status ChainClient::del(const std::string& key, std::uint64_t* seq) {
  wire::DeleteRequest req;
  req.set_key(key);
  return write_call(req, &wire::Rubble::Stub::Delete, seq);
}

grpc::Status ChainClient::write(const wire::WriteRequest& req, std::uint64_t* seq) {
  return write_call(req, &wire::Rubble::Stub::Write, seq);
}

grpc::Status ChainClient::get(const std::string& key, std::string* value, bool* found) {
  wire::GetRequest req;
  req.set_key(key);
  return retry(false, [&](wire::Rubble::Stub& stub) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    wire::GetReply reply;
    auto st = stub.Get(&ctx, req, &reply);
    *found = reply.found();
    *value = std::move(*reply.mutable_value());
    return st;
  });
}

grpc::Status ChainClient::scan(const std::string& start, std::uint32_t limit,
                               std::vector<std::pair<std::string, std::string>>* out) {
  wire::ScanRequest req;
  req.set_start(start);
  req.set_limit(limit);
  wire::ScanReply reply;
  auto st = retry(false, [&](wire::Rubble::Stub& stub) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    reply.Clear();
    return stub.Scan(&ctx, req, &reply);
  });
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

grpc::Status ChainClient::state(const std::string& addr, wire::NodeState* reply, std::chrono::milliseconds timeout) {
  auto stub = wire::Rubble::NewStub(make_channel(addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub->State(&ctx, wire::StateRequest{}, reply);
}

}  // namespace fastpath::rubble
