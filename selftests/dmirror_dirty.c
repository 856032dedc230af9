// SPDX-License-Identifier: GPL-2.0
/*
 * The PTE dirty bit across migrate_vma and swap.
 *
 * An anonymous page that was swapped out and read back sits in the swap
 * cache, clean: its swap copy is valid. A CPU write then dirties only the
 * PTE. When migrate_vma_setup() replaces that PTE with a migration entry it
 * must move the dirty bit to the folio (migrate_vma_collect_pmd(), as
 * try_to_migrate_one() does). If it does not and the migration then fails,
 * the restored PTE is clean, reclaim drops the folio without writing it and
 * the next read returns the old swap copy: the write is lost.
 *
 * Each test: fill the range (generation 1), push it to swap (MADV_PAGEOUT),
 * read it back, write generation 2, then migrate it to the device (the
 * driver made to fail the allocation of every destination page, or a full
 * round trip to the device and back), push it to swap again and read it:
 * every page must hold generation 2. Needs swap (the pipeline's guest has
 * zram0); without swap the test skips, except under the pipeline, where it
 * fails.
 */
#include <fcntl.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define PM_PRESENT	(1ULL << 63)
#define PM_SWAPPED	(1ULL << 62)
#define PAGEOUT_TRIES	20

/* 1 if /proc/swaps lists an active swap area. */
static int swap_active(void)
{
	char line[256];
	int lines = 0;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines > 1;
}

/* Pages of [buf, buf + n pages) whose pagemap entry has 'bit' set, or -1. */
static long pages_with(const char *buf, unsigned long n, uint64_t bit)
{
	unsigned long first = (uintptr_t)buf / DM_PAGE_SIZE;
	long count = 0;
	uint64_t entry;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return -1;
	for (unsigned long i = 0; i < n; i++) {
		if (pread(fd, &entry, sizeof(entry), (first + i) * sizeof(entry)) !=
		    sizeof(entry)) {
			count = -1;
			break;
		}
		count += !!(entry & bit);
	}
	close(fd);
	return count;
}

/*
 * Swap out every page of the range. Reclaim skips a folio that is not yet
 * on the LRU (still in another CPU's batch) or under writeback: ask again.
 */
static long page_out(char *buf, unsigned long n)
{
	long swapped = 0;

	for (int i = 0; i < PAGEOUT_TRIES; i++) {
		if (madvise(buf, n * DM_PAGE_SIZE, MADV_PAGEOUT))
			return -1;
		swapped = pages_with(buf, n, PM_SWAPPED);
		if (swapped == (long)n)
			break;
		usleep(10000);
	}
	return swapped;
}

FIXTURE(dirty)
{
	int fd;
	unsigned long npages;
	char *buf;
	unsigned char *out;
	unsigned char *snap;
};

FIXTURE_VARIANT(dirty)
{
	unsigned long npages;
	int thp;		/* 2 MiB-aligned, MADV_HUGEPAGE: starts as a THP */
};

FIXTURE_VARIANT_ADD(dirty, small)
{
	.npages = 16,
	.thp = 0,
};

FIXTURE_VARIANT_ADD(dirty, thp)
{
	.npages = 512,
	.thp = 1,
};

FIXTURE_SETUP(dirty)
{
	unsigned long n = variant->npages;
	long swapped;

	self->npages = n;
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	if (!swap_active()) {
		ASSERT_EQ(NULL, getenv("HMM_DRIVER"))
			TH_LOG("no swap in the pipeline's guest (qemu/init sets up zram0)");
		SKIP(return, "no active swap area (/proc/swaps): needs swap to test the dirty bit");
	}
	if (variant->thp)
		self->buf = dm_map_aligned(n * DM_PAGE_SIZE, MADV_HUGEPAGE);
	else
		self->buf = dm_map(n, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->buf);
	self->out = malloc(n * DM_PAGE_SIZE);
	ASSERT_NE(NULL, self->out);
	self->snap = malloc(n);
	ASSERT_NE(NULL, self->snap);

	/* Generation 1 goes to swap; reading it back leaves clean folios. */
	dm_fill(self->buf, n, 1);
	swapped = page_out(self->buf, n);
	ASSERT_EQ((long)n, swapped) TH_LOG("MADV_PAGEOUT swapped %ld of %lu pages", swapped, n);
	ASSERT_EQ(-1, dm_check(self->buf, n, 1));
	ASSERT_EQ((long)n, pages_with(self->buf, n, PM_PRESENT));

	/* Generation 2 dirties only the PTEs. */
	dm_fill(self->buf, n, 2);
}

FIXTURE_TEARDOWN(dirty)
{
	if (self->fd < 0)
		return;
	close(self->fd);
	if (self->buf)
		munmap(self->buf, self->npages * DM_PAGE_SIZE);
	free(self->out);
	free(self->snap);
}

/*
 * Push the range to swap and read it: generation 2 must come back. A page
 * holding generation 1 was dropped by reclaim as clean: its write was lost.
 */
static void expect_written_data_survives(struct __test_metadata *_metadata,
					 char *buf, unsigned long n)
{
	long swapped = page_out(buf, n);
	long bad;

	ASSERT_EQ((long)n, swapped) TH_LOG("MADV_PAGEOUT swapped %ld of %lu pages", swapped, n);
	bad = dm_check(buf, n, 2);
	EXPECT_EQ(-1, bad) {
		TH_LOG("page %ld lost its write: it holds %s", bad,
		       dm_page_is(buf + bad * DM_PAGE_SIZE, bad, 1) ?
		       "the older swap copy (the PTE dirty bit was dropped)" :
		       "neither generation");
	}
}

/*
 * The migration of every page fails at the destination allocation (the
 * driver's FAIL_ALLOC flag fails one page per command), so each page goes
 * through collect, a migration entry and the restore of its PTE.
 */
TEST_F(dirty, failed_migration_keeps_dirty)
{
	unsigned long n = self->npages;

	for (unsigned long i = 0; i < n; i++) {
		char *page = self->buf + i * DM_PAGE_SIZE;

		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, page, NULL,
				    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
		ASSERT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, page,
					  self->out, 1, NULL));
	}
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	ASSERT_EQ(n, dm_count_any_size(self->snap, n, DM_SYS_RW)) TH_LOG("a page moved");
	expect_written_data_survives(_metadata, self->buf, n);
}

/* To the device and back: the data comes back, then survives swap. */
TEST_F(dirty, round_trip_keeps_dirty)
{
	unsigned long n = self->npages;
	uint64_t cpages;

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n,
			    &cpages));
	ASSERT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 2));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	ASSERT_EQ(n, cpages);
	expect_written_data_survives(_metadata, self->buf, n);
}

TEST_HARNESS_MAIN
