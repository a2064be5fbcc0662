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
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

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

// "" when the key and value size are acceptable.
std::string check_key_value(std::string_view key, std::size_t value_size);

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

// Cumulative acknowledgements from the tail, and the head's wait for them.
// Thread-safe.
class AckTracker {
 public:
  enum class Wait { kAcked, kTimeout, kFailed };

  // Records that every entry <= seq is applied at the tail (monotonic).
  void ack(std::uint64_t seq);
  // The chain is broken: every waiter, present and future, fails with why.
  void fail(const std::string& why);
  Wait wait(std::uint64_t seq, std::chrono::steady_clock::time_point deadline);

  std::uint64_t acked() const;
  std::string failure() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t acked_ = 0;  // guarded by mu_
  std::string failure_;      // guarded by mu_; "" while healthy
};

}  // namespace fastpath::rubble
