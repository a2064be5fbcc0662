// SPDX-License-Identifier: GPL-2.0
/*
 * Description: XRP, BPF functions in the NVMe completion path.
 *
 * The verifier bounds every access to data and scratch; a program that sets
 * done at once returns what pread returns; a program that follows an
 * on-disk linked list of N blocks returns the N-th block, on the raw device
 * with 512-byte and 4 KiB blocks; every bad argument gets its documented
 * errno and changes nothing; the resubmission cap stops a program that
 * never sets done; several threads can use read_xrp at once.
 *
 * On ext4 the same list works through the extent map, and truncate,
 * punch hole and concurrent rewrites never let a stale block through.
 *
 * The VM (scripts/ksft) has NVMe controllers with serials fastpath0
 * (512-byte LBAs) and fastpath1 (4096-byte LBAs), whose first 64 MiB the
 * tests overwrite, and fastpath2 (512-byte LBAs), which they partition:
 * p1 is used raw (partition offset), p2 holds an ext4 file system.
 */
#define _GNU_SOURCE
#include <linux/falloc.h>
#include <sys/wait.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "../../kselftest_harness.h"
#include "../lib/fastpath_ksft.h"
#include "xrp_prog.h"

#define REGION (64ULL << 20)

static void *xalloc(size_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, n))
		return NULL;
	memset(p, 0, n);
	return p;
}

/*
 * Writes a linked list of n blocks of size bs, scattered over the region
 * at the start of fd, and returns the offset of the first block.  Block i
 * carries the pattern (seed, i) after its 16-byte header.
 */
static long long write_list(int fd, unsigned int bs, int n, unsigned int seed,
			    long long *last_off)
{
	unsigned long long slots = REGION / bs;
	unsigned char *blk = xalloc(bs);
	long long off = 0, next;
	long long first = -1;

	/* slots (start + i * stride) mod slots are distinct: slots is a power of 2 */
	unsigned long long start = (seed * 2654435761ULL) % slots;
	unsigned long long stride = (seed * 40503ULL + 7919) | 1;

	for (int i = 0; i < n; i++) {
		off = (long long)(((start + i * stride) % slots) * bs);
		next = (long long)(((start + (i + 1) * stride) % slots) * bs);
		memset(blk, 0, bs);
		*(uint64_t *)blk = next;
		*(uint32_t *)(blk + 8) = (i == n - 1);
		for (unsigned int b = 16; b < bs; b++)
			blk[b] = (unsigned char)(seed * 31 + i * 7 + b);
		if (pwrite(fd, blk, bs, off) != (ssize_t)bs) {
			free(blk);
			return -1;
		}
		if (first < 0)
			first = off;
		*last_off = off;
		off = next;
	}
	free(blk);
	return first;
}

static int expect_block(const unsigned char *blk, unsigned int bs, unsigned int seed,
			int i)
{
	for (unsigned int b = 16; b < bs; b++)
		if (blk[b] != (unsigned char)(seed * 31 + i * 7 + b))
			return 0;
	return 1;
}

FIXTURE(xrp)
{
	char dev512[64];
	char dev4k[64];
	int fd512;	/* O_DIRECT, 512-byte LBAs */
	int fd4k;	/* O_DIRECT, 4096-byte LBAs */
	int list_prog;
	int done_prog;
	unsigned char *scratch;
	unsigned char *buf;
};

FIXTURE_SETUP(xrp)
{
	ASSERT_EQ(0, fp_find_nvme_ns("fastpath0", self->dev512, sizeof(self->dev512)))
		TH_LOG("no NVMe controller with serial fastpath0 (run through scripts/ksft)");
	ASSERT_EQ(0, fp_find_nvme_ns("fastpath1", self->dev4k, sizeof(self->dev4k)));
	self->fd512 = open(self->dev512, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->fd512);
	self->fd4k = open(self->dev4k, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->fd4k);
	self->list_prog = xrp_load(xrp_list_prog, ARRAY_SIZE(xrp_list_prog), BPF_PROG_TYPE_XRP);
	ASSERT_LE(0, self->list_prog) TH_LOG("load: %s\n%s", strerror(-self->list_prog),
					     xrp_verifier_log);
	self->done_prog = xrp_load(xrp_done_prog, ARRAY_SIZE(xrp_done_prog), BPF_PROG_TYPE_XRP);
	ASSERT_LE(0, self->done_prog) TH_LOG("load: %s\n%s", strerror(-self->done_prog),
					     xrp_verifier_log);
	self->scratch = xalloc(XRP_SCRATCH_SIZE);
	self->buf = xalloc(XRP_DATA_SIZE);
	ASSERT_NE(NULL, self->scratch);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(xrp)
{
	close(self->fd512);
	close(self->fd4k);
	close(self->list_prog);
	close(self->done_prog);
	free(self->scratch);
	free(self->buf);
}

/* A linked list of n blocks of size bs on fd: read_xrp returns the last block. */
static void check_list(struct __test_metadata *_metadata, int fd, int prog,
		       unsigned int bs, int n, unsigned int seed)
{
	unsigned char *buf = xalloc(XRP_DATA_SIZE), *scratch = xalloc(XRP_SCRATCH_SIZE);
	long long first, last;
	long ret;

	first = write_list(fd, bs, n, seed, &last);
	ASSERT_LE(0, first);
	ret = read_xrp(fd, buf, bs, first, prog, scratch);
	ASSERT_EQ((long)bs, ret) TH_LOG("read_xrp: %s", strerror(errno));
	EXPECT_EQ((uint32_t)n, *(uint32_t *)scratch) TH_LOG("program ran %u times, want %d",
							    *(uint32_t *)scratch, n);
	EXPECT_EQ(1u, *(uint32_t *)(buf + 8));
	EXPECT_TRUE(expect_block(buf, bs, seed, n - 1)) TH_LOG("wrong payload after %d hops", n);
	free(buf);
	free(scratch);
}

TEST_F(xrp, done_at_once_equals_pread)
{
	unsigned char *want = xalloc(4096);
	long ret;

	for (unsigned int i = 0; i < 4096; i++)
		want[i] = (unsigned char)(i * 13 + 5);
	ASSERT_EQ(4096, pwrite(self->fd512, want, 4096, 8 * 4096));
	memset(want, 0, 4096);
	ASSERT_EQ(4096, pread(self->fd512, want, 4096, 8 * 4096));
	for (unsigned int size = 512; size <= 4096; size *= 2) {
		memset(self->buf, 0xaa, 4096);
		ret = read_xrp(self->fd512, self->buf, size, 8 * 4096, self->done_prog,
			       self->scratch);
		ASSERT_EQ((long)size, ret) TH_LOG("size %u: %s", size, strerror(errno));
		EXPECT_EQ(0, memcmp(want, self->buf, size)) TH_LOG("size %u differs from pread", size);
	}
	free(want);
}

TEST_F(xrp, linked_list_raw_512)
{
	check_list(_metadata, self->fd512, self->list_prog, 512, 1, 1);
	check_list(_metadata, self->fd512, self->list_prog, 512, 2, 2);
	check_list(_metadata, self->fd512, self->list_prog, 512, 37, 3);
	check_list(_metadata, self->fd512, self->list_prog, 512, XRP_MAX_RESUBMIT + 1, 4);
}

TEST_F(xrp, linked_list_raw_4k)
{
	check_list(_metadata, self->fd512, self->list_prog, 4096, 20, 5);
	check_list(_metadata, self->fd4k, self->list_prog, 4096, 20, 6);
}

TEST_F(xrp, resubmission_cap)
{
	/* Never sets done: always asks for block 0 again. */
	const struct bpf_insn loop[] = {
		MOV_IMM(BPF_REG_0, 0),
		STX(BPF_DW, BPF_REG_1, BPF_REG_0, CTX(next_addr)),
		EXIT(),
	};
	unsigned int runs;
	long long first, last;
	struct timespec t0, t1;
	int prog = xrp_load(loop, ARRAY_SIZE(loop), BPF_PROG_TYPE_XRP);

	ASSERT_LE(0, prog);
	memset(self->scratch, 0x5a, XRP_SCRATCH_SIZE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, prog, self->scratch));
	EXPECT_EQ(ELOOP, errno);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_LT(t1.tv_sec - t0.tv_sec, 10);
	EXPECT_EQ(0x5a, self->scratch[0]) TH_LOG("scratch changed on error");
	close(prog);

	/* one block more than the cap allows */
	first = write_list(self->fd512, 512, XRP_MAX_RESUBMIT + 2, 9, &last);
	ASSERT_LE(0, first);
	memset(self->scratch, 0, XRP_SCRATCH_SIZE);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, first, self->list_prog,
			       self->scratch));
	EXPECT_EQ(ELOOP, errno);
	runs = *(uint32_t *)self->scratch;
	EXPECT_EQ(0u, runs) TH_LOG("scratch copied back on error");
	/* and the queue still works */
	check_list(_metadata, self->fd512, self->list_prog, 512, 3, 10);
}

TEST_F(xrp, bad_arguments)
{
	char loopdev[64] = "", cmd[128];
	unsigned char *ro;
	int sock_prog, plain, loopfd;
	const struct bpf_insn ret0[] = { MOV_IMM(BPF_REG_0, 0), EXIT() };
	long long size;

	errno = 0;
	EXPECT_EQ(-1, read_xrp(-1, self->buf, 512, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, -1, self->scratch));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, self->fd4k, self->scratch));
	EXPECT_EQ(EINVAL, errno) TH_LOG("a non-BPF fd as bpf_fd");

	sock_prog = xrp_load(ret0, 2, BPF_PROG_TYPE_SOCKET_FILTER);
	ASSERT_LE(0, sock_prog);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, sock_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno) TH_LOG("a program of another type");
	close(sock_prog);

	plain = open(self->dev512, O_RDONLY);
	ASSERT_LE(0, plain);
	EXPECT_EQ(-1, read_xrp(plain, self->buf, 512, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno) TH_LOG("a file without O_DIRECT");
	close(plain);

	/* a block device that is not NVMe: a loop device */
	ASSERT_EQ(0, system("truncate -s 8M /tmp/xrp-loop.img && "
			    "losetup -f --show /tmp/xrp-loop.img > /tmp/xrp-loop.dev"));
	ASSERT_EQ(0, fp_read_str("/tmp/xrp-loop.dev", loopdev, sizeof(loopdev)));
	loopfd = open(loopdev, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, loopfd);
	EXPECT_EQ(-1, read_xrp(loopfd, self->buf, 512, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EOPNOTSUPP, errno) TH_LOG("a loop device is not XRP-capable");
	close(loopfd);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
	EXPECT_EQ(0, system(cmd));
	/* a character device */
	plain = open("/dev/null", O_RDONLY | O_DIRECT);
	if (plain >= 0) {
		EXPECT_EQ(-1, read_xrp(plain, self->buf, 512, 0, self->done_prog, self->scratch));
		EXPECT_EQ(EOPNOTSUPP, errno);
		close(plain);
	}

	/* sizes and offsets */
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 0, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 8192, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 300, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 100, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read_xrp(self->fd4k, self->buf, 512, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno) TH_LOG("512 bytes on a 4096-byte LBA device");
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, -512, self->done_prog, self->scratch));
	EXPECT_EQ(EINVAL, errno);
	size = lseek(self->fd512, 0, SEEK_END);
	ASSERT_LT(0, size);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, size, self->done_prog, self->scratch));
	EXPECT_EQ(ENXIO, errno) TH_LOG("offset at the end of the device");
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 4096, size - 512, self->done_prog,
			       self->scratch));
	EXPECT_EQ(ENXIO, errno) TH_LOG("read crossing the end of the device");

	/* unwritable scratch or buffer: EFAULT, before any I/O */
	ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, self->done_prog, ro));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, ro, 512, 0, self->done_prog, self->scratch));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 0, self->done_prog, NULL));
	EXPECT_EQ(EFAULT, errno);
	munmap(ro, 4096);
}

TEST_F(xrp, bad_next_block)
{
	/* next_addr = value at data[0], next_size = value at data[8] */
	const struct bpf_insn prog[] = {
		MOV_REG(BPF_REG_6, BPF_REG_1),
		LDX(BPF_DW, BPF_REG_2, BPF_REG_6, CTX(data)),
		LDX(BPF_DW, BPF_REG_3, BPF_REG_2, 0),
		STX(BPF_DW, BPF_REG_6, BPF_REG_3, CTX(next_addr)),
		LDX(BPF_W, BPF_REG_3, BPF_REG_2, 8),
		STX(BPF_W, BPF_REG_6, BPF_REG_3, CTX(next_size)),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	struct { unsigned long long next; unsigned int size; int err; } cases[] = {
		{ 100, 0, EINVAL },		/* misaligned */
		{ 512, 1024, EINVAL },		/* longer than the call's count */
		{ 512, 300, EINVAL },		/* not a block multiple */
		{ 1ULL << 50, 0, ENXIO },	/* past the end of the device */
	};
	int fd = xrp_load(prog, ARRAY_SIZE(prog), BPF_PROG_TYPE_XRP);

	ASSERT_LE(0, fd) TH_LOG("%s", xrp_verifier_log);
	for (unsigned int i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(self->buf, 0, 512);
		*(uint64_t *)self->buf = cases[i].next;
		*(uint32_t *)(self->buf + 8) = cases[i].size;
		ASSERT_EQ(512, pwrite(self->fd512, self->buf, 512, 4096));
		EXPECT_EQ(-1, read_xrp(self->fd512, self->buf, 512, 4096, fd, self->scratch));
		EXPECT_EQ(cases[i].err, errno) TH_LOG("case %u: got %s", i, strerror(errno));
	}
	close(fd);
}

TEST(verifier_bounds)
{
	/* each program makes one bad access; all must be rejected */
	const struct bpf_insn data_past_end[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(data)),
		LDX(BPF_DW, BPF_REG_0, BPF_REG_2, XRP_DATA_SIZE - 4),
		EXIT(),
	};
	const struct bpf_insn data_write[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(data)),
		ST(BPF_DW, BPF_REG_2, 0, 1),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	const struct bpf_insn data_before_start[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(data)),
		LDX(BPF_B, BPF_REG_0, BPF_REG_2, -1),
		EXIT(),
	};
	const struct bpf_insn data_unbounded_index[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(data)),
		LDX(BPF_W, BPF_REG_3, BPF_REG_2, 8),
		ADD_REG(BPF_REG_2, BPF_REG_3),
		LDX(BPF_B, BPF_REG_0, BPF_REG_2, 0),
		EXIT(),
	};
	const struct bpf_insn scratch_past_end[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(scratch)),
		ST(BPF_DW, BPF_REG_2, XRP_SCRATCH_SIZE - 4, 1),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	const struct bpf_insn scratch_unbounded_index[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(scratch)),
		LDX(BPF_DW, BPF_REG_3, BPF_REG_2, 0),
		AND_IMM(BPF_REG_3, 8191),
		ADD_REG(BPF_REG_2, BPF_REG_3),
		ST(BPF_B, BPF_REG_2, 0, 1),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	const struct bpf_insn ctx_write_ro[] = {
		MOV_IMM(BPF_REG_0, 0),
		STX(BPF_DW, BPF_REG_1, BPF_REG_0, CTX(cur_addr)),
		EXIT(),
	};
	const struct bpf_insn ctx_write_len[] = {
		MOV_IMM(BPF_REG_0, 0),
		STX(BPF_W, BPF_REG_1, BPF_REG_0, CTX(data_len)),
		EXIT(),
	};
	const struct bpf_insn ctx_write_ptr[] = {
		MOV_IMM(BPF_REG_0, 0),
		STX(BPF_DW, BPF_REG_1, BPF_REG_0, CTX(data)),
		EXIT(),
	};
	const struct bpf_insn ctx_past_end[] = {
		LDX(BPF_W, BPF_REG_0, BPF_REG_1, sizeof(struct bpf_xrp)),
		EXIT(),
	};
	const struct bpf_insn ctx_narrow_ptr[] = {
		LDX(BPF_W, BPF_REG_2, BPF_REG_1, CTX(data)),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	/* the same accesses, bounded, are accepted */
	const struct bpf_insn bounded[] = {
		LDX(BPF_DW, BPF_REG_2, BPF_REG_1, CTX(data)),
		LDX(BPF_DW, BPF_REG_4, BPF_REG_1, CTX(scratch)),
		LDX(BPF_W, BPF_REG_3, BPF_REG_2, XRP_DATA_SIZE - 4),
		AND_IMM(BPF_REG_3, XRP_SCRATCH_SIZE - 1),
		ADD_REG(BPF_REG_4, BPF_REG_3),
		ST(BPF_B, BPF_REG_4, 0, 1),
		AND_IMM(BPF_REG_3, XRP_DATA_SIZE - 8),
		ADD_REG(BPF_REG_2, BPF_REG_3),
		LDX(BPF_DW, BPF_REG_0, BPF_REG_2, 0),
		MOV_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	struct { const char *name; const struct bpf_insn *p; unsigned int n; } bad[] = {
#define BAD(x) { #x, x, ARRAY_SIZE(x) }
		BAD(data_past_end), BAD(data_write), BAD(data_before_start),
		BAD(data_unbounded_index), BAD(scratch_past_end),
		BAD(scratch_unbounded_index), BAD(ctx_write_ro), BAD(ctx_write_len),
		BAD(ctx_write_ptr),
		BAD(ctx_past_end), BAD(ctx_narrow_ptr),
	};
	int fd;

	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		fd = xrp_load(bad[i].p, bad[i].n, BPF_PROG_TYPE_XRP);
		EXPECT_GT(0, fd) TH_LOG("verifier accepted %s", bad[i].name);
		if (fd >= 0)
			close(fd);
		else
			EXPECT_EQ(-EACCES, fd) TH_LOG("%s: %s", bad[i].name, strerror(-fd));
	}
	fd = xrp_load(bounded, ARRAY_SIZE(bounded), BPF_PROG_TYPE_XRP);
	EXPECT_LE(0, fd) TH_LOG("bounded program rejected:\n%s", xrp_verifier_log);
	if (fd >= 0)
		close(fd);
}

struct worker {
	int fd;
	int prog;
	unsigned int bs;
	long long first;
	int n;
	unsigned int seed;
	int iterations;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *buf = xalloc(XRP_DATA_SIZE), *scratch = xalloc(XRP_SCRATCH_SIZE);

	for (int it = 0; it < w->iterations; it++) {
		memset(scratch, 0, XRP_SCRATCH_SIZE);
		if (read_xrp(w->fd, buf, w->bs, w->first, w->prog, scratch) != (long)w->bs ||
		    *(uint32_t *)scratch != (uint32_t)w->n ||
		    !expect_block(buf, w->bs, w->seed, w->n - 1))
			w->failures++;
	}
	free(buf);
	free(scratch);
	return NULL;
}

TEST_F(xrp, concurrent_callers)
{
	struct worker w[4];
	pthread_t t[4];
	long long last;

	/* two lists on each device; two threads share each list */
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){
			.fd = i < 2 ? self->fd512 : self->fd4k,
			.prog = self->list_prog,
			.bs = 4096,
			.n = 8 + i,
			.seed = 100 + i,
			.iterations = 200,
		};
	}
	/* w[0] and w[1] share a list on fastpath0, w[2] and w[3] one on fastpath1 */
	w[0].first = write_list(self->fd512, 4096, w[0].n, w[0].seed, &last);
	w[1].n = w[0].n;
	w[1].seed = w[0].seed;
	w[1].first = w[0].first;
	w[2].first = write_list(self->fd4k, 4096, w[2].n, w[2].seed, &last);
	w[3].first = w[2].first;
	w[3].n = w[2].n;
	w[3].seed = w[2].seed;
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, worker_main, &w[i]));
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, w[i].failures) TH_LOG("thread %d: %d of %d calls wrong", i,
						   w[i].failures, w[i].iterations);
	}
}

/* ---- partitions and ext4 on fastpath2 ---- */

static int run(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

FIXTURE(xrp_fs)
{
	char disk[64];
	char part1[80];
	char part2[80];
	char mnt[64];
	int prog;
	int done_prog;
};

FIXTURE_SETUP(xrp_fs)
{
	char cmd[512];

	ASSERT_EQ(0, fp_find_nvme_ns("fastpath2", self->disk, sizeof(self->disk)))
		TH_LOG("no NVMe controller with serial fastpath2 (run through scripts/ksft)");
	snprintf(self->part1, sizeof(self->part1), "%sp1", self->disk);
	snprintf(self->part2, sizeof(self->part2), "%sp2", self->disk);
	snprintf(self->mnt, sizeof(self->mnt), "/tmp/xrp-ext4");
	snprintf(cmd, sizeof(cmd),
		 "umount %1$s 2>/dev/null; "
		 "printf 'start=2048,size=131072\nstart=133120\n' | sfdisk -q -X dos %2$s >/dev/null && "
		 "for i in 1 2 3 4 5 6 7 8 9 10; do [ -b %3$s ] && break; sleep 0.2; done && "
		 "mkfs.ext4 -q -F -b 4096 %3$s && mkdir -p %1$s && mount -t ext4 %3$s %1$s",
		 self->mnt, self->disk, self->part2);
	ASSERT_EQ(0, run(cmd)) TH_LOG("partitioning %s and making ext4 failed", self->disk);
	self->prog = xrp_load(xrp_list_prog, ARRAY_SIZE(xrp_list_prog), BPF_PROG_TYPE_XRP);
	ASSERT_LE(0, self->prog);
	self->done_prog = xrp_load(xrp_done_prog, ARRAY_SIZE(xrp_done_prog), BPF_PROG_TYPE_XRP);
	ASSERT_LE(0, self->done_prog);
}

FIXTURE_TEARDOWN(xrp_fs)
{
	char cmd[128];

	close(self->prog);
	close(self->done_prog);
	snprintf(cmd, sizeof(cmd), "umount %s", self->mnt);
	run(cmd);
}

TEST_F(xrp_fs, linked_list_raw_partition)
{
	int fd = open(self->part1, O_RDWR | O_DIRECT);

	ASSERT_LE(0, fd) TH_LOG("open %s: %s", self->part1, strerror(errno));
	check_list(_metadata, fd, self->prog, 512, 30, 21);
	check_list(_metadata, fd, self->prog, 4096, 30, 22);
	close(fd);
}

/* An empty file of REGION preallocated (unwritten) bytes; returns an O_DIRECT fd. */
static int make_empty_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, REGION) || fallocate(fd, 0, 0, REGION)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A file of REGION bytes holding a linked list; returns an O_DIRECT fd. */
static int make_list_file(const char *path, unsigned int bs, int n, unsigned int seed,
			  long long *first)
{
	long long last;
	int fd = make_empty_file(path);

	if (fd < 0)
		return -1;
	*first = write_list(fd, bs, n, seed, &last);
	if (*first < 0 || fsync(fd)) {
		close(fd);
		return -1;
	}
	return fd;
}

TEST_F(xrp_fs, linked_list_ext4)
{
	static unsigned char self_buf[4096] __attribute__((aligned(4096)));
	static unsigned char self_scratch[4096];
	char path[128];
	long long first;
	int fd;

	snprintf(path, sizeof(path), "%s/list", self->mnt);
	for (unsigned int bs = 512; bs <= 4096; bs *= 8) {
		/* preallocated (unwritten) extents, then the list written over them */
		fd = make_list_file(path, bs, 25, 30 + bs, &first);
		ASSERT_LE(0, fd) TH_LOG("making %s: %s", path, strerror(errno));
		check_list(_metadata, fd, self->prog, bs, 25, 30 + bs);
		close(fd);
	}
	/* not O_DIRECT: EINVAL */
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, read_xrp(fd, self_buf, 512, 0, self->done_prog, self_scratch));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST_F(xrp_fs, no_stale_block_after_truncate_or_punch)
{
	unsigned char *buf = xalloc(4096), *scratch = xalloc(4096);
	char path[128];
	long long first, off;
	int fd;

	snprintf(path, sizeof(path), "%s/stale", self->mnt);
	fd = make_list_file(path, 4096, 12, 77, &first);
	ASSERT_LE(0, fd);
	check_list(_metadata, fd, self->prog, 4096, 12, 77);

	/* punch a hole where the first block is: ENODATA, not old data */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, first, 4096));
	EXPECT_EQ(-1, read_xrp(fd, buf, 4096, first, self->prog, scratch));
	EXPECT_EQ(ENODATA, errno) TH_LOG("read of a punched block: %s", strerror(errno));

	/* a fresh list, then truncate to nothing: ENXIO */
	close(fd);
	fd = make_list_file(path, 4096, 12, 78, &first);
	ASSERT_LE(0, fd);
	check_list(_metadata, fd, self->prog, 4096, 12, 78);
	ASSERT_EQ(0, ftruncate(fd, 0));
	EXPECT_EQ(-1, read_xrp(fd, buf, 4096, first, self->prog, scratch));
	EXPECT_EQ(ENXIO, errno);
	/* grow again: a hole now, ENODATA */
	ASSERT_EQ(0, ftruncate(fd, REGION));
	EXPECT_EQ(-1, read_xrp(fd, buf, 4096, first, self->prog, scratch));
	EXPECT_EQ(ENODATA, errno);
	/* and new blocks are found without reopening */
	off = 0;
	memset(buf, 0, 4096);
	*(uint32_t *)(buf + 8) = 1;
	ASSERT_EQ(4096, pwrite(fd, buf, 4096, off));
	ASSERT_EQ(0, fsync(fd));
	memset(scratch, 0, 4096);
	EXPECT_EQ(4096, read_xrp(fd, buf, 4096, off, self->prog, scratch))
		TH_LOG("read of a newly written block: %s", strerror(errno));
	close(fd);
	free(buf);
	free(scratch);
}

struct rewriter {
	const char *path;
	int stop;
	int rounds;
	/*
	 * Non-zero while the file is truncated and preallocated but the list is
	 * not written yet: its blocks are unwritten, so a correct read_xrp()
	 * must refuse them (ENODATA) however recently it read them.
	 */
	int absent;
};

/* Keeps truncating the file, leaving it without its list a while, and rewriting it. */
static void *rewriter_main(void *arg)
{
	struct rewriter *r = arg;
	long long last;
	int fd, window = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		fd = make_empty_file(r->path);
		if (fd < 0)
			continue;
		__atomic_store_n(&r->absent, ++window, __ATOMIC_SEQ_CST);
		usleep(40000);
		__atomic_store_n(&r->absent, 0, __ATOMIC_SEQ_CST);
		write_list(fd, 4096, 12, 99, &last);
		fsync(fd);
		close(fd);
		r->rounds++;
		usleep(40000);	/* a stable window, so some reads can succeed */
	}
	return NULL;
}

TEST_F(xrp_fs, concurrent_rewrite_never_returns_stale_data)
{
	unsigned char *buf = xalloc(4096), *scratch = xalloc(4096);
	struct rewriter r = { 0 };
	int ok = 0, refused = 0, wrong = 0, in_window = 0;
	struct timespec t0, t1;
	char path[128];
	long long first;
	pthread_t t;
	int fd;

	snprintf(path, sizeof(path), "%s/race", self->mnt);
	/* the same seed every time, so the list always starts at the same offset */
	fd = make_list_file(path, 4096, 12, 99, &first);
	ASSERT_LE(0, fd);
	close(fd);
	r.path = path;
	ASSERT_EQ(0, pthread_create(&t, NULL, rewriter_main, &r));
	/* until both kinds of moment have been seen often enough, at most 60 s */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 400 || ok < 20 || in_window < 20; i++) {
		int before, after;
		long ret;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 60)
			break;

		fd = open(path, O_RDONLY | O_DIRECT);
		if (fd < 0)
			continue;
		memset(scratch, 0, 4096);
		before = __atomic_load_n(&r.absent, __ATOMIC_SEQ_CST);
		ret = read_xrp(fd, buf, 4096, first, self->prog, scratch);
		after = __atomic_load_n(&r.absent, __ATOMIC_SEQ_CST);
		/* the whole call ran while the list was not on disk */
		if (before && before == after)
			in_window++;
		if (ret == 4096) {
			if (before && before == after)
				wrong++;	/* blocks the file no longer maps */
			else if (*(uint32_t *)scratch == 12 && expect_block(buf, 4096, 99, 11))
				ok++;
			else
				wrong++;
		} else {
			EXPECT_TRUE(errno == ESTALE || errno == ENODATA || errno == ENXIO)
				TH_LOG("unexpected error %s", strerror(errno));
			refused++;
		}
		close(fd);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	TH_LOG("%d correct, %d refused, %d wrong; %d calls inside a truncated window; %d rewrites",
	       ok, refused, wrong, in_window, r.rounds);
	EXPECT_EQ(0, wrong) TH_LOG("%d calls returned a block the file did not hold", wrong);
	EXPECT_LT(0, ok);
	EXPECT_LT(0, in_window) TH_LOG("no call fell inside a truncated window: the race was not exercised");
	free(buf);
	free(scratch);
}

TEST_HARNESS_MAIN
