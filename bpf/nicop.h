/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NIC operations: the contract between urdma's responder and the eBPF
 * programs it runs (bpf/<op>.nicop.c, loaded with DPDK's librte_bpf).
 *
 * A NIC operation is a request the requester sends like an atomic (one PSN,
 * counted against max_rd_atomic) naming an operation id, a target object
 * (va, rkey, len) inside a memory region registered with URDMA_ACCESS_NIC_OP,
 * and two 64-bit arguments.  Before the program runs, the engine has checked
 * the rkey, the region's rights and that [va, va+len) lies inside it, 8-byte
 * aligned.  The program sees a read-only copy of the request (struct
 * nicop_ctx, its only argument) and reaches the object only through helpers
 * that check every offset again.  librte_bpf's validator refuses loops,
 * unbounded accesses and unknown helpers at load time.
 *
 * A program must, for an NICOP_EV_REQUEST, either answer (nicop_answer) or
 * park the request (nicop_park); it returns 0, or non-zero for an error
 * (answered NICOP_ST_PROG_ERROR).  Parked requests are answered later by
 * nicop_wake from another run, or by the engine (timeout, unload, QP death).
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

/* Why the program runs. */
enum nicop_event {
	NICOP_EV_REQUEST = 0, /* a request from qpn */
	NICOP_EV_QP_DIED = 1, /* qpn died while holding the object at va (nicop_hold) */
};

/* Statuses.  Below 0x100: the program's own (e.g. VOLT's). */
enum nicop_status {
	NICOP_ST_OK = 0,
	NICOP_ST_PROG_ERROR = 0x100, /* program returned non-zero or broke a helper's rule */
	NICOP_ST_TIMEOUT = 0x101,    /* parked longer than the operation's timeout */
	NICOP_ST_UNLOADED = 0x102,   /* operation unloaded while parked */
	NICOP_ST_QUEUE_FULL = 0x103, /* too many parked requests on this QP */
	NICOP_ST_NO_ANSWER = 0x104,  /* program returned without answering or parking */
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
 * both in the 16 bytes its local SGE points to. */
struct nicop_result {
	NICOP_U64 result;
	NICOP_U32 status;
	NICOP_U32 reserved;
};

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
 * (pointer chasing); marks the run failed outside it. */
extern NICOP_U64 nicop_region_load(NICOP_U64 addr);
/* Answers this request now. */
extern void nicop_answer(NICOP_U32 status, NICOP_U64 result);
/* Parks this request at the tail of the FIFO queue `key`; 0, or -1 when the
 * QP's parked-request bound is reached (the engine then answers QUEUE_FULL). */
extern long nicop_park(NICOP_U64 key);
/* The first waiter of queue `key`: its arg0 / its QP number, or -1 if empty. */
extern long long nicop_waiter_arg(NICOP_U64 key);
extern long long nicop_waiter_qpn(NICOP_U64 key);
/* Answers and dequeues the first waiter of `key`; returns its QP number or -1. */
extern long long nicop_wake(NICOP_U64 key, NICOP_U32 status, NICOP_U64 result);
/* Records that qpn holds the object `key` (the run's object), so that if that
 * QP dies the program runs again with NICOP_EV_QP_DIED; nicop_unhold forgets. */
extern void nicop_hold(NICOP_U64 key, NICOP_U32 qpn);
extern void nicop_unhold(NICOP_U64 key, NICOP_U32 qpn);
#endif

#endif /* FASTPATH_NICOP_H */
