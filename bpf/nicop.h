/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NIC operations: the contract between urdma's responder and the eBPF
 * programs it runs (bpf/<op>.bpf.c with SEC("nicop"), built by bpf/Makefile
 * into build/bpf/<op>.bpf.o and loaded with DPDK's librte_bpf).
 *
 * A NIC operation is a request the requester sends like an atomic (one PSN,
 * counted against max_rd_atomic) naming an operation id, a target object
 * (va, rkey, len) inside a memory region registered with URDMA_ACCESS_NIC_OP,
 * and two 64-bit arguments.  Before the program runs, the engine has checked
 * the rkey, the region's rights and that [va, va+len) lies inside it, 8-byte
 * aligned.  The program sees a read-only copy of the request (struct
 * nicop_ctx, its only argument) and reaches the object only through helpers
 * that check every offset again (writes to the ctx copy are allowed and
 * ignored).  librte_bpf refuses at load time loops, unreachable code and
 * accesses outside the ctx or the stack (its validator), and calls to
 * unknown helpers (its ELF relocation step).
 *
 * A program must, for an NICOP_EV_REQUEST, either answer (nicop_answer) or
 * park the request (nicop_park); it returns 0, or non-zero for an error
 * (answered NICOP_ST_PROG_ERROR).  Parked requests are answered later by
 * nicop_wake from another run, or by the engine (timeout, unload); a parked
 * request whose QP dies is dropped (nobody to answer).
 *
 * What the runtime makes of a run (NICOP_EV_REQUEST):
 *   answered once, not parked         -> that answer
 *   parked once, not answered         -> parked (enqueued when the program
 *                                        returns: its own nicop_waiter_* and
 *                                        nicop_wake calls never see it)
 *   nicop_park refused (QP's bound)   -> NICOP_ST_QUEUE_FULL; the program
 *                                        must not answer or park after that
 *   neither                           -> NICOP_ST_NO_ANSWER
 *   both, twice, non-zero return, or
 *   a helper's rule broken            -> NICOP_ST_PROG_ERROR
 * Waiters woken during a run stay woken (their answers go out) even if the
 * run then fails: the object may already say they hold it.  Other events
 * must not answer or park (that fails the run, which then only counts).
 *
 * Section names: SEC("nicop") per file; compile with
 *   clang -O2 -target bpf -mcpu=v2 (librte_bpf has no JMP32), no maps, no
 *   globals, no BPF-to-BPF calls (mark helpers static __always_inline).
 */
#ifndef FASTPATH_NICOP_H
#define FASTPATH_NICOP_H

#ifdef __cplusplus
#include <cstdint>
#define NICOP_U32 std::uint32_t
#define NICOP_U64 std::uint64_t
#else
#define NICOP_U32 unsigned int
#define NICOP_U64 unsigned long long
#endif

/*
 * Why the program runs.  For the two engine events, ctx holds the object
 * (va, len) of the run that recorded the hold or parked the waiter, arg0 =
 * the hold's or queue's key, arg1 = 0, op_id = the program's id.
 */
enum nicop_event {
	/* a request from qpn */
	NICOP_EV_REQUEST = 0,
	/* qpn died while holding the object at va (nicop_hold): runs once per
	 * hold count, after qpn's parked requests were dropped
	 */
	NICOP_EV_QP_DIED = 1,
	/* the engine removed the first waiter of queue arg0 (timeout, or its
	 * QP qpn died) and others still wait: a chance to grant the new first
	 */
	NICOP_EV_WAITER_GONE = 2,
};

/* Statuses.  Below 0x100: the program's own (e.g. VOLT's). */
enum nicop_status {
	NICOP_ST_OK = 0,
	NICOP_ST_PROG_ERROR = 0x100, /* program returned non-zero or broke a helper's rule */
	NICOP_ST_TIMEOUT = 0x101,    /* parked longer than the operation's timeout */
	NICOP_ST_UNLOADED = 0x102,   /* operation unloaded while parked */
	NICOP_ST_QUEUE_FULL = 0x103, /* too many parked requests on this QP */
	NICOP_ST_NO_ANSWER = 0x104,  /* program returned without answering or parking */
	NICOP_ST_REGION_GONE = 0x105, /* the region was deregistered while parked */
};

struct nicop_ctx {
	NICOP_U32 event;  /* enum nicop_event */
	NICOP_U32 op_id;
	NICOP_U32 qpn;    /* requester's QP (at the responder: the local QP number) */
	NICOP_U32 len;    /* target object length (bytes, multiple of 8) */
	NICOP_U64 va;     /* target object address (the queue/hold key by convention) */
	NICOP_U64 arg0;
	NICOP_U64 arg1;
	NICOP_U64 now_ns; /* CLOCK_MONOTONIC */
};

/* Wire: a response carries a status and a 64-bit result; the requester gets
 * both in the 16 bytes its local SGE points to.
 */
struct nicop_result {
	NICOP_U64 result;
	NICOP_U32 status;
	NICOP_U32 reserved;
};

#ifdef __bpf__
/* BPF side: no libbpf headers (these are not libbpf programs). */
#ifndef SEC
#define SEC(name) __attribute__((section(name), used))
#endif
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
typedef NICOP_U64 u64;
typedef NICOP_U32 u32;
#endif

#ifndef __cplusplus
/*
 * Helpers (external functions).  Offsets are bytes from va, 8-aligned and
 * inside len; a helper given a bad offset marks the run failed
 * (NICOP_ST_PROG_ERROR) and returns 0.
 */
/* Compare-and-swap on the object's word at off; returns the old value. */
extern NICOP_U64 nicop_cas(NICOP_U64 off, NICOP_U64 expect, NICOP_U64 desired);
/* Fetch-and-add; returns the old value. */
extern NICOP_U64 nicop_faa(NICOP_U64 off, NICOP_U64 add);
extern NICOP_U64 nicop_load(NICOP_U64 off);
extern void nicop_store(NICOP_U64 off, NICOP_U64 value);
/* Loads 8 bytes at any 8-aligned address inside the same memory region
 * (pointer chasing); marks the run failed outside it.
 */
extern NICOP_U64 nicop_region_load(NICOP_U64 addr);
/* Answers this request now (status below 0x100: the program's own). */
extern void nicop_answer(NICOP_U32 status, NICOP_U64 result);
/* Parks this request at the tail of the FIFO queue `key`; 0, or -1 when the
 * QP's parked-request bound is reached (the engine then answers QUEUE_FULL).
 * Queues are per operation: another program's queue `key` is another queue.
 */
extern long nicop_park(NICOP_U64 key);
/* The first waiter of queue `key`: its arg0 / its QP number, or -1 if empty
 * (so an arg0 of -1 cannot be told from an empty queue: use small arg0s).
 */
extern long long nicop_waiter_arg(NICOP_U64 key);
extern long long nicop_waiter_qpn(NICOP_U64 key);
/* Answers and dequeues the first waiter of `key`; returns its QP number or -1.
 * The status, as nicop_answer's, must be below 0x100.
 */
extern long long nicop_wake(NICOP_U64 key, NICOP_U32 status, NICOP_U64 result);
/* Records that qpn holds the object `key` (the run's object; qpn may be
 * another QP, e.g. a waiter just woken), so that if that QP dies the program
 * runs again with NICOP_EV_QP_DIED; holds count, nicop_unhold forgets one.
 * Holds, like queues, are per operation.
 */
extern void nicop_hold(NICOP_U64 key, NICOP_U32 qpn);
extern void nicop_unhold(NICOP_U64 key, NICOP_U32 qpn);
/* How many holds qpn has on `key` (0 if none): lets a program check that a
 * QP releasing a shared object holds it.
 */
extern long long nicop_held(NICOP_U64 key, NICOP_U32 qpn);
#endif

#endif /* FASTPATH_NICOP_H */
