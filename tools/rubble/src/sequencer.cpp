// SPDX-License-Identifier: GPL-2.0
#include "sequencer.h"

namespace fastpath::rubble {

namespace {

thread_local bool t_quiet = false;

}  // namespace

Sequencer::Quiet::Quiet() {
  t_quiet = true;
}

Sequencer::Quiet::~Quiet() {
  t_quiet = false;
}

std::uint64_t Sequencer::submit(wire::Entry entry) {
  const std::size_t bytes = entry.ByteSizeLong();
  std::unique_lock lock(mu_);
  not_full_.wait(lock, [&] { return closed_ || queued_bytes_ < max_queued_bytes_; });
  if (closed_) return 0;
  const std::uint64_t seq = ++last_seq_;
  entry.set_seq(seq);
  queued_bytes_ += bytes;
  queue_.push_back({std::move(entry), bytes});
  lock.unlock();
  if (!t_quiet) not_empty_.notify_one();
  return seq;
}

bool Sequencer::take(std::vector<wire::Entry>& out, std::size_t max_batch_bytes, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  not_empty_.wait_for(lock, wait, [&] { return closed_ || !queue_.empty(); });
  std::size_t taken = 0;
  while (!queue_.empty() && (out.empty() || taken < max_batch_bytes)) {
    const std::size_t bytes = queue_.front().bytes;
    taken += bytes;
    queued_bytes_ -= bytes;
    out.push_back(std::move(queue_.front().entry));
    queue_.pop_front();
  }
  const bool more = !closed_ || !queue_.empty() || !out.empty();
  lock.unlock();
  if (taken) not_full_.notify_all();
  return more;
}

bool Sequencer::wait_queued(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  not_empty_.wait_for(lock, wait, [&] { return closed_ || !queue_.empty(); });
  return !queue_.empty();
}

bool Sequencer::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::uint64_t Sequencer::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

void Sequencer::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

TakeBatch take_batch(Sequencer& sequencer, SendWindow& window, std::vector<wire::Entry>& out,
                     std::size_t max_batch_bytes, std::chrono::milliseconds wait) {
  if (!window.wait_open(std::chrono::steady_clock::now() + wait))
    return window.closed() ? TakeBatch::kClosed : TakeBatch::kWindowShut;
  if (!sequencer.take(out, max_batch_bytes, wait)) return TakeBatch::kClosed;
  if (out.empty()) return TakeBatch::kWaiting;
  window.sent(out.back().seq());
  return TakeBatch::kBatch;
}

}  // namespace fastpath::rubble
