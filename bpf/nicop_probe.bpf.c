// SPDX-License-Identifier: GPL-2.0
/*
 * Test data for urdma's NIC-operation runtime (tools/urdma/tests/
 * nicop_test.cpp): arg0 picks one thing to do, arg1 is its argument, so the
 * test can break each of the runtime's rules on purpose.  A valid program.
 */
#include "nicop.h"

enum probe_cmd {
	PROBE_LOAD = 1,        /* answer nicop_load(arg1) */
	PROBE_STORE = 2,       /* nicop_store(arg1, 7), answer 0 */
	PROBE_CAS = 3,         /* answer nicop_cas(arg1, 0, 9) */
	PROBE_FAA = 4,         /* answer nicop_faa(arg1, 1) */
	PROBE_REGION_LOAD = 5, /* answer nicop_region_load(arg1) */
	PROBE_ANSWER_TWICE = 6,
	PROBE_ANSWER_AND_PARK = 7,
	PROBE_NOTHING = 8,
	PROBE_RETURN_ERROR = 9,    /* answers, then returns 1 */
	PROBE_RUNTIME_STATUS = 10, /* answers NICOP_ST_TIMEOUT itself */
	PROBE_PARK = 11,           /* parks on va */
	PROBE_WAKE = 12,           /* answer nicop_wake(va, arg1, 77) */
	/* nicop_hold(va, qpn), answer 0; its NICOP_EV_QP_DIED run answers,
	 * which is not allowed
	 */
	PROBE_HOLD = 13,
	PROBE_PARK_FULL_ANSWER = 14, /* park; if refused, answer anyway */
};

SEC("nicop")
int probe(struct nicop_ctx *ctx)
{
	u64 a = ctx->arg1;

	if (ctx->event == NICOP_EV_QP_DIED) {
		nicop_answer(0, 0);
		return 0;
	}
	if (ctx->event != NICOP_EV_REQUEST)
		return 0;
	switch (ctx->arg0) {
	case PROBE_LOAD:
		nicop_answer(0, nicop_load(a));
		break;
	case PROBE_STORE:
		nicop_store(a, 7);
		nicop_answer(0, 0);
		break;
	case PROBE_CAS:
		nicop_answer(0, nicop_cas(a, 0, 9));
		break;
	case PROBE_FAA:
		nicop_answer(0, nicop_faa(a, 1));
		break;
	case PROBE_REGION_LOAD:
		nicop_answer(0, nicop_region_load(a));
		break;
	case PROBE_ANSWER_TWICE:
		nicop_answer(0, 1);
		nicop_answer(0, 2);
		break;
	case PROBE_ANSWER_AND_PARK:
		nicop_answer(0, 1);
		nicop_park(ctx->va);
		break;
	case PROBE_NOTHING:
		break;
	case PROBE_RETURN_ERROR:
		nicop_answer(0, 1);
		return 1;
	case PROBE_RUNTIME_STATUS:
		nicop_answer(NICOP_ST_TIMEOUT, 0);
		break;
	case PROBE_PARK:
		nicop_park(ctx->va);
		break;
	case PROBE_WAKE:
		nicop_answer(0, nicop_wake(ctx->va, a, 77));
		break;
	case PROBE_HOLD:
		nicop_hold(ctx->va, ctx->qpn);
		nicop_answer(0, 0);
		break;
	case PROBE_PARK_FULL_ANSWER:
		if (nicop_park(ctx->va) < 0)
			nicop_answer(0, 1);
		break;
	default:
		nicop_answer(1, ctx->arg0);
	}
	return 0;
}
