// SPDX-License-Identifier: GPL-2.0-only
#include "lease_table.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace dfuse::leased {

namespace {

bool conflicts(LeaseMode held, LeaseMode wanted) {
  if (held == abi::kLeaseNone || wanted == abi::kLeaseNone) return false;
  return held == abi::kLeaseWrite || wanted == abi::kLeaseWrite;
}

bool valid_request_mode(LeaseMode mode) {
  return mode == abi::kLeaseRead || mode == abi::kLeaseWrite;
}

std::string hex(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), kDigits[v & 15]);
    v >>= 4;
  } while (v != 0);
  return "0x" + s;
}

}  // namespace

const char* mode_name(LeaseMode mode) {
  switch (mode) {
    case abi::kLeaseNone:
      return "none";
    case abi::kLeaseRead:
      return "read";
    case abi::kLeaseWrite:
      return "write";
  }
  return "invalid";
}

LeaseTable::LeaseTable(TableOptions options, std::function<uint32_t()> new_epoch, TimePoint now)
    : options_(options), new_epoch_(std::move(new_epoch)), now_(now) {
  epoch_ = new_epoch_();
  if (options_.restarted && options_.grace.count() > 0) {
    grace_ = true;
    grace_end_ = now + options_.grace;
  }
}

uint64_t LeaseTable::next_generation() {
  if (counter_ == std::numeric_limits<uint32_t>::max()) {
    const uint32_t e = new_epoch_();
    if (e <= epoch_)
      throw std::logic_error("new epoch " + std::to_string(e) + " is not above " + std::to_string(epoch_));
    epoch_ = e;
    counter_ = 0;
  }
  ++counter_;
  return last_generation();
}

void LeaseTable::touch(const NodeId& node, TimePoint now) {
  nodes_[node].last_seen = now;
}

std::vector<Action> LeaseTable::take_actions() {
  return std::exchange(actions_, {});
}

std::map<NodeId, Lease> LeaseTable::holders(const FileId& file) const {
  std::map<NodeId, Lease> out;
  if (auto it = files_.find(file); it != files_.end())
    for (const auto& [node, h] : it->second.holders) out[node] = Lease{file, h.mode, h.generation};
  return out;
}

std::size_t LeaseTable::waiting(const FileId& file) const {
  auto it = files_.find(file);
  return it == files_.end() ? 0 : it->second.queue.size();
}

TimePoint LeaseTable::next_deadline() const {
  TimePoint t = TimePoint::max();
  if (grace_) t = grace_end_;
  for (const auto& [id, n] : nodes_) t = std::min(t, n.last_seen + options_.ttl);
  return std::min(t, next_hold_end());
}

TimePoint LeaseTable::next_hold_end() const {
  TimePoint t = TimePoint::max();
  for (const auto& [file, end] : held_back_) t = std::min(t, end);
  return t;
}

// ---- the queue ----

void LeaseTable::pump(const FileId& file) {
  held_back_.erase(file);
  auto it = files_.find(file);
  if (it == files_.end()) return;
  File& f = it->second;
  if (grace_) {
    // Rule 7: only a node asking again for what it already holds, wherever
    // it stands in the queue (that changes no conflict).
    for (auto q = f.queue.begin(); q != f.queue.end();) {
      auto self = f.holders.find(q->node);
      if (self == f.holders.end() || self->second.revoking || self->second.mode < q->mode) {
        ++q;
        continue;
      }
      const Request r = *q;
      q = f.queue.erase(q);
      grant(file, f, r);
    }
  }
  while (!grace_ && !f.queue.empty()) {
    const Request r = f.queue.front();
    // Rule 3: a reader only displaces writers, and only down to READ.
    const LeaseMode to = r.mode == abi::kLeaseRead ? abi::kLeaseRead : abi::kLeaseNone;
    bool blocked = false;
    TimePoint hold_end = TimePoint::max();
    for (auto& [other, h] : f.holders) {
      if (other == r.node || !conflicts(h.mode, r.mode)) continue;
      blocked = true;
      if (h.revoking && h.revoke_to <= to) continue;
      // Rule 8: not before the holder had its grant for min_hold.
      if (const TimePoint end = h.granted_at + options_.min_hold; now_ < end) {
        hold_end = std::min(hold_end, end);
        continue;
      }
      revoke(file, other, h, to);
    }
    if (blocked) {
      if (hold_end != TimePoint::max()) held_back_[file] = hold_end;
      break;
    }
    f.queue.pop_front();
    grant(file, f, r);
  }
  if (f.holders.empty() && f.queue.empty()) files_.erase(it);
}

void LeaseTable::grant(const FileId& file, File& f, const Request& r) {
  Holder& h = f.holders[r.node];
  h.mode = std::max(h.mode, r.mode);
  h.generation = next_generation();
  h.revoking = false;
  h.granted_at = now_;
  dirty_.insert(file);
  actions_.push_back(Action{Action::Kind::kGrant, r.node, file, h.mode, h.generation, r.id, {}});
}

void LeaseTable::revoke(const FileId& file, const NodeId& node, Holder& h, LeaseMode to) {
  h.revoking = true;
  h.revoke_to = to;
  actions_.push_back(Action{Action::Kind::kRevoke, node, file, to, h.generation, 0, {}});
}

void LeaseTable::forget_if_unused(const FileId& file, const NodeId& node) {
  auto nit = nodes_.find(node);
  if (nit == nodes_.end()) return;
  auto fit = files_.find(file);
  if (fit != files_.end()) {
    const File& f = fit->second;
    if (f.holders.contains(node)) return;
    if (std::any_of(f.queue.begin(), f.queue.end(), [&](const Request& r) { return r.node == node; })) return;
  }
  nit->second.files.erase(file);
}

void LeaseTable::drop_holder(const FileId& file, const NodeId& node) {
  if (auto fit = files_.find(file); fit != files_.end() && fit->second.holders.erase(node) > 0) dirty_.insert(file);
  forget_if_unused(file, node);
}

void LeaseTable::cancel_requests(const NodeId& node) {
  auto nit = nodes_.find(node);
  if (nit == nodes_.end()) return;
  const std::set<FileId> files = nit->second.files;
  for (const auto& file : files) {
    auto fit = files_.find(file);
    if (fit == files_.end()) continue;
    std::erase_if(fit->second.queue, [&](const Request& r) { return r.node == node; });
    forget_if_unused(file, node);
    pump(file);
  }
}

// ---- node requests ----

void LeaseTable::acquire(const NodeId& node, uint64_t request_id, const FileId& file, LeaseMode mode, TimePoint now) {
  tick(now);
  auto refuse = [&](std::string why) {
    actions_.push_back(Action{Action::Kind::kRefuse, node, file, mode, 0, request_id, std::move(why)});
  };
  if (!registered(node)) return refuse("node " + node + " is not registered (its leases expired?)");
  touch(node, now);
  if (!valid_request_mode(mode)) return refuse("invalid lease mode " + std::to_string(mode));
  if (file.empty()) return refuse("empty file id");
  files_[file].queue.push_back(Request{node, request_id, mode});
  nodes_[node].files.insert(file);
  pump(file);
}

void LeaseTable::ack(const NodeId& node, const FileId& file, uint64_t generation, LeaseMode mode, TimePoint now) {
  tick(now);
  if (!registered(node)) return;
  touch(node, now);
  auto fit = files_.find(file);
  if (fit == files_.end()) return;
  auto hit = fit->second.holders.find(node);
  if (hit == fit->second.holders.end()) return;
  Holder& h = hit->second;
  if (h.generation != generation || mode >= h.mode) return;  // stale, or not a downgrade
  h.mode = mode;
  dirty_.insert(file);
  if (h.revoking && h.mode <= h.revoke_to) h.revoking = false;
  if (h.mode == abi::kLeaseNone) drop_holder(file, node);
  pump(file);
}

void LeaseTable::release(const NodeId& node, const FileId& file, uint64_t generation, TimePoint now) {
  tick(now);
  if (!registered(node)) return;
  touch(node, now);
  auto fit = files_.find(file);
  if (fit == files_.end()) return;
  auto hit = fit->second.holders.find(node);
  if (hit == fit->second.holders.end() || hit->second.generation != generation) return;
  drop_holder(file, node);
  pump(file);
}

void LeaseTable::heartbeat(const NodeId& node, TimePoint now) {
  tick(now);
  if (registered(node)) touch(node, now);
}

void LeaseTable::disconnect(const NodeId& node, TimePoint now) {
  tick(now);
  cancel_requests(node);
  // Nothing to keep for a node that holds nothing: no expiry to wait for.
  if (auto it = nodes_.find(node); it != nodes_.end() && it->second.files.empty()) nodes_.erase(it);
}

// ---- time ----

void LeaseTable::expire(const NodeId& node) {
  auto nit = nodes_.find(node);
  if (nit == nodes_.end()) return;
  const std::set<FileId> files = nit->second.files;
  nodes_.erase(nit);
  if (expired_.size() >= 4096) expired_.clear();  // only refusal messages depend on it
  expired_.insert(node);
  actions_.push_back(Action{Action::Kind::kExpire, node, {}, abi::kLeaseNone, 0, 0, "no message for the TTL"});
  for (const auto& file : files) {
    auto fit = files_.find(file);
    if (fit == files_.end()) continue;
    if (fit->second.holders.erase(node) > 0) dirty_.insert(file);  // a pending revoke counts as acknowledged
    std::erase_if(fit->second.queue, [&](const Request& r) { return r.node == node; });
    pump(file);
  }
}

void LeaseTable::tick(TimePoint now) {
  now_ = now;
  std::vector<NodeId> dead;
  for (const auto& [id, n] : nodes_)
    if (n.last_seen + options_.ttl <= now) dead.push_back(id);
  for (const auto& id : dead) expire(id);
  if (grace_ && now >= grace_end_) {
    grace_ = false;
    std::vector<FileId> queued;
    for (const auto& [file, f] : files_)
      if (!f.queue.empty()) queued.push_back(file);
    for (const auto& file : queued) pump(file);
  }
  std::vector<FileId> held_out;
  for (const auto& [file, end] : held_back_)
    if (end <= now) held_out.push_back(file);
  for (const auto& file : held_out) pump(file);
}

// ---- registration and reclaim ----

void LeaseTable::restore(const std::vector<std::pair<NodeId, Lease>>& held, TimePoint now) {
  for (const auto& [node, l] : held) {
    if (l.mode == abi::kLeaseNone || l.file.empty()) continue;
    if (l.generation >= (uint64_t{epoch_} << 32))
      throw std::logic_error("restored lease of node " + node + " on " + l.file + " has generation " +
                             hex(l.generation) + ", not below epoch " + std::to_string(epoch_));
    files_[l.file].holders[node] = Holder{l.mode, l.generation, false, abi::kLeaseNone, TimePoint::min()};
    Node& n = nodes_[node];
    n.last_seen = now;
    n.files.insert(l.file);
  }
}

std::vector<ReclaimResult> LeaseTable::register_node(const NodeId& node, const std::vector<Lease>& held,
                                                     TimePoint now) {
  tick(now);
  cancel_requests(node);  // requests of an earlier stream: the node sends them again
  touch(node, now);

  std::set<FileId> listed;
  for (const auto& l : held)
    if (l.mode != abi::kLeaseNone) listed.insert(l.file);
  std::set<FileId> changed;
  // Rule 6: a lease the node no longer lists was released (the release or
  // the ack was lost with the old stream).
  const std::set<FileId> recorded = nodes_[node].files;
  for (const auto& file : recorded) {
    if (listed.contains(file)) continue;
    drop_holder(file, node);
    changed.insert(file);
  }

  std::vector<ReclaimResult> results;
  results.reserve(held.size());
  for (const auto& claim : held) {
    if (!valid_request_mode(claim.mode) || claim.file.empty()) {
      results.push_back({claim.file, false, "invalid lease (mode " + std::to_string(claim.mode) + ")"});
      continue;
    }
    auto fit = files_.find(claim.file);
    const bool recorded_here = fit != files_.end() && fit->second.holders.contains(node);
    results.push_back(recorded_here ? reconcile(node, claim, changed) : reclaim(node, claim));
    changed.insert(claim.file);
  }
  expired_.erase(node);

  // Revokes the node may not have seen on its earlier stream.
  for (const auto& file : nodes_[node].files) {
    auto fit = files_.find(file);
    if (fit == files_.end()) continue;
    auto hit = fit->second.holders.find(node);
    if (hit != fit->second.holders.end() && hit->second.revoking)
      actions_.push_back(
          Action{Action::Kind::kRevoke, node, file, hit->second.revoke_to, hit->second.generation, 0, {}});
  }
  for (const auto& file : changed) pump(file);
  return results;
}

ReclaimResult LeaseTable::reconcile(const NodeId& node, const Lease& claim, std::set<FileId>& changed) {
  Holder& h = files_[claim.file].holders[node];
  if (claim.generation <= h.generation && claim.mode <= h.mode) {
    // An older generation: the newer grant never reached the node.
    if (h.mode != claim.mode || h.generation != claim.generation) dirty_.insert(claim.file);
    h.mode = claim.mode;
    h.generation = claim.generation;
    if (h.revoking && h.mode <= h.revoke_to) h.revoking = false;
    return {claim.file, true, {}};
  }
  const std::string why = "the service records generation " + hex(h.generation) + " (" + mode_name(h.mode) +
                          ") for this node, not " + hex(claim.generation) + " (" + mode_name(claim.mode) + ")";
  drop_holder(claim.file, node);
  changed.insert(claim.file);
  return {claim.file, false, why};
}

ReclaimResult LeaseTable::reclaim(const NodeId& node, const Lease& claim) {
  if (!grace_) {
    if (expired_.contains(node))
      return {claim.file, false,
              "lease expired: no message from node " + node + " for the TTL (" + std::to_string(options_.ttl.count()) +
                  " ms)"};
    if (options_.restarted)
      return {claim.file, false, "the service restarted and its grace period for reclaims is over"};
    return {claim.file, false, "the service has no record of this lease"};
  }
  if (claim.generation == 0 || claim.generation > last_generation())
    return {claim.file, false,
            "generation " + hex(claim.generation) + " was never issued (service epoch " + std::to_string(epoch_) +
                "); was the state directory reset?"};
  File& f = files_[claim.file];
  std::vector<NodeId> stale;
  for (const auto& [other, h] : f.holders) {
    if (other == node || !conflicts(h.mode, claim.mode)) continue;
    if (h.generation >= claim.generation)
      return {claim.file, false,
              std::string("conflicts with the ") + mode_name(h.mode) + " lease of node " + other + " (generation " +
                  hex(h.generation) + ")"};
    stale.push_back(other);
  }
  // Rule 6: the conflicting older leases were given up before this one was
  // granted; their holders failed to notice. Tell them.
  for (const auto& other : stale) {
    actions_.push_back(
        Action{Action::Kind::kRevoke, other, claim.file, abi::kLeaseNone, f.holders[other].generation, 0, {}});
    f.holders.erase(other);
    dirty_.insert(claim.file);
    forget_if_unused(claim.file, other);
  }
  f.holders[node] = Holder{claim.mode, claim.generation, false, abi::kLeaseNone, TimePoint::min()};
  nodes_[node].files.insert(claim.file);
  dirty_.insert(claim.file);
  return {claim.file, true, {}};
}

}  // namespace dfuse::leased
