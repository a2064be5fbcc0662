// SPDX-License-Identifier: GPL-2.0-only
#include "log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>

namespace dfuse::dfused {

void logf(const char* format, ...) {
  char line[1024];
  int n = std::snprintf(line, sizeof(line), "dfused: ");
  va_list ap;
  va_start(ap, format);
  const int m = std::vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, format, ap);
  va_end(ap);
  n = m < 0 ? n : std::min<int>(n + m, static_cast<int>(sizeof(line)) - 2);
  line[n++] = '\n';
  (void)!::write(STDERR_FILENO, line, static_cast<size_t>(n));
}

}  // namespace dfuse::dfused
