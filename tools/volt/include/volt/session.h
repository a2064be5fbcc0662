// SPDX-License-Identifier: GPL-2.0
// A set of lock clients of one kind over urdma, connected to a Target in the
// same process: what the tests and volt-bench's single-process mode use.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "urdma/verbs.h"
#include "volt/locks.h"
#include "volt/rpc_server.h"
#include "volt/setup.h"

namespace volt {

enum class Kind { kVolt, kCas, kCasBackoff, kTicket, kRpc };

std::string kind_name(Kind k);
std::optional<Kind> parse_kind(std::string_view name);
// "volt,cas,cas-backoff,ticket,rpc"
std::string all_kind_names();

// A client device and its PD (the clients' side of the wire).
struct ClientDevice {
  std::unique_ptr<urdma::Device> dev;
  std::unique_ptr<urdma::Pd> pd;
  explicit ClientDevice(std::unique_ptr<urdma::Device> d) : dev(std::move(d)), pd(dev->alloc_pd()) {}
  ~ClientDevice() { pd.reset(); }
};

struct SessionOptions {
  Kind kind = Kind::kCas;
  std::uint32_t clients = 1;
  std::uint32_t data_size = 64;  // each client's local critical-section buffer
  WaitPolicy wait{};
  BackoffParams backoff{};  // kCasBackoff turns it on
  bool rpc_spin = false;
  std::uint64_t ticket_poll_delay_ns = 0;
  ConnectParams connect{};
  std::uint64_t seed = 1;
};

class LockSession {
 public:
  // Clients go round-robin over `devices`.  The target must have VOLT loaded
  // for Kind::kVolt.
  LockSession(Target& target, std::vector<ClientDevice*> devices, const SessionOptions& opt);
  ~LockSession();
  LockSession(const LockSession&) = delete;
  LockSession& operator=(const LockSession&) = delete;

  std::uint32_t size() const { return static_cast<std::uint32_t>(clients_.size()); }
  LockClient& lock(std::uint32_t i) { return *clients_.at(i)->lock; }
  Conn<UrdmaVerbs>& conn(std::uint32_t i) { return clients_.at(i)->conn->conn(); }
  // The target-side QP number of client i (what the target sees requests on).
  std::uint32_t target_qpn(std::uint32_t i) const { return clients_.at(i)->target_qpn; }
  RpcServer* rpc() { return rpc_.get(); }
  // Client i's connection dies: its QP at the client and the target's QP
  // for it are destroyed (VOLT then frees what it held, drops what it waited for).
  void kill_client(std::uint32_t i);

 private:
  struct Client {
    std::unique_ptr<ClientConn> conn;
    std::unique_ptr<LockClient> lock;
    std::uint32_t target_qpn = 0;
    std::size_t passive = SIZE_MAX;  // index in the target's passive QPs
  };
  std::unique_ptr<LockClient> make_lock(Conn<UrdmaVerbs>& c, std::uint32_t i) const;

  Target& target_;
  SessionOptions opt_;
  std::unique_ptr<RpcServer> rpc_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace volt
