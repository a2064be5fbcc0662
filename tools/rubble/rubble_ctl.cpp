// SPDX-License-Identifier: GPL-2.0
//
// rubble-ctl: the membership of a RubbleDB chain.  Shows the chain, removes
// a node, adds a node as the new tail, and watches the chain (heartbeats
// every 100 ms; a node silent for --failure-timeout is removed and the chain
// re-forms around it).  --chain names any member (or several); the newest
// view any of them holds is the chain.
//
//   $ rubble-ctl --chain 127.0.0.1:7000 show
//   chain 69743f06..., baseline mode, view epoch 1: 127.0.0.1:7000 -> 127.0.0.1:7001 -> 127.0.0.1:7002
//   node            role    applied  acked  lag  reads  successor             log  problem
//   127.0.0.1:7000  head    1200     1200   0    no     127.0.0.1:7001        0
//   ...
//   $ rubble-ctl --chain 127.0.0.1:7000 watch &        # removes failed nodes
//   $ rubble-node --role tail --listen 127.0.0.1:7003 --db /tmp/rb/new &
//   $ rubble-ctl --chain 127.0.0.1:7000 add 127.0.0.1:7003
//   rubble-ctl: adding 127.0.0.1:7003 behind 127.0.0.1:7002: epoch 3: ... -> 127.0.0.1:7003 (joining)
//   rubble-ctl: 127.0.0.1:7003 caught up; it takes over as tail: epoch 4: ...
//   $ rubble-ctl --chain 127.0.0.1:7000 remove 127.0.0.1:7001
//
// --etcd HOST:PORT (etcd's client address): every view change is committed in
// etcd (compare-and-swap on the revision it was built on) before any node
// hears of it, so rubble-ctl processes changing one chain at the same time
// cannot make two views of one epoch; several `watch` processes may run,
// one leads (a leased key in etcd) and the others take over when it stops
// or dies.  See src/ctl.h.
//
//   $ rubble-ctl --etcd 127.0.0.1:2379 --chain 127.0.0.1:7000 watch &   # on two machines
//   rubble-ctl: watch: leading (host-a/4242): ...
//   rubble-ctl: watch: standing by, host-a/4242 leads
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <sstream>

#include "client.h"
#include "ctl.h"
#include "fastpath/cli.h"
#include "fastpath/report.h"
#include "view.h"

namespace {

constexpr const char* kTool = "rubble-ctl";

using namespace fastpath::rubble;

std::vector<std::string> split(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ','))
      if (!part.empty()) out.push_back(part);
  }
  return out;
}

// With --etcd: the committed view and who leads the watchers, for show.
struct EtcdShow {
  std::string view;  // "epoch N: ..." or "none"
  std::int64_t revision = 0;
  std::string watcher;  // "" if none leads
  std::string error;
};

EtcdShow etcd_state(EtcdViews* store, const std::string& chain) {
  EtcdShow s;
  if (!store || chain.empty()) return s;
  wire::View v;
  if (s.error = store->read(chain, &v, &s.revision); !s.error.empty()) return s;
  s.view = s.revision ? describe(v) : "none";
  etcd::KeyValue kv;
  bool found = false;
  if (s.error = store->client().get(EtcdViews::watcher_key(chain), &kv, &found); !s.error.empty()) return s;
  if (found) s.watcher = kv.value;
  return s;
}

int show(const std::vector<std::string>& seeds, const std::string& json, EtcdViews* etcd) {
  wire::View v;
  std::vector<wire::NodeState> states;
  if (auto e = ChainClient::fetch_view(seeds, &v, std::chrono::seconds(2), &states); !e.empty()) {
    fastpath::cli::error(kTool, e);
    return 1;
  }
  std::uint64_t head_seq = 0;
  std::string chain, mode;
  for (const auto& st : states)
    if (st.addr() == head_of(v)) head_seq = st.applied_seq(), chain = st.chain_id(), mode = st.mode();
  fastpath::Table t({"node", "role", "applied", "acked", "lag", "reads", "successor", "log", "problem"});
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : v.members()) {
    const auto it = std::find_if(states.begin(), states.end(), [&](const auto& s) { return s.addr() == m.addr(); });
    if (it == states.end()) {
      t.add_row({m.addr(), "unreachable", "", "", "", "", "", "", "does not answer"});
      members.push_back({{"addr", m.addr()}, {"reachable", false}});
      continue;
    }
    const auto& st = *it;
    const std::uint64_t lag = head_seq > st.applied_seq() ? head_seq - st.applied_seq() : 0;
    std::string succ = st.successor().empty() ? "-" : st.successor();
    if (!st.successor().empty() && !st.successor_connected()) succ += " (down)";
    t.add_row({m.addr(), st.role(), std::to_string(st.applied_seq()), std::to_string(st.acked_seq()),
               std::to_string(lag), st.serving_reads() ? "yes" : "no", succ, std::to_string(st.log_entries()),
               st.problem()});
    members.push_back({{"addr", m.addr()},
                       {"reachable", true},
                       {"role", st.role()},
                       {"applied_seq", st.applied_seq()},
                       {"acked_seq", st.acked_seq()},
                       {"lag", lag},
                       {"serving_reads", st.serving_reads()},
                       {"accepting_writes", st.accepting_writes()},
                       {"successor", st.successor()},
                       {"successor_connected", st.successor_connected()},
                       {"log_entries", st.log_entries()},
                       {"view_epoch", st.view().epoch()},
                       {"pool", st.pool()},
                       {"pool_id", st.pool_id()},
                       {"problem", st.problem()}});
  }
  const auto in_etcd = etcd_state(etcd, chain);
  if (!json.empty()) {
    nlohmann::json doc = {{"chain_id", chain},  {"mode", mode},       {"epoch", v.epoch()},
                          {"head", head_of(v)}, {"tail", tail_of(v)}, {"members", members}};
    if (etcd)
      doc["etcd"] = {{"endpoint", etcd->endpoint()},
                     {"view", in_etcd.view},
                     {"revision", in_etcd.revision},
                     {"watcher", in_etcd.watcher},
                     {"error", in_etcd.error}};
    fastpath::write_json(doc, json);
    if (json == "-") return 0;
  }
  std::cout << "chain " << chain << ", " << mode << " mode, view " << describe(v) << "\n";
  if (etcd && in_etcd.error.empty())
    std::cout << "etcd " << etcd->endpoint() << ": view " << in_etcd.view << " (revision " << in_etcd.revision
              << "), watcher " << (in_etcd.watcher.empty() ? "none" : in_etcd.watcher + " leads") << "\n";
  else if (etcd)
    std::cout << "etcd " << etcd->endpoint() << ": " << in_etcd.error << "\n";
  t.print(std::cout);
  return 0;
}

int watch(const std::vector<std::string>& seeds, double interval_ms, double failure_s, const std::string& etcd,
          const std::string& name) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Watcher::Options o;
  o.seeds = seeds;
  o.interval = std::chrono::milliseconds(static_cast<long>(interval_ms));
  o.failure_timeout = std::chrono::milliseconds(static_cast<long>(failure_s * 1000));
  o.log = &std::cerr;
  o.etcd = etcd;
  o.name = name;
  Watcher w(o);
  wire::View v;
  if (auto e = ChainClient::fetch_view(seeds, &v); !e.empty()) {
    fastpath::cli::error(kTool, e);
    return 1;
  }
  std::cerr << kTool << ": watching " << describe(v) << " (heartbeat every " << interval_ms << " ms, failure after "
            << failure_s << " s"
            << (etcd.empty()
                    ? ""
                    : "; views committed in etcd at " + etcd + ", one leader among the watchers, this one " + w.name())
            << ")" << std::endl;
  w.start();
  int sig = 0;
  sigwait(&set, &sig);
  w.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rubble-ctl: show a RubbleDB chain, remove a node, add a node as tail, or watch for failures"};
  app.require_subcommand(1);
  std::vector<std::string> chain;
  app.add_option("--chain", chain, "address of any member of the chain (repeat or comma-separate for several)")
      ->required();
  std::string etcd_addr;
  app.add_option("--etcd", etcd_addr,
                 "HOST:PORT of etcd (its client URL): commit every view change there first (compare-and-swap), "
                 "and elect one leader among several watchers");
  std::string json, node, name;
  double timeout_s = 300, interval_ms = 100, failure_s = 2;
  auto* show_cmd = app.add_subcommand("show", "members, roles, sequence numbers, lag, and what each node reports");
  show_cmd->add_option("--json", json, "also write the chain's state as JSON to this file ('-': stdout only)");
  auto* remove_cmd = app.add_subcommand("remove", "take NODE out of the chain; the chain re-forms around it");
  remove_cmd->add_option("node", node, "address of the node")->required();
  auto* add_cmd = app.add_subcommand(
      "add", "add NODE (a rubble-node started as tail with an empty --db) as the new tail; waits until it serves");
  add_cmd->add_option("node", node, "address of the new node")->required();
  add_cmd->add_option("--timeout", timeout_s, "seconds to wait for it to catch up, then give up")
      ->capture_default_str();
  auto* watch_cmd = app.add_subcommand("watch", "send heartbeats; remove a node that stops answering (until Ctrl-C)");
  watch_cmd->add_option("--interval", interval_ms, "milliseconds between heartbeats")->capture_default_str();
  watch_cmd->add_option("--failure-timeout", failure_s, "seconds without an answer before a node is removed")
      ->capture_default_str();
  watch_cmd->add_option("--name", name, "with --etcd: this watcher in etcd's leader key (default: HOST/PID)");
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  const auto seeds = split(chain);
  try {
    // etcd first: with --etcd nothing may change without it.
    std::unique_ptr<EtcdViews> etcd;
    if (!etcd_addr.empty()) {
      etcd = std::make_unique<EtcdViews>(etcd_addr);
      if (auto e = etcd->check(); !e.empty()) {
        fastpath::cli::error(kTool, e);
        return 1;
      }
    }
    if (*show_cmd) return show(seeds, json, etcd.get());
    if (*watch_cmd) return watch(seeds, interval_ms, failure_s, etcd_addr, name);
    std::string e;
    wire::View v;
    if (*remove_cmd)
      e = remove_node(seeds, node, &std::cerr, &v, etcd.get());
    else
      e = add_node(seeds, node, std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)), &std::cerr, &v,
                   etcd.get());
    if (!e.empty()) {
      fastpath::cli::error(kTool, e);
      return 1;
    }
    std::cout << "view " << describe(v) << "\n";
    return 0;
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
}
