// SPDX-License-Identifier: GPL-2.0
/*
 * Description: check that the VM is the platform fastpath needs.
 *
 * The running kernel is the one scripts/kernel built (release and build tag,
 * read from ./expected-kernel, which scripts/ksft writes); an NVMe namespace
 * with 512-byte blocks is present and O_DIRECT I/O on it works; bpf() loads
 * and runs a program; /dev/fuse opens; nvmet is configurable through
 * configfs; an rxe device can be created on a veth inside a network namespace.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../../kselftest_harness.h"
#include "../lib/fastpath_ksft.h"

#define NVME_SERIAL "fastpath0"

static int run(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(kernel_is_ours)
{
	char want_rel[256] = "", want_tag[256] = "", version[1024];
	struct utsname u;
	FILE *f;

	f = fopen("expected-kernel", "r");
	ASSERT_NE(NULL, f) TH_LOG("expected-kernel missing: run through scripts/ksft");
	ASSERT_EQ(2, fscanf(f, "%255s %255s", want_rel, want_tag));
	fclose(f);
	ASSERT_EQ(0, uname(&u));
	TH_LOG("running %s, expected %s built on %s", u.release, want_rel, want_tag);
	EXPECT_STREQ(want_rel, u.release);
	ASSERT_EQ(0, fp_read_str("/proc/version", version, sizeof(version)));
	EXPECT_NE(NULL, strstr(version, want_tag))
		TH_LOG("/proc/version '%s' lacks build tag %s: a stale kernel?", version, want_tag);
}

TEST(nvme_present_512)
{
	char dev[64], path[256], lbs[32];

	ASSERT_EQ(0, fp_find_nvme_ns(NVME_SERIAL, dev, sizeof(dev)))
		TH_LOG("no NVMe controller with serial %s (scripts/vng --nvme)", NVME_SERIAL);
	TH_LOG("namespace %s", dev);
	snprintf(path, sizeof(path), "/sys/block/%s/queue/logical_block_size", dev + 5);
	ASSERT_EQ(0, fp_read_str(path, lbs, sizeof(lbs)));
	EXPECT_STREQ("512", lbs);
}

TEST(nvme_odirect_512)
{
	const size_t bs = 512, nblk = 8;
	unsigned char *wbuf, *rbuf, *odd;
	char dev[64];
	int fd;

	ASSERT_EQ(0, fp_find_nvme_ns(NVME_SERIAL, dev, sizeof(dev)));
	fd = open(dev, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd) TH_LOG("open %s O_DIRECT: %s", dev, strerror(errno));
	ASSERT_EQ(0, posix_memalign((void **)&wbuf, 4096, bs * nblk));
	ASSERT_EQ(0, posix_memalign((void **)&rbuf, 4096, bs * nblk));
	for (size_t i = 0; i < bs * nblk; i++)
		wbuf[i] = (unsigned char)(i * 7 + getpid());

	/* one 512-byte block at an odd LBA, then 8 blocks at once */
	ASSERT_EQ((ssize_t)bs, pwrite(fd, wbuf, bs, 512 * 3));
	ASSERT_EQ((ssize_t)bs, pread(fd, rbuf, bs, 512 * 3));
	EXPECT_EQ(0, memcmp(wbuf, rbuf, bs));
	ASSERT_EQ((ssize_t)(bs * nblk), pwrite(fd, wbuf, bs * nblk, 512 * 11));
	memset(rbuf, 0, bs * nblk);
	ASSERT_EQ((ssize_t)(bs * nblk), pread(fd, rbuf, bs * nblk, 512 * 11));
	EXPECT_EQ(0, memcmp(wbuf, rbuf, bs * nblk));

	/* O_DIRECT really is direct: a misaligned offset is refused */
	EXPECT_EQ(-1, pread(fd, rbuf, bs, 256));
	EXPECT_EQ(EINVAL, errno);
	odd = rbuf + 1;
	EXPECT_EQ(-1, pread(fd, odd, bs, 0));
	EXPECT_EQ(EINVAL, errno);
	free(wbuf);
	free(rbuf);
	close(fd);
}

TEST(bpf_load_and_run)
{
	/* r0 = 42; exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 42 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	unsigned char pkt[64] = { 0 };
	char log[4096] = "";
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (unsigned long)insns;
	attr.insn_cnt = 2;
	attr.license = (unsigned long)"GPL";
	attr.log_buf = (unsigned long)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	ASSERT_LE(0, fd) TH_LOG("BPF_PROG_LOAD: %s; verifier: %s", strerror(errno), log);

	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = fd;
	attr.test.data_in = (unsigned long)pkt;
	attr.test.data_size_in = sizeof(pkt);
	attr.test.repeat = 1;
	ASSERT_EQ(0, syscall(SYS_bpf, BPF_PROG_TEST_RUN, &attr, sizeof(attr)))
		TH_LOG("BPF_PROG_TEST_RUN: %s", strerror(errno));
	EXPECT_EQ(42, attr.test.retval);
	close(fd);
}

TEST(fuse_dev_opens)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, fd) TH_LOG("open /dev/fuse: %s", strerror(errno));
	close(fd);
}

TEST(nvmet_configfs)
{
	char subsys[128];

	if (access("/sys/kernel/config/nvmet", F_OK)) {
		mkdir("/sys/kernel/config", 0755);
		mount("configfs", "/sys/kernel/config", "configfs", 0, NULL);
	}
	ASSERT_EQ(0, access("/sys/kernel/config/nvmet/subsystems", F_OK))
		TH_LOG("no nvmet in configfs: kernel lacks CONFIG_NVME_TARGET?");
	snprintf(subsys, sizeof(subsys), "/sys/kernel/config/nvmet/subsystems/smoke-%d", getpid());
	ASSERT_EQ(0, mkdir(subsys, 0755)) TH_LOG("mkdir %s: %s", subsys, strerror(errno));
	/* nvmet fills in a new subsystem's attributes and namespaces dir */
	EXPECT_EQ(0, access(subsys, F_OK));
	char ns[256];

	snprintf(ns, sizeof(ns), "%s/namespaces", subsys);
	EXPECT_EQ(0, access(ns, F_OK));
	EXPECT_EQ(0, rmdir(subsys));
}

FIXTURE(rxe_netns)
{
	char ns[64];
	char dev[64];
};

FIXTURE_SETUP(rxe_netns)
{
	char cmd[512];

	snprintf(self->ns, sizeof(self->ns), "fpsmoke%d", getpid());
	snprintf(self->dev, sizeof(self->dev), "rxesmoke%d", getpid() % 10000);
	snprintf(cmd, sizeof(cmd),
		 "ip netns add %1$s && "
		 "ip -n %1$s link add va type veth peer name vb && "
		 "ip -n %1$s addr add 10.211.0.1/24 dev va && "
		 "ip -n %1$s addr add 10.211.0.2/24 dev vb && "
		 "ip -n %1$s link set va up && ip -n %1$s link set vb up",
		 self->ns);
	ASSERT_EQ(0, run(cmd)) TH_LOG("creating netns %s with a veth pair failed", self->ns);
}

FIXTURE_TEARDOWN(rxe_netns)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip netns exec %s rdma link delete %s 2>/dev/null; ip netns del %s",
		 self->ns, self->dev, self->ns);
	run(cmd);
}

TEST_F(rxe_netns, create_on_veth)
{
	char cmd[512], path[256];

	snprintf(cmd, sizeof(cmd), "ip netns exec %s rdma link add %s type rxe netdev va",
		 self->ns, self->dev);
	ASSERT_EQ(0, run(cmd)) TH_LOG("'%s' failed", cmd);
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s", self->dev);
	EXPECT_EQ(0, access(path, F_OK)) TH_LOG("%s missing after rdma link add", path);
	snprintf(cmd, sizeof(cmd), "ip netns exec %s rdma link show %s/1 | grep -q 'netdev va'",
		 self->ns, self->dev);
	EXPECT_EQ(0, run(cmd)) TH_LOG("rdma link does not show %s bound to va", self->dev);
}

TEST_HARNESS_MAIN
