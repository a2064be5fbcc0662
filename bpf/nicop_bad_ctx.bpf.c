// SPDX-License-Identifier: GPL-2.0
/*
 * Test data: a NIC operation that reads the word just past its context.
 * It compiles, and librte_bpf's validator must refuse it ("memory boundary
 * violation").
 */
#include "nicop.h"

SEC("nicop")
int bad_ctx(struct nicop_ctx *ctx)
{
	u64 *past = (u64 *)((char *)ctx + sizeof(*ctx));

	nicop_answer(0, *past);
	return 0;
}
