// SPDX-License-Identifier: GPL-2.0
// What the lock tests share: a target and a client device over urdma's UDP
// back-end on loopback (each test its own 127.0.N.x pair, so ctest -j can
// run them side by side), and the critical section every lock must protect.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "urdma/verbs.h"
#include "volt/arrivals.h"
#include "volt/session.h"
#include "volt/setup.h"

namespace volt::test {

// 127.X.Y.1 (target) and 127.X.Y.2 (clients); X.Y from the test's name.
inline std::string subnet_for_current_test() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  std::uint32_t h = 2166136261u;
  for (char c : name) h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
  return "127." + std::to_string(20 + (h >> 8) % 200) + "." + std::to_string(h & 0xff) + ".";
}

struct Rig {
  std::shared_ptr<ArrivalLog> arrivals = std::make_shared<ArrivalLog>();
  std::unique_ptr<Target> target;
  std::unique_ptr<ClientDevice> client_dev;

  explicit Rig(bool volt, std::uint64_t locks = 4, std::uint32_t data_size = 64) {
    const std::string net = subnet_for_current_test();
    TargetConfig cfg;
    cfg.locks = locks;
    cfg.data_size = data_size;
    if (volt) cfg.volt_object = VOLT_DEFAULT_OBJECT;
    auto io = tap_arrivals(urdma::open_packet_io("udp:ip=" + net + "1"), arrivals);
    target = std::make_unique<Target>(urdma::Device::open("volt-target", std::move(io)), cfg);
    client_dev = std::make_unique<ClientDevice>(urdma::Device::open("volt-client", "udp:ip=" + net + "2"));
  }
  ~Rig() {
    target.reset();
    client_dev.reset();
  }
  std::unique_ptr<LockSession> session(Kind kind, std::uint32_t clients) {
    SessionOptions o;
    o.kind = kind;
    o.clients = clients;
    o.wait.stall_ns = 15'000'000'000;
    return std::make_unique<LockSession>(*target, std::vector<ClientDevice*>{client_dev.get()}, o);
  }
};

}  // namespace volt::test
