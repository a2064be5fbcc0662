// SPDX-License-Identifier: GPL-2.0
// The baselines are written once over a verbs adapter: this instantiates
// every one of them over libibverbs (rxe in the VM), so the libibverbs side
// cannot rot while only the urdma side runs on the host.
#include <gtest/gtest.h>

#include <type_traits>

#include "volt/ibv_verbs.h"
#include "volt/locks.h"

namespace volt {

template class Conn<IbvVerbs>;
template class CasLock<IbvVerbs>;
template class TicketLock<IbvVerbs>;
template class RpcLock<IbvVerbs>;

namespace {

TEST(IbvAdapter, BaselinesInstantiateOverLibibverbs) {
  EXPECT_TRUE((std::is_base_of_v<LockClient, CasLock<IbvVerbs>>));
  EXPECT_STREQ(IbvVerbs::status_str(IBV_WC_SUCCESS), "success");
}

}  // namespace
}  // namespace volt
