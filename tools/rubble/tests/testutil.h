// SPDX-License-Identifier: GPL-2.0
// Helpers shared by the rubble tests.
#pragma once

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "fastpath/process.h"
#include "fastpath/temp_dir.h"

namespace fastpath::rubble::test {

using fastpath::TempDir;

// A loopback port nobody listens on (fastpath/process.h).
inline int closed_port() {
  return fastpath::free_loopback_port();
}

}  // namespace fastpath::rubble::test
