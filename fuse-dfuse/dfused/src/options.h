// SPDX-License-Identifier: GPL-2.0-only
// dfused's command line and the checks run on it before anything is mounted.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mode.h"

namespace dfuse::dfused {

struct Options {
  std::string backend;
  std::string mountpoint;
  Mode mode = Mode::kAuto;
  std::string lease_service;  // host:port, empty = none
  std::string node_id;        // default hostname:pid
  unsigned threads = 4;
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> fuse_options;           // -o, each may hold a comma list
  std::chrono::milliseconds lease_timeout{30000};  // LeaseClientOptions::unreachable_timeout
};

// Declares every option on `app`, writing into `opts`.
void add_options(CLI::App& app, Options& opts);

// Checks what CLI11 cannot: the directories, the mount point not being a
// mount already, option combinations. Makes the paths absolute. Returns an
// empty string, or an error that says what to do.
std::string check_options(Options& opts);

// One line of /proc/self/mountinfo: the mount point (unescaped) and the
// file system type; nullopt for a malformed line.
struct MountEntry {
  std::string mountpoint;
  std::string fstype;
  std::string source;
};
std::optional<MountEntry> parse_mountinfo_line(std::string_view line);

// The mount whose mount point is `path` (an absolute, canonical path), if any.
std::optional<MountEntry> find_mount(const std::string& path,
                                     const std::string& mountinfo_file = "/proc/self/mountinfo");

}  // namespace dfuse::dfused
