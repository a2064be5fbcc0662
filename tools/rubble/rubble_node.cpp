// SPDX-License-Identifier: GPL-2.0
//
// rubble-node: one replica of a RubbleDB chain (chain-replicated RocksDB).
// Writes enter at the head and flow down the chain in sequence order; a
// client is answered once the tail has applied its write; reads go to the
// tail.  Start a chain from the tail:
//
//   $ rubble-node --role tail   --listen 127.0.0.1:7002 --db /tmp/r/tail &
//   $ rubble-node --role middle --listen 127.0.0.1:7001 --next 127.0.0.1:7002 --db /tmp/r/mid &
//   $ rubble-node --role head   --listen 127.0.0.1:7000 --next 127.0.0.1:7001 --db /tmp/r/head &
//   rubble-node: head serving on 127.0.0.1:7000 (baseline mode, chain 3f2a9c0d...)
//
// In --mode rubble only the head flushes and compacts; it writes each
// finished SST into a slot of every replica's --pool (see README.md).
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "fastpath/cli.h"
#include "node.h"

namespace {

constexpr const char* kTool = "rubble-node";

struct Args {
  fastpath::rubble::NodeOptions o;
  std::string role = "tail", mode = "baseline", sst_size = "8M";
  double connect_timeout = 5, ack_timeout = 10, catch_up_ms = 50;
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("--role", a.role, "head, middle or tail")->required();
  app.add_option("--listen", a.o.listen, "address to serve on, 127.0.0.1:PORT (port 0: any free port)")->required();
  app.add_option("--next", a.o.next, "successor's address (head and middle)");
  app.add_option("--db", a.o.db, "data directory (created if missing)")->required();
  app.add_option("--mode", a.mode, "baseline (every node compacts) or rubble (only the head does)")
      ->capture_default_str();
  app.add_option("--chain-id", a.o.chain_id, "chain name; a node refuses data of another chain (head default: random)");
  app.add_option("--pool", a.o.pool, "rubble replica: SST pool, a file (created if missing) or a block device");
  app.add_option("--pool-slots", a.o.pool_slots, "rubble replica: slots in a new pool file (default 64)");
  app.add_option("--replica-pool", a.o.replica_pools, "rubble head: each replica's pool, in chain order (repeat)");
  app.add_option("--find-pools", a.o.find_pools,
                 "rubble: where this machine reaches other replicas' pools, a path or glob such as '/dev/nvme*n1' "
                 "(NVMe-oF namespaces; repeat); matched by pool id when this node takes over as head or, as head, "
                 "adds a replica; the pool path in the chain's view is tried last");
  app.add_option("--sst-size", a.sst_size, "SST target and memtable size; a slot is this + 1 MiB")
      ->check(fastpath::cli::size_validator())
      ->capture_default_str();
  app.add_option("--connect-timeout", a.connect_timeout, "seconds to wait for the successor")->capture_default_str();
  app.add_option("--ack-timeout", a.ack_timeout, "seconds a write may wait for the tail")->capture_default_str();
  app.add_option("--catch-up-interval", a.catch_up_ms,
                 "rubble replicas: at least this many milliseconds between catch-ups of the secondary RocksDB")
      ->capture_default_str();
  app.add_flag("!--no-warm-cache", a.o.warm_cache,
               "rubble tail: do not read the SSTs it opens into the page cache while it serves reads");
  app.add_option("--max-inflight", a.o.max_inflight,
                 "head: replication batches the tail has not acknowledged before the next one waits (writes that "
                 "arrive meanwhile go together in the next batch)")
      ->capture_default_str();
  app.add_option("--ready-file", a.o.ready_file, "write the bound address here once serving");
}

std::string finish_options(Args& a) {
  const auto role = fastpath::rubble::parse_role(a.role);
  if (!role) return "--role must be head, middle or tail, not '" + a.role + "'";
  const auto mode = fastpath::rubble::parse_mode(a.mode);
  if (!mode) return "--mode must be baseline or rubble, not '" + a.mode + "'";
  a.o.role = *role;
  a.o.mode = *mode;
  a.o.sst_size = fastpath::cli::parse_size(a.sst_size);
  a.o.connect_timeout = std::chrono::milliseconds(static_cast<long>(a.connect_timeout * 1000));
  a.o.ack_timeout = std::chrono::milliseconds(static_cast<long>(a.ack_timeout * 1000));
  a.o.catch_up_interval = std::chrono::microseconds(static_cast<long>(a.catch_up_ms * 1000));
  return "";
}

int wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rubble-node: one replica of a RubbleDB chain (chain-replicated RocksDB)"};
  Args a;
  add_options(app, a);
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  if (auto e = finish_options(a); !e.empty()) {
    fastpath::cli::error(kTool, e);
    return 2;
  }
  // Signals are taken by sigwait() below; every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  try {
    fastpath::rubble::Node node(a.o);
    const std::string addr = node.start();
    std::cerr << kTool << ": " << a.role << " serving on " << addr << " (" << a.mode << " mode)" << std::endl;
    if (!a.o.ready_file.empty()) fastpath::cli::write_ready_file(a.o.ready_file, addr);
    wait_for_signal();
    node.stop();
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
  return 0;
}
