// SPDX-License-Identifier: GPL-2.0
/*
 * faa_target: one 64-bit counter on an rxe device that several perftest
 * atomic clients (ib_atomic_lat, urdma-perf atomic_lat) fetch-and-add at
 * the same time, each on its own RC QP.  It speaks the server side of
 * perftest 4.5's TCP exchange (versions, page and cache-line sizes, MTU,
 * 108-byte key messages with the GID), advertises the counter's address as
 * every client's remote buffer, holds the clients at the last set-up
 * handshake until all have connected (so their atomics overlap), waits for
 * each client's closing handshake, then prints the counter.
 *
 *   faa_target -d DEV [-g GID_INDEX] [-p PORT] [-c CLIENTS] [-e EXPECTED]
 *
 * Exit status 0 when the counter equals EXPECTED (or when -e is not given),
 * 1 when it differs, 2 on any other error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEY_MSG 108 /* perftest's KEY_MSG_SIZE_GID */
#define MAX_CLIENTS 8
#define OUT_READS 16 /* responder resources we offer each client */

struct dest {
	unsigned lid, out_reads, qpn, psn, rkey, srqn;
	unsigned long long vaddr;
	union ibv_gid gid;
};

struct client {
	int fd;
	struct ibv_qp *qp;
	struct dest mine, peer;
	int mtu; /* enum ibv_mtu agreed with this client */
};

static int die(const char *what)
{
	fprintf(stderr, "faa_target: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(2);
}

static void read_full(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r == 0)
			errno = 0;
		if (r <= 0)
			die(r == 0 ? "a client closed its connection early" : "read");
		p += r;
		n -= r;
	}
}

static void write_full(int fd, const void *buf, size_t n)
{
	if (write(fd, buf, n) != (ssize_t)n)
		die("write");
}

/* The server reads first, then writes (perftest's ctx_xchg_data). */
static void xchg(int fd, const void *mine, void *theirs, size_t n)
{
	read_full(fd, theirs, n);
	write_full(fd, mine, n);
}

static void format_key(const struct dest *d, char msg[KEY_MSG])
{
	int i, n;

	memset(msg, 0, KEY_MSG);
	n = snprintf(msg, KEY_MSG, "%04x:%04x:%06x:%06x:%08x:%016llx:", d->lid, d->out_reads, d->qpn,
		     d->psn, d->rkey, d->vaddr);
	for (i = 0; i < 16; i++)
		n += snprintf(msg + n, KEY_MSG - n, "%02x:", d->gid.raw[i]);
	snprintf(msg + n, KEY_MSG - n, "%08x:", d->srqn);
}

static void parse_key(const char msg[KEY_MSG], struct dest *d)
{
	char buf[KEY_MSG + 1], *tok, *save = NULL;
	unsigned long long v[23];
	int i = 0;

	memcpy(buf, msg, KEY_MSG);
	buf[KEY_MSG] = 0;
	for (tok = strtok_r(buf, ":", &save); tok && i < 23; tok = strtok_r(NULL, ":", &save))
		v[i++] = strtoull(tok, NULL, 16);
	if (i < 23) {
		errno = 0;
		die("cannot parse a client's key message");
	}
	d->lid = v[0];
	d->out_reads = v[1];
	d->qpn = v[2];
	d->psn = v[3];
	d->rkey = v[4];
	d->vaddr = v[5];
	for (i = 0; i < 16; i++)
		d->gid.raw[i] = v[6 + i];
	d->srqn = v[22];
}

static void handshake(struct client *c)
{
	char mine[KEY_MSG], theirs[KEY_MSG];

	format_key(&c->mine, mine);
	xchg(c->fd, mine, theirs, KEY_MSG);
	parse_key(theirs, &c->peer);
}

static void connect_qp(struct client *c, int gid_idx)
{
	struct ibv_qp_attr a;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify QP to INIT");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = c->mtu;
	a.dest_qp_num = c->peer.qpn;
	a.rq_psn = c->peer.psn;
	a.max_dest_rd_atomic = OUT_READS;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = c->peer.gid;
	a.ah_attr.grh.sgid_index = gid_idx;
	a.ah_attr.grh.hop_limit = 0xff;
	a.ah_attr.port_num = 1;
	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
					     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
	{
		fprintf(stderr, "faa_target: RTR: mtu %d, peer QPN 0x%x PSN 0x%x out_reads %u\n", c->mtu, c->peer.qpn,
			c->peer.psn, c->peer.out_reads);
		die("modify QP to RTR (does the client's address answer ARP?)");
	}
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = c->mine.psn;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					     IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC))
		die("modify QP to RTS");
}

int main(int argc, char **argv)
{
	const char *devname = NULL;
	int gid_idx = 1, port = 18515, nclients = 2, have_expect = 0, opt, i, lfd, one = 1;
	unsigned long long expect = 0, final;
	struct client cl[MAX_CLIENTS];
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_port_attr pattr;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	union ibv_gid gid;
	struct sockaddr_in sa;
	volatile uint64_t *counter;
	void *buf;

	while ((opt = getopt(argc, argv, "d:g:p:c:e:")) != -1) {
		switch (opt) {
		case 'd': devname = optarg; break;
		case 'g': gid_idx = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'c': nclients = atoi(optarg); break;
		case 'e': expect = strtoull(optarg, NULL, 0); have_expect = 1; break;
		default:
			fprintf(stderr, "usage: faa_target -d DEV [-g GID_INDEX] [-p PORT] [-c CLIENTS] [-e EXPECTED]\n");
			return 2;
		}
	}
	if (!devname || nclients < 1 || nclients > MAX_CLIENTS) {
		fprintf(stderr, "faa_target: -d DEV is required; 1 <= -c <= %d\n", MAX_CLIENTS);
		return 2;
	}
	srand48(getpid() ^ time(NULL));
	list = ibv_get_device_list(NULL);
	for (i = 0; list && list[i]; i++)
		if (!strcmp(ibv_get_device_name(list[i]), devname))
			ctx = ibv_open_device(list[i]);
	if (!ctx)
		die("no such RDMA device");
	if (ibv_query_port(ctx, 1, &pattr) || ibv_query_gid(ctx, 1, gid_idx, &gid))
		die("query port/GID");
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	if (posix_memalign(&buf, 4096, 4096))
		die("memalign");
	memset(buf, 0, 4096);
	counter = buf;
	mr = ibv_reg_mr(pd, buf, 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_ATOMIC |
			IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	if (!pd || !cq || !mr)
		die("PD/CQ/MR");

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, MAX_CLIENTS))
		die("listen");
	printf("faa_target: %s, counter at 0x%llx rkey 0x%x, waiting for %d clients on port %d\n", devname,
	       (unsigned long long)(uintptr_t)buf, mr->rkey, nclients, port);
	fflush(stdout);

	for (i = 0; i < nclients; i++) {
		struct client *c = &cl[i];
		char ver[16] = "6.06", rver[16];
		int32_t page = htonl(4096), cache = htonl(64), r32;
		char mtu[2], rmtu[2];
		struct ibv_qp_init_attr qa;

		c->fd = accept(lfd, NULL, NULL);
		if (c->fd < 0)
			die("accept");
		xchg(c->fd, ver, rver, sizeof(ver));
		xchg(c->fd, &page, &r32, 4);
		xchg(c->fd, &cache, &r32, 4);
		snprintf(mtu, sizeof(mtu), "%d", pattr.active_mtu);
		xchg(c->fd, mtu, rmtu, sizeof(mtu));
		c->mtu = (rmtu[0] >= '1' && rmtu[0] - '0' < (int)pattr.active_mtu) ? rmtu[0] - '0'
										     : (int)pattr.active_mtu;

		memset(&qa, 0, sizeof(qa));
		qa.send_cq = cq;
		qa.recv_cq = cq;
		qa.cap.max_send_wr = 1;
		qa.cap.max_recv_wr = 1;
		qa.cap.max_send_sge = 1;
		qa.cap.max_recv_sge = 1;
		qa.qp_type = IBV_QPT_RC;
		c->qp = ibv_create_qp(pd, &qa);
		if (!c->qp)
			die("create QP");
		memset(&c->mine, 0, sizeof(c->mine));
		c->mine.out_reads = OUT_READS;
		c->mine.qpn = c->qp->qp_num;
		c->mine.psn = lrand48() & 0xffffff;
		c->mine.rkey = mr->rkey;
		c->mine.vaddr = (uintptr_t)buf;
		c->mine.gid = gid;

		handshake(c); /* #1 */
		handshake(c); /* #2, the QP's */
		connect_qp(c, gid_idx);
		handshake(c); /* #3, "remote" */
		printf("faa_target: client %d: QPN 0x%x, peer QPN 0x%x, peer GID ::ffff:%d.%d.%d.%d\n", i,
		       c->mine.qpn, c->peer.qpn, c->peer.gid.raw[12], c->peer.gid.raw[13], c->peer.gid.raw[14],
		       c->peer.gid.raw[15]);
		fflush(stdout);
	}
	/* #4 ("after RTR"): every client starts its atomics once it has this */
	for (i = 0; i < nclients; i++) {
		char theirs[KEY_MSG];

		read_full(cl[i].fd, theirs, KEY_MSG);
	}
	for (i = 0; i < nclients; i++) {
		char mine[KEY_MSG];

		format_key(&cl[i].mine, mine);
		write_full(cl[i].fd, mine, KEY_MSG);
	}
	/* each client's closing handshake, after its last atomic completed */
	for (i = 0; i < nclients; i++) {
		handshake(&cl[i]);
		write_full(cl[i].fd, "done", sizeof("done"));
	}
	final = __atomic_load_n(counter, __ATOMIC_SEQ_CST);
	printf("faa_target: counter %llu", final);
	if (have_expect)
		printf(" (expected %llu): %s", expect, final == expect ? "exact" : "WRONG");
	printf("\n");
	for (i = 0; i < nclients; i++) {
		ibv_destroy_qp(cl[i].qp);
		close(cl[i].fd);
	}
	ibv_dereg_mr(mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return have_expect && final != expect ? 1 : 0;
}
