// SPDX-License-Identifier: GPL-2.0
#include "ctl.h"

#include <algorithm>
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

}  // namespace

std::string reconfigure(const std::string& addr, const wire::View& view, std::chrono::milliseconds timeout,
                        wire::NodeState* state) {
  auto stub = wire::Rubble::NewStub(make_channel(addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  wire::NodeState ignored;
  const auto st = stub->Reconfigure(&ctx, view, state ? state : &ignored);
  return st.ok() ? "" : status_text(st);
}

std::string push_view(const wire::View& view, const std::string& removed, const std::string& skip, std::ostream* log) {
  if (!removed.empty()) {
    const auto e = reconfigure(removed, view, std::chrono::seconds(10));
    say(log, removed + (e.empty() ? " left the chain" : " not told it left (" + e + "): it is probably down"));
  }
  std::string errors;
  for (int i = view.members_size() - 1; i >= 0; --i) {
    const auto& addr = view.members(i).addr();
    if (addr == skip) continue;
    if (auto e = reconfigure(addr, view, kReconfigureTimeout); !e.empty())
      errors += (errors.empty() ? "" : "; ") + addr + ": " + e;
  }
  return errors;
}

std::string remove_node(const std::vector<std::string>& seeds, const std::string& node, std::ostream* log,
                        wire::View* result) {
  wire::View v, w;
  if (auto e = ChainClient::fetch_view(seeds, &v); !e.empty()) return e;
  if (auto e = remove_member(v, node, &w); !e.empty()) return e;
  say(log, "removing " + node + ": " + describe(w));
  if (result) *result = w;
  if (auto e = push_view(w, node, "", log); !e.empty()) return "the chain did not re-form everywhere: " + e;
  return "";
}

namespace {

// Takes a joining node out again.
void abort_join(const wire::View& v, const std::string& addr, std::ostream* log) {
  wire::View w;
  if (!remove_member(v, addr, &w).empty()) return;
  say(log, "giving up on " + addr + ": " + describe(w));
  push_view(w, addr, "", log);
}

}  // namespace

std::string add_node(const std::vector<std::string>& seeds, const std::string& addr, std::chrono::milliseconds timeout,
                     std::ostream* log, wire::View* result) {
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
  wire::View joining;
  if (auto e = add_member(v, m, &joining); !e.empty()) return e;
  const std::string tail = tail_of(v);
  say(log, "adding " + addr + " behind " + tail + ": " + describe(joining));
  if (auto e = reconfigure(tail, joining, kReconfigureTimeout); !e.empty()) {
    abort_join(joining, addr, log);
    return "the tail " + tail + " cannot stream to " + addr + ": " + e;
  }
  push_view(joining, "", tail, log);
  if (head.mode() == "rubble") {
    auto stub = wire::Rubble::NewStub(make_channel(head_of(v)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kReconfigureTimeout);
    wire::AddReplicaReply reply;
    if (const auto st = stub->AddReplica(&ctx, m, &reply); !st.ok()) {
      abort_join(joining, addr, log);
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
      abort_join(joining, addr, log);
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
  wire::View joined;
  if (auto e = finish_join(joining, &joined); !e.empty()) return e;
  say(log, addr + " caught up; it takes over as tail: " + describe(joined));
  // The old tail first: it hands over in-band, after every entry it
  // acknowledged; the newcomer learns it from its stream.
  if (auto e = push_view(joined, "", addr, log); !e.empty()) return "the chain did not re-form everywhere: " + e;
  if (result) *result = joined;
  for (;;) {
    wire::NodeState n;
    if (ChainClient::state(addr, &n).ok() && n.serving_reads()) return "";
    if (std::chrono::steady_clock::now() > deadline)
      return addr + " joined but does not serve reads yet" + (n.problem().empty() ? "" : ": " + n.problem());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Watcher::Watcher(Options options) : options_(std::move(options)) {}

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

std::string Watcher::round() {
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
  std::string failed;
  {
    std::lock_guard lock(mu_);
    if (v.epoch() >= view_.epoch()) view_ = v;
    v = view_;
    for (const auto& st : states) last_seen_[st.addr()] = now;
    for (const auto& m : v.members()) {
      auto [it, fresh] = last_seen_.try_emplace(m.addr(), now);
      if (failed.empty() && now - it->second > options_.failure_timeout) failed = m.addr();
    }
  }
  if (!failed.empty()) {
    wire::View w;
    if (auto e = remove_member(v, failed, &w); !e.empty()) {
      say("cannot remove " + failed + ": " + e);
      std::lock_guard lock(mu_);
      last_seen_[failed] = now;  // say it again after another timeout, not every round
      return "";
    }
    say(failed + " missed its heartbeats for " + fastpath::fixed(options_.failure_timeout.count() / 1000.0, 1) +
        " s: removing it (" + describe(w) + ")");
    const auto errors = push_view(w, failed, "", options_.log);
    if (!errors.empty()) say("re-forming: " + errors);
    std::lock_guard lock(mu_);
    view_ = w;
    last_seen_.erase(failed);
    removed_.push_back(failed);
    return "removed " + failed;
  }
  // Members behind the view, or not yet in the state it asks for (only when
  // every member answered: a stream to a silent node is down for a reason
  // the next rounds deal with).
  for (const auto& m : v.members())
    if (std::none_of(states.begin(), states.end(), [&](const auto& st) { return st.addr() == m.addr(); })) return "";
  std::string did;
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
  return did;
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
}

}  // namespace fastpath::rubble
