// SPDX-License-Identifier: GPL-2.0
/*
 * dmirror_bench: performance of the dmirror HMM test driver (lib/test_hmm.c
 * or a port with the same ABI), measured from user space through
 * /dev/hmm_dmirror0 and 1 (device-private memory).
 *
 * Without arguments: a smoke run of a few seconds (small sizes, one
 * repetition, data checked) that prints KTAP and fails when the driver does
 * not behave. With --full: the whole benchmark; every figure is printed as a
 * JSON line prefixed with "# BENCH " (a KTAP diagnostic, ignored by TAP
 * parsers), which bench/bench_report.py turns into a table and a plot:
 *  1. migrate: MIGRATE_TO_DEV then MIGRATE_TO_SYS, 4 KiB .. 256 MiB, 2 MiB
 *     aligned buffers with MADV_NOHUGEPAGE ("4k") and MADV_HUGEPAGE ("thp");
 *  2. fault: migrate to the device, then touch every page (every 2 MiB with
 *     THP) and time each CPU fault that migrates it back;
 *  3. mirror: HMM_DMIRROR_READ / WRITE with the mirror table filled ("warm":
 *     no hmm_range_fault) and emptied by an mprotect invalidation ("cold"),
 *     and SNAPSHOT;
 *  4. memcpy: the ceiling, plain memcpy of the same sizes;
 *  5. contention: K threads migrate the same range to device 0 (and 1) and
 *     back, with and without a thread touching it from the CPU;
 *  6. collide: K threads start one MIGRATE_TO_DEV each on the same range at
 *     the same moment; how much of it no thread could migrate.
 * --only TEST runs one of them (migrate, fault_latency, read_write_snapshot,
 * memcpy, contention, collide).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kselftest.h"
#include <lib/test_hmm_uapi.h>

#define TWO_MB		(2UL << 20)
#define MAX_TRIES	64
#define MAX_THREADS	8

/* What a run does; the smoke run is the same code with tiny parameters. */
struct params {
	bool full;
	unsigned long max_size;		/* largest buffer, bytes */
	double rep_time;		/* target seconds of one repetition */
	int reps;			/* repetitions per row */
	unsigned long fault_size;	/* buffer of the fault latency test */
	unsigned long mirror_max;	/* largest READ/WRITE/SNAPSHOT buffer */
	unsigned long cont_size;	/* range of the contention test */
	double cont_time;		/* seconds per contention run */
	int cont_reps;
	int fixed_iters;		/* iterations per repetition, 0: timed */
};

static struct params prm;
static const char *only;
static const char *only_variant;	/* migrate: "4k" or "thp" only */
static long page_size;
static const char *driver_name = "?";

struct region {
	char *ptr;
	size_t size;
};

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * The test guest may have no clocksource better than jiffies (no HPET or PM
 * timer to calibrate the TSC against), which makes CLOCK_MONOTONIC tick in
 * 4 ms steps. On x86 the TSC is read directly instead (under TCG it is the
 * host's), its rate measured against CLOCK_MONOTONIC between two ticks.
 */
static double tsc_hz;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* Waits for the next change of CLOCK_MONOTONIC, returns it and the TSC. */
static double tick_edge(uint64_t *tsc)
{
	double t0 = monotonic(), t;

	while ((t = monotonic()) == t0)
		;
	*tsc = rdtsc();
	return t;
}

static void calibrate(double seconds)
{
	uint64_t c0, c1;
	double t0, t1;

	t0 = tick_edge(&c0);
	usleep(seconds * 1e6);
	t1 = tick_edge(&c1);
	if (t1 > t0 && c1 > c0)
		tsc_hz = (c1 - c0) / (t1 - t0);
}

static double now(void)
{
	return tsc_hz ? rdtsc() / tsc_hz : monotonic();
}
#else
static void calibrate(double seconds)
{
}

static double now(void)
{
	return monotonic();
}
#endif

static int dmirror_cmd(int fd, unsigned long request, void *addr, void *ptr,
		       unsigned long npages, unsigned long *cpages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)ptr,
		.npages = npages,
	};

	if (cpages)
		*cpages = 0;
	while (ioctl(fd, request, &cmd)) {
		if (errno != EINTR)
			return -errno;
	}
	if (cpages)
		*cpages = cmd.cpages;
	return 0;
}

/*
 * A 2 MiB aligned anonymous mapping of exactly @size bytes (the head and
 * tail of a larger mapping are cut off), so that with THP the whole buffer,
 * and nothing else, can be PMD-mapped.
 */
static int region_alloc(struct region *r, size_t size, int advice)
{
	size_t maplen = size + TWO_MB;
	uintptr_t map, start, end;
	void *p;

	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	map = (uintptr_t)p;
	start = (map + TWO_MB - 1) & ~(TWO_MB - 1);
	end = start + size;
	if (start > map)
		munmap(p, start - map);
	if (map + maplen > end)
		munmap((void *)end, map + maplen - end);
	r->ptr = (char *)start;
	r->size = size;
	if (advice >= 0 && madvise(r->ptr, size, advice))
		return -errno;
	return 0;
}

static void region_free(struct region *r)
{
	if (r->ptr)
		munmap(r->ptr, r->size);
	r->ptr = NULL;
}

/* Every page gets its index in the first word, the rest a byte pattern. */
static void fill(char *p, size_t size, unsigned int seed)
{
	size_t i;

	memset(p, seed & 0xff, size);
	for (i = 0; i < size / page_size; i++)
		*(unsigned long *)(p + i * page_size) = i + seed;
}

static int check(const char *p, size_t size, unsigned int seed)
{
	size_t i;

	for (i = 0; i < size / page_size; i++) {
		if (*(const unsigned long *)(p + i * page_size) != i + seed)
			return -1;
		if ((unsigned char)p[i * page_size + page_size - 1] != (seed & 0xff))
			return -1;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n values, sorting them. */
static double quantile(double *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(q * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* One row of the results: "# BENCH {json}", samples are repetitions. */
static void emit(const char *test, const char *variant, unsigned long size,
		 const char *metric, const char *unit, const double *s, int n)
{
	int i;

	if (!prm.full)
		return;
	printf("# BENCH {\"driver\":\"%s\",\"test\":\"%s\",\"variant\":\"%s\",",
	       driver_name, test, variant);
	printf("\"size\":%lu,\"metric\":\"%s\",\"unit\":\"%s\",\"samples\":[",
	       size, metric, unit);
	for (i = 0; i < n; i++)
		printf("%s%.6g", i ? "," : "", s[i]);
	printf("]}\n");
	fflush(stdout);
}

static void emit1(const char *test, const char *variant, unsigned long size,
		  const char *metric, const char *unit, double v)
{
	emit(test, variant, size, metric, unit, &v, 1);
}

/* Fraction of pages whose SNAPSHOT byte has all bits of @mask (0: PMD). */
static double snapshot_frac(int fd, struct region *b, unsigned char *snap,
			    unsigned char mask)
{
	unsigned long n = b->size / page_size, i, hit = 0;

	if (dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, b->ptr, snap, n, NULL))
		return -1;
	for (i = 0; i < n; i++)
		hit += (snap[i] & mask) == mask;
	return (double)hit / n;
}

/* The name of a buffer kind in the output and in --variant. */
static const char *variant_name(bool thp)
{
	return thp ? "thp" : "4k";
}

/*
 * How many round trips make a repetition of about prm.rep_time seconds, or
 * the fixed number of --iters (the same work for every driver, so that the
 * sample counts of two profiles compare).
 */
static int iterations_for(double one)
{
	double n;

	if (prm.fixed_iters)
		return prm.fixed_iters;
	n = one > 0 ? prm.rep_time / one : 1;
	if (n < 1)
		return 1;
	return n > 10000 ? 10000 : (int)n;
}

static unsigned long sizes[] = {
	4UL << 10, 16UL << 10, 64UL << 10, 256UL << 10, 1UL << 20, 2UL << 20,
	4UL << 20, 16UL << 20, 64UL << 20, 256UL << 20,
};

#define NSIZES ARRAY_SIZE(sizes)
#define MAX_REPS 16

/*
 * 1. Migration to the device and back. MIGRATE_TO_DEV's cpages is what was
 * read back from the mirror (all npages on success); MIGRATE_TO_SYS's is the
 * number of migrate src entries with VALID and MIGRATE, which for a THP is
 * its head only, so it is reported, not checked.
 */
static int bench_migrate_one(int fd, unsigned long size, bool thp)
{
	const char *variant = variant_name(thp);
	unsigned long npages = size / page_size, cp_dev, cp_sys;
	double dev[MAX_REPS], sys[MAX_REPS], rt[MAX_REPS], pps[MAX_REPS];
	struct region b = { 0 }, m = { 0 };
	unsigned char *snap = NULL;
	double t0, t1, t2, pmd_sys, on_dev;
	int rep, it, iters, ret;

	ret = region_alloc(&b, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (!ret)
		ret = region_alloc(&m, size, MADV_NOHUGEPAGE);
	snap = malloc(npages);
	if (ret || !snap) {
		ksft_print_msg("migrate %lu: out of memory\n", size);
		ret = -1;
		goto out;
	}
	fill(b.ptr, size, 7);
	memset(m.ptr, 0, size);
	pmd_sys = snapshot_frac(fd, &b, snap, HMM_DMIRROR_PROT_PMD);

	/* Warm-up round trip, with the data checked both ways. */
	t0 = now();
	ret = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b.ptr, m.ptr, npages, &cp_dev);
	t1 = now();
	if (ret || cp_dev != npages || check(m.ptr, size, 7)) {
		ksft_print_msg("migrate %s %lu to dev: %d, cpages %lu of %lu, data %s\n",
			       variant, size, ret, cp_dev, npages,
			       ret ? "-" : check(m.ptr, size, 7) ? "bad" : "ok");
		ret = -1;
		goto out;
	}
	on_dev = snapshot_frac(fd, &b, snap, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL);
	ret = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b.ptr, m.ptr, npages, &cp_sys);
	t2 = now();
	if (ret || check(b.ptr, size, 7)) {
		ksft_print_msg("migrate %s %lu to sys: %d, data %s\n", variant, size,
			       ret, ret ? "-" : "bad");
		ret = -1;
		goto out;
	}
	if (on_dev != 1) {
		ksft_print_msg("migrate %s %lu: %.3f of the pages on the device\n",
			       variant, size, on_dev);
		ret = -1;
		goto out;
	}
	emit1("migrate", variant, size, "pmd_mapped_frac", "frac", pmd_sys);
	emit1("migrate", variant, size, "to_sys_cpages_per_page", "frac",
	      (double)cp_sys / npages);

	iters = iterations_for(t2 - t0);
	for (rep = 0; rep < prm.reps; rep++) {
		double td = 0, ts = 0;

		for (it = 0; it < iters; it++) {
			t0 = now();
			ret = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b.ptr,
					  m.ptr, npages, &cp_dev);
			t1 = now();
			if (!ret)
				ret = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS,
						  b.ptr, m.ptr, npages, &cp_sys);
			t2 = now();
			if (ret || cp_dev != npages) {
				ksft_print_msg("migrate %s %lu: %d, cpages %lu\n",
					       variant, size, ret, cp_dev);
				ret = -1;
				goto out;
			}
			td += t1 - t0;
			ts += t2 - t1;
		}
		dev[rep] = size * (double)iters / td / 1e9;
		sys[rep] = size * (double)iters / ts / 1e9;
		rt[rep] = size * (double)iters / (td + ts) / 1e9;
		pps[rep] = npages * (double)iters / (td + ts);
	}
	emit("migrate", variant, size, "to_dev", "GB/s", dev, prm.reps);
	emit("migrate", variant, size, "to_sys", "GB/s", sys, prm.reps);
	emit("migrate", variant, size, "round_trip", "GB/s", rt, prm.reps);
	emit("migrate", variant, size, "round_trip_pages", "pages/s", pps, prm.reps);
	ret = check(b.ptr, size, 7);
	if (ret)
		ksft_print_msg("migrate %s %lu: data changed\n", variant, size);
out:
	free(snap);
	region_free(&b);
	region_free(&m);
	return ret;
}

/* Whether --variant lets migrate and contention run their THP (or 4k) buffers. */
static bool variant_wanted(bool thp)
{
	return !only_variant || !strcmp(only_variant, variant_name(thp));
}

static int bench_migrate(int fd)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < NSIZES && sizes[i] <= prm.max_size; i++) {
		if (!prm.full && sizes[i] != (64UL << 10) && sizes[i] != TWO_MB)
			continue;
		if (variant_wanted(false))
			ret |= bench_migrate_one(fd, sizes[i], false);
		/* Below 2 MiB there is no THP: the same as 4k. */
		if (sizes[i] >= TWO_MB && variant_wanted(true))
			ret |= bench_migrate_one(fd, sizes[i], true);
	}
	return ret;
}

/* 4. The ceiling: memcpy between two prefaulted buffers of the same size. */
static int bench_memcpy(void)
{
	double gbps[MAX_REPS], t0, one;
	struct region a = { 0 }, b = { 0 };
	unsigned int i;
	int rep, it, iters;

	for (i = 0; i < NSIZES && sizes[i] <= prm.max_size; i++) {
		unsigned long size = sizes[i];

		if (region_alloc(&a, size, -1) || region_alloc(&b, size, -1))
			return -1;
		memset(a.ptr, 1, size);
		memset(b.ptr, 2, size);
		t0 = now();
		memcpy(b.ptr, a.ptr, size);
		one = now() - t0;
		iters = iterations_for(one);
		for (rep = 0; rep < prm.reps; rep++) {
			t0 = now();
			for (it = 0; it < iters; it++) {
				memcpy(it & 1 ? a.ptr : b.ptr, it & 1 ? b.ptr : a.ptr, size);
				__asm__ __volatile__("" : : "r"(a.ptr), "r"(b.ptr) : "memory");
			}
			gbps[rep] = size * (double)iters / (now() - t0) / 1e9;
		}
		emit("memcpy", "memcpy", size, "copy", "GB/s", gbps, prm.reps);
		region_free(&a);
		region_free(&b);
	}
	return 0;
}

/*
 * 2. CPU-fault migrate-back latency: migrate the buffer to the device, then
 * time the first touch of every page (4k) or every 2 MiB (thp: one fault
 * migrates the whole folio back).
 */
static int bench_fault_one(int fd, bool thp)
{
	const char *variant = variant_name(thp);
	unsigned long size = prm.fault_size, npages = size / page_size, cp, i;
	unsigned long step = thp ? TWO_MB : (unsigned long)page_size, nf = size / step;
	double p50[MAX_REPS], p99[MAX_REPS], *lat;
	struct region b = { 0 }, m = { 0 };
	int rep, ret;

	lat = calloc(nf, sizeof(*lat));
	ret = region_alloc(&b, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (!ret)
		ret = region_alloc(&m, size, MADV_NOHUGEPAGE);
	if (ret || !lat) {
		ret = -1;
		goto out;
	}
	memset(m.ptr, 0, size);
	for (rep = 0; rep < prm.reps; rep++) {
		fill(b.ptr, size, rep + 3);
		ret = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b.ptr, m.ptr, npages, &cp);
		if (ret || cp != npages) {
			ksft_print_msg("fault %s: migrate %d cpages %lu\n", variant, ret, cp);
			ret = -1;
			goto out;
		}
		for (i = 0; i < nf; i++) {
			unsigned long *p = (unsigned long *)(b.ptr + i * step);
			unsigned long v;
			double t0 = now();

			v = __atomic_load_n(p, __ATOMIC_RELAXED);
			lat[i] = (now() - t0) * 1e6;
			if (v != i * (step / page_size) + rep + 3) {
				ksft_print_msg("fault %s: page %lu reads %lu\n", variant, i, v);
				ret = -1;
				goto out;
			}
		}
		if (check(b.ptr, size, rep + 3)) {
			ksft_print_msg("fault %s: data changed\n", variant);
			ret = -1;
			goto out;
		}
		p50[rep] = quantile(lat, nf, 0.5);
		p99[rep] = quantile(lat, nf, 0.99);
	}
	emit("fault", variant, size, "fault_p50", "us", p50, prm.reps);
	emit("fault", variant, size, "fault_p99", "us", p99, prm.reps);
out:
	free(lat);
	region_free(&b);
	region_free(&m);
	return ret;
}

/* Empties the mirror table of the range: an mprotect invalidates it. */
static void invalidate(struct region *b)
{
	mprotect(b->ptr, b->size, PROT_READ);
	mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE);
}

enum mirror_op { OP_READ_WARM, OP_READ_COLD, OP_WRITE_WARM, OP_WRITE_COLD,
		 OP_SNAPSHOT, NR_OPS };

static const char *const op_names[NR_OPS] = {
	"read_warm", "read_cold", "write_warm", "write_cold", "snapshot",
};

/* 3. HMM_DMIRROR_READ / WRITE (hmm_range_fault) and SNAPSHOT. */
static int bench_mirror_one(int fd, unsigned long size)
{
	unsigned long npages = size / page_size, cp;
	struct region b = { 0 }, m = { 0 };
	double gbps[MAX_REPS], t0, t, one;
	int op, rep, it, iters, ret;

	ret = region_alloc(&b, size, MADV_NOHUGEPAGE);
	if (!ret)
		ret = region_alloc(&m, size, MADV_NOHUGEPAGE);
	if (ret)
		goto out;
	fill(b.ptr, size, 11);
	memset(m.ptr, 0, size);

	/* Check once that READ sees the data and WRITE changes it. */
	ret = dmirror_cmd(fd, HMM_DMIRROR_READ, b.ptr, m.ptr, npages, &cp);
	if (ret || cp != npages || check(m.ptr, size, 11)) {
		ksft_print_msg("read %lu: %d cpages %lu\n", size, ret, cp);
		ret = -1;
		goto out;
	}
	fill(m.ptr, size, 12);
	ret = dmirror_cmd(fd, HMM_DMIRROR_WRITE, b.ptr, m.ptr, npages, &cp);
	if (ret || cp != npages || check(b.ptr, size, 12)) {
		ksft_print_msg("write %lu: %d cpages %lu\n", size, ret, cp);
		ret = -1;
		goto out;
	}

	for (op = 0; op < NR_OPS; op++) {
		unsigned long req = op == OP_SNAPSHOT ? HMM_DMIRROR_SNAPSHOT :
				    op <= OP_READ_COLD ? HMM_DMIRROR_READ :
				    HMM_DMIRROR_WRITE;
		bool cold = op == OP_READ_COLD || op == OP_WRITE_COLD;

		/* Calibration run (also fills the mirror for the warm ones). */
		if (cold)
			invalidate(&b);
		t0 = now();
		ret = dmirror_cmd(fd, req, b.ptr, m.ptr, npages, &cp);
		one = now() - t0;
		if (ret || cp != npages) {
			ksft_print_msg("%s %lu: %d cpages %lu\n", op_names[op], size, ret, cp);
			ret = -1;
			goto out;
		}
		iters = iterations_for(one);
		for (rep = 0; rep < prm.reps; rep++) {
			t = 0;
			for (it = 0; it < iters; it++) {
				if (cold)
					invalidate(&b);
				t0 = now();
				ret = dmirror_cmd(fd, req, b.ptr, m.ptr, npages, &cp);
				t += now() - t0;
				if (ret || cp != npages) {
					ksft_print_msg("%s %lu: %d cpages %lu\n",
						       op_names[op], size, ret, cp);
					ret = -1;
					goto out;
				}
			}
			gbps[rep] = size * (double)iters / t / 1e9;
		}
		emit("mirror", op_names[op], size, "throughput", "GB/s", gbps, prm.reps);
	}
out:
	region_free(&b);
	region_free(&m);
	return ret;
}

static int bench_mirror(int fd)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < NSIZES && sizes[i] <= prm.mirror_max; i++) {
		if (!prm.full && sizes[i] != (64UL << 10))
			continue;
		ret |= bench_mirror_one(fd, sizes[i]);
	}
	return ret;
}

/*
 * 5. Contention. K threads share one range; thread i uses device i % 2 (or
 * always device 0 with "1dev"), through one file per device shared by its
 * threads, so that a page another thread put on the same device is in the
 * mirror table and counts as migrated. A thread loops: MIGRATE_TO_DEV until
 * the whole range is on its device (at most MAX_TRIES attempts), then
 * MIGRATE_TO_SYS. MIGRATE_TO_DEV fails with -ENOENT (and returns no cpages)
 * when a page of the range is not in the device's mirror afterwards; a
 * SNAPSHOT then tells where the missing pages are: on the other device
 * (cross-device contention) or still in system memory (skipped by
 * migrate_vma_collect: page lock not taken, extra reference, or faulted
 * back by the toucher before the mirror was read). Of the failed attempts,
 * failed_enoent_frac is the share that failed with -ENOENT and
 * failed_on_dev_frac the share after which that SNAPSHOT (taken a moment
 * later, so racy) found every page on the thread's device anyway.
 */
struct cont_shared {
	struct region b;
	unsigned long npages;
	int fd[2];
	int stop;
	pthread_barrier_t barrier;
};

struct cont_thread {
	pthread_t tid;
	struct cont_shared *sh;
	int fd;
	char *mirror;
	unsigned char *snap;
	/* results */
	unsigned long attempts, failed, rounds, gave_up, retries, max_retries;
	unsigned long errors, to_sys_cpages, touches;
	/* failed attempts: read-back ENOENT; every page on the device anyway */
	unsigned long failed_enoent, failed_on_dev;
	double miss, miss_sys, miss_remote;
	int last_err;
};

static bool stopped(struct cont_shared *sh)
{
	return __atomic_load_n(&sh->stop, __ATOMIC_RELAXED);
}

/*
 * A SNAPSHOT shows a page on another device as not valid (hmm_range_fault
 * reports device-private pages of other owners as holes), so each device's
 * own snapshot tells how many pages it holds.
 */
static unsigned long cont_on_device(struct cont_thread *t, int fd)
{
	struct cont_shared *sh = t->sh;
	unsigned long i, local = 0, n = sh->npages;

	if (dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, sh->b.ptr, t->snap, n, NULL)) {
		t->errors++;
		return 0;
	}
	for (i = 0; i < n; i++)
		local += (t->snap[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
	return local;
}

static void cont_count(struct cont_thread *t)
{
	struct cont_shared *sh = t->sh;
	unsigned long n = sh->npages, local, remote;

	local = cont_on_device(t, t->fd);
	if (local == n)
		t->failed_on_dev++;
	remote = cont_on_device(t, t->fd == sh->fd[0] ? sh->fd[1] : sh->fd[0]);
	if (local + remote > n)
		remote = n - local;
	t->miss += (double)(n - local) / n;
	t->miss_remote += (double)remote / n;
	t->miss_sys += (double)(n - local - remote) / n;
}

static void *cont_migrator(void *arg)
{
	struct cont_thread *t = arg;
	struct cont_shared *sh = t->sh;
	unsigned long n = sh->npages, cp;
	int ret, tries;

	pthread_barrier_wait(&sh->barrier);
	while (!stopped(sh)) {
		for (tries = 1; ; tries++) {
			ret = dmirror_cmd(t->fd, HMM_DMIRROR_MIGRATE_TO_DEV,
					  sh->b.ptr, t->mirror, n, &cp);
			t->attempts++;
			if (!ret && cp == n)
				break;
			t->failed++;
			if (ret == -ENOENT)
				t->failed_enoent++;
			if (ret && ret != -ENOENT) {
				t->errors++;
				t->last_err = ret;
			}
			cont_count(t);
			if (tries >= MAX_TRIES || stopped(sh))
				break;
		}
		if (!ret && cp == n) {
			t->rounds++;
			t->retries += tries - 1;
			if ((unsigned long)tries - 1 > t->max_retries)
				t->max_retries = tries - 1;
		} else if (tries >= MAX_TRIES) {
			t->gave_up++;
		}
		ret = dmirror_cmd(t->fd, HMM_DMIRROR_MIGRATE_TO_SYS, sh->b.ptr,
				  t->mirror, n, &cp);
		if (ret) {
			t->errors++;
			t->last_err = ret;
		} else {
			t->to_sys_cpages += cp;
		}
	}
	return NULL;
}

static void *cont_toucher(void *arg)
{
	struct cont_thread *t = arg;
	struct cont_shared *sh = t->sh;
	unsigned long i;

	pthread_barrier_wait(&sh->barrier);
	while (!stopped(sh)) {
		for (i = 0; i < sh->npages && !stopped(sh); i++) {
			__atomic_store_n(sh->b.ptr + i * page_size + 8, (char)i,
					 __ATOMIC_RELAXED);
			t->touches++;
		}
	}
	return NULL;
}

struct cont_result {
	double miss, miss_sys, miss_remote, retries, max_retries, gave_up;
	double gbps, attempts_per_s, touches_per_s, errors;
	double failed_enoent, failed_on_dev;
};

static int cont_run(int fd0, int fd1, bool thp, bool two_dev, int k, bool touch,
		    struct cont_result *res)
{
	struct cont_thread th[MAX_THREADS + 1];
	struct cont_shared sh = { .fd = { fd0, fd1 } };
	unsigned long size = prm.cont_size, attempts = 0, failed = 0, rounds = 0;
	unsigned long retries = 0, max_retries = 0, gave_up = 0, errors = 0;
	unsigned long touches = 0, cp, failed_enoent = 0, failed_on_dev = 0;
	double miss = 0, miss_sys = 0, miss_remote = 0, t0, wall;
	int i, nt = k + touch, ret = 0;

	memset(th, 0, sizeof(th));
	if (region_alloc(&sh.b, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		return -1;
	sh.npages = size / page_size;
	fill(sh.b.ptr, size, 5);
	pthread_barrier_init(&sh.barrier, NULL, nt + 1);
	for (i = 0; i < nt; i++) {
		th[i].sh = &sh;
		th[i].fd = two_dev ? sh.fd[i % 2] : fd0;
		th[i].mirror = calloc(1, size);
		th[i].snap = malloc(sh.npages);
		if (!th[i].mirror || !th[i].snap)
			ksft_exit_fail_msg("contention: out of memory\n");
	}
	for (i = 0; i < nt; i++) {
		if (pthread_create(&th[i].tid, NULL,
				   i < k ? cont_migrator : cont_toucher, &th[i]))
			ksft_exit_fail_msg("contention: pthread_create failed\n");
	}
	pthread_barrier_wait(&sh.barrier);
	t0 = now();
	usleep(prm.cont_time * 1e6);
	__atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < nt; i++)
		pthread_join(th[i].tid, NULL);
	wall = now() - t0;
	for (i = 0; i < k; i++) {
		attempts += th[i].attempts;
		failed += th[i].failed;
		failed_enoent += th[i].failed_enoent;
		failed_on_dev += th[i].failed_on_dev;
		rounds += th[i].rounds;
		retries += th[i].retries;
		gave_up += th[i].gave_up;
		errors += th[i].errors;
		miss += th[i].miss;
		miss_sys += th[i].miss_sys;
		miss_remote += th[i].miss_remote;
		if (th[i].max_retries > max_retries)
			max_retries = th[i].max_retries;
		if (th[i].errors)
			ksft_print_msg("contention: thread %d: %lu errors, last %d\n",
				       i, th[i].errors, th[i].last_err);
	}
	if (touch)
		touches = th[k].touches;
	/* Per attempt: a successful attempt counts 0 pages missing. */
	res->miss = attempts ? miss / attempts : 0;
	res->miss_sys = attempts ? miss_sys / attempts : 0;
	res->miss_remote = attempts ? miss_remote / attempts : 0;
	res->retries = rounds ? (double)retries / rounds : 0;
	res->max_retries = max_retries;
	res->gave_up = rounds + gave_up ? (double)gave_up / (rounds + gave_up) : 0;
	/* Useful work: whole ranges delivered to a device per second. */
	res->gbps = rounds * (double)size / wall / 1e9;
	res->attempts_per_s = attempts / wall;
	res->touches_per_s = touches / wall;
	res->errors = errors;
	/* Of the failed attempts: why they failed. */
	res->failed_enoent = failed ? (double)failed_enoent / failed : 0;
	res->failed_on_dev = failed ? (double)failed_on_dev / failed : 0;
	/* No round may succeed under heavy contention: only errors fail. */
	if (!attempts)
		ret = -1;
	for (i = 0; i < MAX_THREADS + 1; i++) {
		free(th[i].mirror);
		free(th[i].snap);
	}
	/* Leave nothing on the devices for the next run. */
	dmirror_cmd(fd0, HMM_DMIRROR_MIGRATE_TO_SYS, sh.b.ptr, NULL, sh.npages, &cp);
	dmirror_cmd(fd1, HMM_DMIRROR_MIGRATE_TO_SYS, sh.b.ptr, NULL, sh.npages, &cp);
	region_free(&sh.b);
	pthread_barrier_destroy(&sh.barrier);
	return ret || errors ? -1 : 0;
}

#define NR_CONT_METRICS 12

static const char *const cont_names[NR_CONT_METRICS] = {
	"miss_frac", "miss_sys_frac", "miss_remote_frac", "retries_mean",
	"retries_max", "gave_up_frac", "throughput", "attempts_per_s",
	"touches_per_s", "errors", "failed_enoent_frac", "failed_on_dev_frac",
};

static const char *const cont_units[NR_CONT_METRICS] = {
	"frac", "frac", "frac", "retries", "retries", "frac", "GB/s", "1/s",
	"1/s", "count", "frac", "frac",
};

/* One configuration of the contention test, prm.cont_reps times. */
static int bench_contention_one(int fd0, int fd1, bool thp, bool two_dev,
				int k, bool touch)
{
	double v[NR_CONT_METRICS][MAX_REPS];
	char variant[64];
	int rep, j, ret = 0;

	snprintf(variant, sizeof(variant), "%s_%s_k%d%s", variant_name(thp),
		 two_dev ? "2dev" : "1dev", k, touch ? "_touch" : "");
	for (rep = 0; rep < prm.cont_reps; rep++) {
		struct cont_result r = { 0 };

		if (cont_run(fd0, fd1, thp, two_dev, k, touch, &r)) {
			ksft_print_msg("contention %s failed\n", variant);
			ret = -1;
		}
		v[0][rep] = r.miss;
		v[1][rep] = r.miss_sys;
		v[2][rep] = r.miss_remote;
		v[3][rep] = r.retries;
		v[4][rep] = r.max_retries;
		v[5][rep] = r.gave_up;
		v[6][rep] = r.gbps;
		v[7][rep] = r.attempts_per_s;
		v[8][rep] = r.touches_per_s;
		v[9][rep] = r.errors;
		v[10][rep] = r.failed_enoent;
		v[11][rep] = r.failed_on_dev;
	}
	for (j = 0; j < NR_CONT_METRICS; j++)
		emit("contention", variant, prm.cont_size, cont_names[j],
		     cont_units[j], v[j], prm.cont_reps);
	return ret;
}

static int bench_contention(int fd0, int fd1)
{
	static const int ks[] = { 1, 2, 4, 8 };
	int thp, two_dev, ki, touch, ret = 0;

	if (!prm.full)
		return bench_contention_one(fd0, fd1, false, true, 2, true);
	for (thp = 0; thp < 2; thp++) {
		if (!variant_wanted(thp))
			continue;
		for (two_dev = 0; two_dev < 2; two_dev++)
			for (ki = 0; ki < 4; ki++)
				for (touch = 0; touch < 2; touch++) {
					/* One thread: one device or two is the same. */
					if (two_dev && ks[ki] == 1)
						continue;
					ret |= bench_contention_one(fd0, fd1, thp, two_dev,
								    ks[ki], touch);
				}
	}
	return ret;
}

/*
 * 6. Collisions without ping-pong: the range starts in system memory, K
 * threads (through one file on device 0, or alternating devices 0 and 1)
 * start one MIGRATE_TO_DEV each at the same moment, and nothing moves it
 * back until all have returned. A page then on neither device was skipped
 * by every thread: what the page lock (trylock in migrate_vma_collect) and
 * the extra references of the concurrent collectors cost.
 */
struct collide_shared {
	struct region b;
	unsigned long npages;
	int fd[2];
	int epochs;
	pthread_barrier_t start, done;
};

struct collide_thread {
	pthread_t tid;
	struct collide_shared *sh;
	int fd;
	char *mirror;
	unsigned long failed;
};

static void *collide_thread(void *arg)
{
	struct collide_thread *t = arg;
	struct collide_shared *sh = t->sh;
	unsigned long cp;
	int e;

	for (e = 0; e < sh->epochs; e++) {
		pthread_barrier_wait(&sh->start);
		if (dmirror_cmd(t->fd, HMM_DMIRROR_MIGRATE_TO_DEV, sh->b.ptr,
				t->mirror, sh->npages, &cp))
			t->failed++;
		pthread_barrier_wait(&sh->done);
	}
	return NULL;
}

static int bench_collide_one(int fd0, int fd1, bool two_dev, int k)
{
	struct collide_thread th[MAX_THREADS];
	struct collide_shared sh = { .fd = { fd0, fd1 } };
	unsigned long size = prm.cont_size, n = size / page_size, cp, e, i;
	unsigned long lost = 0, failed = 0, on[2];
	unsigned char *snap = malloc(n);
	char variant[32];
	int d, ret = 0;

	memset(th, 0, sizeof(th));
	sh.npages = n;
	sh.epochs = prm.full ? 40 : 3;
	if (!snap || region_alloc(&sh.b, size, MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("collide: out of memory\n");
	fill(sh.b.ptr, size, 9);
	pthread_barrier_init(&sh.start, NULL, k + 1);
	pthread_barrier_init(&sh.done, NULL, k + 1);
	for (i = 0; i < (unsigned long)k; i++) {
		th[i].sh = &sh;
		th[i].fd = two_dev ? sh.fd[i % 2] : fd0;
		th[i].mirror = malloc(size);
		if (!th[i].mirror ||
		    pthread_create(&th[i].tid, NULL, collide_thread, &th[i]))
			ksft_exit_fail_msg("collide: no thread\n");
	}
	for (e = 0; e < (unsigned long)sh.epochs; e++) {
		pthread_barrier_wait(&sh.start);
		pthread_barrier_wait(&sh.done);
		for (d = 0; d < 2; d++) {
			on[d] = 0;
			if (dmirror_cmd(sh.fd[d], HMM_DMIRROR_SNAPSHOT, sh.b.ptr, snap, n, NULL))
				ret = -1;
			for (i = 0; i < n; i++)
				on[d] += (snap[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
		}
		lost += n - on[0] - on[1];
		for (d = 0; d < 2; d++)
			dmirror_cmd(sh.fd[d], HMM_DMIRROR_MIGRATE_TO_SYS, sh.b.ptr,
				    NULL, n, &cp);
		if (check(sh.b.ptr, size, 9)) {
			ksft_print_msg("collide: data changed\n");
			ret = -1;
		}
	}
	for (i = 0; i < (unsigned long)k; i++) {
		pthread_join(th[i].tid, NULL);
		failed += th[i].failed;
		free(th[i].mirror);
	}
	snprintf(variant, sizeof(variant), "4k_%s_k%d", two_dev ? "2dev" : "1dev", k);
	emit1("collide", variant, size, "lost_frac", "frac",
	      (double)lost / (n * sh.epochs));
	emit1("collide", variant, size, "failed_calls_frac", "frac",
	      (double)failed / ((unsigned long)k * sh.epochs));
	pthread_barrier_destroy(&sh.start);
	pthread_barrier_destroy(&sh.done);
	region_free(&sh.b);
	free(snap);
	return ret;
}

static int bench_collide(int fd0, int fd1)
{
	static const int ks[] = { 1, 2, 4, 8 };
	int two_dev, ki, ret = 0;

	for (two_dev = 0; two_dev < 2; two_dev++)
		for (ki = 0; ki < 4; ki++) {
			if ((two_dev && ks[ki] == 1) || (!prm.full && ks[ki] != 4))
				continue;
			ret |= bench_collide_one(fd0, fd1, two_dev, ks[ki]);
		}
	return ret;
}

static int bench_migrate_all(int fd0, int fd1)
{
	return bench_migrate(fd0);
}

static int bench_fault(int fd0, int fd1)
{
	return bench_fault_one(fd0, false) | bench_fault_one(fd0, true);
}

static int bench_mirror_all(int fd0, int fd1)
{
	return bench_mirror(fd0);
}

static int bench_memcpy_all(int fd0, int fd1)
{
	return bench_memcpy();
}

static void report(const char *name, int fd0, int fd1, int (*fn)(int, int))
{
	if (only && strcmp(only, name)) {
		ksft_test_result_skip("%s\n", name);
		return;
	}
	ksft_test_result(!fn(fd0, fd1), "%s\n", name);
}

static void usage(const char *argv0)
{
	printf("Usage: %s [--full] [--max-mib N | --max-kib N] [--time-scale F] [--iters N]\n"
	       "       [--only TEST] [--variant 4k|thp]\n"
	       "Benchmarks /dev/hmm_dmirror0 and 1 (test_hmm or its port).\n"
	       "No arguments: a KTAP smoke run of a few seconds.\n"
	       "--full: the whole benchmark, figures as '# BENCH {json}' lines.\n"
	       "--max-mib N: largest migration buffer in MiB (default 256).\n"
	       "--max-kib N: the same in KiB (4 profiles the per-call cost).\n"
	       "--time-scale F: scale every repetition's duration by F.\n"
	       "--iters N: N iterations per repetition of the migrate, mirror and\n"
	       "  memcpy tests instead of a timed number (fixed work, for profiles).\n"
	       "--only TEST: run only that test (the others are skipped).\n"
	       "--variant 4k|thp: migrate and contend only on MADV_NOHUGEPAGE or\n"
	       "  MADV_HUGEPAGE buffers.\n",
	       argv0);
}

int main(int argc, char **argv)
{
	double scale = 1;
	int i, fd0, fd1;

	page_size = sysconf(_SC_PAGESIZE);
	if (getenv("HMM_DRIVER"))
		driver_name = getenv("HMM_DRIVER");
	prm = (struct params) {
		.max_size = 2UL << 20, .rep_time = 0, .reps = 1,
		.fault_size = 4UL << 20, .mirror_max = 64UL << 10,
		.cont_size = TWO_MB, .cont_time = 0.3, .cont_reps = 1,
	};
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--full")) {
			prm.full = true;
			prm.max_size = 256UL << 20;
			prm.rep_time = 0.2;
			prm.reps = 5;
			prm.fault_size = 16UL << 20;
			prm.mirror_max = 64UL << 20;
			prm.cont_time = 1.0;
			prm.cont_reps = 2;
		} else if (!strcmp(argv[i], "--max-mib") && i + 1 < argc) {
			prm.max_size = strtoul(argv[++i], NULL, 0) << 20;
		} else if (!strcmp(argv[i], "--max-kib") && i + 1 < argc) {
			prm.max_size = strtoul(argv[++i], NULL, 0) << 10;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--variant") && i + 1 < argc &&
			   (!strcmp(argv[i + 1], variant_name(false)) ||
			    !strcmp(argv[i + 1], variant_name(true)))) {
			only_variant = argv[++i];
		} else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			prm.fixed_iters = atoi(argv[++i]);
			if (prm.fixed_iters < 1 || prm.fixed_iters > 10000) {
				usage(argv[0]);
				return KSFT_FAIL;
			}
		} else if (!strcmp(argv[i], "--time-scale") && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else {
			usage(argv[0]);
			return strcmp(argv[i], "--help") ? KSFT_FAIL : 0;
		}
	}
	prm.rep_time *= scale;
	prm.cont_time *= scale;
	if (prm.mirror_max > prm.max_size)
		prm.mirror_max = prm.max_size;

	ksft_print_header();
	fd0 = open("/dev/hmm_dmirror0", O_RDWR);
	fd1 = open("/dev/hmm_dmirror1", O_RDWR);
	if (fd0 < 0 || fd1 < 0)
		ksft_exit_skip("/dev/hmm_dmirror0/1: %s (driver not loaded)\n",
			       strerror(errno));
	ksft_set_plan(6);
	calibrate(prm.full ? 1.0 : 0.1);
	ksft_print_msg("driver %s, %s run, page size %ld, clock %s %.4g GHz\n",
		       driver_name, prm.full ? "full" : "smoke", page_size,
		       tsc_hz ? "tsc" : "monotonic", tsc_hz / 1e9);
	emit1("clock", tsc_hz ? "tsc" : "monotonic", 0, "tsc_rate", "GHz", tsc_hz / 1e9);

	report("migrate", fd0, fd1, bench_migrate_all);
	report("fault_latency", fd0, fd1, bench_fault);
	report("read_write_snapshot", fd0, fd1, bench_mirror_all);
	report("memcpy", fd0, fd1, bench_memcpy_all);
	report("contention", fd0, fd1, bench_contention);
	report("collide", fd0, fd1, bench_collide);
	close(fd0);
	close(fd1);
	ksft_finished();
}
