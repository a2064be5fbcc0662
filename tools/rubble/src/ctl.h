// SPDX-License-Identifier: GPL-2.0
// Chain membership from the outside: what rubble-ctl does, as a library (the
// tests drive it in-process).
//
// Nobody but rubble-ctl changes the view.  A change is one new view with the
// next epoch, pushed with Reconfigure first to the node that leaves (so that
// a live one stops serving before anyone else moves on), then to every
// member from the tail to the head (so that each node's new successor
// already holds the view when the node connects to it).
//
// Failure detection (Watcher, `rubble-ctl watch`): a heartbeat is a State
// call to every member every interval; a member that has not answered for
// failure_timeout is removed.  Members that hold an older view, or whose
// state does not match the view yet (a head that is not accepting writes, a
// stream to the successor that is down), get the current view again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "rubble.pb.h"

namespace fastpath::rubble {

// Reconfigure one node.  "" or why not.
std::string reconfigure(const std::string& addr, const wire::View& view, std::chrono::milliseconds timeout,
                        wire::NodeState* state = nullptr);

// Pushes view: first to removed (if not empty; errors ignored: it may be
// dead), then to every member from the tail to the head, except skip.
// Returns the errors of members, if any (each still got its push).
std::string push_view(const wire::View& view, const std::string& removed, const std::string& skip = "",
                      std::ostream* log = nullptr);

// Removes node from the chain that any of seeds belongs to.  "" or why not.
std::string remove_node(const std::vector<std::string>& seeds, const std::string& node, std::ostream* log = nullptr,
                        wire::View* result = nullptr);

// Adds the node at addr (started as a tail with an empty --db) as the new
// tail: it joins behind the current tail, receives the chain's state
// (rubble: the head writes the live SSTs into its pool; baseline: the tail
// sends a snapshot of its database), catches up, then takes over as tail.
// Gives up (and removes it again) after timeout.  "" or why not.
std::string add_node(const std::vector<std::string>& seeds, const std::string& addr, std::chrono::milliseconds timeout,
                     std::ostream* log = nullptr, wire::View* result = nullptr);

class Watcher {
 public:
  struct Options {
    std::vector<std::string> seeds;
    std::chrono::milliseconds interval{100};
    std::chrono::milliseconds failure_timeout{2000};
    std::ostream* log = nullptr;
  };

  explicit Watcher(Options options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Runs rounds on a thread until stop().
  void start();
  void stop();
  // One round: heartbeats, at most one removal, repairs.  Returns what it
  // did ("" when nothing).
  std::string round();
  // Nodes removed so far.
  std::vector<std::string> removed() const;
  wire::View view() const;

 private:
  void say(const std::string& line);

  Options options_;
  mutable std::mutex mu_;
  wire::View view_;                                                         // guarded by mu_
  std::map<std::string, std::chrono::steady_clock::time_point> last_seen_;  // guarded by mu_
  std::vector<std::string> removed_;                                        // guarded by mu_
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = true;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace fastpath::rubble
