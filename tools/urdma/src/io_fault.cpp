// SPDX-License-Identifier: GPL-2.0
// The fault injector: a PacketIo over another that damages what it receives
// (drops, duplicates, reorders, corrupts) with a seeded generator, so that a
// test run can be replayed.  Sends pass through untouched: faults on one
// side's receive path are faults on the other side's send path.
#include <cstdio>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "urdma/packet_io.h"

namespace urdma {
namespace {

struct Faults {
  double drop = 0, dup = 0, reorder = 0, corrupt = 0;
  std::uint64_t seed = 1;
};

class FaultIo final : public PacketIo {
 public:
  FaultIo(std::unique_ptr<PacketIo> inner, const Faults& f) : inner_(std::move(inner)), f_(f), rng_(f.seed) {}

  bool send(std::span<const std::uint8_t> p) override { return inner_->send(p); }
  void flush() override { inner_->flush(); }
  void resolve(std::uint32_t ip) override { inner_->resolve(ip); }
  std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) override;
  int poll_fd() const override { return inner_->poll_fd(); }
  void ack_poll_fd() override { inner_->ack_poll_fd(); }
  in_addr local_ip() const override { return inner_->local_ip(); }
  int link_mtu() const override { return inner_->link_mtu(); }
  int fixed_udp_sport() const override { return inner_->fixed_udp_sport(); }
  bool repair_icrc(const RxPacket& rx) override { return inner_->repair_icrc(rx); }
  std::string describe() const override;
  std::map<std::string, std::uint64_t> counters() const override;

 private:
  using Bytes = std::vector<std::uint8_t>;
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  void damage(const RxPacket& p);
  void corrupt(Bytes& b);

  std::unique_ptr<PacketIo> inner_;
  Faults f_;
  std::mt19937_64 rng_;
  std::vector<RxPacket> in_;
  std::deque<Bytes> ready_;  // damaged, waiting to be returned
  std::vector<Bytes> out_;   // returned by the last recv_burst: valid until the next
  Bytes held_;               // a packet held back to be overtaken
  bool holding_ = false;
  IoCounter received_, dropped_, duplicated_, reordered_, corrupted_, delivered_;
};

// Flips one byte after the IPv4 header (the part the ICRC protects) to a
// different value.
void FaultIo::corrupt(Bytes& b) {
  if (b.size() <= 20) return;
  b[20 + rng_() % (b.size() - 20)] ^= static_cast<std::uint8_t>(1 + rng_() % 255);
  ++corrupted_;
}

// Every packet draws drop, corrupt, dup and reorder in that order, whatever
// the outcome, so one seed always gives the same fates.
void FaultIo::damage(const RxPacket& p) {
  ++received_;
  if (chance(f_.drop)) {
    ++dropped_;
    return;
  }
  Bytes b(p.data, p.data + p.len);
  if (chance(f_.corrupt)) corrupt(b);
  const bool dup = chance(f_.dup);
  const bool reorder = chance(f_.reorder);
  if (dup) {
    ++duplicated_;
    ready_.push_back(b);
  }
  if (reorder && !holding_) {
    ++reordered_;
    held_ = std::move(b);
    holding_ = true;
    return;
  }
  ready_.push_back(std::move(b));
  if (holding_) {  // the held packet goes right after the one that overtook it
    ready_.push_back(std::move(held_));
    holding_ = false;
  }
}

std::size_t FaultIo::recv_burst(std::vector<RxPacket>& out, std::size_t max) {
  out_.clear();
  if (ready_.size() < max) {
    in_.clear();
    const std::size_t n = inner_->recv_burst(in_, max - ready_.size());
    for (const RxPacket& p : in_) damage(p);
    if (n == 0 && holding_) {  // nothing came to overtake it: let it go now
      ready_.push_back(std::move(held_));
      holding_ = false;
    }
  }
  while (!ready_.empty() && out_.size() < max) {
    out_.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
  for (const Bytes& b : out_) {
    out.push_back({b.data(), b.size()});
    ++delivered_;
  }
  return out_.size();
}

std::string FaultIo::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "fault(drop=%g dup=%g reorder=%g corrupt=%g seed=%llu) over ", f_.drop, f_.dup,
                f_.reorder, f_.corrupt, static_cast<unsigned long long>(f_.seed));
  return buf + inner_->describe();
}

std::map<std::string, std::uint64_t> FaultIo::counters() const {
  auto c = inner_->counters();
  c["fault_received"] = received_.get();
  c["fault_dropped"] = dropped_.get();
  c["fault_duplicated"] = duplicated_.get();
  c["fault_reordered"] = reordered_.get();
  c["fault_corrupted"] = corrupted_.get();
  c["fault_delivered"] = delivered_.get();
  return c;
}

}  // namespace

std::unique_ptr<PacketIo> wrap_fault_io(std::unique_ptr<PacketIo> inner, const IoSpec& spec) {
  Faults f;
  f.drop = spec.get_real("drop", 0, 0, 1);
  f.dup = spec.get_real("dup", 0, 0, 1);
  f.reorder = spec.get_real("reorder", 0, 0, 1);
  f.corrupt = spec.get_real("corrupt", 0, 0, 1);
  f.seed = static_cast<std::uint64_t>(spec.get_int("seed", 1, 0, INT64_MAX));
  return std::make_unique<FaultIo>(std::move(inner), f);
}

}  // namespace urdma
