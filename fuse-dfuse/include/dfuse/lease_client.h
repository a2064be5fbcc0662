// SPDX-License-Identifier: GPL-2.0-only
// A node's connection to dfuse-leased, the lease service. dfused holds one.
//
// Semantics (per file, across all nodes): many readers or one writer. Before
// the service grants a lease it revokes every conflicting holder and waits for
// that holder's acknowledgement (the holder's kernel has flushed dirty pages
// and, for kLeaseNone, dropped its cache). A node that misses heartbeats for
// the TTL loses all its leases. After a service restart, nodes reclaim the
// leases they hold during a grace period; no new grant is made before it ends.
//
// Several services sharing etcd (dfuse-leased --etcd): the client is given
// all their addresses, registers with the one that leads (a standby
// redirects it), and when the leader's stream breaks moves to whichever
// service leads next, listing the leases it holds; the new leader knows them
// from etcd and the node keeps them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfuse/kernel_abi.h"

namespace dfuse {

using LeaseMode = abi::LeaseMode;

// Identity of a file that every node agrees on (the backend's inode number,
// rendered as a decimal string by dfused).
using FileId = std::string;

struct Grant {
  LeaseMode mode = abi::kLeaseNone;
  // Strictly increasing per file across every grant the service ever made,
  // including across service restarts. dfused passes it to the kernel.
  uint64_t generation = 0;
};

struct Revoke {
  FileId file;
  LeaseMode new_mode = abi::kLeaseNone;  // kLeaseNone or kLeaseRead
  uint64_t generation = 0;               // the grant being revoked
};

// Thrown when the service cannot be reached within the configured timeout or
// refuses a request; what() names the address and the cause.
class LeaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LeaseClientOptions {
  // host:port of dfuse-leased; several, comma-separated, for services
  // sharing etcd (any order: the client finds the leader).
  std::string address;
  std::string node_id;  // unique per node (dfused default: hostname:pid)
  std::chrono::milliseconds heartbeat{500};
  // How long acquire() keeps retrying while the service is unreachable
  // (e.g. restarting) before it throws LeaseError.
  std::chrono::milliseconds unreachable_timeout{30000};
  // Where the client reports what changes its leases' standing: the
  // service lost or found again, a move to a new leader, etcd lost by the
  // service, leases dropped for lack of heartbeats. Called on client
  // threads; none: silent.
  std::function<void(const std::string&)> log;
};

class LeaseClient {
 public:
  // Called on a client thread for every revoke aimed at this node. The
  // handler must make the kernel give the lease up (write the revoke
  // notification) and then call ack(). Handlers for different files may run
  // concurrently.
  using RevokeHandler = std::function<void(const Revoke&)>;

  // Connects and registers the node; throws LeaseError if the service is not
  // reachable within options.unreachable_timeout.
  static std::unique_ptr<LeaseClient> connect(const LeaseClientOptions& options, RevokeHandler on_revoke);
  virtual ~LeaseClient() = default;  // stops heartbeats; leases are NOT released

  // Blocks until the service grants at least `mode` for `file` to this node.
  virtual Grant acquire(const FileId& file, LeaseMode mode) = 0;
  // Acknowledges a revoke once the kernel has complied.
  virtual void ack(const Revoke& revoke) = 0;
  // Gives a lease back voluntarily (inode forgotten, file unlinked).
  virtual void release(const FileId& file) = 0;
  // Gives every lease back (clean shutdown, after the kernel flushed).
  virtual void release_all() = 0;
  // Leases this node holds according to the client (what it reclaims).
  [[nodiscard]] virtual std::vector<std::pair<FileId, Grant>> held() const = 0;
};

}  // namespace dfuse
