// SPDX-License-Identifier: GPL-2.0-only
#include "server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <ctime>
#include <deque>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "epoch.h"
#include "lease.grpc.pb.h"

namespace dfuse::leased {

namespace {

using Stream = grpc::ServerReaderWriter<wire::ServiceMessage, wire::NodeMessage>;

// Messages for one stream, written by that stream's handler thread.
class Outbox {
 public:
  void push(wire::ServiceMessage m) {
    std::lock_guard lock(mu_);
    if (closed_) return;
    queue_.push_back(std::move(m));
    cv_.notify_one();
  }
  // Blocks for the next message; false once closed (and drained, if asked).
  bool pop(wire::ServiceMessage* m) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (discard_ || queue_.empty()) return false;
    *m = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  void close(bool drain) {
    std::lock_guard lock(mu_);
    closed_ = true;
    discard_ = discard_ || !drain;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<wire::ServiceMessage> queue_;
  bool closed_ = false;
  bool discard_ = false;
};

struct NodeSession {
  NodeId node;
  grpc::ServerContext* ctx = nullptr;  // valid while the handler runs
  Outbox out;
};

std::string hex(uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

std::string clock_now() {
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  std::ostringstream s;
  s << std::put_time(&tm, "%H:%M:%S") << '.' << std::setw(3) << std::setfill('0') << ms;
  return s.str();
}

}  // namespace

class LeaseServer::Impl final : public wire::LeaseService::Service {
 public:
  // wake_timer(t): the table has something to do at t (called under mu_
  // while a minimum hold keeps a revoke back).
  Impl(const ServerOptions& options, TableOptions table, std::function<uint32_t()> new_epoch,
       std::function<void(TimePoint)> wake_timer)
      : verbose_(options.verbose),
        log_(options.log ? options.log : &std::cerr),
        wake_timer_(std::move(wake_timer)),
        table_(table, std::move(new_epoch), Clock::now()) {}

  grpc::Status Session(grpc::ServerContext* ctx, Stream* stream) override;

  void tick() {
    std::lock_guard lock(mu_);
    table_.tick(Clock::now());
    route();
  }
  TimePoint next_deadline() {
    std::lock_guard lock(mu_);
    return table_.next_deadline();
  }
  uint32_t epoch() {
    std::lock_guard lock(mu_);
    return table_.epoch();
  }
  void shutdown() {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    for (auto& [node, s] : sessions_) {
      s->out.close(false);
      s->ctx->TryCancel();
    }
    sessions_.clear();
  }
  void log(const std::string& line) {
    std::lock_guard lock(log_mu_);
    *log_ << clock_now() << " dfuse-leased: " << line << std::endl;
  }

 private:
  std::shared_ptr<NodeSession> open(grpc::ServerContext* ctx, const wire::Register& reg);
  bool handle(const std::shared_ptr<NodeSession>& s, const wire::NodeMessage& m);
  void route();

  const bool verbose_;
  std::ostream* const log_;
  const std::function<void(TimePoint)> wake_timer_;
  std::mutex log_mu_;
  std::mutex mu_;  // guards everything below
  LeaseTable table_;
  std::map<NodeId, std::shared_ptr<NodeSession>> sessions_;  // the current stream of each node
  bool shutting_down_ = false;
};

namespace {

LeaseMode from_wire(wire::Mode m) {
  return static_cast<LeaseMode>(m);
}

wire::Mode to_wire(LeaseMode m) {
  return static_cast<wire::Mode>(m);
}

}  // namespace

std::shared_ptr<NodeSession> LeaseServer::Impl::open(grpc::ServerContext* ctx, const wire::Register& reg) {
  auto s = std::make_shared<NodeSession>();
  s->node = reg.node_id();
  s->ctx = ctx;
  std::vector<Lease> held;
  for (const auto& l : reg.held()) held.push_back(Lease{l.file(), from_wire(l.mode()), l.generation()});

  std::lock_guard lock(mu_);
  if (shutting_down_) return nullptr;
  // Expire first: an expiry of this very node must close its old stream,
  // not the one it registers on now.
  const auto now = Clock::now();
  table_.tick(now);
  route();
  if (auto it = sessions_.find(s->node); it != sessions_.end()) {
    it->second->out.close(false);
    it->second->ctx->TryCancel();
    log("node " + s->node + " registered again; its earlier stream is closed");
  }
  sessions_[s->node] = s;
  const auto results = table_.register_node(s->node, held, now);

  wire::ServiceMessage m;
  auto* r = m.mutable_registered();
  r->set_epoch(table_.epoch());
  r->set_ttl_ms(static_cast<uint64_t>(table_.ttl().count()));
  if (table_.in_grace()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(table_.grace_end() - Clock::now());
    r->set_grace_left_ms(static_cast<uint64_t>(std::max<int64_t>(left.count(), 1)));
  }
  int accepted = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto* c = r->add_reclaims();
    c->set_file(results[i].file);
    c->set_accepted(results[i].accepted);
    c->set_reason(results[i].reason);
    if (results[i].accepted) {
      ++accepted;
      if (verbose_)
        log("reclaim node=" + s->node + " file=" + held[i].file + " mode=" + mode_name(held[i].mode) +
            " generation=" + hex(held[i].generation));
    } else {
      log("reclaim refused node=" + s->node + " file=" + held[i].file + ": " + results[i].reason);
    }
  }
  log("node " + s->node + " registered, holding " + std::to_string(held.size()) + " leases (" +
      std::to_string(accepted) + " accepted)");
  s->out.push(std::move(m));  // before any revoke route() queues for it
  route();
  return s;
}

grpc::Status LeaseServer::Impl::Session(grpc::ServerContext* ctx, Stream* stream) {
  wire::NodeMessage first;
  if (!stream->Read(&first)) return {grpc::StatusCode::CANCELLED, "stream closed before registration"};
  if (!first.has_register_node())
    return {grpc::StatusCode::INVALID_ARGUMENT, "the first message of a session must be register_node"};
  if (first.register_node().node_id().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "register_node needs a non-empty node_id"};
  auto s = open(ctx, first.register_node());
  if (!s) return {grpc::StatusCode::UNAVAILABLE, "dfuse-leased is shutting down"};

  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    wire::NodeMessage m;
    while (stream->Read(&m))
      if (!handle(s, m)) break;
    {
      std::lock_guard lock(mu_);
      if (auto it = sessions_.find(s->node); it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
        table_.disconnect(s->node, Clock::now());
        if (verbose_) log("node " + s->node + " disconnected; its leases stay until the TTL");
        route();
      }
    }
    reader_done = true;
    s->out.close(true);
  });
  wire::ServiceMessage m;
  while (s->out.pop(&m))
    if (!stream->Write(m)) break;
  if (!reader_done) ctx->TryCancel();
  reader.join();
  return grpc::Status::OK;
}

bool LeaseServer::Impl::handle(const std::shared_ptr<NodeSession>& s, const wire::NodeMessage& m) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(s->node);
  if (it == sessions_.end() || it->second != s) return false;  // replaced or expired
  const auto now = Clock::now();
  table_.tick(now);
  route();
  if (!table_.registered(s->node)) return false;
  const NodeId& node = s->node;
  switch (m.body_case()) {
    case wire::NodeMessage::kAcquire: {
      const auto& a = m.acquire();
      if (verbose_)
        log("acquire node=" + node + " file=" + a.file() + " mode=" + mode_name(from_wire(a.mode())) +
            " request=" + std::to_string(a.request_id()));
      table_.acquire(node, a.request_id(), a.file(), from_wire(a.mode()), now);
      break;
    }
    case wire::NodeMessage::kAck: {
      const auto& a = m.ack();
      if (verbose_)
        log("ack node=" + node + " file=" + a.file() + " generation=" + hex(a.generation()) +
            " now=" + mode_name(from_wire(a.mode())));
      table_.ack(node, a.file(), a.generation(), from_wire(a.mode()), now);
      break;
    }
    case wire::NodeMessage::kRelease:
      for (const auto& l : m.release().leases()) {
        if (verbose_) log("release node=" + node + " file=" + l.file() + " generation=" + hex(l.generation()));
        table_.release(node, l.file(), l.generation(), now);
      }
      break;
    case wire::NodeMessage::kHeartbeat: {
      table_.heartbeat(node, now);
      wire::ServiceMessage reply;
      reply.mutable_heartbeat_ack()->set_seq(m.heartbeat().seq());
      s->out.push(std::move(reply));
      break;
    }
    case wire::NodeMessage::kRegisterNode:
      log("node " + node + " sent register_node twice on one stream; closing it");
      return false;
    default:
      table_.heartbeat(node, now);  // a newer node's message we do not know
      break;
  }
  route();
  return true;
}

// Delivers the table's actions to the nodes' streams. Under mu_.
void LeaseServer::Impl::route() {
  for (auto& a : table_.take_actions()) {
    auto it = sessions_.find(a.node);
    NodeSession* s = it == sessions_.end() ? nullptr : it->second.get();
    wire::ServiceMessage m;
    switch (a.kind) {
      case Action::Kind::kGrant: {
        if (verbose_)
          log("grant node=" + a.node + " file=" + a.file + " mode=" + mode_name(a.mode) +
              " generation=" + hex(a.generation));
        auto* g = m.mutable_granted();
        g->set_request_id(a.request_id);
        g->mutable_lease()->set_file(a.file);
        g->mutable_lease()->set_mode(to_wire(a.mode));
        g->mutable_lease()->set_generation(a.generation);
        break;
      }
      case Action::Kind::kRevoke: {
        if (verbose_)
          log("revoke node=" + a.node + " file=" + a.file + " to=" + mode_name(a.mode) +
              " generation=" + hex(a.generation) + (s ? "" : " (node not connected)"));
        auto* r = m.mutable_revoke();
        r->set_file(a.file);
        r->set_new_mode(to_wire(a.mode));
        r->set_generation(a.generation);
        break;
      }
      case Action::Kind::kRefuse: {
        log("refuse node=" + a.node + " file=" + a.file + ": " + a.reason);
        auto* r = m.mutable_refused();
        r->set_request_id(a.request_id);
        r->set_file(a.file);
        r->set_reason(a.reason);
        break;
      }
      case Action::Kind::kExpire:
        log("node " + a.node + " expired (no message for " + std::to_string(table_.ttl().count()) +
            " ms); its leases are gone");
        if (s) {
          s->out.close(false);
          s->ctx->TryCancel();
          sessions_.erase(it);
        }
        continue;
    }
    if (s) s->out.push(std::move(m));
  }
  // A revoke kept back by a minimum hold is due sooner than the timer's
  // usual 100 ms round.
  if (const TimePoint t = table_.next_hold_end(); t != TimePoint::max()) wake_timer_(t);
}

LeaseServer::LeaseServer(ServerOptions options) : options_(std::move(options)) {
  if (options_.grace.count() < 0) options_.grace = 2 * options_.ttl;
}

LeaseServer::~LeaseServer() {
  stop();
}

std::chrono::milliseconds LeaseServer::grace() const {
  return options_.grace;
}

uint32_t LeaseServer::epoch() const {
  return impl_ ? impl_->epoch() : 0;
}

std::string LeaseServer::start() {
  if (options_.ttl.count() <= 0) throw std::runtime_error("the TTL must be positive");
  if (options_.state_dir.empty()) throw std::runtime_error("no state directory given; pass --state-dir");
  const EpochStart first = bump_epoch(options_.state_dir);
  restarted_ = first.restarted;
  bool first_call = true;
  auto new_epoch = [this, first, first_call]() mutable {
    if (first_call) {
      first_call = false;
      return first.epoch;
    }
    return bump_epoch(options_.state_dir).epoch;
  };
  TableOptions table;
  table.ttl = options_.ttl;
  table.grace = options_.grace;
  table.min_hold = options_.min_hold;
  table.restarted = restarted_;
  impl_ = std::make_unique<Impl>(options_, table, new_epoch, [this](TimePoint t) { wake_timer(t); });

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second service would share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(impl_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    impl_.reset();
    throw std::runtime_error("cannot listen on " + options_.listen +
                             ": the address is in use (another dfuse-leased?) or not local; stop the other service "
                             "or pick another --listen");
  }
  {
    std::lock_guard lock(timer_mu_);
    stopping_ = false;
  }
  timer_ = std::thread([this] { timer_loop(); });
  const auto colon = options_.listen.rfind(':');
  return options_.listen.substr(0, colon) + ":" + std::to_string(port);
}

void LeaseServer::wake_timer(TimePoint t) {
  std::lock_guard lock(timer_mu_);
  if (t >= wake_at_) return;
  wake_at_ = t;
  timer_cv_.notify_all();
}

void LeaseServer::timer_loop() {
  std::unique_lock lock(timer_mu_);
  while (!stopping_) {
    const auto cap = Clock::now() + std::chrono::milliseconds(100);
    wake_at_ = TimePoint::max();  // from here on wake_timer() may move it earlier
    lock.unlock();
    const auto deadline = std::min(impl_->next_deadline(), cap);
    lock.lock();
    wake_at_ = std::min(wake_at_, deadline);
    while (!stopping_ && Clock::now() < wake_at_) timer_cv_.wait_until(lock, wake_at_);
    if (stopping_) break;
    lock.unlock();
    impl_->tick();
    lock.lock();
  }
}

void LeaseServer::stop() {
  if (!server_) return;
  impl_->shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  {
    std::lock_guard lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  server_.reset();
}

}  // namespace dfuse::leased
