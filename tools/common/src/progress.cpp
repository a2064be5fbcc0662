// SPDX-License-Identifier: GPL-2.0
#include "fastpath/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace fastpath {

using Clock = std::chrono::steady_clock;

Progress::Progress(std::string label, std::uint64_t total, std::ostream& out, bool terminal)
    : label_(std::move(label)),
      total_(total),
      out_(out),
      terminal_(terminal),
      start_(Clock::now()),
      last_draw_(start_) {}

Progress::Progress(std::string label, std::uint64_t total)
    : Progress(std::move(label), total, std::cerr, ::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  finish();
}

void Progress::add(std::uint64_t n) {
  const std::uint64_t done = done_.fetch_add(n, std::memory_order_relaxed) + n;
  if (terminal_) {
    // Redraws are cosmetic: skip one rather than wait for another thread.
    std::unique_lock lock(mu_, std::try_to_lock);
    if (!lock.owns_lock() || finished_) return;
    const auto now = Clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(done, false);
    return;
  }
  // Log mode: every decile line must appear exactly once.
  const unsigned decile = total_ ? static_cast<unsigned>(std::min(done, total_) * 10 / total_) : 0;
  if (decile == 0 || decile >= 10 || decile <= last_decile_.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(mu_);
  if (finished_ || decile <= last_decile_.load(std::memory_order_relaxed)) return;
  last_decile_.store(decile, std::memory_order_relaxed);
  draw(done, false);
}

void Progress::finish() {
  std::lock_guard lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(done_.load(std::memory_order_relaxed), true);
}

void Progress::draw(std::uint64_t done, bool final) {
  const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
  const double frac = total_ ? static_cast<double>(std::min(done, total_)) / static_cast<double>(total_) : 1.0;
  char line[256];
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, ' ');
    std::snprintf(line, sizeof(line), "\r%s [%s] %3d%% %llu/%llu %.1fs", label_.c_str(), bar.c_str(),
                  static_cast<int>(frac * 100), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total_), secs);
    out_ << line;
    if (final) out_ << '\n';
  } else {
    std::snprintf(line, sizeof(line), "%s: %d%% (%llu/%llu) %.1fs%s\n", label_.c_str(), static_cast<int>(frac * 100),
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), secs,
                  final ? " done" : "");
    out_ << line;
  }
  out_.flush();
}

}  // namespace fastpath
