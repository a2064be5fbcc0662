// SPDX-License-Identifier: GPL-2.0
// The head's slot allocator.  Slot i of every replica's pool holds the same
// SST, so one allocator serves the whole chain.  Each slot carries one bit
// per replica: allocate() sets every bit (all replicas will hold the file),
// a replica's release clears its bit, and a slot is free again only when no
// bit is left.  Freed slots queue up behind older free ones, so a slot is
// reused as late as possible.  Replicas come and go with the chain's
// membership: add_replica() gives a new one a bit that holds nothing yet,
// hold() marks what it receives, remove_replica() drops a failed one's bits
// (freeing what only it held).  Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace fastpath::rubble {

class SlotAllocator {
 public:
  static constexpr std::uint32_t kMaxReplicas = 64;

  // Throws std::invalid_argument for 0 slots or 0 / more than 64 replicas.
  SlotAllocator(std::uint32_t slots, std::uint32_t replicas);
  // A head taking over: replica r (0-based) holds held[r].  Throws like the
  // constructor above, or for a slot outside the pool.
  SlotAllocator(std::uint32_t slots, const std::vector<std::vector<std::uint32_t>>& held);

  // A free slot, now held by every replica; nullopt when none is free.
  std::optional<std::uint32_t> try_allocate();
  // Waits for a free slot until deadline or close().
  std::optional<std::uint32_t> allocate(std::chrono::steady_clock::time_point deadline);
  // Replica (0-based) no longer uses slot.  "" or why the release is invalid
  // (unknown replica or slot, or a slot the replica does not hold).
  std::string release(std::uint32_t replica, std::uint32_t slot);
  // Frees a slot that was allocated but never reached the replicas.
  void abandon(std::uint32_t slot);
  // A new replica (its bit), holding nothing; nullopt when 64 are in use.
  std::optional<std::uint32_t> add_replica();
  // Replica no longer exists: its bits go, slots nobody else holds are free.
  void remove_replica(std::uint32_t replica);
  // Replica now holds slot too (a joining replica received its file).
  std::string hold(std::uint32_t replica, std::uint32_t slot);
  // Replica holds at most slots (what it reports, after releases were lost
  // with a failed node): its other bits go, slots left without a holder are
  // free.  Bits are only cleared, never set: a report is older than the
  // releases that arrive while it travels.  Returns how many slots it gave
  // back.
  std::uint32_t keep_only(std::uint32_t replica, const std::vector<std::uint32_t>& slots);
  void close();

  std::uint32_t slots() const { return static_cast<std::uint32_t>(holders_.size()); }
  std::uint32_t replicas() const;
  std::uint32_t in_use() const;
  std::uint64_t holders(std::uint32_t slot) const;

 private:
  std::optional<std::uint32_t> take_locked();
  void free_locked(std::uint32_t slot);

  mutable std::mutex mu_;
  std::uint64_t all_ = 0;  // guarded by mu_: bits of the replicas that exist
  std::condition_variable freed_;
  std::vector<std::uint64_t> holders_;  // guarded by mu_: bit r = replica r holds the slot
  std::deque<std::uint32_t> free_;      // guarded by mu_
  bool closed_ = false;                 // guarded by mu_
};

}  // namespace fastpath::rubble
