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

LockSession::LockSession(Target& target, std::vector<ClientDevice*> devices, const SessionOptions& opt)
    : target_(target), opt_(opt) {
  if (devices.empty()) throw std::invalid_argument("LockSession needs a client device");
  if (opt.kind == Kind::kRpc)
    rpc_ = std::make_unique<RpcServer>(target.dev(), target.pd(),
                                       RpcServer::Options{.locks = target.config().locks, .spin = opt.rpc_spin});
  for (std::uint32_t i = 0; i < opt.clients; ++i) {
    ClientDevice& cd = *devices[i % devices.size()];
    auto c = std::make_unique<Client>();
    c->conn = std::make_unique<ClientConn>(*cd.dev, *cd.pd, opt.data_size, opt.wait);
    urdma::Qp* tq = nullptr;
    if (rpc_) {
      tq = &rpc_->add_client();
    } else {
      c->passive = target.add_passive_qp();
      tq = &target.passive_qp(c->passive);
    }
    connect_pair(*cd.dev, *c->conn, target.dev(), *tq, opt.connect);
    c->target_qpn = tq->qp_num();
    c->lock = make_lock(c->conn->conn(), i);
    clients_.push_back(std::move(c));
  }
  if (rpc_) rpc_->start();
}

LockSession::~LockSession() {
  if (rpc_) rpc_->stop();
  clients_.clear();
  rpc_.reset();
}

std::unique_ptr<LockClient> LockSession::make_lock(Conn<UrdmaVerbs>& c, std::uint32_t i) const {
  const LockTable t = target_.table();
  switch (opt_.kind) {
    case Kind::kVolt:
      return std::make_unique<VoltLock>(c, t, target_.config().volt_op_id);
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

void LockSession::kill_client(std::uint32_t i) {
  Client& c = *clients_.at(i);
  c.conn->destroy_qp();
  if (c.passive != SIZE_MAX) target_.kill_passive_qp(c.passive);
}

}  // namespace volt
