// SPDX-License-Identifier: GPL-2.0
/*
 * Device eviction racing the unmap of device-private THPs: the window of the
 * mm bug of docs/kernel-bugs.md, "zap_huge_pmd() puts a device-private folio
 * behind a migration entry" (patches/0003).
 *
 * The release of a mirror evicts every page of its device with
 * migrate_device_range() (both drivers). Its try_to_migrate() replaces the
 * PMD of a device-private THP with a migration entry and already drops the
 * folio's rmap and the mapping's reference (set_pmd_migration_entry()). A
 * munmap() of that range before migrate_device_finalize() zaps the
 * migration entry, and zap_huge_pmd() of Linux 7.3 treats it as a
 * device-private entry: it removes the rmap and puts the folio a second
 * time, the reference the eviction holds. The folio is freed under the
 * eviction, which copies from it next: "BUG: unable to handle page fault",
 * RIP copy_page <- folio_copy <- evict_chunk (the Rust port) or
 * dmirror_device_evict_chunk (lib/test_hmm.c).
 *
 * Each round: NUNMAP THPs (2 MiB, aligned) and NKEEP more are migrated to
 * device 0 through one mirror; then the main thread closes a second mirror of
 * device 0 (its release evicts the device) while a second thread unmaps the
 * NUNMAP THPs one by one, the first 0-2 ms into the close. The kept THPs must
 * come back intact, the kernel log must stay clean. On a kernel without the
 * fix this Oopses within a few rounds, so the test command leaves it out
 * (selftests/expectations.txt) and make stress runs it; make repro shows the
 * bug with the hmm-tests cases of patches/0008.
 *
 *   dmirror_zap_race [--rounds N] [--seed N]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define NUNMAP		8
#define NKEEP		8
#define THP_PAGES	(DM_TWOMEG / DM_PAGE_SIZE)

static unsigned int opt_rounds = 20;
static unsigned int opt_seed;
static int opt_seed_set;

struct unmapper {
	pthread_barrier_t go;
	char *thp[NUNMAP];
	unsigned int delay_us;
	int failed;
	unsigned long done_us[NUNMAP];	/* when each munmap() returned */
};

static void *unmap_thps(void *arg)
{
	struct unmapper *u = arg;

	pthread_barrier_wait(&u->go);
	usleep(u->delay_us);
	for (int i = 0; i < NUNMAP; i++) {
		if (munmap(u->thp[i], DM_TWOMEG))
			u->failed = errno;
		u->done_us[i] = dm_now_us();
		usleep(100);
	}
	return NULL;
}

/*
 * Maps, fills and migrates one THP to the device of 'fd' ('out' takes the
 * driver's read-back); NULL on failure.
 */
static char *device_thp(int fd, unsigned long gen, char *out)
{
	char *p = dm_map_aligned(DM_TWOMEG, MADV_HUGEPAGE);
	uint64_t cpages = 0;

	if (!p)
		return NULL;
	dm_fill(p, THP_PAGES, gen);
	if (dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, THP_PAGES, &cpages) ||
	    cpages != THP_PAGES || dm_check(out, THP_PAGES, gen) >= 0) {
		munmap(p, DM_TWOMEG);
		return NULL;
	}
	return p;
}

FIXTURE(zap)
{
	int fd;
};

FIXTURE_SETUP(zap)
{
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (module not loaded?)", strerror(errno));
	if (!opt_seed_set)
		opt_seed = time(NULL);
	srandom(opt_seed);
}

FIXTURE_TEARDOWN(zap)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F_TIMEOUT(zap, unmap_thps_during_eviction, 1200)
{
	unsigned long kept_bad = 0, unmap_failed = 0, inside = 0;
	char *out = dm_map(THP_PAGES, PROT_READ | PROT_WRITE, 0);

	ASSERT_NE(NULL, out);

	TH_LOG("%u rounds, seed %u (--seed to repeat)", opt_rounds, opt_seed);
	for (unsigned int r = 0; r < opt_rounds; r++) {
		struct unmapper u = { .delay_us = random() % 2000 };
		char *keep[NKEEP];
		unsigned long gen = 0x5a000 + r * 64;
		unsigned long t0, t1;
		pthread_t t;
		int evict_fd = dm_open(0);

		ASSERT_LE(0, evict_fd);
		for (int i = 0; i < NUNMAP; i++) {
			u.thp[i] = device_thp(self->fd, gen + i, out);
			ASSERT_NE(NULL, u.thp[i]) TH_LOG("round %u: THP %d not migrated", r, i);
		}
		for (int i = 0; i < NKEEP; i++) {
			keep[i] = device_thp(self->fd, gen + NUNMAP + i, out);
			ASSERT_NE(NULL, keep[i]) TH_LOG("round %u: kept THP %d not migrated", r, i);
		}
		ASSERT_EQ(0, pthread_barrier_init(&u.go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&t, NULL, unmap_thps, &u));
		pthread_barrier_wait(&u.go);
		/* The last close of evict_fd: its release evicts device 0. */
		t0 = dm_now_us();
		close(evict_fd);
		t1 = dm_now_us();
		ASSERT_EQ(0, pthread_join(t, NULL));
		pthread_barrier_destroy(&u.go);
		unmap_failed += u.failed != 0;
		/* A munmap() that returned while the close ran can hit the window. */
		for (int i = 0; i < NUNMAP; i++)
			inside += u.done_us[i] > t0 && u.done_us[i] < t1;
		for (int i = 0; i < NKEEP; i++) {
			long bad = dm_check(keep[i], THP_PAGES, gen + NUNMAP + i);

			if (bad >= 0)
				TH_LOG("round %u: kept THP %d: page %ld has wrong data", r, i, bad);
			kept_bad += bad >= 0;
			munmap(keep[i], DM_TWOMEG);
		}
	}
	munmap(out, THP_PAGES * DM_PAGE_SIZE);
	TH_LOG("%lu of %u munmap()s returned while the eviction ran", inside,
	       opt_rounds * NUNMAP);
	EXPECT_EQ(0UL, unmap_failed);
	EXPECT_EQ(0UL, kept_bad);
}

int main(int argc, char **argv)
{
	char *hargv[argc + 1];
	int hargc = 0;

	hargv[hargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			opt_rounds = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			opt_seed = strtoul(argv[++i], NULL, 0);
			opt_seed_set = 1;
		} else
			hargv[hargc++] = argv[i];
	}
	hargv[hargc] = NULL;
	return test_harness_run(hargc, hargv);
}
