// SPDX-License-Identifier: GPL-2.0
#include "node.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "client.h"
#include "downstream.h"
#include "pool.h"
#include "procstat.h"
#include "rubble_head.h"
#include "rubble_replica.h"
#include "view.h"

namespace fastpath::rubble {

namespace {

constexpr int kMaxIdleServerThreads = 32;

bool same_view(const wire::View& a, const wire::View& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() {
  stop();
}

Identity Node::head_identity(const std::optional<Identity>& found) const {
  if (found) return *found;
  Identity id{options_.chain_id.empty() ? random_id() : options_.chain_id, options_.mode};
  write_identity(options_.db, id);
  return id;
}

std::shared_ptr<Head> Node::head() const {
  std::lock_guard lock(mu_);
  return head_;
}

std::shared_ptr<Replica> Node::replica() const {
  std::lock_guard lock(mu_);
  return replica_;
}

wire::View Node::view() const {
  std::lock_guard lock(mu_);
  return view_;
}

void Node::note(const std::string& problem) {
  std::lock_guard lock(mu_);
  problem_ = problem;
}

bool Node::adopt(const wire::View& v) {
  std::lock_guard lock(mu_);
  if (removed_ || v.epoch() <= view_.epoch()) return false;
  view_ = v;
  return true;
}

std::string Node::start() {
  if (auto e = validate(options_); !e.empty()) throw std::runtime_error(e);
  const auto found = check_db_dir(options_.db, options_.mode, options_.chain_id);
  forwarder_ = std::make_unique<Forwarder>(
      options_.connect_timeout, [this](const wire::ChainAck& a) { on_forwarder_ack(a); },
      [this](const std::string& why) { note("lost the stream to the successor: " + why); });
  address_ = listen();
  if (options_.role == Role::kHead) {
    auto h = std::make_shared<Head>(options_, head_identity(found), *forwarder_);
    {
      std::lock_guard lock(mu_);
      head_ = h;
    }
    const auto reply = h->start(address_);
    wire::View v;
    v.set_epoch(reply.view_epoch() + 1);
    v.add_members()->set_addr(address_);
    for (const auto& m : reply.members()) *v.add_members() = m;
    {
      std::lock_guard lock(mu_);
      view_ = v;
    }
    forwarder_->send_view(v);  // everyone learns the chain
  } else {
    Replica::Hooks hooks{[this] { return view(); }, [this](const wire::View& v) { adopt(v); },
                         [this](const wire::View& v) { in_band_view(v); }};
    auto r = std::make_shared<Replica>(options_, found, *forwarder_, std::move(hooks));
    r->set_address(address_);
    r->start();
    std::lock_guard lock(mu_);
    replica_ = r;
  }
  maintainer_ = std::thread([this] { maintain_loop(); });
  return address_;
}

std::string Node::listen() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  // Synchronous methods (Scan, State, Stats...): a server thread that has
  // answered stays to poll for the next request instead of exiting once
  // more than two are idle (gRPC's default), which with a few concurrent
  // readers meant creating and destroying a thread for most reads.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kMaxIdleServerThreads);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0)
    throw std::runtime_error("cannot listen on " + options_.listen +
                             ": the port is in use or the address is not local; pick another --listen");
  const auto colon = options_.listen.rfind(':');
  const std::string host = options_.listen.substr(0, colon);
  link_ = std::make_unique<LinkListener>(host, [this](LinkSocket& l) { on_link(l); });
  return host + ":" + std::to_string(port);
}

void Node::stop() {
  {
    std::lock_guard lock(maint_mu_);
    maint_stop_ = true;
  }
  maint_cv_.notify_all();
  if (maintainer_.joinable()) maintainer_.join();
  // Waiting writes are answered first: the server's shutdown waits for them.
  if (auto h = head()) h->stop("the head is shutting down");
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  if (link_) link_->stop();  // ends the predecessor's stream
  if (forwarder_) forwarder_->shutdown();
  std::shared_ptr<Head> h;
  std::shared_ptr<Replica> r;
  {
    std::lock_guard lock(mu_);
    h = std::move(head_);
    r = std::move(replica_);
  }
  h.reset();
  r.reset();
  server_.reset();
}

void Node::on_forwarder_ack(const wire::ChainAck& ack) {
  if (auto h = head())
    h->on_ack(ack);
  else if (auto r = replica())
    r->on_downstream_ack(ack);
}

// A view that arrived on the stream, after every entry before it.  A joining
// node learns here that it is the tail now.
void Node::in_band_view(const wire::View& v) {
  adopt(v);
  auto r = replica();
  if (!r) return;
  const auto plan = plan_for(view(), address_);
  if (plan.tail && !r->serving() && r->synced()) {
    r->handed_over();
    if (auto e = r->become_tail(); !e.empty()) note(e);
  }
}

std::string Node::role() const {
  std::lock_guard lock(mu_);
  if (removed_) return "removed";
  if (view_.epoch() == 0) return head_ ? "head" : to_string(options_.role);
  const auto p = plan_for(view_, address_);
  if (p.removed) return "removed";
  if (p.joining) return "joining";
  if (p.head) return "head";
  return p.tail ? "tail" : "middle";
}

std::string Node::not_head() const {
  const auto h = head_of(view());
  return "this node is the " + role() + " at " + address_ + ": writes enter the chain at the head" +
         (h.empty() ? "" : " (" + h + ")");
}

std::string Node::not_tail() const {
  const auto t = tail_of(view());
  return "this node is the " + role() + " at " + address_ + ": reads are served by the tail" +
         (t.empty() ? "" : " (" + t + ")");
}

// A write call: started on this node's head, or refused when it is not one.
grpc::ServerUnaryReactor* Node::on_head(grpc::CallbackServerContext* ctx,
                                        const std::function<void(Head&, Head::Done)>& start) {
  auto* reactor = ctx->DefaultReactor();
  auto h = head();
  if (!h) {
    reactor->Finish({grpc::StatusCode::FAILED_PRECONDITION, not_head()});
    return reactor;
  }
  start(*h, [reactor](grpc::Status st) { reactor->Finish(std::move(st)); });
  return reactor;
}

grpc::ServerUnaryReactor* Node::Put(grpc::CallbackServerContext* ctx, const wire::PutRequest* req,
                                    wire::WriteReply* reply) {
  return on_head(ctx, [&](Head& h, Head::Done done) { h.put(req->key(), req->value(), reply, std::move(done)); });
}

grpc::ServerUnaryReactor* Node::Delete(grpc::CallbackServerContext* ctx, const wire::DeleteRequest* req,
                                       wire::WriteReply* reply) {
  return on_head(ctx, [&](Head& h, Head::Done done) { h.del(req->key(), reply, std::move(done)); });
}

grpc::ServerUnaryReactor* Node::Write(grpc::CallbackServerContext* ctx, const wire::WriteRequest* req,
                                      wire::WriteReply* reply) {
  return on_head(ctx, [&](Head& h, Head::Done done) {
    h.write_many({req->ops().begin(), req->ops().end()}, reply, std::move(done));
  });
}

grpc::ServerUnaryReactor* Node::Get(grpc::CallbackServerContext* ctx, const wire::GetRequest* req,
                                    wire::GetReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  auto r = replica();
  if (!r) {
    reactor->Finish({grpc::StatusCode::FAILED_PRECONDITION, not_tail()});
    return reactor;
  }
  auto st = r->get(req->key(), reply);
  reply_bytes_sent_ += reply->ByteSizeLong();
  reactor->Finish(std::move(st));
  return reactor;
}

grpc::Status Node::Scan(grpc::ServerContext*, const wire::ScanRequest* req, wire::ScanReply* reply) {
  auto r = replica();
  if (!r) return {grpc::StatusCode::FAILED_PRECONDITION, not_tail()};
  if (req->limit() == 0 || req->limit() > kMaxScanKeys)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "scan limit " + std::to_string(req->limit()) + ": ask for 1 to " + std::to_string(kMaxScanKeys) + " keys"};
  auto st = r->scan(req->start(), req->limit(), reply);
  reply_bytes_sent_ += reply->ByteSizeLong();
  return st;
}

grpc::Status Node::Stats(grpc::ServerContext*, const wire::StatsRequest*, wire::StatsReply* reply) {
  reply->set_role(role());
  reply->set_mode(to_string(options_.mode));
  reply->set_pid(::getpid());
  reply->set_cpu_seconds(cpu_seconds(::getpid()));
  reply->set_io_write_bytes(static_cast<std::uint64_t>(std::max(0LL, io_write_bytes(::getpid()))));
  reply->set_reply_bytes_sent(reply_bytes_sent_.load());
  if (auto h = head()) h->fill_stats(reply);
  if (auto r = replica()) r->fill_stats(reply);
  return grpc::Status::OK;
}

// A predecessor's chain link connection (on the LinkListener's thread).
void Node::on_link(LinkSocket& link) {
  name_thread("rb-upstream");
  auto r = replica();
  if (r) return r->replicate(link);
  wire::ChainBatch first;
  if (!link.read(&first)) return;
  wire::ChainAck no;
  no.set_error("the node at " + address_ + " is the " + role() +
               (head() ? ": a head has no predecessor; fix the --next of the node that points here"
                       : ": it takes no predecessor"));
  link.write(no);
}

void Node::fill_state(wire::NodeState* st) const {
  st->set_addr(address_);
  if (link_) st->set_link_addr(link_->address());
  st->set_role(role());
  st->set_mode(to_string(options_.mode));
  {
    std::lock_guard lock(mu_);
    *st->mutable_view() = view_;
    st->set_problem(problem_);
  }
  if (auto h = head()) {
    st->set_applied_seq(h->applied());
    st->set_acked_seq(h->acked());
    st->set_accepting_writes(h->accepting());
    st->set_synced(true);
    if (auto id = read_identity(options_.db)) st->set_chain_id(id->chain_id);
  } else if (auto r = replica()) {
    r->fill_state(st);
  }
  if (forwarder_) {
    const auto fw = forwarder_->status();
    st->set_successor(fw.successor);
    st->set_successor_connected(fw.connected);
    st->set_log_entries(fw.log_entries);
  }
}

grpc::Status Node::State(grpc::ServerContext*, const wire::StateRequest*, wire::NodeState* reply) {
  try {
    fill_state(reply);
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INTERNAL, e.what()};
  }
  return grpc::Status::OK;
}

grpc::Status Node::Reconfigure(grpc::ServerContext*, const wire::View* v, wire::NodeState* reply) {
  std::lock_guard lock(reconfig_mu_);
  {
    std::lock_guard l(mu_);
    if (removed_)
      return {grpc::StatusCode::FAILED_PRECONDITION, "the node at " + address_ + " has left the chain (" + problem_ +
                                                         "): it takes no view any more; start a new node to add"};
    if (v->epoch() < view_.epoch())
      return {grpc::StatusCode::FAILED_PRECONDITION, "stale view: epoch " + std::to_string(v->epoch()) +
                                                         " but the node at " + address_ + " holds epoch " +
                                                         std::to_string(view_.epoch()) + " (" + describe(view_) + ")"};
    if (v->epoch() == view_.epoch() && !same_view(*v, view_))
      return {grpc::StatusCode::FAILED_PRECONDITION, "conflicting views of epoch " + std::to_string(v->epoch()) +
                                                         ": the node at " + address_ + " holds " + describe(view_) +
                                                         "; run one rubble-ctl at a time"};
  }
  const auto e = converge(*v);
  if (!e.empty()) {
    note(e);
    std::cerr << "rubble-node: " << address_ << ": re-forming for " << describe(*v) << ": " << e << std::endl;
  }
  fill_state(reply);
  if (!e.empty()) return {grpc::StatusCode::ABORTED, e};
  return grpc::Status::OK;
}

grpc::Status Node::AddReplica(grpc::ServerContext*, const wire::Member* m, wire::AddReplicaReply* reply) {
  auto h = head();
  if (!h) return {grpc::StatusCode::FAILED_PRECONDITION, not_head()};
  return h->add_replica(*m, reply);
}

// reconfig_mu_ held.
std::string Node::converge(const wire::View& v) {
  {
    std::lock_guard lock(mu_);
    view_ = v;
  }
  const auto plan = plan_for(v, address_);
  if (plan.removed) {
    leave("removed from the chain (view " + describe(v) + ")");
    return "";
  }
  if (plan.joining) return "";  // its predecessor connects it
  if (plan.head && !head())
    if (auto e = take_over(v); !e.empty()) return e;
  if (auto h = head()) {
    h->on_view(v);
    if (plan.successor.empty() || plan.successor_joining)
      return "a chain whose head is also its tail is not supported; add a node first";
    const auto fw = forwarder_->status();
    if (fw.successor != plan.successor || !fw.connected)
      if (auto e = connect_successor(v, plan.successor, false, nullptr); !e.empty()) return e;
    if (options_.mode == Mode::kRubble) {
      std::string e;
      const auto reports = replica_reports(v, &e);
      if (!e.empty()) return e;
      if (const auto n = h->reconcile(reports); n > 0)
        std::cerr << "rubble-node: head: " << n << " slots came back whose releases were lost" << std::endl;
    }
    return "";
  }
  auto r = replica();
  if (!r) return "this node is neither head nor replica";
  return converge_replica(v, *r);
}

std::string Node::converge_replica(const wire::View& v, Replica& r) {
  const auto plan = plan_for(v, address_);
  const auto fw = forwarder_->status();
  if (plan.successor.empty()) {  // the tail now: what this node applied is acknowledged
    if (!fw.successor.empty()) forwarder_->disconnect();
    if (!r.serving() && !r.awaiting_handover()) return r.become_tail();
    return "";
  }
  if (plan.successor_joining) {  // still the tail, and streams to the newcomer
    std::string e;
    if (fw.successor != plan.successor || !fw.connected) e = connect_successor(v, plan.successor, true, &r);
    if (!r.serving() && r.synced() && !r.awaiting_handover())
      if (auto t = r.become_tail(); !t.empty()) e = t;
    return e;
  }
  if (fw.joining && fw.successor == plan.successor) {  // the newcomer is the tail from here on
    r.stop_serving();
    forwarder_->finish_join(v);
    return "";
  }
  if (fw.successor != plan.successor || !fw.connected) {
    if (r.serving()) r.stop_serving();
    return connect_successor(v, plan.successor, false, &r);
  }
  return "";
}

std::string Node::connect_successor(const wire::View& v, const std::string& succ, bool joining, Replica* r) {
  wire::Hello hello;
  if (auto id = read_identity(options_.db)) hello.set_chain_id(id->chain_id);
  hello.set_mode(to_string(options_.mode));
  hello.set_position(static_cast<std::uint32_t>(std::max(0, find_member(v, succ))));
  if (options_.mode == Mode::kRubble) hello.set_slot_size(slot_size_for(options_.sst_size));
  *hello.mutable_view() = v;
  hello.set_sender(address_);
  hello.set_join(joining);
  Forwarder::SnapshotFn snapshot;
  if (joining && r) snapshot = r->snapshot_source();
  wire::ChainAck reply;
  if (auto e = forwarder_->connect(succ, hello, joining, std::move(snapshot), &reply); !e.empty())
    return "cannot stream to the successor " + succ + ": " + e;
  return "";
}

// Rubble: each full member after this node (the head): its pool, its last
// applied entry and the slots it holds (read in that order by State).
std::vector<ReplicaPool> Node::replica_reports(const wire::View& v, std::string* error) const {
  std::vector<ReplicaPool> out;
  const int me = find_member(v, address_);
  for (int i = me + 1; me >= 0 && i < v.members_size(); ++i) {
    const auto& m = v.members(i);
    if (m.joining()) continue;  // what it holds is still being set up
    wire::NodeState st;
    if (const auto s = ChainClient::state(m.addr(), &st, options_.connect_timeout); !s.ok()) {
      *error = "cannot learn which slots " + m.addr() + " holds: " + s.error_message();
      return {};
    }
    out.push_back(
        ReplicaPool{m.pool(), m.pool_id(), {st.held_slots().begin(), st.held_slots().end()}, st.applied_seq()});
  }
  return out;
}

// A replica becomes the head.  reconfig_mu_ held.
std::string Node::take_over(const wire::View& v) {
  auto r = replica();
  if (!r) return "no replica state to take over from";
  r->end_upstream("the node at " + address_ + " takes over as head (view " + describe(v) + ")");
  const auto id = read_identity(options_.db);
  if (!id) return "this node never joined a chain: it cannot take over as head";
  Takeover t;
  t.applied = r->applied();
  try {
    if (options_.mode == Mode::kBaseline) {
      t.store = r->take_store();
    } else {
      // The slots each successor still uses, and those on their way to it.
      std::string e;
      t.pools = replica_reports(v, &e);
      if (!e.empty()) return e;
      for (auto& p : t.pools) {
        // This machine's path to the pool (over NVMe-oF across machines).
        p.path = locate_pool(p.pool_id, options_.find_pools, p.path, &e);
        if (p.path.empty()) return "cannot take over as head: " + e;
        for (auto slot : forwarder_->installs_after(p.applied)) p.held.push_back(slot);
        std::sort(p.held.begin(), p.held.end());
        p.held.erase(std::unique(p.held.begin(), p.held.end()), p.held.end());
      }
      t.live = r->rubble()->materialize((std::filesystem::absolute(options_.db) / "rocksdb").string());
    }
    auto h = std::make_shared<Head>(options_, *id, *forwarder_);
    h->take_over(std::move(t));
    {
      std::lock_guard lock(mu_);
      head_ = h;  // acknowledgements go to the head from now on
      replica_.reset();
    }
    // Those that arrived while the head was being set up went to the replica.
    wire::ChainAck caught_up;
    caught_up.set_acked_seq(forwarder_->status().acked);
    h->on_ack(caught_up);
  } catch (const std::exception& e) {
    return std::string("taking over as head failed: ") + e.what();
  }
  std::cerr << "rubble-node: " << address_ << " is the head now (" << describe(v) << ")" << std::endl;
  return "";
}

void Node::leave(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    removed_ = true;
    problem_ = why;
  }
  if (auto h = head()) h->stop("the node at " + address_ + " is no longer the head: " + why);
  if (auto r = replica()) {
    r->stop_serving();
    r->end_upstream("the node at " + address_ + " left the chain: " + why);
  }
  forwarder_->shutdown();
  std::cerr << "rubble-node: " << address_ << " " << why << std::endl;
}

// Reconnects a successor whose stream broke while it is still in the view
// (a joining one is not: its join restarts from rubble-ctl).
void Node::maintain_loop() {
  name_thread("rb-maintain");
  std::unique_lock lock(maint_mu_);
  while (!maint_stop_) {
    maint_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return maint_stop_; });
    if (maint_stop_) break;
    lock.unlock();
    const auto fw = forwarder_->status();
    const auto v = view();
    std::unique_lock reconfig(reconfig_mu_, std::try_to_lock);
    bool removed = false;
    {
      std::lock_guard l(mu_);
      removed = removed_;
    }
    wire::NodeState probe;
    if (reconfig.owns_lock() && !removed && v.epoch() > 0 && !fw.successor.empty() && !fw.connected && !fw.joining &&
        plan_for(v, address_).successor == fw.successor &&
        ChainClient::state(fw.successor, &probe, std::chrono::milliseconds(200)).ok()) {
      auto r = replica();
      if (auto e = connect_successor(v, fw.successor, false, r.get()); !e.empty()) note(e);
    }
    lock.lock();
  }
}

}  // namespace fastpath::rubble
