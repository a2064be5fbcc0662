// SPDX-License-Identifier: GPL-2.0
#include "fastpath/etcd.h"

#include <algorithm>
#include <string_view>

namespace fastpath::etcd {

namespace {

constexpr std::string_view kHttp = "http://";

using etcdserverpb::Compare;

std::string describe(const grpc::Status& st) {
  std::string code;
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      code = "UNAVAILABLE";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = "DEADLINE_EXCEEDED";
      break;
    default:
      code = "gRPC status " + std::to_string(st.error_code());
  }
  return code + ": " + st.error_message();
}

// The first key after every key that starts with prefix.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

}  // namespace

Client::Client(std::string endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), timeout_(timeout) {
  if (endpoint_.starts_with(kHttp)) endpoint_.erase(0, kHttp.size());
  while (endpoint_.ends_with("/")) endpoint_.pop_back();
  if (endpoint_.find("://") != std::string::npos)
    invalid_ = "--etcd " + endpoint_ + ": only plain http is supported: give HOST:PORT of etcd's client URL";
  else if (endpoint_.empty())
    invalid_ = "--etcd: no address given: give HOST:PORT of etcd's client URL";
  grpc::ChannelArguments args;
  // Our own connection (not shared with another Client of the same
  // address), retried soon after etcd comes back: gRPC's default backoff
  // grows to two minutes.  (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is
  // also the time a connection attempt may take.)
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(endpoint_, grpc::InsecureChannelCredentials(), args);
  kv_ = etcdserverpb::KV::NewStub(channel_);
  lease_ = etcdserverpb::Lease::NewStub(channel_);
}

void Client::set_deadline(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
}

std::string Client::failed(const std::string& what, const grpc::Status& st) const {
  const auto code = st.error_code();
  if (code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED)
    return "cannot reach etcd at " + endpoint_ + " (" + what + ": " + describe(st) +
           "): --etcd must point to a running etcd's client address (start one with etcd "
           "--listen-client-urls http://" +
           endpoint_ + " --advertise-client-urls http://" + endpoint_ + ")";
  return "etcd at " + endpoint_ + " refused " + what + ": " + describe(st);
}

std::string Client::check() {
  KeyValue kv;
  bool found = false;
  return get("/fastpath/.check", &kv, &found);
}

std::string Client::get(const std::string& key, KeyValue* kv, bool* found) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  etcdserverpb::RangeResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = kv_->Range(&ctx, req, &resp); !st.ok()) return failed("reading " + key, st);
  *found = resp.kvs_size() > 0;
  if (*found) {
    const auto& k = resp.kvs(0);
    *kv = {k.value(), k.create_revision(), k.mod_revision(), k.lease()};
  }
  return "";
}

std::string Client::put_if(const std::string& key, const std::string& value, Guard guard, std::int64_t expected,
                           PutResult* result, std::int64_t lease) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::TxnRequest txn;
  auto* c = txn.add_compare();
  c->set_key(key);
  c->set_result(Compare::EQUAL);
  if (guard == Guard::kModRevision) {
    c->set_target(Compare::MOD);
    c->set_mod_revision(expected);
  } else {
    c->set_target(Compare::CREATE);
    c->set_create_revision(expected);
  }
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(key);  // what won instead
  etcdserverpb::TxnResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = kv_->Txn(&ctx, txn, &resp); !st.ok()) return failed("a guarded put of " + key, st);
  *result = PutResult{};
  result->done = resp.succeeded();
  if (result->done) {
    result->revision = resp.header().revision();  // a put's mod_revision is the transaction's revision
    return "";
  }
  if (resp.responses_size() > 0 && resp.responses(0).has_response_range() &&
      resp.responses(0).response_range().kvs_size() > 0) {
    const auto& k = resp.responses(0).response_range().kvs(0);
    result->found = true;
    result->current = {k.value(), k.create_revision(), k.mod_revision(), k.lease()};
  }
  return "";
}

std::string Client::get_prefix(const std::string& prefix, std::vector<std::pair<std::string, KeyValue>>* kvs) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(prefix_end(prefix));
  etcdserverpb::RangeResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = kv_->Range(&ctx, req, &resp); !st.ok()) return failed("reading the keys under " + prefix, st);
  kvs->clear();
  for (const auto& k : resp.kvs())
    kvs->emplace_back(k.key(), KeyValue{k.value(), k.create_revision(), k.mod_revision(), k.lease()});
  return "";
}

std::string Client::txn(const std::vector<Condition>& conditions, const std::vector<Write>& writes, bool* done,
                        std::int64_t* revision) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::TxnRequest txn;
  for (const auto& cond : conditions) {
    auto* c = txn.add_compare();
    c->set_key(cond.key);
    c->set_result(Compare::EQUAL);
    switch (cond.target) {
      case Condition::Target::kModRevision:
        c->set_target(Compare::MOD);
        c->set_mod_revision(cond.value);
        break;
      case Condition::Target::kCreateRevision:
        c->set_target(Compare::CREATE);
        c->set_create_revision(cond.value);
        break;
      case Condition::Target::kLease:
        c->set_target(Compare::LEASE);
        c->set_lease(cond.value);
        break;
    }
  }
  for (const auto& w : writes) {
    if (w.erase) {
      txn.add_success()->mutable_request_delete_range()->set_key(w.key);
      continue;
    }
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(w.key);
    put->set_value(w.value);
    put->set_lease(w.lease);
  }
  etcdserverpb::TxnResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = kv_->Txn(&ctx, txn, &resp); !st.ok())
    return failed("a transaction of " + std::to_string(writes.size()) + " writes", st);
  *done = resp.succeeded();
  *revision = resp.header().revision();
  return "";
}

std::string Client::grant(std::chrono::seconds ttl, std::int64_t* id, std::chrono::seconds* granted) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl.count());
  etcdserverpb::LeaseGrantResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = lease_->LeaseGrant(&ctx, req, &resp); !st.ok()) return failed("a lease grant", st);
  if (!resp.error().empty()) return "etcd at " + endpoint_ + " granted no lease: " + resp.error();
  *id = resp.id();
  *granted = std::chrono::seconds(resp.ttl());
  return "";
}

std::string Client::revoke(std::int64_t id) {
  if (!invalid_.empty()) return invalid_;
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  etcdserverpb::LeaseRevokeResponse resp;
  grpc::ClientContext ctx;
  set_deadline(ctx);
  if (const auto st = lease_->LeaseRevoke(&ctx, req, &resp); !st.ok())
    return failed("revoking lease " + std::to_string(id), st);
  return "";
}

Lease::Lease(Client& client) : client_(client) {}

Lease::~Lease() {
  revoke();
}

std::int64_t Lease::id() const {
  std::lock_guard lock(mu_);
  return id_;
}

bool Lease::alive() const {
  std::lock_guard lock(mu_);
  return id_ != 0 && !expired_ && std::chrono::steady_clock::now() - renewed_ < ttl_;
}

std::string Lease::grant(std::chrono::seconds ttl) {
  revoke();
  const auto asked = std::chrono::steady_clock::now();
  std::int64_t id = 0;
  std::chrono::seconds granted{0};
  if (auto e = client_.grant(ttl, &id, &granted); !e.empty()) return e;
  std::lock_guard lock(mu_);
  id_ = id;
  ttl_ = granted;
  renewed_ = asked;  // etcd's clock started after this
  expired_ = false;
  stop_ = false;
  thread_ = std::thread([this, id, granted] { keep_alive_loop(id, granted); });
  return "";
}

void Lease::stop_thread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (stream_ctx_) stream_ctx_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Lease::revoke() {
  stop_thread();
  std::int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    std::swap(id, id_);
  }
  if (id != 0) client_.revoke(id);
}

// One short stream per keep-alive (write one request, read one response):
// a stream that breaks or a server that hangs costs one call with a
// deadline, not a stuck thread.  etcd renews the lease for its whole TTL
// at each keep-alive; renewing every third of it leaves two tries to spare.
void Lease::keep_alive_loop(std::int64_t id, std::chrono::seconds ttl) {
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 3;
  auto next = every;
  for (;;) {
    std::shared_ptr<grpc::ClientContext> ctx;
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, next, [&] { return stop_; })) return;
      ctx = std::make_shared<grpc::ClientContext>();
      ctx->set_deadline(std::chrono::system_clock::now() + std::min(client_.timeout(), every * 2));
      stream_ctx_ = ctx;  // stop_thread() cancels it
    }
    const auto sent = std::chrono::steady_clock::now();
    auto stream = client_.lease_stub().LeaseKeepAlive(ctx.get());
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(id);
    etcdserverpb::LeaseKeepAliveResponse resp;
    const bool answered = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    stream->Finish();
    std::lock_guard lock(mu_);
    stream_ctx_.reset();
    if (answered && resp.ttl() <= 0) {  // etcd no longer knows it: it expired
      expired_ = true;
      return;
    }
    if (answered) renewed_ = sent;
    next = answered ? every : std::chrono::milliseconds(100);
  }
}

Election::Election(Client& client, std::string key, std::string name, std::chrono::seconds ttl)
    : client_(client), key_(std::move(key)), name_(std::move(name)), ttl_(ttl), lease_(client) {}

Election::~Election() {
  resign();
}

std::string Election::campaign(bool* leading, std::string* leader) {
  *leading = false;
  leader->clear();
  if (!lease_.alive())
    if (auto e = lease_.grant(ttl_); !e.empty()) return e;
  const auto lease = lease_.id();
  PutResult r;
  if (auto e = client_.put_if(key_, name_, Guard::kCreateRevision, 0, &r, lease); !e.empty()) return e;
  if (r.done) {
    *leading = true;
    *leader = name_;
    created_ = r.revision;
    return "";
  }
  *leading = r.found && r.current.lease == lease;
  if (r.found) *leader = r.current.value;
  created_ = *leading ? r.current.create_revision : 0;
  return "";
}

void Election::resign() {
  lease_.revoke();
}

}  // namespace fastpath::etcd
