// SPDX-License-Identifier: GPL-2.0-only
// Threads for work that may block for long (lease service calls), so that the
// FUSE worker threads never wait on the network. The pool grows while every
// thread is busy (up to `max_threads`): a task blocked on the lease service
// never holds up another task, which could otherwise wait on the first one
// through another node.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dfuse::dfused {

class TaskPool {
 public:
  TaskPool(std::string name, unsigned max_threads);
  ~TaskPool();  // runs the queued tasks, then joins
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  void submit(std::function<void()> task);
  // Waits for every task queued so far and stops the threads.
  void stop();

 private:
  void run();

  const std::string name_;
  const unsigned max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // protected by mu_
  unsigned idle_ = 0;                        // protected by mu_
  bool stopping_ = false;                    // protected by mu_
  std::vector<std::thread> threads_;         // protected by mu_
};

}  // namespace dfuse::dfused
