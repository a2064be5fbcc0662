// SPDX-License-Identifier: GPL-2.0
// A simulated link between two urdma devices in one process: what one end
// sends, the other receives, after seeded drops, duplicates, reordering and
// corruption.  Each end's poll_fd() is an eventfd, so the engines sleep and
// wake as they do on a real link.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "fastpath/unique_fd.h"
#include "urdma/packet_io.h"

namespace urdma::test {

struct Faults {
  double drop = 0, dup = 0, reorder = 0, corrupt = 0;
  std::uint64_t seed = 1;
};

class SimLink {
 public:
  class End;
  // Returns the two ends; the link lives as long as either end does.
  static std::pair<std::unique_ptr<PacketIo>, std::unique_ptr<PacketIo>> make(const char* ip_a, const char* ip_b,
                                                                              Faults f = {}, int mtu = 1500);
  struct Stats {
    std::uint64_t sent = 0, dropped = 0, duplicated = 0, reordered = 0, corrupted = 0;
  };
  Stats stats() {
    std::lock_guard lk(mu_);
    return stats_;
  }
  // Cuts the link (both directions) until restored: a peer that vanishes.
  void cut(bool on) {
    std::lock_guard lk(mu_);
    cut_ = on;
  }

  std::mutex mu_;
  Faults faults_;
  std::mt19937_64 rng_;
  std::deque<std::vector<std::uint8_t>> q_[2];
  fastpath::UniqueFd ev_[2];
  Stats stats_;
  bool cut_ = false;
  // What each end's resolve() was last told (network order), and how often.
  std::atomic<std::uint32_t> resolved_[2]{};
  std::atomic<int> resolves_[2]{};

  void deliver(int to, std::vector<std::uint8_t> pkt) {
    std::lock_guard lk(mu_);
    if (cut_) return;
    ++stats_.sent;
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng_) < faults_.drop) {
      ++stats_.dropped;
      return;
    }
    if (u(rng_) < faults_.corrupt && pkt.size() > 20) {
      ++stats_.corrupted;
      pkt[20 + rng_() % (pkt.size() - 20)] ^= static_cast<std::uint8_t>(1 + rng_() % 255);
    }
    const bool dup = u(rng_) < faults_.dup;
    auto& q = q_[to];
    if (u(rng_) < faults_.reorder && !q.empty()) {
      ++stats_.reordered;
      q.insert(q.end() - 1, pkt);  // overtakes the packet sent just before it
    } else {
      q.push_back(pkt);
    }
    if (dup) {
      ++stats_.duplicated;
      q.push_back(q.back());
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(ev_[to].get(), &one, sizeof one);
  }
};

class SimLink::End : public PacketIo {
 public:
  End(std::shared_ptr<SimLink> l, int me, const char* ip, int mtu) : link_(std::move(l)), me_(me), mtu_(mtu) {
    inet_pton(AF_INET, ip, &ip_);
  }
  bool send(std::span<const std::uint8_t> p) override {
    link_->deliver(1 - me_, std::vector<std::uint8_t>(p.begin(), p.end()));
    return true;
  }
  std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) override {
    std::lock_guard lk(link_->mu_);
    held_.clear();
    auto& q = link_->q_[me_];
    while (!q.empty() && held_.size() < max) {
      held_.push_back(std::move(q.front()));
      q.pop_front();
    }
    for (auto& h : held_) out.push_back({h.data(), h.size()});
    return held_.size();
  }
  int poll_fd() const override { return link_->ev_[me_].get(); }
  void ack_poll_fd() override {
    std::uint64_t v;
    [[maybe_unused]] auto r = ::read(link_->ev_[me_].get(), &v, sizeof v);
  }
  in_addr local_ip() const override { return ip_; }
  int link_mtu() const override { return mtu_; }
  std::string describe() const override { return "sim"; }
  void resolve(std::uint32_t ip) override {
    link_->resolved_[me_].store(ip);
    link_->resolves_[me_].fetch_add(1);
  }
  std::shared_ptr<SimLink> link() const { return link_; }

 private:
  std::shared_ptr<SimLink> link_;
  int me_;
  int mtu_;
  in_addr ip_{};
  std::vector<std::vector<std::uint8_t>> held_;
};

inline std::pair<std::unique_ptr<PacketIo>, std::unique_ptr<PacketIo>> SimLink::make(const char* a, const char* b,
                                                                                     Faults f, int mtu) {
  auto l = std::make_shared<SimLink>();
  l->faults_ = f;
  l->rng_.seed(f.seed);
  for (auto& e : l->ev_) e = fastpath::UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  return {std::make_unique<End>(l, 0, a, mtu), std::make_unique<End>(l, 1, b, mtu)};
}

}  // namespace urdma::test
