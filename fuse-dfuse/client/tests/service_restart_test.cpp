// SPDX-License-Identifier: GPL-2.0-only
// Description: the dfuse-leased binary (TTL 1-2 s, grace 2 s) killed
// and started again on the same port and state directory: clients reclaim
// their leases, generations keep growing, nothing conflicting is granted
// during the grace period, and there is never a second writer. A service
// that stops answering (SIGSTOP) makes clients drop their leases locally
// before it could hand them to someone else. Command-line errors are clear.
#include <gtest/gtest.h>

#include <future>

#include "testutil.h"

using namespace dfuse;
using namespace dfuse::test;

namespace {

class ServiceRestartTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() || getenv("DFUSE_TEST_LOG")) std::cerr << "service log:\n" << read_file(service_.log());
  }
  TempDir dir_;
  ServiceProcess service_{dir_.path(), {"--ttl", "1", "--verbose"}};
};

TEST_F(ServiceRestartTest, ClientsReclaimAfterARestartAndGenerationsKeepGrowing) {
  // Clients drop their leases 3/4 TTL after their last answered heartbeat: a
  // TTL of 2 s leaves the restart plenty of time under load.
  service_.extra_args() = {"--ttl", "2", "--grace", "2", "--verbose"};
  service_.start();
  const std::string addr = service_.address();
  Node a(addr, "a", milliseconds(100));
  Node b(addr, "b");
  const Grant a_w = a->acquire("f1", kWrite);
  const Grant a_r = a->acquire("f2", kRead);
  const Grant b_r = b->acquire("f2", kRead);
  ASSERT_EQ(a_w.generation >> 32, 1u);

  service_.kill9();
  // An acquire made while the service is down waits for it.
  auto b_f3 = std::async(std::launch::async, [&] { return b->acquire("f3", kWrite); });
  std::this_thread::sleep_for(milliseconds(100));
  service_.start(addr);
  const auto restarted = Clock::now();

  // a asks again for a lease it holds: answered during the grace period,
  // which shows a reconnected and its reclaim of f2 was accepted.
  const Grant again = a->acquire("f2", kRead);
  EXPECT_LT(Clock::now() - restarted, milliseconds(1500));
  EXPECT_EQ(again.generation >> 32, 2u) << "a new epoch after the restart";
  EXPECT_GT(again.generation, b_r.generation);
  EXPECT_EQ(a.mode_of("f1"), kWrite) << "the reclaim of f1 was refused";
  EXPECT_EQ(b.mode_of("f2"), kRead);
  EXPECT_TRUE(a.revokes().empty());
  EXPECT_TRUE(b.revokes().empty());

  // A new writer waits for the grace period, then for a's flush.
  Node c(addr, "c");
  const Grant c_w = c->acquire("f1", kWrite);
  const auto granted_at = Clock::now();
  EXPECT_GE(granted_at - restarted, milliseconds(1800)) << "a conflicting grant during the grace period";
  EXPECT_GT(c_w.generation, a_w.generation);
  EXPECT_GT(c_w.generation, again.generation);
  ASSERT_EQ(a.revokes().size(), 1u);
  EXPECT_EQ(a.revokes()[0].revoke.generation, a_w.generation) << "the reclaimed lease kept its generation";
  EXPECT_LT(a.revokes()[0].acked, granted_at) << "two writers of f1";
  EXPECT_EQ(a.mode_of("f1"), kNone);

  const Grant g3 = b_f3.get();
  EXPECT_EQ(g3.mode, kWrite);
  EXPECT_EQ(g3.generation >> 32, 2u);
  EXPECT_TRUE(b.revokes().empty());
  (void)a_r;
}

TEST_F(ServiceRestartTest, ClientsDropTheirLeasesWhenTheServiceStopsAnswering) {
  service_.start();
  Node a(service_.address(), "a");
  const Grant g = a->acquire("f", kWrite);
  service_.signal(SIGSTOP);  // the connection stays up, nothing answers
  const auto t0 = Clock::now();
  ASSERT_TRUE(a.wait_revokes(1, milliseconds(3000)));
  const auto dropped_after = a.revokes()[0].at - t0;
  EXPECT_EQ(a.revokes()[0].revoke.new_mode, kNone);
  EXPECT_EQ(a.revokes()[0].revoke.generation, g.generation);
  EXPECT_LT(dropped_after, milliseconds(1000)) << "the service may already have given the lease away";
  EXPECT_TRUE(a->held().empty());

  service_.signal(SIGCONT);  // it expires a, a registers again with nothing
  Node b(service_.address(), "b");
  const Grant gb = b->acquire("f", kWrite);
  EXPECT_GT(gb.generation, g.generation);
  EXPECT_EQ(a.revokes().size(), 1u);
  const Grant ga = a->acquire("f", kRead);  // a works again
  EXPECT_GT(ga.generation, gb.generation);
  EXPECT_EQ(b.mode_of("f"), kRead);
}

TEST_F(ServiceRestartTest, AcquireGivesUpAfterTheUnreachableTimeoutNamingTheAddress) {
  service_.start();
  Node a(service_.address(), "a", milliseconds(0), milliseconds(600));
  a->acquire("f", kRead);
  EXPECT_EQ(service_.stop(), 0) << "SIGTERM is a clean exit";
  const auto t0 = Clock::now();
  try {
    a->acquire("g", kRead);
    FAIL() << "acquire succeeded without a service";
  } catch (const LeaseError& e) {
    EXPECT_NE(std::string(e.what()).find(service_.address()), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t0, milliseconds(1500));
  EXPECT_NE(read_file(service_.log()).find("shutting down"), std::string::npos);
}

// ---- the command line ----

int run(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = ServiceProcess::spawn(args, log);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ServiceRestartTest, APortInUseIsAClearError) {
  service_.start();
  const std::string log = dir_.path() + "/second.log";
  EXPECT_EQ(run({DFUSE_LEASED_BIN, "--listen", service_.address(), "--state-dir", dir_.path() + "/s2"}, log), 1);
  const auto out = read_file(log);
  EXPECT_NE(out.find("cannot listen on " + service_.address()), std::string::npos) << out;
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
}

TEST_F(ServiceRestartTest, AStateDirThatCannotBeUsedIsAClearError) {
  const std::string file = dir_.path() + "/not-a-dir";
  std::ofstream(file) << "x";
  const std::string log = dir_.path() + "/bad.log";
  EXPECT_EQ(run({DFUSE_LEASED_BIN, "--listen", "127.0.0.1:0", "--state-dir", file}, log), 1);
  const auto out = read_file(log);
  EXPECT_NE(out.find(file), std::string::npos) << out;
  EXPECT_NE(out.find("--state-dir"), std::string::npos) << out;
}

TEST_F(ServiceRestartTest, HelpDescribesTheOptions) {
  const std::string log = dir_.path() + "/help.log";
  EXPECT_EQ(run({DFUSE_LEASED_BIN, "--help"}, log), 0);
  const auto out = read_file(log);
  for (const char* opt : {"--listen", "--ttl", "--grace", "--min-hold-ms", "--state-dir", "--verbose"})
    EXPECT_NE(out.find(opt), std::string::npos) << opt;
}

}  // namespace
