// SPDX-License-Identifier: GPL-2.0
// Description: a --db directory records its chain and mode in CHAIN, and a
// node refuses a directory of another chain, another mode, or a foreign one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fastpath/temp_dir.h"
#include "identity.h"

using namespace fastpath::rubble;
namespace fs = std::filesystem;

namespace {

using fastpath::TempDir;

std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Identity, EmptyDirectoryHasNone) {
  TempDir d;
  EXPECT_FALSE(check_db_dir(d.path() + "/new", Mode::kBaseline, ""));
  EXPECT_TRUE(fs::is_directory(d.path() + "/new"));
}

TEST(Identity, RoundTripAndChecks) {
  TempDir d;
  write_identity(d.path(), Identity{"chain-a", Mode::kRubble});
  const auto id = check_db_dir(d.path(), Mode::kRubble, "");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->chain_id, "chain-a");
  EXPECT_EQ(id->mode, Mode::kRubble);
  EXPECT_NE(thrown([&] { check_db_dir(d.path(), Mode::kRubble, "chain-b"); }).find("holds data of chain 'chain-a'"),
            std::string::npos);
  EXPECT_NE(thrown([&] { check_db_dir(d.path(), Mode::kBaseline, ""); }).find("same --mode"), std::string::npos);
}

TEST(Identity, ForeignAndMalformedDirectoriesAreRefused) {
  TempDir d;
  std::ofstream(d.path() + "/CURRENT") << "MANIFEST-000001\n";
  EXPECT_NE(thrown([&] { check_db_dir(d.path(), Mode::kBaseline, ""); }).find("no CHAIN file"), std::string::npos);
  std::ofstream(d.path() + "/CHAIN") << "garbage\n";
  EXPECT_NE(thrown([&] { check_db_dir(d.path(), Mode::kBaseline, ""); }).find("malformed"), std::string::npos);
}

TEST(Identity, ChainIdsAreValidated) {
  EXPECT_EQ(check_chain_id("chain-1.a_b"), "");
  EXPECT_NE(check_chain_id(""), "");
  EXPECT_NE(check_chain_id("a/b"), "");
  EXPECT_EQ(random_id().size(), 32u);
  EXPECT_NE(random_id(), random_id());
}
