// SPDX-License-Identifier: GPL-2.0
#include "forwarder.h"
#include "procstat.h"

#include <algorithm>

namespace fastpath::rubble {

namespace {

constexpr std::size_t kMaxResendBytes = 4 << 20;

}  // namespace

Forwarder::Forwarder(std::chrono::milliseconds timeout, AckFn on_ack, LostFn on_lost)
    : timeout_(timeout), on_ack_(std::move(on_ack)), on_lost_(std::move(on_lost)) {}

Forwarder::~Forwarder() {
  shutdown();
}

void Forwarder::reset(std::uint64_t last_seq) {
  std::lock_guard c(conn_mu_);
  close_link();
  std::lock_guard lock(log_mu_);
  successor_.clear();
  joining_ = false;
  log_.clear();
  last_ = acked_ = last_seq;
}

std::uint64_t Forwarder::first_logged_locked() const {
  for (const auto& item : log_)
    if (!item.view_only) return item.first;
  return last_ + 1;
}

// Takes the link out (callbacks of its generation are ignored from now on),
// cancels it so that a blocked writer returns, then closes it.  conn_mu_ held.
// Lock order: log_mu_, then write_mu_; nothing is taken under write_mu_.
void Forwarder::close_link() {
  std::shared_ptr<Downstream> link;
  {
    std::lock_guard lock(log_mu_);
    link = std::move(link_);
    live_ = false;
    ++gen_;
  }
  if (link) link->cancel();
  if (pump_.joinable()) pump_.join();
  if (!link) return;
  {
    std::lock_guard w(write_mu_);  // no writer is inside the link, and none enters it again
    link->stop_writes();
  }
  link->close();  // joins its reader, whose callbacks take log_mu_: no lock held here
}

std::string Forwarder::connect(const std::string& addr, wire::Hello hello, bool joining, SnapshotFn snapshot,
                               wire::ChainAck* reply) {
  std::lock_guard c(conn_mu_);
  close_link();
  std::uint64_t last = 0, gen = 0;
  {
    std::lock_guard lock(log_mu_);
    if (shut_) return "this node has left the chain";
    successor_ = addr;
    joining_ = joining;
    last = last_;
    gen = ++gen_;
  }
  hello.set_head_seq(last);
  auto link = std::make_shared<Downstream>(addr, timeout_);
  if (auto e = link->connect(); !e.empty()) return e;
  auto e = link->open(
      hello, reply, [this, gen](const wire::ChainAck& a) { on_link_ack(gen, a); },
      [this, gen](const std::string& why) { on_link_end(gen, why); });
  if (!e.empty()) return e;
  const std::uint64_t applied = reply->applied_seq();
  std::unique_lock lock(log_mu_);
  if (gen != gen_) return "the successor changed while connecting";
  if (!joining) {
    if (applied > last_)
      return "the successor at " + addr + " has applied entries up to " + std::to_string(applied) +
             " but this node only up to " + std::to_string(last_) + ": they diverged";
    if (applied + 1 < first_logged_locked())
      return "the successor at " + addr + " has applied entries up to " + std::to_string(applied) +
             " but this node can resend only from entry " + std::to_string(first_logged_locked()) +
             " (a restarted node keeps no log): start the successor with an empty --db and add it as a new tail "
             "(rubble-ctl add), or restart the whole chain";
  }
  link_ = std::move(link);
  skip_below_ = joining ? last + 1 : applied + 1;
  // The Hello reply carries what the tail has acknowledged: the
  // acknowledgements a failed node did not pass on are not lost.
  const bool newly_acked = !joining && reply->acked_seq() > acked_;
  if (newly_acked) {
    acked_ = std::min(reply->acked_seq(), last_);
    trim_locked();
  }
  const std::uint64_t acked = acked_;
  cursor_ = log_.empty() ? next_id_ : log_.front().id;
  lock.unlock();
  pump_ = std::thread([this, gen, snapshot = joining ? std::move(snapshot) : SnapshotFn()] { pump(gen, snapshot); });
  if (newly_acked) self_ack(acked);
  return "";
}

void Forwarder::disconnect() {
  std::lock_guard c(conn_mu_);
  close_link();
  std::uint64_t last = 0;
  {
    std::lock_guard lock(log_mu_);
    if (shut_) return;
    successor_.clear();
    joining_ = false;
    log_.clear();
    acked_ = last = last_;
  }
  self_ack(last);
}

void Forwarder::shutdown() {
  std::lock_guard c(conn_mu_);
  {
    std::lock_guard lock(log_mu_);
    shut_ = true;
    successor_.clear();
    joining_ = false;
    log_.clear();
  }
  close_link();
}

void Forwarder::self_ack(std::uint64_t seq) {
  wire::ChainAck ack;
  ack.set_acked_seq(seq);
  on_ack_(ack);
}

void Forwarder::push_locked(Batch batch, std::uint64_t first, std::uint64_t last, bool view_only) {
  log_.push_back(Item{next_id_++, first, last, view_only, std::move(batch)});
}

void Forwarder::send(Batch batch) {
  std::unique_lock lock(log_mu_);
  const auto& entries = batch->entries();
  const std::uint64_t first = entries.empty() ? 0 : entries.begin()->seq();
  const std::uint64_t last = entries.empty() ? 0 : entries.rbegin()->seq();
  if (last) last_ = last;
  if (shut_) return;
  if (successor_.empty()) {  // the tail: applied here = acknowledged
    acked_ = last_;
    lock.unlock();
    if (last) self_ack(last);
    return;
  }
  if (last)
    push_locked(batch, first, last, false);
  else
    push_locked(batch, 0, last_, true);
  const bool self = joining_;
  const std::uint64_t self_seq = last_;
  if (live_ && link_) {
    auto link = link_;
    std::unique_lock w(write_mu_);
    lock.unlock();
    if (link->write(*batch)) count_sent(*batch);
  } else {
    lock.unlock();
  }
  if (self && last) self_ack(self_seq);
}

void Forwarder::send_view(const wire::View& view) {
  auto batch = std::make_shared<wire::ChainBatch>();
  *batch->mutable_view() = view;
  send(std::move(batch));
}

void Forwarder::finish_join(const wire::View& view) {
  {
    std::lock_guard lock(log_mu_);
    joining_ = false;
  }
  send_view(view);
}

// The next batch to resend: whole or partial entry items from the cursor, up
// to about kMaxResendBytes; a view ends a batch.  False when nothing is left.
bool Forwarder::collect(wire::ChainBatch* out) {
  std::size_t bytes = 0;
  for (const auto& item : log_) {
    if (item.id < cursor_) continue;
    if (out->has_view()) break;
    if (item.view_only) {
      if (item.last + 1 >= skip_below_) {
        if (out->entries_size() > 0) break;  // after the entries collected so far
        *out->mutable_view() = item.batch->view();
      }
      cursor_ = item.id + 1;
      continue;
    }
    cursor_ = item.id + 1;
    if (item.last < skip_below_) continue;
    for (const auto& e : item.batch->entries())
      if (e.seq() >= skip_below_) *out->add_entries() = e;
    if (item.batch->has_view()) *out->mutable_view() = item.batch->view();
    bytes += item.batch->ByteSizeLong();
    if (bytes >= kMaxResendBytes) break;
  }
  return out->entries_size() > 0 || out->has_view();
}

bool Forwarder::write_link(std::uint64_t gen, const wire::ChainBatch& batch) {
  std::shared_ptr<Downstream> link;
  {
    std::lock_guard lock(log_mu_);
    if (gen != gen_ || !link_) return false;
    link = link_;
  }
  std::lock_guard w(write_mu_);
  if (!link->write(batch)) return false;
  count_sent(batch);
  return true;
}

void Forwarder::pump(std::uint64_t gen, SnapshotFn snapshot) {
  name_thread("rb-resend");
  if (snapshot) {
    std::uint64_t seq = 0;
    const auto err = snapshot([this, gen](const wire::ChainBatch& b) { return write_link(gen, b); }, &seq);
    std::lock_guard lock(log_mu_);
    if (gen != gen_) return;
    if (!err.empty()) {
      if (link_) link_->cancel();  // the successor sees the stream end; on_link_end reports it
      return;
    }
    skip_below_ = seq + 1;
  }
  for (;;) {
    wire::ChainBatch batch;
    std::unique_lock lock(log_mu_);
    if (gen != gen_ || !link_) return;
    if (!collect(&batch)) {
      live_ = true;
      return;
    }
    auto link = link_;
    std::lock_guard w(write_mu_);  // taken under log_mu_ (order: log_mu_, then write_mu_; never the reverse)
    lock.unlock();
    if (!link->write(batch)) return;
    count_sent(batch);
  }
}

void Forwarder::count_sent(const wire::ChainBatch& batch) {
  bytes_sent_ += batch.GetCachedSize();  // computed when the link serialised it
  batches_sent_++;
  entries_sent_ += static_cast<std::uint64_t>(batch.entries_size());
}

void Forwarder::trim_locked() {
  while (!log_.empty()) {
    const auto& item = log_.front();
    if (item.view_only ? item.last < acked_ : item.last <= acked_)
      log_.pop_front();
    else
      break;
  }
}

void Forwarder::on_link_ack(std::uint64_t gen, const wire::ChainAck& ack) {
  wire::ChainAck up = ack;
  {
    std::lock_guard lock(log_mu_);
    if (gen != gen_) return;
    acked_ = std::max(acked_, ack.acked_seq());
    trim_locked();
    if (joining_) up.set_acked_seq(last_);  // this node is still the tail
  }
  on_ack_(up);
}

void Forwarder::on_link_end(std::uint64_t gen, const std::string& why) {
  {
    std::lock_guard lock(log_mu_);
    if (gen != gen_) return;
    live_ = false;
  }
  on_lost_(why);
}

Forwarder::Status Forwarder::status() const {
  std::lock_guard lock(log_mu_);
  Status s;
  s.successor = successor_;
  s.connected = link_ && !link_->ended();
  s.joining = joining_;
  s.last = last_;
  s.acked = successor_.empty() || joining_ ? last_ : acked_;
  for (const auto& item : log_)
    if (!item.view_only) s.log_entries += item.batch->entries_size();
  s.bytes_sent = bytes_sent_.load();
  s.batches_sent = batches_sent_.load();
  s.entries_sent = entries_sent_.load();
  return s;
}

std::vector<std::uint32_t> Forwarder::installs_after(std::uint64_t seq) const {
  std::lock_guard lock(log_mu_);
  std::vector<std::uint32_t> slots;
  for (const auto& item : log_)
    for (const auto& e : item.batch->entries())
      if (e.seq() > seq && e.has_file() && e.file().type() == wire::FileOp::INSTALL_SST && e.file().for_pool().empty())
        slots.push_back(e.file().slot());
  return slots;
}

}  // namespace fastpath::rubble
