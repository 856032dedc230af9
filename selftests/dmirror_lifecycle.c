// SPDX-License-Identifier: GPL-2.0
/*
 * Life cycle of device pages: fork (copy-on-write of device-private pages),
 * exit and close with pages on the device, munmap/mremap/madvise of device
 * pages, mlock, file-backed (memfd) ranges, hugetlb and THP ranges.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define NPAGES 32

FIXTURE(life)
{
	int fd;
	int rfd;	/* device 1: reads device-0 pages through a fault */
	unsigned long n;
	char *buf;
	char *out;
	unsigned char *snap;
};

FIXTURE_SETUP(life)
{
	self->n = NPAGES;
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	self->rfd = dm_open(1);
	ASSERT_GE(self->rfd, 0);
	self->buf = dm_map(NPAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->buf);
	self->out = malloc(512 * DM_PAGE_SIZE);
	ASSERT_NE(NULL, self->out);
	self->snap = malloc(512);
	ASSERT_NE(NULL, self->snap);
	dm_fill(self->buf, NPAGES, 1);
}

FIXTURE_TEARDOWN(life)
{
	if (self->fd < 0)
		return;
	if (self->fd > 0)
		close(self->fd);
	close(self->rfd);
	munmap(self->buf, NPAGES * DM_PAGE_SIZE);
	free(self->out);
	free(self->snap);
}

static void to_device(struct __test_metadata *_metadata, int fd, void *addr,
		      unsigned long n, void *out, unsigned char *snap)
{
	uint64_t cpages;

	ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, out, n, &cpages));
	ASSERT_EQ(n, cpages);
	ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, addr, snap, n, NULL));
	ASSERT_EQ(n, dm_count_any_size(snap, n, DM_DEV_RW))
		TH_LOG("SNAPSHOT bytes: first %#x last %#x", snap[0], snap[n - 1]);
}

struct cow_arg {
	char *buf;
	unsigned long n;
};

/* The child sees the data of the fork, then writes the even pages. */
static void cow_child(void *p)
{
	struct cow_arg *a = p;

	if (dm_check(a->buf, a->n, 1) != -1)
		_exit(10);
	for (unsigned long i = 0; i < a->n; i += 2)
		dm_fill_page(a->buf + i * DM_PAGE_SIZE, i, 5);
	for (unsigned long i = 0; i < a->n; i++)
		if (!dm_page_is(a->buf + i * DM_PAGE_SIZE, i, (i & 1) ? 1 : 5))
			_exit(11);
	_exit(0);
}

/*
 * fork() with every page on the device: the parent writes the odd pages
 * while the child exists, the child the even pages; each side sees its own
 * writes only, through the CPU and (parent) through a mirror.
 *
 * Mirror reads that follow an invalidation of device-0 pages go through
 * device 1 (rfd), which faults them back: lib/test_hmm.c stores the device
 * page itself when hmm_range_fault() reports a page of its own device and
 * then copies from it, an Oops (see selftests/expectations.txt).
 */
TEST_F(life, fork_cow_device_pages)
{
	struct cow_arg a = { self->buf, self->n };
	unsigned long i;
	int status;
	pid_t pid;

	to_device(_metadata, self->fd, self->buf, self->n, self->out, self->snap);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		cow_child(&a);
	for (i = 1; i < self->n; i += 2)
		dm_fill_page(self->buf + i * DM_PAGE_SIZE, i, 6);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(-1, dm_check_alt(self->buf, self->n, 1, 6)) TH_LOG("parent, CPU");
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, self->buf, self->out, self->n, NULL));
	EXPECT_EQ(-1, dm_check_alt(self->out, self->n, 1, 6)) TH_LOG("parent, mirror");
}

/* The child moves its own pages to the device and exits without cleanup. */
static void child_leaves_pages(void *p)
{
	int fd = dm_open(0);
	char *buf = dm_map(64, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	char *out = malloc(64 * DM_PAGE_SIZE);
	unsigned char snap[64];

	if (fd < 0 || !buf || !out)
		_exit(20);
	dm_fill(buf, 64, 4);
	if (dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, 64, NULL))
		_exit(21);
	if (dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, buf, snap, 64, NULL) ||
	    dm_count(snap, 64, DM_DEV_RW) != 64)
		_exit(22);
	_exit(0);
}

/*
 * A child exits with its pages on the device (its fd closed by exit). The
 * release of any mirror of a device evicts every page of that device back
 * to RAM (lib/test_hmm.c, the CVE-2026-46280 fix), so the parent's pages on
 * the same device come back too, intact for CPU and mirror. The fork made
 * them copy-on-write (read-only device entries), so they come back
 * read-only in the writable VMA; a CPU write makes them writable, and the
 * device takes them again.
 */
TEST_F(life, child_exit_with_device_pages)
{
	unsigned long n = self->n, sys = 0, i;
	int status;

	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	status = dm_in_child(child_leaves_pages, NULL);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	for (i = 0; i < n; i++)
		sys += self->snap[i] == DM_SYS_RO || self->snap[i] == DM_SYS_RW;
	EXPECT_EQ(n, sys) TH_LOG("SNAPSHOT byte 0 after the child's exit: %#x", self->snap[0]);
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	dm_fill(self->buf, n, 2);
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	EXPECT_EQ(-1, dm_check(self->out, n, 2));
	EXPECT_EQ(-1, dm_check(self->buf, n, 2));
}

/* close() with pages on the device: the CPU still reads them intact. */
TEST_F(life, close_with_device_pages)
{
	int fd1 = dm_open(1);

	ASSERT_GE(fd1, 0);
	/* Half on device 0, half on device 1. */
	to_device(_metadata, self->fd, self->buf, self->n / 2, self->out, self->snap);
	to_device(_metadata, fd1, self->buf + self->n / 2 * DM_PAGE_SIZE, self->n / 2,
		  self->out, self->snap);
	ASSERT_EQ(0, close(self->fd));
	self->fd = dm_open(0);
	ASSERT_GE(self->fd, 0);
	/* A new mirror of device 0 sees the data wherever it is now. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, self->n, NULL));
	EXPECT_EQ(-1, dm_check(self->out, self->n, 1));
	ASSERT_EQ(0, close(fd1));
	EXPECT_EQ(-1, dm_check(self->buf, self->n, 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, self->n, NULL));
	EXPECT_EQ(self->n, dm_count(self->snap, self->n, DM_SYS_RW));
}

/* munmap of device pages: gone for the mirror; a new mapping is zero. */
TEST_F(life, munmap_device_pages)
{
	unsigned long n = self->n, h = n / 2;
	char *second = self->buf + h * DM_PAGE_SIZE;

	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	ASSERT_EQ(0, munmap(second, h * DM_PAGE_SIZE));
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, second, self->out, h, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, h, NULL));
	EXPECT_EQ(-1, dm_check(self->out, h, 1));
	ASSERT_EQ(second, mmap(second, h * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, second, self->out, h, NULL));
	for (unsigned long i = 0; i < h; i++)
		EXPECT_TRUE(dm_page_is_zero(self->out + i * DM_PAGE_SIZE));
	EXPECT_EQ(-1, dm_check(self->buf, h, 1));
}

/* mremap moves device pages with their data; the old range is gone. */
TEST_F(life, mremap_device_pages)
{
	unsigned long n = self->n;
	char *dst = dm_map(2 * n, PROT_NONE, 0);
	char *moved;

	ASSERT_NE(NULL, dst);
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	moved = mremap(self->buf, n * DM_PAGE_SIZE, 2 * n * DM_PAGE_SIZE,
		       MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);
	EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, moved, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, moved, self->out, 2 * n, NULL));
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	for (unsigned long i = n; i < 2 * n; i++)
		EXPECT_TRUE(dm_page_is_zero(self->out + i * DM_PAGE_SIZE));
	EXPECT_EQ(-1, dm_check(moved, n, 1));
	/* Back where it was, for the teardown. */
	ASSERT_EQ(self->buf, mremap(moved, 2 * n * DM_PAGE_SIZE, n * DM_PAGE_SIZE,
				    MREMAP_MAYMOVE | MREMAP_FIXED, self->buf));
}

/* MADV_DONTNEED drops device pages: not present, then zero. */
TEST_F(life, madv_dontneed_device_pages)
{
	unsigned long n = self->n;

	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	ASSERT_EQ(0, madvise(self->buf, n / 2 * DM_PAGE_SIZE, MADV_DONTNEED));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n / 2, dm_count(self->snap, n / 2, HMM_DMIRROR_PROT_NONE));
	EXPECT_EQ(n / 2, dm_count(self->snap + n / 2, n / 2, DM_DEV_RW));
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	for (unsigned long i = 0; i < n; i++) {
		char *p = self->out + i * DM_PAGE_SIZE;

		EXPECT_TRUE(i < n / 2 ? dm_page_is_zero(p) : dm_page_is(p, i, 1)) TH_LOG("page %lu", i);
	}
	for (unsigned long i = 0; i < n / 2; i++)
		EXPECT_TRUE(dm_page_is_zero(self->buf + i * DM_PAGE_SIZE));
}

/*
 * MADV_FREE over device pages: each page is either kept or zero (never
 * anything else); what the kernel chose is logged. A write after it stays.
 */
TEST_F(life, madv_free_device_pages)
{
	unsigned long n = self->n, kept = 0, i;

	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	ASSERT_EQ(0, madvise(self->buf, n * DM_PAGE_SIZE, MADV_FREE));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	TH_LOG("after MADV_FREE: %lu of %lu pages still on the device",
	       dm_count(self->snap, n, DM_DEV_RW), n);
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	for (i = 0; i < n; i++) {
		char *p = self->out + i * DM_PAGE_SIZE;

		kept += dm_page_is(p, i, 1);
		EXPECT_TRUE(dm_page_is(p, i, 1) || dm_page_is_zero(p)) TH_LOG("page %lu", i);
	}
	TH_LOG("%lu of %lu pages kept their data", kept, n);
	dm_fill(self->buf, n, 2);
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	EXPECT_EQ(-1, dm_check(self->out, n, 2));
	EXPECT_EQ(-1, dm_check(self->buf, n, 2));
}

/*
 * mlock'ed pages: the migration decision is the kernel's (logged); either
 * way the data is intact and the range stays locked and usable.
 */
TEST_F(life, mlocked_range)
{
	unsigned long n = self->n;
	uint64_t cpages;
	int ret;

	if (mlock(self->buf, n * DM_PAGE_SIZE))
		SKIP(return, "mlock: %s", strerror(errno));
	ret = dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages);
	EXPECT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("MIGRATE_TO_DEV: %d", ret);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	TH_LOG("mlocked: %lu of %lu pages on the device (ret %d)",
	       dm_count(self->snap, n, DM_DEV_RW), n, ret);
	EXPECT_EQ(ret == 0 ? n : 0, dm_count(self->snap, n, DM_DEV_RW));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	ASSERT_EQ(0, dm_cmd(self->rfd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	EXPECT_EQ(0, munlock(self->buf, n * DM_PAGE_SIZE));
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
}

/*
 * memfd ranges. MAP_SHARED: only anonymous private memory migrates, so
 * nothing moves and the read-back finds holes (-ENOENT); the mirror still
 * reads and writes the page cache. MAP_PRIVATE without writes: the page
 * cache pages do not move either. After a write (COW) the private copy does.
 */
TEST_F(life, memfd_ranges)
{
	unsigned long n = self->n, sz = n * DM_PAGE_SIZE;
	int mfd = memfd_create("dmirror", 0);
	char *shared, *priv;
	uint64_t cpages;

	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, sz));
	shared = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, shared);
	dm_fill(shared, n, 1);
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, shared, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, shared, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_SYS_RW));
	dm_fill(self->out, n, 2);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_WRITE, shared, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(shared, n, 2));

	priv = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ASSERT_NE(MAP_FAILED, priv);
	EXPECT_EQ(-1, dm_check(priv, n, 2));	/* maps the page cache */
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, priv, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, priv, self->snap, n, NULL));
	EXPECT_EQ(0UL, dm_count(self->snap, n, DM_DEV_RW));
	/* COW the first half into anonymous pages: those move. */
	for (unsigned long i = 0; i < n / 2; i++)
		dm_fill_page(priv + i * DM_PAGE_SIZE, i, 3);
	to_device(_metadata, self->fd, priv, n / 2, self->out, self->snap);
	EXPECT_EQ(-1, dm_check(self->out, n / 2, 3));
	/* The file did not change; the private copy is intact. */
	EXPECT_EQ(-1, dm_check(shared, n, 2));
	EXPECT_EQ(-1, dm_check(priv, n / 2, 3));
	munmap(priv, sz);
	munmap(shared, sz);
	close(mfd);
}

/* hugetlb: migrate_vma refuses the VMA (-EINVAL); the mirror maps it by PMD. */
TEST_F(life, hugetlb_range)
{
	unsigned long hn = DM_TWOMEG / DM_PAGE_SIZE;
	char *h = mmap(NULL, DM_TWOMEG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	uint64_t cpages;

	if (h == MAP_FAILED)
		SKIP(return, "no 2 MiB hugetlb page: %s", strerror(errno));
	dm_fill(h, hn, 1);
	EXPECT_EQ(-EINVAL, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, h, self->out, hn, NULL));
	EXPECT_EQ(-EINVAL, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, h, NULL, hn, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, h, self->snap, hn, &cpages));
	EXPECT_EQ(hn, cpages);
	EXPECT_EQ(hn, dm_count(self->snap, hn, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, h, self->out, hn, NULL));
	EXPECT_EQ(-1, dm_check(self->out, hn, 1));
	EXPECT_EQ(-1, dm_check(h, hn, 1));
	munmap(h, DM_TWOMEG);
}

/*
 * THP: migrate only part of a huge page (the folio is split) and the whole
 * of another; fork with it on the device; everything stays intact.
 */
TEST_F(life, thp_partial_and_fork)
{
	unsigned long hn = DM_TWOMEG / DM_PAGE_SIZE, i;
	char *t = dm_map_aligned(2 * DM_TWOMEG, MADV_HUGEPAGE);
	struct cow_arg a;
	int status;
	pid_t pid;

	ASSERT_NE(NULL, t);
	dm_fill(t, 2 * hn, 1);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, t, self->snap, hn, NULL));
	if (dm_count(self->snap, hn, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD) != hn)
		SKIP(goto out, "no THP for a 2 MiB aligned MADV_HUGEPAGE range");

	/* Pages 100..299 of the first huge page, all of the second. */
	to_device(_metadata, self->fd, t + 100 * DM_PAGE_SIZE, 200, self->out, self->snap);
	for (i = 0; i < 200; i++)
		EXPECT_TRUE(dm_page_is(self->out + i * DM_PAGE_SIZE, 100 + i, 1));
	to_device(_metadata, self->fd, t + DM_TWOMEG, hn, self->out, self->snap);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, t, self->snap, hn, NULL));
	EXPECT_EQ(200UL, dm_count_any_size(self->snap, hn, DM_DEV_RW));

	a.buf = t;
	a.n = 2 * hn;
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		cow_child(&a);
	for (i = 1; i < 2 * hn; i += 2)
		dm_fill_page(t + i * DM_PAGE_SIZE, i, 6);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(-1, dm_check_alt(t, 2 * hn, 1, 6));
out:
	munmap(t, 2 * DM_TWOMEG);
}

/*
 * The tests above read device-0 pages through device 1 after mremap and
 * madvise (the C driver Oopses reading them through device 0). Through
 * device 0 itself: the data, and the pages stay on the device.
 */
TEST_F(life, own_device_reads_after_vma_changes)
{
	unsigned long n = self->n, h = n / 2, i;
	uint64_t cpages;
	char *dst;

	if (dm_driver_is_c())
		SKIP(return, DM_C_OOPS);
	dst = dm_map(n, PROT_NONE, 0);
	ASSERT_NE(NULL, dst);

	/* mremap */
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	ASSERT_EQ(dst, mremap(self->buf, n * DM_PAGE_SIZE, n * DM_PAGE_SIZE,
			      MREMAP_MAYMOVE | MREMAP_FIXED, dst));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, dst, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, dst, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	ASSERT_EQ(self->buf, mremap(dst, n * DM_PAGE_SIZE, n * DM_PAGE_SIZE,
				    MREMAP_MAYMOVE | MREMAP_FIXED, self->buf));

	/*
	 * MADV_DONTNEED of the second half. Not of the first: hmm_range_fault()
	 * faults from the first page that needs it to the end of its walk, so
	 * own device pages after a hole come back to RAM (measured, both
	 * drivers); before it they are reported as they are.
	 */
	ASSERT_EQ(0, madvise(self->buf + h * DM_PAGE_SIZE, h * DM_PAGE_SIZE, MADV_DONTNEED));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	for (i = 0; i < n; i++)
		if (i < h ? !dm_page_is(self->out + i * DM_PAGE_SIZE, i, 1) :
		    !dm_page_is_zero(self->out + i * DM_PAGE_SIZE))
			break;
	EXPECT_EQ(n, i) TH_LOG("after MADV_DONTNEED: page %lu", i);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(h, dm_count(self->snap, h, DM_DEV_RW))
		TH_LOG("SNAPSHOT byte 0 after the READ: %#x", self->snap[0]);

	/* MADV_FREE: each page kept or zero */
	dm_fill(self->buf, n, 2);
	to_device(_metadata, self->fd, self->buf, n, self->out, self->snap);
	ASSERT_EQ(0, madvise(self->buf, n * DM_PAGE_SIZE, MADV_FREE));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	for (i = 0; i < n; i++)
		if (!dm_page_is(self->out + i * DM_PAGE_SIZE, i, 2) &&
		    !dm_page_is_zero(self->out + i * DM_PAGE_SIZE))
			break;
	EXPECT_EQ(n, i) TH_LOG("after MADV_FREE: page %lu is neither kept nor zero", i);
	munmap(dst, n * DM_PAGE_SIZE);
}

TEST_HARNESS_MAIN
