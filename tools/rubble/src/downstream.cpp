// SPDX-License-Identifier: GPL-2.0
#include "downstream.h"

#include <future>

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
    : addr_(std::move(addr)),
      timeout_(timeout),
      channel_(make_channel(addr_)),
      stub_(wire::Rubble::NewStub(channel_)) {}

Downstream::~Downstream() {
  close();
}

std::string Downstream::connect() {
  if (channel_->WaitForConnected(std::chrono::system_clock::now() + timeout_)) return "";
  return "cannot reach the successor at " + addr_ + " within " + fixed(timeout_.count() / 1000.0, 1) +
         " s: start the chain from the tail (tail, then middle, then head), or fix --next";
}

std::string Downstream::open(const wire::Hello& hello, wire::ChainAck* reply, AckFn on_ack, EndFn on_end) {
  on_ack_ = std::move(on_ack);
  on_end_ = std::move(on_end);
  stream_ = stub_->Replicate(&ctx_);
  wire::ChainBatch first;
  *first.mutable_hello() = hello;
  if (!stream_->Write(first)) return "the successor at " + addr_ + " closed the connection before the Hello";
  auto promise = std::make_shared<std::promise<wire::ChainAck>>();
  auto answer = promise->get_future();
  reader_ = std::thread([this, promise] { read_loop(promise); });
  if (answer.wait_for(timeout_) != std::future_status::ready) {
    ctx_.TryCancel();
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
  while (stream_->Read(&ack)) {
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
    none.set_error("the successor at " + addr_ + " closed the replication stream before answering the Hello");
    ended_ = true;
    first->set_value(none);
    return;
  }
  end(why.empty() ? "the successor at " + addr_ + " closed the replication stream (did it exit?)" : why);
}

void Downstream::end(const std::string& why) {
  if (ended_.exchange(true)) return;
  if (on_end_) on_end_(why);
}

bool Downstream::write(const wire::ChainBatch& batch) {
  if (ended_.load() || !stream_) return false;
  if (!stream_->Write(batch)) return false;
  bytes_sent_ += batch.GetCachedSize();  // computed when gRPC serialised it
  return true;
}

void Downstream::close() {
  std::lock_guard lock(close_mu_);
  if (closed_) return;
  closed_ = true;
  if (!stream_) return;
  ended_ = true;  // no on_end after an intended close
  ctx_.TryCancel();
  if (reader_.joinable()) reader_.join();
  stream_->Finish().IgnoreError();
}

}  // namespace fastpath::rubble
