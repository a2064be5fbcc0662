/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hand-assembled XRP programs and helpers for the XRP selftests, so the
 * tests need only the patched uapi headers (no clang, no libbpf).
 */
#ifndef XRP_PROG_H
#define XRP_PROG_H

#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_read_xrp
#define __NR_read_xrp 451
#endif

#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX(sz, d, s, o)	INSN(BPF_LDX | (sz) | BPF_MEM, d, s, o, 0)
#define STX(sz, d, s, o)	INSN(BPF_STX | (sz) | BPF_MEM, d, s, o, 0)
#define ST(sz, d, o, imm)	INSN(BPF_ST | (sz) | BPF_MEM, d, 0, o, imm)
#define MOV_REG(d, s)		INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, i)		INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD_IMM(d, i)		INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define ADD_REG(d, s)		INSN(BPF_ALU64 | BPF_ADD | BPF_X, d, s, 0, 0)
#define AND_IMM(d, i)		INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define JNE_IMM(d, i, o)	INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o)	INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define CALL(fn)		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, fn)
#define EXIT()			INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LD_MAP_FD(d, fd)	INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), \
				INSN(0, 0, 0, 0, 0)

#define CTX(f) ((short)offsetof(struct bpf_xrp, f))

static char xrp_verifier_log[65536];

/* Returns a program fd, or -errno with the verifier's log in xrp_verifier_log. */
static inline int xrp_load(const struct bpf_insn *insns, unsigned int cnt, int type)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = type;
	attr.insns = (unsigned long)insns;
	attr.insn_cnt = cnt;
	attr.license = (unsigned long)"GPL";
	attr.log_buf = (unsigned long)xrp_verifier_log;
	attr.log_size = sizeof(xrp_verifier_log);
	attr.log_level = 1;
	xrp_verifier_log[0] = '\0';
	fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

static inline long read_xrp(int fd, void *buf, size_t count, long long offset,
			    int bpf_fd, void *scratch)
{
	return syscall(__NR_read_xrp, fd, buf, count, offset, bpf_fd, scratch);
}

/*
 * Follows an on-disk linked list.  Each block starts with
 *   __u64 next;   file offset of the next block
 *   __u32 last;   non-zero in the last block
 * Counts the blocks it visits in scratch[0..3].
 */
static const struct bpf_insn xrp_list_prog[] = {
	MOV_REG(BPF_REG_6, BPF_REG_1),
	LDX(BPF_DW, BPF_REG_5, BPF_REG_6, CTX(scratch)),
	LDX(BPF_W, BPF_REG_7, BPF_REG_5, 0),
	ADD_IMM(BPF_REG_7, 1),
	STX(BPF_W, BPF_REG_5, BPF_REG_7, 0),
	LDX(BPF_DW, BPF_REG_2, BPF_REG_6, CTX(data)),
	LDX(BPF_DW, BPF_REG_3, BPF_REG_2, 0),
	LDX(BPF_W, BPF_REG_4, BPF_REG_2, 8),
	JNE_IMM(BPF_REG_4, 0, 3),
	STX(BPF_DW, BPF_REG_6, BPF_REG_3, CTX(next_addr)),
	MOV_IMM(BPF_REG_0, 0),
	EXIT(),
	MOV_IMM(BPF_REG_0, 1),
	STX(BPF_W, BPF_REG_6, BPF_REG_0, CTX(done)),
	MOV_IMM(BPF_REG_0, 0),
	EXIT(),
};

/* Sets done at once.  (The verifier refuses BPF_ST into ctx: store a register.) */
static const struct bpf_insn xrp_done_prog[] = {
	MOV_IMM(BPF_REG_0, 1),
	STX(BPF_W, BPF_REG_1, BPF_REG_0, CTX(done)),
	MOV_IMM(BPF_REG_0, 0),
	EXIT(),
};

#endif /* XRP_PROG_H */
