// SPDX-License-Identifier: GPL-2.0
/*
 * The migrate_vma contract after "mm/migrate.c: Remove MIGRATE_PFN_LOCKED"
 * (5.16): a source page that migrate_vma_setup() cannot trylock is not
 * collected and not migrated, without a retry; the rest of the range moves.
 * Locks are held with the project-only hook of dmirror_test_hooks.h (the C
 * driver has none: those tests skip). Also: data and protection of every page
 * survive a round trip to the device and back, explicit or by CPU fault.
 *
 * Counting, as lib/test_hmm.c defines it: MIGRATE_TO_DEV's cpages is the
 * number of pages read back from the mirror after the migration (a page that
 * is neither migrated nor already mirrored is a hole: -ENOENT); what moved
 * is what SNAPSHOT reports as DEV_PRIVATE_LOCAL. MIGRATE_TO_SYS's cpages is
 * the number of device pages that moved back.
 */
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"
#include "dmirror_test_hooks.h"

#define NPAGES 16

FIXTURE(contract)
{
	int fd;		/* migrates, reads, snapshots */
	int lock_fd;	/* holds page locks (hook) */
	unsigned long npages;
	char *buf;
	unsigned char *out;
	unsigned char snap[NPAGES];
};

FIXTURE_SETUP(contract)
{
	self->npages = NPAGES;
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	self->lock_fd = dm_open(0);
	ASSERT_GE(self->lock_fd, 0);
	self->buf = dm_map(NPAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, self->buf);
	self->out = malloc(NPAGES * DM_PAGE_SIZE);
	ASSERT_NE(NULL, self->out);
	dm_fill(self->buf, NPAGES, 1);
}

FIXTURE_TEARDOWN(contract)
{
	if (self->fd < 0)
		return;
	close(self->lock_fd);
	close(self->fd);
	munmap(self->buf, NPAGES * DM_PAGE_SIZE);
	free(self->out);
}

#define HOOK_GONE "loaded with test_hooks=1, but TEST_UNLOCK_PAGES is refused"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int page_locked(unsigned long i)
{
	return i == 3 || i == 8 || i == 9;
}

/*
 * With the mirror already populated (READ), a migration over locked pages
 * succeeds; exactly the unlocked pages move; every page reads back intact;
 * it neither waits for the lock nor retries (the lock holder is this
 * process: waiting would never end, the harness timeout fails it), twice;
 * MIGRATE_TO_SYS brings back and counts only the pages that moved; after
 * unlock the same call moves all. MIGRATE_TO_DEV's cpages is the C ABI's:
 * pages read back from the mirror, so n here (the locked pages are still
 * mirrored); SNAPSHOT tells what moved.
 */
TEST_F(contract, locked_pages_stay_then_move)
{
	unsigned long n = self->npages, i;
	uint64_t cpages;
	double t0;

	ASSERT_NE(-1, dm_lock_hook(self->lock_fd, self->buf)) TH_LOG(HOOK_GONE);
	if (!dm_lock_hook(self->lock_fd, self->buf))
		SKIP(return, DM_NO_HOOK);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);

	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES,
			    self->buf + 3 * DM_PAGE_SIZE, NULL, 1, &cpages));
	ASSERT_EQ(1UL, cpages);
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES,
			    self->buf + 8 * DM_PAGE_SIZE, NULL, 2, &cpages));
	ASSERT_EQ(2UL, cpages);

	for (int round = 0; round < 2; round++) {
		memset(self->out, 0, n * DM_PAGE_SIZE);
		t0 = now_s();
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
				    self->buf, self->out, n, &cpages));
		EXPECT_LT(now_s() - t0, 10.0);
		EXPECT_EQ(n, cpages);	/* pages read back from the mirror */
		EXPECT_EQ(-1, dm_check(self->out, n, 1));

		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf,
				    self->snap, n, &cpages));
		for (i = 0; i < n; i++) {
			unsigned char want = page_locked(i) ? DM_SYS_RW : DM_DEV_RW;

			EXPECT_EQ(want, self->snap[i]) TH_LOG("page %lu", i);
		}
	}

	/* Back to RAM, locks still held: cpages counts what was on the device. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n - 3, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_SYS_RW));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));

	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_UNLOCK_PAGES,
			    self->buf, NULL, 1, &cpages));
	EXPECT_EQ(3UL, cpages);
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_UNLOCK_PAGES,
			    self->buf, NULL, 1, &cpages));
	EXPECT_EQ(0UL, cpages);

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf,
			    self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	/* And the CPU gets every page back intact. */
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * Without a mirror entry for the locked page, the read-back after the
 * migration finds a hole there: -ENOENT, as for any page that could not
 * move. The other pages moved anyway and nothing is lost.
 */
TEST_F(contract, locked_page_is_a_hole_without_mirror)
{
	unsigned long n = self->npages;
	uint64_t cpages;

	ASSERT_NE(-1, dm_lock_hook(self->lock_fd, self->buf)) TH_LOG(HOOK_GONE);
	if (!dm_lock_hook(self->lock_fd, self->buf))
		SKIP(return, DM_NO_HOOK);
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES,
			    self->buf, NULL, 1, &cpages));
	ASSERT_EQ(1UL, cpages);
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
				  self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(DM_SYS_RW, self->snap[0]);
	EXPECT_EQ(n - 1, dm_count(self->snap, n, DM_DEV_RW));

	/* MIGRATE_TO_SYS counts what moved back: the n - 1 device pages. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n - 1, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/* Only present pages are locked; close of the holding fd drops the locks. */
TEST_F(contract, lock_hook_counts_and_close_releases)
{
	unsigned long n = self->npages;
	uint64_t cpages;
	char *fresh;

	ASSERT_NE(-1, dm_lock_hook(self->lock_fd, self->buf)) TH_LOG(HOOK_GONE);
	if (!dm_lock_hook(self->lock_fd, self->buf))
		SKIP(return, DM_NO_HOOK);
	fresh = dm_map(n, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, fresh);
	for (unsigned long i = 0; i < n; i += 2)
		fresh[i * DM_PAGE_SIZE] = 1;
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES, fresh, NULL, n, &cpages));
	EXPECT_EQ(n / 2, cpages);
	ASSERT_EQ(0, dm_cmd(self->lock_fd, HMM_DMIRROR_TEST_LOCK_PAGES, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n, cpages);

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(0UL, dm_count(self->snap, n, DM_DEV_RW));

	close(self->lock_fd);
	self->lock_fd = dm_open(1);
	ASSERT_GE(self->lock_fd, 0);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	munmap(fresh, n * DM_PAGE_SIZE);
}

/* MIGRATE_TO_SYS counts only the pages that were on the device. */
TEST_F(contract, migrate_to_sys_counts_device_pages_only)
{
	unsigned long n = self->npages, half = n / 2;
	uint64_t cpages;

	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, half, &cpages));
	ASSERT_EQ(half, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(half, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(0UL, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_SYS_RW));
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * A migration of device pages back to RAM that fails on its allocation
 * (HMM_DMIRROR_FLAGS FAIL_ALLOC: -ENOMEM) leaves them on the device and still
 * mirrored: lib/test_hmm.c drops the mirror entry of a page only when it
 * copies it. So a MIGRATE_TO_DEV over them afterwards (nothing to move) reads
 * them back: 0, cpages = npages, the data. The failed migration comes from
 * EXCLUSIVE, whose write fault on a device page migrates it back
 * (migrate_to_ram), and from MIGRATE_TO_SYS; the Rust module once answered
 * -ENOENT there (it erased the entries before allocating). Last, a
 * MIGRATE_TO_DEV that fails with -ENOENT because FAIL_ALLOC kept one page in
 * RAM mirrors the pages that did move, for the next one.
 */
static void expect_on_device(struct __test_metadata *_metadata, int fd,
			     char *buf, unsigned char *out, unsigned char *snap,
			     unsigned long first, unsigned long n)
{
	uint64_t cpages = ~0ULL;
	unsigned long i;

	memset(out, 0, n * DM_PAGE_SIZE);
	EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf + first * DM_PAGE_SIZE,
			    out, n, &cpages)) TH_LOG("pages %lu..%lu", first, first + n - 1);
	EXPECT_EQ(n, cpages);
	for (i = 0; i < n; i++) {
		EXPECT_TRUE(dm_page_is(out + i * DM_PAGE_SIZE, first + i, 1))
			TH_LOG("read-back of page %lu", first + i);
	}
	ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, buf + first * DM_PAGE_SIZE, snap, n, NULL));
	EXPECT_EQ(n, dm_count(snap, n, DM_DEV_RW));
}

TEST_F(contract, failed_migration_keeps_mirror)
{
	unsigned long n = self->npages;
	uint64_t cpages;

	/* All on the device; EXCLUSIVE from page 6 fails on page 6. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
	EXPECT_EQ(-ENOMEM, dm_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, self->buf + 6 * DM_PAGE_SIZE,
				  self->out, 6, NULL));
	expect_on_device(_metadata, self->fd, self->buf, self->out, self->snap, 6, 3);
	expect_on_device(_metadata, self->fd, self->buf, self->out, self->snap, 0, n);

	/* MIGRATE_TO_SYS fails on its first page and moves nothing. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
	EXPECT_EQ(-ENOMEM, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, NULL));
	expect_on_device(_metadata, self->fd, self->buf, self->out, self->snap, 0, n);

	/* Back to RAM, then to the device with one page kept in RAM. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
	EXPECT_EQ(-ENOENT, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n,
				  NULL));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(DM_SYS_RW, self->snap[0]);
	EXPECT_EQ(n - 1, dm_count(self->snap, n, DM_DEV_RW));
	expect_on_device(_metadata, self->fd, self->buf, self->out, self->snap, 1, n - 1);
	expect_on_device(_metadata, self->fd, self->buf, self->out, self->snap, 0, n);

	/* Every page comes back intact. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
}

/*
 * Round trips. 'ro': the range is made read-only before it moves; 'fault':
 * the CPU brings it back instead of MIGRATE_TO_SYS.
 */
struct trip {
	int fd;
	unsigned long npages;
	char *buf;
	unsigned char *out;
	unsigned char *snap;
};

static void round_trip(struct __test_metadata *_metadata,
		       const struct trip *self, int ro, int fault)
{
	unsigned long n = self->npages, i;
	unsigned char dev = ro ? DM_DEV_RO : DM_DEV_RW;
	unsigned char sys = ro ? DM_SYS_RO : DM_SYS_RW;
	uint64_t cpages;

	if (ro)
		ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, dev));

	if (!ro) {
		/* The device writes the odd pages while they are on it. */
		for (i = 1; i < n; i += 2)
			dm_fill_page(self->out + i * DM_PAGE_SIZE, i, 2);
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, &cpages));
		EXPECT_EQ(n, cpages);
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
		EXPECT_EQ(n, dm_count(self->snap, n, dev)) TH_LOG("a mirror write moved pages");
	} else {
		/*
		 * -EFAULT, measured on the C driver (a read-only system page
		 * gives -EPERM): hmm_range_fault() reports the read-only page
		 * of the caller's own device without faulting it.
		 */
		EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, NULL));
	}

	if (fault) {
		for (i = 0; i < n; i++) {
			unsigned long gen = (!ro && (i & 1)) ? 2 : 1;

			EXPECT_TRUE(dm_page_is(self->buf + i * DM_PAGE_SIZE, i, gen))
				TH_LOG("page %lu after the fault", i);
		}
	} else {
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
		EXPECT_EQ(n, cpages);
	}
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, sys));
	for (i = 0; i < n; i++) {
		unsigned long gen = (!ro && (i & 1)) ? 2 : 1;

		EXPECT_TRUE(dm_page_is(self->buf + i * DM_PAGE_SIZE, i, gen)) TH_LOG("page %lu", i);
	}

	if (ro) {
		EXPECT_TRUE(dm_write_segfaults(self->buf));
		EXPECT_TRUE(dm_write_segfaults(self->buf + (n - 1) * DM_PAGE_SIZE));
		/* Writable again: the data is there and takes writes. */
		ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ | PROT_WRITE));
		EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	}
	dm_fill(self->buf, n, 3);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	EXPECT_EQ(-1, dm_check(self->out, n, 3));
	EXPECT_EQ(-1, dm_check(self->buf, n, 3));
}

TEST_F(contract, round_trip_rw_explicit)
{
	struct trip t = { self->fd, self->npages, self->buf, self->out, self->snap };

	round_trip(_metadata, &t, 0, 0);
}

TEST_F(contract, round_trip_rw_cpu_fault)
{
	struct trip t = { self->fd, self->npages, self->buf, self->out, self->snap };

	round_trip(_metadata, &t, 0, 1);
}

TEST_F(contract, round_trip_ro_explicit)
{
	struct trip t = { self->fd, self->npages, self->buf, self->out, self->snap };

	round_trip(_metadata, &t, 1, 0);
}

TEST_F(contract, round_trip_ro_cpu_fault)
{
	struct trip t = { self->fd, self->npages, self->buf, self->out, self->snap };

	round_trip(_metadata, &t, 1, 1);
}

/*
 * A write fault on a read-only device page in a writable VMA (the page of a
 * read-only mapping made writable while on the device) moves it back once
 * and the written data stays written; the untouched pages stay on the device.
 */
TEST_F(contract, mprotect_while_on_device)
{
	unsigned long n = self->npages, i;
	uint64_t cpages;

	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RO));
	dm_fill_page(self->buf + 5 * DM_PAGE_SIZE, 5, 7);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(DM_SYS_RW, self->snap[5]);
	EXPECT_EQ(n - 1, dm_count(self->snap, n, DM_DEV_RO));
	for (i = 0; i < n; i++)
		EXPECT_TRUE(dm_page_is(self->buf + i * DM_PAGE_SIZE, i, i == 5 ? 7 : 1));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, NULL));
	for (i = 0; i < n; i++)
		EXPECT_TRUE(dm_page_is(self->out + i * DM_PAGE_SIZE, i, i == 5 ? 7 : 1));
}

/*
 * Mirror access to pages that sit on the caller's own device after their
 * mirror entries were invalidated: hmm_range_fault() reports such pages
 * without faulting them, and the driver must map their data (the backing
 * page), not the device page. The invalidations: another device's
 * migration over the range (nothing moves, the pages stay writable),
 * mprotect (they become read-only in place), fork (copy-on-write makes
 * them read-only). READ returns the data and the pages stay on the device;
 * WRITE to read-only ones fails with -EFAULT (the C driver's errno for
 * them, see round_trip()) and moves nothing; WRITE to writable ones lands
 * in what the CPU gets back. No CPU access until the checks at the end of
 * each part: a CPU access would fault the pages back.
 */
static void read_own_device_pages(struct __test_metadata *_metadata,
				  const struct trip *self, unsigned char want)
{
	unsigned long n = self->npages;
	uint64_t cpages;

	memset(self->out, 0, n * DM_PAGE_SIZE);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_READ, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check(self->out, n, 1));
	if (want == DM_DEV_RO) {
		dm_fill(self->out, n, 2);
		EXPECT_EQ(-EFAULT, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n,
					  NULL));
	}
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, want)) TH_LOG("pages moved (want %#x)", want);
}

TEST_F(contract, own_device_pages_after_invalidation)
{
	struct trip t = { self->fd, self->npages, self->buf, self->out, self->snap };
	unsigned long n = self->npages, i;
	uint64_t cpages;
	int status, fd1;
	pid_t pid;

	if (dm_driver_is_c())
		SKIP(return, DM_C_OOPS);
	fd1 = dm_open(1);
	ASSERT_GE(fd1, 0);

	/* Another device migrates the range: nothing moves, entries go. */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(n, cpages);
	EXPECT_EQ(-ENOENT, dm_cmd(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, NULL));
	read_own_device_pages(_metadata, &t, DM_DEV_RW);
	for (i = 0; i < n; i += 2)
		dm_fill_page(self->out + i * DM_PAGE_SIZE, i, 4);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_WRITE, self->buf, self->out, n, &cpages));
	EXPECT_EQ(n, cpages);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	EXPECT_EQ(n, dm_count(self->snap, n, DM_DEV_RW)) TH_LOG("the mirror WRITE moved pages");
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, self->buf, NULL, n, &cpages));
	EXPECT_EQ(n, cpages);
	EXPECT_EQ(-1, dm_check_alt(self->buf, n, 4, 1)) TH_LOG("after the mirror WRITE");

	/* mprotect: read-only in place. */
	dm_fill(self->buf, n, 1);
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ));
	ASSERT_EQ(0, mprotect(self->buf, n * DM_PAGE_SIZE, PROT_READ | PROT_WRITE));
	read_own_device_pages(_metadata, &t, DM_DEV_RO);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));

	/* fork: copy-on-write, read-only in both processes. */
	dm_fill(self->buf, n, 1);	/* writable system pages again */
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, self->buf, self->out, n, &cpages));
	ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, self->buf, self->snap, n, NULL));
	ASSERT_EQ(n, dm_count(self->snap, n, DM_DEV_RW));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	read_own_device_pages(_metadata, &t, DM_DEV_RO);
	EXPECT_EQ(-1, dm_check(self->buf, n, 1));
	close(fd1);
}

TEST_HARNESS_MAIN
