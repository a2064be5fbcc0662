// SPDX-License-Identifier: GPL-2.0
#include "procstat.h"

#include <pthread.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace fastpath::rubble {

double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // The command name (field 2) may contain spaces: parse after its ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3..13 precede utime (14) and stime (15).
  for (int i = 3; i <= 13 && rest >> field; ++i) {
  }
  if (!(rest >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long long io_write_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string name;
  long long value = 0;
  while (in >> name >> value)
    if (name == "write_bytes:") return value;
  return -1;
}

void name_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

}  // namespace fastpath::rubble
