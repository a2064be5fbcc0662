// SPDX-License-Identifier: GPL-2.0
// On-CPU time of this process's threads by name, from /proc/self/task/*
// (schedstat: nanoseconds the thread ran, wake-ups and sleeps included).
// urdma names each device's engine thread "urdma-<device name>" (15 bytes).
#pragma once

#include <cstdint>
#include <string>

namespace volt {

struct ThreadCpu {
  std::uint64_t matching_ns = 0;  // threads whose name starts with the prefix
  std::uint64_t other_ns = 0;     // every other thread of the process (live ones only)
};

ThreadCpu thread_cpu(const std::string& name_prefix);

// The engine thread name of the device called `device_name`.
std::string engine_thread_name(const std::string& device_name);

}  // namespace volt
