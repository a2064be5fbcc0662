// SPDX-License-Identifier: GPL-2.0-only
#include "epoch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "fastpath/unique_fd.h"

namespace dfuse::leased {

namespace {

// message names the path; err 0: it says it all.
[[noreturn]] void fail(const std::string& message, int err) {
  throw std::runtime_error(message + (err != 0 ? std::string(": ") + std::strerror(err) : std::string()) +
                           "; pass a writable directory with --state-dir");
}

uint32_t read_epoch(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail("cannot read the epoch file " + file.string(), errno);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() ||
      value >= std::numeric_limits<uint32_t>::max())
    throw std::runtime_error("epoch file " + file.string() +
                             " is malformed (expected one decimal number below 2^32-1, "
                             "found '" +
                             text.substr(0, 40) +
                             "'); restore it, or remove it only if no node holds a "
                             "lease granted by an earlier run");
  return static_cast<uint32_t>(value);
}

void write_durably(const std::filesystem::path& dir, const std::filesystem::path& file, const std::string& text) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  {
    fastpath::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) fail("cannot create " + tmp.string(), errno);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      fail("cannot write " + tmp.string(), errno);
    if (::fsync(fd.get()) != 0) fail("cannot sync " + tmp.string(), errno);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) fail("cannot rename " + tmp.string() + " to " + file.string(), errno);
  fastpath::UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd || ::fsync(dfd.get()) != 0) fail("cannot sync the state directory " + dir.string(), errno);
}

}  // namespace

EpochStart bump_epoch(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    fail("state directory " + dir.string() + " is not a directory", 0);
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create the state directory " + dir.string(), ec.value());
  if (!std::filesystem::is_directory(dir)) fail("state directory " + dir.string() + " is not a directory", 0);
  const std::filesystem::path file = dir / "epoch";
  EpochStart start;
  if (std::filesystem::exists(file)) {
    start.epoch = read_epoch(file);
    start.restarted = true;
  }
  ++start.epoch;
  write_durably(dir, file, std::to_string(start.epoch) + "\n");
  return start;
}

}  // namespace dfuse::leased
