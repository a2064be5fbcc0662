// SPDX-License-Identifier: GPL-2.0
// Starts a whole chain of rubble-node processes on loopback (for tests and
// rubble-bench): tail first, then middles, then the head, each on a free port
// reported through its --ready-file.  Stops them on destruction.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "chain.h"
#include "fastpath/process.h"

namespace fastpath::rubble {

struct ChainSpec {
  std::string node_binary;  // path of rubble-node
  std::string dir;          // per node: DIR/NAME (--db), DIR/NAME.log, DIR/NAME.pool (rubble)
  Mode mode = Mode::kBaseline;
  int replicas = 2;  // nodes after the head: 2 = head, middle, tail
  std::uint64_t sst_size = 8 << 20;
  std::uint32_t pool_slots = 64;
  std::string chain_id;
  std::vector<std::string> extra_args;  // appended to every node's command line
};

struct NodeProcess {
  Role role = Role::kTail;
  std::string name;  // head, middle1.., tail
  pid_t pid = -1;
  std::string addr;
  std::string log;
};

// Starts binary with args in the background, stdout and stderr going to
// log (fastpath/process.h).
using fastpath::spawn_process;
// Spawns rubble-node with args, its output going to log; waits until it
// writes ready_file.  Throws std::runtime_error with the end of its log when
// it exits first or takes longer than timeout_s.
NodeProcess spawn_node(const std::string& binary, const std::vector<std::string>& args, const std::string& log,
                       const std::string& ready_file, double timeout_s = 60);
// SIGTERM, then SIGKILL after grace_s.  Returns the exit status (waitpid form).
int stop_node(pid_t pid, double grace_s = 5);
// Runs binary with args to the end, output to log.  Returns its exit code
// (-1 when it was killed after timeout_s or died of a signal).
int run_command(const std::string& binary, const std::vector<std::string>& args, const std::string& log,
                double timeout_s);
// SIGKILL (a crash: no clean-up at all), then reaps it.
void kill_node(pid_t pid);
// The end of a log file (fastpath/process.h).
using fastpath::log_tail;

class Chain {
 public:
  explicit Chain(ChainSpec spec);
  ~Chain();
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  const std::vector<NodeProcess>& nodes() const { return nodes_; }  // head first
  const std::string& head() const { return nodes_.front().addr; }
  const std::string& tail() const { return nodes_.back().addr; }
  void stop();
  // Stops node i (0 = head) alone.
  void stop_node_at(std::size_t i);
  // Starts the head again with the same command line (after stop_node_at(0)).
  void restart_head();
  // Kills node i (0 = head) with SIGKILL.
  void kill_node_at(std::size_t i);
  // Starts a new node as a tail with an empty --db (and a new pool), not yet
  // in the chain (rubble-ctl add puts it there).  Stopped with the chain.
  NodeProcess start_spare(const std::string& name);
  // Addresses of every node started, head first, spares last.
  std::vector<std::string> addresses() const;

 private:
  std::vector<std::string> node_args(Role role, const std::string& name, const std::string& next) const;
  std::string pool_path(const std::string& name) const { return spec_.dir + "/" + name + ".pool"; }

  ChainSpec spec_;
  std::vector<NodeProcess> nodes_;
  std::vector<NodeProcess> spares_;
  std::vector<std::string> head_args_;
};

}  // namespace fastpath::rubble
