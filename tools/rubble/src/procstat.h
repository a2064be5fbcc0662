// SPDX-License-Identifier: GPL-2.0
// CPU time of a process from /proc/PID/stat.
#pragma once

#include <sys/types.h>

namespace fastpath::rubble {

// utime + stime of pid in seconds, or a negative value when the process is
// gone or /proc cannot be read.
double cpu_seconds(pid_t pid);
// write_bytes of /proc/PID/io: bytes the process caused to be sent to the
// storage layer (page-cache writes when they are dirtied, direct I/O), or -1.
long long io_write_bytes(pid_t pid);

// Names the calling thread (shown by top -H, perf and /proc/PID/task/TID/comm;
// at most 15 characters).
void name_thread(const char* name);

}  // namespace fastpath::rubble
