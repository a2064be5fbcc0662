// SPDX-License-Identifier: GPL-2.0
// Child processes for tools and tests that run other programs (rubble's
// chain runner, the etcd the tests start): start one with its output in a
// log, read the end of that log, and find a free loopback port.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace fastpath {

// Starts binary with args in the background, stdout and stderr going to
// log, with an empty signal mask (the caller may block signals).  Throws
// std::runtime_error when it cannot be started.
pid_t spawn_process(const std::string& binary, const std::vector<std::string>& args, const std::string& log);

// The last max_bytes of a file ("..." in front when cut), "" if unreadable.
std::string log_tail(const std::string& path, std::size_t max_bytes = 2000);

// A loopback TCP port nobody listens on (bound, then released).
int free_loopback_port();

}  // namespace fastpath
