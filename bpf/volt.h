/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VOLT: a FIFO reader-writer lock run by the NIC.  bpf/volt.bpf.c runs on
 * urdma's NIC-operation runtime (bpf/nicop.h); C++ (tools/volt) includes this
 * header for the commands, statuses and the lock's layout.
 *
 * Lock object: VOLT_LOCK_SIZE bytes at any 8-aligned va of a region that
 * allows NIC operations, zero when the lock is first used.  Only the NIC
 * touches it (its waiters live in the NIC's queue named by va):
 *
 *   word 0 (state)  bit 63 VOLT_STATE_EXCL         held exclusively
 *                   bit 62 VOLT_STATE_INTERRUPTED  an exclusive holder died
 *                                                  holding it; cleared by the
 *                                                  next exclusive grant
 *                   bits 0-31 VOLT_STATE_READERS   number of shared holders
 *   word 1          bits 0-31  the exclusive holder's QP number (when EXCL)
 *                   bits 32-63 grant generation, +1 at every grant
 *
 * A request: va = the lock, len = VOLT_LOCK_SIZE (or more), arg0 = command.
 * Its answer: status (below) and result = the grant's generation (a fencing
 * token; 32 bits, wraps) for a grant, 0 for a release, the state word for
 * VOLT_ST_NOT_OWNER.  Besides these, the runtime answers NICOP_ST_TIMEOUT,
 * NICOP_ST_UNLOADED, NICOP_ST_QUEUE_FULL and NICOP_ST_PROG_ERROR.
 *
 * Order: an acquire is granted at once when the lock is free (shared: when
 * no writer holds it) and nobody waits; otherwise it waits in FIFO order.
 * A release hands the lock to the first waiter if it is a writer, or to the
 * readers at the head of the queue together (up to
 * VOLT_MAX_READERS_PER_RUN per program run; any later run on the lock, its
 * holders' releases included, grants the next ones, so none is stranded).
 * A reader never overtakes a waiting writer.
 *
 * Holder death (its QP goes to ERROR or is destroyed): the lock is released
 * as if it had released it; after an exclusive holder's death every grant
 * says VOLT_ST_LOCK_INTERRUPTED (the data it guards may be half-written)
 * until a writer has been granted, which is the one to repair it.  A reader's
 * death does not interrupt (readers write nothing).  A waiter's death removes
 * it from the queue; it is never granted.
 */
#ifndef FASTPATH_VOLT_H
#define FASTPATH_VOLT_H

#define VOLT_LOCK_SIZE 16
#define VOLT_STATE_EXCL (1ULL << 63)
#define VOLT_STATE_INTERRUPTED (1ULL << 62)
#define VOLT_STATE_READERS 0xffffffffULL
#define VOLT_HOLDER_MASK 0xffffffffULL
#define VOLT_GEN_SHIFT 32

/* Readers one program run grants at most (the program cannot loop). */
#define VOLT_MAX_READERS_PER_RUN 16

/* arg0 of a request */
enum volt_cmd {
	VOLT_ACQUIRE_EXCL = 1,
	VOLT_ACQUIRE_SHARED = 2,
	VOLT_RELEASE = 3, /* either mode: the lock's state says which */
};

/* Statuses (the program's own, below NICOP's 0x100) */
enum volt_status {
	VOLT_ST_OK = 0,               /* granted / released */
	VOLT_ST_LOCK_INTERRUPTED = 1, /* granted; an exclusive holder died holding it */
	VOLT_ST_NOT_OWNER = 2,        /* release by a QP that does not hold it */
	VOLT_ST_BAD_COMMAND = 3,      /* arg0 is no volt_cmd */
	VOLT_ST_ALREADY_HELD = 4,     /* acquire by a QP that holds it (no re-entry, no upgrade) */
	VOLT_ST_BAD_OBJECT = 5,       /* len < VOLT_LOCK_SIZE */
};

#endif /* FASTPATH_VOLT_H */
