// SPDX-License-Identifier: GPL-2.0
#include "fastpath/progress.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

namespace fastpath {
namespace {

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

TEST(Progress, LogModePrintsEachDecileOnceAndADoneLine) {
  std::ostringstream out;
  {
    Progress p("load", 1000, out, /*terminal=*/false);
    for (int i = 0; i < 1000; ++i) p.add();
  }
  const std::string s = out.str();
  EXPECT_EQ(count_lines(s), 10) << s;  // 10%..90% plus the final line
  EXPECT_NE(s.find("load: 50% (500/1000)"), std::string::npos) << s;
  EXPECT_NE(s.find("(1000/1000)"), std::string::npos) << s;
  EXPECT_NE(s.find("done"), std::string::npos) << s;
}

TEST(Progress, CountsFromManyThreads) {
  std::ostringstream out;
  Progress p("mt", 40000, out, false);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) p.add();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(p.done(), 40000u);
  p.finish();
  p.finish();  // idempotent
  EXPECT_EQ(count_lines(out.str()), 10);
}

TEST(Progress, TerminalModeRedrawsOneLine) {
  std::ostringstream out;
  {
    Progress p("scan", 10, out, true);
    p.add(10);
  }
  const std::string s = out.str();
  EXPECT_EQ(s.front(), '\r');
  EXPECT_NE(s.find("100%"), std::string::npos);
  EXPECT_EQ(count_lines(s), 1);
}

}  // namespace
}  // namespace fastpath
