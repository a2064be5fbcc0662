// SPDX-License-Identifier: GPL-2.0-only
// dfused's caching modes and the decision, taken at FUSE_INIT, of which one
// a mount runs in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dfuse::dfused {

enum class Mode {
  kAuto,          // lease if the kernel offers it and a lease service is given, else writethrough
  kLease,         // writeback cache made coherent by kernel leases (patched kernel)
  kWriteback,     // writeback cache, no leases: fast, NOT coherent across nodes
  kWritethrough,  // no data or attribute caching: coherent on a stock kernel
};

std::string_view mode_name(Mode mode);
std::optional<Mode> parse_mode(std::string_view text);

struct ModeDecision {
  bool ok = false;
  Mode mode = Mode::kWritethrough;  // never kAuto when ok
  std::string why;                  // the reason (ok) or the error and how to fix it
};

// `requested` is --mode; `kernel_offers_leases` comes from FUSE_INIT's flags2;
// `have_lease_service` is true when --lease-service is given.
ModeDecision decide_mode(Mode requested, bool kernel_offers_leases, bool have_lease_service);

}  // namespace dfuse::dfused
