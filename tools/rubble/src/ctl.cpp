// SPDX-License-Identifier: GPL-2.0
#include "ctl.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "client.h"
#include "downstream.h"
#include "fastpath/report.h"
#include "view.h"

namespace fastpath::rubble {

namespace {

constexpr auto kReconfigureTimeout = std::chrono::seconds(120);  // a rubble takeover reopens a database

void say(std::ostream* log, const std::string& line) {
  if (log) *log << "rubble-ctl: " << line << std::endl;
}

std::string status_text(const grpc::Status& st) {
  return st.error_message().empty() ? describe(st) : st.error_message();
}

// A conflict means another change won; more than a few in a row mean a
// runaway writer of the key.
constexpr int kCommitAttempts = 10;

// The chain id of the nodes that answered, preferring members of view (a
// node about to join may have none yet).
std::string chain_of(const std::vector<wire::NodeState>& states, const wire::View& view) {
  for (const auto& st : states)
    if (!st.chain_id().empty() && find_member(view, st.addr()) >= 0) return st.chain_id();
  for (const auto& st : states)
    if (!st.chain_id().empty()) return st.chain_id();
  return "";
}

}  // namespace

EtcdViews::EtcdViews(std::string endpoint) : client_(std::move(endpoint)) {}

std::string EtcdViews::view_key(const std::string& chain_id) {
  return "/fastpath/rubble/" + chain_id + "/view";
}

std::string EtcdViews::watcher_key(const std::string& chain_id) {
  return "/fastpath/rubble/" + chain_id + "/watcher";
}

std::string EtcdViews::read(const std::string& chain_id, wire::View* view, std::int64_t* revision) {
  view->Clear();
  *revision = 0;
  etcd::KeyValue kv;
  bool found = false;
  const auto key = view_key(chain_id);
  if (auto e = client_.get(key, &kv, &found); !e.empty()) return e;
  if (!found) return "";
  if (!view->ParseFromString(kv.value) || view->epoch() == 0)
    return "etcd at " + endpoint() + ": " + key + " does not hold a view of the chain (" +
           std::to_string(kv.value.size()) + " bytes): something else writes under /fastpath/rubble/; stop it " +
           "and delete the key";
  *revision = kv.mod_revision;
  return "";
}

std::string EtcdViews::commit(const std::string& chain_id, const wire::View& view, std::int64_t revision,
                              bool* committed, wire::View* current) {
  etcd::PutResult r;
  if (auto e = client_.put_if(view_key(chain_id), view.SerializeAsString(), etcd::Guard::kModRevision, revision, &r);
      !e.empty())
    return e;
  *committed = r.done;
  if (current) {
    current->Clear();
    if (!r.done && r.found) current->ParseFromString(r.current.value);
  }
  return "";
}

std::string change_view(const std::vector<std::string>& seeds, EtcdViews* etcd, const MakeView& make, wire::View* base,
                        wire::View* out, std::ostream* log, const wire::View* known,
                        std::chrono::milliseconds timeout) {
  if (!etcd) {
    wire::View v;
    if (known)
      v = *known;
    else if (auto e = ChainClient::fetch_view(seeds, &v, timeout); !e.empty())
      return e;
    if (auto e = make(v, out); !e.empty()) return e;
    *base = v;
    return "";
  }
  std::string changed;  // what the last conflict found
  for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
    wire::View nodes;
    std::vector<wire::NodeState> states;
    if (auto e = ChainClient::fetch_view(seeds, &nodes, timeout, &states); !e.empty()) return e;
    const auto chain = chain_of(states, nodes);
    if (chain.empty()) return "no node of the chain reports a chain id: has the chain formed?";
    wire::View b;
    std::int64_t revision = 0;
    if (auto e = etcd->read(chain, &b, &revision); !e.empty()) return e;
    if (revision == 0) {
      b = nodes;  // the first change through etcd: it starts from the nodes
    } else if (b.epoch() < nodes.epoch()) {
      if (attempt == 0)
        say(log, "etcd holds epoch " + std::to_string(b.epoch()) + " but the nodes hold " + describe(nodes) +
                     " (changed without --etcd): building on the nodes' view");
      b = nodes;
    }
    wire::View w;
    if (auto e = make(b, &w); !e.empty()) return changed.empty() ? e : e + " (" + changed + ")";
    if (etcd->before_commit) etcd->before_commit();
    bool committed = false;
    wire::View current;
    if (auto e = etcd->commit(chain, w, revision, &committed, &current); !e.empty()) return e;
    if (committed) {
      *base = b;
      *out = w;
      return "";
    }
    changed = "the chain changed meanwhile: etcd holds " + (current.epoch() ? describe(current) : "no view");
    say(log, changed + "; nothing was pushed, building the change again on it");
  }
  return "the view in etcd at " + etcd->endpoint() + " kept changing (" + changed + "): gave up after " +
         std::to_string(kCommitAttempts) + " attempts; is another rubble-ctl changing the chain in a loop?";
}

std::string reconfigure(const std::string& addr, const wire::View& view, std::chrono::milliseconds timeout,
                        wire::NodeState* state) {
  auto stub = wire::Rubble::NewStub(make_channel(addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  wire::NodeState ignored;
  const auto st = stub->Reconfigure(&ctx, view, state ? state : &ignored);
  return st.ok() ? "" : status_text(st);
}

std::string push_view(const wire::View& view, const std::string& removed, const std::string& skip, std::ostream* log,
                      bool newer_ok) {
  if (!removed.empty()) {
    const auto e = reconfigure(removed, view, std::chrono::seconds(10));
    say(log, removed + (e.empty() ? " left the chain" : " not told it left (" + e + "): it is probably down"));
  }
  // With etcd, every later view was built on this one: a node that holds a
  // later epoch means a later change (which includes this one) is being
  // pushed, and a node refusing this view because of it is not an error.
  // The node that refused may not have heard of the later view yet (its
  // successor has): ask every member.
  const auto later = [&](const std::string& first) -> std::string {
    if (!newer_ok) return "";
    std::vector<std::string> ask{first};
    for (const auto& m : view.members())
      if (m.addr() != first) ask.push_back(m.addr());
    for (const auto& a : ask)
      if (wire::NodeState st; ChainClient::state(a, &st).ok() && st.view().epoch() > view.epoch())
        return a + " already holds epoch " + std::to_string(st.view().epoch()) + " (a later change)";
    return "";
  };
  std::string errors;
  for (int i = view.members_size() - 1; i >= 0; --i) {
    const auto& addr = view.members(i).addr();
    if (addr == skip) continue;
    auto e = reconfigure(addr, view, kReconfigureTimeout);
    if (!e.empty())
      if (const auto why = later(addr); !why.empty()) {
        say(log, addr + " refused epoch " + std::to_string(view.epoch()) + " (" + e + "); " + why);
        e.clear();
      }
    if (!e.empty()) errors += (errors.empty() ? "" : "; ") + addr + ": " + e;
  }
  return errors;
}

std::string remove_node(const std::vector<std::string>& seeds, const std::string& node, std::ostream* log,
                        wire::View* result, EtcdViews* etcd) {
  wire::View v, w;
  const auto make = [&](const wire::View& b, wire::View* out) { return remove_member(b, node, out); };
  if (auto e = change_view(seeds, etcd, make, &v, &w, log); !e.empty()) return e;
  say(log, "removing " + node + ": " + describe(w) + (etcd ? " (committed in etcd)" : ""));
  if (result) *result = w;
  if (auto e = push_view(w, node, "", log, etcd != nullptr); !e.empty())
    return "the chain did not re-form everywhere: " + e;
  return "";
}

namespace {

// Takes a joining node out again (of v, or with etcd, of the view committed
// there).
void abort_join(const std::vector<std::string>& seeds, const wire::View& v, const std::string& addr, std::ostream* log,
                EtcdViews* etcd) {
  wire::View base, w;
  const auto make = [&](const wire::View& b, wire::View* out) { return remove_member(b, addr, out); };
  if (auto e = change_view(seeds, etcd, make, &base, &w, log, &v); !e.empty()) {
    if (etcd) say(log, "cannot take " + addr + " out again: " + e);
    return;
  }
  say(log, "giving up on " + addr + ": " + describe(w));
  push_view(w, addr, "", log, etcd != nullptr);
}

}  // namespace

std::string add_node(const std::vector<std::string>& seeds, const std::string& addr, std::chrono::milliseconds timeout,
                     std::ostream* log, wire::View* result, EtcdViews* etcd) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  wire::View v;
  if (auto e = ChainClient::fetch_view(seeds, &v); !e.empty()) return e;
  wire::NodeState node, head;
  if (const auto st = ChainClient::state(addr, &node); !st.ok())
    return "cannot reach the new node at " + addr + ": " + status_text(st) +
           " (start it first: rubble-node --role tail)";
  if (const auto st = ChainClient::state(head_of(v), &head); !st.ok())
    return "cannot reach the head " + head_of(v) + ": " + status_text(st);
  if (node.role() == "removed") return addr + " left a chain before: start a new node with an empty --db";
  if (node.view().epoch() > 0 || node.applied_seq() != 0)
    return addr + " already holds chain data (entries up to " + std::to_string(node.applied_seq()) +
           "): start it with an empty --db";
  if (node.mode() != head.mode())
    return addr + " runs in " + node.mode() + " mode but the chain in " + head.mode() + " mode";
  wire::Member m;
  m.set_addr(addr);
  m.set_pool(node.pool());
  m.set_pool_id(node.pool_id());
  wire::View base, joining;
  const auto join = [&](const wire::View& b, wire::View* out) { return add_member(b, m, out); };
  if (auto e = change_view(seeds, etcd, join, &base, &joining, log, &v); !e.empty()) return e;
  const std::string tail = tail_of(base);
  say(log, "adding " + addr + " behind " + tail + ": " + describe(joining) + (etcd ? " (committed in etcd)" : ""));
  if (auto e = reconfigure(tail, joining, kReconfigureTimeout); !e.empty()) {
    abort_join(seeds, joining, addr, log, etcd);
    return "the tail " + tail + " cannot stream to " + addr + ": " + e;
  }
  push_view(joining, "", tail, log, etcd != nullptr);
  if (head.mode() == "rubble") {
    auto stub = wire::Rubble::NewStub(make_channel(head_of(joining)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kReconfigureTimeout);
    wire::AddReplicaReply reply;
    if (const auto st = stub->AddReplica(&ctx, m, &reply); !st.ok()) {
      abort_join(seeds, joining, addr, log, etcd);
      return "the head cannot copy its SSTs to " + addr + ": " + status_text(st);
    }
    say(log, "the head wrote " + std::to_string(reply.ssts()) + " live SSTs (" +
                 fastpath::fixed(static_cast<double>(reply.bytes()) / (1 << 20), 1) + " MiB) into " + m.pool());
  }
  // Catch up to where the tail was once the state transfer began.
  wire::NodeState t;
  std::uint64_t target = 0;
  if (ChainClient::state(tail, &t).ok()) target = t.applied_seq();
  auto last_say = std::chrono::steady_clock::now();
  for (;;) {
    wire::NodeState n;
    const bool ok = ChainClient::state(addr, &n).ok();
    if (ok && n.synced() && n.applied_seq() >= target) break;
    if (ok && n.role() == "removed") return addr + " left the chain while joining: " + n.problem();
    if (std::chrono::steady_clock::now() > deadline) {
      abort_join(seeds, joining, addr, log, etcd);
      return addr + " did not catch up in time (applied " + std::to_string(n.applied_seq()) + " of " +
             std::to_string(target) + (n.problem().empty() ? "" : "; " + n.problem()) + ")";
    }
    if (std::chrono::steady_clock::now() - last_say > std::chrono::seconds(1)) {
      last_say = std::chrono::steady_clock::now();
      say(log, addr + (n.synced() ? " catching up: entry " : " receiving the chain's state: entry ") +
                   std::to_string(n.applied_seq()) + " of " + std::to_string(target));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // With etcd, on what is committed by now (a watcher may have removed a
  // failed node meanwhile); it must still have addr joining at the end.
  wire::View at, joined;
  const auto finish = [&](const wire::View& b, wire::View* out) -> std::string {
    const int i = find_member(b, addr);
    if (i < 0 || i != b.members_size() - 1 || !b.members(i).joining())
      return "the chain changed while " + addr + " joined (now " + describe(b) + "): run rubble-ctl add again";
    return finish_join(b, out);
  };
  if (auto e = change_view(seeds, etcd, finish, &at, &joined, log, &joining); !e.empty()) return e;
  say(log, addr + " caught up; it takes over as tail: " + describe(joined));
  // The old tail first: it hands over in-band, after every entry it
  // acknowledged; the newcomer learns it from its stream.
  if (auto e = push_view(joined, "", addr, log, etcd != nullptr); !e.empty())
    return "the chain did not re-form everywhere: " + e;
  if (result) *result = joined;
  for (;;) {
    wire::NodeState n;
    if (ChainClient::state(addr, &n).ok() && n.serving_reads()) return "";
    if (std::chrono::steady_clock::now() > deadline)
      return addr + " joined but does not serve reads yet" + (n.problem().empty() ? "" : ": " + n.problem());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

// HOST/PID, and .N for the N-th watcher of this process.
std::string default_name() {
  static std::atomic<int> count{0};
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const int n = ++count;
  return std::string(host) + "/" + std::to_string(::getpid()) + (n > 1 ? "." + std::to_string(n) : "");
}

}  // namespace

Watcher::Watcher(Options options) : options_(std::move(options)) {
  if (options_.name.empty()) options_.name = default_name();
  if (!options_.etcd.empty()) etcd_ = std::make_unique<EtcdViews>(options_.etcd);
}

Watcher::~Watcher() {
  stop();
}

void Watcher::say(const std::string& line) {
  if (options_.log) *options_.log << "rubble-ctl: watch: " << line << std::endl;
}

std::vector<std::string> Watcher::removed() const {
  std::lock_guard lock(mu_);
  return removed_;
}

wire::View Watcher::view() const {
  std::lock_guard lock(mu_);
  return view_;
}

bool Watcher::leading() const {
  std::lock_guard lock(mu_);
  return leading_;
}

std::string Watcher::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

void Watcher::etcd_error(const std::string& e) {
  if (e == etcd_error_) return;  // once, not every round
  etcd_error_ = e;
  say(e + "; this watcher removes nothing until etcd answers");
}

bool Watcher::lead(const std::string& chain_id) {
  if (chain_id.empty()) return false;
  const auto key = EtcdViews::watcher_key(chain_id);
  if (!election_ || election_->key() != key) {
    // A dead leader is replaced about as fast as it would remove a failed
    // node; at least 2 s (etcd's minimum with its default timing), so that
    // a keep-alive or two may be late on a busy machine.
    const auto ttl =
        std::max(std::chrono::ceil<std::chrono::seconds>(options_.failure_timeout), std::chrono::seconds(2));
    election_ = std::make_unique<etcd::Election>(etcd_->client(), key, options_.name, ttl);
  }
  bool leading = false;
  std::string leader;
  if (auto e = election_->campaign(&leading, &leader); !e.empty()) {
    etcd_error(e);
    leading = false;
    leader.clear();
  } else if (!etcd_error_.empty()) {
    etcd_error_.clear();
    say("etcd at " + etcd_->endpoint() + " answers again");
  }
  bool was = false;
  std::string before;
  {
    std::lock_guard lock(mu_);
    was = leading_;
    before = leader_;
    leading_ = leading;
    leader_ = leader;
  }
  if (leading && !was)
    say("leading (" + options_.name + "): this watcher removes failed nodes (" + key + " in etcd at " +
        etcd_->endpoint() + ")");
  else if (!leading && !leader.empty() && (was || leader != before))
    say(std::string(was ? "lost the lead; " : "") + "standing by, " + leader + " leads");
  else if (!leading && was)
    say("not leading any more: etcd does not answer");
  return leading;
}

std::string Watcher::round() {
  std::lock_guard round_lock(round_mu_);
  std::vector<std::string> addrs = options_.seeds;
  {
    std::lock_guard lock(mu_);
    for (const auto& m : view_.members()) addrs.push_back(m.addr());
  }
  const auto rpc_timeout = std::max(options_.interval * 3, std::chrono::milliseconds(300));
  wire::View v;
  std::vector<wire::NodeState> states;
  if (auto e = ChainClient::fetch_view(addrs, &v, rpc_timeout, &states); !e.empty()) return "";
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (v.epoch() >= view_.epoch()) view_ = v;
    v = view_;
    for (const auto& st : states) last_seen_[st.addr()] = now;
  }
  if (etcd_) {
    // Every watcher sends heartbeats (above: one taking over knows who has
    // been silent); only the leader acts.
    const auto chain = chain_of(states, v);
    if (!lead(chain)) return "";
    // A view committed but not pushed everywhere (its rubble-ctl died) is
    // the chain's view: the repairs below push it.
    wire::View committed;
    std::int64_t revision = 0;
    if (auto e = etcd_->read(chain, &committed, &revision); !e.empty()) {
      etcd_error(e);
      return "";
    }
    if (committed.epoch() > v.epoch()) {
      std::lock_guard lock(mu_);
      view_ = v = committed;
    }
  }
  std::string failed;
  {
    std::lock_guard lock(mu_);
    for (const auto& m : v.members()) {
      auto [it, fresh] = last_seen_.try_emplace(m.addr(), now);
      if (failed.empty() && now - it->second > options_.failure_timeout) failed = m.addr();
    }
  }
  if (!failed.empty()) {
    wire::View base, w;
    const auto make = [&](const wire::View& b, wire::View* out) { return remove_member(b, failed, out); };
    const auto e =
        etcd_ ? change_view(addrs, etcd_.get(), make, &base, &w, options_.log, nullptr, rpc_timeout) : make(v, &w);
    if (!e.empty()) {
      say("cannot remove " + failed + ": " + e);
      std::lock_guard lock(mu_);
      last_seen_[failed] = now;  // say it again after another timeout, not every round
      return "";
    }
    say(failed + " missed its heartbeats for " + fastpath::fixed(options_.failure_timeout.count() / 1000.0, 1) +
        " s: removing it (" + describe(w) + (etcd_ ? ", committed in etcd" : "") + ")");
    const auto errors = push_view(w, failed, "", options_.log, etcd_ != nullptr);
    if (!errors.empty()) say("re-forming: " + errors);
    std::lock_guard lock(mu_);
    view_ = w;
    last_seen_.erase(failed);
    removed_.push_back(failed);
    return "removed " + failed;
  }
  std::string told, did;
  // With etcd, a node that answers but was left out of the committed view
  // without being told (the rubble-ctl that removed it died first) hears it
  // now, so that it stops serving.  (A node not yet added holds no view.)
  if (etcd_)
    for (const auto& st : states) {
      if (find_member(v, st.addr()) >= 0 || st.role() == "removed" || st.view().epoch() == 0 ||
          st.view().epoch() >= v.epoch())
        continue;
      say(st.addr() + " is not in " + describe(v) + " but holds epoch " + std::to_string(st.view().epoch()) +
          ": telling it it left");
      reconfigure(st.addr(), v, std::chrono::seconds(10));
      told += (told.empty() ? "told " : ", ") + st.addr() + " it left";
    }
  // Members behind the view, or not yet in the state it asks for (only when
  // every member answered: a stream to a silent node is down for a reason
  // the next rounds deal with).
  for (const auto& m : v.members())
    if (std::none_of(states.begin(), states.end(), [&](const auto& st) { return st.addr() == m.addr(); })) return told;
  for (const auto& st : states) {
    if (find_member(v, st.addr()) < 0) continue;
    const auto p = plan_for(v, st.addr());
    const bool behind = st.view().epoch() < v.epoch();
    const bool unsettled = (p.head && !st.accepting_writes()) ||
                           (!p.successor.empty() && !st.successor_connected() && p.successor != st.addr());
    if (!behind && !unsettled) continue;
    if (!behind && !st.problem().empty()) say(st.addr() + ": " + st.problem());
    if (auto e = reconfigure(st.addr(), v, kReconfigureTimeout); !e.empty()) say("repairing " + st.addr() + ": " + e);
    did += (did.empty() ? "repaired " : ", ") + st.addr();
  }
  return told.empty() ? did : did.empty() ? told : told + "; " + did;
}

void Watcher::start() {
  {
    std::lock_guard lock(stop_mu_);
    if (!stop_) return;
    stop_ = false;
  }
  thread_ = std::thread([this] {
    std::unique_lock lock(stop_mu_);
    while (!stop_) {
      lock.unlock();
      round();
      lock.lock();
      stop_cv_.wait_for(lock, options_.interval, [&] { return stop_; });
    }
  });
}

void Watcher::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard round_lock(round_mu_);
  if (!election_) return;
  bool was = false;
  {
    std::lock_guard lock(mu_);
    std::swap(was, leading_);  // before the key goes: never two leaders
    leader_.clear();
  }
  election_->resign();  // the key vanishes now: another watcher leads at its next round
  if (was) say("stopped; gave up the lead");
}

}  // namespace fastpath::rubble
