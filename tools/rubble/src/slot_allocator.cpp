// SPDX-License-Identifier: GPL-2.0
#include "slot_allocator.h"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace fastpath::rubble {

SlotAllocator::SlotAllocator(std::uint32_t slots, std::uint32_t replicas)
    : all_(replicas >= 64 ? ~0ULL : (1ULL << replicas) - 1), holders_(slots, 0) {
  if (slots == 0) throw std::invalid_argument("a slot pool needs at least one slot");
  if (replicas == 0 || replicas > kMaxReplicas) throw std::invalid_argument("1 to 64 replicas per chain");
  for (std::uint32_t s = 0; s < slots; ++s) free_.push_back(s);
}

SlotAllocator::SlotAllocator(std::uint32_t slots, const std::vector<std::vector<std::uint32_t>>& held)
    : SlotAllocator(slots, static_cast<std::uint32_t>(held.size())) {
  for (std::uint32_t r = 0; r < held.size(); ++r)
    for (auto slot : held[r]) {
      if (slot >= slots)
        throw std::invalid_argument("replica " + std::to_string(r + 1) + " holds slot " + std::to_string(slot) +
                                    ", outside the pool of " + std::to_string(slots) + " slots");
      holders_[slot] |= 1ULL << r;
    }
  std::erase_if(free_, [&](std::uint32_t s) { return holders_[s] != 0; });
}

std::optional<std::uint32_t> SlotAllocator::take_locked() {
  if (free_.empty() || all_ == 0) return std::nullopt;
  const std::uint32_t slot = free_.front();
  free_.pop_front();
  holders_[slot] = all_;
  return slot;
}

void SlotAllocator::free_locked(std::uint32_t slot) {
  holders_[slot] = 0;
  free_.push_back(slot);
  freed_.notify_one();
}

std::optional<std::uint32_t> SlotAllocator::try_allocate() {
  std::lock_guard lock(mu_);
  return take_locked();
}

std::optional<std::uint32_t> SlotAllocator::allocate(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  freed_.wait_until(lock, deadline, [&] { return closed_ || !free_.empty(); });
  if (closed_) return std::nullopt;
  return take_locked();
}

std::string SlotAllocator::release(std::uint32_t replica, std::uint32_t slot) {
  std::lock_guard lock(mu_);
  if (replica >= kMaxReplicas || !(all_ & (1ULL << replica)))
    return "release from unknown replica " + std::to_string(replica + 1);
  if (slot >= holders_.size()) return "release of slot " + std::to_string(slot) + " outside the pool";
  const std::uint64_t bit = 1ULL << replica;
  if (!(holders_[slot] & bit))
    return "replica " + std::to_string(replica + 1) + " released slot " + std::to_string(slot) + " it does not hold";
  holders_[slot] &= ~bit;
  if (holders_[slot] == 0) free_locked(slot);
  return "";
}

void SlotAllocator::abandon(std::uint32_t slot) {
  std::lock_guard lock(mu_);
  if (slot < holders_.size() && holders_[slot] != 0) free_locked(slot);
}

std::optional<std::uint32_t> SlotAllocator::add_replica() {
  std::lock_guard lock(mu_);
  if (all_ == ~0ULL) return std::nullopt;
  const auto r = static_cast<std::uint32_t>(std::countr_one(all_));
  all_ |= 1ULL << r;
  return r;
}

void SlotAllocator::remove_replica(std::uint32_t replica) {
  std::lock_guard lock(mu_);
  if (replica >= kMaxReplicas) return;
  const std::uint64_t bit = 1ULL << replica;
  all_ &= ~bit;
  for (std::uint32_t s = 0; s < holders_.size(); ++s) {
    if (!(holders_[s] & bit)) continue;
    holders_[s] &= ~bit;
    if (holders_[s] == 0) free_locked(s);
  }
}

std::string SlotAllocator::hold(std::uint32_t replica, std::uint32_t slot) {
  std::lock_guard lock(mu_);
  if (replica >= kMaxReplicas || !(all_ & (1ULL << replica))) return "unknown replica " + std::to_string(replica + 1);
  if (slot >= holders_.size()) return "slot " + std::to_string(slot) + " is outside the pool";
  if (holders_[slot] == 0) std::erase(free_, slot);
  holders_[slot] |= 1ULL << replica;
  return "";
}

std::uint32_t SlotAllocator::keep_only(std::uint32_t replica, const std::vector<std::uint32_t>& slots) {
  std::lock_guard lock(mu_);
  if (replica >= kMaxReplicas || !(all_ & (1ULL << replica))) return 0;
  const std::uint64_t bit = 1ULL << replica;
  std::vector<bool> keep(holders_.size(), false);
  for (auto s : slots)
    if (s < keep.size()) keep[s] = true;
  std::uint32_t gave_back = 0;
  for (std::uint32_t s = 0; s < holders_.size(); ++s) {
    if (!keep[s] && (holders_[s] & bit)) {
      holders_[s] &= ~bit;
      ++gave_back;
      if (holders_[s] == 0) free_locked(s);
    }
  }
  return gave_back;
}

void SlotAllocator::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  freed_.notify_all();
}

std::uint32_t SlotAllocator::replicas() const {
  std::lock_guard lock(mu_);
  return static_cast<std::uint32_t>(std::popcount(all_));
}

std::uint32_t SlotAllocator::in_use() const {
  std::lock_guard lock(mu_);
  return static_cast<std::uint32_t>(holders_.size() - free_.size());
}

std::uint64_t SlotAllocator::holders(std::uint32_t slot) const {
  std::lock_guard lock(mu_);
  return slot < holders_.size() ? holders_[slot] : 0;
}

}  // namespace fastpath::rubble
