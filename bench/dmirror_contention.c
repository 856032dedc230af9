// SPDX-License-Identifier: GPL-2.0
/*
 * dmirror_contention: why migrate_vma_setup() collects fewer pages than
 * asked when K threads migrate the same range to the device (issue 20,
 * docs/contention.md, make contention).
 *
 * A case is (variant 4k or thp, K threads, CPU toucher or not) under one
 * condition of the guest (--cond: base; numa: NUMA balancing on, the range
 * filled on the other node; refs: a thread keeps taking references to the
 * range's pages with vmsplice() and pins them with gup_test, see
 * refs_thread()). A case runs epochs until --time seconds are spent: the
 * range (4 MiB, in system memory) is migrated to device 0 by K threads at
 * once (through one file, so that a page another thread moved is in the
 * mirror and counts as there); each thread repeats MIGRATE_TO_DEV (which
 * copies the range's data out to a buffer, as hmm-tests does) until it
 * succeeds (the whole range is in the device's mirror, the ioctl's
 * all-or-nothing answer) or --max-tries attempts failed; a toucher thread
 * writes one byte of every page meanwhile (faulting device pages back).
 * After the first failed attempt a SNAPSHOT tells how much of the range is
 * on the device (what an accept-partial caller gets). The epoch ends when
 * every thread is done; the main thread then reads /proc/vmstat's mdev_*
 * events (patches/experiments/0001; absent on a stock kernel) and migrates
 * the range back, outside the measurement.
 *
 * Output: one line per case, "# CONT {json}" (a KTAP diagnostic), that
 * scripts/contention_report.py turns into the tables of docs/contention.md.
 * Without --full: one short case (a smoke run of make run and make check),
 * and the data of the range is checked at the end of each case.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <sys/syscall.h>
#include <sys/uio.h>

#include "kselftest.h"
#include <lib/test_hmm_uapi.h>
#include <mm/gup_test.h>
#include "../selftests/dmirror_mdev_counters.h"

#define TWO_MB		(2UL << 20)
#define MAX_K		8
#define MAX_TRIES	64
static long page_size;
static const char *driver = "?";
static const char *cond = "base";	/* the condition of the running case */
static double case_time = 3.0;
static int max_tries = 16;
static unsigned long range_size = 4UL << 20;
static bool full;
static bool have_mdev;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One /proc/vmstat counter (0 when absent). */
static unsigned long long vmstat_get(const char *want)
{
	unsigned long long val, ret = 0;
	char name[64];
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fscanf(f, "%63s %llu", name, &val) == 2)
		if (!strcmp(name, want))
			ret = val;
	fclose(f);
	return ret;
}

static int dm_cmd(int fd, unsigned long req, void *addr, void *ptr,
		  unsigned long npages, uint64_t *cpages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)ptr, .npages = npages,
	};
	int ret = ioctl(fd, req, &cmd) ? -errno : 0;

	if (cpages)
		*cpages = cmd.cpages;
	return ret;
}

struct epoch {
	char *buf;
	unsigned long npages;
	int stop_touch;
	pthread_barrier_t start;
};

struct worker {
	pthread_t tid;
	struct epoch *e;
	int fd;
	unsigned char *snap;
	char *out;		/* MIGRATE_TO_DEV copies the range's data here */
	/* one epoch */
	int tries;		/* attempts until success, max_tries + 1: gave up */
	double first_frac;	/* on the device after the first attempt */
	double busy;		/* seconds in MIGRATE_TO_DEV */
	int errors, last_err;
	unsigned long touches;
};

static void *migrator(void *arg)
{
	struct worker *w = arg;
	struct epoch *e = w->e;
	unsigned long n = e->npages, i, local;
	uint64_t cp;
	double t0;
	int ret;

	pthread_barrier_wait(&e->start);
	w->tries = max_tries + 1;
	w->first_frac = 0;
	for (int a = 1; a <= max_tries; a++) {
		t0 = now();
		ret = dm_cmd(w->fd, HMM_DMIRROR_MIGRATE_TO_DEV, e->buf, w->out, n, &cp);
		w->busy += now() - t0;
		if (!ret) {
			if (a == 1)
				w->first_frac = 1;
			w->tries = a;
			break;
		}
		if (ret != -ENOENT) {
			w->errors++;
			w->last_err = ret;
		}
		if (a == 1 && !dm_cmd(w->fd, HMM_DMIRROR_SNAPSHOT, e->buf, w->snap, n, NULL)) {
			for (i = 0, local = 0; i < n; i++)
				local += (w->snap[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
			w->first_frac = (double)local / n;
		}
	}
	return NULL;
}

static void *toucher(void *arg)
{
	struct worker *w = arg;
	struct epoch *e = w->e;

	pthread_barrier_wait(&e->start);
	while (!__atomic_load_n(&e->stop_touch, __ATOMIC_RELAXED)) {
		for (unsigned long i = 0; i < e->npages; i++) {
			__atomic_store_n(e->buf + i * page_size + 8, (char)i, __ATOMIC_RELAXED);
			w->touches++;
		}
	}
	return NULL;
}

/*
 * cond "refs": takes references to every page of the range in turn, for as
 * long as it runs: vmsplice() of REFS_CHUNK pages into a pipe (a reference
 * on each page, FOLL_GET, held until the pipe is read), then gup_test's
 * PIN_BASIC_TEST over the same pages (FOLL_PIN and unpin, when debugfs has
 * gup_test).
 */
#define REFS_CHUNK	16
static int refs_stop;
static unsigned long refs_ops, refs_failed;
static void *refs_thread(void *arg)
{
	struct epoch *e = arg;
	size_t len = REFS_CHUNK * page_size;
	char *tmp = malloc(len);
	int pipefd[2], gup_fd;

	if (!tmp || pipe(pipefd)) {
		free(tmp);
		refs_failed++;
		return NULL;
	}
	gup_fd = open("/sys/kernel/debug/gup_test", O_RDWR);
	while (!__atomic_load_n(&refs_stop, __ATOMIC_RELAXED)) {
		for (unsigned long i = 0; i < e->npages; i += REFS_CHUNK) {
			struct iovec iov = { e->buf + i * page_size, len };
			struct gup_test gup = {
				.addr = (uintptr_t)iov.iov_base,
				.size = len,
				.nr_pages_per_call = REFS_CHUNK,
				.gup_flags = 1,	/* FOLL_WRITE */
			};
			ssize_t got = vmsplice(pipefd[1], &iov, 1, 0);

			if (got != (ssize_t)len)
				refs_failed++;
			while (got > 0) {
				ssize_t r = read(pipefd[0], tmp, got);

				if (r <= 0)
					break;
				got -= r;
			}
			refs_ops++;
			if (gup_fd < 0)
				continue;
			if (ioctl(gup_fd, PIN_BASIC_TEST, &gup))
				refs_failed++;
			refs_ops++;
		}
	}
	if (gup_fd >= 0)
		close(gup_fd);
	close(pipefd[0]);
	close(pipefd[1]);
	free(tmp);
	return NULL;
}

static char *map_range(bool thp)
{
	char *p = mmap(NULL, range_size + TWO_MB, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + TWO_MB - 1) & ~(TWO_MB - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + range_size, p + range_size + TWO_MB - (a + range_size));
	madvise(a, range_size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return a;
}

/* cond "numa": fill the range on node 1 (preferred), then the default policy. */
#define MPOL_DEFAULT_	0
#define MPOL_PREFERRED_	1
static void fill(char *buf, unsigned long npages)
{
	unsigned long node1 = 2;

	if (!strcmp(cond, "numa"))
		syscall(SYS_set_mempolicy, MPOL_PREFERRED_, &node1, 8 * sizeof(node1));
	for (unsigned long i = 0; i < npages; i++)
		memset(buf + i * page_size, (int)(i * 7 + 1), page_size);
	if (!strcmp(cond, "numa"))
		syscall(SYS_set_mempolicy, MPOL_DEFAULT_, NULL, 0);
}

/* 0 if every page holds its pattern (byte 8 aside: the toucher's). */
static long check(const char *buf, unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++) {
		const unsigned char *p = (const unsigned char *)buf + i * page_size;
		unsigned char want = (unsigned char)(i * 7 + 1);

		for (long b = 0; b < page_size; b++)
			if (b != 8 && p[b] != want)
				return (long)i + 1;
	}
	return 0;
}

static int run_case(int fd, bool thp, int k, bool touch)
{
	unsigned long long a[NR_MDEV], b[NR_MDEV], sum[NR_MDEV] = { 0 };
	unsigned long hist[MAX_TRIES + 2] = { 0 }, thread_epochs = 0, attempts = 0;
	unsigned long touches = 0, to_sys_pages = 0;
	unsigned long long hint0, numa_mig0;
	double first_frac = 0, busy = 0, t0, wall, epoch_time = 0;
	struct worker w[MAX_K + 1];
	struct epoch e = { 0 };
	pthread_t refs_tid;
	int epochs = 0, errors = 0, last_err = 0, nt = k + touch, i, ret = 0;
	long bad;
	uint64_t cp;

	e.buf = map_range(thp);
	if (!e.buf)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	e.npages = range_size / page_size;
	fill(e.buf, e.npages);
	memset(w, 0, sizeof(w));
	for (i = 0; i < nt; i++) {
		w[i].e = &e;
		w[i].fd = fd;
		w[i].snap = malloc(e.npages);
		w[i].out = malloc(range_size);
		if (!w[i].snap || !w[i].out)
			ksft_exit_fail_msg("out of memory\n");
	}
	refs_stop = 0;
	refs_ops = 0;
	refs_failed = 0;
	hint0 = vmstat_get("numa_hint_faults");
	numa_mig0 = vmstat_get("numa_pages_migrated");
	if (!strcmp(cond, "refs") &&
	    pthread_create(&refs_tid, NULL, refs_thread, &e))
		ksft_exit_fail_msg("pthread_create\n");

	t0 = now();
	while (epochs < 3 || now() - t0 < case_time) {
		double te;

		pthread_barrier_init(&e.start, NULL, nt + 1);
		e.stop_touch = 0;
		if (have_mdev)
			mdev_read(a);
		for (i = 0; i < nt; i++) {
			w[i].busy = 0;
			w[i].errors = 0;
			w[i].touches = 0;
			if (pthread_create(&w[i].tid, NULL, i < k ? migrator : toucher, &w[i]))
				ksft_exit_fail_msg("pthread_create\n");
		}
		pthread_barrier_wait(&e.start);
		te = now();
		for (i = 0; i < k; i++)
			pthread_join(w[i].tid, NULL);
		epoch_time += now() - te;
		__atomic_store_n(&e.stop_touch, 1, __ATOMIC_RELAXED);
		if (touch)
			pthread_join(w[k].tid, NULL);
		if (have_mdev) {
			mdev_read(b);
			for (i = 0; i < NR_MDEV; i++)
				sum[i] += b[i] - a[i];
		}
		for (i = 0; i < k; i++) {
			hist[w[i].tries]++;
			attempts += w[i].tries > max_tries ? max_tries : w[i].tries;
			first_frac += w[i].first_frac;
			busy += w[i].busy;
			errors += w[i].errors;
			if (w[i].errors)
				last_err = w[i].last_err;
			thread_epochs++;
		}
		if (touch)
			touches += w[k].touches;
		pthread_barrier_destroy(&e.start);
		/* Back to system memory, outside the measurement. */
		dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, e.buf, NULL, e.npages, &cp);
		to_sys_pages += cp;
		epochs++;
		if (!full && epochs >= 3)
			break;
	}
	wall = now() - t0;
	__atomic_store_n(&refs_stop, 1, __ATOMIC_RELAXED);
	if (!strcmp(cond, "refs"))
		pthread_join(refs_tid, NULL);

	bad = check(e.buf, e.npages);
	if (bad) {
		ksft_print_msg("%s k=%d touch=%d: page %ld lost its data\n",
			       thp ? "thp" : "4k", k, touch, bad - 1);
		ret = -1;
	}
	if (errors) {
		ksft_print_msg("%d errors, last %d\n", errors, last_err);
		ret = -1;
	}

	printf("# CONT {\"driver\": \"%s\", \"cond\": \"%s\", \"variant\": \"%s\", ",
	       driver, cond, thp ? "thp" : "4k");
	printf("\"k\": %d, \"touch\": %d, \"npages\": %lu, \"epochs\": %d, ",
	       k, touch, e.npages, epochs);
	printf("\"thread_epochs\": %lu, \"attempts\": %lu, \"max_tries\": %d, ",
	       thread_epochs, attempts, max_tries);
	printf("\"first_frac_mean\": %.6f, \"busy_s\": %.6f, \"epoch_s\": %.6f, ",
	       first_frac / thread_epochs, busy, epoch_time);
	printf("\"wall_s\": %.6f, \"touches\": %lu, \"refs_ops\": %lu, ",
	       wall, touches, refs_ops);
	printf("\"refs_failed\": %lu, \"numa_hint_faults\": %llu, ",
	       refs_failed, vmstat_get("numa_hint_faults") - hint0);
	printf("\"numa_pages_migrated\": %llu, ",
	       vmstat_get("numa_pages_migrated") - numa_mig0);
	printf("\"errors\": %d, \"data_ok\": %d, \"to_sys_pages\": %lu, \"mdev\": %s",
	       errors, !bad, to_sys_pages, have_mdev ? "{" : "null");
	for (i = 0; have_mdev && i < NR_MDEV; i++)
		printf("%s\"%s\": %llu", i ? ", " : "", mdev_names[i], sum[i]);
	printf("%s, \"tries_hist\": [", have_mdev ? "}" : "");
	for (i = 1; i <= max_tries + 1; i++)
		printf("%s%lu", i > 1 ? ", " : "", hist[i]);
	printf("]}\n");
	fflush(stdout);
	for (i = 0; i < nt; i++) {
		free(w[i].snap);
		free(w[i].out);
	}
	munmap(e.buf, range_size);
	return ret;
}

static int sysctl_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* Turns NUMA balancing on, scanning at once and often (a case lasts seconds). */
static int numa_on(void)
{
	if (access("/sys/devices/system/node/node1", F_OK) ||
	    sysctl_write("/proc/sys/kernel/numa_balancing", "1"))
		return -1;
	sysctl_write("/sys/kernel/debug/sched/numa_balancing/scan_delay_ms", "0");
	sysctl_write("/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms", "10");
	sysctl_write("/sys/kernel/debug/sched/numa_balancing/scan_period_max_ms", "100");
	return 0;
}

static void usage(const char *argv0)
{
	printf("Usage: %s [--full] [--cond base,numa,refs] [--time S] [--max-tries N]\n"
	       "          [--size-kib N] [--variant 4k|thp] [--k N]\n"
	       "K threads migrate the same range to /dev/hmm_dmirror0 at once; one\n"
	       "'# CONT {json}' line per case (docs/contention.md). Without --full: a\n"
	       "smoke run of one short case.\n", argv0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "full", no_argument, NULL, 'f' },
		{ "cond", required_argument, NULL, 'c' },
		{ "time", required_argument, NULL, 't' },
		{ "max-tries", required_argument, NULL, 'm' },
		{ "size-kib", required_argument, NULL, 's' },
		{ "variant", required_argument, NULL, 'v' },
		{ "k", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int ks[] = { 1, 2, 4, 8 };
	unsigned long long v[NR_MDEV];
	const char *variant = NULL;
	char *conds, *save = NULL;
	int fd, c, ki, touch, thp, only_k = 0, ret = 0, ncases = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			full = true;
			break;
		case 'c':
			cond = optarg;
			break;
		case 't':
			case_time = atof(optarg);
			break;
		case 'm':
			max_tries = atoi(optarg);
			break;
		case 's':
			range_size = strtoul(optarg, NULL, 0) << 10;
			break;
		case 'v':
			variant = optarg;
			break;
		case 'k':
			only_k = atoi(optarg);
			break;
		case 'h':
			usage(argv[0]);
			return 0;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (max_tries < 1 || max_tries > MAX_TRIES || range_size < TWO_MB ||
	    range_size % TWO_MB) {
		usage(argv[0]);
		return 2;
	}
	conds = strdup(cond);
	for (char *c1 = strtok(conds, ","); c1; c1 = strtok(NULL, ","))
		if (strcmp(c1, "base") && strcmp(c1, "numa") && strcmp(c1, "refs")) {
			usage(argv[0]);
			return 2;
		}
	free(conds);
	conds = strdup(cond);
	page_size = sysconf(_SC_PAGESIZE);
	if (getenv("HMM_DRIVER"))
		driver = getenv("HMM_DRIVER");
	have_mdev = mdev_read(v) == NR_MDEV;
	if (!full) {
		case_time = 0.2;
		range_size = TWO_MB;
	}

	ksft_print_header();
	ksft_set_plan(1);
	fd = open("/dev/hmm_dmirror0", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		ksft_exit_skip("/dev/hmm_dmirror0: %s (driver not loaded)\n",
			       strerror(errno));
	ksft_print_msg("mdev_* events: %s\n", have_mdev ? "yes" :
		       "no (" MDEV_MISSING "): no split by cause");
	for (cond = strtok_r(conds, ",", &save); cond; cond = strtok_r(NULL, ",", &save)) {
		if (!strcmp(cond, "numa") && numa_on()) {
			ksft_print_msg("cond numa skipped: needs CONFIG_NUMA_BALANCING and two nodes (numa=fake=2)\n");
			continue;
		}
		for (thp = 0; thp < 2; thp++) {
			if (variant && strcmp(variant, thp ? "thp" : "4k"))
				continue;
			for (ki = 0; ki < 4; ki++) {
				if (only_k && ks[ki] != only_k)
					continue;
				for (touch = 0; touch < 2; touch++) {
					if (!full && (thp || ks[ki] != 2 || !touch))
						continue;
					ret |= run_case(fd, thp, ks[ki], touch);
					ncases++;
				}
			}
		}
		if (!strcmp(cond, "numa"))
			sysctl_write("/proc/sys/kernel/numa_balancing", "0");
	}
	free(conds);
	close(fd);
	if (!ncases)
		ksft_test_result_skip("contention: no case selected\n");
	else
		ksft_test_result(!ret, "contention (%d cases)\n", ncases);
	ksft_finished();
}
