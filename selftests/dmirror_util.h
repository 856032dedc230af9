/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the project's dmirror selftests: open a device,
 * issue one command, fill and check page patterns, run a snippet in a child.
 */
#ifndef DMIRROR_UTIL_H
#define DMIRROR_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <lib/test_hmm_uapi.h>

#define DM_PAGE_SIZE	((unsigned long)sysconf(_SC_PAGESIZE))
#define DM_TWOMEG	(2UL << 20)

/* SNAPSHOT bytes of interest. */
#define DM_SYS_RW	HMM_DMIRROR_PROT_WRITE
#define DM_SYS_RO	HMM_DMIRROR_PROT_READ
#define DM_DEV_RW	(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE)
#define DM_DEV_RO	(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ)

/*
 * 1 if the driver under test is the upstream C lib/test_hmm.c: HMM_DRIVER
 * (set by the pipeline: "c", "c.2", "rust", ...) says so, or, without it,
 * a module named test_hmm is loaded. Used only to skip, with the reason,
 * what would Oops that driver.
 */
static inline int dm_driver_is_c(void)
{
	const char *drv = getenv("HMM_DRIVER");
	char line[256];
	FILE *f;
	int c = 0;

	if (drv && *drv)
		return drv[0] == 'c';
	f = fopen("/proc/modules", "r");
	if (!f)
		return 0;
	while (!c && fgets(line, sizeof(line), f))
		c = !strncmp(line, "test_hmm ", 9);
	fclose(f);
	return c;
}

/* The reason of the tests that dm_driver_is_c() skips. */
#define DM_C_OOPS \
	"lib/test_hmm.c Oopses here: dmirror_do_fault() stores the device page " \
	"hmm_range_fault() reports for its own device, dmirror_do_read() then " \
	"copies from it (selftests/expectations.txt)"

/* CLOCK_MONOTONIC in microseconds. */
static inline unsigned long dm_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000UL + ts.tv_nsec / 1000;
}

static inline int dm_open(int dev)
{
	char path[32];

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", dev);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* One command; returns 0 or -errno, and the cpages the driver reported. */
static inline int dm_cmd(int fd, unsigned long request, const void *addr,
			 void *ptr, unsigned long npages, uint64_t *cpages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)ptr, .npages = npages,
	};
	int ret = ioctl(fd, request, &cmd) ? -errno : 0;

	if (cpages)
		*cpages = cmd.cpages;
	return ret;
}

/*
 * Every 8-byte word of page 'index' at generation 'gen': the word 0 is the
 * page index, word 1 the generation, the rest a mix of both and the offset.
 */
static inline uint64_t dm_word(unsigned long index, unsigned long gen,
			       unsigned long w)
{
	if (w == 0)
		return index;
	if (w == 1)
		return gen;
	return (index << 32) ^ (gen << 16) ^ w ^ 0x5a5a5a5a00000000ULL;
}

static inline void dm_fill_page(void *page, unsigned long index, unsigned long gen)
{
	uint64_t *p = page;

	for (unsigned long w = 0; w < DM_PAGE_SIZE / 8; w++)
		p[w] = dm_word(index, gen, w);
}

/* 1 if the page holds exactly (index, gen). */
static inline int dm_page_is(const void *page, unsigned long index, unsigned long gen)
{
	const uint64_t *p = page;

	for (unsigned long w = 0; w < DM_PAGE_SIZE / 8; w++)
		if (p[w] != dm_word(index, gen, w))
			return 0;
	return 1;
}

static inline int dm_page_is_zero(const void *page)
{
	const uint64_t *p = page;

	for (unsigned long w = 0; w < DM_PAGE_SIZE / 8; w++)
		if (p[w])
			return 0;
	return 1;
}

static inline void dm_fill(void *buf, unsigned long npages, unsigned long gen)
{
	for (unsigned long i = 0; i < npages; i++)
		dm_fill_page((char *)buf + i * DM_PAGE_SIZE, i, gen);
}

/* Index of the first page that does not hold (i, gen), or -1. */
static inline long dm_check(const void *buf, unsigned long npages, unsigned long gen)
{
	for (unsigned long i = 0; i < npages; i++)
		if (!dm_page_is((const char *)buf + i * DM_PAGE_SIZE, i, gen))
			return i;
	return -1;
}

/*
 * Index of the first page that does not hold (i, gen), gen being 'even' for
 * even i and 'odd' for odd i, or -1.
 */
static inline long dm_check_alt(const void *buf, unsigned long npages,
				unsigned long even, unsigned long odd)
{
	for (unsigned long i = 0; i < npages; i++)
		if (!dm_page_is((const char *)buf + i * DM_PAGE_SIZE, i, (i & 1) ? odd : even))
			return i;
	return -1;
}

/* Number of bytes of snap[0..n) equal to v. */
static inline unsigned long dm_count(const unsigned char *snap, unsigned long n,
				     unsigned char v)
{
	unsigned long c = 0;

	for (unsigned long i = 0; i < n; i++)
		c += snap[i] == v;
	return c;
}

/* Same, ignoring the PMD/PUD mapping-size bits. */
static inline unsigned long dm_count_any_size(const unsigned char *snap,
					      unsigned long n, unsigned char v)
{
	unsigned long c = 0;

	for (unsigned long i = 0; i < n; i++)
		c += (snap[i] & ~(HMM_DMIRROR_PROT_PMD | HMM_DMIRROR_PROT_PUD)) == v;
	return c;
}

static inline void *dm_map(unsigned long npages, int prot, int huge_advice)
{
	void *p = mmap(NULL, npages * DM_PAGE_SIZE, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (huge_advice)
		madvise(p, npages * DM_PAGE_SIZE, huge_advice);
	return p;
}

/* A 2 MiB-aligned anonymous range of 'size' bytes (a multiple of 2 MiB). */
static inline void *dm_map_aligned(unsigned long size, int advice)
{
	char *p = mmap(NULL, size + DM_TWOMEG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + DM_TWOMEG - 1) & ~(DM_TWOMEG - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + size, p + size + DM_TWOMEG - (a + size));
	if (advice)
		madvise(a, size, advice);
	return a;
}

/*
 * Run fn(arg) in a child; returns the child's wait status. A child that
 * faults dies with the signal, which the caller checks.
 */
static inline int dm_in_child(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static inline void dm_write_one(void *addr)
{
	__atomic_store_n((uint64_t *)addr, 0x1234, __ATOMIC_RELAXED);
}

/* 1 if a write to addr from a child process dies with SIGSEGV. */
static inline int dm_write_segfaults(void *addr)
{
	int status = dm_in_child(dm_write_one, addr);

	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

#endif /* DMIRROR_UTIL_H */
