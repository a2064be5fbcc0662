/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the BPF-KV XRP programs do with one block: the step functions.
 *
 * Each bpfkv_*.bpf.c program is a thin wrapper that passes its struct bpf_xrp
 * context to one step function here.  The same header compiles as host C and
 * C++, so tools/bpfkv runs these very functions in user space (the XRP
 * emulator: pread the block at cur_addr, call the step, follow next_addr until
 * done) and checks their answers against the pread back-end.
 *
 * A step gets the block just read (data, data_len bytes at file offset
 * cur_addr) and the scratch area, validates what it finds, records results in
 * the scratch, and either sets out->done or asks for the block holding
 * walk.want.  All state lives in the scratch, so a request that runs out of
 * reads (params.max_reads) or of result space stops with done set and
 * continues in the next read_xrp() call at walk.want.
 *
 * Verifier rules followed here: every loop has a constant bound; every offset
 * into data or scratch is checked against the real limit first and then
 * masked (bpfkv_ld64/bpfkv_st64) so the verifier can bound it too; a valid
 * offset is never changed by the mask.  Offsets are multiples of 8.
 */
#ifndef BPFKV_XRP_LOGIC_H
#define BPFKV_XRP_LOGIC_H

#include "bpfkv.h"

#ifdef __bpf__
#define BPFKV_FN static inline __attribute__((always_inline))
#else
#include <string.h>
#define BPFKV_FN static inline
#endif

/* The fields of struct bpf_xrp a step may write. */
struct bpfkv_xrp_out {
	__u64 next_addr;
	__u32 next_size;
	__u32 done;
};

#define BPFKV_NOWHERE 0xffffffffu
#define BPFKV_MASK64 (BPFKV_XRP_DATA_SIZE - 8)

/*
 * x & mask, kept by the compiler.  When clang can prove the mask redundant
 * (the index was compared against the bound just before) it drops it, and
 * the verifier, which may have lost that bound across a zero-extension,
 * then rejects the access as unbounded.  The empty asm makes the value
 * opaque so the AND stays.
 */
#ifdef __bpf__
#define BPFKV_IDX(x, mask)                          \
	({                                          \
		__u32 __bpfkv_v = (__u32)(x);       \
		asm volatile("" : "+r"(__bpfkv_v)); \
		__bpfkv_v & (mask);                 \
	})
#else
#define BPFKV_IDX(x, mask) ((__u32)(x) & (mask))
#endif

BPFKV_FN __u64 bpfkv_ld64(const __u8 *base, __u32 off)
{
#ifdef __bpf__
	return *(const __u64 *)(base + BPFKV_IDX(off, BPFKV_MASK64));
#else
	__u64 v;

	memcpy(&v, base + (off & BPFKV_MASK64), sizeof(v));
	return v;
#endif
}

/*
 * The key count of the node at data[in], read afresh each time.  A count
 * kept in a register would be narrowed by every loop exit that compares
 * against it, down to one exact value per exit, and the verifier would then
 * walk everything after the loop once per value.  A fresh load is just an
 * unknown number again.
 */
BPFKV_FN __u32 bpfkv_node_nkeys(const __u8 *data, __u32 in)
{
	return (__u32)(*(const volatile __u64 *)(data + BPFKV_IDX(in, BPFKV_MASK64)) >> 48);
}

BPFKV_FN void bpfkv_st64(__u8 *base, __u32 off, __u64 v)
{
#ifdef __bpf__
	*(__u64 *)(base + BPFKV_IDX(off, BPFKV_MASK64)) = v;
#else
	memcpy(base + (off & BPFKV_MASK64), &v, sizeof(v));
#endif
}

BPFKV_FN int bpfkv_params_ok(const struct bpfkv_xrp_params *p)
{
	if (p->node_size != 512 && p->node_size != 4096)
		return 0;
	if (p->fanout < BPFKV_MIN_FANOUT || p->fanout > BPFKV_NODE_CAP(p->node_size))
		return 0;
	if (p->layers < 1 || p->layers > BPFKV_MAX_LAYERS)
		return 0;
	if (p->value_size < BPFKV_MIN_VALUE_SIZE || p->value_size > BPFKV_MAX_VALUE_SIZE ||
	    (p->value_size & 7))
		return 0;
	if (p->io_size < p->node_size || p->io_size > BPFKV_XRP_DATA_SIZE ||
	    (p->io_size & (p->io_size - 1)))
		return 0;
	if (p->max_reads < 1 || p->max_reads > BPFKV_XRP_MAX_READS)
		return 0;
	if (p->log_end < p->log_off || p->log_end - p->log_off < p->value_size)
		return 0;
	return 1;
}

/* Offset of [want, want + len) in the block just read, or BPFKV_NOWHERE. */
BPFKV_FN __u32 bpfkv_locate(__u64 want, __u32 len, __u64 cur_addr, __u32 data_len)
{
	if (data_len > BPFKV_XRP_DATA_SIZE || len > data_len || want < cur_addr ||
	    want - cur_addr > data_len - len || (want & 7))
		return BPFKV_NOWHERE;
	return (__u32)(want - cur_addr);
}

/* Number of keys of the node at data[in] that are <= key (binary search, at most 255 keys). */
BPFKV_FN __u32 bpfkv_count_le(const __u8 *data, __u32 in, __u32 node_size, __u64 key)
{
	__u32 keys = in + BPFKV_NODE_KEYS(node_size);
	__u32 lo = 0, hi = bpfkv_node_nkeys(data, in), mid, it;

	(void)node_size; /* keys follow the header whatever the node size */

	for (it = 0; it < 9; it++) {
		if (lo >= hi)
			break;
		mid = (lo + hi) / 2;
		if (bpfkv_ld64(data, keys + 8 * mid) <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * v, passed through a scratch slot: the verifier does not track what is
 * stored in the scratch area, so it gets v back as an unknown number.  The
 * result of a binary search depends on the path the search took, and
 * without this every later step would be verified once per path.  Every use
 * of the result is checked or masked anyway.
 */
BPFKV_FN __u32 bpfkv_opaque(__u32 *slot, __u32 v)
{
	*(volatile __u32 *)slot = v;
	return *(volatile __u32 *)slot;
}

/* Number of keys < key. */
BPFKV_FN __u32 bpfkv_count_lt(const __u8 *data, __u32 in, __u32 node_size, __u64 key)
{
	return key ? bpfkv_count_le(data, in, node_size, key - 1) : 0;
}

/*
 * Checks the node the walk expects at data[in]: magic, type for its level,
 * nkeys, keys strictly increasing and inside [w->lo, w->hi].
 */
BPFKV_FN __u32 bpfkv_check_node(const __u8 *data, __u32 in, const struct bpfkv_xrp_params *p,
				const struct bpfkv_xrp_walk *w)
{
	__u64 hdr = bpfkv_ld64(data, in);
	__u32 type = w->level + 1 == p->layers ? BPFKV_NODE_LEAF : BPFKV_NODE_INNER;
	__u32 keys = in + BPFKV_NODE_KEYS(p->node_size);
	__u32 n = (__u32)(hdr >> 48), i;
	__u64 prev = 0, k;

	if ((__u32)hdr != BPFKV_NODE_MAGIC)
		return BPFKV_E_MAGIC;
	if (((hdr >> 32) & 0xffff) != type)
		return BPFKV_E_TYPE;
	if (n == 0 || n > p->fanout)
		return BPFKV_E_NKEYS;
	for (i = 0; i < BPFKV_MAX_FANOUT; i++) {
		if (i >= bpfkv_node_nkeys(data, in))
			break;
		k = bpfkv_ld64(data, keys + 8 * i);
		if (i > 0 && k <= prev)
			return BPFKV_E_ORDER;
		prev = k;
	}
	if (bpfkv_ld64(data, keys) < w->lo || prev > w->hi)
		return BPFKV_E_BOUNDS;
	return BPFKV_OK;
}

/* A child of a node at level: a node of level + 1. */
BPFKV_FN int bpfkv_child_ok(const struct bpfkv_xrp_params *p, __u32 level, __u64 child)
{
	__u32 d = (level + 1) & 15;

	return child >= p->level_off[d] && child < p->level_off[(d + 1) & 15] &&
	       (child & (p->node_size - 1)) == 0;
}

/* A value pointer: inside the log, 8-aligned, within one BPFKV_VALUE_BLOCK. */
BPFKV_FN int bpfkv_vptr_ok(const struct bpfkv_xrp_params *p, __u64 ptr)
{
	return ptr >= p->log_off && ptr <= p->log_end - p->value_size && (ptr & 7) == 0 &&
	       (ptr & (BPFKV_VALUE_BLOCK - 1)) + p->value_size <= BPFKV_VALUE_BLOCK;
}

/* A next-leaf pointer of the leaf at leaf: a later leaf, or none. */
BPFKV_FN int bpfkv_next_ok(const struct bpfkv_xrp_params *p, __u64 leaf, __u64 next)
{
	__u32 d = (p->layers - 1) & 15;

	if (next == BPFKV_NO_NEXT)
		return 1;
	return next > leaf && next >= p->level_off[d] && next < p->level_off[(d + 1) & 15] &&
	       (next & (p->node_size - 1)) == 0;
}

BPFKV_FN void bpfkv_copy_value(const __u8 *data, __u32 in, __u8 *scratch, __u32 dst, __u32 size)
{
	__u32 i;

	for (i = 0; i < BPFKV_MAX_VALUE_SIZE / 8; i++) {
		if (8 * i >= size)
			break;
		bpfkv_st64(scratch, dst + 8 * i, bpfkv_ld64(data, in + 8 * i));
	}
}

BPFKV_FN void bpfkv_fail(struct bpfkv_xrp_walk *w, __u32 status, __u64 addr, struct bpfkv_xrp_out *out)
{
	w->status = status;
	w->bad_addr = addr;
	out->done = 1;
}

/* Asks for the block holding w->want, or stops when the call is out of reads. */
BPFKV_FN void bpfkv_request(const struct bpfkv_xrp_params *p, const struct bpfkv_xrp_walk *w,
			    __u32 iteration, struct bpfkv_xrp_out *out)
{
	if (iteration + 2 > p->max_reads) {
		out->done = 1;
		return;
	}
	out->next_addr = w->want & ~(__u64)(p->io_size - 1);
	out->next_size = 0;
}

BPFKV_FN void bpfkv_walk_reset(struct bpfkv_xrp_walk *w)
{
	w->level = 0;
	w->want = 0;
	w->lo = 0;
	w->hi = ~0ULL;
}

/* ---- GET: a batch of keys, each walked root -> leaf -> value. ---- */

BPFKV_FN void bpfkv_get_finish_key(struct bpfkv_get_scratch *s, __u32 i, __u8 found)
{
	s->found[BPFKV_IDX(i, BPFKV_GET_MAX - 1)] = found;
	s->next = i + 1;
	bpfkv_walk_reset(&s->w);
}

/* The block holds the node at w->want: follow the key one level down. */
BPFKV_FN void bpfkv_get_node(const __u8 *data, __u32 data_len, __u64 cur_addr, struct bpfkv_get_scratch *s,
			     __u32 i, __u64 key, struct bpfkv_xrp_out *out)
{
	const struct bpfkv_xrp_params *p = &s->p;
	struct bpfkv_xrp_walk *w = &s->w;
	__u32 in = bpfkv_locate(w->want, p->node_size, cur_addr, data_len);
	__u32 slot, st, keys, ptrs;
	__u64 ptr;

	if (in == BPFKV_NOWHERE) {
		bpfkv_fail(w, BPFKV_E_BLOCK, w->want, out);
		return;
	}
	st = bpfkv_check_node(data, in, p, w);
	if (st != BPFKV_OK) {
		bpfkv_fail(w, st, w->want, out);
		return;
	}
	keys = in + BPFKV_NODE_KEYS(p->node_size);
	ptrs = in + BPFKV_NODE_PTRS(p->node_size);
	slot = bpfkv_count_le(data, in, p->node_size, key);
	if (slot == 0) {
		bpfkv_get_finish_key(s, i, 0); /* below the smallest key */
		return;
	}
	slot--;
	ptr = bpfkv_ld64(data, ptrs + 8 * slot);
	if (w->level + 1 == p->layers) {
		if (bpfkv_ld64(data, keys + 8 * slot) != key) {
			bpfkv_get_finish_key(s, i, 0);
			return;
		}
		if (!bpfkv_vptr_ok(p, ptr)) {
			bpfkv_fail(w, BPFKV_E_VPTR, w->want, out);
			return;
		}
		w->want = ptr;
		w->level = p->layers;
		return;
	}
	if (!bpfkv_child_ok(p, w->level, ptr)) {
		bpfkv_fail(w, BPFKV_E_CHILD, w->want, out);
		return;
	}
	w->lo = bpfkv_ld64(data, keys + 8 * slot);
	if (slot + 1 < bpfkv_node_nkeys(data, in))
		w->hi = bpfkv_ld64(data, keys + 8 * (slot + 1)) - 1;
	w->want = ptr;
	w->level++;
}

/* The block holds the value at w->want: check it and copy it out. */
BPFKV_FN void bpfkv_get_value(const __u8 *data, __u32 data_len, __u64 cur_addr, struct bpfkv_get_scratch *s,
			      __u32 i, __u64 key, struct bpfkv_xrp_out *out)
{
	const struct bpfkv_xrp_params *p = &s->p;
	struct bpfkv_xrp_walk *w = &s->w;
	__u32 in = bpfkv_locate(w->want, p->value_size, cur_addr, data_len);

	if (in == BPFKV_NOWHERE) {
		bpfkv_fail(w, BPFKV_E_BLOCK, w->want, out);
		return;
	}
	if (bpfkv_ld64(data, in) != key) {
		bpfkv_fail(w, BPFKV_E_VALUE, w->want, out);
		return;
	}
	bpfkv_copy_value(data, in, (__u8 *)s, BPFKV_GET_VALUES + i * p->value_size, p->value_size);
	bpfkv_get_finish_key(s, i, 1);
}

BPFKV_FN void bpfkv_get_step(const __u8 *data, __u32 data_len, __u64 cur_addr, __u32 iteration, __u8 *scratch,
			     struct bpfkv_xrp_out *out)
{
	struct bpfkv_get_scratch *s = (struct bpfkv_get_scratch *)scratch;
	__u32 i = s->next;
	__u64 key;

	s->w.reads++;
	if (s->w.status != BPFKV_OK || i >= s->nkeys) {
		out->done = 1;
		return;
	}
	if (!bpfkv_params_ok(&s->p) || s->nkeys > BPFKV_GET_BATCH(s->p.value_size) ||
	    s->w.level > s->p.layers) {
		bpfkv_fail(&s->w, BPFKV_E_PARAMS, cur_addr, out);
		return;
	}
	key = s->keys[BPFKV_IDX(i, BPFKV_GET_MAX - 1)];
	if (s->w.level < s->p.layers)
		bpfkv_get_node(data, data_len, cur_addr, s, i, key, out);
	else
		bpfkv_get_value(data, data_len, cur_addr, s, i, key, out);
	if (out->done)
		return;
	if (s->next >= s->nkeys) {
		out->done = 1;
		return;
	}
	bpfkv_request(&s->p, &s->w, iteration, out);
}

/* ---- RANGE and aggregations: a scan over [cur, end). ---- */

/* The chunk is used up (or empty): decide where the scan goes on. */
BPFKV_FN void bpfkv_scan_after(struct bpfkv_scan_scratch *s)
{
	struct bpfkv_xrp_walk *w = &s->w;

	if (s->after == BPFKV_AFTER_LEAF) {
		s->phase = BPFKV_SCAN_LEAF;
		w->want = s->leaf;
		return;
	}
	if (s->after == BPFKV_AFTER_END || s->leaf_next == BPFKV_NO_NEXT || s->leaf_last == ~0ULL) {
		s->phase = BPFKV_SCAN_END;
		return;
	}
	s->phase = BPFKV_SCAN_LEAF;
	w->want = s->leaf_next;
	w->lo = s->leaf_last + 1;
	w->hi = ~0ULL;
}

/* COUNT needs no values: count the leaf's keys in [cur, end) at once. */
BPFKV_FN void bpfkv_scan_count(const __u8 *data, __u32 in, __u32 first, struct bpfkv_scan_scratch *s)
{
	__u32 keys = in + BPFKV_NODE_KEYS(s->p.node_size);
	__u32 stop = bpfkv_opaque(&s->tmp, bpfkv_count_lt(data, in, s->p.node_size, s->end));

	if (stop > first) {
		s->count += stop - first;
		s->cur = bpfkv_ld64(data, keys + 8 * (stop - 1)) + 1;
	}
	s->after = stop < bpfkv_node_nkeys(data, in) ? BPFKV_AFTER_END : BPFKV_AFTER_NEXT;
	bpfkv_scan_after(s);
}

/* The block holds a leaf, already checked: take its next entries in range. */
BPFKV_FN void bpfkv_scan_take(const __u8 *data, __u32 in, struct bpfkv_scan_scratch *s, int range,
			      struct bpfkv_xrp_out *out)
{
	const struct bpfkv_xrp_params *p = &s->p;
	struct bpfkv_xrp_walk *w = &s->w;
	__u32 keys = in + BPFKV_NODE_KEYS(p->node_size);
	__u32 ptrs = in + BPFKV_NODE_PTRS(p->node_size);
	__u32 first = bpfkv_opaque(&s->tmp, bpfkv_count_lt(data, in, p->node_size, s->cur));
	__u32 j, sl = first;
	__u64 k, ptr;

	s->leaf = w->want;
	s->leaf_next = bpfkv_ld64(data, in + 8);
	s->leaf_last = bpfkv_ld64(data, keys + 8 * (bpfkv_node_nkeys(data, in) - 1));
	if (!bpfkv_next_ok(p, s->leaf, s->leaf_next)) {
		bpfkv_fail(w, BPFKV_E_NEXT, s->leaf, out);
		return;
	}
	if (!range && s->op == BPFKV_AGG_COUNT) {
		bpfkv_scan_count(data, in, first, s);
		return;
	}
	for (j = 0; j < BPFKV_CHUNK; j++) {
		sl = first + j;
		if (sl >= bpfkv_node_nkeys(data, in))
			break;
		k = bpfkv_ld64(data, keys + 8 * sl);
		if (k >= s->end)
			break;
		ptr = bpfkv_ld64(data, ptrs + 8 * sl);
		if (!bpfkv_vptr_ok(p, ptr)) {
			bpfkv_fail(w, BPFKV_E_VPTR, s->leaf, out);
			return;
		}
		s->chunk_keys[BPFKV_IDX(j, BPFKV_CHUNK - 1)] = k;
		s->chunk_ptrs[BPFKV_IDX(j, BPFKV_CHUNK - 1)] = ptr;
	}
	sl = first + j;
	if (sl >= bpfkv_node_nkeys(data, in))
		s->after = BPFKV_AFTER_NEXT;
	else if (bpfkv_ld64(data, keys + 8 * sl) >= s->end)
		s->after = BPFKV_AFTER_END;
	else
		s->after = BPFKV_AFTER_LEAF;
	s->nchunk = j;
	s->ci = 0;
	if (j == 0) {
		bpfkv_scan_after(s);
		return;
	}
	s->phase = BPFKV_SCAN_VALUE;
	w->want = s->chunk_ptrs[0];
}

/* The block holds a node on the way down to cur, or the leaf at want. */
BPFKV_FN void bpfkv_scan_node(const __u8 *data, __u32 data_len, __u64 cur_addr, struct bpfkv_scan_scratch *s,
			      int range, struct bpfkv_xrp_out *out)
{
	const struct bpfkv_xrp_params *p = &s->p;
	struct bpfkv_xrp_walk *w = &s->w;
	__u32 in = bpfkv_locate(w->want, p->node_size, cur_addr, data_len);
	__u32 slot, st, keys;
	__u64 child;

	if (in == BPFKV_NOWHERE) {
		bpfkv_fail(w, BPFKV_E_BLOCK, w->want, out);
		return;
	}
	st = bpfkv_check_node(data, in, p, w);
	if (st != BPFKV_OK) {
		bpfkv_fail(w, st, w->want, out);
		return;
	}
	if (w->level + 1 == p->layers) {
		bpfkv_scan_take(data, in, s, range, out);
		return;
	}
	keys = in + BPFKV_NODE_KEYS(p->node_size);
	slot = bpfkv_opaque(&s->tmp, bpfkv_count_le(data, in, p->node_size, s->cur));
	if (slot > 0)
		slot--; /* else cur is below every key: start at the first child */
	child = bpfkv_ld64(data, in + BPFKV_NODE_PTRS(p->node_size) + 8 * slot);
	if (!bpfkv_child_ok(p, w->level, child)) {
		bpfkv_fail(w, BPFKV_E_CHILD, w->want, out);
		return;
	}
	w->lo = bpfkv_ld64(data, keys + 8 * slot);
	if (slot + 1 < bpfkv_node_nkeys(data, in))
		w->hi = bpfkv_ld64(data, keys + 8 * (slot + 1)) - 1;
	w->want = child;
	w->level++;
}

/* Folds one value into the result: copy it (range) or aggregate it. */
BPFKV_FN void bpfkv_scan_consume(const __u8 *data, __u32 in, struct bpfkv_scan_scratch *s, int range)
{
	__u64 v;

	if (range) {
		bpfkv_copy_value(data, in, (__u8 *)s, BPFKV_RANGE_VALUES + s->nresults * s->p.value_size,
				 s->p.value_size);
		s->nresults++;
		return;
	}
	v = bpfkv_ld64(data, in + 8 * BPFKV_VALUE_AGG_WORD);
	s->count++;
	s->sum += v;
	if (v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
}

/* The block holds the value of chunk entry ci, and maybe of the entries after it. */
BPFKV_FN void bpfkv_scan_values(const __u8 *data, __u32 data_len, __u64 cur_addr, struct bpfkv_scan_scratch *s,
				int range, struct bpfkv_xrp_out *out)
{
	const struct bpfkv_xrp_params *p = &s->p;
	struct bpfkv_xrp_walk *w = &s->w;
	__u32 j, ci, in;
	__u64 k, ptr;

	for (j = 0; j < BPFKV_CHUNK; j++) {
		ci = s->ci;
		if (ci >= s->nchunk || ci >= BPFKV_CHUNK)
			break;
		if (range && s->nresults >= s->max_results)
			break;
		ptr = s->chunk_ptrs[BPFKV_IDX(ci, BPFKV_CHUNK - 1)];
		in = bpfkv_locate(ptr, p->value_size, cur_addr, data_len);
		if (in == BPFKV_NOWHERE) {
			if (j == 0) {
				bpfkv_fail(w, BPFKV_E_BLOCK, ptr, out);
				return;
			}
			break; /* in another block: read it next */
		}
		k = s->chunk_keys[BPFKV_IDX(ci, BPFKV_CHUNK - 1)];
		if (bpfkv_ld64(data, in + 8 * BPFKV_VALUE_KEY_WORD) != k) {
			bpfkv_fail(w, BPFKV_E_VALUE, ptr, out);
			return;
		}
		bpfkv_scan_consume(data, in, s, range);
		s->cur = k + 1;
		s->ci = ci + 1;
	}
	if (s->ci < s->nchunk && s->ci < BPFKV_CHUNK)
		w->want = s->chunk_ptrs[BPFKV_IDX(s->ci, BPFKV_CHUNK - 1)];
	else
		bpfkv_scan_after(s);
}

BPFKV_FN void bpfkv_scan_step(const __u8 *data, __u32 data_len, __u64 cur_addr, __u32 iteration, __u8 *scratch,
			      int range, struct bpfkv_xrp_out *out)
{
	struct bpfkv_scan_scratch *s = (struct bpfkv_scan_scratch *)scratch;

	s->w.reads++;
	if (s->w.status != BPFKV_OK || s->phase >= BPFKV_SCAN_END) {
		out->done = 1;
		return;
	}
	if (!bpfkv_params_ok(&s->p) || s->nchunk > BPFKV_CHUNK ||
	    (range && (s->max_results < 1 || s->max_results > BPFKV_RANGE_BATCH(s->p.value_size) ||
		       s->nresults > s->max_results)) ||
	    (s->phase == BPFKV_SCAN_DESCEND && s->w.level >= s->p.layers) ||
	    (s->phase != BPFKV_SCAN_DESCEND && s->w.level + 1 != s->p.layers)) {
		bpfkv_fail(&s->w, BPFKV_E_PARAMS, cur_addr, out);
		return;
	}
	if (s->phase == BPFKV_SCAN_VALUE)
		bpfkv_scan_values(data, data_len, cur_addr, s, range, out);
	else
		bpfkv_scan_node(data, data_len, cur_addr, s, range, out);
	if (out->done)
		return;
	if (s->phase == BPFKV_SCAN_END || (range && s->nresults >= s->max_results)) {
		out->done = 1;
		return;
	}
	bpfkv_request(&s->p, &s->w, iteration, out);
}

BPFKV_FN void bpfkv_range_step(const __u8 *data, __u32 data_len, __u64 cur_addr, __u32 iteration, __u8 *scratch,
			       struct bpfkv_xrp_out *out)
{
	bpfkv_scan_step(data, data_len, cur_addr, iteration, scratch, 1, out);
}

BPFKV_FN void bpfkv_agg_step(const __u8 *data, __u32 data_len, __u64 cur_addr, __u32 iteration, __u8 *scratch,
			     struct bpfkv_xrp_out *out)
{
	bpfkv_scan_step(data, data_len, cur_addr, iteration, scratch, 0, out);
}

#endif /* BPFKV_XRP_LOGIC_H */
