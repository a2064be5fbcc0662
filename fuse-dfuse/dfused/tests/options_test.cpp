// SPDX-License-Identifier: GPL-2.0-only
// Description: the checks dfused runs before it mounts (directories, busy
// mount points, option combinations) and the /proc/self/mountinfo parser.
#include <gtest/gtest.h>

#include <fstream>

#include "options.h"
#include "test_util.h"

using namespace dfuse::dfused;
using dfuse::dfused::test::TempDir;

TEST(Mountinfo, ParsesEscapesAndOptionalFields) {
  auto e = parse_mountinfo_line(
      "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - fuse.dfused dfused:/srv/a\\054b rw");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->mountpoint, "/mnt/with space");
  EXPECT_EQ(e->fstype, "fuse.dfused");
  EXPECT_EQ(e->source, "dfused:/srv/a,b");
  e = parse_mountinfo_line("22 1 0:21 / /proc rw - proc proc rw");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->mountpoint, "/proc");
  EXPECT_FALSE(parse_mountinfo_line("garbage").has_value());
}

TEST(Mountinfo, FindsTheMountAtAPath) {
  TempDir dir;
  const std::string file = dir.path() + "/mountinfo";
  std::ofstream(file) << "22 1 0:21 / /proc rw - proc proc rw\n"
                      << "40 22 0:50 / /mnt/x rw - fuse.dfused dfused:/b rw\n";
  EXPECT_EQ(find_mount("/mnt/x", file)->fstype, "fuse.dfused");
  EXPECT_FALSE(find_mount("/mnt", file).has_value());
  EXPECT_TRUE(find_mount("/proc").has_value()) << "the real mountinfo";
}

TEST(CheckOptions, SaysWhatIsWrongAndHowToFixIt) {
  TempDir dir;
  Options o;
  o.backend = dir.path() + "/nope";
  o.mountpoint = dir.sub("mnt");
  auto err = check_options(o);
  EXPECT_NE(err.find("backend directory"), std::string::npos) << err;
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;

  o.backend = dir.sub("backend");
  o.mountpoint = dir.path() + "/missing";
  err = check_options(o);
  EXPECT_NE(err.find("mkdir -p"), std::string::npos) << err;

  o.mountpoint = dir.sub("backend/inner");
  err = check_options(o);
  EXPECT_NE(err.find("inside the backend"), std::string::npos) << err;

  o.mountpoint = "/proc";
  err = check_options(o);
  EXPECT_NE(err.find("already a mount"), std::string::npos) << err;
  EXPECT_NE(err.find("fusermount3 -u"), std::string::npos) << err;

  o.mountpoint = dir.sub("mnt");
  o.mode = Mode::kLease;
  err = check_options(o);
  EXPECT_NE(err.find("--lease-service"), std::string::npos) << err;

  o.lease_service = "localhost:1";
  o.backend = dir.path() + "/backend/../backend";
  EXPECT_EQ(check_options(o), "");
  EXPECT_EQ(o.backend, dir.path() + "/backend") << "paths are made canonical";
}
