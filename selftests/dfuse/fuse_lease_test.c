// SPDX-License-Identifier: GPL-2.0
/*
 * FUSE lease mode, tested against the kernel alone: each test mounts a FUSE
 * file system served by a tiny daemon written here on the raw protocol (no
 * libfuse), so that the requests the kernel sends can be counted and the
 * replies and notifications shaped at will. The file system has one regular
 * file, "f" (node ID 2), whose contents live in memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../kselftest_harness.h"

#define FILE_NODE 2
#define DATA_MAX (1 << 20)
#define MAX_WRITE (128 * 1024)
#define NTHREADS 2
#define REQ_MAX (MAX_WRITE + 64 * 1024)	/* one request read from /dev/fuse */

struct srv {
	int fd;
	char mnt[64];
	dev_t dev;		/* the mount's device: names its connection */
	bool accept_leases;
	bool offered;		/* FUSE_LEASES was in the INIT request */
	bool initialized;	/* INIT answered */
	pthread_t thr[NTHREADS];
	struct serve_arg {
		struct srv *s;
		int i;
	} arg[NTHREADS];
	unsigned char *req[NTHREADS];	/* request buffer of each thread */
	unsigned char *out[NTHREADS];	/* READ reply buffer of each thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *data;
	uint64_t size;
	uint32_t mode;
	uint64_t gen;		/* last generation granted */
	int n_lease, n_lease_write, n_read, n_write, n_setattr;
	int lease_delay_ms;	/* before answering FUSE_LEASE */
	bool lease_hold;	/* never answer FUSE_LEASE */
	int lease_error;	/* answer FUSE_LEASE with this error */
	bool revoke_first;	/* revoke the grant before sending it */
	int revoke_first_ret;
	/*
	 * Before granting, revoke the lease held and let the file become
	 * this text: another node's write between this node's request and
	 * its grant.
	 */
	const char *revoke_held_then;
};

static int reply(struct srv *s, uint64_t unique, int error, const void *p,
		 size_t len)
{
	struct fuse_out_header oh = {
		.len = sizeof(oh) + (error ? 0 : len),
		.error = error,
		.unique = unique,
	};
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)p, len } };

	return writev(s->fd, iov, error || !len ? 1 : 2) < 0 ? -errno : 0;
}

static int notify_revoke(struct srv *s, uint64_t nodeid, uint32_t mode,
			 uint64_t gen)
{
	struct fuse_notify_lease_revoke_out out = {
		.nodeid = nodeid, .generation = gen, .mode = mode,
	};
	struct fuse_out_header oh = {
		.len = sizeof(oh) + sizeof(out),
		.error = FUSE_NOTIFY_LEASE_REVOKE,
	};
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { &out, sizeof(out) } };

	return writev(s->fd, iov, 2) < 0 ? -errno : 0;
}

static void fill_attr(struct srv *s, uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	a->nlink = 1;
	a->blksize = 4096;
	if (node == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
		return;
	}
	a->mode = S_IFREG | s->mode;
	a->size = s->size;
	a->blocks = (s->size + 511) / 512;
}

static void handle(struct srv *s, struct fuse_in_header *in, void *arg,
		   unsigned char *out)
{
	union {
		struct fuse_init_out init;
		struct fuse_entry_out entry;
		struct fuse_attr_out attr;
		struct fuse_open_out open;
		struct fuse_write_out write;
		struct fuse_lease_out lease;
	} o;
	uint64_t u = in->unique;

	memset(&o, 0, sizeof(o));
	switch (in->opcode) {
	case FUSE_INIT: {
		struct fuse_init_in *ii = arg;
		uint64_t flags = ii->flags | ((uint64_t)ii->flags2 << 32);

		s->offered = flags & FUSE_LEASES;
		o.init.major = FUSE_KERNEL_VERSION;
		o.init.minor = FUSE_KERNEL_MINOR_VERSION;
		o.init.max_readahead = ii->max_readahead;
		flags = FUSE_WRITEBACK_CACHE | FUSE_BIG_WRITES | FUSE_INIT_EXT |
			FUSE_MAX_PAGES | FUSE_ASYNC_READ;
		if (s->accept_leases)
			flags |= FUSE_LEASES;
		o.init.flags = flags;
		o.init.flags2 = flags >> 32;
		o.init.max_background = 16;
		o.init.congestion_threshold = 12;
		o.init.max_write = MAX_WRITE;
		o.init.time_gran = 1;
		o.init.max_pages = MAX_WRITE / 4096;
		reply(s, u, 0, &o.init, sizeof(o.init));
		pthread_mutex_lock(&s->lock);
		s->initialized = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	case FUSE_LOOKUP:
		if (in->nodeid != FUSE_ROOT_ID || strcmp(arg, "f")) {
			reply(s, u, -ENOENT, NULL, 0);
			return;
		}
		o.entry.nodeid = FILE_NODE;
		o.entry.generation = 1;
		o.entry.entry_valid = 3600;
		o.entry.attr_valid = 1;
		pthread_mutex_lock(&s->lock);
		fill_attr(s, FILE_NODE, &o.entry.attr);
		pthread_mutex_unlock(&s->lock);
		reply(s, u, 0, &o.entry, sizeof(o.entry));
		return;
	case FUSE_GETATTR:
		o.attr.attr_valid = 1;
		pthread_mutex_lock(&s->lock);
		fill_attr(s, in->nodeid, &o.attr.attr);
		pthread_mutex_unlock(&s->lock);
		reply(s, u, 0, &o.attr, sizeof(o.attr));
		return;
	case FUSE_SETATTR: {
		struct fuse_setattr_in *si = arg;

		pthread_mutex_lock(&s->lock);
		s->n_setattr++;
		if (si->valid & FATTR_SIZE) {
			if (si->size > DATA_MAX) {
				pthread_mutex_unlock(&s->lock);
				reply(s, u, -EFBIG, NULL, 0);
				return;
			}
			if (si->size > s->size)
				memset(s->data + s->size, 0, si->size - s->size);
			s->size = si->size;
		}
		if (si->valid & FATTR_MODE)
			s->mode = si->mode & 07777;
		o.attr.attr_valid = 1;
		fill_attr(s, in->nodeid, &o.attr.attr);
		pthread_mutex_unlock(&s->lock);
		reply(s, u, 0, &o.attr, sizeof(o.attr));
		return;
	}
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		o.open.fh = 1;
		o.open.open_flags = FOPEN_KEEP_CACHE;
		reply(s, u, 0, &o.open, sizeof(o.open));
		return;
	case FUSE_READ: {
		struct fuse_read_in *ri = arg;
		uint64_t n = 0;

		pthread_mutex_lock(&s->lock);
		s->n_read++;
		if (ri->offset < s->size)
			n = s->size - ri->offset;
		if (n > ri->size)
			n = ri->size;
		if (n > MAX_WRITE)
			n = MAX_WRITE;	/* a short read */
		memcpy(out, s->data + ri->offset, n);
		pthread_mutex_unlock(&s->lock);
		reply(s, u, 0, out, n);
		return;
	}
	case FUSE_WRITE: {
		struct fuse_write_in *wi = arg;

		pthread_mutex_lock(&s->lock);
		s->n_write++;
		if (wi->offset + wi->size > DATA_MAX) {
			pthread_mutex_unlock(&s->lock);
			reply(s, u, -EFBIG, NULL, 0);
			return;
		}
		memcpy(s->data + wi->offset, wi + 1, wi->size);
		if (wi->offset + wi->size > s->size)
			s->size = wi->offset + wi->size;
		pthread_mutex_unlock(&s->lock);
		o.write.size = wi->size;
		reply(s, u, 0, &o.write, sizeof(o.write));
		return;
	}
	case FUSE_LEASE: {
		struct fuse_lease_in *li = arg;

		pthread_mutex_lock(&s->lock);
		s->n_lease++;
		if (li->mode == FUSE_LEASE_WRITE)
			s->n_lease_write++;
		pthread_cond_broadcast(&s->cond);
		while (s->lease_hold)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->lease_error) {
			pthread_mutex_unlock(&s->lock);
			reply(s, u, s->lease_error, NULL, 0);
			return;
		}
		if (s->revoke_held_then) {
			s->revoke_first_ret = notify_revoke(s, in->nodeid,
					FUSE_LEASE_NONE, s->gen);
			s->size = strlen(s->revoke_held_then);
			memcpy(s->data, s->revoke_held_then, s->size);
			s->revoke_held_then = NULL;
		}
		o.lease.generation = ++s->gen;
		o.lease.mode = li->mode;
		o.lease.attr_valid = 1;
		fill_attr(s, in->nodeid, &o.lease.attr);
		if (s->revoke_first) {
			s->revoke_first = false;
			s->revoke_first_ret = notify_revoke(s, in->nodeid,
					FUSE_LEASE_NONE, o.lease.generation);
		}
		pthread_mutex_unlock(&s->lock);
		if (s->lease_delay_ms)
			usleep(s->lease_delay_ms * 1000);
		reply(s, u, 0, &o.lease, sizeof(o.lease));
		return;
	}
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		return;
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FSYNC:
	case FUSE_DESTROY:
		reply(s, u, 0, NULL, 0);
		return;
	default:
		reply(s, u, -ENOSYS, NULL, 0);
	}
}

static void *serve(void *p)
{
	struct serve_arg *a = p;
	struct srv *s = a->s;
	unsigned char *req = s->req[a->i], *out = s->out[a->i];

	for (;;) {
		ssize_t n = read(s->fd, req, REQ_MAX);

		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;	/* interrupted, or request aborted */
		if (n < (ssize_t)sizeof(struct fuse_in_header))
			break;		/* ENODEV: unmounted or aborted */
		handle(s, (struct fuse_in_header *)req,
		       req + sizeof(struct fuse_in_header), out);
	}
	return NULL;
}

/*
 * The daemon's threads share the test's address space, and a test thread
 * can wait for them inside a page fault with mmap_lock held for read (a
 * readahead or a write-back they must answer). If a daemon thread then
 * asked for mmap_lock for write (malloc's mmap/munmap) or faulted behind
 * such a request, nobody would get on. So the daemon uses only memory
 * that is mapped, populated and locked before the file system is mounted.
 */
static void *pinned(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static struct srv *srv_start(bool accept_leases)
{
	struct srv *s = calloc(1, sizeof(*s));
	char opts[128];

	s->accept_leases = accept_leases;
	s->data = pinned(DATA_MAX);
	if (!s->data)
		return NULL;
	for (int i = 0; i < NTHREADS; i++) {
		s->req[i] = pinned(REQ_MAX);
		s->out[i] = pinned(MAX_WRITE);
		if (!s->req[i] || !s->out[i])
			return NULL;
	}
	s->mode = 0644;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	strcpy(s->mnt, "/tmp/fuse-lease-XXXXXX");
	if (!mkdtemp(s->mnt))
		return NULL;
	s->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (s->fd < 0)
		return NULL;
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other",
		 s->fd);
	if (mount("leasetest", s->mnt, "fuse.leasetest", 0, opts))
		return NULL;
	for (int i = 0; i < NTHREADS; i++) {
		s->arg[i].s = s;
		s->arg[i].i = i;
		pthread_create(&s->thr[i], NULL, serve, &s->arg[i]);
	}
	/* mount() returns before the daemon has answered INIT */
	pthread_mutex_lock(&s->lock);
	while (!s->initialized)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	{
		struct stat st;

		char path[96];
		FILE *f;

		if (stat(s->mnt, &st))
			return NULL;
		s->dev = st.st_dev;
		/*
		 * A new FUSE bdi has no write-out history, so its share of the
		 * background threshold is 0 and the flusher may write a single
		 * dirty page back at any time. Give it a share: dirty pages
		 * then stay until a revoke, fsync or unmount, as tests expect.
		 */
		snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/min_ratio",
			 major(st.st_dev), minor(st.st_dev));
		f = fopen(path, "w");
		if (!f)
			return NULL;
		fputs("1", f);
		if (fclose(f))
			return NULL;
	}
	return s;
}

/*
 * Abort the connection through fusectl, as the death of the daemon would.
 * Returns 0, or -errno (-ENOENT: the connection is already gone).
 */
static int srv_abort(struct srv *s)
{
	char path[128];
	int fd, ret = 0;

	mkdir("/sys/fs/fuse/connections", 0755);
	mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort",
		 (unsigned int)s->dev);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, "1", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

static void srv_stop(struct srv *s)
{
	pthread_mutex_lock(&s->lock);
	s->lease_hold = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	umount2(s->mnt, MNT_DETACH);
	/*
	 * Normally the unmount ended the connection. A test that failed with
	 * the file still open or mapped keeps it alive: abort it, so that the
	 * failure is reported instead of the serving threads waiting forever.
	 */
	srv_abort(s);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(s->thr[i], NULL);
	close(s->fd);
	rmdir(s->mnt);
	for (int i = 0; i < NTHREADS; i++) {
		munmap(s->req[i], REQ_MAX);
		munmap(s->out[i], MAX_WRITE);
	}
	munmap(s->data, DATA_MAX);
	free(s);
}

static void srv_set(struct srv *s, const char *text)
{
	pthread_mutex_lock(&s->lock);
	s->size = strlen(text);
	memcpy(s->data, text, s->size);
	pthread_mutex_unlock(&s->lock);
}

static int counter(struct srv *s, int *c)
{
	int v;

	pthread_mutex_lock(&s->lock);
	v = *c;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* Does the daemon's copy of the file start with @text? */
static bool data_is(struct srv *s, const char *text)
{
	bool same;

	pthread_mutex_lock(&s->lock);
	same = !memcmp(s->data, text, strlen(text));
	pthread_mutex_unlock(&s->lock);
	return same;
}

static char *path_of(struct srv *s)
{
	static __thread char p[96];

	snprintf(p, sizeof(p), "%s/f", s->mnt);
	return p;
}

static ssize_t read_all(struct srv *s, char *buf, size_t len, int flags)
{
	int fd = open(path_of(s), O_RDONLY | flags);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, 0);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

FIXTURE(lease) {
	struct srv *s;
};

FIXTURE_SETUP(lease)
{
	self->s = srv_start(true);
	ASSERT_NE(NULL, self->s) TH_LOG("mount: %s", strerror(errno));
	srv_set(self->s, "version one");
}

FIXTURE_TEARDOWN(lease)
{
	srv_stop(self->s);
}

/* The kernel offers FUSE_LEASES and a read takes one read lease, once. */
TEST_F(lease, read_takes_one_read_lease)
{
	char buf[64] = {};

	ASSERT_TRUE(self->s->offered);
	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_STREQ("version one", buf);
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
	ASSERT_EQ(0, counter(self->s, &self->s->n_lease_write));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
}

static void *reader(void *p)
{
	char buf[64];

	return (void *)(long)read_all(p, buf, sizeof(buf), 0);
}

/* Tasks that need the same lease at once share one request. */
TEST_F(lease, concurrent_tasks_send_one_request)
{
	pthread_t t[8];
	int fd;

	/* open first so that only the reads race for the lease */
	fd = open(path_of(self->s), O_RDONLY);
	ASSERT_LE(0, fd);
	self->s->lease_delay_ms = 300;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, reader, self->s);
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(t[i], &r);
		ASSERT_EQ(11, (long)r);
	}
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
	close(fd);
}

/*
 * A buffered write stays in the page cache under the write lease; the
 * revoke writes it back before the notification returns, and drops the
 * cache: a read after the daemon's copy changed sees the new contents.
 */
TEST_F(lease, revoke_flushes_then_invalidates)
{
	char buf[64] = {};
	int fd = open(path_of(self->s), O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(7, pwrite(fd, "VERSION", 7, 0));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(0, counter(self->s, &self->s->n_write));
	ASSERT_EQ(0, memcmp(self->s->data, "version", 7));

	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	/* written back before the notification returned */
	ASSERT_LT(0, counter(self->s, &self->s->n_write));
	ASSERT_TRUE(data_is(self->s, "VERSION one"));

	/* another node writes; this one must not serve its old pages */
	srv_set(self->s, "version two, longer");
	ASSERT_EQ(19, pread(fd, buf, sizeof(buf), 0));
	ASSERT_STREQ("version two, longer", buf);
	ASSERT_EQ(2, counter(self->s, &self->s->n_lease));
	close(fd);
}

/* A downgrade to read writes back but keeps the clean pages. */
TEST_F(lease, downgrade_keeps_cache)
{
	char buf[64] = {};
	int fd = open(path_of(self->s), O_RDWR);
	int reads;

	ASSERT_LE(0, fd);
	ASSERT_EQ(11, pread(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(7, pwrite(fd, "VERSION", 7, 0));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_READ,
				   self->s->gen));
	ASSERT_LT(0, counter(self->s, &self->s->n_write));
	reads = counter(self->s, &self->s->n_read);
	ASSERT_EQ(11, pread(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, memcmp(buf, "VERSION one", 11));
	ASSERT_EQ(reads, counter(self->s, &self->s->n_read));
	ASSERT_EQ(2, counter(self->s, &self->s->n_lease));	/* read, write */
	/* writing again needs the write lease back */
	ASSERT_EQ(1, pwrite(fd, "v", 1, 0));
	ASSERT_EQ(3, counter(self->s, &self->s->n_lease));
	close(fd);
}

/* A revoke naming an older grant than the one held is ignored. */
TEST_F(lease, stale_generation_ignored)
{
	char buf[64] = {};
	int reads;

	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen - 1));
	reads = counter(self->s, &self->s->n_read);
	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
	ASSERT_EQ(reads, counter(self->s, &self->s->n_read));
}

/* A revoke that overtakes its own grant: the grant is not installed. */
TEST_F(lease, grant_overtaken_by_revoke_is_dropped)
{
	char buf[64] = {};
	int fd = open(path_of(self->s), O_RDONLY);

	ASSERT_LE(0, fd);
	self->s->revoke_first = true;
	ASSERT_EQ(11, pread(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, self->s->revoke_first_ret);
	ASSERT_EQ(2, counter(self->s, &self->s->n_lease));
	close(fd);
}

TEST_F(lease, bad_revokes)
{
	char buf[64];

	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(-ENOENT, notify_revoke(self->s, 99, FUSE_LEASE_NONE, 1));
	ASSERT_EQ(-EINVAL, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_WRITE,
					 self->s->gen));
	ASSERT_EQ(-EINVAL, notify_revoke(self->s, FUSE_ROOT_ID,
					 FUSE_LEASE_NONE, 1));
}

/* The size other nodes left comes with the grant. */
TEST_F(lease, size_comes_with_grant)
{
	struct stat st;
	char buf[64];

	ASSERT_EQ(0, stat(path_of(self->s), &st));
	ASSERT_EQ(11, st.st_size);
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	srv_set(self->s, "a much longer version three");
	ASSERT_EQ(0, stat(path_of(self->s), &st));
	ASSERT_EQ(27, st.st_size);
	ASSERT_EQ(27, read_all(self->s, buf, sizeof(buf), 0));
}

/*
 * A revoke of the lease held can come while this node asks for a stronger
 * one; the grant that follows is newer than the revoke and its size is the
 * file's: an append after it lands at the end another node left, not at
 * the end this node knew before.
 */
TEST_F(lease, grant_after_revoke_of_held_lease_brings_size)
{
	char buf[64] = {};
	int fd;

	ASSERT_EQ(11, read_all(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
	fd = open(path_of(self->s), O_WRONLY | O_APPEND);
	ASSERT_LE(0, fd);
	self->s->revoke_held_then = "version one, and more";
	ASSERT_EQ(1, write(fd, "X", 1));
	ASSERT_EQ(0, self->s->revoke_first_ret);
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	ASSERT_TRUE(data_is(self->s, "version one, and moreX"))
		TH_LOG("the append landed at the size known before the grant");
	close(fd);
}

/* Stores through a shared mapping are written back by the revoke. */
TEST_F(lease, mmap_write_flushed_by_revoke)
{
	int fd = open(path_of(self->s), O_RDWR);
	char *m;

	ASSERT_LE(0, fd);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ('v', m[0]);
	memcpy(m, "MMAPPED", 7);
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	ASSERT_TRUE(data_is(self->s, "MMAPPED one"));
	/* the mapping was dropped: the next access faults the new data in */
	srv_set(self->s, "fresh data!");
	ASSERT_EQ('f', m[0]);
	munmap(m, 4096);
	close(fd);
}

/*
 * A store to a page mapped under a read lease asks for the write lease
 * (page_mkwrite cannot wait for it: the page is unmapped and the store
 * faults again); a downgrade write-protects the page, so the next store
 * asks again.
 */
TEST_F(lease, mmap_store_upgrades_read_lease)
{
	int fd = open(path_of(self->s), O_RDWR);
	char *m;

	ASSERT_LE(0, fd);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ('v', m[0]);
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
	ASSERT_EQ(0, counter(self->s, &self->s->n_lease_write));
	m[0] = 'V';
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_READ,
				   self->s->gen));
	ASSERT_TRUE(data_is(self->s, "Version one"));
	/* the downgrade kept the page: reading needs no new lease */
	ASSERT_EQ('V', m[0]);
	ASSERT_EQ(2, counter(self->s, &self->s->n_lease));
	m[1] = 'E';
	ASSERT_EQ(2, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	ASSERT_TRUE(data_is(self->s, "VErsion one"));
	munmap(m, 4096);
	close(fd);
}

/* A fault whose lease request fails gets SIGBUS instead of looping. */
TEST_F(lease, refused_lease_fault_is_sigbus)
{
	int fd = open(path_of(self->s), O_RDONLY);
	int status;
	char *m;
	pid_t pid;

	ASSERT_LE(0, fd);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	self->s->lease_error = -EIO;
	pid = fork();
	if (!pid) {
		alarm(20);
		_exit(m[0] == 'v' ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(SIGBUS, WTERMSIG(status));
	/* the daemon recovers: the same mapping works again */
	self->s->lease_error = 0;
	ASSERT_EQ('v', m[0]);
	munmap(m, 4096);
	close(fd);
}

/* Truncate needs the write lease; O_DIRECT needs no lease at all. */
TEST_F(lease, truncate_and_direct_io)
{
	char buf[4096] __attribute__((aligned(4096)));
	int fd = open(path_of(self->s), O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 3));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease_write));
	ASSERT_EQ(3, self->s->size);
	close(fd);
	ASSERT_EQ(0, notify_revoke(self->s, FILE_NODE, FUSE_LEASE_NONE,
				   self->s->gen));
	ASSERT_EQ(3, read_all(self->s, buf, sizeof(buf), O_DIRECT));
	ASSERT_EQ(1, counter(self->s, &self->s->n_lease));
}

/* A task waiting for a grant that never comes can be killed. */
TEST_F(lease, waiter_is_killable)
{
	struct timespec t0, t1;
	int status;
	pid_t pid;

	self->s->lease_hold = true;
	pid = fork();
	if (!pid) {
		char buf[64];

		_exit(read_all(self->s, buf, sizeof(buf), 0) == 11 ? 0 : 1);
	}
	pthread_mutex_lock(&self->s->lock);
	while (!self->s->n_lease)
		pthread_cond_wait(&self->s->cond, &self->s->lock);
	pthread_mutex_unlock(&self->s->lock);
	usleep(100 * 1000);
	ASSERT_EQ(0, waitpid(pid, &status, WNOHANG));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_GT(2, t1.tv_sec - t0.tv_sec);
}

/* A daemon that dies leaves no task stuck, and unmount works. */
TEST(daemon_death_fails_waiters)
{
	struct srv *s = srv_start(true);
	int status, ret;
	pid_t pid;

	ASSERT_NE(NULL, s);
	srv_set(s, "data");
	s->lease_hold = true;
	pid = fork();
	if (!pid) {
		char buf[64];

		_exit(read_all(s, buf, sizeof(buf), 0) < 0 ? 0 : 1);
	}
	pthread_mutex_lock(&s->lock);
	while (!s->n_lease)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	/* abort the connection as the death of the daemon would */
	ret = srv_abort(s);
	ASSERT_EQ(0, ret) TH_LOG("fusectl abort: %s", strerror(-ret));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	srv_stop(s);
}

/* Unmounting with leases held writes dirty pages back first. */
TEST(unmount_with_leases_held)
{
	struct srv *s = srv_start(true);
	char buf[64];
	int fd;

	ASSERT_NE(NULL, s);
	srv_set(s, "0123456789");
	ASSERT_EQ(10, read_all(s, buf, sizeof(buf), 0));
	fd = open(path_of(s), O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(3, pwrite(fd, "abc", 3, 10));
	close(fd);
	ASSERT_EQ(0, umount(s->mnt));
	ASSERT_EQ(13, s->size);
	ASSERT_EQ(0, memcmp(s->data, "0123456789abc", 13));
	srv_stop(s);
}

/* A daemon that does not accept FUSE_LEASES sees no lease traffic. */
TEST(old_daemon_keeps_working)
{
	struct srv *s = srv_start(false);
	char buf[64] = {};
	int fd;

	ASSERT_NE(NULL, s);
	ASSERT_TRUE(s->offered);
	srv_set(s, "plain");
	fd = open(path_of(s), O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(5, pread(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(1, pwrite(fd, "P", 1, 0));
	ASSERT_EQ(0, fsync(fd));
	ASSERT_EQ('P', s->data[0]);
	ASSERT_EQ(0, counter(s, &s->n_lease));
	ASSERT_EQ(-EINVAL, notify_revoke(s, FILE_NODE, FUSE_LEASE_NONE, 1));
	close(fd);
	srv_stop(s);
}

TEST_HARNESS_MAIN
