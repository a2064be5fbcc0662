// SPDX-License-Identifier: GPL-2.0
#include "filenames.h"

namespace fastpath::rubble {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string trim_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

FileKind classify(const std::string& name) {
  if (ends_with(name, ".sst")) return FileKind::kSst;
  if (name == "CURRENT" || name == "IDENTITY" || starts_with(name, "MANIFEST-") || starts_with(name, "OPTIONS-") ||
      ends_with(name, ".log") || ends_with(name, ".dbtmp"))
    return FileKind::kMirrored;
  return FileKind::kLocal;
}

std::string check_file_name(const std::string& name) {
  if (name.empty() || name.size() > 255) return "file name must have 1 to 255 characters";
  if (name == "." || name == ".." || name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    return "file name '" + name + "' is not a plain name in the database directory";
  return "";
}

bool same_dir(const std::string& a, const std::string& b) {
  return trim_slashes(a) == trim_slashes(b);
}

std::optional<std::string> name_in_dir(const std::string& path, const std::string& dir) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  if (!same_dir(path.substr(0, slash), dir)) return std::nullopt;
  std::string name = path.substr(slash + 1);
  if (!check_file_name(name).empty()) return std::nullopt;
  return name;
}

}  // namespace fastpath::rubble
