// SPDX-License-Identifier: GPL-2.0
// Which files of a RocksDB directory the rubble mirror handles, and how.
#pragma once

#include <optional>
#include <string>

namespace fastpath::rubble {

enum class FileKind {
  kSst,       // NNNNNN.sst: written into slots, never sent as bytes
  kMirrored,  // CURRENT, IDENTITY, MANIFEST-*, *.log (WAL), OPTIONS-*, *.dbtmp: sent as operations
  kLocal,     // LOG*, LOCK and anything else: stays on the head
};

FileKind classify(const std::string& name);

// "" when name is a plain file name (no directory part, not . or ..).
std::string check_file_name(const std::string& name);

// Whether two spellings name the same directory (trailing slashes ignored).
bool same_dir(const std::string& a, const std::string& b);

// The file name of path when path is directly inside dir.
std::optional<std::string> name_in_dir(const std::string& path, const std::string& dir);

}  // namespace fastpath::rubble
