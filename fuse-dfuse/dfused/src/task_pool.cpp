// SPDX-License-Identifier: GPL-2.0-only
#include "task_pool.h"

#include <pthread.h>

namespace dfuse::dfused {

TaskPool::TaskPool(std::string name, unsigned max_threads) : name_(std::move(name)), max_threads_(max_threads) {}

TaskPool::~TaskPool() {
  stop();
}

void TaskPool::submit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  queue_.push_back(std::move(task));
  if (idle_ == 0 && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { run(); });
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  } else {
    cv_.notify_one();
  }
}

void TaskPool::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void TaskPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping, nothing left
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace dfuse::dfused
