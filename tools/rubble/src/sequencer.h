// SPDX-License-Identifier: GPL-2.0
// The head's ordered outbox: every chain entry gets the next sequence number
// and waits here, in order, until the sender thread ships it downstream.
// submit() blocks while more than max_queued_bytes wait (back-pressure from a
// slow chain).  Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "chain.h"
#include "rubble.pb.h"

namespace fastpath::rubble {

class Sequencer {
 public:
  Sequencer(std::uint64_t last_seq, std::size_t max_queued_bytes)
      : last_seq_(last_seq), max_queued_bytes_(max_queued_bytes) {}

  // Gives entry the next sequence number and queues it.  Returns that number,
  // or 0 when the sequencer is closed (the entry is dropped).
  std::uint64_t submit(wire::Entry entry);
  // Waits up to `wait` for entries, then moves queued entries (in order) into
  // out until about max_batch_bytes.  Returns false once closed and drained.
  bool take(std::vector<wire::Entry>& out, std::size_t max_batch_bytes, std::chrono::milliseconds wait);
  // Waits up to `wait` until an entry is queued.  False on timeout, and once
  // closed with nothing queued.
  bool wait_queued(std::chrono::milliseconds wait);
  // The last sequence number handed out.
  std::uint64_t last_seq() const;
  void close();
  bool closed() const;

  // While one lives, the entries its thread submits wake no taker: that
  // thread takes and ships them itself (the rubble head's writer, which
  // saves a thread hand-off per batch).
  class Quiet {
   public:
    Quiet();
    ~Quiet();
    Quiet(const Quiet&) = delete;
    Quiet& operator=(const Quiet&) = delete;
  };

 private:
  struct Queued {
    wire::Entry entry;
    std::size_t bytes;
  };

  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Queued> queue_;      // guarded by mu_
  std::size_t queued_bytes_ = 0;  // guarded by mu_
  std::uint64_t last_seq_;        // guarded by mu_
  bool closed_ = false;           // guarded by mu_
  const std::size_t max_queued_bytes_;
};

// The head's next replication batch: waits up to `wait` for the window to
// open (fewer batches unacknowledged than its limit), then takes what is
// queued (in order, up to about max_batch_bytes) into out and records it as
// sent.  kWaiting: the window stayed shut or nothing was queued.
enum class TakeBatch { kBatch, kWaiting, kWindowShut, kClosed };
TakeBatch take_batch(Sequencer& sequencer, SendWindow& window, std::vector<wire::Entry>& out,
                     std::size_t max_batch_bytes, std::chrono::milliseconds wait);

}  // namespace fastpath::rubble
