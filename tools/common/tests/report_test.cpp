// SPDX-License-Identifier: GPL-2.0
#include "fastpath/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fastpath {
namespace {

TEST(Table, AlignsTextLeftAndNumbersRight) {
  Table t({"backend", "ops/s"});
  t.add_row({"pread", "1200"});
  t.add_row({"xrp", "35000"});
  std::ostringstream out;
  t.print(out);
  EXPECT_EQ(out.str(),
            "backend  ops/s\n"
            "-------  -----\n"
            "pread     1200\n"
            "xrp      35000\n");
}

TEST(Table, RejectsRowOfWrongWidth) {
  Table t({"a", "b"});
  EXPECT_THROW(t.add_row({"1"}), std::invalid_argument);
}

TEST(Table, JsonTurnsNumericCellsIntoNumbers) {
  Table t({"backend", "ops/s"});
  t.add_row({"xrp", "35000.5"});
  auto j = t.to_json();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["backend"], "xrp");
  EXPECT_DOUBLE_EQ(j[0]["ops/s"].get<double>(), 35000.5);
}

TEST(WriteJson, WritesAtomicallyAndFailsClearly) {
  const auto dir = std::filesystem::temp_directory_path() / "fastpath-report-test";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "r.json").string();
  write_json({{"x", 1}}, path);
  std::ifstream f(path);
  nlohmann::json back;
  f >> back;
  EXPECT_EQ(back["x"], 1);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  try {
    write_json({{"x", 1}}, "/nonexistent-dir/r.json");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/r.json"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST(Fixed, FormatsDigits) {
  EXPECT_EQ(fixed(2.5049, 2), "2.50");
  EXPECT_EQ(fixed(3, 0), "3");
}

}  // namespace
}  // namespace fastpath
