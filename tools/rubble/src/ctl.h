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
//
// With etcd (`rubble-ctl --etcd HOST:PORT`, EtcdViews; without it all of
// this is skipped and one rubble-ctl at a time must change the chain):
//
// - The chain's view is committed in etcd at /fastpath/rubble/<chain id>/view
//   (a serialized View) before it is pushed to any node: change_view reads
//   the view and its revision, builds the next view, and commits it with a
//   compare-and-swap on that revision.  A change whose commit fails (someone
//   committed another view meanwhile) pushes nothing; it is built again on
//   the view that won (a removal of a node that is gone by then reports
//   that).  So no two different views of one epoch are ever pushed by
//   rubble-ctl with --etcd.
// - The base of a change is etcd's view, unless the nodes hold a newer epoch
//   (they were reconfigured without --etcd, or a restarted head built the
//   next view in-band): then the nodes' newest view.  etcd holding a newer
//   view than the nodes means a change was committed but not pushed
//   everywhere (its rubble-ctl died): the next change builds on it, and the
//   leading watcher pushes it.  etcd holding nothing yet for the chain: the
//   first change commits on top of the nodes' newest view (revision 0: only
//   if still absent).
// - Several watchers may watch one chain; they elect a leader through the
//   key /fastpath/rubble/<chain id>/watcher, created if absent and attached
//   to the creator's lease (TTL: the failure timeout in whole seconds, at
//   least 2; kept alive by a thread).  Every round each watcher sends its
//   heartbeats and campaigns (one transaction); only the one whose lease
//   holds the key removes failed nodes and repairs, the others stand by.  The key vanishes when the
//   leader stops (its lease is revoked) or dies (the lease expires after
//   its TTL); the next campaign of another watcher wins.  The leader also
//   pushes a committed view the nodes do not hold yet, and tells a node
//   that answers but was left out of the committed view that it left.
// - Safety does not rest on the election: two watchers that both think they
//   lead (a lease that expired while its holder was slow) still commit
//   through the compare-and-swap, so their changes are serialized.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "fastpath/etcd.h"
#include "rubble.pb.h"

namespace fastpath::rubble {

// The shared etcd client (tools/etcd) under the name rubble has always used.
namespace etcd = fastpath::etcd;

// The chain's view in etcd (rubble-ctl --etcd).
class EtcdViews {
 public:
  explicit EtcdViews(std::string endpoint);
  etcd::Client& client() { return client_; }
  const std::string& endpoint() const { return client_.endpoint(); }
  // /fastpath/rubble/<chain_id>/view and .../watcher.
  static std::string view_key(const std::string& chain_id);
  static std::string watcher_key(const std::string& chain_id);

  // Whether etcd answers.  "" or why not (its address, and what to do).
  std::string check() { return client_.check(); }
  // The committed view and the revision it was committed at (revision 0
  // and an empty view: nothing committed for this chain yet).
  std::string read(const std::string& chain_id, wire::View* view, std::int64_t* revision);
  // Commits view if the key is still at revision (0: nothing committed
  // yet).  Otherwise *committed is false and *current (if given) is the
  // view committed meanwhile.  "" or why not (etcd did not answer).
  std::string commit(const std::string& chain_id, const wire::View& view, std::int64_t revision, bool* committed,
                     wire::View* current = nullptr);

  // For tests: runs before every commit (to let another change win a race).
  std::function<void()> before_commit;

 private:
  etcd::Client client_;
};

// Builds a view from the chain's current one.  "" or why not.
using MakeView = std::function<std::string(const wire::View& base, wire::View* out)>;

// One view change, agreed before anything is pushed.  Without etcd, the base
// is known (if given) or the newest view the nodes that seeds lead to hold,
// and *out = make(base).  With etcd, the base is the committed view (or the
// nodes' newest, see above) and *out is committed with a compare-and-swap;
// a conflict builds it again on the view that won (a few times).  On
// success *base is what the change was built on and *out is the view to
// push.  "" or why not; nothing is pushed here.
std::string change_view(const std::vector<std::string>& seeds, EtcdViews* etcd, const MakeView& make, wire::View* base,
                        wire::View* out, std::ostream* log = nullptr, const wire::View* known = nullptr,
                        std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Reconfigure one node.  "" or why not.
std::string reconfigure(const std::string& addr, const wire::View& view, std::chrono::milliseconds timeout,
                        wire::NodeState* state = nullptr);

// Pushes view: first to removed (if not empty; errors ignored: it may be
// dead), then to every member from the tail to the head, except skip.
// Returns the errors of members, if any (each still got its push).  With
// newer_ok (views committed in etcd), a member that refuses because it
// already holds a newer epoch is no error: a later committed change
// overtook this one.
std::string push_view(const wire::View& view, const std::string& removed, const std::string& skip = "",
                      std::ostream* log = nullptr, bool newer_ok = false);

// Removes node from the chain that any of seeds belongs to.  "" or why not.
// With etcd, the change is committed there first (see above).
std::string remove_node(const std::vector<std::string>& seeds, const std::string& node, std::ostream* log = nullptr,
                        wire::View* result = nullptr, EtcdViews* etcd = nullptr);

// Adds the node at addr (started as a tail with an empty --db) as the new
// tail: it joins behind the current tail, receives the chain's state
// (rubble: the head writes the live SSTs into its pool; baseline: the tail
// sends a snapshot of its database), catches up, then takes over as tail.
// Gives up (and removes it again) after timeout.  With etcd, each of its
// view changes (joining, joined, given up) is committed there first.  "" or
// why not.
std::string add_node(const std::vector<std::string>& seeds, const std::string& addr, std::chrono::milliseconds timeout,
                     std::ostream* log = nullptr, wire::View* result = nullptr, EtcdViews* etcd = nullptr);

class Watcher {
 public:
  struct Options {
    std::vector<std::string> seeds;
    std::chrono::milliseconds interval{100};
    std::chrono::milliseconds failure_timeout{2000};
    std::ostream* log = nullptr;
    // HOST:PORT of etcd: commit views there and elect one leader among the
    // chain's watchers (see above).  "": none, this watcher acts alone.
    std::string etcd;
    // This watcher in the leader key (others' "standing by, NAME leads");
    // "": HOST/PID (and .N for a further watcher in the same process).
    std::string name;
  };

  explicit Watcher(Options options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Runs rounds on a thread until stop().
  void start();
  // Stops the rounds; with etcd, gives up the lead (another watcher takes
  // over at its next round).
  void stop();
  // One round: heartbeats, (with etcd) a campaign, then, if leading, at
  // most one removal and repairs.  Returns what it did ("" when nothing).
  std::string round();
  // Nodes removed so far.
  std::vector<std::string> removed() const;
  wire::View view() const;
  // With etcd: whether this watcher led in its last round, and who did.
  bool leading() const;
  std::string leader() const;
  const std::string& name() const { return options_.name; }

 private:
  void say(const std::string& line);
  // Campaigns for chain_id; whether this watcher leads now.
  bool lead(const std::string& chain_id);
  void etcd_error(const std::string& e);

  Options options_;
  mutable std::mutex mu_;
  wire::View view_;                                                         // guarded by mu_
  std::map<std::string, std::chrono::steady_clock::time_point> last_seen_;  // guarded by mu_
  std::vector<std::string> removed_;                                        // guarded by mu_
  bool leading_ = false;                                                    // guarded by mu_
  std::string leader_;                                                      // guarded by mu_
  std::mutex round_mu_;                                                     // one round at a time; guards what follows
  std::unique_ptr<EtcdViews> etcd_;
  std::unique_ptr<etcd::Election> election_;  // once the chain id is known
  std::string etcd_error_;                    // the last one said
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = true;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace fastpath::rubble
