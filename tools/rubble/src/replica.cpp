// SPDX-License-Identifier: GPL-2.0
#include "replica.h"

#include <condition_variable>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "downstream.h"
#include "rubble_replica.h"

namespace fastpath::rubble {

// One replication stream from the predecessor.  send() may be called from
// the stream's handler, the successor's reader and the ticker.
class Session {
 public:
  Session(grpc::ServerContext* ctx, Replica::Stream* stream, LocalIdentity local, std::atomic<std::uint64_t>& sent)
      : proto(std::move(local)), ctx_(ctx), stream_(stream), sent_(sent) {}
  ~Session() { stop_worker(); }

  bool read(wire::ChainBatch* batch) { return stream_->Read(batch); }

  bool send(const wire::ChainAck& ack) {
    std::lock_guard lock(write_mu_);
    if (!open_ || !stream_->Write(ack)) return false;
    sent_ += ack.ByteSizeLong();
    return true;
  }

  // Reports why the session ends to the predecessor and aborts the stream
  // (this wakes the handler's read).  The first failure wins.
  void fail(const std::string& why) {
    {
      std::lock_guard lock(fail_mu_);
      if (!failure_.empty()) return;
      failure_ = why;
    }
    wire::ChainAck ack;
    ack.set_error(why);
    send(ack);
    ctx_->TryCancel();
  }

  std::string failure() const {
    std::lock_guard lock(fail_mu_);
    return failure_;
  }

  // No write to the stream after this: the handler is about to return.
  void close() {
    std::lock_guard lock(write_mu_);
    open_ = false;
  }

  // The session's worker runs work() when woken and every 100 ms.
  void start_worker(std::function<void()> work) {
    worker_ = std::thread([this, work = std::move(work)] {
      std::unique_lock lock(work_mu_);
      while (!stop_) {
        work_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_ || woken_; });
        woken_ = false;
        if (stop_) break;
        lock.unlock();
        work();
        lock.lock();
      }
    });
  }

  void wake() {
    {
      std::lock_guard lock(work_mu_);
      woken_ = true;
    }
    work_cv_.notify_one();
  }

  void stop_worker() {
    {
      std::lock_guard lock(work_mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  ReplicaSession proto;
  std::unique_ptr<Downstream> down;
  std::atomic<std::uint64_t> acked{0};  // cumulative ack last sent upstream

 private:
  grpc::ServerContext* ctx_;
  Replica::Stream* stream_;
  std::atomic<std::uint64_t>& sent_;
  std::mutex write_mu_;
  bool open_ = true;  // guarded by write_mu_
  mutable std::mutex fail_mu_;
  std::string failure_;  // guarded by fail_mu_
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  bool stop_ = false;   // guarded by work_mu_
  bool woken_ = false;  // guarded by work_mu_
  std::thread worker_;
};

Replica::Replica(NodeOptions options, std::optional<Identity> identity)
    : options_(std::move(options)), identity_(std::move(identity)), address_(options_.listen) {}

Replica::~Replica() = default;

void Replica::start() {
  if (options_.mode == Mode::kRubble) {
    rubble_ = std::make_unique<RubbleReplica>(options_);
  } else {
    StoreOptions so;
    so.sst_size = options_.sst_size;
    store_ = Store::open_primary((std::filesystem::absolute(options_.db) / "rocksdb").string(), so);
    applied_seq_ = store_->applied_seq();
  }
  if (options_.role == Role::kMiddle) {
    Downstream probe(options_.next, options_.connect_timeout);
    if (auto e = probe.connect(); !e.empty()) throw std::runtime_error(e);
  }
}

std::string Replica::who() const {
  return std::string(to_string(options_.role)) + " at " + address_;
}

LocalIdentity Replica::local_identity() const {
  LocalIdentity l;
  {
    std::lock_guard lock(identity_mu_);
    if (identity_) l.chain_id = identity_->chain_id;
  }
  l.mode = options_.mode;
  l.applied_seq = store_ ? store_->applied_seq() : 0;
  l.slot_size = rubble_ ? rubble_->slot_size() : 0;
  return l;
}

grpc::Status Replica::replicate(grpc::ServerContext* ctx, Stream* stream) {
  std::unique_lock lock(session_mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    const std::string e = who() + " already replicates from a predecessor: only one head may feed a chain";
    wire::ChainAck no;
    no.set_error(e);
    stream->Write(no);
    return {grpc::StatusCode::FAILED_PRECONDITION, e};
  }
  Session s(ctx, stream, local_identity(), ack_bytes_sent_);
  auto st = run_session(s);
  s.close();
  return st;
}

grpc::Status Replica::run_session(Session& s) {
  wire::ChainBatch batch;
  if (!s.read(&batch)) return grpc::Status::OK;
  std::string e = batch.has_hello() && batch.entries().empty()
                      ? begin_session(s, batch.hello())
                      : who() + ": protocol error: a replication stream must start with a Hello and nothing else";
  if (!e.empty()) {
    wire::ChainAck no;
    no.set_error(e);
    s.send(no);
    return {grpc::StatusCode::FAILED_PRECONDITION, e};
  }
  std::string err;
  while (err.empty() && s.read(&batch)) {
    bytes_received_ += batch.ByteSizeLong();
    err = on_batch(s, batch);
  }
  s.stop_worker();
  if (s.down) s.down->close();
  if (err.empty()) err = s.failure();
  if (err.empty()) return grpc::Status::OK;
  s.fail(err);
  return {grpc::StatusCode::ABORTED, err};
}

std::string Replica::begin_session(Session& s, const wire::Hello& hello) {
  const HelloInfo h{hello.chain_id(), hello.mode(), hello.position(), hello.head_seq(), hello.slot_size()};
  if (auto e = s.proto.on_hello(h); !e.empty()) return who() + ": " + e;
  if (rubble_)
    if (auto e = rubble_->reset(hello.chain_id()); !e.empty()) return who() + ": " + e;
  if (s.proto.adopted())
    if (auto e = adopt_chain(hello); !e.empty()) return who() + ": " + e;
  wire::ChainAck reply;
  if (options_.role == Role::kMiddle) {
    if (auto e = connect_successor(s, hello, &reply); !e.empty()) return e;
  } else {
    reply.set_tail_position(s.proto.position());
  }
  wire::ChainAck up;
  up.set_hello_ok(true);
  up.set_tail_position(reply.tail_position());
  up.add_pool_ids(rubble_ ? rubble_->pool_id() : "");
  for (const auto& id : reply.pool_ids()) up.add_pool_ids(id);
  position_ = s.proto.position();
  applied_seq_ = s.proto.next_seq() - 1;
  acked_seq_ = applied_seq_.load();
  s.acked = applied_seq_.load();
  if (!s.send(up)) return who() + ": the predecessor went away during the Hello";
  if (rubble_) s.start_worker([this, &s] { tick(s); });
  return "";
}

std::string Replica::adopt_chain(const wire::Hello& hello) {
  Identity id{hello.chain_id(), options_.mode};
  try {
    write_identity(options_.db, id);
  } catch (const std::exception& e) {
    return e.what();
  }
  std::lock_guard lock(identity_mu_);
  identity_ = id;
  return "";
}

std::string Replica::connect_successor(Session& s, const wire::Hello& hello, wire::ChainAck* reply) {
  s.down = std::make_unique<Downstream>(options_.next, options_.connect_timeout);
  if (auto e = s.down->connect(); !e.empty()) return who() + ": " + e;
  wire::Hello fwd = hello;
  fwd.set_position(hello.position() + 1);
  return s.down->open(
      fwd, reply, [this, &s](const wire::ChainAck& a) { forward_ack(s, a); },
      [this, &s](const std::string& why) { s.fail(who() + ": lost its successor: " + why); });
}

void Replica::forward_ack(Session& s, const wire::ChainAck& ack) {
  wire::ChainAck up = ack;
  add_releases(up, s.proto.position());
  s.acked = ack.acked_seq();
  acked_seq_ = ack.acked_seq();
  s.send(up);
}

void Replica::add_releases(wire::ChainAck& ack, std::uint32_t position) {
  if (!rubble_) return;
  auto slots = rubble_->take_released();
  if (slots.empty()) return;
  auto* r = ack.add_releases();
  r->set_position(position);
  for (auto slot : slots) r->add_slots(slot);
}

// Rubble mode, on the session's worker thread (woken when a catch-up is due,
// and every 100 ms): catch up, and return the slots that freed up.
void Replica::tick(Session& s) {
  if (auto e = rubble_->tick(); !e.empty()) {
    s.fail(who() + ": " + e);
    return;
  }
  wire::ChainAck msg;
  add_releases(msg, s.proto.position());
  if (msg.releases_size() == 0) return;
  msg.set_acked_seq(s.acked.load());
  s.send(msg);
}

std::string Replica::on_batch(Session& s, const wire::ChainBatch& batch) {
  if (batch.has_hello()) return who() + ": protocol error: a second Hello on one replication stream";
  if (batch.entries().empty()) return "";
  for (const auto& e : batch.entries())
    if (auto err = s.proto.on_entry(e.seq()); !err.empty()) return who() + ": " + err;
  const bool tail = options_.role == Role::kTail;
  std::string err = rubble_ ? rubble_->apply(batch) : apply_kv(batch);
  if (!err.empty()) return who() + ": " + err;
  const std::uint64_t last = batch.entries().rbegin()->seq();
  applied_seq_ = last;
  if (!tail) {
    if (rubble_ && rubble_->catch_up_due()) s.wake();
    if (!s.down->write(batch)) return who() + ": lost the replication stream to its successor at " + options_.next;
    bytes_sent_ = s.down->bytes_sent();
    return "";
  }
  // A rubble tail reads the writes its secondary has not installed yet from
  // its overlay: it acknowledges right away too.
  acknowledge(s, last);
  if (rubble_ && rubble_->catch_up_due()) s.wake();
  return "";
}

std::string Replica::apply_kv(const wire::ChainBatch& batch) {
  for (const auto& e : batch.entries()) {
    if (!e.has_kv()) return "protocol error: entry " + std::to_string(e.seq()) + " is not a key-value write";
    const auto& kv = e.kv();
    const std::size_t value = kv.type() == wire::KvOp::PUT ? kv.value().size() : 0;
    if (auto err = check_key_value(kv.key(), value); !err.empty())
      return "malformed entry " + std::to_string(e.seq()) + ": " + err;
  }
  const auto st = store_->apply(batch);
  if (!st.ok()) return "RocksDB failed to apply entries: " + st.ToString();
  return "";
}

void Replica::acknowledge(Session& s, std::uint64_t seq) {
  wire::ChainAck ack;
  ack.set_acked_seq(seq);
  add_releases(ack, s.proto.position());
  s.acked = seq;
  acked_seq_ = seq;
  s.send(ack);
}

grpc::Status Replica::get(const std::string& key, wire::GetReply* reply) {
  if (auto e = check_client_op(options_.role, ClientOp::kGet); !e.empty())
    return {grpc::StatusCode::FAILED_PRECONDITION, e};
  if (auto e = check_key_value(key, 0); !e.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, e};
  if (rubble_) return rubble_->get(key, reply);
  std::string value;
  const auto st = store_->get(key, &value);
  if (st.IsNotFound()) return grpc::Status::OK;
  if (!st.ok()) return {grpc::StatusCode::INTERNAL, "RocksDB: " + st.ToString()};
  reply->set_found(true);
  reply->set_value(std::move(value));
  return grpc::Status::OK;
}

grpc::Status Replica::scan(const std::string& start, std::size_t limit, wire::ScanReply* reply) {
  if (auto e = check_client_op(options_.role, ClientOp::kGet); !e.empty())
    return {grpc::StatusCode::FAILED_PRECONDITION, e};
  if (rubble_) return rubble_->scan(start, limit, reply);
  std::vector<std::pair<std::string, std::string>> items;
  const auto st = store_->scan(start, limit, &items);
  if (!st.ok()) return {grpc::StatusCode::INTERNAL, "RocksDB: " + st.ToString()};
  for (auto& [k, v] : items) {
    auto* item = reply->add_items();
    item->set_key(std::move(k));
    item->set_value(std::move(v));
  }
  return grpc::Status::OK;
}

void Replica::fill_stats(wire::StatsReply* r) {
  {
    std::lock_guard lock(identity_mu_);
    if (identity_) r->set_chain_id(identity_->chain_id);
  }
  r->set_position(position_.load());
  r->set_applied_seq(applied_seq_.load());
  r->set_acked_seq(acked_seq_.load());
  r->set_bytes_received(bytes_received_.load());
  r->set_bytes_sent(bytes_sent_.load());
  r->set_ack_bytes_sent(ack_bytes_sent_.load());
  if (rubble_) {
    rubble_->fill_stats(r);
    return;
  }
  const auto st = store_->stats();
  r->set_flushes(st.flushes);
  r->set_compactions(st.compactions);
  r->set_flush_bytes(st.flush_bytes);
  r->set_compact_bytes(st.compact_bytes);
  r->set_wal_bytes(st.wal_bytes);
  r->set_live_sst_files(st.live_sst_files);
  r->set_live_sst_bytes(st.live_sst_bytes);
}

}  // namespace fastpath::rubble
