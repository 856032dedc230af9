// SPDX-License-Identifier: GPL-2.0
/*
 * The mdev_* vmstat events of the instrumentation patch
 * patches/experiments/0001 count right: a migration to the device over M
 * pages that cannot move, for a known reason, moves each cause's event by
 * exactly M pages (and no other cause), and the totals add up
 * (mdev_requested = mdev_collected + collect causes, mdev_collected =
 * mdev_unmapped + unmap causes).
 * - page lock held (the project-only hook of dmirror_test_hooks.h; the C
 *   driver has none: skip): mdev_collect_lock_busy, for 4 KiB pages and for
 *   a THP (one locked folio costs its 512 pages);
 * - an extra page reference (vmsplice() into a pipe holds one):
 *   mdev_unmap_extra_refs;
 * - a FOLL_PIN of an exclusive anonymous page (gup_test's
 *   PIN_LONGTERM_TEST_START): mdev_collect_pinned.
 * Only on the instrumented kernel (KFLAVOR=contention); elsewhere it skips.
 * The events are global: nothing else in the guest migrates meanwhile.
 */
#define _GNU_SOURCE
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"
#include "dmirror_test_hooks.h"
#include "dmirror_mdev_counters.h"
#include <mm/gup_test.h>

#define NPAGES 64

FIXTURE(mdev)
{
	int fd;		/* migrates */
	int lock_fd;	/* holds page locks (hook) */
	char *buf;
	unsigned long npages;
	unsigned char *out;
	unsigned long long before[NR_MDEV];
};

FIXTURE_SETUP(mdev)
{
	unsigned long long v[NR_MDEV];

	self->fd = -1;
	if (mdev_read(v) != NR_MDEV)
		SKIP(return, MDEV_MISSING);
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	self->lock_fd = dm_open(0);
	ASSERT_GE(self->lock_fd, 0);
	self->npages = NPAGES;
	self->buf = dm_map(NPAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->buf);
	self->out = malloc(DM_TWOMEG);
	ASSERT_NE(NULL, self->out);
	dm_fill(self->buf, NPAGES, 1);
}

FIXTURE_TEARDOWN(mdev)
{
	if (self->fd < 0)
		return;
	close(self->lock_fd);
	close(self->fd);
	munmap(self->buf, NPAGES * DM_PAGE_SIZE);
	free(self->out);
}

/*
 * The events since 'before': requested, collected and unmapped as given,
 * 'cause' moved by 'nr' and every other cause by 0, the totals add up.
 */
static void expect_delta(struct __test_metadata *_metadata,
			 const unsigned long long before[NR_MDEV],
			 unsigned long long requested, unsigned long long collected,
			 unsigned long long unmapped, int cause, unsigned long long nr)
{
	unsigned long long now[NR_MDEV], d[NR_MDEV], sum = 0;
	int i;

	ASSERT_EQ(NR_MDEV, mdev_read(now));
	mdev_delta(before, now, d);
	for (i = 0; i < NR_MDEV; i++)
		TH_LOG("%s +%llu", mdev_names[i], d[i]);
	EXPECT_EQ(requested, d[MDEV_REQUESTED]);
	EXPECT_EQ(collected, d[MDEV_COLLECTED]);
	EXPECT_EQ(unmapped, d[MDEV_UNMAPPED]);
	for (i = MDEV_FIRST_COLLECT_CAUSE; i <= MDEV_LAST_UNMAP_CAUSE; i++) {
		if (i == MDEV_UNMAPPED)
			continue;
		EXPECT_EQ(i == cause ? nr : 0, d[i]) TH_LOG("cause %s", mdev_names[i]);
	}
	for (i = MDEV_FIRST_COLLECT_CAUSE; i <= MDEV_LAST_COLLECT_CAUSE; i++)
		sum += d[i];
	EXPECT_EQ(d[MDEV_REQUESTED], d[MDEV_COLLECTED] + sum);
	sum = 0;
	for (i = MDEV_FIRST_UNMAP_CAUSE; i <= MDEV_LAST_UNMAP_CAUSE; i++)
		sum += d[i];
	EXPECT_EQ(d[MDEV_COLLECTED], d[MDEV_UNMAPPED] + sum);
	EXPECT_EQ(0ULL, d[MDEV_PAGES_FAIL]);
}

/* M = 5 locked 4 KiB pages of 64: lock_busy +5, the 59 others move. */
TEST_F(mdev, lock_busy_counts_locked_pages)
{
	static const unsigned long locked[] = { 3, 10, 11, 12, 13 };
	unsigned long n = self->npages, m = ARRAY_SIZE(locked), i;
	uint64_t cpages;

	ASSERT_NE(-1, dm_lock_hook(self->lock_fd, self->buf));
	if (!dm_lock_hook(self->lock_fd, self->buf))
		SKIP(return, DM_NO_HOOK);
	for (i = 0; i < m; i++) {
		ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES,
				    self->buf + locked[i] * DM_PAGE_SIZE, NULL, 1, &cpages));
		ASSERT_EQ(1UL, cpages);
	}
	ASSERT_EQ(NR_MDEV, mdev_read(self->before));
	/* No mirror entry for the locked pages: the read-back finds holes. */
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf,
				  self->out, n, NULL));
	expect_delta(_metadata, self->before, n, n - m, n - m,
		     MDEV_COLLECT_LOCK_BUSY, m);

	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_UNLOCK_PAGES,
			    self->buf, NULL, 1, &cpages));
	EXPECT_EQ(m, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n - m, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * One locked page of a PMD-mapped THP locks the folio: collect skips the
 * whole PMD, lock_busy +512, in base pages; the second THP moves.
 */
TEST_F(mdev, lock_busy_counts_a_thp_in_base_pages)
{
	unsigned long n = 2 * DM_TWOMEG / DM_PAGE_SIZE, huge = DM_TWOMEG / DM_PAGE_SIZE;
	unsigned char *snap;
	uint64_t cpages;
	char *thp;

	ASSERT_NE(-1, dm_lock_hook(self->lock_fd, self->buf));
	if (!dm_lock_hook(self->lock_fd, self->buf))
		SKIP(return, DM_NO_HOOK);
	thp = dm_map_aligned(2 * DM_TWOMEG, MADV_HUGEPAGE);
	ASSERT_NE(NULL, thp);
	dm_fill(thp, n, 2);
	snap = malloc(n);
	ASSERT_NE(NULL, snap);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, thp, snap, n, NULL));
	if (!(snap[0] & HMM_DMIRROR_PROT_PMD) || !(snap[huge] & HMM_DMIRROR_PROT_PMD)) {
		free(snap);
		munmap(thp, 2 * DM_TWOMEG);
		SKIP(return, "no PMD-mapped THP (transparent_hugepage not enabled?)");
	}
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES,
			    thp + 7 * DM_PAGE_SIZE, NULL, 1, &cpages));
	ASSERT_EQ(1UL, cpages);
	ASSERT_EQ(NR_MDEV, mdev_read(self->before));
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, thp,
				  NULL, n, NULL));
	expect_delta(_metadata, self->before, n, huge, huge,
		     MDEV_COLLECT_LOCK_BUSY, huge);

	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_UNLOCK_PAGES,
			    thp, NULL, 1, &cpages));
	EXPECT_EQ(1UL, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, thp, NULL, n, NULL));
	EXPECT_EQ(-1, dm_check(thp, n, 2));
	free(snap);
	munmap(thp, 2 * DM_TWOMEG);
}

/*
 * vmsplice() of M = 4 pages into a pipe holds a reference on each (not a
 * pin): collect takes them, the refcount check of unmap drops them.
 */
TEST_F(mdev, extra_refs_counts_spliced_pages)
{
	unsigned long n = self->npages, m = 4, i;
	struct iovec iov[4];
	uint64_t cpages;
	int pipefd[2];

	ASSERT_EQ(0, pipe(pipefd));
	for (i = 0; i < m; i++) {
		iov[i].iov_base = self->buf + (20 + 2 * i) * DM_PAGE_SIZE;
		iov[i].iov_len = DM_PAGE_SIZE;
	}
	ASSERT_EQ((ssize_t)(m * DM_PAGE_SIZE), vmsplice(pipefd[1], iov, m, 0));
	ASSERT_EQ(NR_MDEV, mdev_read(self->before));
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf,
				  self->out, n, NULL));
	expect_delta(_metadata, self->before, n, n, n - m,
		     MDEV_UNMAP_EXTRA_REFS, m);
	close(pipefd[0]);
	close(pipefd[1]);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n - m, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * A FOLL_PIN of M = 3 exclusive anonymous pages: collect cannot mark them
 * shared (folio_try_share_anon_rmap_pte) and skips them: pinned +3.
 */
TEST_F(mdev, pinned_counts_pinned_pages)
{
	unsigned long n = self->npages, m = 3;
	struct pin_longterm_test pin = {
		.addr = (uintptr_t)(self->buf + 40 * DM_PAGE_SIZE),
		.size = m * DM_PAGE_SIZE,
		.flags = PIN_LONGTERM_TEST_FLAG_USE_WRITE,
	};
	uint64_t cpages;
	int gup_fd;

	gup_fd = open("/sys/kernel/debug/gup_test", O_RDWR);
	if (gup_fd < 0)
		SKIP(return, "/sys/kernel/debug/gup_test: %s (CONFIG_GUP_TEST, debugfs)",
		     strerror(errno));
	ASSERT_EQ(0, ioctl(gup_fd, PIN_LONGTERM_TEST_START, &pin));
	ASSERT_EQ(NR_MDEV, mdev_read(self->before));
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf,
				  self->out, n, NULL));
	expect_delta(_metadata, self->before, n, n - m, n - m,
		     MDEV_COLLECT_PINNED, m);
	ASSERT_EQ(0, ioctl(gup_fd, PIN_LONGTERM_TEST_STOP));
	close(gup_fd);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n - m, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

TEST_HARNESS_MAIN
