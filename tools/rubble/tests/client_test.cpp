// SPDX-License-Identifier: GPL-2.0
// ChainClient's failure when no member it knows answers: bounded in time,
// and the message names the members tried and what to do.
#include <gtest/gtest.h>

#include <chrono>

#include "client.h"

namespace fastpath::rubble {
namespace {

TEST(ChainClient, NoLiveMemberFailsInBoundedTimeAndSaysWhatToDo) {
  // Nothing listens on port 1 or 2 of the loopback: connection refused.
  const auto t0 = std::chrono::steady_clock::now();
  auto c = ChainClient::follow({"127.0.0.1:1", "127.0.0.1:2"}, std::chrono::milliseconds(800));
  const auto st = c.put("k", "v");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_LT(took, std::chrono::seconds(10)) << "gave up too late";
  const std::string msg = st.error_message();
  EXPECT_NE(msg.find("127.0.0.1:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("127.0.0.1:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--chain A,B,C"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no head of the chain answered"), std::string::npos) << msg;
}

}  // namespace
}  // namespace fastpath::rubble
