// SPDX-License-Identifier: GPL-2.0
#include "head.h"

#include <filesystem>
#include <stdexcept>

#include "procstat.h"
#include "rubble_head.h"

namespace fastpath::rubble {

namespace {

constexpr std::size_t kMaxQueuedBytes = 64 << 20;
constexpr std::size_t kMaxBatchBytes = 4 << 20;

std::string rocksdb_dir(const std::string& db) {
  return (std::filesystem::absolute(db) / "rocksdb").string();
}

}  // namespace

Head::Head(NodeOptions options, Identity identity, Forwarder& forwarder)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      forwarder_(forwarder),
      window_(options_.max_inflight) {}

Head::~Head() {
  stop("the head is shutting down");
  store_.reset();  // before the file system under it
  rubble_.reset();
}

wire::ChainAck Head::start(const std::string& self) {
  if (options_.mode == Mode::kRubble) rubble_ = std::make_unique<RubbleHead>(options_, identity_);
  StoreOptions so;
  so.sst_size = options_.sst_size;
  std::uint64_t head_seq = 0;
  if (options_.mode == Mode::kBaseline) {
    store_ = Store::open_primary(rocksdb_dir(options_.db), so);
    head_seq = store_->applied_seq();
  }
  sequencer_ = std::make_unique<Sequencer>(head_seq, kMaxQueuedBytes);
  forwarder_.reset(head_seq);
  wire::Hello hello;
  hello.set_chain_id(identity_.chain_id);
  hello.set_mode(to_string(options_.mode));
  hello.set_position(1);
  hello.set_sender(self);
  hello.set_reset(rubble_ != nullptr);  // a rubble head sends its whole directory
  if (rubble_) hello.set_slot_size(rubble_->slot_size());
  wire::ChainAck reply;
  if (auto e = forwarder_.connect(options_.next, hello, false, {}, &reply); !e.empty())
    throw std::runtime_error("the chain refused to start: " + e);
  if (rubble_) rubble_->check_hello_reply(reply);
  acks_.ack(head_seq);
  sender_ = std::thread([this] { sender_loop(); });
  if (rubble_) {
    store_ = rubble_->open_store(rocksdb_dir(options_.db), so, *sequencer_, false);
    writer_ = std::thread([this] { writer_loop(); });
    // Serve only once every replica has the head's database open.
    wire::WriteReply ignored;
    if (const auto st = wait_ack(sequencer_->last_seq(), &ignored); !st.ok())
      throw std::runtime_error("the replicas did not install the head's database: " + st.error_message());
  }
  ready_ = true;
  return reply;
}

void Head::take_over(Takeover t) {
  StoreOptions so;
  so.sst_size = options_.sst_size;
  if (options_.mode == Mode::kRubble)
    rubble_ = std::make_unique<RubbleHead>(options_, identity_, t.pools, std::move(t.live));
  else
    store_ = std::move(t.store);
  sequencer_ = std::make_unique<Sequencer>(t.applied, kMaxQueuedBytes);
  acks_.ack(forwarder_.status().acked);
  sender_ = std::thread([this] { sender_loop(); });
  if (rubble_) {
    store_ = rubble_->open_store(rocksdb_dir(options_.db), so, *sequencer_, true);
    writer_ = std::thread([this] { writer_loop(); });
  }
  ready_ = true;
}

void Head::stop(const std::string& why) {
  if (stopping_.exchange(true)) return;
  ready_ = false;
  if (rubble_) rubble_->fence();  // a removed head that is still alive must not touch the replicas' slots
  acks_.fail(why);
  std::deque<Pending> queued;
  {
    std::lock_guard lock(writes_mu_);
    writes_closed_ = true;
    queued.swap(writes_);
  }
  writes_cv_.notify_all();
  for (auto& p : queued) p.done({grpc::StatusCode::UNAVAILABLE, why});
  window_.close();
  if (sequencer_) sequencer_->close();
  if (writer_.joinable()) writer_.join();
  if (sender_.joinable()) sender_.join();
}

void Head::put(const std::string& key, const std::string& value, wire::WriteReply* reply, Done done) {
  if (auto e = check_key_value(key, value.size()); !e.empty()) return done({grpc::StatusCode::INVALID_ARGUMENT, e});
  std::vector<wire::KvOp> ops(1);
  ops[0].set_type(wire::KvOp::PUT);
  ops[0].set_key(key);
  ops[0].set_value(value);
  write(std::move(ops), reply, std::move(done));
}

void Head::del(const std::string& key, wire::WriteReply* reply, Done done) {
  if (auto e = check_key_value(key, 0); !e.empty()) return done({grpc::StatusCode::INVALID_ARGUMENT, e});
  std::vector<wire::KvOp> ops(1);
  ops[0].set_type(wire::KvOp::DELETE);
  ops[0].set_key(key);
  write(std::move(ops), reply, std::move(done));
}

void Head::write_many(std::vector<wire::KvOp> ops, wire::WriteReply* reply, Done done) {
  if (auto e = check_write_ops(ops); !e.empty()) return done({grpc::StatusCode::INVALID_ARGUMENT, e});
  write(std::move(ops), reply, std::move(done));
}

void Head::write(std::vector<wire::KvOp> ops, wire::WriteReply* reply, Done done) {
  if (rubble_) {
    // Every flush must fit a slot of the replicas' pools (pool.h).
    std::uint64_t bytes = 0;
    for (const auto& op : ops) bytes += op.key().size() + op.value().size();
    if (const auto most = max_rubble_write(options_.sst_size); bytes > most)
      return done({grpc::StatusCode::INVALID_ARGUMENT,
                   "a write of " + std::to_string(bytes) +
                       " bytes of keys and values: a rubble chain with --sst-size " +
                       std::to_string(options_.sst_size) + " takes at most " + std::to_string(most) +
                       " per call (a quarter of a memtable, so that every flush fits a slot); split it, or run the "
                       "chain with a larger --sst-size"});
  }
  if (auto f = acks_.failure(); !f.empty()) return done({grpc::StatusCode::UNAVAILABLE, f});
  if (!ready_) return done({grpc::StatusCode::UNAVAILABLE, "the head is still starting: try again"});
  Pending p{std::move(ops), reply, std::move(done), std::chrono::steady_clock::now() + options_.ack_timeout};
  if (rubble_) {
    {
      std::lock_guard lock(writes_mu_);
      if (!writes_closed_) {
        writes_.push_back(std::move(p));
        writes_cv_.notify_one();
        return;
      }
    }
    return p.done({grpc::StatusCode::UNAVAILABLE, "the head is shutting down"});
  }
  // Baseline: one entry per op; the call completes with the last one.
  std::uint64_t seq = 0;
  for (auto& op : p.ops) {
    wire::Entry entry;
    *entry.mutable_kv() = std::move(op);
    seq = sequencer_->submit(std::move(entry));
    if (seq == 0) return p.done({grpc::StatusCode::UNAVAILABLE, "the head is shutting down"});
  }
  p.ops.clear();
  complete_when_acked(seq, std::move(p));
}

void Head::complete_when_acked(std::uint64_t seq, Pending p) {
  const auto deadline = p.deadline;
  acks_.when_acked(seq, deadline, [this, seq, reply = p.reply, done = std::move(p.done)](AckTracker::Wait w) {
    switch (w) {
      case AckTracker::Wait::kAcked:
        reply->set_seq(seq);
        return done(grpc::Status::OK);
      case AckTracker::Wait::kFailed:
        return done({grpc::StatusCode::UNAVAILABLE, acks_.failure()});
      case AckTracker::Wait::kTimeout:
        return done(timeout_status(seq));
    }
  });
}

// seq 0: a write that never left the head (earlier batches were not acknowledged).
grpc::Status Head::timeout_status(std::uint64_t seq) const {
  const auto fw = forwarder_.status();
  const std::string what = seq ? "entry " + std::to_string(seq) : "the batches before this write";
  return {grpc::StatusCode::DEADLINE_EXCEEDED,
          "the tail did not acknowledge " + what + " within --ack-timeout: a replica is " +
              "lagging or has failed (successor " + fw.successor + (fw.connected ? "" : ", not connected") +
              "; the chain re-forms once rubble-ctl removes a failed node)"};
}

grpc::Status Head::wait_ack(std::uint64_t seq, wire::WriteReply* reply) {
  const auto deadline = std::chrono::steady_clock::now() + options_.ack_timeout;
  switch (acks_.wait(seq, deadline)) {
    case AckTracker::Wait::kAcked:
      reply->set_seq(seq);
      return grpc::Status::OK;
    case AckTracker::Wait::kFailed:
      return {grpc::StatusCode::UNAVAILABLE, acks_.failure()};
    case AckTracker::Wait::kTimeout:
      break;
  }
  return timeout_status(seq);
}

// Rubble: fails the queued writes that waited --ack-timeout for their turn.
void Head::expire_queued() {
  std::vector<Pending> expired;
  {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(writes_mu_);
    for (auto it = writes_.begin(); it != writes_.end();) {
      if (it->deadline < now) {
        expired.push_back(std::move(*it));
        it = writes_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& p : expired) p.done(timeout_status(0));
}

// Rubble: the writes that queued while the window was closed go into the
// head's RocksDB as one WriteBatch (one WAL record, so one APPEND entry);
// each completes once the tail acknowledges the entries that write produced.
void Head::writer_loop() {
  name_thread("rb-writer");
  std::vector<Pending> group;
  for (;;) {
    {
      std::unique_lock lock(writes_mu_);
      writes_cv_.wait(lock, [&] { return writes_closed_ || !writes_.empty(); });
      if (writes_closed_) return;  // stop() fails what is queued
    }
    // Let the batch in flight come back first: writes queue up meanwhile.
    while (!window_.wait_open(std::chrono::steady_clock::now() + std::chrono::milliseconds(100))) {
      if (stopping_) return;
      expire_queued();
    }
    // At most a quarter of a memtable per group (pool.h: each flush must fit
    // a slot); the first write always fits (write() refuses larger ones).
    const std::size_t cap = std::min<std::size_t>(kMaxBatchBytes, max_rubble_write(options_.sst_size));
    std::size_t bytes = 0;
    {
      std::lock_guard lock(writes_mu_);
      while (!writes_.empty()) {
        std::size_t next = 0;
        for (const auto& op : writes_.front().ops) next += op.key().size() + op.value().size();
        if (!group.empty() && bytes + next > cap) break;
        bytes += next;
        group.push_back(std::move(writes_.front()));
        writes_.pop_front();
      }
    }
    std::vector<const wire::KvOp*> ops;
    for (const auto& p : group)
      for (const auto& op : p.ops) ops.push_back(&op);
    // Not into a full memtable while the previous one still waits for its
    // flush: RocksDB would flush both into one SST too large for a slot.
    store_->wait_for_memtable_room(bytes, options_.ack_timeout);
    rocksdb::Status st;
    {
      Sequencer::Quiet quiet;  // this thread ships the WAL record itself, below
      st = store_->write(ops);
    }
    if (!st.ok()) {
      for (auto& p : group)
        p.done({grpc::StatusCode::INTERNAL, "the head's RocksDB refused the write: " + st.ToString()});
    } else if (sequencer_->closed()) {
      // stop() closed the sequencer while the group was written: its WAL
      // record may have been dropped instead of queued (Sequencer::submit),
      // and last_seq() would then name an earlier, acknowledged entry: the
      // group would be answered OK without having left the head.  Checked
      // after the write, so an open sequencer here means the record was
      // queued.  The client retries at the new head; puts and deletes are
      // idempotent.
      for (auto& p : group)
        p.done({grpc::StatusCode::UNAVAILABLE, "the head stopped before this write left it: try the new head"});
    } else {
      const std::uint64_t seq = sequencer_->last_seq();  // at or after the entry with the group's WAL record
      ship_now();
      for (auto& p : group) complete_when_acked(seq, std::move(p));
    }
    group.clear();
  }
}

// Ships what the sequencer holds whenever the window is open.  In rubble
// mode the writer ships the client writes itself (ship_now); this thread
// then only wakes for RocksDB's background operations (flushes,
// compactions) and for what the writer could not ship.
void Head::sender_loop() {
  name_thread("rb-sender");
  std::vector<wire::Entry> entries;
  for (;;) {
    acks_.expire(std::chrono::steady_clock::now());
    if (rubble_ && !sequencer_->wait_queued(std::chrono::milliseconds(100))) {
      if (sequencer_->closed()) return;
      continue;
    }
    if (!window_.wait_open(std::chrono::steady_clock::now() + std::chrono::milliseconds(100))) {
      if (window_.closed()) return;
      // The chain has not acknowledged the batches in flight yet.  The
      // forwarder has seen every acknowledgement, including any that
      // reached this node before it became the head: catch up from it.
      const auto acked = forwarder_.status().acked;
      window_.acked(acked);
      acks_.ack(acked);
      continue;
    }
    std::lock_guard ship_lock(ship_mu_);
    entries.clear();
    const auto wait = rubble_ ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100);
    switch (take_batch(*sequencer_, window_, entries, kMaxBatchBytes, wait)) {
      case TakeBatch::kClosed:
        return;
      case TakeBatch::kBatch:
        if (!ship(entries)) return;
        break;
      case TakeBatch::kWaiting:
      case TakeBatch::kWindowShut:
        break;
    }
  }
}

// Rubble: the writer ships the entries its write produced, unless the
// sender is shipping right now or the window shut meanwhile (the sender
// ships them then).
void Head::ship_now() {
  std::unique_lock ship_lock(ship_mu_, std::try_to_lock);
  if (!ship_lock.owns_lock()) return;
  std::vector<wire::Entry> entries;
  if (take_batch(*sequencer_, window_, entries, kMaxBatchBytes, std::chrono::milliseconds(0)) == TakeBatch::kBatch)
    ship(entries);
}

bool Head::ship(std::vector<wire::Entry>& entries) {
  auto batch = std::make_shared<wire::ChainBatch>();
  for (auto& e : entries) *batch->add_entries() = std::move(e);
  if (!rubble_) {
    const auto st = store_->apply(*batch);
    if (!st.ok()) {
      acks_.fail("the head's RocksDB failed to apply entries: " + st.ToString());
      return false;
    }
  }
  forwarder_.send(std::move(batch));
  return true;
}

void Head::on_ack(const wire::ChainAck& ack) {
  window_.acked(ack.acked_seq());
  acks_.ack(ack.acked_seq());
  if (!rubble_) return;
  rubble_->on_acked(ack.acked_seq());
  if (ack.releases_size() > 0) rubble_->on_releases(ack);
}

std::uint32_t Head::reconcile(const std::vector<ReplicaPool>& reports) {
  return rubble_ ? rubble_->reconcile(reports) : 0;
}

void Head::on_view(const wire::View& view) {
  if (rubble_) rubble_->on_view(view);
}

grpc::Status Head::add_replica(const wire::Member& member, wire::AddReplicaReply* reply) {
  if (!rubble_) return grpc::Status::OK;  // baseline: the tail sends the newcomer a snapshot
  if (!ready_) return {grpc::StatusCode::UNAVAILABLE, "the head is not serving yet"};
  if (auto e = rubble_->add_replica(member, reply); !e.empty()) return {grpc::StatusCode::FAILED_PRECONDITION, e};
  return grpc::Status::OK;
}

std::uint64_t Head::applied() const {
  return sequencer_ ? sequencer_->last_seq() : 0;
}

void Head::fill_stats(wire::StatsReply* r) const {
  r->set_chain_id(identity_.chain_id);
  r->set_position(0);
  r->set_applied_seq(applied());
  r->set_acked_seq(acks_.acked());
  const auto fw = forwarder_.status();
  r->set_bytes_sent(fw.bytes_sent);
  r->set_batches_sent(fw.batches_sent);
  r->set_entries_sent(fw.entries_sent);
  if (store_) {
    const auto s = store_->stats();
    r->set_flushes(s.flushes);
    r->set_compactions(s.compactions);
    r->set_flush_bytes(s.flush_bytes);
    r->set_compact_bytes(s.compact_bytes);
    r->set_wal_bytes(s.wal_bytes);
    r->set_live_sst_files(s.live_sst_files);
    r->set_live_sst_bytes(s.live_sst_bytes);
    r->set_background_work(s.background_work);
  }
  if (rubble_) rubble_->fill_stats(r);
}

}  // namespace fastpath::rubble
