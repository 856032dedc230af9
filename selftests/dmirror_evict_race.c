// SPDX-License-Identifier: GPL-2.0
/*
 * Device eviction racing munmap(): the window of an mm bug
 * (docs/kernel-bugs.md). migrate_device_range(), which a driver uses to
 * evict its device memory without knowing which mms map it, holds neither an
 * mmap lock nor a reference on the anon_vma of the pages it unmaps, so a
 * munmap() between its try_to_migrate() and the remove_migration_ptes() of
 * migrate_device_finalize() can free the anon_vma that the rmap walk of the
 * latter then dereferences.
 *
 * Each round: an anonymous buffer with an anon_vma of its own, between
 * one-page regions with theirs (so that the slab page holding the buffer's
 * anon_vma can become empty and be freed), is migrated to device 0 together
 * with a 64 MiB ballast that keeps the eviction busy for seconds. Then the
 * main thread closes a second mirror of device 0 (the release of both
 * drivers evicts every device page with migrate_device_range()) while a
 * second thread unmaps the buffer 10-60 % into the eviction, and then the
 * one-page regions. The ballast must come back intact, and the kernel log
 * must stay clean. Each round prints when the munmap landed.
 *
 *   dmirror_evict_race [--rounds N] [--long] [--seed N]
 *
 * Default 20 rounds, 100 with --long; a round takes about 7 s on the debug
 * kernel under TCG, so it runs in make stress (selftests/expectations.txt).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define BUF_PAGES	16UL
#define BALLAST_PAGES	(64UL << 20 >> 12)	/* 64 MiB of 4 KiB pages */
#define NSMALL		256			/* one-page regions on each side */

static unsigned int opt_rounds = 20;
static unsigned int opt_seed;
static int opt_seed_set;

struct unmapper {
	pthread_barrier_t go;
	char *buf;
	char **small;
	unsigned int delay_us;
	unsigned long buf_unmapped_us;	/* the buffer unmapped, from the barrier */
	unsigned long unmapped_us;	/* all unmapped, from the barrier */
};

/* 'npages' anonymous pages with an anon_vma of their own: a hole on each side. */
static char *isolated_range(unsigned long npages)
{
	char *p = mmap(NULL, (npages + 2) * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	munmap(p, DM_PAGE_SIZE);
	munmap(p + (npages + 1) * DM_PAGE_SIZE, DM_PAGE_SIZE);
	madvise(p + DM_PAGE_SIZE, npages * DM_PAGE_SIZE, MADV_NOHUGEPAGE);
	p[DM_PAGE_SIZE] = 1;		/* anon_vma_prepare() */
	return p + DM_PAGE_SIZE;
}

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;
	struct timespec ts = {
		.tv_sec = u->delay_us / 1000000,
		.tv_nsec = (u->delay_us % 1000000) * 1000L,
	};
	unsigned long t0;

	pthread_barrier_wait(&u->go);
	t0 = dm_now_us();
	nanosleep(&ts, NULL);
	munmap(u->buf, BUF_PAGES * DM_PAGE_SIZE);
	u->buf_unmapped_us = dm_now_us() - t0;
	for (int i = 0; i < 2 * NSMALL; i++)
		munmap(u->small[i], DM_PAGE_SIZE);
	u->unmapped_us = dm_now_us() - t0;
	return NULL;
}

FIXTURE(race) {
};

FIXTURE_SETUP(race)
{
}

FIXTURE_TEARDOWN(race)
{
}

/*
 * The seed and each round also go to the kernel log (/dev/kmsg), next to an
 * Oops they may cause: a guest that hangs there never reports its TAP.
 */
static void __printf(1, 2) kmsg(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int fd, len;

	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	len = snprintf(line, sizeof(line), "dmirror_evict_race: ");
	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (len < (int)sizeof(line) - 1)
		line[len++] = '\n';
	if (write(fd, line, len) < 0)
		fprintf(stderr, "# /dev/kmsg: %s\n", strerror(errno));
	close(fd);
}

/* 100 rounds take about 12 min on the debug kernel under TCG. */
TEST_F_TIMEOUT(race, evict_vs_munmap, 1800)
{
	char *small[2 * NSMALL];
	unsigned int seed = opt_seed_set ? opt_seed :
		(unsigned int)time(NULL) ^ (unsigned int)getpid();
	unsigned long last_evict_us = 1000000;	/* a guess for the first round */
	char *ballast, *out;
	int fd;

	TH_LOG("seed %u (--seed %u replays it), %u rounds", seed, seed, opt_rounds);
	kmsg("seed %u (--seed replays it), %u rounds, driver %s", seed, opt_rounds,
	     getenv("HMM_DRIVER") ?: "?");
	fd = dm_open(0);
	if (fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	ballast = dm_map(BALLAST_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, ballast);
	out = malloc(BALLAST_PAGES * DM_PAGE_SIZE);
	ASSERT_NE(NULL, out);

	for (unsigned int r = 0; r < opt_rounds; r++) {
		struct unmapper u = { .small = small };
		pthread_t t;
		unsigned long t0, evict_us;
		uint64_t cpages;
		int fd2, i;

		for (i = 0; i < NSMALL; i++)
			ASSERT_NE(NULL, small[i] = isolated_range(1));
		ASSERT_NE(NULL, u.buf = isolated_range(BUF_PAGES));
		dm_fill(u.buf, BUF_PAGES, r);
		for (; i < 2 * NSMALL; i++)
			ASSERT_NE(NULL, small[i] = isolated_range(1));

		dm_fill(ballast, BALLAST_PAGES, r);
		ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, ballast, out,
				    BALLAST_PAGES, &cpages));
		ASSERT_EQ(BALLAST_PAGES, cpages);
		ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, u.buf, out,
				    BUF_PAGES, &cpages));
		ASSERT_EQ(BUF_PAGES, cpages);

		fd2 = dm_open(0);
		ASSERT_GE(fd2, 0);
		/*
		 * The munmap lands between 10 % and 60 % into the eviction (as
		 * long as the last one took): after migrate_device_range() has
		 * unmapped the buffer, well before migrate_device_finalize().
		 */
		u.delay_us = last_evict_us / 10 + rand_r(&seed) % (last_evict_us / 2 + 1);
		kmsg("round %u: munmap %u us into the eviction", r, u.delay_us);
		ASSERT_EQ(0, pthread_barrier_init(&u.go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&t, NULL, unmap_thread, &u));
		pthread_barrier_wait(&u.go);
		t0 = dm_now_us();
		/* The release evicts every device page of device 0. */
		close(fd2);
		evict_us = dm_now_us() - t0;
		last_evict_us = evict_us;
		pthread_join(t, NULL);
		pthread_barrier_destroy(&u.go);

		EXPECT_EQ(-1, dm_check(ballast, BALLAST_PAGES, r))
			TH_LOG("round %u (delay %u us): ballast corrupted", r, u.delay_us);
		TH_LOG("round %u: eviction %lu us; munmap of the buffer from %u to %lu us, of the rest until %lu us",
		       r, evict_us, u.delay_us, u.buf_unmapped_us, u.unmapped_us);
	}
	close(fd);
	munmap(ballast, BALLAST_PAGES * DM_PAGE_SIZE);
	free(out);
}

int main(int argc, char **argv)
{
	char *hargv[argc + 1];
	int hargc = 0;

	hargv[hargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--long")) {
			opt_rounds = 100;
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			opt_rounds = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			opt_seed = strtoul(argv[++i], NULL, 0);
			opt_seed_set = 1;
		} else {
			hargv[hargc++] = argv[i];
		}
	}
	hargv[hargc] = NULL;
	return test_harness_run(hargc, hargv);
}
