// SPDX-License-Identifier: GPL-2.0
#include "volt/thread_cpu.h"

#include <filesystem>
#include <fstream>

namespace volt {

ThreadCpu thread_cpu(const std::string& name_prefix) {
  ThreadCpu t;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::string comm;
    std::uint64_t ns = 0;
    std::ifstream(e.path() / "comm") >> comm;
    if (!(std::ifstream(e.path() / "schedstat") >> ns)) continue;
    (comm.rfind(name_prefix, 0) == 0 ? t.matching_ns : t.other_ns) += ns;
  }
  return t;
}

std::string engine_thread_name(const std::string& device_name) {
  return ("urdma-" + device_name).substr(0, 15);
}

}  // namespace volt
