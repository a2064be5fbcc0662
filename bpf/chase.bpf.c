// SPDX-License-Identifier: GPL-2.0
/*
 * Remote pointer chase (chase.h): follows up to arg0 links from the node at
 * va and answers with the value of the node it stops at.  The links are read
 * with nicop_region_load, which fails the run (NICOP_ST_PROG_ERROR) for an
 * address outside the region or not 8-aligned.  The loop is unrolled
 * (librte_bpf refuses back edges), CHASE_MAX_LINKS times.
 */
#include "nicop.h"
#include "chase.h"

SEC("nicop")
int chase(struct nicop_ctx *ctx)
{
	u64 links = ctx->arg0;
	u64 cur = ctx->va;
	u64 next;
	int i;

	if (ctx->event != NICOP_EV_REQUEST)
		return 0;
	if (ctx->len < CHASE_NODE_SIZE) {
		nicop_answer(CHASE_ST_BAD_OBJECT, ctx->len);
		return 0;
	}
	if (links > CHASE_MAX_LINKS) {
		nicop_answer(CHASE_ST_TOO_MANY_LINKS, links);
		return 0;
	}
	/* No early exit: clang unrolls only loops of a constant trip count. */
#pragma clang loop unroll(full)
	for (i = 0; i < CHASE_MAX_LINKS; i++) {
		if (links) {
			next = nicop_region_load(cur);
			if (next) {
				cur = next;
				links--;
			} else {
				links = 0;
			}
		}
	}
	nicop_answer(CHASE_ST_OK, nicop_region_load(cur + 8));
	return 0;
}
