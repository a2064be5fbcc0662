// SPDX-License-Identifier: GPL-2.0
/*
 * Description: fixed outcomes (one pass, one fail, one skip) for checking the
 * runner itself.  scripts/ksft meta must report "1 passed, 1 failed,
 * 1 skipped" and exit non-zero.
 */
#include "../../kselftest_harness.h"

TEST(passes)
{
	EXPECT_EQ(1, 1);
}

TEST(fails)
{
	EXPECT_EQ(1, 2) TH_LOG("this failure is intended");
}

TEST(skips)
{
	SKIP(return, "this skip is intended");
}

TEST_HARNESS_MAIN
