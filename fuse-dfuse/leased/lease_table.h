// SPDX-License-Identifier: GPL-2.0-only
// The lease state machine of dfuse-leased: pure C++, no I/O, no clock of its
// own (every call takes `now`), so tests drive it with a fake clock. The
// service (server.h) calls it under one mutex and delivers the actions it
// queues (take_actions()) to the nodes.
//
// Rules, per file:
//  1. Many readers or one writer. A request conflicts with another node's
//     lease when either of the two is a write.
//  2. Requests are served strictly FIFO per file: a request waits while any
//     request queued before it waits, so a stream of readers cannot starve a
//     writer. Consecutive compatible requests at the head are granted at once.
//  3. For the request at the head, every conflicting holder gets one Revoke:
//     a writer asked to give way to a reader is downgraded to READ, anything
//     else goes to NONE. The request is granted only when every conflicting
//     holder acknowledged (Ack with the revoked generation), released, or
//     expired. A READ -> WRITE upgrade by the sole reader is granted at once.
//  4. Every grant carries a new generation, (epoch << 32 | counter), strictly
//     increasing across all files and grants, and across restarts because the
//     epoch is persisted and bumped on every start (and whenever the 32-bit
//     counter runs out). A grant is at least the mode asked for (a writer
//     asking for READ keeps WRITE). A revoke names the holder's generation;
//     an ack or release naming another generation is stale and ignored.
//  5. A node expires when no message came from it for the TTL: its leases go
//     (pending revokes count as acknowledged), its queued requests go, and
//     the requests behind them proceed. A node whose stream closes keeps its
//     leases until it expires or registers again; its queued requests go (a
//     node left holding nothing is forgotten at once).
//  6. Registration carries the leases the node holds. For a lease the service
//     also records for the node, the node's word wins downwards (a lease it no
//     longer lists is released; an older generation than recorded means the
//     newer grant was lost on the wire and the older one stands). A listed
//     lease the service does not record is a reclaim: accepted only during the
//     grace period after a restart (default 2 x TTL, only when the state
//     directory held an epoch), never for a generation not yet issued, and
//     refused when it conflicts with a lease already reclaimed or held, unless
//     the reclaim has the higher generation: a grant is only ever made after
//     every conflicting lease was given up, so of two conflicting leases the
//     older one is stale, and its holder is told to drop it.
//  7. During the grace period no new grant is made (a lease not yet reclaimed
//     may conflict with it); the only exception is a node asking again for a
//     mode it already holds. Queued requests proceed when the grace ends.
//  8. Minimum hold (TableOptions::min_hold): a holder is revoked only once it
//     has held its grant for min_hold. Until then the request at the head
//     waits, and with it every request behind it (rule 2); the revoke goes out
//     when the hold ends. This only delays revokes: nothing is granted while a
//     conflicting lease is held, and a holder that releases, acks, or expires
//     lets the queue move at once. Two nodes taking turns on one file (one
//     writes, one reads) thus each get min_hold of cached I/O per grant
//     instead of paying a revoke round trip per operation. It applies whenever
//     a revoke is due, not only on files seen to ping-pong: a grant older than
//     min_hold is revoked at once anyway, so a file that changes hands rarely
//     waits for nothing, and a one-off conflict on a fresh grant waits at most
//     min_hold. A lease re-granted (an upgrade, or again after a revoke) starts
//     a new hold; a downgrade keeps the hold of its grant; a reclaimed lease
//     has none (it was held across the restart). 0 turns the rule off.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dfuse/lease_client.h"

namespace dfuse::leased {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using NodeId = std::string;

struct Lease {
  FileId file;
  LeaseMode mode = abi::kLeaseNone;
  uint64_t generation = 0;
};

// Something the service must tell a node (or log).
struct Action {
  enum class Kind {
    kGrant,   // request_id granted: file, mode, generation
    kRevoke,  // give up `generation` of file down to `mode`, then ack
    kRefuse,  // request_id refused: file, reason
    kExpire,  // node expired: close its stream
  };
  Kind kind = Kind::kGrant;
  NodeId node;
  FileId file;
  LeaseMode mode = abi::kLeaseNone;
  uint64_t generation = 0;
  uint64_t request_id = 0;
  std::string reason;
};

struct ReclaimResult {
  FileId file;
  bool accepted = false;
  std::string reason;  // when refused
};

// The default of rule 8's minimum hold, 10 ms. A change of hands costs a
// revoke round trip: service -> node -> kernel flush -> ack -> grant. Its
// service part (over gRPC, on one machine) takes about 0.2 ms; a network hop
// and the flush of dirty pages make it some tenths of a millisecond to a few
// ms. A 10 ms hold lets two nodes taking turns on one file spread that cost
// over at least 10 ms of cached I/O each, while a request that conflicts with
// a fresh grant waits at most 10 ms longer, once, which no interactive user
// notices. GFS2 holds an inode glock at least 10 jiffies (GL_GLOCK_MIN_HOLD)
// and up to 200 ms when in demand; DFUSE takes the floor, since its switch is
// cheaper than a DLM demote and its hold does not adapt, so it also costs
// files that change hands only once.
inline constexpr std::chrono::milliseconds kDefaultMinHold{10};

struct TableOptions {
  std::chrono::milliseconds ttl{5000};
  std::chrono::milliseconds grace{10000};
  std::chrono::milliseconds min_hold = kDefaultMinHold;  // rule 8; 0: off
  // The service ran before (its state directory held an epoch): open a grace
  // period for reclaims. A first start has nothing to reclaim.
  bool restarted = false;
};

const char* mode_name(LeaseMode mode);

class LeaseTable {
 public:
  // new_epoch returns an epoch greater than every epoch used before (the
  // service persists it); called now and whenever the 32-bit counter of the
  // current epoch runs out.
  LeaseTable(TableOptions options, std::function<uint32_t()> new_epoch, TimePoint now);

  // A node (re)connects, listing the leases it holds. One result per entry of
  // `held`, in order. Cancels the node's queued requests (it sends them again).
  std::vector<ReclaimResult> register_node(const NodeId& node, const std::vector<Lease>& held, TimePoint now);
  // Queues a request; a kGrant or kRefuse for request_id follows, now or later.
  void acquire(const NodeId& node, uint64_t request_id, const FileId& file, LeaseMode mode, TimePoint now);
  // The node now holds `mode` of grant `generation` (answer to a revoke).
  void ack(const NodeId& node, const FileId& file, uint64_t generation, LeaseMode mode, TimePoint now);
  void release(const NodeId& node, const FileId& file, uint64_t generation, TimePoint now);
  void heartbeat(const NodeId& node, TimePoint now);
  // The node's stream closed: its queued requests go, its leases stay.
  void disconnect(const NodeId& node, TimePoint now);
  // Expires nodes, ends the grace period, and sends the revokes whose
  // holder's minimum hold ended (rule 8). Every other call ticks first.
  void tick(TimePoint now);
  // When tick() next has something to do.
  [[nodiscard]] TimePoint next_deadline() const;
  // When the first minimum hold that keeps a revoke back ends (the part of
  // next_deadline() that can move earlier on an acquire); max() when none.
  [[nodiscard]] TimePoint next_hold_end() const;
  std::vector<Action> take_actions();
  // Files whose holders changed since the last call (what a replicated
  // service writes to its store; holders() gives their state).
  std::set<FileId> take_dirty() { return std::exchange(dirty_, {}); }
  // A new leader's start: leases recorded by earlier leaders (in etcd).
  // Their nodes count as seen now: they expire after the TTL unless they
  // register (and list the lease, rule 6) or send a message. Call before
  // anything else; generations must be below this table's epoch.
  void restore(const std::vector<std::pair<NodeId, Lease>>& held, TimePoint now);

  [[nodiscard]] bool registered(const NodeId& node) const { return nodes_.contains(node); }
  [[nodiscard]] bool in_grace() const { return grace_; }
  [[nodiscard]] TimePoint grace_end() const { return grace_end_; }
  [[nodiscard]] uint32_t epoch() const { return epoch_; }
  [[nodiscard]] std::chrono::milliseconds ttl() const { return options_.ttl; }
  // node -> (mode, generation) for file.
  [[nodiscard]] std::map<NodeId, Lease> holders(const FileId& file) const;
  [[nodiscard]] std::size_t waiting(const FileId& file) const;

 private:
  struct Holder {
    LeaseMode mode = abi::kLeaseNone;
    uint64_t generation = 0;
    bool revoking = false;
    LeaseMode revoke_to = abi::kLeaseNone;    // valid when revoking
    TimePoint granted_at = TimePoint::min();  // start of the hold (rule 8); min(): none
  };
  struct Request {
    NodeId node;
    uint64_t id = 0;
    LeaseMode mode = abi::kLeaseNone;
  };
  struct File {
    std::map<NodeId, Holder> holders;
    std::deque<Request> queue;
  };
  struct Node {
    TimePoint last_seen;
    std::set<FileId> files;  // files where it holds a lease or queues a request
  };

  void touch(const NodeId& node, TimePoint now);
  void pump(const FileId& file);
  void grant(const FileId& file, File& f, const Request& r);
  void revoke(const FileId& file, const NodeId& node, Holder& h, LeaseMode to);
  void drop_holder(const FileId& file, const NodeId& node);
  void cancel_requests(const NodeId& node);
  void expire(const NodeId& node);
  void forget_if_unused(const FileId& file, const NodeId& node);
  ReclaimResult reconcile(const NodeId& node, const Lease& claim, std::set<FileId>& changed);
  ReclaimResult reclaim(const NodeId& node, const Lease& claim);
  uint64_t next_generation();
  [[nodiscard]] uint64_t last_generation() const { return (uint64_t{epoch_} << 32) | counter_; }

  TableOptions options_;
  std::function<uint32_t()> new_epoch_;
  uint32_t epoch_ = 0;
  uint32_t counter_ = 0;
  bool grace_ = false;
  TimePoint grace_end_;
  TimePoint now_;  // of the latest tick()
  std::map<FileId, File> files_;
  // Files whose head request waits for a holder's minimum hold, and when the
  // first such hold ends (rule 8). pump() keeps it.
  std::map<FileId, TimePoint> held_back_;
  std::map<NodeId, Node> nodes_;
  std::set<NodeId> expired_;  // nodes expired since the service started (for refusal reasons)
  std::vector<Action> actions_;
  std::set<FileId> dirty_;  // files whose holders changed (take_dirty())
};

}  // namespace dfuse::leased
