// SPDX-License-Identifier: GPL-2.0
#include "chain.h"

#include <charconv>

namespace fastpath::rubble {

std::optional<Role> parse_role(std::string_view text) {
  if (text == "head") return Role::kHead;
  if (text == "middle") return Role::kMiddle;
  if (text == "tail") return Role::kTail;
  return std::nullopt;
}

std::optional<Mode> parse_mode(std::string_view text) {
  if (text == "baseline") return Mode::kBaseline;
  if (text == "rubble") return Mode::kRubble;
  return std::nullopt;
}

const char* to_string(Role role) {
  switch (role) {
    case Role::kHead:
      return "head";
    case Role::kMiddle:
      return "middle";
    case Role::kTail:
      return "tail";
  }
  return "?";
}

const char* to_string(Mode mode) {
  return mode == Mode::kRubble ? "rubble" : "baseline";
}

std::string check_address(std::string_view addr, std::string_view option) {
  const auto colon = addr.rfind(':');
  const std::string where = std::string(option) + " '" + std::string(addr) + "'";
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == addr.size())
    return where + ": expected HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000";
  const auto host = addr.substr(0, colon);
  const auto port_text = addr.substr(colon + 1);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port > 65535)
    return where + ": port must be a number from 0 to 65535";
  const bool bracketed = host.front() == '[' && host.back() == ']' && host.size() > 2;
  if (!bracketed && host.find_first_of("[]:") != std::string_view::npos)
    return where + ": write an IPv6 host in brackets, e.g. [::1]:7000";
  return "";
}

std::string check_client_op(Role role, ClientOp op) {
  const bool write = op != ClientOp::kGet;
  if (write && role != Role::kHead)
    return std::string("this node is the ") + to_string(role) + ": writes enter the chain at the head";
  if (!write && role != Role::kTail)
    return std::string("this node is the ") + to_string(role) + ": reads are served by the tail";
  return "";
}

std::string check_key_value(std::string_view key, std::size_t value_size) {
  if (key.empty()) return "key is empty: keys must have 1 to 65536 bytes";
  if (key.size() > kMaxKeyBytes)
    return "key has " + std::to_string(key.size()) + " bytes: keys must have 1 to 65536 bytes";
  if (value_size > kMaxValueBytes)
    return "value has " + std::to_string(value_size) + " bytes: values may have at most 8 MiB";
  return "";
}

std::string check_write_ops(const std::vector<wire::KvOp>& ops) {
  if (ops.empty() || ops.size() > kMaxWriteOps)
    return "a write has " + std::to_string(ops.size()) + " ops: send 1 to " + std::to_string(kMaxWriteOps);
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    const std::string which = "op " + std::to_string(i) + ": ";
    if (op.type() != wire::KvOp::PUT && op.type() != wire::KvOp::DELETE)
      return which + "unknown type " + std::to_string(op.type()) + ": ops are PUT or DELETE";
    if (op.type() == wire::KvOp::DELETE && !op.value().empty()) return which + "a DELETE carries no value";
    if (auto e = check_key_value(op.key(), op.value().size()); !e.empty()) return which + e;
    bytes += op.key().size() + op.value().size();
  }
  if (bytes > kMaxWriteBytes)
    return "a write carries " + std::to_string(bytes) + " bytes of keys and values: at most " +
           std::to_string(kMaxWriteBytes >> 20) + " MiB per call; split it";
  return "";
}

std::string ReplicaSession::refuse(std::string why) {
  state_ = State::kClosed;
  return why;
}

std::string ReplicaSession::on_hello(const HelloInfo& hello) {
  if (state_ != State::kAwaitHello) return refuse("protocol error: a second Hello on one replication stream");
  if (hello.chain_id.empty()) return refuse("protocol error: Hello without a chain id");
  if (hello.position == 0) return refuse("protocol error: Hello with position 0 (position 0 is the head)");
  const auto mode = parse_mode(hello.mode);
  if (!mode) return refuse("protocol error: Hello with unknown mode '" + hello.mode + "'");
  if (*mode != local_.mode)
    return refuse(std::string("the head runs in ") + hello.mode + " mode but this node was started with --mode " +
                  to_string(local_.mode) + ": start every node of a chain with the same --mode");
  if (!local_.chain_id.empty() && local_.chain_id != hello.chain_id)
    return refuse("this node's --db holds data of chain '" + local_.chain_id + "' but the head belongs to chain '" +
                  hello.chain_id + "': give this node an empty --db directory or the one of chain '" + hello.chain_id +
                  "'");
  if (local_.mode == Mode::kRubble && hello.slot_size != local_.slot_size)
    return refuse("the head writes slots of " + std::to_string(hello.slot_size) + " bytes but this node's pool has " +
                  std::to_string(local_.slot_size) + "-byte slots: start every node with the same --sst-size");
  if (hello.epoch == 0 && local_.epoch > 1)
    return refuse("this chain was reconfigured (view epoch " + std::to_string(local_.epoch) +
                  ") and a node that starts as head cannot take it over: start it with an empty --db and add it as "
                  "the new tail (rubble-ctl add)");
  if (hello.epoch != 0 && hello.epoch < local_.epoch)
    return refuse("stale view: the predecessor holds epoch " + std::to_string(hello.epoch) + ", this node epoch " +
                  std::to_string(local_.epoch));
  if (hello.join && local_.mode == Mode::kBaseline && local_.applied_seq != 0)
    return refuse("a node joins the chain as a new tail only with an empty --db, and this one holds entries up to " +
                  std::to_string(local_.applied_seq));
  if (hello.join && local_.mode == Mode::kBaseline) {
    state_ = State::kAwaitSnapshot;
  } else if (hello.join || hello.reset) {
    next_seq_ = hello.head_seq + 1;
    state_ = State::kStreaming;
  } else {
    if (local_.applied_seq > hello.head_seq)
      return refuse("this node has applied entries up to " + std::to_string(local_.applied_seq) +
                    " but its predecessor only has entries up to " + std::to_string(hello.head_seq) +
                    ": the replicas diverged; start this node with an empty --db and add it as the new tail");
    next_seq_ = local_.applied_seq + 1;
    state_ = State::kStreaming;
  }
  adopted_ = local_.chain_id.empty();
  position_ = hello.position;
  return "";
}

std::string ReplicaSession::on_snapshot_done(std::uint64_t seq) {
  if (state_ != State::kAwaitSnapshot) return refuse("protocol error: a snapshot this node did not ask for");
  next_seq_ = seq + 1;
  state_ = State::kStreaming;
  return "";
}

std::string ReplicaSession::on_entry(std::uint64_t seq) {
  if (state_ == State::kAwaitHello) return refuse("protocol error: entries before the Hello");
  if (state_ == State::kAwaitSnapshot) return refuse("protocol error: entries before the end of the snapshot");
  if (state_ == State::kClosed) return "protocol error: entry on a closed replication stream";
  if (seq != next_seq_)
    return refuse("protocol error: entry " + std::to_string(seq) + " arrived but " + std::to_string(next_seq_) +
                  " was expected (entries must arrive in sequence, without gaps or repeats)");
  ++next_seq_;
  return "";
}

void AckTracker::ack(std::uint64_t seq) {
  std::vector<Callback> done;
  {
    std::lock_guard lock(mu_);
    if (seq <= acked_) return;
    acked_ = seq;
    const auto end = waiters_.upper_bound(seq);
    for (auto it = waiters_.begin(); it != end; ++it) done.push_back(std::move(it->second.done));
    waiters_.erase(waiters_.begin(), end);
  }
  cv_.notify_all();
  for (auto& d : done) d(Wait::kAcked);
}

void AckTracker::fail(const std::string& why) {
  std::vector<Callback> done;
  {
    std::lock_guard lock(mu_);
    if (!failure_.empty()) return;
    failure_ = why.empty() ? "chain broken" : why;
    for (auto& [seq, w] : waiters_) done.push_back(std::move(w.done));
    waiters_.clear();
  }
  cv_.notify_all();
  for (auto& d : done) d(Wait::kFailed);
}

AckTracker::Wait AckTracker::wait(std::uint64_t seq, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  const bool done = cv_.wait_until(lock, deadline, [&] { return acked_ >= seq || !failure_.empty(); });
  if (acked_ >= seq) return Wait::kAcked;
  return done ? Wait::kFailed : Wait::kTimeout;
}

void AckTracker::when_acked(std::uint64_t seq, std::chrono::steady_clock::time_point deadline, Callback done) {
  Wait now = Wait::kAcked;
  {
    std::lock_guard lock(mu_);
    if (acked_ < seq && failure_.empty()) {
      waiters_.emplace(seq, Waiter{deadline, std::move(done)});
      return;
    }
    if (acked_ < seq) now = Wait::kFailed;
  }
  done(now);
}

void AckTracker::expire(std::chrono::steady_clock::time_point now) {
  std::vector<Callback> done;
  {
    std::lock_guard lock(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.deadline < now) {
        done.push_back(std::move(it->second.done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& d : done) d(Wait::kTimeout);
}

std::uint64_t AckTracker::acked() const {
  std::lock_guard lock(mu_);
  return acked_;
}

std::string AckTracker::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

std::size_t AckTracker::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

bool SendWindow::wait_open(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return closed_ || in_flight_.size() < limit_; });
  return !closed_ && in_flight_.size() < limit_;
}

void SendWindow::sent(std::uint64_t last_seq) {
  std::lock_guard lock(mu_);
  if (last_seq > acked_) in_flight_.push_back(last_seq);
}

void SendWindow::acked(std::uint64_t seq) {
  {
    std::lock_guard lock(mu_);
    if (seq <= acked_) return;
    acked_ = seq;
    if (in_flight_.empty() || in_flight_.front() > seq) return;
    while (!in_flight_.empty() && in_flight_.front() <= seq) in_flight_.pop_front();
  }
  cv_.notify_all();
}

void SendWindow::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool SendWindow::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::size_t SendWindow::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

}  // namespace fastpath::rubble
