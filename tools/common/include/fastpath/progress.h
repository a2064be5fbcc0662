// SPDX-License-Identifier: GPL-2.0
// Progress reporting for long-running work.
//
// On a terminal it redraws one line ("label [#####     ] 45% 4500/10000 1.2s")
// at most every 100 ms; elsewhere (CI logs) it prints a line at every 10%.
// add() may be called from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <string>

namespace fastpath {

class Progress {
 public:
  Progress(std::string label, std::uint64_t total, std::ostream& out, bool terminal);
  // Writes to stderr; terminal mode when stderr is a tty.
  Progress(std::string label, std::uint64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(std::uint64_t n = 1);
  void finish();
  std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

 private:
  void draw(std::uint64_t done, bool final);

  std::string label_;
  std::uint64_t total_;
  std::ostream& out_;
  bool terminal_;
  std::atomic<std::uint64_t> done_{0};
  std::atomic<unsigned> last_decile_{0};  // written under mu_
  std::mutex mu_;                         // protects the fields below and output
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool finished_ = false;
};

}  // namespace fastpath
