// SPDX-License-Identifier: GPL-2.0
// Warms a rubble tail's page cache with the SSTs its secondary opens, while
// the tail serves reads.
//
// A baseline replica writes its own SSTs through its page cache, so its reads
// of freshly compacted data find them there.  A rubble replica's SSTs arrive
// in its pool from the head, with O_DIRECT (over NVMe-oF: another machine's
// writes), and opening one drops whatever the page cache held of its slot
// (pool.h); without warming, every read of a block the head has just
// compacted goes to the device.  The warmer reads SSTs once, through the same
// page cache, on its own thread.
//
// Only while enabled (the tail's secondary is open) and reads are served (a
// Get or Scan in the last second): a tail that serves no reads (a load) and
// a middle spend no I/O on it.  When reads begin, or resume after a pause,
// every open SST not warmed since it was opened is read; then each SST the
// secondary opens while reads are served.  A file the head has deleted is
// skipped; one being read holds its slot (SlotTable reader) so the slot
// cannot be reused under it.  At most kMaxQueued files wait; older ones are
// dropped first.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pool.h"
#include "slot_fs.h"

namespace fastpath::rubble {

class SlotWarmer {
 public:
  static constexpr std::size_t kMaxQueued = 16384;
  static constexpr std::chrono::milliseconds kReadWindow{1000};

  // read_window: reads count as being served this long after the last one.
  SlotWarmer(const Pool& pool, SlotTable& table, std::chrono::milliseconds read_window = kReadWindow);
  ~SlotWarmer();
  SlotWarmer(const SlotWarmer&) = delete;
  SlotWarmer& operator=(const SlotWarmer&) = delete;

  // The tail answered a read (cheap: one clock read and one store, unless
  // reads were idle).
  void read_served();
  // The secondary opened the SST name (its slot's cached pages were just
  // dropped): warm it if reads are being served.
  void opened(const std::string& name);
  // The secondary is open: reads may warm from now on.
  void enable();
  // Disables warming, forgets the files, drops the queue and waits for the
  // file being warmed, stopping its reads: before the secondary closes and
  // the slot table may be reset (a slot may be reused afterwards).
  void cancel();
  // Waits until every queued file is warmed (tests).
  void drain();

  std::uint64_t bytes_warmed() const { return bytes_warmed_.load(); }

 private:
  bool reading(std::chrono::steady_clock::rep now) const;
  void run();
  bool warm(const std::string& name);

  const Pool& pool_;
  SlotTable& table_;
  const std::chrono::steady_clock::rep read_window_;          // steady_clock ticks
  std::atomic<std::chrono::steady_clock::rep> last_read_{0};  // 0: no read yet
  std::atomic<std::uint64_t> bytes_warmed_{0};
  std::vector<char> buf_;  // the warmer thread's
  std::mutex mu_;
  std::condition_variable cv_;
  bool enabled_ = false;                // guarded by mu_
  std::map<std::string, bool> opened_;  // guarded by mu_: SSTs the secondary opened -> warmed since
  std::deque<std::string> queue_;       // guarded by mu_
  bool warm_all_ = false;               // guarded by mu_: reads resumed, queue every file not warm
  bool busy_ = false;                   // guarded by mu_: warming one taken from the queue
  bool abort_ = false;                  // guarded by mu_: cancel() waits for the file being warmed
  bool stop_ = false;                   // guarded by mu_
  std::thread thread_;
};

}  // namespace fastpath::rubble
