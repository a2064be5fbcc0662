// SPDX-License-Identifier: GPL-2.0
#include "fastpath/cli.h"
#include "fastpath/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fastpath::cli {
namespace {

TEST(ParseSize, AcceptsPlainAndSuffixed) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("4K"), 4096u);
  EXPECT_EQ(parse_size("4k"), 4096u);
  EXPECT_EQ(parse_size("4KiB"), 4096u);
  EXPECT_EQ(parse_size("1M"), 1u << 20);
  EXPECT_EQ(parse_size("2G"), 2ULL << 30);
  EXPECT_EQ(parse_size("1T"), 1ULL << 40);
}

TEST(ParseSize, RejectsGarbageWithAClearMessage) {
  for (const char* bad : {"", "K", "4X", "4KB2", "-1", "1.5G", "99999999999999999999", "20000000T"}) {
    try {
      parse_size(bad);
      FAIL() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("invalid size"), std::string::npos) << e.what();
    }
  }
}

TEST(Parse, HelpReturnsZeroAndBadOptionNonZero) {
  CLI::App app{"test"};
  std::string size = "4K";
  app.add_option("--size", size)->check(size_validator());
  {
    std::vector<std::string> args{"prog", "--size", "8K"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    EXPECT_EQ(parse(app, static_cast<int>(argv.size()), argv.data()), -1);
    EXPECT_EQ(size, "8K");
  }
  {
    std::vector<std::string> args{"prog", "--size", "8Q"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    testing::internal::CaptureStderr();
    EXPECT_NE(parse(app, static_cast<int>(argv.size()), argv.data()), 0);
    EXPECT_NE(testing::internal::GetCapturedStderr().find("invalid size"), std::string::npos);
  }
}

TEST(WriteReadyFile, WritesTheAddressAndLeavesNoTemporary) {
  TempDir d;
  const std::string path = d.path() + "/ready";
  write_ready_file(path, "127.0.0.1:4242");
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "127.0.0.1:4242");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_THROW(write_ready_file(d.path() + "/missing/ready", "x"), std::runtime_error);
}

}  // namespace
}  // namespace fastpath::cli
