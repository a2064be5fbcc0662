// SPDX-License-Identifier: GPL-2.0
// Chain replication rules that need no network: roles and modes, which node
// serves which client request, request validation, the replica side of one
// replication stream (Hello first, then entries strictly in sequence), and
// the head's wait for the tail's acknowledgement.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rubble.pb.h"

namespace fastpath::rubble {

enum class Role { kHead, kMiddle, kTail };
enum class Mode { kBaseline, kRubble };

std::optional<Role> parse_role(std::string_view text);
std::optional<Mode> parse_mode(std::string_view text);
const char* to_string(Role role);
const char* to_string(Mode mode);

// "" when addr is HOST:PORT (an IPv6 HOST in brackets, PORT 0 to 65535);
// otherwise why not, naming option.
std::string check_address(std::string_view addr, std::string_view option);

enum class ClientOp { kPut, kDelete, kGet };

// "" when a node with this role serves op; otherwise why not and where to go.
std::string check_client_op(Role role, ClientOp op);

inline constexpr std::size_t kMaxKeyBytes = 64 * 1024;
inline constexpr std::size_t kMaxValueBytes = 8 << 20;
inline constexpr std::uint32_t kMaxScanKeys = 10000;
inline constexpr std::size_t kMaxWriteOps = 10000;       // ops in one Write call
inline constexpr std::size_t kMaxWriteBytes = 48 << 20;  // keys and values in one Write call

// "" when the key and value size are acceptable.
std::string check_key_value(std::string_view key, std::size_t value_size);
// "" when a Write call's ops are acceptable; else which op and why.
std::string check_write_ops(const std::vector<wire::KvOp>& ops);

// What a replica knows about itself when a Hello arrives.
struct LocalIdentity {
  std::string chain_id;  // "" when this node has not joined a chain yet
  Mode mode = Mode::kBaseline;
  std::uint64_t applied_seq = 0;  // last entry applied here
  std::uint64_t slot_size = 0;    // rubble: slot size of this node's pool
  std::uint64_t epoch = 0;        // epoch of the view this node holds (0: none yet)
};

struct HelloInfo {
  std::string chain_id;
  std::string mode;
  std::uint32_t position = 0;
  std::uint64_t head_seq = 0;  // last entry the sender has
  std::uint64_t slot_size = 0;
  std::uint64_t epoch = 0;  // the sender's view; 0 while a chain is being formed
  bool reset = false;       // rubble: a (re)started head sends everything again
  bool join = false;        // the receiver joins as a new tail
};

// The replica side of one replication stream.  Not thread-safe: one stream
// has one reader.
//
//   kAwaitHello --on_hello ok--> kStreaming --on_entry out of order--> kClosed
//        |   \--on_hello ok, baseline join--> kAwaitSnapshot --on_snapshot_done--> kStreaming
//        \--on_entry / bad hello--> kClosed
//
// After the Hello the sender resends what the receiver lacks: the session
// expects the entry after the receiver's last applied one (after a reset or
// a rubble join: after the sender's last; after a baseline join: after the
// snapshot).
class ReplicaSession {
 public:
  enum class State { kAwaitHello, kAwaitSnapshot, kStreaming, kClosed };

  explicit ReplicaSession(LocalIdentity local) : local_(std::move(local)) {}

  // Checks chain id, mode, position, epoch, sequence and slot size.
  // adopted() tells whether the node joins the chain now (it had no chain id).
  std::string on_hello(const HelloInfo& hello);
  // Baseline join: the snapshot (state at entry seq) is complete.
  std::string on_snapshot_done(std::uint64_t seq);
  // Accepts only the next sequence number; anything else closes the session.
  std::string on_entry(std::uint64_t seq);

  State state() const { return state_; }
  std::uint64_t next_seq() const { return next_seq_; }
  std::uint32_t position() const { return position_; }
  bool adopted() const { return adopted_; }

 private:
  std::string refuse(std::string why);

  LocalIdentity local_;
  State state_ = State::kAwaitHello;
  std::uint64_t next_seq_ = 0;
  std::uint32_t position_ = 0;
  bool adopted_ = false;
};

// Cumulative acknowledgements from the tail, and the head's wait for them:
// blocking (wait) or with a callback (when_acked, for writes that hold no
// thread while they wait).  Thread-safe; callbacks run outside the lock, on
// the thread that calls when_acked, ack, fail or expire.
class AckTracker {
 public:
  enum class Wait { kAcked, kTimeout, kFailed };
  using Callback = std::function<void(Wait)>;

  // Records that every entry <= seq is applied at the tail (monotonic), and
  // completes the callbacks waiting for it, in sequence order.
  void ack(std::uint64_t seq);
  // The chain is broken: every waiter, present and future, fails with why.
  void fail(const std::string& why);
  Wait wait(std::uint64_t seq, std::chrono::steady_clock::time_point deadline);
  // Calls done exactly once: kAcked once every entry <= seq is acknowledged
  // (at once if it already is), kFailed when the chain breaks, kTimeout from
  // expire() once deadline has passed.
  void when_acked(std::uint64_t seq, std::chrono::steady_clock::time_point deadline, Callback done);
  // Times out the callbacks whose deadline is before now.
  void expire(std::chrono::steady_clock::time_point now);

  std::uint64_t acked() const;
  std::string failure() const;
  std::size_t waiting() const;

 private:
  struct Waiter {
    std::chrono::steady_clock::time_point deadline;
    Callback done;
  };

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t acked_ = 0;                       // guarded by mu_
  std::string failure_;                           // guarded by mu_; "" while healthy
  std::multimap<std::uint64_t, Waiter> waiters_;  // guarded by mu_: by sequence number
};

// The head's replication window: at most `limit` batches are on their way
// down the chain (sent, not yet acknowledged by the tail).  Writes that come
// meanwhile wait at the head and leave together in the next batch, so the
// number of replication messages (and acknowledgements) per write falls as
// the load rises, in both modes alike; a client is still answered only once
// the tail has its write.  Thread-safe.
class SendWindow {
 public:
  explicit SendWindow(std::size_t limit) : limit_(limit < 1 ? 1 : limit) {}

  // Waits until a batch may be sent, the window is closed, or deadline.
  // True when a batch may be sent.
  bool wait_open(std::chrono::steady_clock::time_point deadline);
  // A batch whose last entry is last_seq went down the chain.
  void sent(std::uint64_t last_seq);
  // Every entry <= seq is acknowledged by the tail.
  void acked(std::uint64_t seq);
  // Wakes every waiter; wait_open returns false from now on.
  void close();
  std::size_t in_flight() const;
  bool closed() const;
  std::size_t limit() const { return limit_; }

 private:
  const std::size_t limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::uint64_t> in_flight_;  // guarded by mu_: last entry of each unacknowledged batch
  std::uint64_t acked_ = 0;              // guarded by mu_
  bool closed_ = false;                  // guarded by mu_
};

}  // namespace fastpath::rubble
