// SPDX-License-Identifier: GPL-2.0
/*
 * Test data: a NIC operation that keeps a global counter.  It compiles, and
 * librte_bpf must refuse to load it: NIC operations have no globals, static
 * data or maps (the reference to the counter cannot be resolved).
 */
#include "nicop.h"

u64 nicop_runs;

SEC("nicop")
int bad_global(struct nicop_ctx *ctx)
{
	nicop_runs++;
	nicop_answer(0, nicop_runs);
	return 0;
}
