// SPDX-License-Identifier: GPL-2.0
// The gRPC service of one rubble-node: a head or a replica behind the same
// Rubble service, the node's successor side (Forwarder), its view of the
// chain, and the role changes a new view asks for.
//
// Re-forming (Reconfigure, from rubble-ctl; idempotent, highest epoch wins):
//   - not in the view: leave (stop serving, drop both streams, acknowledge
//     nothing more);
//   - first in the view but a replica: take over as head (end the stream
//     from the old head; baseline: keep the database; rubble: copy the
//     mirror and the SSTs out of the slots and reopen as primary), then go
//     on from the last applied entry;
//   - successor changed: connect it and resend what it lacks;
//   - no successor: become the tail (acknowledge everything applied, and
//     serve reads once a rubble replica has rebuilt its overlay);
//   - a joining successor: stream to it (baseline: after a snapshot of this
//     node's database) while still acknowledging as tail; when the view
//     says it joined, hand the tail over in-band.
// A lost stream to a successor that is still in the view is retried every
// 200 ms.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "forwarder.h"
#include "head.h"
#include "link.h"
#include "options.h"
#include "replica.h"
#include "rubble.grpc.pb.h"
#include "rubble_head.h"

namespace fastpath::rubble {

// Put, Delete and Write use gRPC's callback API: a write waiting for the
// tail's acknowledgement holds no server thread.  Get too: it answers inline
// on gRPC's callback thread, without the hand-over to a sync server thread.
// The other methods are synchronous.
using NodeService = wire::Rubble::WithCallbackMethod_Put<wire::Rubble::WithCallbackMethod_Delete<
    wire::Rubble::WithCallbackMethod_Write<wire::Rubble::WithCallbackMethod_Get<wire::Rubble::Service>>>>;

class Node final : public NodeService {
 public:
  explicit Node(NodeOptions options);
  ~Node() override;

  // Checks --db, starts serving, opens the store and connects the chain
  // (head).  Returns the bound address.  Throws std::runtime_error with the
  // cause and the fix.
  std::string start();
  // Stops serving (in-flight streams are cancelled) and closes the store.
  void stop();

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext*, const wire::PutRequest*, wire::WriteReply*) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext*, const wire::DeleteRequest*,
                                   wire::WriteReply*) override;
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext*, const wire::WriteRequest*, wire::WriteReply*) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext*, const wire::GetRequest*, wire::GetReply*) override;
  grpc::Status Scan(grpc::ServerContext*, const wire::ScanRequest*, wire::ScanReply*) override;
  grpc::Status Stats(grpc::ServerContext*, const wire::StatsRequest*, wire::StatsReply*) override;
  grpc::Status State(grpc::ServerContext*, const wire::StateRequest*, wire::NodeState*) override;
  grpc::Status Reconfigure(grpc::ServerContext*, const wire::View*, wire::NodeState*) override;
  grpc::Status AddReplica(grpc::ServerContext*, const wire::Member*, wire::AddReplicaReply*) override;

 private:
  std::string listen();
  grpc::ServerUnaryReactor* on_head(grpc::CallbackServerContext* ctx,
                                    const std::function<void(Head&, Head::Done)>& start);
  void on_link(LinkSocket& link);
  Identity head_identity(const std::optional<Identity>& found) const;
  std::shared_ptr<Head> head() const;
  std::shared_ptr<Replica> replica() const;
  wire::View view() const;
  std::string role() const;
  bool adopt(const wire::View& v);  // true when v is newer than the current view
  void in_band_view(const wire::View& v);
  void on_forwarder_ack(const wire::ChainAck& ack);
  std::string converge(const wire::View& v);
  std::string converge_replica(const wire::View& v, Replica& r);
  std::string take_over(const wire::View& v);
  std::vector<ReplicaPool> replica_reports(const wire::View& v, std::string* error) const;
  std::string connect_successor(const wire::View& v, const std::string& succ, bool joining, Replica* r);
  void leave(const std::string& why);
  void maintain_loop();
  void note(const std::string& problem);
  void fill_state(wire::NodeState* st) const;
  std::string not_head() const;
  std::string not_tail() const;

  const NodeOptions options_;
  std::string address_;
  std::unique_ptr<Forwarder> forwarder_;

  mutable std::mutex mu_;  // guards the five below
  wire::View view_;
  std::shared_ptr<Head> head_;
  std::shared_ptr<Replica> replica_;
  bool removed_ = false;
  std::string problem_;

  std::mutex reconfig_mu_;  // one role change at a time
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<LinkListener> link_;  // predecessors connect here
  std::atomic<std::uint64_t> reply_bytes_sent_{0};

  std::mutex maint_mu_;
  std::condition_variable maint_cv_;
  bool maint_stop_ = false;  // guarded by maint_mu_
  std::thread maintainer_;
};

}  // namespace fastpath::rubble
