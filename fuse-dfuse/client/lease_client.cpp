// SPDX-License-Identifier: GPL-2.0-only
// dfuse::LeaseClient over gRPC: one bidirectional stream to dfuse-leased per
// session (proto/lease.proto).
//
// Threads:
//   session    connects, registers (listing held leases: the reclaim), then
//              reads the stream until it breaks; reconnects with backoff
//              (50 ms doubling up to the heartbeat interval). With several
//              addresses it tries the one that served last, then the
//              others in turn, and follows a standby's Redirect to the
//              leader; it backs off after trying as many as there are.
//   heartbeat  sends a heartbeat every options.heartbeat; cancels a stream
//              whose heartbeats go unanswered; drops every lease locally
//              (revoke handler, kLeaseNone) when no heartbeat was answered
//              for 3/4 of the service's TTL, before the service gives the
//              leases to someone else.
//   4 workers  run the revoke handler; revokes of one file in order, of
//              different files concurrently.
// mu_ guards all state; a Stream's writes are serialized by its write_mu.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "dfuse/lease_client.h"
#include "lease.grpc.pb.h"

namespace dfuse {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using RW = grpc::ClientReaderWriter<wire::NodeMessage, wire::ServiceMessage>;

constexpr milliseconds kInitialBackoff{50};
constexpr int kWorkers = 4;

struct Stream {
  std::string address;
  // A channel of its own: gRPC 1.51's pick_first leaves a channel whose
  // connection failed idle and fails every fail-fast call on it.
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<wire::LeaseService::Stub> stub;
  grpc::ClientContext ctx;  // outlives rw
  std::unique_ptr<RW> rw;
  std::mutex write_mu;
  bool closed = false;  // guarded by write_mu: no more writes

  bool write(const wire::NodeMessage& m) {
    std::lock_guard lock(write_mu);
    return !closed && rw->Write(m);
  }
  void writes_done() {
    std::lock_guard lock(write_mu);
    if (!closed) rw->WritesDone();
    closed = true;
  }
  // After Read() returned false.
  grpc::Status finish() {
    std::lock_guard lock(write_mu);
    closed = true;
    return rw->Finish();
  }
};

std::string describe(const grpc::Status& st) {
  if (st.ok()) return "stream closed by the service";
  return st.error_message().empty() ? "gRPC status " + std::to_string(st.error_code()) : st.error_message();
}

std::string ms_text(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

std::vector<std::string> split_addresses(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    std::string a = list.substr(start, comma - start);
    while (!a.empty() && a.front() == ' ') a.erase(a.begin());
    while (!a.empty() && a.back() == ' ') a.pop_back();
    if (!a.empty()) out.push_back(std::move(a));
    start = comma + 1;
  }
  return out;
}

const char* mode_text(LeaseMode m) {
  return m == abi::kLeaseWrite ? "write" : m == abi::kLeaseRead ? "read" : "none";
}

class GrpcLeaseClient final : public LeaseClient {
 public:
  GrpcLeaseClient(LeaseClientOptions options, RevokeHandler on_revoke);
  ~GrpcLeaseClient() override;
  GrpcLeaseClient(const GrpcLeaseClient&) = delete;
  GrpcLeaseClient& operator=(const GrpcLeaseClient&) = delete;

  void start();
  void wait_registered();

  Grant acquire(const FileId& file, LeaseMode mode) override;
  void ack(const Revoke& revoke) override;
  void release(const FileId& file) override;
  void release_all() override;
  [[nodiscard]] std::vector<std::pair<FileId, Grant>> held() const override;

 private:
  struct Pending {
    bool done = false;
    Grant grant;
    std::optional<std::string> refused;
  };
  struct QueuedRevoke {
    Revoke revoke;
    bool local = false;  // decided here (refused reclaim, lost heartbeats): always run the handler
  };

  std::shared_ptr<Stream> new_stream(const std::string& address);
  void session_loop();
  bool register_on(const std::shared_ptr<Stream>& s, std::string* redirect);
  void say(const std::string& line) const {
    if (options_.log) options_.log(line);
  }
  void read_loop(const std::shared_ptr<Stream>& s);
  void dispatch(const wire::ServiceMessage& m);
  void heartbeat_loop();
  void beat(std::unique_lock<std::mutex>& lock, Clock::time_point now);  // one heartbeat, watchdogs
  void worker_loop();
  void enqueue_revoke_locked(const Revoke& r, bool local);
  wire::NodeMessage drop_all_locally_locked();  // returns the matching Release
  std::string unreachable_message_locked(milliseconds waited) const;
  void send(const std::shared_ptr<Stream>& s, const wire::NodeMessage& m) {
    if (s) s->write(m);
  }

  const LeaseClientOptions options_;
  const std::vector<std::string> addresses_;  // options_.address, split at commas
  const RevokeHandler handler_;
  const milliseconds max_backoff_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // connection state, answers to requests
  std::condition_variable stop_cv_;  // sleeps of the session and heartbeat threads
  std::condition_variable work_cv_;  // revokes for the workers
  bool stopping_ = false;
  bool session_over_ = false;            // the session thread returned
  std::string fatal_;                    // the service refused our registration
  std::shared_ptr<Stream> registering_;  // stream being registered
  Clock::time_point registering_since_;
  std::shared_ptr<Stream> stream_;  // the registered stream, when connected_
  bool connected_ = false;
  uint64_t session_ = 0;                 // bumped on every registration
  Clock::time_point unreachable_since_;  // valid while !connected_
  std::string last_error_ = "not connected yet";
  uint32_t epoch_ = 0;
  std::string served_by_;  // address of the service of the latest registration
  milliseconds ttl_{0};
  Clock::time_point confirmed_at_;  // send time of the newest answered heartbeat
  uint64_t heartbeat_seq_ = 0;
  std::map<uint64_t, Clock::time_point> heartbeats_sent_;
  std::map<FileId, Grant> held_;
  uint64_t next_request_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::map<FileId, std::deque<QueuedRevoke>> revokes_;
  std::deque<FileId> ready_;  // files with revokes and no worker on them
  std::set<FileId> busy_;     // files in ready_ or on a worker

  std::thread session_thread_;
  std::thread heartbeat_thread_;
  std::vector<std::thread> workers_;
};

GrpcLeaseClient::GrpcLeaseClient(LeaseClientOptions options, RevokeHandler on_revoke)
    : options_(std::move(options)),
      addresses_(split_addresses(options_.address)),
      handler_(std::move(on_revoke)),
      max_backoff_(std::clamp(options_.heartbeat, milliseconds(50), milliseconds(1000))) {
  unreachable_since_ = Clock::now();
}

std::shared_ptr<Stream> GrpcLeaseClient::new_stream(const std::string& address) {
  grpc::ChannelArguments args;
  // A fresh channel per attempt, reconnect backoff is ours (bounded by the
  // heartbeat interval), and two clients in one process are two nodes: no
  // connection state shared between them.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto s = std::make_shared<Stream>();
  s->address = address;
  s->channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  // Starting the call waits for the connection, up to gRPC's 20 s connect
  // timeout when the peer accepts TCP but does not answer (a service that
  // hangs, a machine gone): bound that, so that the next address is tried
  // while the leases still stand. A refused connection fails at once.
  const milliseconds limit = std::clamp(2 * options_.heartbeat, milliseconds(500), milliseconds(2000));
  const auto deadline = std::chrono::system_clock::now() + limit;
  for (;;) {
    const grpc_connectivity_state st = s->channel->GetState(true);
    if (st == GRPC_CHANNEL_READY) break;
    if (st == GRPC_CHANNEL_TRANSIENT_FAILURE || st == GRPC_CHANNEL_SHUTDOWN ||
        !s->channel->WaitForStateChange(st, deadline)) {
      std::lock_guard lock(mu_);
      last_error_ = address + ": " +
                    (st == GRPC_CHANNEL_TRANSIENT_FAILURE ? std::string("cannot connect")
                                                          : "no connection within " + ms_text(limit));
      return nullptr;
    }
  }
  s->stub = wire::LeaseService::NewStub(s->channel);
  s->rw = s->stub->Session(&s->ctx);
  return s;
}

void GrpcLeaseClient::start() {
  session_thread_ = std::thread([this] { session_loop(); });
  heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
  for (int i = 0; i < kWorkers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

GrpcLeaseClient::~GrpcLeaseClient() {
  std::shared_ptr<Stream> s, r;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    s = stream_;
    r = registering_;
  }
  cv_.notify_all();
  stop_cv_.notify_all();
  work_cv_.notify_all();
  if (r) r->ctx.TryCancel();
  if (s) {
    // Half-close: the service applies everything sent before (a release_all)
    // and closes its side. Leases stay with the service until the TTL.
    s->writes_done();
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, milliseconds(1000), [&] { return session_over_; })) s->ctx.TryCancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  for (auto& w : workers_) w.join();
}

// ---- the session ----

void GrpcLeaseClient::session_loop() {
  milliseconds backoff = kInitialBackoff;
  std::size_t at = 0;        // index in addresses_ to try next
  std::size_t attempts = 0;  // since the last backoff or registration
  std::string redirect;      // leader named by a standby, tried next
  for (;;) {
    const std::string address = redirect.empty() ? addresses_[at % addresses_.size()] : std::exchange(redirect, "");
    auto s = new_stream(address);
    if (s) {
      std::lock_guard lock(mu_);
      registering_ = s;
      registering_since_ = Clock::now();
      if (stopping_) s->ctx.TryCancel();  // the destructor may have looked before we published s
    }
    if (s && register_on(s, &redirect)) {
      backoff = kInitialBackoff;
      attempts = 0;
      if (auto it = std::find(addresses_.begin(), addresses_.end(), address); it != addresses_.end())
        at = static_cast<std::size_t>(it - addresses_.begin());  // after a break: this one first
      read_loop(s);
    } else {
      if (redirect.empty() || redirect == address) {
        redirect.clear();
        ++at;
      }
      if (++attempts >= addresses_.size()) {
        attempts = 0;
        std::unique_lock lock(mu_);
        if (!stopping_ && fatal_.empty()) stop_cv_.wait_for(lock, backoff, [&] { return stopping_; });
        backoff = std::min(backoff * 2, max_backoff_);
      }
    }
    std::lock_guard lock(mu_);
    if (stopping_ || !fatal_.empty()) {
      session_over_ = true;
      cv_.notify_all();
      return;
    }
  }
}

// Registers on a fresh stream. False (the stream finished) if that failed;
// *redirect: the leader a standby named.
bool GrpcLeaseClient::register_on(const std::shared_ptr<Stream>& s, std::string* redirect) {
  wire::NodeMessage m;
  std::vector<std::pair<FileId, Grant>> claimed;
  Clock::time_point sent;
  {
    std::lock_guard lock(mu_);
    auto* reg = m.mutable_register_node();
    reg->set_node_id(options_.node_id);
    for (const auto& [file, g] : held_) {
      auto* l = reg->add_held();
      l->set_file(file);
      l->set_mode(static_cast<wire::Mode>(g.mode));
      l->set_generation(g.generation);
      claimed.emplace_back(file, g);
    }
    sent = Clock::now();
  }
  wire::ServiceMessage reply;
  bool ok = s->write(m) && s->rw->Read(&reply);
  std::string standby;  // a standby's reason
  if (ok && reply.has_redirect()) {
    *redirect = reply.redirect().leader();
    standby = reply.redirect().reason();
    ok = false;
  } else if (ok && !reply.has_registered()) {
    s->ctx.TryCancel();  // not our protocol
    ok = false;
  }
  if (!ok) {
    while (s->rw->Read(&reply)) {  // until the call is over
    }
    const grpc::Status st = s->finish();
    std::lock_guard lock(mu_);
    registering_.reset();
    last_error_ = standby.empty() ? describe(st) : standby;
    if (addresses_.size() > 1) last_error_ = s->address + ": " + last_error_;
    if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) fatal_ = st.error_message();
    cv_.notify_all();
    return false;
  }

  const auto& r = reply.registered();
  std::vector<wire::NodeMessage> catch_up;
  {
    std::lock_guard lock(mu_);
    registering_.reset();
    stream_ = s;
    connected_ = true;
    ++session_;
    int refused = 0;
    for (const auto& c : r.reclaims()) refused += c.accepted() ? 0 : 1;
    if (epoch_ != 0 && (r.epoch() != epoch_ || s->address != served_by_))
      say("lease service: now dfuse-leased at " + s->address + " (epoch " + std::to_string(r.epoch()) + ", was " +
          served_by_ + " epoch " + std::to_string(epoch_) + "); it confirmed " +
          std::to_string(claimed.size() - static_cast<std::size_t>(refused)) + " of the " +
          std::to_string(claimed.size()) + " leases this node holds");
    else if (epoch_ != 0)
      say("lease service: dfuse-leased at " + s->address + " answers again; it confirmed " +
          std::to_string(claimed.size() - static_cast<std::size_t>(refused)) + " of the " +
          std::to_string(claimed.size()) + " leases this node holds");
    served_by_ = s->address;
    epoch_ = r.epoch();
    ttl_ = milliseconds(r.ttl_ms());
    confirmed_at_ = sent;
    heartbeats_sent_.clear();
    for (int i = 0; i < r.reclaims_size() && i < static_cast<int>(claimed.size()); ++i) {
      const auto& [file, g] = claimed[static_cast<std::size_t>(i)];
      auto it = held_.find(file);
      if (it == held_.end() || it->second.generation != g.generation) continue;
      if (!r.reclaims(i).accepted()) {
        // The service does not count this lease as ours: the kernel drops it.
        held_.erase(it);
        enqueue_revoke_locked(Revoke{file, abi::kLeaseNone, g.generation}, true);
      }
    }
    // Releases and acks made while we were registering went nowhere.
    for (const auto& [file, g] : claimed) {
      auto it = held_.find(file);
      wire::NodeMessage out;
      if (it == held_.end()) {
        auto* l = out.mutable_release()->add_leases();
        l->set_file(file);
        l->set_generation(g.generation);
      } else if (it->second.generation == g.generation && it->second.mode < g.mode) {
        auto* a = out.mutable_ack();
        a->set_file(file);
        a->set_generation(g.generation);
        a->set_mode(static_cast<wire::Mode>(it->second.mode));
      } else {
        continue;
      }
      catch_up.push_back(std::move(out));
    }
    cv_.notify_all();
  }
  for (const auto& out : catch_up) send(s, out);
  return true;
}

void GrpcLeaseClient::read_loop(const std::shared_ptr<Stream>& s) {
  wire::ServiceMessage m;
  while (s->rw->Read(&m)) dispatch(m);
  const grpc::Status st = s->finish();
  std::lock_guard lock(mu_);
  connected_ = false;
  stream_.reset();
  unreachable_since_ = Clock::now();
  last_error_ = describe(st);
  if (addresses_.size() > 1) last_error_ = s->address + ": " + last_error_;
  if (!stopping_)
    say("lease service: lost dfuse-leased at " + s->address + " (" + describe(st) + "); this node keeps its " +
        std::to_string(held_.size()) + " leases until a service answers, for at most " +
        ms_text(std::max(milliseconds(0),
                         std::chrono::duration_cast<milliseconds>(confirmed_at_ + ttl_ * 3 / 4 - Clock::now()))) +
        " (3/4 of the TTL after the last answered heartbeat); no new leases meanwhile");
  cv_.notify_all();
}

void GrpcLeaseClient::dispatch(const wire::ServiceMessage& m) {
  std::lock_guard lock(mu_);
  switch (m.body_case()) {
    case wire::ServiceMessage::kGranted: {
      const auto& l = m.granted().lease();
      const Grant g{static_cast<LeaseMode>(l.mode()), l.generation()};
      Grant& h = held_[l.file()];
      if (g.generation > h.generation) h = g;
      if (auto it = pending_.find(m.granted().request_id()); it != pending_.end()) {
        it->second.done = true;
        it->second.grant = g;
      }
      cv_.notify_all();
      break;
    }
    case wire::ServiceMessage::kRefused:
      if (auto it = pending_.find(m.refused().request_id()); it != pending_.end()) {
        it->second.done = true;
        it->second.refused = m.refused().reason();
      }
      cv_.notify_all();
      break;
    case wire::ServiceMessage::kRevoke: {
      const auto& r = m.revoke();
      enqueue_revoke_locked(Revoke{r.file(), static_cast<LeaseMode>(r.new_mode()), r.generation()}, false);
      break;
    }
    case wire::ServiceMessage::kNotice:
      say("lease service: dfuse-leased at " + served_by_ + ": " + m.notice().text());
      break;
    case wire::ServiceMessage::kHeartbeatAck: {
      auto it = heartbeats_sent_.find(m.heartbeat_ack().seq());
      if (it == heartbeats_sent_.end()) break;
      confirmed_at_ = std::max(confirmed_at_, it->second);
      heartbeats_sent_.erase(heartbeats_sent_.begin(), std::next(it));
      break;
    }
    default:
      break;
  }
}

// ---- heartbeats and local expiry ----

void GrpcLeaseClient::heartbeat_loop() {
  std::unique_lock lock(mu_);
  auto next_heartbeat = Clock::now() + options_.heartbeat;
  for (;;) {
    // The service expires us TTL after it last heard from us, which is after
    // confirmed_at_: give the kernel a quarter of the TTL to comply first.
    const bool can_expire = !held_.empty() && ttl_.count() > 0;
    const auto local_expiry = confirmed_at_ + ttl_ * 3 / 4;
    const auto wake = can_expire ? std::min(next_heartbeat, local_expiry) : next_heartbeat;
    if (stop_cv_.wait_until(lock, wake, [&] { return stopping_; })) return;
    const auto now = Clock::now();
    if (now >= next_heartbeat) {
      next_heartbeat = now + options_.heartbeat;
      beat(lock, now);
    }
    if (!held_.empty() && ttl_.count() > 0 && now >= confirmed_at_ + ttl_ * 3 / 4) {
      say("lease service: no heartbeat answered for " +
          ms_text(std::chrono::duration_cast<milliseconds>(now - confirmed_at_)) + " (3/4 of the TTL " + ms_text(ttl_) +
          "): dropping the " + std::to_string(held_.size()) +
          " leases this node holds before the service gives them to others");
      auto s = connected_ ? stream_ : nullptr;
      const wire::NodeMessage release = drop_all_locally_locked();
      lock.unlock();
      send(s, release);  // in case the service still counts them as ours
      lock.lock();
    }
  }
}

void GrpcLeaseClient::beat(std::unique_lock<std::mutex>& lock, Clock::time_point now) {
  if (connected_) {
    const uint64_t seq = ++heartbeat_seq_;
    heartbeats_sent_[seq] = now;
    auto s = stream_;
    lock.unlock();
    wire::NodeMessage m;
    m.mutable_heartbeat()->set_seq(seq);
    s->write(m);
    lock.lock();
    // Heartbeats go unanswered though the connection looks up: start over.
    const auto stall = std::max(3 * options_.heartbeat, ttl_ / 2);
    if (connected_ && stream_ == s && now - confirmed_at_ > stall) s->ctx.TryCancel();
  } else if (registering_ && now - registering_since_ > std::max(milliseconds(1000), 4 * options_.heartbeat)) {
    registering_->ctx.TryCancel();
  }
}

wire::NodeMessage GrpcLeaseClient::drop_all_locally_locked() {
  wire::NodeMessage m;
  for (const auto& [file, g] : held_) {
    enqueue_revoke_locked(Revoke{file, abi::kLeaseNone, g.generation}, true);
    auto* l = m.mutable_release()->add_leases();
    l->set_file(file);
    l->set_generation(g.generation);
  }
  held_.clear();
  return m;
}

// ---- revokes ----

void GrpcLeaseClient::enqueue_revoke_locked(const Revoke& r, bool local) {
  revokes_[r.file].push_back(QueuedRevoke{r, local});
  if (busy_.insert(r.file).second) {
    ready_.push_back(r.file);
    work_cv_.notify_one();
  }
}

void GrpcLeaseClient::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
    if (stopping_) return;
    const FileId file = ready_.front();
    ready_.pop_front();
    auto& queue = revokes_[file];
    const QueuedRevoke item = queue.front();
    queue.pop_front();
    bool run = item.local;
    if (!run) {
      auto it = held_.find(file);
      run = it != held_.end() && it->second.generation == item.revoke.generation &&
            it->second.mode > item.revoke.new_mode;
    }
    lock.unlock();
    if (run) {
      try {
        handler_(item.revoke);
      } catch (...) {
        // The handler's kernel work failed: no ack, the service keeps waiting
        // (or expires this node). Nothing else to do here.
      }
    } else {
      ack(item.revoke);  // already complied, or a newer grant replaced it
    }
    lock.lock();
    auto it = revokes_.find(file);
    if (it->second.empty()) {
      revokes_.erase(it);
      busy_.erase(file);
    } else {
      ready_.push_back(file);
    }
  }
}

// ---- the interface ----

std::string GrpcLeaseClient::unreachable_message_locked(milliseconds waited) const {
  return "dfuse-leased at " + options_.address + " unreachable for " + ms_text(waited) + " (" + last_error_ +
         "); is the service running there?";
}

Grant GrpcLeaseClient::acquire(const FileId& file, LeaseMode mode) {
  if (mode != abi::kLeaseRead && mode != abi::kLeaseWrite)
    throw LeaseError("acquire " + file + ": invalid lease mode " + std::to_string(mode));
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) throw LeaseError("lease client for " + options_.address + " is shutting down");
    if (!fatal_.empty()) throw LeaseError("dfuse-leased at " + options_.address + " refused this node: " + fatal_);
    if (!connected_) {
      const auto deadline = unreachable_since_ + options_.unreachable_timeout;
      cv_.wait_until(lock, deadline, [&] { return connected_ || stopping_ || !fatal_.empty(); });
      if (stopping_ || !fatal_.empty()) continue;
      if (!connected_)
        throw LeaseError(
            unreachable_message_locked(std::chrono::duration_cast<milliseconds>(Clock::now() - unreachable_since_)));
    }
    const uint64_t id = next_request_++;
    const uint64_t session = session_;
    pending_.emplace(id, Pending{});
    auto s = stream_;
    lock.unlock();
    wire::NodeMessage m;
    auto* a = m.mutable_acquire();
    a->set_request_id(id);
    a->set_file(file);
    a->set_mode(static_cast<wire::Mode>(mode));
    s->write(m);
    lock.lock();
    cv_.wait(lock, [&] { return pending_[id].done || session_ != session || !connected_ || stopping_; });
    const Pending p = std::move(pending_[id]);
    pending_.erase(id);
    if (p.done && p.refused)
      throw LeaseError("dfuse-leased at " + options_.address + " refused a " + mode_text(mode) + " lease on " + file +
                       ": " + *p.refused);
    if (p.done) return p.grant;
    // The stream broke before the answer: ask again on the next one.
  }
}

void GrpcLeaseClient::ack(const Revoke& revoke) {
  std::shared_ptr<Stream> s;
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(revoke.file);
    if (it != held_.end() && it->second.generation == revoke.generation && revoke.new_mode < it->second.mode) {
      if (revoke.new_mode == abi::kLeaseNone)
        held_.erase(it);
      else
        it->second.mode = revoke.new_mode;
    }
    if (connected_) s = stream_;
  }
  wire::NodeMessage m;
  auto* a = m.mutable_ack();
  a->set_file(revoke.file);
  a->set_generation(revoke.generation);
  a->set_mode(static_cast<wire::Mode>(revoke.new_mode));
  send(s, m);
}

void GrpcLeaseClient::release(const FileId& file) {
  std::shared_ptr<Stream> s;
  wire::NodeMessage m;
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(file);
    if (it == held_.end()) return;
    auto* l = m.mutable_release()->add_leases();
    l->set_file(file);
    l->set_generation(it->second.generation);
    held_.erase(it);
    if (connected_) s = stream_;
  }
  send(s, m);
}

void GrpcLeaseClient::release_all() {
  std::shared_ptr<Stream> s;
  wire::NodeMessage m;
  {
    std::lock_guard lock(mu_);
    if (held_.empty()) return;
    auto* rel = m.mutable_release();
    for (const auto& [file, g] : held_) {
      auto* l = rel->add_leases();
      l->set_file(file);
      l->set_generation(g.generation);
    }
    held_.clear();
    if (connected_) s = stream_;
  }
  send(s, m);
}

std::vector<std::pair<FileId, Grant>> GrpcLeaseClient::held() const {
  std::lock_guard lock(mu_);
  return {held_.begin(), held_.end()};
}

void GrpcLeaseClient::wait_registered() {
  std::unique_lock lock(mu_);
  const auto deadline = Clock::now() + options_.unreachable_timeout;
  cv_.wait_until(lock, deadline, [&] { return connected_ || !fatal_.empty(); });
  if (!fatal_.empty())
    throw LeaseError("dfuse-leased at " + options_.address + " refused node '" + options_.node_id + "': " + fatal_);
  if (!connected_) throw LeaseError(unreachable_message_locked(options_.unreachable_timeout));
}

}  // namespace

std::unique_ptr<LeaseClient> LeaseClient::connect(const LeaseClientOptions& options, RevokeHandler on_revoke) {
  if (split_addresses(options.address).empty())
    throw LeaseError("lease client: no service address (host:port of dfuse-leased, or several comma-separated)");
  if (options.node_id.empty()) throw LeaseError("lease client for " + options.address + ": empty node_id");
  if (options.heartbeat.count() <= 0)
    throw LeaseError("lease client for " + options.address + ": the heartbeat interval must be positive");
  if (!on_revoke) throw LeaseError("lease client for " + options.address + ": no revoke handler");
  auto client = std::make_unique<GrpcLeaseClient>(options, std::move(on_revoke));
  client->start();
  client->wait_registered();
  return client;
}

}  // namespace dfuse
