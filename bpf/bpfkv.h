/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF-KV on-disk format and the scratch layouts of its XRP programs: the one
 * contract shared by bpf/bpfkv_*.bpf.c and tools/bpfkv.  Plain C on
 * <linux/types.h> so that clang -target bpf, gcc and g++ all include it.
 * Everything is little-endian.
 *
 * A database is one file or block device (F = fanout, L = layers, N = F^L):
 *
 *   offset 0          index, level by level: level 0 is the root (one node),
 *                     level d holds F^d nodes of node_size bytes each, in key
 *                     order; level L-1 holds the leaves
 *   log_off           value log: the N values in key order; a value never
 *                     crosses a BPFKV_VALUE_BLOCK boundary
 *   file_size - 4096  superblock (struct bpfkv_super, then zeros); the root
 *                     stays at 0 so that a lookup starts without metadata
 *
 * log_off, log_size and file_size are multiples of BPFKV_ALIGN.  Keys are
 * i * key_stride for i in [0, N).  The value of key k is derived from k
 * (tools/bpfkv/layout.h): word 0 is k, word 1 the field that SUM, MIN and
 * MAX aggregate, the rest a pattern, so every answer can be checked.
 *
 * A node is a 16-byte header, then keys[cap], then ptrs[cap], with
 * cap = BPFKV_NODE_CAP(node_size) (31 for 512 B, 255 for 4096 B) whatever
 * the fanout; only the first nkeys entries are used.  In an inner node
 * keys[i] is the smallest key under child ptrs[i] (a node offset); in a leaf
 * ptrs[i] is the file offset of the value of keys[i].  Keys in a node are
 * strictly increasing.
 */
#ifndef BPFKV_H
#define BPFKV_H

#include <linux/types.h>

#define BPFKV_VERSION 1
#define BPFKV_SUPER_MAGIC 0x314253564b465042ULL /* "BPFKVSB1" */
#define BPFKV_SUPER_SIZE 4096
#define BPFKV_ALIGN 4096

#define BPFKV_NODE_MAGIC 0x4e564b42 /* "BKVN" */
#define BPFKV_NODE_INNER 1
#define BPFKV_NODE_LEAF 2
#define BPFKV_NODE_HDR_SIZE 16
#define BPFKV_NODE_CAP(node_size) (((node_size) - BPFKV_NODE_HDR_SIZE) / 16)
#define BPFKV_NODE_KEYS(node_size) BPFKV_NODE_HDR_SIZE
#define BPFKV_NODE_PTRS(node_size) (BPFKV_NODE_HDR_SIZE + 8 * BPFKV_NODE_CAP(node_size))
#define BPFKV_NO_NEXT 0 /* next of the last leaf: 0 is the root, never a next leaf */

#define BPFKV_MIN_FANOUT 2
#define BPFKV_MAX_FANOUT 255
#define BPFKV_MAX_LAYERS 8

#define BPFKV_VALUE_BLOCK 512
#define BPFKV_MIN_VALUE_SIZE 16
#define BPFKV_MAX_VALUE_SIZE 512
#define BPFKV_VALUE_KEY_WORD 0 /* u64 index in a value: its key */
#define BPFKV_VALUE_AGG_WORD 1 /* u64 index in a value: the aggregated field */

struct bpfkv_node_hdr {
	__u32 magic;
	__u16 type; /* BPFKV_NODE_INNER or BPFKV_NODE_LEAF */
	__u16 nkeys; /* 1..fanout */
	__u64 next; /* leaves: offset of the next leaf, or BPFKV_NO_NEXT */
};

struct bpfkv_super {
	__u64 magic; /* BPFKV_SUPER_MAGIC */
	__u32 version; /* BPFKV_VERSION */
	__u32 node_size; /* 512 or 4096 */
	__u32 fanout; /* keys per node, BPFKV_MIN_FANOUT..BPFKV_NODE_CAP */
	__u32 layers; /* index levels, 1..BPFKV_MAX_LAYERS */
	__u32 value_size; /* multiple of 8, BPFKV_MIN..MAX_VALUE_SIZE */
	__u32 values_per_block; /* BPFKV_VALUE_BLOCK / value_size */
	__u64 nkeys; /* fanout^layers */
	__u64 key_stride; /* key i is i * key_stride */
	__u64 index_off; /* 0 */
	__u64 index_size; /* bytes of nodes, all levels */
	__u64 log_off;
	__u64 log_size;
	__u64 file_size; /* the superblock is at file_size - BPFKV_SUPER_SIZE */
	__u64 checksum; /* FNV-1a 64 of this struct with checksum = 0 */
};

/*
 * XRP programs.  Sizes mirror the XRP uapi (docs/xrp.md); the programs
 * check them against XRP_DATA_SIZE etc. at compile time.
 */
#define BPFKV_XRP_DATA_SIZE 4096
#define BPFKV_XRP_SCRATCH_SIZE 4096
#define BPFKV_XRP_MAX_READS 256

/* Why a program stopped early; also used by the user-space validator. */
enum bpfkv_status {
	BPFKV_OK = 0,
	BPFKV_E_PARAMS, /* scratch parameters are invalid */
	BPFKV_E_BLOCK, /* the block read does not hold the wanted offset */
	BPFKV_E_MAGIC, /* node magic is wrong */
	BPFKV_E_TYPE, /* inner node where a leaf belongs, or the reverse */
	BPFKV_E_NKEYS, /* nkeys is 0 or above the fanout */
	BPFKV_E_ORDER, /* keys not strictly increasing */
	BPFKV_E_BOUNDS, /* keys outside the range the parent gives */
	BPFKV_E_CHILD, /* child pointer outside the next level */
	BPFKV_E_NEXT, /* next-leaf pointer outside the leaf level or backwards */
	BPFKV_E_VPTR, /* value pointer outside the value log or misplaced */
	BPFKV_E_VALUE, /* the value does not carry the key that points to it */
	BPFKV_E_MAX,
};

/*
 * Scratch layouts.  User space fills params and the request, calls
 * read_xrp() at the root (offset 0) or, to continue, at walk.want rounded
 * down to io_size; the program reads params and writes the rest.
 */
struct bpfkv_xrp_params {
	__u32 node_size;
	__u32 fanout;
	__u32 layers;
	__u32 value_size;
	__u32 io_size; /* bytes of every read: read_xrp's count */
	__u32 max_reads; /* reads per call, <= BPFKV_XRP_MAX_READS */
	__u64 log_off; /* value log: [log_off, log_end) */
	__u64 log_end;
	__u64 level_off[16]; /* level d spans [level_off[d], level_off[d + 1]) */
};

struct bpfkv_xrp_walk {
	__u32 status; /* enum bpfkv_status; non-zero ends the request */
	__u32 level; /* level of the node at want; == layers: want is a value */
	__u64 want; /* file offset of the node or value to read next */
	__u64 lo, hi; /* keys of the node at want lie in [lo, hi] */
	__u64 bad_addr; /* with status: offset of the node or value at fault */
	__u32 reads; /* blocks read so far in this request */
	__u32 calls; /* read_xrp calls so far in this request */
};

/* GET: keys[0..nkeys) in, found[] and values out (value i at BPFKV_GET_VALUES + i * value_size). */
#define BPFKV_GET_MAX 32
struct bpfkv_get_scratch {
	struct bpfkv_xrp_params p;
	struct bpfkv_xrp_walk w;
	__u32 nkeys;
	__u32 next; /* index of the key being looked up; == nkeys: finished */
	__u8 found[BPFKV_GET_MAX];
	__u64 keys[BPFKV_GET_MAX];
};
#define BPFKV_GET_VALUES sizeof(struct bpfkv_get_scratch)
#define BPFKV_GET_BATCH(value_size)                                                     \
	((BPFKV_XRP_SCRATCH_SIZE - BPFKV_GET_VALUES) / (value_size) < BPFKV_GET_MAX ? \
		 (BPFKV_XRP_SCRATCH_SIZE - BPFKV_GET_VALUES) / (value_size) :           \
		 BPFKV_GET_MAX)

/* RANGE and aggregations: a scan over [cur, end) that resumes from the scratch. */
enum bpfkv_scan_phase {
	BPFKV_SCAN_DESCEND = 0, /* walking from the root to the leaf that holds cur */
	BPFKV_SCAN_LEAF, /* reading the leaf at want to take its next entries */
	BPFKV_SCAN_VALUE, /* reading the values of the chunk */
	BPFKV_SCAN_END, /* finished: no key in [cur, end) left */
};

enum bpfkv_scan_after {
	BPFKV_AFTER_LEAF = 0, /* the leaf has more keys in range: read it again */
	BPFKV_AFTER_NEXT, /* the leaf is used up: go on with the next leaf */
	BPFKV_AFTER_END, /* the leaf holds a key >= end: the scan is over */
};

enum bpfkv_agg_op {
	BPFKV_AGG_COUNT = 0,
	BPFKV_AGG_SUM,
	BPFKV_AGG_MIN,
	BPFKV_AGG_MAX,
};

#define BPFKV_CHUNK 32
struct bpfkv_scan_scratch {
	struct bpfkv_xrp_params p;
	struct bpfkv_xrp_walk w;
	__u64 cur; /* the cursor: next key to visit */
	__u64 end; /* the scan stops before this key */
	__u64 leaf; /* offset of the leaf the chunk came from */
	__u64 leaf_next; /* its next-leaf pointer */
	__u64 leaf_last; /* its last key */
	__u32 phase; /* enum bpfkv_scan_phase */
	__u32 op; /* aggregation: enum bpfkv_agg_op */
	__u32 nchunk; /* entries of the leaf copied into chunk_keys/ptrs */
	__u32 ci; /* next chunk entry whose value is wanted */
	__u32 after; /* enum bpfkv_scan_after: what follows the chunk */
	__u32 nresults; /* range: values written in this call */
	__u32 max_results; /* range: capacity, 1..BPFKV_RANGE_BATCH */
	__u32 tmp; /* the program's: see bpfkv_opaque() */
	__u64 chunk_keys[BPFKV_CHUNK];
	__u64 chunk_ptrs[BPFKV_CHUNK];
	__u64 count, sum, min, max; /* aggregation over the keys visited */
};
#define BPFKV_RANGE_VALUES sizeof(struct bpfkv_scan_scratch)
#define BPFKV_RANGE_BATCH(value_size) ((BPFKV_XRP_SCRATCH_SIZE - BPFKV_RANGE_VALUES) / (value_size))

#endif /* BPFKV_H */
