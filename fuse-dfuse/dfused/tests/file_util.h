// SPDX-License-Identifier: GPL-2.0-only
// Small file helpers for the mount tests; they return what the system calls
// returned so tests can assert on errno.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>

#include "fastpath/unique_fd.h"

namespace dfuse::dfused::test {

inline bool write_file(const std::string& path, const std::string& data, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  fastpath::UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd) return false;
  return ::write(fd.get(), data.data(), data.size()) == static_cast<ssize_t>(data.size());
}

// The whole file, or "<errno N>" when it cannot be opened.
inline std::string read_file(const std::string& path) {
  fastpath::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "<errno " + std::to_string(errno) + ">";
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

inline std::string pread_all(int fd, size_t max = 1 << 20) {
  std::string out(max, '\0');
  const ssize_t n = ::pread(fd, out.data(), max, 0);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// stat() errno, 0 on success.
inline int stat_errno(const std::string& path, struct stat* st = nullptr) {
  struct stat tmp {};
  return ::lstat(path.c_str(), st ? st : &tmp) == 0 ? 0 : errno;
}

inline std::set<std::string> list_dir(const std::string& path) {
  std::set<std::string> names;
  DIR* d = opendir(path.c_str());
  if (!d) return names;
  while (auto* e = readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.insert(e->d_name);
  closedir(d);
  return names;
}

}  // namespace dfuse::dfused::test
