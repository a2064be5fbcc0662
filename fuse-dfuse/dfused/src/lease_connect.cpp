// SPDX-License-Identifier: GPL-2.0-only
#include "lease_connect.h"

namespace dfuse::dfused {

std::unique_ptr<LeaseClient> connect_lease_client(const LeaseClientOptions& options,
                                                  LeaseClient::RevokeHandler on_revoke) {
#ifdef DFUSED_HAVE_LEASE_CLIENT
  return LeaseClient::connect(options, std::move(on_revoke));
#else
  (void)on_revoke;
  throw LeaseError(
      "dfused was built without the lease client library (CMake target dfuse_lease_client), so it "
      "cannot reach " +
      options.address + "; rebuild with fuse-dfuse/client present, or drop --lease-service");
#endif
}

}  // namespace dfuse::dfused
