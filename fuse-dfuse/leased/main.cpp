// SPDX-License-Identifier: GPL-2.0-only
//
// dfuse-leased: the DFUSE lease service. Grants per-file leases to the dfused
// of every node (many readers or one writer), revokes conflicting holders
// before it grants, and expires the leases of a node that stops sending
// heartbeats. The rules are at the top of lease_table.h.
//
//   $ dfuse-leased --state-dir /var/lib/dfuse-leased --ttl 5 --verbose
//   dfuse-leased: epoch 3 (restart: reclaims accepted for 10 s), serving on 127.0.0.1:7070, TTL 5 s, minimum hold 10 ms
//   12:00:01.410 dfuse-leased: node n1:4711 registered, holding 1 leases (1 accepted)
//   12:00:02.002 dfuse-leased: grant node=n1:4711 file=1234 mode=write generation=0x300000001
//   12:00:02.300 dfuse-leased: revoke node=n1:4711 file=1234 to=read generation=0x300000001
//   12:00:02.310 dfuse-leased: ack node=n1:4711 file=1234 generation=0x300000001 now=read
//   12:00:09.000 dfuse-leased: node n2:815 expired (no message for 5000 ms); its leases are gone
//
// Every start bumps the epoch kept in --state-dir, so generations keep
// growing across restarts; after a restart, nodes reclaim the leases they
// hold during the grace period and nothing new is granted before it ends.
//
// With --etcd, two or three services run (on different machines) and one
// leads: the epoch and every grant are kept in etcd, a standby takes over
// when the leader's etcd lease lapses, and nodes given every service's
// address (dfused --lease-service A,B,C) move to the new leader and keep
// their leases (server.h, etcd_store.h):
//
//   $ dfuse-leased --listen 10.0.0.2:7070 --etcd 10.0.0.9:2379
//   dfuse-leased: standing by on 10.0.0.2:7070, etcd 10.0.0.9:2379 (prefix /dfuse-leased, lease TTL 2 s), TTL 5 s,
//   minimum hold 10 ms 12:00:00.120 dfuse-leased: standing by; 10.0.0.1:7070 leads (etcd at 10.0.0.9:2379) 12:00:41.870
//   dfuse-leased: leading on 10.0.0.2:7070: epoch 7, 212 leases of 3 nodes restored from etcd at 10.0.0.9:2379 in 4 ms
#include <signal.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "fastpath/cli.h"
#include "server.h"

namespace {

constexpr const char* kTool = "dfuse-leased";

struct Args {
  std::string listen = "127.0.0.1:7070";
  double ttl_s = 5;
  double grace_s = -1;
  long min_hold_ms = dfuse::leased::kDefaultMinHold.count();
  std::string state_dir = "/var/lib/dfuse-leased";
  std::string ready_file;
  bool verbose = false;
  std::string etcd;
  std::string etcd_prefix = "/dfuse-leased";
  std::string advertise;
  long etcd_ttl_s = 2;
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("--listen", a.listen, "address to serve on, HOST:PORT (port 0: any free port)")->capture_default_str();
  app.add_option("--ttl", a.ttl_s, "seconds without a heartbeat after which a node loses its leases")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("--grace", a.grace_s,
                 "seconds after a restart during which nodes reclaim their leases and nothing new is granted "
                 "(default: 2 x TTL)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--min-hold-ms", a.min_hold_ms,
                 "a lease is revoked for a conflicting request only once its holder had it this many milliseconds "
                 "(the request waits meanwhile), so two nodes taking turns on one file batch their cached I/O instead "
                 "of paying a revoke per operation; 0: revoke at once")
      ->check(CLI::Range(0L, 60000L))
      ->capture_default_str();
  app.add_option("--state-dir", a.state_dir, "directory for the persistent epoch (created if missing)")
      ->capture_default_str();
  app.add_option("--ready-file", a.ready_file, "write the bound address here once serving");
  app.add_option("--etcd", a.etcd,
                 "HOST:PORT of etcd: run as one of several services, of which one leads; the epoch and every grant "
                 "are kept in etcd (--state-dir is not used)");
  app.add_option("--etcd-prefix", a.etcd_prefix, "etcd key prefix of this cluster's services")->capture_default_str();
  app.add_option("--advertise", a.advertise,
                 "with --etcd: the address nodes reach this service at (default: the --listen address)");
  app.add_option("--etcd-ttl", a.etcd_ttl_s,
                 "with --etcd: seconds of the leader's etcd lease; a dead leader is replaced this long after its "
                 "last renewal (etcd may raise it to its minimum)")
      ->check(CLI::Range(1L, 600L))
      ->capture_default_str();
  app.add_flag("-v,--verbose", a.verbose, "log every registration, grant, revoke, ack and release");
}

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(std::llround(seconds * 1000)));
}

int wait_for_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfuse-leased: the DFUSE lease service (per-file read/write leases for dfused nodes)"};
  Args a;
  add_options(app, a);
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  // Signals are taken by sigwait() below; every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  dfuse::leased::ServerOptions o;
  o.listen = a.listen;
  o.ttl = to_ms(a.ttl_s);
  o.grace = a.grace_s < 0 ? std::chrono::milliseconds(-1) : to_ms(a.grace_s);
  o.min_hold = std::chrono::milliseconds(a.min_hold_ms);
  o.state_dir = a.state_dir;
  o.verbose = a.verbose;
  o.etcd = a.etcd;
  o.etcd_prefix = a.etcd_prefix;
  o.advertise = a.advertise;
  o.etcd_ttl = std::chrono::seconds(a.etcd_ttl_s);
  try {
    dfuse::leased::LeaseServer server(o);
    const std::string addr = server.start();
    if (a.etcd.empty()) {
      std::cerr << kTool << ": epoch " << server.epoch();
      if (server.restarted() && server.grace().count() > 0)
        std::cerr << " (restart: reclaims accepted for " << server.grace().count() / 1000.0 << " s)";
      std::cerr << ", serving on " << addr;
    } else {
      std::cerr << kTool << ": standing by on " << (a.advertise.empty() ? addr : a.advertise) << ", etcd " << a.etcd
                << " (prefix " << a.etcd_prefix << ", lease TTL " << a.etcd_ttl_s << " s)";
    }
    std::cerr << ", TTL " << a.ttl_s << " s, minimum hold " << a.min_hold_ms << " ms" << std::endl;
    if (!a.ready_file.empty()) fastpath::cli::write_ready_file(a.ready_file, addr);
    const int sig = wait_for_signal(set);
    std::cerr << kTool << ": " << strsignal(sig) << ", shutting down" << std::endl;
    server.stop();
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
  return 0;
}
