// SPDX-License-Identifier: GPL-2.0
/*
 * VOLT: a FIFO reader-writer lock run by the NIC.  volt.h has the lock's
 * layout, the commands and the statuses; nicop.h the runtime's helpers.
 *
 * Every run does, in this order:
 *   1. a release (or a holder's death) updates the lock's state;
 *   2. "promote": the head of the queue is granted as far as the state
 *      allows (one writer, or up to VOLT_MAX_READERS_PER_RUN readers);
 *   3. an acquire is granted at once if the lock allows it and nobody waits
 *      any more, else it is parked at the tail of the queue named by va.
 * Promoting before deciding keeps strict FIFO: nobody is granted past a
 * waiter, and a reader never overtakes a waiting writer.  Readers left at
 * the head by the per-run bound are granted by the next run on the lock
 * (their fellow readers' releases at the latest), never stranded.
 *
 * The holds (nicop_hold) tell the runtime who holds the lock, so that a
 * holder whose QP dies comes back here as NICOP_EV_QP_DIED, and let a
 * release check that a reader holds the lock.
 */
#include "nicop.h"
#include "volt.h"

struct volt_lock {
	u64 state;
	u64 word1;
};

/* Status of a grant now: interrupted until a writer has been granted. */
static __always_inline u32 volt_grant_status(const struct volt_lock *l)
{
	return (l->state & VOLT_STATE_INTERRUPTED) ? VOLT_ST_LOCK_INTERRUPTED : VOLT_ST_OK;
}

static __always_inline u64 volt_next_gen(struct volt_lock *l)
{
	l->word1 += 1ULL << VOLT_GEN_SHIFT;
	return l->word1 >> VOLT_GEN_SHIFT;
}

static __always_inline void volt_set_writer(struct volt_lock *l, u32 qpn)
{
	l->state = VOLT_STATE_EXCL; /* clears VOLT_STATE_INTERRUPTED */
	l->word1 = (l->word1 & ~VOLT_HOLDER_MASK) | qpn;
}

/* Grants the waiters at the head of the queue that the state allows. */
static __always_inline void volt_promote(u64 key, struct volt_lock *l)
{
	long long q;
	u32 status;
	u64 gen;
	int more = 1;
	int i;

	if (l->state & VOLT_STATE_EXCL)
		return;
	if (!(l->state & VOLT_STATE_READERS) && nicop_waiter_arg(key) == VOLT_ACQUIRE_EXCL) {
		status = volt_grant_status(l);
		gen = volt_next_gen(l);
		/* Cannot fail: the queue has a first waiter.  (No check: every
		 * branch here is one more path for librte_bpf's validator.)
		 */
		q = nicop_wake(key, status, gen);
		volt_set_writer(l, q);
		nicop_hold(key, q);
		return;
	}
	/* No early exit: clang unrolls only loops of a constant trip count. */
#pragma clang loop unroll(full)
	for (i = 0; i < VOLT_MAX_READERS_PER_RUN; i++) {
		if (more && nicop_waiter_arg(key) == VOLT_ACQUIRE_SHARED) {
			status = volt_grant_status(l);
			gen = volt_next_gen(l);
			q = nicop_wake(key, status, gen);
			l->state++;
			nicop_hold(key, q);
		} else {
			more = 0;
		}
	}
}

SEC("nicop")
int volt(struct nicop_ctx *ctx)
{
	struct volt_lock l;
	u64 key = ctx->va;
	u64 cmd = ctx->arg0;
	u32 qpn = ctx->qpn;
	u32 status;
	u64 gen;
	int grantable;

	if (ctx->len < VOLT_LOCK_SIZE) {
		if (ctx->event == NICOP_EV_REQUEST)
			nicop_answer(VOLT_ST_BAD_OBJECT, ctx->len);
		return 0;
	}
	l.state = nicop_load(0);
	l.word1 = nicop_load(8);

	if (ctx->event == NICOP_EV_QP_DIED) {
		/* A holder died: release for it (the runtime forgets its holds). */
		if ((l.state & VOLT_STATE_EXCL) && (u32)l.word1 == qpn) {
			l.state = VOLT_STATE_INTERRUPTED;
			l.word1 &= ~VOLT_HOLDER_MASK;
		} else if (l.state & VOLT_STATE_READERS) {
			l.state--;
		}
	} else if (ctx->event == NICOP_EV_REQUEST) {
		if (cmd == VOLT_RELEASE) {
			if ((l.state & VOLT_STATE_EXCL) && (u32)l.word1 == qpn) {
				l.state = 0;
				l.word1 &= ~VOLT_HOLDER_MASK;
			} else if ((l.state & VOLT_STATE_READERS) && nicop_held(key, qpn) > 0) {
				l.state--;
			} else {
				nicop_answer(VOLT_ST_NOT_OWNER, l.state);
				return 0;
			}
			nicop_unhold(key, qpn);
			nicop_answer(VOLT_ST_OK, 0);
		} else if (cmd != VOLT_ACQUIRE_EXCL && cmd != VOLT_ACQUIRE_SHARED) {
			nicop_answer(VOLT_ST_BAD_COMMAND, cmd);
			return 0;
		} else if (nicop_held(key, qpn) > 0) {
			nicop_answer(VOLT_ST_ALREADY_HELD, l.state);
			return 0;
		}
	}
	/* NICOP_EV_WAITER_GONE changes nothing: it only promotes. */

	volt_promote(key, &l);

	if (ctx->event == NICOP_EV_REQUEST && cmd != VOLT_RELEASE) {
		if (cmd == VOLT_ACQUIRE_EXCL)
			grantable = !(l.state & (VOLT_STATE_EXCL | VOLT_STATE_READERS));
		else
			grantable = !(l.state & VOLT_STATE_EXCL);
		if (grantable && nicop_waiter_qpn(key) < 0) {
			status = volt_grant_status(&l);
			gen = volt_next_gen(&l);
			if (cmd == VOLT_ACQUIRE_EXCL)
				volt_set_writer(&l, qpn);
			else
				l.state++;
			nicop_hold(key, qpn);
			nicop_answer(status, gen);
		} else {
			/* Refused when the QP's bound is reached: the runtime
			 * then answers NICOP_ST_QUEUE_FULL; nothing changed.
			 */
			nicop_park(key);
		}
	}

	nicop_store(0, l.state);
	nicop_store(8, l.word1);
	return 0;
}
