// SPDX-License-Identifier: GPL-2.0
/*
 * Races, for a bounded time and a printed seed (DMIRROR_SEED=n replays the
 * choices; the interleaving is the scheduler's): threads migrate overlapping
 * ranges to /dev/hmm_dmirror0 and 1 and back, read and write through the
 * mirrors, touch pages from the CPU (faulting them back), while another
 * thread mprotects, munmaps and remaps part of the range. Each page carries
 * its index and a generation; lost or corrupted data fails, errors of
 * ioctls that race with munmap do not. A watchdog fails a hang.
 *
 * Zone A (stable, always mapped read-write): page i is written only by
 * owner i % NOWNERS, which knows its generation. Zone B: chunks the chaos
 * thread owns, mprotects and replaces. Mirror accesses (READ/WRITE) exclude
 * migrations and CPU faults with a user-space rwlock: lib/test_hmm.c copies
 * device pages back to RAM (migrate_to_ram, MIGRATE_TO_SYS) and to the device
 * without its mirror mutex, so a concurrent mirror access of the same device
 * can read a page being freed or lose a write; that is outside the contract
 * tested here. For the same reason a CPU access (which may fault a page
 * of device d back to RAM) excludes MIGRATE_TO_DEV on device d, whose
 * read-back copies from the mirror while the fault frees the page (a
 * use-after-free of both drivers, found by race.free_mirror_reads: see
 * there). Migrations to and from both devices, CPU faults against
 * MIGRATE_TO_SYS and the other device's migrations, mprotect and munmap
 * race freely.
 * A mirror access also never goes through the fd of a device that holds a
 * page of its range (SNAPSHOT decides, under the lock): lib/test_hmm.c
 * stores such a page itself when hmm_range_fault() reports it and then
 * copies from the device page, an Oops (see selftests/expectations.txt).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"
#include "dmirror_test_hooks.h"

#define TOTAL		512		/* pages: 2 MiB */
#define ZONE_B		384		/* first page of zone B */
#define CHUNK		32		/* zone B chunk, in pages */
#define NCHUNKS		((TOTAL - ZONE_B) / CHUNK)
#define NOWNERS		2
#define RUN_SECONDS	4
#define WATCHDOG_SECONDS 25

struct race;

struct worker {
	struct race *r;
	pthread_t thread;
	int id;
	unsigned int seed;
	const char *last;	/* for the watchdog */
	unsigned long ops, errs;
};

struct race {
	char *base;
	int fd[2];
	pthread_rwlock_t mirror_lock;
	pthread_rwlock_t fault_lock[2];	/* CPU accesses vs MIGRATE_TO_DEV, per device */
	atomic_int stop;
	atomic_ulong migrated[2];	/* successful MIGRATE_TO_DEV per device */
	atomic_ulong failures;
	pthread_mutex_t msg_lock;
	char msg[256];
	unsigned long gen[TOTAL];	/* zone A: the owner's view */
	unsigned long chunk_gen[NCHUNKS];
	int chunk_state[NCHUNKS];	/* 0 mapped rw, 1 mapped ro, 2 unmapped */
	struct worker w[8];
	int nworkers;
	int free_reads;		/* mode of race.free_mirror_reads */
};

static struct race *watched;

static void fail(struct race *r, const char *fmt, long a, long b, long c)
{
	if (atomic_fetch_add(&r->failures, 1) == 0) {
		pthread_mutex_lock(&r->msg_lock);
		snprintf(r->msg, sizeof(r->msg), fmt, a, b, c);
		pthread_mutex_unlock(&r->msg_lock);
	}
}

static char *page(struct race *r, unsigned long i)
{
	return r->base + i * DM_PAGE_SIZE;
}

/* A CPU access: excludes MIGRATE_TO_DEV of either device (not in free mode). */
static void cpu_begin(struct race *r)
{
	pthread_rwlock_rdlock(&r->mirror_lock);
	if (!r->free_reads) {
		pthread_rwlock_rdlock(&r->fault_lock[0]);
		pthread_rwlock_rdlock(&r->fault_lock[1]);
	}
}

static void cpu_end(struct race *r)
{
	if (!r->free_reads) {
		pthread_rwlock_unlock(&r->fault_lock[1]);
		pthread_rwlock_unlock(&r->fault_lock[0]);
	}
	pthread_rwlock_unlock(&r->mirror_lock);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long rnd(struct worker *w, unsigned long n)
{
	return rand_r(&w->seed) % n;
}

/* Errors a racing ioctl may return; anything else is a failure. */
static int acceptable(int ret)
{
	return ret == 0 || ret == -EFAULT || ret == -ENOENT || ret == -EBUSY ||
	       ret == -EINVAL || ret == -EPERM;
}

/*
 * Under the exclusive mirror_lock: the index of a device none of whose pages
 * is in the range, or -1. A SNAPSHOT through fd[d] reports device d's pages
 * as DEV_PRIVATE_LOCAL; another device's private pages are reported as not
 * present (hmm_range_fault() does not return them), so each device is asked.
 */
static int pick_dev(struct race *r, unsigned long start, unsigned long n,
		    unsigned char *snap)
{
	for (int d = 0; d < 2; d++) {
		int local = 0;

		if (dm_cmd(r->fd[d], HMM_DMIRROR_SNAPSHOT, page(r, start), snap, n, NULL))
			continue;
		for (unsigned long i = 0; i < n; i++)
			local |= (snap[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
		if (!local)
			return d;
	}
	return -1;
}

static void *owner(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	char *tmp = malloc(DM_PAGE_SIZE);
	unsigned char snap[1];

	while (!atomic_load(&r->stop)) {
		unsigned long i = rnd(w, ZONE_B / NOWNERS) * NOWNERS + w->id;
		int d = rnd(w, 2), ret;

		switch (rnd(w, 3)) {
		case 0:	/* CPU write, CPU check */
			w->last = "zone A cpu write";
			cpu_begin(r);
			dm_fill_page(page(r, i), i, ++r->gen[i]);
			if (!dm_page_is(page(r, i), i, r->gen[i]))
				fail(r, "page %ld: CPU write of gen %ld lost (word0 %ld)",
				     i, r->gen[i], *(uint64_t *)page(r, i));
			cpu_end(r);
			break;
		case 1:	/* mirror write, mirror read back */
			w->last = "zone A mirror write";
			pthread_rwlock_wrlock(&r->mirror_lock);
			d = pick_dev(r, i, 1, snap);
			if (d < 0) {
				pthread_rwlock_unlock(&r->mirror_lock);
				break;
			}
			dm_fill_page(tmp, i, r->gen[i] + 1);
			ret = dm_cmd(r->fd[d], HMM_DMIRROR_WRITE, page(r, i), tmp, 1, NULL);
			if (ret == 0)
				r->gen[i]++;
			else if (ret != -EBUSY)
				fail(r, "page %ld: mirror WRITE on dev %ld: %ld", i, d, ret);
			memset(tmp, 0, DM_PAGE_SIZE);
			ret = dm_cmd(r->fd[d], HMM_DMIRROR_READ, page(r, i), tmp, 1, NULL);
			if (ret == 0 && !dm_page_is(tmp, i, r->gen[i]))
				fail(r, "page %ld: mirror read gen %ld, want %ld",
				     i, *(uint64_t *)(tmp + 8), r->gen[i]);
			else if (ret && ret != -EBUSY)
				fail(r, "page %ld: mirror READ: %ld", i, ret, 0);
			pthread_rwlock_unlock(&r->mirror_lock);
			break;
		default: /* CPU check */
			w->last = "zone A cpu check";
			cpu_begin(r);
			if (!dm_page_is(page(r, i), i, r->gen[i]))
				fail(r, "page %ld: CPU reads gen %ld, want %ld",
				     i, *(uint64_t *)(page(r, i) + 8), r->gen[i]);
			cpu_end(r);
		}
		w->ops++;
	}
	free(tmp);
	return NULL;
}

static void *migrator(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	int d = w->id;
	char *out = malloc(128 * DM_PAGE_SIZE);

	while (!atomic_load(&r->stop)) {
		unsigned long start = rnd(w, TOTAL);
		unsigned long n = 1 + rnd(w, 128);
		int to_dev = rnd(w, 3) != 0, ret;

		if (start + n > TOTAL)
			n = TOTAL - start;
		w->last = to_dev ? "migrate to dev" : "migrate to sys";
		pthread_rwlock_rdlock(&r->mirror_lock);
		if (to_dev && !r->free_reads)
			pthread_rwlock_wrlock(&r->fault_lock[d]);
		ret = dm_cmd(r->fd[d], to_dev ? HMM_DMIRROR_MIGRATE_TO_DEV :
			     HMM_DMIRROR_MIGRATE_TO_SYS, page(r, start), out, n, NULL);
		if (to_dev && !r->free_reads)
			pthread_rwlock_unlock(&r->fault_lock[d]);
		pthread_rwlock_unlock(&r->mirror_lock);
		if (!acceptable(ret))
			fail(r, "migrate dev %ld at page %ld: %ld", d, start, ret);
		if (ret == 0 && to_dev)
			atomic_fetch_add(&r->migrated[d], 1);
		w->errs += ret != 0;
		w->ops++;
	}
	free(out);
	return NULL;
}

/* Mirror READs of random ranges, each page checked for self-consistency. */
static void *reader(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	char *out = malloc(16 * DM_PAGE_SIZE);
	unsigned char snap[16];

	while (!atomic_load(&r->stop)) {
		unsigned long start = rnd(w, TOTAL), n = 1 + rnd(w, 16), i;
		int d, ret;

		if (start + n > TOTAL)
			n = TOTAL - start;
		w->last = "mirror read";
		pthread_rwlock_wrlock(&r->mirror_lock);
		d = pick_dev(r, start, n, snap);
		if (d < 0) {
			pthread_rwlock_unlock(&r->mirror_lock);
			w->ops++;
			continue;
		}
		ret = dm_cmd(r->fd[d], HMM_DMIRROR_READ, page(r, start), out, n, NULL);
		if (ret == 0) {
			for (i = 0; i < n; i++) {
				unsigned long p = start + i;
				char *o = out + i * DM_PAGE_SIZE;

				if (p < ZONE_B ? !dm_page_is(o, p, r->gen[p]) :
				    !dm_page_is_zero(o) && !dm_page_is(o, p, ((uint64_t *)o)[1]))
					fail(r, "mirror read page %ld: gen %ld word0 %ld",
					     p, ((uint64_t *)o)[1], ((uint64_t *)o)[0]);
			}
		}
		pthread_rwlock_unlock(&r->mirror_lock);
		if (!acceptable(ret))
			fail(r, "mirror READ dev %ld at page %ld: %ld", d, start, ret);
		w->errs += ret != 0;
		w->ops++;
	}
	free(out);
	return NULL;
}

/* Verify a zone B chunk if it is mapped (CPU reads fault pages back). */
static void check_chunk(struct race *r, int c)
{
	unsigned long first = ZONE_B + c * CHUNK;

	if (r->chunk_state[c] == 2)
		return;
	cpu_begin(r);
	for (unsigned long i = first; i < first + CHUNK; i++)
		if (!dm_page_is(page(r, i), i, r->chunk_gen[c]))
			fail(r, "zone B page %ld: gen %ld, want %ld",
			     i, *(uint64_t *)(page(r, i) + 8), r->chunk_gen[c]);
	cpu_end(r);
}

/*
 * free_mirror_reads mode: nothing writes, so every page holds (index, 0)
 * for good. Mirror READs through either device, wherever the pages are
 * (on that device, the other one or in RAM), race with the migrations,
 * the CPU faults and mprotect, without the mirror_lock.
 */
static void *free_reader(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	char *out = malloc(16 * DM_PAGE_SIZE);

	while (!atomic_load(&r->stop)) {
		unsigned long start = rnd(w, TOTAL), n = 1 + rnd(w, 16), i;
		int d = rnd(w, 2), ret;

		if (start + n > TOTAL)
			n = TOTAL - start;
		w->last = "free mirror read";
		memset(out, 0xee, n * DM_PAGE_SIZE);
		ret = dm_cmd(r->fd[d], HMM_DMIRROR_READ, page(r, start), out, n, NULL);
		for (i = 0; ret == 0 && i < n; i++) {
			const uint64_t *o = (const uint64_t *)(out + i * DM_PAGE_SIZE);
			unsigned long wd = 0;

			while (wd < DM_PAGE_SIZE / 8 && o[wd] == dm_word(start + i, 0, wd))
				wd++;
			if (wd < DM_PAGE_SIZE / 8)
				fail(r, "free READ dev %ld page %ld: word %ld is wrong",
				     d, start + i, wd);
		}
		if (ret && ret != -EBUSY)
			fail(r, "free READ dev %ld at page %ld: %ld", d, start, ret);
		w->errs += ret != 0;
		w->ops++;
	}
	free(out);
	return NULL;
}

/* free_mirror_reads mode: CPU reads of random pages, faulting them back. */
static void *toucher(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;

	while (!atomic_load(&r->stop)) {
		unsigned long i = rnd(w, TOTAL);

		w->last = "cpu read";
		if (!dm_page_is(page(r, i), i, 0))
			fail(r, "CPU read of page %ld: holds page %ld gen %ld",
			     i, *(uint64_t *)page(r, i), *(uint64_t *)(page(r, i) + 8));
		w->ops++;
	}
	return NULL;
}

static void *chaos(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;

	while (!atomic_load(&r->stop)) {
		int c = rnd(w, NCHUNKS);
		char *p = page(r, ZONE_B + c * CHUNK);
		size_t len = CHUNK * DM_PAGE_SIZE;

		check_chunk(r, c);
		switch (r->chunk_state[c]) {
		case 0:
			if (r->free_reads || rnd(w, 2)) {
				w->last = "mprotect ro";
				if (mprotect(p, len, PROT_READ))
					fail(r, "mprotect ro chunk %ld: %ld", c, errno, 0);
				r->chunk_state[c] = 1;
			} else {
				w->last = "munmap";
				if (munmap(p, len))
					fail(r, "munmap chunk %ld: %ld", c, errno, 0);
				r->chunk_state[c] = 2;
			}
			break;
		case 1:
			w->last = "mprotect rw";
			if (mprotect(p, len, PROT_READ | PROT_WRITE))
				fail(r, "mprotect rw chunk %ld: %ld", c, errno, 0);
			r->chunk_state[c] = 0;
			break;
		default:
			w->last = "remap";
			if (mmap(p, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
				fail(r, "remap chunk %ld: %ld", c, errno, 0);
			r->chunk_gen[c]++;
			cpu_begin(r);
			for (unsigned long i = 0; i < CHUNK; i++)
				dm_fill_page(p + i * DM_PAGE_SIZE, ZONE_B + c * CHUNK + i,
					     r->chunk_gen[c]);
			cpu_end(r);
			r->chunk_state[c] = 0;
		}
		check_chunk(r, c);
		w->ops++;
		usleep(1000);
	}
	return NULL;
}

static void watchdog_fired(int sig)
{
	char line[160];
	int len;

	for (int i = 0; watched && i < watched->nworkers; i++) {
		len = snprintf(line, sizeof(line), "# watchdog: worker %d stuck in '%s'\n",
			       i, watched->w[i].last ? watched->w[i].last : "?");
		if (write(2, line, len) < 0)
			break;
	}
	_exit(KSFT_FAIL);
}

/* Every mapped page holds the generation its writer last gave it. */
static void verify_all(struct __test_metadata *_metadata, struct race *r,
		       const char *when)
{
	unsigned long i, want = 0;
	long bad = -1;

	for (i = 0; i < TOTAL && bad < 0; i++) {
		int c = (i - ZONE_B) / CHUNK;

		if (i >= ZONE_B && r->chunk_state[c] == 2)
			continue;
		want = i < ZONE_B ? r->gen[i] : r->chunk_gen[c];
		if (!dm_page_is(page(r, i), i, want))
			bad = i;
	}
	EXPECT_EQ(-1, bad) TH_LOG("%s: page %ld holds page %lu gen %lu, want gen %lu", when,
				  bad, *(uint64_t *)page(r, bad), *(uint64_t *)(page(r, bad) + 8),
				  want);
}

/*
 * The driver exposes no page counter: the pages of the device behind fd in
 * the whole range, from SNAPSHOT (unmapped chunks read as errors).
 */
static unsigned long device_pages(struct __test_metadata *_metadata, int fd,
				  struct race *r)
{
	static unsigned char snap[TOTAL];
	unsigned long n = 0;

	EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, r->base, snap, TOTAL, NULL));
	for (unsigned long i = 0; i < TOTAL; i++)
		n += (snap[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
	return n;
}

static void run_race(struct __test_metadata *_metadata, int huge, int free_reads)
{
	static void *(*const modes[2][6])(void *) = {
		{ owner, owner, migrator, migrator, reader, chaos, },
		{ free_reader, free_reader, migrator, migrator, toucher, chaos, },
	};
	void *(*const *fns)(void *);
	static const int ids[] = { 0, 1, 0, 1, 0, 0 };
	struct race *r = calloc(1, sizeof(*r));
	const char *env = getenv("DMIRROR_SEED");
	unsigned int seed = env ? strtoul(env, NULL, 0) : (unsigned int)time(NULL) ^ getpid();
	pthread_rwlockattr_t attr;
	unsigned long i;
	char *out;
	int c;

	ASSERT_NE(NULL, r);
	fns = modes[free_reads];
	r->free_reads = free_reads;
	TH_LOG("seed %u (DMIRROR_SEED=%u replays it)", seed, seed);
	r->fd[0] = dm_open(0);
	if (r->fd[0] < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	r->fd[1] = dm_open(1);
	ASSERT_GE(r->fd[1], 0);
	r->base = huge ? dm_map_aligned(TOTAL * DM_PAGE_SIZE, MADV_HUGEPAGE) :
			 dm_map(TOTAL, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, r->base);
	/* Writer-preferring: mirror accesses are not starved by migrations. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->mirror_lock, &attr);
	pthread_rwlock_init(&r->fault_lock[0], &attr);
	pthread_rwlock_init(&r->fault_lock[1], &attr);
	pthread_mutex_init(&r->msg_lock, NULL);
	for (i = 0; i < TOTAL; i++)
		dm_fill_page(page(r, i), i, 0);

	watched = r;
	signal(SIGALRM, watchdog_fired);
	alarm(WATCHDOG_SECONDS);
	r->nworkers = ARRAY_SIZE(ids);
	for (i = 0; i < ARRAY_SIZE(ids); i++) {
		r->w[i].r = r;
		r->w[i].id = ids[i];
		r->w[i].seed = seed + i * 7919;
		ASSERT_EQ(0, pthread_create(&r->w[i].thread, NULL, fns[i], &r->w[i]));
	}
	sleep(RUN_SECONDS);
	atomic_store(&r->stop, 1);
	for (i = 0; i < ARRAY_SIZE(ids); i++)
		pthread_join(r->w[i].thread, NULL);

	for (i = 0; i < ARRAY_SIZE(ids); i++)
		TH_LOG("worker %lu: %lu ops, %lu errors", i, r->w[i].ops, r->w[i].errs);
	TH_LOG("successful migrations to dev0 %lu, dev1 %lu",
	       atomic_load(&r->migrated[0]), atomic_load(&r->migrated[1]));
	EXPECT_EQ(0UL, atomic_load(&r->failures)) TH_LOG("first failure: %s", r->msg);
	/*
	 * A MIGRATE_TO_DEV counts when every page of its range ended on its
	 * device. With two devices taking the same pages from each other, one
	 * of them can lose every such race on a slow (debug, TCG) guest: its
	 * partial migrations still ran, so only the sum must be non-zero.
	 */
	EXPECT_GT(atomic_load(&r->migrated[0]) + atomic_load(&r->migrated[1]), 0UL);
	for (i = 0; i < ARRAY_SIZE(ids) && r->w[i].ops; i++)
		;
	EXPECT_EQ(ARRAY_SIZE(ids), i) TH_LOG("worker %lu made no progress", i);

	/*
	 * Explicitly back, before any CPU access (which would fault the pages
	 * back itself): no page of either device is left anywhere.
	 */
	TH_LOG("device pages after the race: dev0 %lu, dev1 %lu",
	       device_pages(_metadata, r->fd[0], r), device_pages(_metadata, r->fd[1], r));
	for (int d = 0; d < 2; d++) {
		ASSERT_EQ(0, dm_cmd(r->fd[d], HMM_DMIRROR_MIGRATE_TO_SYS, r->base, NULL,
				    ZONE_B, NULL));
		for (c = 0; c < NCHUNKS; c++)
			if (r->chunk_state[c] != 2)
				ASSERT_EQ(0, dm_cmd(r->fd[d], HMM_DMIRROR_MIGRATE_TO_SYS,
						    page(r, ZONE_B + c * CHUNK), NULL, CHUNK,
						    NULL));
	}
	for (int d = 0; d < 2; d++) {
		EXPECT_EQ(0UL, device_pages(_metadata, r->fd[d], r))
			TH_LOG("device %d pages left after MIGRATE_TO_SYS", d);
	}
	verify_all(_metadata, r, "after the race and MIGRATE_TO_SYS");

	/* Half of zone A on each device, then close: release evicts them. */
	out = malloc(ZONE_B / 2 * DM_PAGE_SIZE);
	ASSERT_NE(NULL, out);
	for (int d = 0; d < 2; d++) {
		char *half = page(r, d * ZONE_B / 2);

		ASSERT_EQ(0, dm_cmd(r->fd[d], HMM_DMIRROR_MIGRATE_TO_DEV, half, out,
				    ZONE_B / 2, NULL));
		for (i = 0; i < ZONE_B / 2; i++)
			if (!dm_page_is(out + i * DM_PAGE_SIZE, d * ZONE_B / 2 + i,
					r->gen[d * ZONE_B / 2 + i]))
				break;
		EXPECT_EQ(ZONE_B / 2UL, i) TH_LOG("device %d: read-back of page %lu", d, i);
		EXPECT_EQ(ZONE_B / 2UL, device_pages(_metadata, r->fd[d], r));
	}
	free(out);
	for (int d = 0; d < 2; d++) {
		ASSERT_EQ(0, close(r->fd[d]));
		r->fd[d] = dm_open(d);
		ASSERT_GE(r->fd[d], 0);
	}
	for (int d = 0; d < 2; d++) {
		EXPECT_EQ(0UL, device_pages(_metadata, r->fd[d], r))
			TH_LOG("device %d pages left after close", d);
	}
	verify_all(_metadata, r, "after close");
	close(r->fd[0]);
	close(r->fd[1]);
	alarm(0);
	watched = NULL;
	munmap(r->base, TOTAL * DM_PAGE_SIZE);
	free(r);
}

FIXTURE(race) {};
FIXTURE_SETUP(race) {}
FIXTURE_TEARDOWN(race) {}

TEST_F_TIMEOUT(race, small_pages, 60)
{
	run_race(_metadata, 0, 0);
}

TEST_F_TIMEOUT(race, thp, 60)
{
	run_race(_metadata, 1, 0);
}

/*
 * Mirror READs with no exclusion at all, through the device that holds
 * the pages too. Skipped on the C driver: a READ through the device that
 * holds a page whose mirror entry was invalidated Oopses it (and the
 * use-after-free of race.readback_vs_cpu_fault is possible here too).
 */
TEST_F_TIMEOUT(race, free_mirror_reads, 60)
{
	if (dm_driver_is_c())
		SKIP(return, DM_C_OOPS);
	run_race(_metadata, 0, 1);
}

/*
 * The use-after-free race.free_mirror_reads can hit, alone and as often as
 * possible: MIGRATE_TO_DEV's read-back copies the new device pages' data
 * from the mirror while another thread's CPU reads fault the same pages back
 * to RAM, which frees that data (the migration back of one's own device
 * skips the mirror's invalidation and erases the entry without the mirror
 * lock). A DEBUG_PAGEALLOC kernel Oopses on it; elsewhere a wrong read-back
 * fails. Nothing writes: every page holds (index, 1). lib/test_hmm.c has
 * the same bug (measured: Oops in dmirror_do_read() on the debug kernel),
 * so the test is skipped there.
 */
#define DM_C_UAF \
	"lib/test_hmm.c Oopses here (debug kernel): dmirror_do_read() copies a " \
	"backing page that migrate_to_ram frees, the entry being erased without " \
	"the mirror mutex (selftests/expectations.txt)"

#define HAMMER_PAGES	64

struct hammer {
	char *buf;
	atomic_int stop;
	unsigned long faults;
};

static void *hammer_cpu(void *arg)
{
	struct hammer *h = arg;
	unsigned int seed = 1;
	long bad = -1;

	while (!atomic_load(&h->stop) && bad < 0) {
		unsigned long i = rand_r(&seed) % HAMMER_PAGES;

		if (!dm_page_is(h->buf + i * DM_PAGE_SIZE, i, 1))
			bad = i;
		h->faults++;
	}
	return (void *)bad;
}

TEST_F_TIMEOUT(race, readback_vs_cpu_fault, 60)
{
	struct hammer h = { 0 };
	char *out = malloc(HAMMER_PAGES * DM_PAGE_SIZE);
	unsigned long calls = 0, ok = 0;
	long bad_out = -1;
	pthread_t t;
	void *bad;
	double end;
	int fd;

	if (dm_driver_is_c())
		SKIP(return, DM_C_UAF);
	fd = dm_open(0);
	ASSERT_GE(fd, 0);
	ASSERT_NE(NULL, out);
	h.buf = dm_map(HAMMER_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, h.buf);
	dm_fill(h.buf, HAMMER_PAGES, 1);
	ASSERT_EQ(0, pthread_create(&t, NULL, hammer_cpu, &h));
	end = now_s() + RUN_SECONDS;
	while (now_s() < end && bad_out < 0) {
		int ret = dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, h.buf, out, HAMMER_PAGES, NULL);

		EXPECT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("MIGRATE_TO_DEV: %d", ret);
		calls++;
		if (ret == 0) {
			ok++;
			bad_out = dm_check(out, HAMMER_PAGES, 1);
		}
	}
	atomic_store(&h.stop, 1);
	pthread_join(t, &bad);
	TH_LOG("%lu MIGRATE_TO_DEV (%lu complete read-backs), %lu CPU reads",
	       calls, ok, h.faults);
	EXPECT_EQ(-1, bad_out) TH_LOG("read-back of page %ld is wrong", bad_out);
	EXPECT_EQ(-1, (long)bad) TH_LOG("the CPU read page %ld wrong", (long)bad);
	EXPECT_EQ(-1, dm_check(h.buf, HAMMER_PAGES, 1));
	close(fd);
	munmap(h.buf, HAMMER_PAGES * DM_PAGE_SIZE);
	free(out);
}

/*
 * A zap racing MIGRATE_TO_DEV between migrate_vma_pages() and finalize: a
 * second thread MADV_DONTNEEDs random pages of the window while it migrates.
 * A zapped migration entry leaves the new device page unmapped, and finalize
 * frees it; a mirror entry stored for it from the dst array (what
 * lib/test_hmm.c does, before finalize and without a check) outlives the
 * page. The Rust module maps from the dst array only
 * when no invalidation but its own migration's reached the mirror since
 * before the setup. After each round the mirror must agree with the CPU:
 * a READ through it (table first, faults for the rest) and the CPU view of
 * every page, zero where a zap landed, must be the same bytes.
 */
#define DM_C_ZAP \
	"lib/test_hmm.c maps the new pages from the dst array before finalize " \
	"without checking for a zap in between: a stale entry to a freed page " \
	"(selftests/expectations.txt)"

#define ZAP_PAGES	512

struct zapper {
	char *buf;
	pthread_barrier_t start, done;
	atomic_int halt, stop;
	unsigned long zaps;
};

/* Zaps random pages from each start until halt, then waits at done. */
static void *zap_loop(void *arg)
{
	struct zapper *z = arg;
	unsigned int seed = 7;

	for (;;) {
		pthread_barrier_wait(&z->start);
		if (atomic_load(&z->stop))
			return NULL;
		while (!atomic_load(&z->halt)) {
			madvise(z->buf + (rand_r(&seed) % ZAP_PAGES) * DM_PAGE_SIZE,
				DM_PAGE_SIZE, MADV_DONTNEED);
			z->zaps++;
		}
		pthread_barrier_wait(&z->done);
	}
}

TEST_F_TIMEOUT(race, zap_vs_migrate_to_dev, 60)
{
	struct zapper z = { 0 };
	char *out = malloc(ZAP_PAGES * DM_PAGE_SIZE);
	unsigned long rounds = 0, gen = 1;
	long bad = -1;
	pthread_t t;
	double end;
	int fd;

	if (dm_driver_is_c())
		SKIP(return, DM_C_ZAP);
	fd = dm_open(0);
	ASSERT_GE(fd, 0);
	ASSERT_NE(NULL, out);
	z.buf = dm_map(ZAP_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, z.buf);
	ASSERT_EQ(0, pthread_barrier_init(&z.start, NULL, 2));
	ASSERT_EQ(0, pthread_barrier_init(&z.done, NULL, 2));
	ASSERT_EQ(0, pthread_create(&t, NULL, zap_loop, &z));
	end = now_s() + RUN_SECONDS;
	while (now_s() < end && bad < 0) {
		unsigned long i;
		int ret;

		dm_fill(z.buf, ZAP_PAGES, ++gen);
		atomic_store(&z.halt, 0);
		pthread_barrier_wait(&z.start);
		ret = dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, z.buf, out, ZAP_PAGES, NULL);
		EXPECT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("MIGRATE_TO_DEV: %d", ret);
		atomic_store(&z.halt, 1);
		pthread_barrier_wait(&z.done);
		ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_READ, z.buf, out, ZAP_PAGES, NULL));
		for (i = 0; i < ZAP_PAGES && bad < 0; i++)
			if (memcmp(out + i * DM_PAGE_SIZE, z.buf + i * DM_PAGE_SIZE,
				   DM_PAGE_SIZE))
				bad = i;
		rounds++;
	}
	atomic_store(&z.stop, 1);
	pthread_barrier_wait(&z.start);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&z.start);
	pthread_barrier_destroy(&z.done);
	TH_LOG("%lu rounds, %lu zaps", rounds, z.zaps);
	EXPECT_EQ(-1, bad) TH_LOG("round %lu: the mirror and the CPU disagree on page %ld",
				  rounds, bad);
	EXPECT_LT(0UL, rounds);
	close(fd);
	munmap(z.buf, ZAP_PAGES * DM_PAGE_SIZE);
	free(out);
}

/*
 * Device page allocation racing the eviction of a close: a thread migrates
 * a 2 MiB buffer (a THP when it can be one) to device 0 and back, so that
 * every MIGRATE_TO_DEV allocates device pages, while the main thread opens
 * and closes another mirror of device 0: each close evicts every device
 * page with migrate_device_range(), which takes any page whose refcount is
 * not 0 and trylocks it. zone_device_folio_init() gives a new page its
 * reference before it locks it, so the eviction can lock a page that is
 * being allocated; a driver that stores the page's backing pointer only
 * after the init (as lib/test_hmm.c does) would have the eviction copy
 * from whatever the field held before, the free-list link to another
 * device page (an Oops in copy_page(); the zap_huge_pmd() kernel bug of
 * docs/kernel-bugs.md Oopses with the same signature whatever the order).
 * The window is a few instructions wide,
 * so a clean run proves little; the data must come back intact anyway.
 */
struct allocator {
	char *buf, *out;
	int fd;
	atomic_int stop;
	unsigned long rounds, errs;
	long bad;
};

#define ALLOC_PAGES	512

static void *alloc_loop(void *arg)
{
	struct allocator *a = arg;

	while (!atomic_load(&a->stop) && a->bad < 0) {
		int ret = dm_cmd(a->fd, HMM_DMIRROR_MIGRATE_TO_DEV, a->buf,
				 a->out, ALLOC_PAGES, NULL);

		if (ret && ret != -ENOENT)
			a->errs++;
		ret = dm_cmd(a->fd, HMM_DMIRROR_MIGRATE_TO_SYS, a->buf,
			     NULL, ALLOC_PAGES, NULL);
		if (ret && ret != -ENOENT)
			a->errs++;
		a->bad = dm_check(a->buf, ALLOC_PAGES, 1);
		a->rounds++;
	}
	return NULL;
}

TEST_F_TIMEOUT(race, alloc_vs_close_evict, 60)
{
	struct allocator a = { .bad = -1 };
	unsigned long closes = 0;
	pthread_t t;
	double end;

	a.fd = dm_open(0);
	ASSERT_GE(a.fd, 0);
	a.buf = dm_map_aligned(ALLOC_PAGES * DM_PAGE_SIZE, MADV_HUGEPAGE);
	ASSERT_NE(NULL, a.buf);
	a.out = malloc(ALLOC_PAGES * DM_PAGE_SIZE);
	ASSERT_NE(NULL, a.out);
	dm_fill(a.buf, ALLOC_PAGES, 1);
	ASSERT_EQ(0, pthread_create(&t, NULL, alloc_loop, &a));
	end = now_s() + RUN_SECONDS;
	while (now_s() < end) {
		int fd = dm_open(0);

		ASSERT_GE(fd, 0);
		ASSERT_EQ(0, close(fd));
		closes++;
	}
	atomic_store(&a.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%lu round trips, %lu closes that evicted device 0", a.rounds, closes);
	EXPECT_EQ(-1, a.bad) TH_LOG("page %ld came back wrong", a.bad);
	EXPECT_EQ(0UL, a.errs) TH_LOG("migrations failed with other errors than ENOENT");
	EXPECT_LT(0UL, a.rounds);
	EXPECT_EQ(-1, dm_check(a.buf, ALLOC_PAGES, 1));
	close(a.fd);
	munmap(a.buf, ALLOC_PAGES * DM_PAGE_SIZE);
	free(a.out);
}

/*
 * EXCLUSIVE against a zap of the page it has just made device-exclusive. The
 * driver must not store the page in its mirror table once a zap (here
 * MADV_DONTNEED) has unmapped it: the table holds no reference, so the entry
 * would outlive the folio, which is freed when EXCLUSIVE lets it go. The
 * PROJECT-ONLY TEST_EXCLUSIVE_DELAY hook (dmirror_test_hooks.h) makes
 * EXCLUSIVE sleep EXCL_DELAY_MS between make_device_exclusive() and the
 * check of its notifier sequence before the store; another thread zaps the
 * page EXCL_ZAP_MS into the call. Then the mirror must agree with the CPU,
 * which finds a new zero page: EXCLUSIVE's read-back, a READ through the
 * mirror (before any CPU access) and the CPU's own read all give zeros, and
 * the hook's retry count shows that the zap landed in the window. Without
 * the check, the old page's data came back from the freed page (or the
 * debug kernel's DEBUG_PAGEALLOC faulted on the copy). The C driver has the
 * same window and no hook: skipped there.
 */
#define NO_EXCL_HOOK "driver has no EXCLUSIVE delay hook (PROJECT-ONLY ioctl 0x43 of " \
	"dmirror_test_hooks.h: the Rust module with test_hooks=1 only)"
#define EXCL_ROUNDS	3
#define EXCL_DELAY_MS	300
#define EXCL_ZAP_MS	100

struct excl_zap {
	char *buf;
	double zapped_at;
	int ret;
};

static void *excl_zapper(void *arg)
{
	struct excl_zap *z = arg;
	struct timespec ts = { 0, EXCL_ZAP_MS * 1000000L };

	nanosleep(&ts, NULL);
	z->ret = madvise(z->buf, DM_PAGE_SIZE, MADV_DONTNEED);
	z->zapped_at = now_s();
	return NULL;
}

TEST_F_TIMEOUT(race, exclusive_vs_zap, 60)
{
	const char *params = getenv("HMM_MODULE_PARAMS");
	struct excl_zap z = { 0 };
	uint64_t retries, before;
	double t0, t1;
	char *out;
	pthread_t t;
	int fd, ret;

	fd = dm_open(0);
	ASSERT_GE(fd, 0);
	z.buf = dm_map(1, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, z.buf);
	out = malloc(DM_PAGE_SIZE);
	ASSERT_NE(NULL, out);
	ret = dm_cmd(fd, HMM_DMIRROR_TEST_EXCLUSIVE_DELAY, z.buf, NULL, 1, &retries);
	if (ret == -EINVAL) {
		ASSERT_FALSE(params && strstr(params, "test_hooks=1"))
			TH_LOG("loaded with test_hooks=1, but TEST_EXCLUSIVE_DELAY is refused");
		SKIP(return, NO_EXCL_HOOK);
	}
	ASSERT_EQ(0, ret);

	for (int round = 0; round < EXCL_ROUNDS; round++) {
		dm_fill_page(z.buf, 0, round + 1);
		ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_TEST_EXCLUSIVE_DELAY, z.buf, NULL,
				    EXCL_DELAY_MS + 1, &before));
		memset(out, 0xa5, DM_PAGE_SIZE);
		z.zapped_at = 0;
		ASSERT_EQ(0, pthread_create(&t, NULL, excl_zapper, &z));
		t0 = now_s();
		ret = dm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, z.buf, out, 1, NULL);
		t1 = now_s();
		pthread_join(t, NULL);
		ASSERT_EQ(0, z.ret);
		ASSERT_EQ(0, dm_cmd(fd, HMM_DMIRROR_TEST_EXCLUSIVE_DELAY, z.buf, NULL, 1,
				    &retries));
		TH_LOG("round %d: EXCLUSIVE %d after %.0f ms, zap at %.0f ms, %llu retries",
		       round, ret, (t1 - t0) * 1000, (z.zapped_at - t0) * 1000,
		       (unsigned long long)(retries - before));
		EXPECT_LT(0ULL, retries - before)
			TH_LOG("round %d: no retry (zap outside the window, or not noticed)", round);
		EXPECT_EQ(0, ret);
		EXPECT_TRUE(dm_page_is_zero(out))
			TH_LOG("round %d: EXCLUSIVE read back a page the zap freed", round);
		memset(out, 0xa5, DM_PAGE_SIZE);
		EXPECT_EQ(0, dm_cmd(fd, HMM_DMIRROR_READ, z.buf, out, 1, NULL));
		EXPECT_TRUE(dm_page_is_zero(out))
			TH_LOG("round %d: the mirror maps a page the zap freed", round);
		EXPECT_TRUE(dm_page_is_zero(z.buf)) TH_LOG("round %d: CPU view", round);
	}
	close(fd);
	munmap(z.buf, DM_PAGE_SIZE);
	free(out);
}

TEST_HARNESS_MAIN
