// SPDX-License-Identifier: GPL-2.0
/*
 * BPF-KV XRP program AGG: COUNT, SUM, MIN or MAX of the aggregation field of
 * the values of the keys in [cur, end) (struct bpfkv_scan_scratch).  COUNT
 * reads leaves only.  Resumable like RANGE.
 * The per-block logic is bpfkv_agg_step() in bpfkv_xrp_logic.h; this file
 * only adapts the XRP context (docs/xrp.md) to it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfkv_xrp_logic.h"

_Static_assert(BPFKV_XRP_DATA_SIZE == XRP_DATA_SIZE, "data size differs from the XRP uapi");
_Static_assert(BPFKV_XRP_SCRATCH_SIZE == XRP_SCRATCH_SIZE, "scratch size differs from the XRP uapi");
_Static_assert(BPFKV_XRP_MAX_READS == XRP_MAX_RESUBMIT, "read cap differs from the XRP uapi");

SEC("xrp")
int bpfkv_agg(struct bpf_xrp *ctx)
{
	struct bpfkv_xrp_out out = {};

	bpfkv_agg_step(ctx->data, ctx->data_len, ctx->cur_addr, ctx->iteration, ctx->scratch, &out);
	ctx->next_addr = out.next_addr;
	ctx->next_size = out.next_size;
	ctx->done = out.done;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
