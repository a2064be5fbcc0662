// SPDX-License-Identifier: GPL-2.0
#include "volt/arrivals.h"

#include <cstring>

namespace volt {
namespace {

constexpr std::uint8_t kSendOnly = 0x04, kCompareSwap = 0x13, kFetchAdd = 0x14, kNicOpRequest = 0xc0;
constexpr std::size_t kUdp = 8, kBth = 12;

std::uint64_t be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}
std::uint32_t be24(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 16 | std::uint32_t{p[1]} << 8 | p[2];
}

bool psn_le(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>((a - b) << 8) >> 8 <= 0;
}

class TapIo : public urdma::PacketIo {
 public:
  TapIo(std::unique_ptr<urdma::PacketIo> inner, std::shared_ptr<ArrivalLog> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}
  bool send(std::span<const std::uint8_t> p) override { return inner_->send(p); }
  std::size_t recv_burst(std::vector<urdma::RxPacket>& out, std::size_t max) override {
    const std::size_t first = out.size();
    const std::size_t n = inner_->recv_burst(out, max);
    if (log_->on())
      for (std::size_t i = first; i < out.size(); ++i) log_->record(out[i].data, out[i].len);
    return n;
  }
  int poll_fd() const override { return inner_->poll_fd(); }
  void ack_poll_fd() override { inner_->ack_poll_fd(); }
  in_addr local_ip() const override { return inner_->local_ip(); }
  int link_mtu() const override { return inner_->link_mtu(); }
  std::string describe() const override { return inner_->describe() + " (arrival log)"; }
  int fixed_udp_sport() const override { return inner_->fixed_udp_sport(); }
  std::map<std::string, std::uint64_t> counters() const override { return inner_->counters(); }

 private:
  std::unique_ptr<urdma::PacketIo> inner_;
  std::shared_ptr<ArrivalLog> log_;
};

}  // namespace

void ArrivalLog::start(std::size_t cap) {
  std::lock_guard lk(mu_);
  cap_ = cap;
  truncated_ = false;
  log_.clear();
  last_psn_.clear();
  log_.reserve(std::min<std::size_t>(cap, 1 << 20));
  on_.store(true);
}

std::vector<Arrival> ArrivalLog::take() {
  std::lock_guard lk(mu_);
  std::vector<Arrival> v;
  v.swap(log_);
  return v;
}

void ArrivalLog::record(const std::uint8_t* ip, std::size_t len) {
  if (len < 20) return;
  const std::size_t bth = static_cast<std::size_t>(ip[0] & 0xf) * 4 + kUdp;
  if (len < bth + kBth) return;
  const std::uint8_t* b = ip + bth;
  const std::uint8_t op = b[0];
  if (op != kSendOnly && op != kCompareSwap && op != kFetchAdd && op != kNicOpRequest) return;
  const std::uint8_t* h = b + kBth;
  const std::size_t need = op == kNicOpRequest ? 36 : op == kSendOnly ? 16 : 28;
  if (len < bth + kBth + need) return;
  Arrival a;
  a.qpn = be24(b + 5);
  a.opcode = op;
  if (op == kSendOnly) {
    std::memcpy(&a.va, h, 8);
    std::memcpy(&a.arg, h + 8, 8);
  } else {
    a.va = be64(h);
    a.arg = be64(h + 12 + (op == kNicOpRequest ? 4 : 0));
  }
  const std::uint32_t psn = be24(b + 9);
  std::lock_guard lk(mu_);
  auto [it, fresh] = last_psn_.try_emplace(a.qpn, psn);
  if (!fresh) {
    if (psn_le(psn, it->second)) return;  // a retransmission
    it->second = psn;
  }
  if (log_.size() >= cap_) {
    truncated_ = true;
    return;
  }
  log_.push_back(a);
}

std::unique_ptr<urdma::PacketIo> tap_arrivals(std::unique_ptr<urdma::PacketIo> inner, std::shared_ptr<ArrivalLog> log) {
  return std::make_unique<TapIo>(std::move(inner), std::move(log));
}

}  // namespace volt
