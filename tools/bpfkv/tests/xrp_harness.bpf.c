// SPDX-License-Identifier: GPL-2.0
/*
 * Test harness: the BPF-KV XRP step functions compiled as BPF and run on the
 * host kernel, which has no XRP.  Each program is a BPF_PROG_TYPE_SYSCALL
 * program (runnable with BPF_PROG_TEST_RUN) that hands the step the block
 * and the scratch area from two 4096-byte array map values, bounded memory
 * like XRP's data and scratch, so the host verifier checks the same code
 * the XRP programs contain and the test can compare its answers.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfkv_xrp_logic.h"

struct harness_block {
	__u8 bytes[BPFKV_XRP_DATA_SIZE];
};

/* The context fields a step reads and writes. */
struct harness_io {
	__u64 cur_addr;
	__u64 next_addr;
	__u32 data_len;
	__u32 iteration;
	__u32 next_size;
	__u32 done;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct harness_block);
} data_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct harness_block);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct harness_io);
} io_map SEC(".maps");

#define HARNESS(name, step)                                                              \
	SEC("syscall")                                                                   \
	int name(void *ctx)                                                              \
	{                                                                                \
		struct bpfkv_xrp_out out = {};                                           \
		struct harness_block *data, *scratch;                                    \
		struct harness_io *io;                                                   \
		__u32 zero = 0;                                                          \
                                                                                         \
		data = bpf_map_lookup_elem(&data_map, &zero);                            \
		scratch = bpf_map_lookup_elem(&scratch_map, &zero);                      \
		io = bpf_map_lookup_elem(&io_map, &zero);                                \
		if (!data || !scratch || !io)                                            \
			return 1;                                                        \
		step(data->bytes, io->data_len, io->cur_addr, io->iteration, scratch->bytes, \
		     &out);                                                              \
		io->next_addr = out.next_addr;                                           \
		io->next_size = out.next_size;                                           \
		io->done = out.done;                                                     \
		return 0;                                                                \
	}

HARNESS(harness_get, bpfkv_get_step)
HARNESS(harness_range, bpfkv_range_step)
HARNESS(harness_agg, bpfkv_agg_step)

char LICENSE[] SEC("license") = "GPL";
