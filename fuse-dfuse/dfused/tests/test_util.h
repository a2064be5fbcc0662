// SPDX-License-Identifier: GPL-2.0-only
// Helpers shared by dfused's tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "fastpath/temp_dir.h"

namespace dfuse::dfused::test {

// A fastpath::TempDir that also makes subdirectories.
class TempDir : public fastpath::TempDir {
 public:
  TempDir() : fastpath::TempDir("dfused-test") {}
  std::string sub(const std::string& name) const {
    std::filesystem::create_directories(path() + "/" + name);
    return path() + "/" + name;
  }
};

}  // namespace dfuse::dfused::test
