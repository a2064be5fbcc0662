// SPDX-License-Identifier: GPL-2.0
/*
 * Test data: a NIC operation that calls a helper the runtime does not give.
 * It compiles, and librte_bpf must refuse to load it (the call cannot be
 * resolved to any of the runtime's helpers).
 */
#include "nicop.h"

extern u64 nicop_format_disk(u64 what);

SEC("nicop")
int bad_helper(struct nicop_ctx *ctx)
{
	nicop_answer(0, nicop_format_disk(ctx->arg0));
	return 0;
}
