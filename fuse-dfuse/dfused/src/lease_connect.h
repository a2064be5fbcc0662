// SPDX-License-Identifier: GPL-2.0-only
// LeaseClient::connect when dfused is built with the lease client library
// (target dfuse_lease_client); otherwise a stub that says so.
#pragma once

#include <memory>

#include "dfuse/lease_client.h"

namespace dfuse::dfused {

// Throws LeaseError when the service is unreachable or the library missing.
std::unique_ptr<LeaseClient> connect_lease_client(const LeaseClientOptions& options,
                                                  LeaseClient::RevokeHandler on_revoke);

}  // namespace dfuse::dfused
