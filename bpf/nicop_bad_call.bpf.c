// SPDX-License-Identifier: GPL-2.0
/*
 * Test data: a NIC operation that calls a function of its own (a BPF-to-BPF
 * call).  It compiles, and librte_bpf must refuse to load it: it runs one
 * function, so everything else must be static __always_inline.
 */
#include "nicop.h"

static __attribute__((noinline)) u64 twice(u64 off)
{
	return nicop_load(off) * 2;
}

SEC("nicop")
int bad_call(struct nicop_ctx *ctx)
{
	nicop_answer(0, twice(0) + twice(8));
	return 0;
}
