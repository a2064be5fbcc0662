// SPDX-License-Identifier: GPL-2.0-only
// The service epoch, persisted in the state directory as the text file
// STATE_DIR/epoch. Every start of dfuse-leased takes the next epoch, so the
// generations it grants, (epoch << 32 | counter), exceed every generation an
// earlier run granted.
#pragma once

#include <cstdint>
#include <filesystem>

namespace dfuse::leased {

struct EpochStart {
  uint32_t epoch = 0;
  bool restarted = false;  // an earlier run left an epoch behind
};

// Creates dir if missing, reads the epoch file (none: 0), writes back the
// next epoch durably (temporary file, fsync, rename, fsync of the directory)
// and returns it. Throws std::runtime_error naming the path, the cause and
// what to do (a directory that cannot be written, a malformed epoch file).
EpochStart bump_epoch(const std::filesystem::path& dir);

}  // namespace dfuse::leased
