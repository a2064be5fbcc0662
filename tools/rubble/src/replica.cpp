// SPDX-License-Identifier: GPL-2.0
#include "replica.h"

#include <filesystem>
#include <stdexcept>

#include "downstream.h"
#include "procstat.h"
#include "rubble_replica.h"
#include "view.h"

namespace fastpath::rubble {

namespace {

constexpr std::size_t kSnapshotChunk = 1 << 20;

}  // namespace

// One replication stream from the predecessor.  send() may be called from
// the stream's handler, the Forwarder's threads and the ticker.
class Session {
 public:
  Session(LinkSocket& link, LocalIdentity local, std::atomic<std::uint64_t>& sent)
      : proto(std::move(local)), link_(link), sent_(sent) {}

  bool read(wire::ChainBatch* batch) { return link_.read(batch); }
  std::size_t last_read() const { return link_.last_read_bytes(); }

  bool send(const wire::ChainAck& ack) {
    std::lock_guard lock(write_mu_);
    if (!open_ || !link_.write(ack)) return false;
    sent_ += ack.GetCachedSize();
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
    link_.shutdown();
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

  ReplicaSession proto;

 private:
  LinkSocket& link_;
  std::atomic<std::uint64_t>& sent_;
  std::mutex write_mu_;
  bool open_ = true;  // guarded by write_mu_
  mutable std::mutex fail_mu_;
  std::string failure_;  // guarded by fail_mu_
};

Replica::Replica(NodeOptions options, std::optional<Identity> identity, Forwarder& forwarder, Hooks hooks)
    : options_(std::move(options)),
      forwarder_(forwarder),
      hooks_(std::move(hooks)),
      identity_(std::move(identity)),
      address_(options_.listen) {}

Replica::~Replica() {
  {
    std::lock_guard lock(tick_mu_);
    tick_stop_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void Replica::start() {
  if (options_.mode == Mode::kRubble) {
    rubble_ = std::make_unique<RubbleReplica>(options_);
  } else {
    StoreOptions so;
    so.sst_size = options_.sst_size;
    store_ = Store::open_primary((std::filesystem::absolute(options_.db) / "rocksdb").string(), so);
    applied_seq_ = store_->applied_seq();
  }
  forwarder_.reset(applied_seq_.load());
  if (options_.role == Role::kMiddle) {
    Downstream probe(options_.next, options_.connect_timeout);
    if (auto e = probe.connect(); !e.empty()) throw std::runtime_error(e);
  }
  serving_ = options_.role == Role::kTail;
  if (rubble_) ticker_ = std::thread([this] { tick_loop(); });
}

std::string Replica::who() const {
  const auto p = plan_for(hooks_.view(), address_);
  const char* role = p.removed ? to_string(options_.role) : p.joining ? "joining node" : p.tail ? "tail" : "middle";
  return std::string(role) + " at " + address_;
}

LocalIdentity Replica::local_identity() const {
  LocalIdentity l;
  {
    std::lock_guard lock(identity_mu_);
    if (identity_) l.chain_id = identity_->chain_id;
  }
  l.mode = options_.mode;
  l.applied_seq = applied_seq_.load();
  l.slot_size = rubble_ ? rubble_->slot_size() : 0;
  l.epoch = hooks_.view().epoch();
  return l;
}

wire::Member Replica::self_member() const {
  wire::Member m;
  m.set_addr(address_);
  if (rubble_) {
    m.set_pool(std::filesystem::absolute(rubble_->pool_path()).string());
    m.set_pool_id(rubble_->pool_id());
  }
  return m;
}

void Replica::replicate(LinkSocket& link) {
  const auto refuse = [&](const std::string& e) {
    wire::ChainAck no;
    no.set_error(e);
    link.write(no);
  };
  wire::ChainBatch first;
  if (!link.read(&first)) return;
  if (!first.has_hello() || first.entries_size() > 0)
    return refuse(who() + ": protocol error: a replication stream must start with a Hello and nothing else");
  const auto& hello = first.hello();
  const std::uint64_t epoch = hello.view().epoch();
  {
    std::lock_guard lock(current_mu_);
    if (closed_) return refuse(who() + " no longer accepts a predecessor (it left the chain or is the head now)");
    if (current_) {
      const bool same = !hello.sender().empty() && hello.sender() == current_sender_;
      if (epoch <= current_epoch_ && !same)
        return refuse(who() + " already replicates from a predecessor (" + current_sender_ +
                      "): only one head may feed a chain");
      current_->fail(who() + ": replaced by a stream from " + hello.sender() + " (view epoch " + std::to_string(epoch) +
                     ")");
    }
  }
  std::unique_lock session(session_mu_, std::defer_lock);
  if (!session.try_lock_for(std::chrono::seconds(5)))
    return refuse(who() + ": the previous replication stream did not end in time");
  Session s(link, local_identity(), ack_bytes_sent_);
  std::string e = begin_session(s, hello);
  if (!e.empty()) return refuse(e);
  {
    std::lock_guard lock(current_mu_);
    if (closed_) return refuse(who() + " no longer accepts a predecessor");
    current_ = &s;
    current_epoch_ = epoch;
    current_sender_ = hello.sender();
  }
  const auto err = run_session(s);
  {
    std::lock_guard lock(current_mu_);
    if (current_ == &s) current_ = nullptr;
  }
  s.close();
  (void)err;  // the predecessor has it (the error acknowledgement)
}

std::string Replica::run_session(Session& s) {
  std::string err;
  for (;;) {
    auto batch = std::make_shared<wire::ChainBatch>();
    if (!err.empty() || !s.read(batch.get())) break;
    bytes_received_ += s.last_read();
    err = on_batch(s, batch);
  }
  if (err.empty()) err = s.failure();
  if (err.empty()) return "";
  s.fail(err);
  return err;
}

std::string Replica::begin_session(Session& s, const wire::Hello& hello) {
  const HelloInfo h{hello.chain_id(),  hello.mode(),         hello.position(), hello.head_seq(),
                    hello.slot_size(), hello.view().epoch(), hello.reset(),    hello.join()};
  if (auto e = s.proto.on_hello(h); !e.empty()) return who() + ": " + e;
  if (hello.join()) {
    if (rubble_) {
      if (auto e = rubble_->begin_join(hello.chain_id()); !e.empty()) return who() + ": " + e;
      applied_seq_ = hello.head_seq();
    } else {
      synced_ = false;
    }
    forwarder_.reset(applied_seq_.load());
    serving_ = false;
    awaiting_handover_ = true;
  } else if (awaiting_handover_) {
    const auto p = plan_for(hello.view(), address_);
    if (p.tail && !p.joining) serve_after_ = std::max<std::uint64_t>(hello.head_seq(), 1);
  }
  if (hello.reset() && rubble_) {
    if (auto e = rubble_->reset(hello.chain_id()); !e.empty()) return who() + ": " + e;
    applied_seq_ = 0;
    forwarder_.reset(0);  // joins the old link's reader: no acknowledgement of the old numbering after this
    acked_seq_ = 0;       // numbers start again: an old acknowledgement says nothing about the new entries
  }
  if (s.proto.adopted())
    if (auto e = adopt_chain(hello); !e.empty()) return who() + ": " + e;
  if (hello.view().epoch() > 0) hooks_.adopt_view(hello.view());

  wire::ChainAck up;
  up.set_hello_ok(true);
  up.set_applied_seq(applied_seq_.load());
  *up.add_members() = self_member();
  const wire::View view = hooks_.view();
  up.set_view_epoch(view.epoch());
  // The successor: connected now when the chain is being formed (or a rubble
  // head restarted), else the one this node already streams to.
  const auto plan = plan_for(view, address_);
  std::string next = plan.removed ? options_.next : plan.successor;
  const bool forming = view.epoch() == 0 && forwarder_.status().successor.empty();
  if (!next.empty() && !hello.join() && (forming || (hello.reset() && rubble_))) {
    wire::ChainAck down;
    if (auto e = connect_successor(hello, &down); !e.empty()) return e;
    for (const auto& m : down.members()) *up.add_members() = m;
    up.set_view_epoch(std::max(view.epoch(), down.view_epoch()));
  } else {
    const int me = find_member(view, address_);
    for (int i = me + 1; me >= 0 && i < view.members_size(); ++i) *up.add_members() = view.members(i);
  }
  up.set_tail_position(s.proto.position() + static_cast<std::uint32_t>(up.members_size()) - 1);
  for (const auto& m : up.members()) up.add_pool_ids(m.pool_id());
  position_ = s.proto.position();
  acked_seq_ = std::max(acked_seq_.load(), std::min(applied_seq_.load(), forwarder_.status().acked));
  up.set_acked_seq(acked_seq_.load());  // what the tail has: the new predecessor may have missed it
  if (!s.send(up)) return who() + ": the predecessor went away during the Hello";
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

std::string Replica::connect_successor(const wire::Hello& hello, wire::ChainAck* reply) {
  const auto plan = plan_for(hooks_.view(), address_);
  const std::string next = plan.removed || plan.successor.empty() ? options_.next : plan.successor;
  wire::Hello fwd = hello;
  fwd.set_position(hello.position() + 1);
  fwd.set_sender(address_);
  if (auto e = forwarder_.connect(next, fwd, false, {}, reply); !e.empty()) return who() + ": " + e;
  return "";
}

void Replica::add_releases(wire::ChainAck& ack) {
  if (!rubble_) return;
  auto slots = rubble_->take_released();
  if (slots.empty()) return;
  auto* r = ack.add_releases();
  r->set_position(position_.load());
  r->set_pool_id(rubble_->pool_id());
  for (auto slot : slots) r->add_slots(slot);
}

void Replica::send_up(wire::ChainAck ack) {
  {
    std::lock_guard lock(current_mu_);
    if (current_ && current_->send(ack)) return;
  }
  // No predecessor right now: our own releases wait for the next one.
  if (!rubble_) return;
  for (const auto& r : ack.releases())
    if (r.pool_id() == rubble_->pool_id()) rubble_->requeue_released({r.slots().begin(), r.slots().end()});
}

void Replica::on_downstream_ack(const wire::ChainAck& ack) {
  wire::ChainAck up = ack;
  up.set_acked_seq(std::max(acked_seq_.load(), ack.acked_seq()));
  acked_seq_ = up.acked_seq();
  add_releases(up);
  send_up(std::move(up));
}

// Rubble mode (every 100 ms, or when woken): catch up when due, and return
// the slots that freed up.
void Replica::tick_loop() {
  name_thread("rb-catch-up");
  std::unique_lock lock(tick_mu_);
  while (!tick_stop_) {
    tick_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return tick_stop_ || tick_wake_; });
    tick_wake_ = false;
    if (tick_stop_) break;
    lock.unlock();
    if (auto e = rubble_->tick(); !e.empty()) {
      std::lock_guard c(current_mu_);
      if (current_) current_->fail(who() + ": " + e);
    }
    wire::ChainAck msg;
    add_releases(msg);
    if (msg.releases_size() > 0) {
      msg.set_acked_seq(acked_seq_.load());
      send_up(std::move(msg));
    }
    lock.lock();
  }
}

std::string Replica::on_snapshot(Session& s, const wire::Snapshot& snap) {
  if (!store_) return who() + ": protocol error: a key-value snapshot in rubble mode";
  std::vector<std::pair<std::string, std::string>> kvs;
  for (const auto& kv : snap.kvs()) {
    if (auto e = check_key_value(kv.key(), kv.value().size()); !e.empty()) return who() + ": malformed snapshot: " + e;
    kvs.emplace_back(kv.key(), kv.value());
  }
  if (!kvs.empty())
    if (const auto st = store_->load(kvs); !st.ok())
      return who() + ": RocksDB failed to load the snapshot: " + st.ToString();
  if (!snap.done()) return "";
  if (auto e = s.proto.on_snapshot_done(snap.seq()); !e.empty()) return who() + ": " + e;
  if (const auto st = store_->set_applied(snap.seq()); !st.ok()) return who() + ": RocksDB: " + st.ToString();
  applied_seq_ = snap.seq();
  forwarder_.reset(snap.seq());
  synced_ = true;
  return "";
}

std::string Replica::on_batch(Session& s, const std::shared_ptr<wire::ChainBatch>& batch) {
  if (batch->has_hello()) return who() + ": protocol error: a second Hello on one replication stream";
  if (batch->has_snapshot()) return on_snapshot(s, batch->snapshot());
  if (batch->entries().empty() && !batch->has_view()) return "";
  if (!batch->entries().empty()) {
    for (const auto& e : batch->entries())
      if (auto err = s.proto.on_entry(e.seq()); !err.empty()) return who() + ": " + err;
    std::string err = rubble_ ? rubble_->apply(*batch) : apply_kv(*batch);
    if (!err.empty()) return who() + ": " + err;
    applied_seq_ = batch->entries().rbegin()->seq();
  }
  forwarder_.send(batch);  // on to the successor, or acknowledged here (tail)
  if (batch->has_view()) hooks_.in_band_view(batch->view());
  if (const auto after = serve_after_.load(); after && applied_seq_.load() >= after && synced()) {
    serve_after_ = 0;
    handed_over();
    if (auto e = become_tail(); !e.empty()) return e;
  }
  if (rubble_ && rubble_->catch_up_due()) {
    {
      std::lock_guard lock(tick_mu_);
      tick_wake_ = true;
    }
    tick_cv_.notify_one();
  }
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

Forwarder::SnapshotFn Replica::snapshot_source() {
  if (!store_) return {};
  return [this](const Forwarder::WriteFn& write, std::uint64_t* seq) {
    const auto emit = [&](std::vector<std::pair<std::string, std::string>>& kvs) {
      wire::ChainBatch b;
      for (auto& [k, v] : kvs) {
        auto* kv = b.mutable_snapshot()->add_kvs();
        kv->set_key(std::move(k));
        kv->set_value(std::move(v));
      }
      return write(b);
    };
    auto err = store_->snapshot(emit, kSnapshotChunk, seq);
    if (!err.empty()) return err;
    wire::ChainBatch done;
    done.mutable_snapshot()->set_done(true);
    done.mutable_snapshot()->set_seq(*seq);
    return write(done) ? std::string() : std::string("the successor went away at the end of the snapshot");
  };
}

std::string Replica::become_tail() {
  if (rubble_)
    if (auto e = rubble_->become_tail(); !e.empty()) return who() + ": " + e;
  serving_ = true;
  return "";
}

void Replica::stop_serving() {
  serving_ = false;
  if (rubble_) rubble_->become_middle();
}

void Replica::end_upstream(const std::string& why) {
  {
    std::lock_guard lock(current_mu_);
    closed_ = true;
    if (current_) current_->fail(why);
  }
  std::unique_lock session(session_mu_, std::defer_lock);
  (void)session.try_lock_for(std::chrono::seconds(5));  // the handler has returned
}

bool Replica::synced() const {
  return rubble_ ? rubble_->synced() : synced_.load();
}

std::string Replica::refuse_reads() const {
  const auto view = hooks_.view();
  const auto tail = tail_of(view);
  return "this node is the " + who() + ": reads are served by the tail" + (tail.empty() ? "" : " (" + tail + ")");
}

grpc::Status Replica::get(const std::string& key, wire::GetReply* reply) {
  if (!serving_) return {grpc::StatusCode::FAILED_PRECONDITION, refuse_reads()};
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
  if (!serving_) return {grpc::StatusCode::FAILED_PRECONDITION, refuse_reads()};
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
  const auto fw = forwarder_.status();
  r->set_bytes_sent(fw.bytes_sent);
  r->set_batches_sent(fw.batches_sent);
  r->set_entries_sent(fw.entries_sent);
  r->set_ack_bytes_sent(ack_bytes_sent_.load());
  if (rubble_) {
    rubble_->fill_stats(r);
    return;
  }
  if (!store_) return;
  const auto st = store_->stats();
  r->set_flushes(st.flushes);
  r->set_compactions(st.compactions);
  r->set_flush_bytes(st.flush_bytes);
  r->set_compact_bytes(st.compact_bytes);
  r->set_wal_bytes(st.wal_bytes);
  r->set_live_sst_files(st.live_sst_files);
  r->set_live_sst_bytes(st.live_sst_bytes);
  r->set_background_work(st.background_work);
}

void Replica::fill_state(wire::NodeState* st) {
  {
    std::lock_guard lock(identity_mu_);
    if (identity_) st->set_chain_id(identity_->chain_id);
  }
  st->set_applied_seq(applied_seq_.load());  // before the held slots: see NodeState
  st->set_acked_seq(acked_seq_.load());
  st->set_serving_reads(serving_.load());
  st->set_synced(synced());
  if (rubble_) {
    st->set_pool(std::filesystem::absolute(rubble_->pool_path()).string());
    st->set_pool_id(rubble_->pool_id());
    for (auto slot : rubble_->held_slots()) st->add_held_slots(slot);
  }
}

}  // namespace fastpath::rubble
