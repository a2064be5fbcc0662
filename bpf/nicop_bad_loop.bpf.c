// SPDX-License-Identifier: GPL-2.0
/*
 * Test data: a NIC operation with a loop whose bound comes from the request.
 * It compiles, and librte_bpf's validator must refuse it ("loops detected").
 */
#include "nicop.h"

SEC("nicop")
int bad_loop(struct nicop_ctx *ctx)
{
	u64 sum = 0;
	u64 i;

	for (i = 0; i < ctx->arg0; i++)
		sum += nicop_load(i * 8);
	nicop_answer(0, sum);
	return 0;
}
