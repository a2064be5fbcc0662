// SPDX-License-Identifier: GPL-2.0
#include "warmer.h"

#include <algorithm>
#include <set>

#include "procstat.h"

namespace fastpath::rubble {

namespace {
constexpr std::size_t kChunk = 256 << 10;
}

SlotWarmer::SlotWarmer(const Pool& pool, SlotTable& table, std::chrono::milliseconds read_window)
    : pool_(pool),
      table_(table),
      read_window_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(read_window).count()),
      buf_(kChunk) {
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

bool SlotWarmer::reading(std::chrono::steady_clock::rep now) const {
  const auto last = last_read_.load(std::memory_order_relaxed);
  return last != 0 && now - last <= read_window_;
}

void SlotWarmer::read_served() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  if (reading(now)) {
    last_read_.store(now, std::memory_order_relaxed);
    return;
  }
  // Reads begin or resume: warm every open file that is not warm.
  std::lock_guard lock(mu_);
  last_read_.store(now, std::memory_order_relaxed);
  if (!enabled_ || warm_all_) return;
  warm_all_ = true;
  cv_.notify_all();
}

void SlotWarmer::opened(const std::string& name) {
  std::lock_guard lock(mu_);
  opened_[name] = false;  // a second open dropped the pages again
  if (!enabled_ || !reading(std::chrono::steady_clock::now().time_since_epoch().count())) return;
  if (queue_.size() >= kMaxQueued) queue_.pop_front();
  queue_.push_back(name);
  cv_.notify_all();
}

void SlotWarmer::enable() {
  std::lock_guard lock(mu_);
  enabled_ = true;
}

void SlotWarmer::cancel() {
  std::unique_lock lock(mu_);
  enabled_ = false;
  opened_.clear();
  queue_.clear();
  warm_all_ = false;
  abort_ = true;
  cv_.wait(lock, [this] { return !busy_; });
  abort_ = false;
}

void SlotWarmer::drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return stop_ || (queue_.empty() && !busy_ && !warm_all_); });
}

void SlotWarmer::run() {
  name_thread("rb-warmer");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || warm_all_ || !queue_.empty(); });
    if (stop_) return;
    if (warm_all_) {
      warm_all_ = false;
      std::set<std::string> live;
      for (auto& [name, file] : table_.files()) live.insert(name);
      queue_.clear();
      for (auto it = opened_.begin(); it != opened_.end();) {
        if (!live.count(it->first)) {
          it = opened_.erase(it);  // the head deleted it
          continue;
        }
        if (!it->second) queue_.push_back(it->first);
        ++it;
      }
      while (queue_.size() > kMaxQueued) queue_.pop_front();
      cv_.notify_all();
      continue;
    }
    const std::string name = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    const bool warmed = warm(name);
    lock.lock();
    busy_ = false;
    if (const auto it = opened_.find(name); warmed && it != opened_.end()) it->second = true;
    cv_.notify_all();
  }
}

// Whether the whole file was read.
bool SlotWarmer::warm(const std::string& name) {
  const auto file = table_.open_live_reader(name);
  if (!file) return false;
  std::uint64_t done = 0;
  while (done < file->size) {
    const std::size_t n = std::min<std::uint64_t>(buf_.size(), file->size - done);
    if (pool_.read_cached(file->slot, done, n, buf_.data()) != static_cast<long>(n)) break;  // Gets report errors
    done += n;
    std::lock_guard lock(mu_);
    if (stop_ || abort_) break;
  }
  table_.close_reader(name);
  bytes_warmed_ += done;
  return done == file->size;
}

}  // namespace fastpath::rubble
