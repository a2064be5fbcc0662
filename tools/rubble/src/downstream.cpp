// SPDX-License-Identifier: GPL-2.0
#include "downstream.h"

#include <future>

#include "client.h"
#include "fastpath/report.h"
#include "procstat.h"

namespace fastpath::rubble {

grpc::ChannelArguments channel_arguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& addr) {
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), channel_arguments());
}

Downstream::Downstream(std::string addr, std::chrono::milliseconds timeout)
    : addr_(std::move(addr)), timeout_(timeout) {}

Downstream::~Downstream() {
  close();
}

std::string Downstream::connect() {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::string why;
  for (;;) {
    wire::NodeState st;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto status = ChainClient::state(addr_, &st, std::max(left, std::chrono::milliseconds(100)));
    if (status.ok() && !st.link_addr().empty()) {
      link_addr_ = st.link_addr();
      return "";
    }
    why = status.ok() ? "it reports no chain link address (an older rubble-node?)" : describe(status);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "cannot reach the successor at " + addr_ + " within " + fixed(timeout_.count() / 1000.0, 1) + " s (" + why +
         "): start the chain from the tail (tail, then middle, then head), or fix --next";
}

void Downstream::cancel() {
  cancelled_ = true;
  std::lock_guard lock(socket_mu_);
  if (socket_) socket_->shutdown();
}

std::string Downstream::open(const wire::Hello& hello, wire::ChainAck* reply, AckFn on_ack, EndFn on_end) {
  on_ack_ = std::move(on_ack);
  on_end_ = std::move(on_end);
  if (link_addr_.empty())
    if (auto e = connect(); !e.empty()) return e;
  std::unique_ptr<LinkSocket> socket;
  if (auto e = connect_link(link_addr_, timeout_, &socket); !e.empty()) return "the successor at " + addr_ + ": " + e;
  {
    std::lock_guard lock(socket_mu_);
    socket_ = std::move(socket);
    if (cancelled_) socket_->shutdown();
  }
  wire::ChainBatch first;
  *first.mutable_hello() = hello;
  if (!socket_->write(first)) return "the successor at " + addr_ + " closed the connection before the Hello";
  auto promise = std::make_shared<std::promise<wire::ChainAck>>();
  auto answer = promise->get_future();
  reader_ = std::thread([this, promise] { read_loop(promise); });
  if (answer.wait_for(timeout_) != std::future_status::ready) {
    cancel();
    return "the successor at " + addr_ + " did not answer the Hello in time: is it overloaded or stuck?";
  }
  *reply = answer.get();
  if (!reply->hello_ok())
    return reply->error().empty() ? "the successor at " + addr_ + " refused the Hello" : reply->error();
  return "";
}

void Downstream::read_loop(std::shared_ptr<std::promise<wire::ChainAck>> first) {
  name_thread("rb-acks");
  wire::ChainAck ack;
  bool answered = false;
  std::string why;
  while (socket_->read(&ack)) {
    if (!answered) {
      answered = true;
      first->set_value(ack);
      if (ack.hello_ok()) continue;
      ended_ = true;  // open() reports the refusal
      return;
    }
    if (!ack.error().empty()) {
      why = ack.error();
      break;
    }
    on_ack_(ack);
  }
  if (!answered) {
    wire::ChainAck none;
    none.set_error("the successor at " + addr_ + " closed the replication stream before answering the Hello" +
                   (socket_->error().empty() ? "" : " (" + socket_->error() + ")"));
    ended_ = true;
    first->set_value(none);
    return;
  }
  if (why.empty())
    why = "the successor at " + addr_ + " closed the replication stream (did it exit?)" +
          (socket_->error().empty() ? "" : ": " + socket_->error());
  end(why);
}

void Downstream::end(const std::string& why) {
  if (ended_.exchange(true)) return;
  if (on_end_) on_end_(why);
}

bool Downstream::write(const wire::ChainBatch& batch) {
  if (ended_.load() || !socket_) return false;
  if (!socket_->write(batch)) return false;
  bytes_sent_ += batch.GetCachedSize();  // computed when the link serialised it
  return true;
}

void Downstream::close() {
  std::lock_guard lock(close_mu_);
  if (closed_) return;
  closed_ = true;
  ended_ = true;  // no on_end after an intended close
  cancel();
  if (reader_.joinable()) reader_.join();
}

}  // namespace fastpath::rubble
