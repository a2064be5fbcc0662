// SPDX-License-Identifier: GPL-2.0
// Lock clients of one kind over urdma and the target's side of their
// connections.  TargetSession (the lock host's QPs, and for the RPC lock its
// server thread) and ClientSession (QPs, Conns, LockClients) can live in two
// processes (volt-bench --mode target|client, addresses swapped over TCP);
// LockSession puts both in one (tests, volt-bench's single-process mode).
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

// What a client needs to know of the target's region.
struct RemoteRegion {
  LockTable table;
  std::uint64_t data_base = 0;  // guarded data of lock i at data_base + i * data_size
  std::uint32_t data_size = 0;
  std::uint32_t volt_op_id = 1;
  std::uint64_t data_addr(std::uint64_t lock) const { return data_base + lock * data_size; }
};

RemoteRegion remote_region(const Target& t);

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

// The target's QPs for `clients` clients of one kind (an RPC server for kRpc).
class TargetSession {
 public:
  TargetSession(Target& target, Kind kind, std::uint32_t clients, bool rpc_spin);
  ~TargetSession();
  TargetSession(const TargetSession&) = delete;
  TargetSession& operator=(const TargetSession&) = delete;

  QpAddr addr(std::uint32_t i) const;
  void connect(std::uint32_t i, const QpAddr& client, const ConnectParams& p);
  // After every connect: starts the RPC server (if any).
  void start();
  std::uint32_t qpn(std::uint32_t i) const { return qps_.at(i)->qp_num(); }
  // The target's side of client i's connection dies.
  void kill(std::uint32_t i);
  RpcServer* rpc() { return rpc_.get(); }

 private:
  Target& target_;
  std::unique_ptr<RpcServer> rpc_;
  std::vector<urdma::Qp*> qps_;
  std::vector<std::size_t> passive_;
};

// `clients` clients, round-robin over `devices`, each with its own QP.
class ClientSession {
 public:
  ClientSession(std::vector<ClientDevice*> devices, const RemoteRegion& region, const SessionOptions& opt);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  std::uint32_t size() const { return static_cast<std::uint32_t>(clients_.size()); }
  QpAddr addr(std::uint32_t i) const;
  // Connects client i and makes its LockClient.
  void connect(std::uint32_t i, const QpAddr& target);
  LockClient& lock(std::uint32_t i) { return *clients_.at(i)->lock; }
  Conn<UrdmaVerbs>& conn(std::uint32_t i) { return clients_.at(i)->conn->conn(); }
  void kill(std::uint32_t i) { clients_.at(i)->conn->destroy_qp(); }

 private:
  struct Client {
    ClientDevice* dev = nullptr;
    std::unique_ptr<ClientConn> conn;
    std::unique_ptr<LockClient> lock;
  };
  std::unique_ptr<LockClient> make_lock(Conn<UrdmaVerbs>& c, std::uint32_t i) const;

  RemoteRegion region_;
  SessionOptions opt_;
  std::vector<std::unique_ptr<Client>> clients_;
};

// Both halves in one process, connected.
class LockSession {
 public:
  LockSession(Target& target, std::vector<ClientDevice*> devices, const SessionOptions& opt);
  ~LockSession();

  std::uint32_t size() const { return clients_.size(); }
  LockClient& lock(std::uint32_t i) { return clients_.lock(i); }
  Conn<UrdmaVerbs>& conn(std::uint32_t i) { return clients_.conn(i); }
  // The target-side QP number of client i (what the target sees requests on).
  std::uint32_t target_qpn(std::uint32_t i) const { return target_.qpn(i); }
  RpcServer* rpc() { return target_.rpc(); }
  // Client i's connection dies: its QP at the client and the target's QP
  // for it are destroyed (VOLT then frees what it held, drops what it waited for).
  void kill_client(std::uint32_t i);
  // Client i's process is killed: its QP is gone and nobody tells the
  // target, whose QP stays up until urdma's keep-alive finds the peer dead.
  void vanish_client(std::uint32_t i) { clients_.kill(i); }

 private:
  TargetSession target_;
  ClientSession clients_;
};

}  // namespace volt
