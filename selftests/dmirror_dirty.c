// SPDX-License-Identifier: GPL-2.0
/*
 * The PTE dirty bit across migrate_vma and swap.
 *
 * A page whose data is newer than its backing copy but whose folio is clean
 * keeps the difference only in its PTE dirty bit. When
 * migrate_vma_collect_pmd() replaces that PTE with a migration entry it must
 * move the dirty bit to the folio (as try_to_migrate_one() does): the PTE
 * that remove_migration_pte() restores after a failed migration is dirty
 * only if the folio is. If the bit is dropped, reclaim later finds a clean
 * folio, drops it without writing it and the next read returns the old
 * copy: the CPU's write is lost. Two kinds of page get into that state:
 *
 *  - anon: an anonymous page pushed to swap (MADV_PAGEOUT) and read back
 *    sits clean in the swap cache (its swap copy is valid); a CPU write
 *    then dirties only the PTE. This needs a swap device that keeps the
 *    swap cache on swap-in: do_swap_page() frees it for SWP_SYNCHRONOUS_IO
 *    devices (zram), so the pipeline's guest swaps on a loop device.
 *  - shmem: a shared anonymous page read-faulted (a clean folio mapped
 *    writable) and then written. The kernel migrates only anonymous pages
 *    to device memory, so every migration of it fails after collect.
 *  - shmem_thp: the same with a PMD-mapped shmem THP. Collect splits the
 *    PMD of a file THP by clearing it, and __split_huge_pmd_locked() must
 *    move the PMD dirty bit to the folio.
 *
 * An anonymous THP has no such state: swap-in never maps a PMD, and an
 * anonymous folio outside the swap cache is written to swap whatever its
 * dirty flag.
 *
 * Each test writes generation 2 over that state, migrates the range to the
 * device (the anonymous pages with the driver made to fail every
 * destination allocation, or a round trip to the device and back), reads
 * it, pushes it out (MADV_PAGEOUT) and reads it again: every page must hold
 * generation 2. Needs swap; without swap the test skips, except under the
 * pipeline (HMM_DRIVER set), where it fails.
 */
#include <fcntl.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define PM_PRESENT	(1ULL << 63)
#define PM_SWAPPED	(1ULL << 62)
#define PAGEOUT_TRIES	100
#define MIGRATE_TRIES	5

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
 * Empty every CPU's LRU batches (drop_caches runs lru_add_drain_all()
 * first; dropping clean page cache does not touch the swap cache). Swap
 * writeback that ends on another CPU queues the folio there, with a
 * reference (folio_rotate_reclaimable()), and migrate_vma_setup() drains
 * only its own CPU: it would skip the page for the extra reference.
 */
static void drain_all_cpus(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd < 0)
		return;
	if (write(fd, "1", 1) != 1)
		perror("drop_caches");
	close(fd);
}

/* The pages of [buf, buf + n pages) pushed out of memory, or -1. */
static long pages_out(const char *buf, unsigned long n, int shmem)
{
	long present, swapped;

	/* Reclaim leaves a shmem page as a hole in the page table. */
	if (shmem) {
		present = pages_with(buf, n, PM_PRESENT);
		return present < 0 ? -1 : (long)n - present;
	}
	swapped = pages_with(buf, n, PM_SWAPPED);
	return swapped;
}

/*
 * Push every page of the range out. Reclaim skips a folio that is not yet
 * on the LRU (still in another CPU's batch) or under writeback: drain the
 * batches and ask again.
 */
static long page_out(char *buf, unsigned long n, int shmem)
{
	long out = 0;

	for (int i = 0; i < PAGEOUT_TRIES; i++) {
		if (i)
			drain_all_cpus();
		if (madvise(buf, n * DM_PAGE_SIZE, MADV_PAGEOUT))
			return -1;
		out = pages_out(buf, n, shmem);
		if (out == (long)n)
			break;
		usleep(10000);
	}
	return out;
}

/* Kilobytes under writeback system-wide (/proc/meminfo), or -1. */
static long writeback_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Writeback: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Wait up to a second for swap writeback to end. A folio still under
 * writeback cannot leave the swap cache, so migrate_vma_pages() would not
 * move it (folio_free_swap() fails): the round trip would miss pages.
 */
static long writeback_drained(void)
{
	long kb = writeback_kb();

	for (int i = 0; i < 100 && kb > 0; i++) {
		usleep(10000);
		kb = writeback_kb();
	}
	return kb;
}

/* Kilobytes of 'field' ("ShmemPmdMapped:") of the VMA at 'addr', or -1. */
static long smaps_kb(const void *addr, const char *field)
{
	char line[256];
	unsigned long start, end;
	long kb = -1;
	int in_vma = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* A VMA's header line; its fields start with a name and ':'. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in_vma = start == (uintptr_t)addr;
			continue;
		}
		if (in_vma && !strncmp(line, field, strlen(field))) {
			kb = strtol(line + strlen(field), NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* Reads every page, so that each is mapped and counted by reclaim. */
static void read_all(const char *buf, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		(void)__atomic_load_n(buf + i * DM_PAGE_SIZE, __ATOMIC_RELAXED);
}

enum kind { ANON, SHMEM, SHMEM_THP };

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
	enum kind kind;
};

FIXTURE_VARIANT_ADD(dirty, anon)
{
	.npages = 16,
	.kind = ANON,
};

FIXTURE_VARIANT_ADD(dirty, shmem)
{
	.npages = 16,
	.kind = SHMEM,
};

FIXTURE_VARIANT_ADD(dirty, shmem_thp)
{
	.npages = 512,
	.kind = SHMEM_THP,
};

/* Anonymous pages clean in the swap cache, mapped writable. */
static void setup_anon(struct __test_metadata *_metadata, char *buf, unsigned long n)
{
	long swapped;

	/* Generation 1 goes to swap; reading it back leaves clean folios. */
	dm_fill(buf, n, 1);
	swapped = page_out(buf, n, 0);
	ASSERT_EQ((long)n, swapped) TH_LOG("MADV_PAGEOUT swapped %ld of %lu pages", swapped, n);
	ASSERT_EQ(0, writeback_drained()) TH_LOG("swap writeback still running after 1 s");
	ASSERT_EQ(-1, dm_check(buf, n, 1));
	ASSERT_EQ((long)n, pages_with(buf, n, PM_PRESENT));
}

/* Shared anonymous pages read-faulted: clean folios mapped writable. */
static void setup_shmem(struct __test_metadata *_metadata, char *buf, unsigned long n,
			int thp)
{
	long pmd_kb;

	read_all(buf, n);
	if (!thp)
		return;
	pmd_kb = smaps_kb(buf, "ShmemPmdMapped:");
	if (pmd_kb >= (long)(DM_TWOMEG / 1024))
		return;
	ASSERT_EQ(NULL, getenv("HMM_DRIVER"))
		TH_LOG("no PMD-mapped shmem THP (ShmemPmdMapped %ld kB; qemu/init sets shmem_enabled=advise)",
		       pmd_kb);
	SKIP(return, "no PMD-mapped shmem THP (needs shmem_enabled advise or always)");
}

FIXTURE_SETUP(dirty)
{
	unsigned long n = variant->npages;
	size_t size = n * DM_PAGE_SIZE;

	self->npages = n;
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	if (!swap_active()) {
		ASSERT_EQ(NULL, getenv("HMM_DRIVER"))
			TH_LOG("no swap in the pipeline's guest (qemu/init sets up loop0)");
		SKIP(return, "no active swap area (/proc/swaps): needs swap to test the dirty bit");
	}
	if (variant->kind == ANON) {
		self->buf = dm_map(n, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	} else {
		/* shmem's get_unmapped_area aligns 2 MiB mappings for THPs. */
		self->buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, self->buf);
		ASSERT_EQ(0, madvise(self->buf, size, variant->kind == SHMEM_THP ?
				     MADV_HUGEPAGE : MADV_NOHUGEPAGE));
	}
	ASSERT_NE(NULL, self->buf);
	self->out = malloc(size);
	ASSERT_NE(NULL, self->out);
	self->snap = malloc(n);
	ASSERT_NE(NULL, self->snap);

	if (variant->kind == ANON)
		setup_anon(_metadata, self->buf, n);
	else
		setup_shmem(_metadata, self->buf, n, variant->kind == SHMEM_THP);
	if (_metadata->exit_code)
		return;	/* failed or skipped in the helper */

	/* Generation 2 dirties only the PTEs (or the PMD). */
	dm_fill(self->buf, n, 2);
}

FIXTURE_TEARDOWN(dirty)
{
	if (self->fd < 0)
		return;
	close(self->fd);
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, self->npages * DM_PAGE_SIZE);
	free(self->out);
	free(self->snap);
}

/*
 * Read the range, push it out and read it again: generation 2 must come
 * back. A page holding an older generation was dropped by reclaim as clean:
 * its write was lost.
 */
static void expect_written_data_survives(struct __test_metadata *_metadata,
					 char *buf, unsigned long n, int shmem)
{
	long out, bad;

	ASSERT_EQ(-1, dm_check(buf, n, 2)) TH_LOG("generation 2 is gone before reclaim");
	out = page_out(buf, n, shmem);
	ASSERT_EQ((long)n, out) TH_LOG("MADV_PAGEOUT pushed out %ld of %lu pages", out, n);
	bad = dm_check(buf, n, 2);
	EXPECT_EQ(-1, bad) {
		const char *page = buf + bad * DM_PAGE_SIZE;

		TH_LOG("page %ld lost its write: it holds %s", bad,
		       dm_page_is(page, bad, 1) ? "the older swap copy (the dirty bit was dropped)" :
		       dm_page_is_zero(page) ? "zeroes (the dirty bit was dropped)" :
		       "neither generation");
	}
}

/*
 * Every page goes through collect, a migration entry and the restore of its
 * PTE: the driver fails each destination allocation (one page per command,
 * FAIL_ALLOC), and the kernel refuses shmem pages anyway.
 */
TEST_F(dirty, failed_migration_keeps_dirty)
{
	unsigned long n = self->npages;

	drain_all_cpus();
	for (unsigned long i = 0; i < n; i++) {
		char *page = self->buf + i * DM_PAGE_SIZE;

		if (variant->kind == ANON)
			ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, page, NULL,
					    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
		ASSERT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, page,
					  self->out, 1, NULL));
	}
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	/* Collect unmapped the shmem THP (it cleared the PMD) and left it so. */
	ASSERT_EQ(n, dm_count_any_size(self->snap, n, variant->kind == SHMEM_THP ?
				      HMM_DMIRROR_PROT_NONE : DM_SYS_RW))
		TH_LOG("a page moved or kept a mapping it should not have");
	expect_written_data_survives(_metadata, self->buf, n, variant->kind != ANON);
}

/* To the device and back: the data comes back, then survives swap. */
TEST_F(dirty, round_trip_keeps_dirty)
{
	unsigned long n = self->npages;
	uint64_t cpages;
	int tries, ret;

	if (variant->kind != ANON)
		SKIP(return, "the kernel migrates only anonymous pages to device memory");
	/*
	 * Migration is best effort: a page can still be skipped for a reference
	 * held for a moment elsewhere. This test is about the data, so it
	 * drains and asks again, and says so.
	 */
	for (tries = 1; tries <= MIGRATE_TRIES; tries++) {
		drain_all_cpus();
		ret = dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n,
			     &cpages);
		if (!ret)
			break;
		usleep(20000);
	}
	if (tries > 1 || ret)
		dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL);
	if (tries > 1 && !ret)
		TH_LOG("all pages moved at attempt %d", tries);
	ASSERT_EQ(0, ret) TH_LOG("%lu of %lu pages moved after %d attempts; writeback %ld kB",
				 dm_count_any_size(self->snap, n, DM_DEV_RW), n, MIGRATE_TRIES,
				 writeback_kb());
	ASSERT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 2));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	ASSERT_EQ(n, cpages);
	expect_written_data_survives(_metadata, self->buf, n, 0);
}

TEST_HARNESS_MAIN
