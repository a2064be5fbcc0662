// SPDX-License-Identifier: GPL-2.0
// The baselines' mutual-exclusion test over libibverbs: the same lock code
// (CasLock, TicketLock over Conn<IbvVerbs>) and the same critical section as
// locks_test.cpp, between two RDMA devices, e.g. rxe0 and rxe1 in the VM:
//
//   VOLT_IBV_TARGET=rxe0 VOLT_IBV_CLIENT=rxe1 [VOLT_IBV_GID=1] volt_ibv_test
//
// (tools/volt/tests/ibv_vm.sh sets up the network and runs it in the VM).
// Skips where no device is named (the host).  The RPC lock's server and
// VOLT are urdma only.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "volt/ibv_setup.h"
#include "volt/locks.h"

namespace volt::test {
namespace {

enum class IbvKind { kCas, kCasBackoff, kTicket };

struct IbvRig {
  std::unique_ptr<IbvDevice> tdev, cdev;
  std::unique_ptr<IbvTarget> target;
  std::vector<std::unique_ptr<IbvClientConn>> conns;
  std::vector<std::unique_ptr<LockClient>> locks;

  IbvRig(const char* tname, const char* cname, int gid, IbvKind kind, int clients) {
    tdev = std::make_unique<IbvDevice>(tname, gid);
    cdev = std::make_unique<IbvDevice>(cname, gid);
    target = std::make_unique<IbvTarget>(*tdev, 1, 64);
    for (int i = 0; i < clients; ++i) {
      IbvQp& tq = target->add_qp();
      auto c = std::make_unique<IbvClientConn>(*cdev, 64);
      const std::uint32_t tpsn = 0x100 + i, cpsn = 0x200 + i;
      tq.connect(*tdev, c->qp().addr(*cdev, cpsn), tpsn);
      c->qp().connect(*cdev, tq.addr(*tdev, tpsn), cpsn);
      if (kind == IbvKind::kTicket)
        locks.push_back(std::make_unique<TicketLock<IbvVerbs>>(c->conn(), target->table()));
      else
        locks.push_back(std::make_unique<CasLock<IbvVerbs>>(c->conn(), target->table(),
                                                            BackoffParams{kind == IbvKind::kCasBackoff}, 1 + i));
      conns.push_back(std::move(c));
    }
  }
  ~IbvRig() {
    locks.clear();
    conns.clear();
    target.reset();
  }
};

class IbvMutualExclusion : public ::testing::TestWithParam<IbvKind> {};

TEST_P(IbvMutualExclusion, NonAtomicCounterIsExact) {
  const char* tname = std::getenv("VOLT_IBV_TARGET");
  const char* cname = std::getenv("VOLT_IBV_CLIENT");
  if (!tname || !cname) GTEST_SKIP() << "set VOLT_IBV_TARGET and VOLT_IBV_CLIENT to two RDMA devices";
  const int gid = std::getenv("VOLT_IBV_GID") ? std::atoi(std::getenv("VOLT_IBV_GID")) : 1;
  constexpr int kClients = 4, kIters = 100;
  IbvRig rig(tname, cname, gid, GetParam(), kClients);
  std::atomic<int> writers{0}, readers{0};
  std::atomic<std::uint64_t> violations{0}, excl{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      try {
        Conn<IbvVerbs>& c = rig.conns[i]->conn();
        const std::uint64_t data = rig.target->data_addr(0);
        for (int k = 0; k < kIters; ++k) {
          const Mode m = (k + i) % 3 == 0 ? Mode::kShared : Mode::kExclusive;
          rig.locks[i]->acquire(0, m);
          if (m == Mode::kExclusive) {
            if (writers.fetch_add(1) != 0 || readers.load() != 0) violations.fetch_add(1);
            c.read(data, rig.target->rkey(), 0, 8);
            std::uint64_t v = 0;
            std::memcpy(&v, c.data(), 8);
            ++v;
            std::memcpy(c.data(), &v, 8);
            c.write(data, rig.target->rkey(), 0, 8);
            writers.fetch_sub(1);
            excl.fetch_add(1);
          } else {
            readers.fetch_add(1);
            if (writers.load() != 0) violations.fetch_add(1);
            c.read(data, rig.target->rkey(), 0, 8);
            readers.fetch_sub(1);
          }
          rig.locks[i]->release(0);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "client " << i << ": " << e.what();
        failed.store(true);
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed.load());
  std::uint64_t counter = 0;
  std::memcpy(&counter, rig.target->host(rig.target->data_addr(0)), 8);
  EXPECT_EQ(counter, excl.load());
  EXPECT_EQ(violations.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, IbvMutualExclusion,
                         ::testing::Values(IbvKind::kCas, IbvKind::kCasBackoff, IbvKind::kTicket),
                         [](const auto& info) {
                           return info.param == IbvKind::kCas          ? std::string("cas")
                                  : info.param == IbvKind::kCasBackoff ? std::string("cas_backoff")
                                                                       : std::string("ticket");
                         });

}  // namespace
}  // namespace volt::test
