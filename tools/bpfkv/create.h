// SPDX-License-Identifier: GPL-2.0
// Writes a BPF-KV database: index level by level from offset 0, then the
// value log, then the superblock in the last 4096 bytes; normal buffered
// writes, then fsync.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "layout.h"

namespace fastpath::bpfkv {

struct CreateOptions {
  Params params;
  bool force = false;                // overwrite a file that is not a bpfkv database
  std::ostream* progress = nullptr;  // progress lines go here; nullptr: none
  bool progress_terminal = false;    // redraw one line instead of printing every 10%
};

struct CreateResult {
  Geometry geo;
  std::uint64_t file_size = 0;
};

// Throws std::invalid_argument for bad parameters, Error for everything else
// (an existing file that is not a database without force, I/O errors).
CreateResult create_db(const std::string& path, const CreateOptions& opts);

}  // namespace fastpath::bpfkv
