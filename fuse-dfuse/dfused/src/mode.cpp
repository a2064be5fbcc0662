// SPDX-License-Identifier: GPL-2.0-only
#include "mode.h"

namespace dfuse::dfused {

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kAuto:
      return "auto";
    case Mode::kLease:
      return "lease";
    case Mode::kWriteback:
      return "writeback";
    case Mode::kWritethrough:
      return "writethrough";
  }
  return "?";
}

std::optional<Mode> parse_mode(std::string_view text) {
  for (Mode m : {Mode::kAuto, Mode::kLease, Mode::kWriteback, Mode::kWritethrough})
    if (mode_name(m) == text) return m;
  return std::nullopt;
}

ModeDecision decide_mode(Mode requested, bool kernel_offers_leases, bool have_lease_service) {
  switch (requested) {
    case Mode::kLease:
      if (!kernel_offers_leases)
        return {false, Mode::kLease,
                "--mode lease: the kernel did not offer DFUSE lease mode in FUSE_INIT (flags2 bit 62): it runs "
                "without the fs/fuse lease patches. Boot the patched kernel, or use --mode auto (falls back to "
                "writethrough) or --mode writethrough"};
      if (!have_lease_service) return {false, Mode::kLease, "--mode lease needs --lease-service host:port"};
      return {true, Mode::kLease, "requested with --mode lease; the kernel offers lease mode"};
    case Mode::kWriteback:
      return {true, Mode::kWriteback, "requested with --mode writeback: kernel caches are NOT coherent across nodes"};
    case Mode::kWritethrough:
      return {true, Mode::kWritethrough, "requested with --mode writethrough"};
    case Mode::kAuto:
      break;
  }
  if (kernel_offers_leases && have_lease_service)
    return {true, Mode::kLease, "auto: the kernel offers lease mode and --lease-service is set"};
  if (kernel_offers_leases)
    return {true, Mode::kWritethrough, "auto: the kernel offers lease mode but no --lease-service is given"};
  return {true, Mode::kWritethrough,
          "auto: the kernel does not offer lease mode (stock FUSE); writethrough keeps nodes coherent without "
          "caching"};
}

}  // namespace dfuse::dfused
