// SPDX-License-Identifier: GPL-2.0-only
// Description: the mode a mount runs in, decided at FUSE_INIT from --mode,
// the kernel's offer and --lease-service.
#include <gtest/gtest.h>

#include "mode.h"

using namespace dfuse::dfused;

TEST(Mode, NamesRoundTrip) {
  for (Mode m : {Mode::kAuto, Mode::kLease, Mode::kWriteback, Mode::kWritethrough})
    EXPECT_EQ(parse_mode(mode_name(m)), m);
  EXPECT_FALSE(parse_mode("cached").has_value());
}

TEST(Mode, AutoTakesLeasesOnlyWithKernelAndService) {
  auto d = decide_mode(Mode::kAuto, true, true);
  EXPECT_TRUE(d.ok);
  EXPECT_EQ(d.mode, Mode::kLease);

  d = decide_mode(Mode::kAuto, false, true);
  EXPECT_TRUE(d.ok);
  EXPECT_EQ(d.mode, Mode::kWritethrough);
  EXPECT_NE(d.why.find("does not offer lease mode"), std::string::npos) << d.why;

  d = decide_mode(Mode::kAuto, true, false);
  EXPECT_TRUE(d.ok);
  EXPECT_EQ(d.mode, Mode::kWritethrough);
  EXPECT_NE(d.why.find("--lease-service"), std::string::npos) << d.why;

  d = decide_mode(Mode::kAuto, false, false);
  EXPECT_EQ(d.mode, Mode::kWritethrough);
}

TEST(Mode, LeaseOnStockKernelIsAnErrorThatSaysWhatToDo) {
  const auto d = decide_mode(Mode::kLease, false, true);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.why.find("did not offer"), std::string::npos) << d.why;
  EXPECT_NE(d.why.find("--mode writethrough"), std::string::npos) << d.why;
  EXPECT_TRUE(decide_mode(Mode::kLease, true, true).ok);
  EXPECT_FALSE(decide_mode(Mode::kLease, true, false).ok);
}

TEST(Mode, ExplicitModesIgnoreTheOffer) {
  for (bool offered : {false, true}) {
    EXPECT_EQ(decide_mode(Mode::kWriteback, offered, true).mode, Mode::kWriteback);
    EXPECT_EQ(decide_mode(Mode::kWritethrough, offered, true).mode, Mode::kWritethrough);
  }
}
