// SPDX-License-Identifier: GPL-2.0-only
#include "server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <ctime>
#include <deque>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "epoch.h"
#include "etcd_store.h"
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
  Impl(const ServerOptions& options, std::function<void(TimePoint)> wake_timer)
      : verbose_(options.verbose), log_(options.log ? options.log : &std::cerr), wake_timer_(std::move(wake_timer)) {}

  grpc::Status Session(grpc::ServerContext* ctx, Stream* stream) override;

  // Starts leading with a fresh table holding `restored`. gated: grants wait
  // for commit() (replicated); otherwise they go out at once.
  // lead_alive (replicated): whether this lead's etcd lease still lives;
  // checked on every node message, so that no heartbeat is answered after
  // it lapsed (a new leader may exist then).
  void lead(TableOptions table, std::function<uint32_t()> new_epoch,
            const std::vector<std::pair<NodeId, Lease>>& restored, bool gated,
            std::function<bool()> lead_alive = nullptr) {
    std::lock_guard lock(mu_);
    lead_alive_ = std::move(lead_alive);
    table_ = std::make_unique<LeaseTable>(table, std::move(new_epoch), Clock::now());
    table_->restore(restored, Clock::now());
    gated_ = gated;
    ++term_;
    etcd_down_ = false;
  }
  // Stops leading: every stream closes, the nodes look for the new leader.
  // term != 0: only if the lead of that term still runs.
  void step_down(const std::string& why, uint64_t term = 0) {
    std::lock_guard lock(mu_);
    if (term != 0 && term != term_) return;
    step_down_locked(why);
  }
  void step_down_locked(const std::string& why) {
    if (!table_) return;
    table_.reset();
    lead_alive_ = nullptr;
    leader_.clear();
    ++term_;
    pending_.clear();
    outq_.clear();
    for (auto& [node, s] : sessions_) {
      s->out.close(false);
      s->ctx->TryCancel();
    }
    sessions_.clear();
    commit_cv_.notify_all();
    log("no longer leading: " + why + "; every node stream is closed, the nodes move to the leader");
  }
  bool leading() {
    std::lock_guard lock(mu_);
    return table_ != nullptr;
  }
  void set_leader(const std::string& leader) {
    std::lock_guard lock(mu_);
    leader_ = leader;
  }
  std::string leader() {
    std::lock_guard lock(mu_);
    return leader_;
  }

  // The commit thread: waits for changed records (or stop/step-down);
  // false when stopping.
  bool take_writes(std::map<FileId, FileHolders>* writes, uint64_t* seq, uint64_t* term) {
    std::unique_lock lock(mu_);
    commit_cv_.wait(lock, [&] { return shutting_down_ || (table_ && !pending_.empty()); });
    if (shutting_down_) return false;
    *writes = std::exchange(pending_, {});
    *seq = write_seq_;
    *term = term_;
    return true;
  }
  // Records up to seq are in etcd: release what waited for them.
  void committed(uint64_t seq, uint64_t term) {
    std::lock_guard lock(mu_);
    if (term != term_) return;
    committed_seq_ = std::max(committed_seq_, seq);
    if (etcd_down_) {
      etcd_down_ = false;
      notify_all_locked("etcd answers again; new grants go out");
    }
    deliver();
  }
  // etcd did not answer: keep the writes (newer records of a file win).
  void commit_failed(std::map<FileId, FileHolders> writes, uint64_t term, const std::string& why) {
    std::lock_guard lock(mu_);
    if (term != term_) return;
    for (auto& [file, holders] : writes) pending_.try_emplace(file, std::move(holders));
    if (!etcd_down_) {
      etcd_down_ = true;
      notify_all_locked("etcd unreachable (" + why +
                        "): no new grants until it answers; nodes keep the leases they hold while this service answers "
                        "their heartbeats, and until their TTL after that");
    }
  }

  void tick() {
    std::lock_guard lock(mu_);
    if (!table_) return;
    table_->tick(Clock::now());
    route();
  }
  TimePoint next_deadline() {
    std::lock_guard lock(mu_);
    return table_ ? table_->next_deadline() : TimePoint::max();
  }
  uint32_t epoch() {
    std::lock_guard lock(mu_);
    return table_ ? table_->epoch() : 0;
  }
  void shutdown() {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    for (auto& [node, s] : sessions_) {
      s->out.close(false);
      s->ctx->TryCancel();
    }
    sessions_.clear();
    commit_cv_.notify_all();
  }
  void log(const std::string& line) {
    std::lock_guard lock(log_mu_);
    *log_ << clock_now() << " dfuse-leased: " << line << std::endl;
  }

 private:
  // A message for one stream, in the order the table decided it. needs > 0:
  // only once the records up to write sequence `needs` are committed.
  struct Outgoing {
    std::shared_ptr<NodeSession> session;
    wire::ServiceMessage m;
    uint64_t needs = 0;
  };

  std::shared_ptr<NodeSession> open(grpc::ServerContext* ctx, const wire::Register& reg, std::string* leader,
                                    bool* standby);
  bool handle(const std::shared_ptr<NodeSession>& s, const wire::NodeMessage& m);
  void route();
  void deliver();
  void notify_all_locked(const std::string& text);

  const bool verbose_;
  std::ostream* const log_;
  const std::function<void(TimePoint)> wake_timer_;
  std::mutex log_mu_;
  std::mutex mu_;                                            // guards everything below
  std::unique_ptr<LeaseTable> table_;                        // while leading
  std::map<NodeId, std::shared_ptr<NodeSession>> sessions_;  // the current stream of each node
  bool shutting_down_ = false;
  std::string leader_;                     // who leads (for redirects), "" unknown
  bool gated_ = false;                     // grants wait for commits (replicated)
  std::function<bool()> lead_alive_;       // replicated: this lead's etcd lease lives
  uint64_t term_ = 0;                      // bumped on every lead and step-down
  std::map<FileId, FileHolders> pending_;  // records to write, newest state of each file
  uint64_t write_seq_ = 0;                 // bumped whenever pending_ takes a change
  uint64_t committed_seq_ = 0;             // records up to here are in etcd
  std::deque<Outgoing> outq_;              // waiting for a commit, in order
  bool etcd_down_ = false;                 // the last commit found etcd unreachable
  std::condition_variable commit_cv_;      // pending_ not empty, or stopping
};

namespace {

LeaseMode from_wire(wire::Mode m) {
  return static_cast<LeaseMode>(m);
}

wire::Mode to_wire(LeaseMode m) {
  return static_cast<wire::Mode>(m);
}

}  // namespace

std::shared_ptr<NodeSession> LeaseServer::Impl::open(grpc::ServerContext* ctx, const wire::Register& reg,
                                                     std::string* leader, bool* standby) {
  auto s = std::make_shared<NodeSession>();
  s->node = reg.node_id();
  s->ctx = ctx;
  std::vector<Lease> held;
  for (const auto& l : reg.held()) held.push_back(Lease{l.file(), from_wire(l.mode()), l.generation()});

  std::lock_guard lock(mu_);
  if (shutting_down_) return nullptr;
  if (table_ && lead_alive_ && !lead_alive_())
    step_down_locked("this service's etcd lease lapsed (etcd did not renew it in time)");
  if (!table_) {
    *leader = leader_;
    *standby = true;
    return nullptr;
  }
  // Expire first: an expiry of this very node must close its old stream,
  // not the one it registers on now.
  const auto now = Clock::now();
  table_->tick(now);
  route();
  if (auto it = sessions_.find(s->node); it != sessions_.end()) {
    it->second->out.close(false);
    it->second->ctx->TryCancel();
    log("node " + s->node + " registered again; its earlier stream is closed");
  }
  sessions_[s->node] = s;
  const auto results = table_->register_node(s->node, held, now);

  wire::ServiceMessage m;
  auto* r = m.mutable_registered();
  r->set_epoch(table_->epoch());
  r->set_ttl_ms(static_cast<uint64_t>(table_->ttl().count()));
  if (table_->in_grace()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(table_->grace_end() - Clock::now());
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
  std::string leader;
  bool standby = false;
  auto s = open(ctx, first.register_node(), &leader, &standby);
  if (standby) {
    wire::ServiceMessage m;
    m.mutable_redirect()->set_leader(leader);
    m.mutable_redirect()->set_reason(leader.empty() ? "this dfuse-leased stands by and no service leads yet"
                                                    : "this dfuse-leased stands by; " + leader + " leads");
    stream->Write(m);
    return grpc::Status::OK;
  }
  if (!s) return {grpc::StatusCode::UNAVAILABLE, "dfuse-leased is shutting down"};

  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    wire::NodeMessage m;
    while (stream->Read(&m))
      if (!handle(s, m)) break;
    {
      std::lock_guard lock(mu_);
      if (auto it = sessions_.find(s->node); table_ && it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
        table_->disconnect(s->node, Clock::now());
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
  if (!table_ || it == sessions_.end() || it->second != s) return false;  // replaced, expired, stepped down
  if (lead_alive_ && !lead_alive_()) {
    step_down_locked("this service's etcd lease lapsed (etcd did not renew it in time)");
    return false;
  }
  const auto now = Clock::now();
  table_->tick(now);
  route();
  if (!table_->registered(s->node)) return false;
  const NodeId& node = s->node;
  switch (m.body_case()) {
    case wire::NodeMessage::kAcquire: {
      const auto& a = m.acquire();
      if (verbose_)
        log("acquire node=" + node + " file=" + a.file() + " mode=" + mode_name(from_wire(a.mode())) +
            " request=" + std::to_string(a.request_id()));
      table_->acquire(node, a.request_id(), a.file(), from_wire(a.mode()), now);
      break;
    }
    case wire::NodeMessage::kAck: {
      const auto& a = m.ack();
      if (verbose_)
        log("ack node=" + node + " file=" + a.file() + " generation=" + hex(a.generation()) +
            " now=" + mode_name(from_wire(a.mode())));
      table_->ack(node, a.file(), a.generation(), from_wire(a.mode()), now);
      break;
    }
    case wire::NodeMessage::kRelease:
      for (const auto& l : m.release().leases()) {
        if (verbose_) log("release node=" + node + " file=" + l.file() + " generation=" + hex(l.generation()));
        table_->release(node, l.file(), l.generation(), now);
      }
      break;
    case wire::NodeMessage::kHeartbeat: {
      table_->heartbeat(node, now);
      wire::ServiceMessage reply;
      reply.mutable_heartbeat_ack()->set_seq(m.heartbeat().seq());
      s->out.push(std::move(reply));
      break;
    }
    case wire::NodeMessage::kRegisterNode:
      log("node " + node + " sent register_node twice on one stream; closing it");
      return false;
    default:
      table_->heartbeat(node, now);  // a newer node's message we do not know
      break;
  }
  route();
  return true;
}

// Turns the table's actions into messages for the nodes' streams, in order;
// when replicated, a grant (and everything after it) waits for the commit
// of the records that hold it. Under mu_.
void LeaseServer::Impl::route() {
  if (gated_) {
    const auto dirty = table_->take_dirty();
    for (const auto& file : dirty) {
      FileHolders holders;
      for (const auto& [node, l] : table_->holders(file)) holders[node] = l;
      pending_[file] = std::move(holders);
    }
    if (!dirty.empty()) {
      ++write_seq_;
      commit_cv_.notify_all();
    }
  } else {
    table_->take_dirty();  // nothing to write
  }
  for (auto& a : table_->take_actions()) {
    auto it = sessions_.find(a.node);
    std::shared_ptr<NodeSession> s = it == sessions_.end() ? nullptr : it->second;
    Outgoing out{s, {}, 0};
    wire::ServiceMessage& m = out.m;
    switch (a.kind) {
      case Action::Kind::kGrant: {
        if (verbose_)
          log("grant node=" + a.node + " file=" + a.file + " mode=" + mode_name(a.mode) +
              " generation=" + hex(a.generation) + (gated_ ? " (goes out once in etcd)" : ""));
        auto* g = m.mutable_granted();
        g->set_request_id(a.request_id);
        g->mutable_lease()->set_file(a.file);
        g->mutable_lease()->set_mode(to_wire(a.mode));
        g->mutable_lease()->set_generation(a.generation);
        if (gated_) out.needs = write_seq_;
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
        log("node " + a.node + " expired (no message for " + std::to_string(table_->ttl().count()) +
            " ms); its leases are gone");
        if (s) {
          s->out.close(false);
          s->ctx->TryCancel();
          sessions_.erase(it);
        }
        continue;
    }
    if (s) outq_.push_back(std::move(out));
  }
  deliver();
  // A revoke kept back by a minimum hold is due sooner than the timer's
  // usual 100 ms round.
  if (const TimePoint t = table_->next_hold_end(); t != TimePoint::max()) wake_timer_(t);
}

// Hands queued messages to their streams up to the first one that waits for
// a commit. Under mu_.
void LeaseServer::Impl::deliver() {
  while (!outq_.empty() && outq_.front().needs <= committed_seq_) {
    outq_.front().session->out.push(std::move(outq_.front().m));
    outq_.pop_front();
  }
}

void LeaseServer::Impl::notify_all_locked(const std::string& text) {
  log(text);
  for (auto& [node, s] : sessions_) {
    wire::ServiceMessage m;
    m.mutable_notice()->set_text(text);
    s->out.push(std::move(m));
  }
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

TableOptions LeaseServer::table_options() const {
  TableOptions table;
  table.ttl = options_.ttl;
  table.grace = options_.grace;
  table.min_hold = options_.min_hold;
  table.restarted = restarted_;
  return table;
}

std::string LeaseServer::start() {
  if (options_.ttl.count() <= 0) throw std::runtime_error("the TTL must be positive");
  impl_ = std::make_unique<Impl>(options_, [this](TimePoint t) { wake_timer(t); });
  if (options_.etcd.empty()) {
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
    impl_->lead(table_options(), new_epoch, {}, false);
  }

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second service would share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(impl_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    impl_.reset();
    throw std::runtime_error("cannot listen on " + options_.listen +
                             ": the address is in use (another dfuse-leased?) or not local; stop the other service "
                             "or pick another --listen");
  }
  const auto colon = options_.listen.rfind(':');
  const std::string bound = options_.listen.substr(0, colon) + ":" + std::to_string(port);
  if (!options_.etcd.empty()) {
    advertise_ = options_.advertise.empty() ? bound : options_.advertise;
    const std::string host = advertise_.substr(0, advertise_.rfind(':'));
    std::string why;
    if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::")
      why = "--listen " + options_.listen + " names no address the nodes can use; give --advertise HOST:PORT";
    if (why.empty()) {
      StoreOptions so;
      so.endpoint = options_.etcd;
      so.prefix = options_.etcd_prefix;
      so.name = advertise_;
      so.ttl = options_.etcd_ttl;
      store_ = std::make_unique<EtcdStore>(so);
      why = store_->check();
    }
    if (!why.empty()) {
      impl_->shutdown();
      server_->Shutdown(std::chrono::system_clock::now());
      server_.reset();
      store_.reset();
      impl_.reset();
      throw std::runtime_error(why);
    }
  }
  {
    std::lock_guard lock(timer_mu_);
    stopping_ = false;
  }
  timer_ = std::thread([this] { timer_loop(); });
  if (store_) {
    role_ = std::thread([this] { role_loop(); });
    commit_ = std::thread([this] { commit_loop(); });
  }
  return bound;
}

bool LeaseServer::leading() const {
  return impl_ && impl_->leading();
}

std::string LeaseServer::leader() const {
  if (!impl_) return "";
  if (impl_->leading()) return advertise_;
  return impl_->leader();
}

bool LeaseServer::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(timer_mu_);
  return !timer_cv_.wait_for(lock, d, [&] { return stopping_; });
}

void LeaseServer::role_loop() {
  const std::string etcd = store_->endpoint();
  std::string said;               // the last problem logged (said once)
  std::string last_leader = "?";  // the last leader logged while standing by
  auto say_once = [&](const std::string& line) {
    if (line != said) impl_->log(line);
    said = line;
  };
  for (bool first = true; first || sleep_for(options_.campaign_every); first = false) {
    bool leading = false;
    std::string leader;
    if (impl_->leading()) {
      if (!store_->alive()) {
        impl_->step_down("this service's etcd lease lapsed (etcd at " + etcd + " did not renew it within its TTL of " +
                         std::to_string(options_.etcd_ttl.count()) + " s)");
        last_leader = "?";
        continue;
      }
      if (auto e = store_->campaign(&leading, &leader); !e.empty()) {
        say_once("leading, but " + e + "; the lead ends when this service's etcd lease lapses");
        continue;
      }
      said.clear();
      if (!leading) {
        impl_->step_down("etcd at " + etcd + " names " + (leader.empty() ? std::string("no service") : leader) +
                         " as the leader");
        last_leader = "?";
      }
      continue;
    }
    if (auto e = store_->campaign(&leading, &leader); !e.empty()) {
      say_once("standing by: " + e);
      continue;
    }
    said.clear();
    impl_->set_leader(leader);
    if (!leading) {
      if (leader != last_leader)
        impl_->log("standing by; " + (leader.empty() ? std::string("no service leads") : leader + " leads") +
                   " (etcd at " + etcd + ")");
      last_leader = leader;
      continue;
    }
    const auto t0 = Clock::now();
    uint32_t epoch = 0;
    std::vector<std::pair<NodeId, Lease>> leases;
    if (auto e = store_->take_over(&epoch, &leases); !e.empty()) {
      impl_->log("won the election but cannot take over: " + e);
      store_->resign();
      continue;
    }
    auto new_epoch = [this, epoch, first_call = true]() mutable -> uint32_t {
      if (first_call) {
        first_call = false;
        return epoch;
      }
      uint32_t next = 0;
      if (auto e = store_->next_epoch(&next); !e.empty()) throw std::runtime_error(e);
      return next;
    };
    impl_->lead(table_options(), new_epoch, leases, true, [this] { return store_->alive(); });
    std::set<NodeId> nodes;
    for (const auto& [node, l] : leases) nodes.insert(node);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    impl_->log("leading on " + advertise_ + ": epoch " + std::to_string(epoch) + ", " + std::to_string(leases.size()) +
               " leases of " + std::to_string(nodes.size()) + " nodes restored from etcd at " + etcd + " in " +
               std::to_string(ms) + " ms");
    last_leader = advertise_;
  }
}

void LeaseServer::commit_loop() {
  std::map<FileId, FileHolders> writes;
  uint64_t seq = 0;
  uint64_t term = 0;
  while (impl_->take_writes(&writes, &seq, &term)) {
    std::string why;
    switch (store_->commit(writes, &why)) {
      case EtcdStore::Commit::kDone:
        impl_->committed(seq, term);
        break;
      case EtcdStore::Commit::kUnreachable:
        impl_->commit_failed(std::move(writes), term, why);
        sleep_for(std::chrono::milliseconds(200));
        break;
      case EtcdStore::Commit::kDeposed:
        impl_->step_down(why, term);
        break;
    }
    writes.clear();
  }
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
  if (role_.joinable()) role_.join();
  if (commit_.joinable()) commit_.join();
  if (store_) store_->resign();  // a standby takes over now, not after the lease TTL
  server_.reset();
}

}  // namespace dfuse::leased
