// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to the dmirror commands, each with the errno of the reference
 * (lib/test_hmm.c of 7.3.4): the entry checks (npages 0, addr + size
 * overflow, unaligned addr) of every command, unmapped, non-canonical and
 * kernel addresses, bad 'ptr' buffers (unmapped, read-only), WRITE to
 * read-only mappings, PROT_NONE, wrong ioctl encodings and sizes, a mirror
 * whose mm is gone, a mirror used from another process, and close()
 * racing a long ioctl.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define NPAGES 8

FIXTURE(bad)
{
	int fd;
	unsigned long n;
	char *buf;		/* NPAGES, filled with generation 1 */
	char *out;		/* NPAGES of scratch */
	unsigned char snap[NPAGES];
};

FIXTURE_SETUP(bad)
{
	self->n = NPAGES;
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	self->buf = dm_map(NPAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->buf);
	self->out = dm_map(NPAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->out);
	dm_fill(self->buf, NPAGES, 1);
}

FIXTURE_TEARDOWN(bad)
{
	if (self->fd < 0)
		return;
	close(self->fd);
	munmap(self->buf, NPAGES * DM_PAGE_SIZE);
	munmap(self->out, NPAGES * DM_PAGE_SIZE);
}

/*
 * The entry checks every command shares (also in dmirror_abi.c, here for
 * every command at once): npages 0, addr + size overflowing, an unaligned
 * addr are -EINVAL before anything else, and nothing is written back.
 */
TEST_F(bad, entry_checks_every_command)
{
	static const unsigned long all[] = {
		HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
		HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE,
		HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS,
		HMM_DMIRROR_READ_UNLOCKED,
	};
	const uint64_t top = ~(uint64_t)0 & ~(DM_PAGE_SIZE - 1);
	const struct hmm_dmirror_cmd bad[] = {
		{ .addr = (uintptr_t)self->buf, .ptr = (uintptr_t)self->out, .npages = 0 },
		{ .addr = top, .ptr = (uintptr_t)self->out, .npages = 1 },
		{ .addr = top - DM_PAGE_SIZE, .ptr = (uintptr_t)self->out, .npages = 2 },
		{ .addr = (uintptr_t)self->buf, .ptr = (uintptr_t)self->out,
		  .npages = ~(uint64_t)0 >> 12 },
		{ .addr = (uintptr_t)self->buf + 1, .ptr = (uintptr_t)self->out, .npages = 1 },
		{ .addr = (uintptr_t)self->buf + DM_PAGE_SIZE - 8,
		  .ptr = (uintptr_t)self->out, .npages = 1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(bad); j++) {
			struct hmm_dmirror_cmd cmd = bad[j];

			cmd.cpages = 77;
			cmd.faults = 78;
			EXPECT_EQ(-1, ioctl(self->fd, all[i], &cmd))
				TH_LOG("command %#lx, case %zu", all[i], j);
			EXPECT_EQ(EINVAL, errno) TH_LOG("command %#lx, case %zu", all[i], j);
			EXPECT_EQ(77UL, cmd.cpages);
			EXPECT_EQ(78UL, cmd.faults);
		}
	}
	EXPECT_EQ(-1, dm_check(self->buf, self->n, 1));
}

/* WRITE to a read-only mapping of system pages: -EPERM, nothing written. */
TEST_F(bad, write_readonly_system_pages)
{
	unsigned long n = self->n, i;
	uint64_t cpages;

	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ));
	dm_fill(self->out, n, 2);
	EXPECT_EQ(-EPERM, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	/* Writable first half: the call still fails; the read-only half is intact. */
	ASSERT_EQ(0, mprotect(self->buf, n / 2 * DM_PAGE_SIZE, PROT_READ | PROT_WRITE));
	dm_fill(self->out, n, 2);
	EXPECT_EQ(-EPERM, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, NULL));
	for (i = n / 2; i < n; i++)
		if (!dm_page_is(self->buf + i * DM_PAGE_SIZE, i, 1))
			break;
	EXPECT_EQ(n, i) TH_LOG("read-only page %lu was written", i);
	/* And the writable half alone takes the write. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n / 2, &cpages));
	EXPECT_EQ(n / 2, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n / 2, 2));
}

/*
 * The errno of every command on a range with no VMA at all: the faulting
 * commands say -EFAULT (hmm_range_fault), the migrations -EINVAL (no VMA),
 * SNAPSHOT succeeds with HMM_DMIRROR_PROT_ERROR bytes.
 */
static void no_vma_errnos(struct __test_metadata *_metadata, int fd,
			  const void *addr, char *out, unsigned char *snap)
{
	unsigned long n = 4;
	uint64_t cpages;

	EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_READ, addr, out, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_READ_UNLOCKED, addr, out, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_WRITE, addr, out, n, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, out, n, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, addr, out, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, addr, out, n, NULL));
	EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, addr, out, n, NULL));
	memset(snap, 0x33, n);
	EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, addr, snap, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(n, dm_count(snap, n, HMM_DMIRROR_PROT_ERROR));
}

TEST_F(bad, unmapped_addr)
{
	char *hole = dm_map(4, PROT_READ | PROT_WRITE, 0);

	ASSERT_NE(NULL, hole);
	ASSERT_EQ(0, munmap(hole, 4 * DM_PAGE_SIZE));
	no_vma_errnos(_metadata, self->fd, hole, self->out, self->snap);
}

TEST_F(bad, kernel_addr)
{
	/* The start of the direct map's region, and the kernel text. */
	no_vma_errnos(_metadata, self->fd, (void *)0xffff888000000000UL, self->out, self->snap);
	no_vma_errnos(_metadata, self->fd, (void *)0xffffffff81000000UL, self->out, self->snap);
}

TEST_F(bad, noncanonical_addr)
{
	no_vma_errnos(_metadata, self->fd, (void *)0x0000800000000000UL, self->out, self->snap);
}

/* A range that starts mapped and runs into a hole fails as a whole. */
TEST_F(bad, range_runs_into_hole)
{
	uint64_t cpages;

	ASSERT_EQ(0, munmap(self->buf + 4 * DM_PAGE_SIZE, 4 * DM_PAGE_SIZE));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, 8, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, 8, NULL));
	/* The mapped half moved before the hole was found, and is intact. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, 4, &cpages));
	EXPECT_EQ(4UL, dm_count(self->snap, 4, DM_DEV_RW));
	EXPECT_EQ(-1, dm_check(self->buf, 4, 1));
	ASSERT_EQ(0, mmap(self->buf + 4 * DM_PAGE_SIZE, 4 * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED);
}

/*
 * 'ptr' unmapped, read-only or a kernel address: -EFAULT; the migration
 * itself still happened.
 */
TEST_F(bad, bad_ptr)
{
	unsigned long n = self->n;
	char *ro = dm_map(n, PROT_READ, 0);
	char *gone = dm_map(n, PROT_READ | PROT_WRITE, 0);

	ASSERT_NE(NULL, ro);
	ASSERT_NE(NULL, gone);
	ASSERT_EQ(0, munmap(gone, n * DM_PAGE_SIZE));

	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, gone, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, ro, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ_UNLOCKED, self->buf, ro, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, gone, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, gone, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, ro, n, NULL));
	for (int k = 0; k < 2; k++) {
		void *kp = (void *)(k ? 0xffffffff81000000UL : 0xffff888000100000UL);

		EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, kp, n, NULL));
		EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, kp, n, NULL));
		EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, kp, n, NULL));
	}
	/* A failed WRITE changed nothing. */
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));

	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, ro, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf,
				  (void *)0xffff888000100000UL, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, self->buf, gone, n, NULL));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	munmap(ro, n * DM_PAGE_SIZE);
}

/*
 * WRITE to a read-only mapping of device pages: -EFAULT (measured on the C
 * driver; system pages give -EPERM, see upstream anon_write_prot: here
 * hmm_range_fault() reports the read-only device page of the caller's own
 * device without faulting, and the driver fails the write with -EFAULT).
 * The data is unchanged; it is read back through device 1, which faults it.
 */
TEST_F(bad, write_readonly_device_pages)
{
	unsigned long n = self->n;
	uint64_t cpages;
	int rfd = dm_open(1);

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ));
	dm_fill(self->out, n, 2);
	ASSERT_GE(rfd, 0);
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(rfd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	close(rfd);
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/* PROT_NONE over device pages: no access, and the data is kept. */
TEST_F(bad, prot_none_device_pages)
{
	unsigned long n = self->n;
	uint64_t cpages;

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_NONE));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, NULL));
	memset(self->snap, 0x33, n);
	EXPECT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, &cpages));
	EXPECT_EQ(n, dm_count(self->snap, n, HMM_DMIRROR_PROT_ERROR));
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * The driver dispatches on the whole ioctl number and always copies a full
 * struct hmm_dmirror_cmd (40 bytes) first: a wrong size or direction is an
 * unknown command (-EINVAL, nothing written back), unless the 40 bytes are
 * not readable (-EFAULT).
 */
TEST_F(bad, wrong_ioctl_encodings)
{
	static const unsigned long reqs[] = {
		_IOWR('H', 0, char[8]), _IOWR('H', 0, char[64]),
		_IOR('H', 0, struct hmm_dmirror_cmd), _IOW('H', 0, struct hmm_dmirror_cmd),
		_IO('H', 0), _IOWR('h', 0, struct hmm_dmirror_cmd),
		_IOWR('H', 2, char[39]), _IOWR('H', 3, char[41]),
		_IOWR('H', 10, struct hmm_dmirror_cmd), _IOWR('H', 0x3f, struct hmm_dmirror_cmd),
		_IOWR('H', 0x42, struct hmm_dmirror_cmd), _IOWR('H', 0xff, struct hmm_dmirror_cmd),
	};
	struct hmm_dmirror_cmd cmd, copy;
	char *tail;

	for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = (uintptr_t)self->buf;
		cmd.ptr = (uintptr_t)self->out;
		cmd.npages = 1;
		cmd.cpages = 77;
		copy = cmd;
		EXPECT_EQ(-1, ioctl(self->fd, reqs[i], &cmd)) TH_LOG("request %#lx", reqs[i]);
		EXPECT_EQ(EINVAL, errno) TH_LOG("request %#lx", reqs[i]);
		EXPECT_EQ(0, memcmp(&cmd, &copy, sizeof(cmd)));
	}

	/* 8 valid bytes before an unmapped page. */
	tail = self->out + 7 * DM_PAGE_SIZE;
	ASSERT_EQ(0, munmap(tail, DM_PAGE_SIZE));
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR('H', 0, char[8]), tail - 8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, HMM_DMIRROR_READ, tail - 8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IO('H', 0), NULL));
	EXPECT_EQ(EFAULT, errno);
}

/*
 * The fd of a process that has exited: its mm is gone. The child shares
 * our file table (CLONE_FILES, not CLONE_VM: the guest kernel has no unix
 * sockets to pass an fd), opens the device, leaves pages on it and exits;
 * the fd stays open in the shared table. It reports the fd and the address
 * of its device pages in 'dead' (a shared page). Returns the child's wait
 * status, or -errno.
 */
struct dead_child {
	int fd;
	char *pages;
};

static int exited_child_fd(struct dead_child *dead)
{
	int status;
	pid_t pid;

	dead->fd = -1;
	pid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int dfd = dm_open(0);
		char *p = dm_map(4, PROT_READ | PROT_WRITE, 0);
		char *o = dm_map(4, PROT_READ | PROT_WRITE, 0);
		uint64_t cpages;

		if (dfd < 0 || !p || !o)
			_exit(1);
		dm_fill(p, 4, 1);
		/* Leave pages on the device and entries in the mirror. */
		if (dm_cmd(dfd, HMM_DMIRROR_MIGRATE_TO_DEV, p, o, 4, &cpages) || cpages != 4)
			_exit(2);
		dead->pages = p;
		dead->fd = dfd;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return status;
}

TEST_F(bad, mm_gone)
{
	struct dead_child *dead = mmap(NULL, DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned long n = 4;
	int status, fd;

	ASSERT_NE(MAP_FAILED, dead);
	status = exited_child_fd(dead);
	ASSERT_TRUE(status >= 0 && WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child status / errno %d", status);
	fd = dead->fd;
	ASSERT_GE(fd, 0);
	/*
	 * At the dead process's own device pages (mirrored before it exited:
	 * the mirror must not hand out their old contents) and elsewhere.
	 */
	for (int at = 0; at < 2; at++) {
		char *addr = at ? self->buf : dead->pages;

		EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_READ, addr, self->out, n, NULL));
		EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_READ_UNLOCKED, addr, self->out, n,
					  NULL));
		EXPECT_EQ(-EFAULT, dm_cmd(fd, HMM_DMIRROR_WRITE, addr, self->out, n, NULL));
		EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, self->out, n,
					  NULL));
		EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, addr, NULL, n, NULL));
		EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, addr, self->snap, n, NULL));
		EXPECT_EQ(-EINVAL, dm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, addr, self->out, n, NULL));
		EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, addr, NULL, n, NULL));
	}
	EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_FLAGS, self->buf, NULL, 1, NULL));
	EXPECT_EQ(0, close(fd));
	munmap(dead, DM_PAGE_SIZE);
	/* Our own mirror is unaffected. */
	EXPECT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, self->n, NULL));
	EXPECT_EQ(-1, dm_check(self->out, self->n, 1));
}

/*
 * A mirror is bound to the mm of the process that opened it: a child using
 * the inherited fd reads the parent's pages, not its own copy-on-write ones.
 */
static void child_reads_through_parent_fd(void *arg)
{
	void **a = arg;
	int fd = (int)(uintptr_t)a[0];
	char *buf = a[1], *out = a[2];

	dm_fill(buf, NPAGES, 9);	/* the child's own copy */
	if (dm_cmd(fd, HMM_DMIRROR_READ, buf, out, NPAGES, NULL))
		_exit(10);
	if (dm_check(out, NPAGES, 1) != -1)
		_exit(11);		/* not the parent's data */
	if (dm_check(buf, NPAGES, 9) != -1)
		_exit(12);
	_exit(0);
}

TEST_F(bad, inherited_fd_mirrors_opener_mm)
{
	void *arg[3] = { (void *)(uintptr_t)self->fd, self->buf, self->out };
	int status = dm_in_child(child_reads_through_parent_fd, arg);

	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(-1, dm_check(self->buf, self->n, 1));
}

/* close() from another thread while a long ioctl runs on the fd. */
struct closer {
	int fd;
	unsigned int delay_us;
};

static void *close_later(void *arg)
{
	struct closer *c = arg;

	usleep(c->delay_us);
	close(c->fd);
	return NULL;
}

#define BIG_PAGES 4096

TEST_F_TIMEOUT(bad, close_during_ioctl, 120)
{
	char *big = dm_map(BIG_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	char *out = malloc(BIG_PAGES * DM_PAGE_SIZE);
	static const unsigned long reqs[] = {
		HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ, HMM_DMIRROR_MIGRATE_TO_DEV,
		HMM_DMIRROR_WRITE,
	};
	static const unsigned int delays[] = { 0, 2000, 20000, 100000 };
	int ok = 0;

	ASSERT_NE(NULL, big);
	ASSERT_NE(NULL, out);
	dm_fill(big, BIG_PAGES, 1);
	for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(delays); j++) {
			struct closer c = { .fd = dm_open(0), .delay_us = delays[j] };
			pthread_t t;
			int ret;

			ASSERT_GE(c.fd, 0);
			if (reqs[i] == HMM_DMIRROR_WRITE)
				dm_fill(out, BIG_PAGES, 1);
			ASSERT_EQ(0, pthread_create(&t, NULL, close_later, &c));
			ret = dm_cmd(c.fd, reqs[i], big, out, BIG_PAGES, NULL);
			pthread_join(t, NULL);
			EXPECT_TRUE(ret == 0 || ret == -EBADF)
				TH_LOG("request %#lx delay %u: %d", reqs[i], delays[j], ret);
			ok += ret == 0;
			/* The fd is gone, the data is not. */
			EXPECT_EQ(-EBADF, dm_cmd(c.fd, HMM_DMIRROR_READ, big, out, 1, NULL));
			EXPECT_EQ(-1, dm_check(big, BIG_PAGES, 1));
		}
	}
	/* At least the calls with a 100 ms delay ran to their end. */
	EXPECT_GE(ok, 1);
	munmap(big, BIG_PAGES * DM_PAGE_SIZE);
	free(out);
}

TEST_HARNESS_MAIN
