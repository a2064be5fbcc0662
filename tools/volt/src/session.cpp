// SPDX-License-Identifier: GPL-2.0
#include "volt/session.h"

#include <stdexcept>

#include "volt/volt_lock.h"

namespace volt {
namespace {

constexpr std::pair<Kind, const char*> kNames[] = {{Kind::kVolt, "volt"},
                                                   {Kind::kCas, "cas"},
                                                   {Kind::kCasBackoff, "cas-backoff"},
                                                   {Kind::kTicket, "ticket"},
                                                   {Kind::kRpc, "rpc"}};

std::uint32_t psn_for(std::uint32_t qpn, std::uint32_t salt) {
  return (qpn * 2654435761u + salt) & 0xffffff;
}

}  // namespace

std::string kind_name(Kind k) {
  for (const auto& [kind, name] : kNames)
    if (kind == k) return name;
  return "?";
}

std::optional<Kind> parse_kind(std::string_view name) {
  for (const auto& [kind, n] : kNames)
    if (name == n) return kind;
  return std::nullopt;
}

std::string all_kind_names() {
  std::string s;
  for (const auto& [kind, name] : kNames) s += (s.empty() ? "" : ",") + std::string(name);
  return s;
}

RemoteRegion remote_region(const Target& t) {
  RemoteRegion r;
  r.table = t.table();
  r.data_base = t.data_addr(0);
  r.data_size = t.config().data_size;
  r.volt_op_id = t.config().volt_op_id;
  return r;
}

// ---------------------------------------------------------------- TargetSession

TargetSession::TargetSession(Target& target, Kind kind, std::uint32_t clients, bool rpc_spin) : target_(target) {
  if (kind == Kind::kRpc)
    rpc_ = std::make_unique<RpcServer>(target.dev(), target.pd(),
                                       RpcServer::Options{.locks = target.config().locks, .spin = rpc_spin});
  for (std::uint32_t i = 0; i < clients; ++i) {
    if (rpc_) {
      qps_.push_back(&rpc_->add_client());
    } else {
      passive_.push_back(target.add_passive_qp());
      qps_.push_back(&target.passive_qp(passive_.back()));
    }
  }
}

TargetSession::~TargetSession() {
  if (rpc_) rpc_->stop();
  rpc_.reset();
  for (std::size_t p : passive_) target_.kill_passive_qp(p);
}

QpAddr TargetSession::addr(std::uint32_t i) const {
  return qp_addr(target_.dev(), *qps_.at(i), psn_for(qps_.at(i)->qp_num(), 0x2000));
}

void TargetSession::connect(std::uint32_t i, const QpAddr& client, const ConnectParams& p) {
  connect_qp(*qps_.at(i), client, addr(i).psn, p);
}

void TargetSession::start() {
  if (rpc_) rpc_->start();
}

void TargetSession::kill(std::uint32_t i) {
  if (!passive_.empty()) target_.kill_passive_qp(passive_.at(i));
}

// ---------------------------------------------------------------- ClientSession

ClientSession::ClientSession(std::vector<ClientDevice*> devices, const RemoteRegion& region, const SessionOptions& opt)
    : region_(region), opt_(opt) {
  if (devices.empty()) throw std::invalid_argument("a client session needs a client device");
  for (std::uint32_t i = 0; i < opt.clients; ++i) {
    auto c = std::make_unique<Client>();
    c->dev = devices[i % devices.size()];
    c->conn = std::make_unique<ClientConn>(*c->dev->dev, *c->dev->pd, opt.data_size, opt.wait);
    clients_.push_back(std::move(c));
  }
}

ClientSession::~ClientSession() {
  clients_.clear();
}

QpAddr ClientSession::addr(std::uint32_t i) const {
  Client& c = *clients_.at(i);
  return qp_addr(*c.dev->dev, c.conn->qp(), psn_for(c.conn->qp().qp_num(), 0x1000));
}

void ClientSession::connect(std::uint32_t i, const QpAddr& target) {
  Client& c = *clients_.at(i);
  connect_qp(c.conn->qp(), target, addr(i).psn, opt_.connect);
  c.lock = make_lock(c.conn->conn(), i);
}

std::unique_ptr<LockClient> ClientSession::make_lock(Conn<UrdmaVerbs>& c, std::uint32_t i) const {
  const LockTable t = region_.table;
  switch (opt_.kind) {
    case Kind::kVolt:
      return std::make_unique<VoltLock>(c, t, region_.volt_op_id);
    case Kind::kCas:
      return std::make_unique<CasLock<UrdmaVerbs>>(c, t, BackoffParams{}, opt_.seed + i);
    case Kind::kCasBackoff: {
      BackoffParams b = opt_.backoff;
      b.enabled = true;
      return std::make_unique<CasLock<UrdmaVerbs>>(c, t, b, opt_.seed * 7919 + i);
    }
    case Kind::kTicket:
      return std::make_unique<TicketLock<UrdmaVerbs>>(c, t, opt_.ticket_poll_delay_ns);
    case Kind::kRpc:
      return std::make_unique<RpcLock<UrdmaVerbs>>(c);
  }
  throw std::logic_error("unknown lock kind");
}

// ---------------------------------------------------------------- LockSession

LockSession::LockSession(Target& target, std::vector<ClientDevice*> devices, const SessionOptions& opt)
    : target_(target, opt.kind, opt.clients, opt.rpc_spin), clients_(std::move(devices), remote_region(target), opt) {
  for (std::uint32_t i = 0; i < opt.clients; ++i) {
    target_.connect(i, clients_.addr(i), opt.connect);
    clients_.connect(i, target_.addr(i));
  }
  target_.start();
}

LockSession::~LockSession() = default;

void LockSession::kill_client(std::uint32_t i) {
  clients_.kill(i);
  target_.kill(i);
}

}  // namespace volt
