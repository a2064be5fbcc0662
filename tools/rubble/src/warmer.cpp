// SPDX-License-Identifier: GPL-2.0
#include "warmer.h"

#include <algorithm>
#include <vector>

#include "procstat.h"

namespace fastpath::rubble {

namespace {
constexpr std::size_t kChunk = 256 << 10;
}

SlotWarmer::SlotWarmer(const Pool& pool, SlotTable& table) : pool_(pool), table_(table) {
  thread_ = std::thread([this] { run(); });
}

SlotWarmer::~SlotWarmer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SlotWarmer::read_served() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto last = last_read_.load(std::memory_order_relaxed);
  const bool idle = last == 0 || now - last > std::chrono::steady_clock::duration(kReadWindow).count();
  if (!idle) {
    last_read_.store(now, std::memory_order_relaxed);
    return;
  }
  // Reads resume: warm every live file, not only those opened from now on.
  if (!last_read_.compare_exchange_strong(last, now)) return;  // another reader saw it first
  {
    std::lock_guard lock(mu_);
    warm_all_ = true;
  }
  cv_.notify_all();
}

void SlotWarmer::opened(const std::string& name) {
  const auto last = last_read_.load(std::memory_order_relaxed);
  if (last == 0) return;
  const auto since = std::chrono::steady_clock::now().time_since_epoch().count() - last;
  if (since > std::chrono::steady_clock::duration(kReadWindow).count()) return;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) queue_.pop_front();
    queue_.push_back(name);
  }
  cv_.notify_all();
}

void SlotWarmer::drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return stop_ || (queue_.empty() && !busy_ && !warm_all_); });
}

void SlotWarmer::cancel() {
  std::unique_lock lock(mu_);
  queue_.clear();
  warm_all_ = false;
  abort_ = true;
  cv_.wait(lock, [this] { return !busy_; });
  abort_ = false;
}

void SlotWarmer::run() {
  name_thread("rb-warmer");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || warm_all_ || !queue_.empty(); });
    if (stop_) return;
    if (warm_all_) {
      warm_all_ = false;
      queue_.clear();
      for (auto& [name, file] : table_.files()) queue_.push_back(name);
      while (queue_.size() > kMaxQueued) queue_.pop_front();
      continue;
    }
    const std::string name = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    warm(name);
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void SlotWarmer::warm(const std::string& name) {
  const auto file = table_.open_live_reader(name);
  if (!file) return;
  std::vector<char> buf(std::min<std::uint64_t>(kChunk, file->size));
  std::uint64_t done = 0;
  while (done < file->size) {
    const std::size_t n = std::min<std::uint64_t>(buf.size(), file->size - done);
    if (pool_.read_cached(file->slot, done, n, buf.data()) != static_cast<long>(n)) break;  // the Get reports errors
    done += n;
    {
      std::lock_guard lock(mu_);
      if (stop_ || abort_) break;
    }
  }
  table_.close_reader(name);
  bytes_warmed_ += done;
  files_warmed_++;
}

}  // namespace fastpath::rubble
