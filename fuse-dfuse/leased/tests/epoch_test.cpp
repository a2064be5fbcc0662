// SPDX-License-Identifier: GPL-2.0-only
// Description: the persisted service epoch: bumped on every start, a
// malformed epoch file or an unusable state directory is a clear error.
#include "epoch.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

using dfuse::leased::bump_epoch;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dfuse-epoch-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string error_of(const std::filesystem::path& dir) {
  try {
    bump_epoch(dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Epoch, StartsAtOneAndGrowsOnEveryStart) {
  TempDir dir;
  const auto state = dir.path() / "state";  // created on first use
  auto e = bump_epoch(state);
  EXPECT_EQ(e.epoch, 1u);
  EXPECT_FALSE(e.restarted);
  e = bump_epoch(state);
  EXPECT_EQ(e.epoch, 2u);
  EXPECT_TRUE(e.restarted);
  EXPECT_EQ(bump_epoch(state).epoch, 3u);
  EXPECT_FALSE(std::filesystem::exists(state / "epoch.tmp"));
}

TEST(Epoch, MalformedFileIsAnErrorAndIsLeftAlone) {
  TempDir dir;
  std::ofstream(dir.path() / "epoch") << "twelve\n";
  const auto msg = error_of(dir.path());
  EXPECT_NE(msg.find("malformed"), std::string::npos) << msg;
  std::ifstream in(dir.path() / "epoch");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "twelve");
}

TEST(Epoch, StateDirThatIsAFileIsAnError) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  const auto msg = error_of(dir.path() / "file");
  EXPECT_NE(msg.find("--state-dir"), std::string::npos) << msg;
  EXPECT_NE(msg.find((dir.path() / "file").string()), std::string::npos) << msg;
}

TEST(Epoch, UnwritableStateDirIsAnError) {
  // sysfs refuses new files even to root.
  if (!std::filesystem::is_directory("/sys/kernel")) GTEST_SKIP() << "no sysfs";
  const auto msg = error_of("/sys");
  EXPECT_NE(msg.find("cannot create /sys/epoch.tmp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--state-dir"), std::string::npos) << msg;
}

}  // namespace
