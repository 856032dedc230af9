// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl fuzzer of the dmirror devices (lib/test_hmm.c and its Rust port).
 *
 * Seeded and bounded by an ioctl count and by time:
 *   dmirror_fuzz [--seed N] [--time S] [--count N] [--threads N] [--long] [--evict-race]
 * or HMM_FUZZ_SEED, HMM_FUZZ_TIME, HMM_FUZZ_COUNT, HMM_FUZZ_LONG=1 (make
 * stress). The seed is always printed; each thread draws its operations
 * from its own generator seeded from it, so a seed replays the same
 * operations per thread (with --threads 1 --no-mm --no-fork, the same
 * run; the interleaving of several threads is not reproducible). The seed
 * also goes to the kernel log at the start, so a run that hangs the guest
 * can be replayed. For triage, --no-mm, --no-fork,
 * --no-thp, --weights (per command kind) and --trace (one kernel log line
 * per operation) narrow a failure down; see --help.
 *
 * Several threads issue random HMM_DMIRROR_* commands, valid and invalid
 * (every command, unknown numbers, bad sizes and directions, bad argument
 * pointers, misaligned, empty, overflowing and unmapped ranges, bad data
 * pointers), on random ranges of a few 2 MiB mappings, through shared and
 * per-thread descriptors of /dev/hmm_dmirror0 and 1 (and 2, 3 when present),
 * while one thread mmaps/munmaps/mprotects/madvises and reads the
 * mappings and another forks children that read, migrate and write their
 * copy. Every errno must be one the driver documents for that command.
 * The "verified" mappings are never unmapped and hold a per-page pattern:
 * every READ, MIGRATE_TO_DEV and EXCLUSIVE that succeeds returns it, every
 * WRITE writes it again; after the run they still hold it, MIGRATE_TO_SYS
 * through every device empties them of device pages, and after the last
 * close of the devices (which evicts device memory) nothing of ours is on
 * a device and the module's reference count is 0 (it can be unloaded; the
 * pipeline's rmmod and kmemleak scan follow).
 *
 * The C driver (HMM_DRIVER=c...) has two known Oopses (selftests/
 * expectations.txt), which the fuzzer steers around so that its run stays
 * useful: it uses only the device-private devices 0 and 1 (the coherent
 * ones fail allocations and Oops in the THP fallback), and a mapping that
 * is migrated to device d is never READ or WRITTEN through device d (with
 * invalidated mirror entries, the C driver copies from the device-private
 * page itself: dmirror_do_read+0x65). Each mapping has a home device for
 * migrations and is read and written through the other one. Even so its
 * MIGRATE_TO_DEV table race (a MADV_DONTNEED between migrate_vma_pages()
 * and finalize) Oopses it on the debug kernel (DEBUG_PAGEALLOC,
 * dmirror_do_read from the read-back), so the C driver runs with --long
 * only (make stress) and skips otherwise. The Rust driver gets
 * everything, across mappings.
 *
 * By default both drivers get the device-private devices 0 and 1 only;
 * --devices 4 and --long (make stress) add the coherent ones.
 *
 * Two variants: fuzz.base.ioctls uses no transparent huge pages, device
 * ones included (MADV_NOHUGEPAGE everywhere, and an arena one page off 2
 * MiB alignment, see FIXTURE_SETUP) and runs by default, forked children
 * included; fuzz.thp.ioctls adds THPs (MADV_HUGEPAGE, MADV_COLLAPSE, empty
 * aligned 2 MiB ranges that migrate as device THPs) and runs with --thp or
 * --long (make stress). Device THPs under munmap() and children's exits
 * hit the zap_huge_pmd() bug of Linux 7.3 (docs/kernel-bugs.md;
 * patches/0003): garbage folio->mapping in the rmap walk of
 * __migrate_device_finalize(), "Bad rss-counter state" at a child's exit.
 * An aligned arena would make device THPs of empty slots, hence the base
 * variant's arena one page off. The THP variant also hits a second kernel
 * bug: migrate_vma_pages() splitting a THP that a forked child still
 * PMD-maps (docs/kernel-bugs.md; selftests/dmirror_fork_split;
 * patches/0004); it needs both fixes. The C driver skips the THP variant.
 *
 * HMM_DMIRROR_RELEASE runs alone: it takes a lock that every other
 * operation (ioctl, mm operation, fork and its child's life) holds shared.
 * Both drivers implement it as lib/test_hmm.c does: evict the device's
 * pages, then memunmap_pages(), which waits for every page of the chunk to
 * be freed. A page that a concurrent operation holds (locked for a
 * migration that then fails, or just allocated by a MIGRATE_TO_DEV) is not
 * evicted and stays mapped in this process, so RELEASE would wait for
 * ever. In the C driver, a close racing a RELEASE also Oopses:
 * dmirror_fops_release() walks the device's chunk array without
 * devmem_lock and evicts a chunk that RELEASE just unmapped ("BUG: unable
 * to handle page fault" in migrate_device_range(), see
 * selftests/expectations.txt).
 *
 * The last close of a mirror evicts all device memory of its device with
 * migrate_device_range(), which on 7.3.4 does not pin the anon_vma of the
 * pages it unmaps: a munmap() or an exit during the eviction can free it
 * under the eviction's rmap walk (docs/kernel-bugs.md; it Oopses this
 * fuzzer on both drivers). By default a close that may be a
 * last one, a child's life (its exit frees anon_vmas and closes its own
 * mirrors) and the mm thread's munmap()s are serialised (the evict lock),
 * so that a run tests the drivers, not that bug; --evict-race and --long
 * (make stress) let them overlap.
 *
 * While it runs, the fuzzer writes one progress line every 10 s to
 * /dev/kmsg ("dmirror_fuzz: ..."), with the operation each thread is in,
 * so that a hang shows where it is in the console log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#define NDEV		4
#define NSLOTS		8
#define NVERIFIED	4
#define SLOT_PAGES	512UL		/* one 2 MiB mapping */
#define STRIDE_PAGES	1024UL		/* mapping + 2 MiB PROT_NONE guard */
#define MAX_NPAGES	1024UL		/* per-thread data buffer */
#define MAX_THREADS	8
#define NERR		134

/* Operation kinds: the 10 commands, then the invalid kinds. */
enum {
	K_UNKNOWN = 10,		/* an 'H' number the uapi does not define */
	K_BADSIZE,		/* a command number with another size or direction */
	K_BADARG,		/* a valid command, unreadable argument */
	NKINDS,
};

static const char * const kind_name[NKINDS] = {
	"READ", "WRITE", "MIGRATE_TO_DEV", "MIGRATE_TO_SYS", "SNAPSHOT",
	"EXCLUSIVE", "CHECK_EXCLUSIVE", "RELEASE", "FLAGS", "READ_UNLOCKED",
	"unknown_nr", "bad_size_dir", "bad_arg_ptr",
};

/* Default relative frequency of each kind (--weights overrides). */
static const unsigned int kind_weight[NKINDS] = {
	14, 10, 18, 14, 12, 6, 5, 1, 3, 6, 3, 3, 2,
};

/* Run parameters (set in main, before the harness forks the test). */
static uint64_t opt_seed;
static unsigned int opt_time = 40;
static unsigned long opt_count = 100000;
static unsigned int opt_threads = 3;
/* Triage: steer the Rust driver around as the C driver (see the header). */
static int opt_steer;
/* Devices used: 2 (the device-private ones) or 4 (with the coherent ones). */
static unsigned int opt_devices = 2;
static int opt_long;
/* Let closes that evict device memory race munmap() and exits (see header). */
static int opt_evict_race;
/* Triage knobs: leave out the mm thread, the forks, THP; kind weights. */
static int opt_no_mm, opt_no_fork, opt_no_thp, opt_trace, opt_thp;
/* Triage: children migrate to their slot's home device only (as --steer does). */
static int opt_child_home;
static int kmsg_fd = -1;
static unsigned int weight[NKINDS];

struct fz_thread {
	pthread_t tid;
	int id;
	uint64_t rng;
	unsigned char *buf;		/* MAX_NPAGES pages */
	int fds[NDEV];
	int kind;			/* the operation in flight, for the progress */
	int dev;
	int done;
};

static struct fz {
	char *arena;
	char *guard;			/* a PROT_NONE page */
	char *ro;			/* a read-only page */
	int ndev;
	int is_c;
	int no_mm;		/* no mm thread: --no-mm */
	int steer;		/* the C driver's restrictions (header) */
	int thp;			/* THP in the mappings (variant thp) */
	int fds[NDEV];
	pthread_rwlock_t world;		/* RELEASE (w) vs everything else (r) */
	pthread_rwlock_t prot_lock;	/* mprotect of verified slots vs readers */
	pthread_rwlock_t evict;		/* without --evict-race: see the header */
	int prot[NVERIFIED];
	int stop;
	struct timespec t0;
	unsigned long ops;
	unsigned long counts[NKINDS][NERR];
	unsigned long bad_errno, bad_result, mismatches, child_failures;
	unsigned long mm_ops, forks, cpu_checks;
	char problem[256];
	int problem_set;
	struct fz_thread thr[MAX_THREADS];
	struct fz_thread mm_thr, fork_thr;
} fz;

#define MSG(fmt, ...) fprintf(stderr, "# " fmt "\n", ##__VA_ARGS__)

/* --trace: one kernel log line per operation, before it starts. */
static void trace(const char *fmt, ...)
{
	char line[200];
	va_list ap;
	int len;

	if (!opt_trace || kmsg_fd < 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(kmsg_fd, line, len) < 0)
		opt_trace = 0;
}

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned long rndn(uint64_t *s, unsigned long n)
{
	return n ? rnd(s) % n : 0;
}

static double elapsed(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - fz.t0.tv_sec) + (t.tv_nsec - fz.t0.tv_nsec) / 1e9;
}

static void problem(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&fz.problem_set, 1, __ATOMIC_SEQ_CST))
		return;
	va_start(ap, fmt);
	vsnprintf(fz.problem, sizeof(fz.problem), fmt, ap);
	va_end(ap);
}

static char *slot_addr(int slot)
{
	return fz.arena + slot * STRIDE_PAGES * DM_PAGE_SIZE;
}

static int is_verified(int slot)
{
	return slot < NVERIFIED;
}

/* The device a slot is migrated to on the C driver (read through the other). */
static int home(int slot)
{
	return slot & 1;
}

/* Pattern of the verified page at arena page index p. */
static unsigned long gen_of(unsigned long p)
{
	return 0x100 + p / STRIDE_PAGES;
}

/* Arena page index of addr, or -1 when outside the arena. */
static long arena_page(uint64_t addr)
{
	uint64_t base = (uintptr_t)fz.arena;

	if (addr < base || addr >= base + NSLOTS * STRIDE_PAGES * DM_PAGE_SIZE)
		return -1;
	return (addr - base) / DM_PAGE_SIZE;
}

static int page_is_verified(long p)
{
	return p >= 0 && is_verified(p / STRIDE_PAGES) && p % STRIDE_PAGES < SLOT_PAGES;
}

/* Errnos each command may return (the contract of lib/test_hmm.c). */
static int errno_allowed(int kind, int err)
{
	switch (kind) {
	case 0: /* READ */
	case 9: /* READ_UNLOCKED */
		return err == EINVAL || err == EFAULT || err == EBUSY || err == ENOMEM;
	case 1: /* WRITE */
		return err == EINVAL || err == EFAULT || err == EBUSY || err == ENOMEM ||
		       err == EPERM;
	case 2: /* MIGRATE_TO_DEV */
		return err == EINVAL || err == ENOENT || err == EFAULT || err == ENOMEM;
	case 3: /* MIGRATE_TO_SYS */
		return err == EINVAL || err == ENOMEM || err == EFAULT;
	case 4: /* SNAPSHOT */
		return err == EINVAL || err == EFAULT || err == EBUSY || err == ENOMEM;
	case 5: /* EXCLUSIVE */
		return err == EINVAL || err == EFAULT || err == ENOMEM || err == ENOENT ||
		       err == EOPNOTSUPP;
	case 6: /* CHECK_EXCLUSIVE */
		return err == EINVAL || err == EPERM || err == EFAULT;
	case 7: /* RELEASE */
	case 8: /* FLAGS */
		return err == EINVAL || err == EFAULT;
	case K_UNKNOWN:
	case K_BADSIZE:
		return err == EINVAL || err == EFAULT;
	case K_BADARG:
		return err == EFAULT;
	}
	return 0;
}

static int pick_kind(uint64_t *s)
{
	unsigned int total = 0, r, k;

	for (k = 0; k < NKINDS; k++)
		total += weight[k];
	r = rndn(s, total);
	for (k = 0; k < NKINDS; k++) {
		if (r < weight[k])
			return k;
		r -= weight[k];
	}
	return 0;
}

/* A slot allowed for this command on this device (C: see the header). */
static int pick_slot(uint64_t *s, int kind, int dev)
{
	int slot = rndn(s, NSLOTS);

	if (!fz.steer)
		return slot;
	if (kind == 2)
		return (slot & ~1) | dev;
	if (kind == 0 || kind == 1 || kind == 9 || kind == 5)
		return (slot & ~1) | !dev;
	return slot;
}

/* The kinds that may touch a mapping whose pages are on the same device (C). */
static int c_restricted(int kind)
{
	return kind == 0 || kind == 1 || kind == 2 || kind == 5 || kind == 9;
}

static void pick_range(uint64_t *s, int kind, int dev, __u64 *addr, __u64 *npages)
{
	unsigned int r = rndn(s, 100);
	int slot = pick_slot(s, kind, dev);
	unsigned long start = rndn(s, SLOT_PAGES);

	if (r < 70 || (r < 80 && fz.steer && c_restricted(kind))) {
		/* Inside one mapping. */
		switch (rndn(s, 4)) {
		case 0:
			start = 0;
			*npages = SLOT_PAGES;
			break;
		case 1:
			*npages = 1 + rndn(s, 16);
			if (start + *npages > SLOT_PAGES)
				*npages = SLOT_PAGES - start;
			break;
		default:
			*npages = 1 + rndn(s, SLOT_PAGES - start);
		}
		*addr = (uintptr_t)slot_addr(slot) + start * DM_PAGE_SIZE;
	} else if (r < 80) {
		/* Across mappings and guards (any page of the arena). */
		unsigned long p = rndn(s, NSLOTS * STRIDE_PAGES);

		*npages = 1 + rndn(s, MAX_NPAGES);
		if (p + *npages > NSLOTS * STRIDE_PAGES)
			*npages = NSLOTS * STRIDE_PAGES - p;
		*addr = (uintptr_t)fz.arena + p * DM_PAGE_SIZE;
	} else if (r < 84) {
		*addr = (uintptr_t)slot_addr(slot) + start * DM_PAGE_SIZE + 1 + rndn(s, 4095);
		*npages = 1 + rndn(s, 8);
	} else if (r < 87) {
		*addr = (uintptr_t)slot_addr(slot) + start * DM_PAGE_SIZE;
		*npages = 0;
	} else if (r < 90) {
		*addr = (uintptr_t)slot_addr(slot) + start * DM_PAGE_SIZE;
		*npages = rndn(s, 2) ? (UINT64_MAX >> 12) - rndn(s, 4) : 1ULL << (52 + rndn(s, 12));
	} else if (r < 93) {
		*addr = rndn(s, 16) * DM_PAGE_SIZE;
		*npages = 1 + rndn(s, 16);
	} else if (r < 96) {
		*addr = 0xffff888000000000ULL + rndn(s, 1024) * DM_PAGE_SIZE;
		*npages = 1 + rndn(s, 16);
	} else {
		/* A PROT_NONE guard between two mappings. */
		*addr = (uintptr_t)slot_addr(slot) + (SLOT_PAGES + rndn(s, 256)) * DM_PAGE_SIZE;
		*npages = 1 + rndn(s, 64);
	}
}

/* 1 if every page of [addr, +npages) is outside the verified mappings. */
static int no_verified_page(uint64_t addr, uint64_t npages)
{
	for (uint64_t i = 0; i < npages && i < MAX_NPAGES; i++)
		if (page_is_verified(arena_page(addr + i * DM_PAGE_SIZE)))
			return 0;
	return 1;
}

/* Checks the pages of buf that mirror verified pages; returns mismatches. */
static unsigned long check_verified(const unsigned char *buf, uint64_t addr, uint64_t npages)
{
	unsigned long bad = 0;

	for (uint64_t i = 0; i < npages; i++) {
		long p = arena_page(addr + i * DM_PAGE_SIZE);

		if (page_is_verified(p) && !dm_page_is(buf + i * DM_PAGE_SIZE, p, gen_of(p)))
			bad++;
	}
	return bad;
}

static int snapshot_byte_ok(unsigned char b)
{
	unsigned char base = b & 0xf0, perm = b & 0x03;

	if (b == HMM_DMIRROR_PROT_ERROR || b == HMM_DMIRROR_PROT_NONE)
		return 1;
	if (base > HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE)
		return 0;
	return perm == HMM_DMIRROR_PROT_READ || perm == HMM_DMIRROR_PROT_WRITE;
}

/* madvise() advice, without THP on the C driver (see the header). */
static int advice(int adv)
{
	if (!fz.thp && (adv == MADV_HUGEPAGE || adv == MADV_COLLAPSE))
		return MADV_NOHUGEPAGE;
	return adv;
}

static int fd_for(struct fz_thread *t, int dev)
{
	uint64_t *s = &t->rng;

	if (t->fds[dev] >= 0 && rndn(s, 200) == 0) {
		/* The last close of a mirror evicts the device's memory. */
		if (!opt_evict_race)
			pthread_rwlock_rdlock(&fz.evict);
		close(t->fds[dev]);
		t->fds[dev] = dm_open(dev);
		if (!opt_evict_race)
			pthread_rwlock_unlock(&fz.evict);
	}
	if (t->fds[dev] >= 0 && rndn(s, 2))
		return t->fds[dev];
	return fz.fds[dev];
}

static void count(int kind, int err)
{
	__atomic_add_fetch(&fz.counts[kind][err < NERR ? err : NERR - 1], 1, __ATOMIC_RELAXED);
}

static void one_op(struct fz_thread *t)
{
	uint64_t *s = &t->rng;
	int kind = pick_kind(s);
	int dev = rndn(s, fz.ndev);
	int fd = fd_for(t, dev);
	struct hmm_dmirror_cmd cmd = { 0 };
	unsigned long request;
	void *arg = &cmd;
	unsigned int pr = rndn(s, 100);
	int ret, err;

	pick_range(s, kind, dev, &cmd.addr, &cmd.npages);
	if (kind == 8) {
		/* FLAGS: FAIL_ALLOC mostly, sometimes bits no one knows. */
		cmd.npages = rndn(s, 4) ? HMM_DMIRROR_FLAG_FAIL_ALLOC : rnd(s) >> rndn(s, 64);
		cmd.addr = (uintptr_t)slot_addr(0);
	}
	cmd.ptr = (uintptr_t)t->buf;
	if (pr >= 90) {
		if (pr < 93)
			cmd.ptr = 0;
		else if (pr < 96)
			cmd.ptr = (uintptr_t)fz.guard;
		else if (pr < 98 && kind != 1)
			cmd.ptr = (uintptr_t)fz.ro;
		else if (kind != 1 || no_verified_page(cmd.addr, cmd.npages))
			cmd.ptr = (uintptr_t)slot_addr(NVERIFIED + rndn(s, NSLOTS - NVERIFIED));
	}
	/* The data buffer holds at most MAX_NPAGES pages. */
	if (cmd.ptr == (uintptr_t)t->buf && cmd.npages > MAX_NPAGES && cmd.npages < (1ULL << 40))
		cmd.npages = MAX_NPAGES;
	if (cmd.npages > 16 * MAX_NPAGES && cmd.npages < (1ULL << 40))
		cmd.npages = 16 * MAX_NPAGES;
	if (kind == 1 && cmd.ptr == (uintptr_t)t->buf) {
		/* WRITE: the pattern on verified pages, anything elsewhere. */
		for (uint64_t i = 0; i < cmd.npages && i < MAX_NPAGES; i++) {
			long p = arena_page(cmd.addr + i * DM_PAGE_SIZE);
			unsigned char *pg = t->buf + i * DM_PAGE_SIZE;

			if (page_is_verified(p))
				dm_fill_page(pg, p, gen_of(p));
			else
				memset(pg, (int)rnd(s), 64);
		}
	}

	if (kind < K_UNKNOWN) {
		request = _IOWR('H', kind, struct hmm_dmirror_cmd);
	} else if (kind == K_UNKNOWN) {
		unsigned int nr;

		/* 0x40, 0x41, 0x43: the Rust module's test hooks (test_hooks=1). */
		do
			nr = 0x0a + rndn(s, 0xf6);
		while (nr == 0x40 || nr == 0x41 || nr == 0x43);
		request = _IOWR('H', nr, struct hmm_dmirror_cmd);
	} else if (kind == K_BADSIZE) {
		static const unsigned int sizes[] = { 0, 8, 39, 41, 48, 64, 0x3fff };
		static const unsigned int dirs[] = {
			_IOC_NONE, _IOC_READ, _IOC_WRITE, _IOC_READ | _IOC_WRITE,
		};
		unsigned int size = sizes[rndn(s, ARRAY_SIZE(sizes))];
		unsigned int dir = dirs[rndn(s, ARRAY_SIZE(dirs))];

		if (size == sizeof(cmd) && dir == (_IOC_READ | _IOC_WRITE))
			size = 0;
		request = _IOC(dir, 'H', rndn(s, 10), size);
	} else {
		static const unsigned long bad[] = { 0, 16, 4096 - 8 };

		request = _IOWR('H', rndn(s, 10), struct hmm_dmirror_cmd);
		arg = (void *)bad[rndn(s, 3)];
		if (rndn(s, 2))
			arg = fz.guard + rndn(s, 64);
	}

	t->dev = dev;
	__atomic_store_n(&t->kind, kind, __ATOMIC_RELAXED);
	trace("dmirror_fuzz: t%d %s dev %d fd %d addr 0x%llx npages 0x%llx ptr 0x%llx\n", t->id,
	      kind_name[kind], dev, fd, (unsigned long long)cmd.addr,
	      (unsigned long long)cmd.npages, (unsigned long long)cmd.ptr);
	ret = ioctl(fd, request, arg);
	err = ret ? errno : 0;
	__atomic_store_n(&t->kind, -1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&fz.ops, 1, __ATOMIC_RELAXED);
	count(kind, err);

	if (err && !errno_allowed(kind, err)) {
		__atomic_add_fetch(&fz.bad_errno, 1, __ATOMIC_RELAXED);
		problem("%s dev %d addr 0x%llx npages 0x%llx ptr 0x%llx: unexpected errno %d (%s)",
			kind_name[kind], dev, (unsigned long long)cmd.addr,
			(unsigned long long)cmd.npages, (unsigned long long)cmd.ptr, err,
			strerror(err));
		return;
	}
	if (err || kind >= K_UNKNOWN)
		return;
	if (kind == 0 || kind == 1 || kind == 2 || kind == 4 || kind == 5 || kind == 9) {
		if (cmd.cpages != cmd.npages) {
			__atomic_add_fetch(&fz.bad_result, 1, __ATOMIC_RELAXED);
			problem("%s dev %d: success with cpages %llu of %llu", kind_name[kind], dev,
				(unsigned long long)cmd.cpages, (unsigned long long)cmd.npages);
		}
	}
	if (cmd.ptr != (uintptr_t)t->buf)
		return;
	if (kind == 0 || kind == 2 || kind == 5 || kind == 9) {
		unsigned long bad = check_verified(t->buf, cmd.addr, cmd.npages);

		if (bad) {
			__atomic_add_fetch(&fz.mismatches, bad, __ATOMIC_RELAXED);
			problem("%s dev %d addr 0x%llx npages %llu: %lu verified pages wrong",
				kind_name[kind], dev, (unsigned long long)cmd.addr,
				(unsigned long long)cmd.npages, bad);
		}
	} else if (kind == 4) {
		for (uint64_t i = 0; i < cmd.npages; i++) {
			if (!snapshot_byte_ok(t->buf[i])) {
				__atomic_add_fetch(&fz.bad_result, 1, __ATOMIC_RELAXED);
				problem("SNAPSHOT dev %d: invalid byte 0x%02x", dev, t->buf[i]);
				break;
			}
		}
	}
}

static int out_of_budget(void)
{
	return __atomic_load_n(&fz.stop, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&fz.ops, __ATOMIC_RELAXED) >= opt_count ||
	       elapsed() >= opt_time;
}

static void *ioctl_thread(void *arg)
{
	struct fz_thread *t = arg;

	while (!out_of_budget()) {
		/* RELEASE alone (see the header): decided before the lock. */
		uint64_t peek = t->rng;
		int release = pick_kind(&peek) == 7;

		if (release)
			pthread_rwlock_wrlock(&fz.world);
		else
			pthread_rwlock_rdlock(&fz.world);
		one_op(t);
		pthread_rwlock_unlock(&fz.world);
	}
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* CPU check of a readable verified slot (under prot_lock). */
static void cpu_check(int slot, unsigned long first, unsigned long n)
{
	char *base = slot_addr(slot);

	for (unsigned long i = first; i < first + n && i < SLOT_PAGES; i++) {
		unsigned long p = slot * STRIDE_PAGES + i;

		if (!dm_page_is(base + i * DM_PAGE_SIZE, p, gen_of(p))) {
			__atomic_add_fetch(&fz.mismatches, 1, __ATOMIC_RELAXED);
			problem("CPU read: verified slot %d page %lu wrong", slot, i);
		}
	}
	__atomic_add_fetch(&fz.cpu_checks, 1, __ATOMIC_RELAXED);
}

static void map_churn(int slot, uint64_t *s)
{
	char *a = slot_addr(slot);
	size_t len = SLOT_PAGES * DM_PAGE_SIZE;
	int fd;

	switch (rndn(s, 4)) {
	case 0:
		/* The device's own mmap: zeroed kernel pages, VM_MIXEDMAP. */
		fd = dm_open(rndn(s, fz.ndev));
		if (fd < 0)
			break;
		if (mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
		    MAP_FAILED)
			mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		close(fd);
		break;
	case 1:
		/* Unmapped, then a placeholder so that nothing else lands here. */
		munmap(a, len);
		mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		break;
	default:
		if (mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == MAP_FAILED)
			break;
		madvise(a, len, advice(rndn(s, 2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
		for (unsigned long i = rndn(s, 8); i < SLOT_PAGES; i += 1 + rndn(s, 16))
			a[i * DM_PAGE_SIZE] = (char)i;
	}
}

/*
 * One mm operation on a slot: map/unmap/protect/advise a churn mapping,
 * protect/advise/read a verified one.
 */
static void mm_op(uint64_t *s, int slot, unsigned long first, unsigned long n)
{
	/* Advice that keeps the data (and the mapping in forked children). */
	static const int safe_advice[] = {
		MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED,
		MADV_COLLAPSE, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
	};
	static const int churn_advice[] = {
		MADV_DONTNEED, MADV_FREE, MADV_DONTFORK, MADV_DOFORK, MADV_COLLAPSE,
		MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT, MADV_COLD,
	};
	static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE };
	char *a = slot_addr(slot) + first * DM_PAGE_SIZE;
	int r = rndn(s, 100);

	trace("dmirror_fuzz: mm slot %d r %d pages %lu+%lu\n", slot, r, first, n);
	if (!is_verified(slot)) {
		if (r < 40 && !opt_evict_race) {
			/* It unmaps (frees anon_vmas) and may close a last mirror. */
			pthread_rwlock_wrlock(&fz.evict);
			map_churn(slot, s);
			pthread_rwlock_unlock(&fz.evict);
		} else if (r < 40) {
			map_churn(slot, s);
		} else if (r < 60)
			mprotect(a, n * DM_PAGE_SIZE, prots[rndn(s, 3)]);
		else
			madvise(a, n * DM_PAGE_SIZE,
				advice(churn_advice[rndn(s, ARRAY_SIZE(churn_advice))]));
		return;
	}
	if (r < 30) {
		/* Change the protection of a whole verified mapping. */
		int p = rndn(s, 2) ? 0 : 1 + rndn(s, 2);

		pthread_rwlock_wrlock(&fz.prot_lock);
		if (!mprotect(slot_addr(slot), SLOT_PAGES * DM_PAGE_SIZE, prots[p]))
			fz.prot[slot] = p;
		pthread_rwlock_unlock(&fz.prot_lock);
	} else if (r < 60) {
		madvise(a, n * DM_PAGE_SIZE, advice(safe_advice[rndn(s, ARRAY_SIZE(safe_advice))]));
	} else {
		/* Read it with the CPU: faults device pages back. */
		pthread_rwlock_rdlock(&fz.prot_lock);
		if (fz.prot[slot] != 2)
			cpu_check(slot, first, n < 64 ? n : 64);
		pthread_rwlock_unlock(&fz.prot_lock);
	}
}

static void *mm_thread(void *arg)
{
	struct fz_thread *t = arg;
	uint64_t *s = &t->rng;

	while (!out_of_budget()) {
		int slot = rndn(s, NSLOTS);
		unsigned long first = rndn(s, SLOT_PAGES), n = 1 + rndn(s, SLOT_PAGES - first);

		__atomic_add_fetch(&fz.mm_ops, 1, __ATOMIC_RELAXED);
		t->kind = 100;
		pthread_rwlock_rdlock(&fz.world);
		mm_op(s, slot, first, n);
		pthread_rwlock_unlock(&fz.world);
		t->kind = -1;
	}
	return NULL;
}

/*
 * In a forked child: check the readable verified mappings, migrate part of
 * one to a device and read it back, then write garbage over the child's own
 * copy (copy-on-write: the parent must not see it). Exit status: the number
 * of wrong pages (capped), 100 + n for a failed step.
 */
static void child(struct fz_thread *t, const int *prot)
{
	uint64_t *s = &t->rng;
	unsigned long bad = 0;
	int slot = rndn(s, NVERIFIED), dev, fd;
	uint64_t cpages;

	for (int v = 0; v < NVERIFIED; v++) {
		if (prot[v] == 2)
			continue;
		for (unsigned long i = 0; i < SLOT_PAGES; i += 1 + rndn(s, 32)) {
			unsigned long p = v * STRIDE_PAGES + i;

			bad += !dm_page_is(slot_addr(v) + i * DM_PAGE_SIZE, p, gen_of(p));
		}
	}
	if (prot[slot] != 2) {
		unsigned long first = rndn(s, SLOT_PAGES), n = 1 + rndn(s, SLOT_PAGES - first);
		uint64_t addr = (uintptr_t)slot_addr(slot) + first * DM_PAGE_SIZE;
		int ret;

		dev = fz.steer || opt_child_home ? home(slot) : (int)rndn(s, fz.ndev);
		fd = dm_open(dev);
		if (fd < 0)
			_exit(101);
		ret = dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, (void *)addr, t->buf, n, &cpages);
		if (ret && ret != -ENOENT)
			_exit(102);
		if (!ret)
			bad += check_verified(t->buf, addr, n);
		for (unsigned long i = 0; i < n; i++) {
			unsigned long p = slot * STRIDE_PAGES + first + i;

			bad += !dm_page_is((char *)addr + i * DM_PAGE_SIZE, p, gen_of(p));
		}
		close(fd);
		if (prot[slot] == 0)
			memset((char *)addr, 0xee, n * DM_PAGE_SIZE);
	}
	_exit(bad > 99 ? 99 : bad);
}

static void *fork_thread(void *arg)
{
	struct fz_thread *t = arg;
	int status;

	while (!out_of_budget()) {
		int prot[NVERIFIED];
		pid_t pid;

		/* The child lives under the shared world lock (RELEASE waits). */
		t->kind = 101;
		pthread_rwlock_rdlock(&fz.world);
		/* Its exit both frees anon_vmas and closes its own mirrors. */
		if (!opt_evict_race)
			pthread_rwlock_wrlock(&fz.evict);
		pthread_rwlock_rdlock(&fz.prot_lock);
		memcpy(prot, fz.prot, sizeof(prot));
		rnd(&t->rng);
		trace("dmirror_fuzz: fork\n");
		pid = fork();
		if (pid == 0)
			child(t, prot);
		pthread_rwlock_unlock(&fz.prot_lock);
		if (pid > 0 && waitpid(pid, &status, 0) != pid)
			status = -1;
		if (!opt_evict_race)
			pthread_rwlock_unlock(&fz.evict);
		pthread_rwlock_unlock(&fz.world);
		t->kind = -1;
		if (pid < 0)
			continue;
		__atomic_add_fetch(&fz.forks, 1, __ATOMIC_RELAXED);
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status)) {
			__atomic_add_fetch(&fz.child_failures, 1, __ATOMIC_RELAXED);
			problem("forked child: status 0x%x", status);
		}
		usleep(20000);
	}
	return NULL;
}

static int all_done(void)
{
	for (unsigned int i = 0; i < opt_threads; i++)
		if (!__atomic_load_n(&fz.thr[i].done, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

static const char *op_name(int kind)
{
	if (kind < 0)
		return "-";
	if (kind < NKINDS)
		return kind_name[kind];
	return kind == 100 ? "mm" : "fork";
}

/* Every 10 s a line in the kernel log: where each thread is. */
static void progress(void)
{
	static double last;
	char line[256];
	int len, fd;

	usleep(100000);
	if (elapsed() - last < 10)
		return;
	last = elapsed();
	len = snprintf(line, sizeof(line), "dmirror_fuzz: %.0f s, %lu ioctls, in flight:",
		       last, __atomic_load_n(&fz.ops, __ATOMIC_RELAXED));
	for (unsigned int i = 0; i < opt_threads; i++)
		len += snprintf(line + len, sizeof(line) - len, " %s/%d",
				op_name(__atomic_load_n(&fz.thr[i].kind, __ATOMIC_RELAXED)),
				fz.thr[i].dev);
	len += snprintf(line + len, sizeof(line) - len, " %s %s\n",
			op_name(__atomic_load_n(&fz.mm_thr.kind, __ATOMIC_RELAXED)),
			op_name(__atomic_load_n(&fz.fork_thr.kind, __ATOMIC_RELAXED)));
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, line, len) < 0)
			len = 0;
		close(fd);
	}
}

static void print_counts(void)
{
	char line[1024];

	MSG("ioctls per command and result (0 = success, else errno):");
	for (int k = 0; k < NKINDS; k++) {
		int len = snprintf(line, sizeof(line), "%-16s", kind_name[k]);
		unsigned long total = 0;

		for (int e = 0; e < NERR; e++) {
			if (!fz.counts[k][e])
				continue;
			total += fz.counts[k][e];
			len += snprintf(line + len, sizeof(line) - len, " %s=%lu",
					e ? strerrorname_np(e) ?: "?" : "ok", fz.counts[k][e]);
		}
		MSG("  %s total=%lu", line, total);
	}
}

/* The module's reference count from sysfs, or -1. */
static long module_refcnt(void)
{
	const char *ko = getenv("HMM_MODULE");
	char name[64], path[128];
	const char *b;
	FILE *f;
	long n = -1;

	if (!ko)
		return -1;
	b = strrchr(ko, '/');
	snprintf(name, sizeof(name), "%s", b ? b + 1 : ko);
	if (strlen(name) > 3 && !strcmp(name + strlen(name) - 3, ".ko"))
		name[strlen(name) - 3] = 0;
	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* Device-page bytes (any device) in a SNAPSHOT of a verified slot. */
static long device_pages(int fd, int slot, unsigned char *snap)
{
	long n = 0;
	uint64_t cpages;

	if (dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, slot_addr(slot), snap, SLOT_PAGES, &cpages))
		return -1;
	for (unsigned long i = 0; i < SLOT_PAGES; i++) {
		unsigned char base = snap[i] & 0xf0;

		n += snap[i] != HMM_DMIRROR_PROT_ERROR && base >= HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
	}
	return n;
}

FIXTURE(fuzz)
{
	int dummy;
};

/* base: no THP anywhere (both drivers); thp: THPs in the mappings. */
FIXTURE_VARIANT(fuzz)
{
	int thp;
};

FIXTURE_VARIANT_ADD(fuzz, base)
{
	.thp = 0,
};

FIXTURE_VARIANT_ADD(fuzz, thp)
{
	.thp = 1,
};

FIXTURE_SETUP(fuzz)
{
	const char *drv = getenv("HMM_DRIVER");
	size_t len = (NSLOTS * STRIDE_PAGES + SLOT_PAGES) * DM_PAGE_SIZE;
	pthread_rwlockattr_t attr;
	char *r;
	int d;

	fz.is_c = drv && drv[0] == 'c' && (drv[1] == 0 || drv[1] == '.');
	fz.steer = fz.is_c || opt_steer;
	/*
	 * The C driver keeps the MIGRATE_TO_DEV table race that the Rust port
	 * fixed: a MADV_DONTNEED between migrate_vma_pages() and
	 * migrate_vma_finalize() leaves a mirror entry to a freed page, and the
	 * read-back copies from it (DEBUG_PAGEALLOC Oops in dmirror_do_read, see
	 * selftests/expectations.txt). It Oopsed that way with the mm thread,
	 * and on the debug kernel of a clean-clone make check even without it,
	 * which took the rest of that boot's C run down. It runs with --long
	 * only (make stress).
	 */
	if (fz.is_c && !opt_long)
		SKIP(return, "C driver: Oopses under the fuzzer (use-after-free in dmirror_do_read, DEBUG_PAGEALLOC; see expectations.txt); runs with --long (make stress)");
	fz.no_mm = opt_no_mm;
	fz.thp = variant->thp && !opt_no_thp;
	if (variant->thp && fz.is_c)
		SKIP(return, "C driver: device-private THPs under forks and mm churn Oops (remove_migration_ptes, garbage folio->mapping; see expectations.txt)");
	if (variant->thp && !opt_thp)
		SKIP(return, "device-private THPs under forks and mm churn Oops both drivers on 7.3.4 (kernel bugs fixed by patches/0003 and 0004, docs/kernel-bugs.md); runs with --thp or --long (make stress)");
	for (d = 0; d < NDEV; d++)
		fz.fds[d] = -1;
	fz.fds[0] = dm_open(0);
	if (fz.fds[0] < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	fz.fds[1] = dm_open(1);
	ASSERT_LE(0, fz.fds[1]);
	fz.ndev = 2;
	if (opt_devices == NDEV) {
		fz.fds[2] = dm_open(2);
		fz.fds[3] = dm_open(3);
		if (fz.fds[2] >= 0 && fz.fds[3] >= 0)
			fz.ndev = 4;
	}

	/*
	 * An arena of NSLOTS mappings, each followed by a guard: 2 MiB aligned
	 * with THP, else one page off, so that no mapping holds an aligned
	 * 2 MiB range. A migration to a device of an empty aligned 2 MiB range
	 * allocates a device-private THP (MIGRATE_VMA_SELECT_COMPOUND, both
	 * drivers), and device THPs under munmap()s and forked children's exits
	 * hit the zap_huge_pmd() bug of Linux 7.3 (docs/kernel-bugs.md;
	 * patches/0003). The base variant
	 * stays THP-free, device THPs included; the THP variant has them all.
	 */
	r = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	fz.arena = (char *)(((uintptr_t)r + DM_TWOMEG - 1) & ~(DM_TWOMEG - 1));
	if (!fz.thp)
		fz.arena += DM_PAGE_SIZE;
	fz.guard = slot_addr(0) + SLOT_PAGES * DM_PAGE_SIZE;
	for (int slot = 0; slot < NSLOTS; slot++) {
		char *a = slot_addr(slot);

		ASSERT_NE(MAP_FAILED, mmap(a, SLOT_PAGES * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
		madvise(a, SLOT_PAGES * DM_PAGE_SIZE,
			advice(slot % 3 ? MADV_NOHUGEPAGE : MADV_HUGEPAGE));
		for (unsigned long i = 0; i < SLOT_PAGES; i++) {
			unsigned long p = slot * STRIDE_PAGES + i;

			dm_fill_page(a + i * DM_PAGE_SIZE, p, gen_of(p));
		}
	}

	fz.ro = mmap(NULL, DM_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fz.ro);
	/* RELEASE must not starve behind the other threads' shared holds. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fz.world, &attr);
	pthread_rwlock_init(&fz.prot_lock, NULL);
	pthread_rwlock_init(&fz.evict, NULL);
}

FIXTURE_TEARDOWN(fuzz)
{
}

static void setup_thread(struct fz_thread *t, int id)
{
	t->id = id;
	t->kind = -1;
	t->rng = opt_seed * 1000003ULL + id;
	t->buf = mmap(NULL, MAX_NPAGES * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	for (int d = 0; d < NDEV; d++)
		t->fds[d] = d < fz.ndev ? dm_open(d) : -1;
}

TEST_F_TIMEOUT(fuzz, ioctls, 3000)
{
	unsigned char *snap = malloc(SLOT_PAGES);
	long before[NVERIFIED] = { 0 }, n, refcnt;
	unsigned long bad = 0;
	uint64_t cpages;
	unsigned int i;
	int d, slot;

	ASSERT_NE(NULL, snap);
	MSG("seed %llu (replay: dmirror_fuzz --seed %llu), driver %s, devices %d%s, %u ioctl threads, budget %u s / %lu ioctls%s",
	    (unsigned long long)opt_seed, (unsigned long long)opt_seed,
	    getenv("HMM_DRIVER") ?: "?", fz.ndev,
	    fz.ndev == 2 ? " (device-private only; --devices 4 adds the coherent ones, see the header)" : "",
	    opt_threads, opt_time, opt_count,
	    fz.steer ? " (no READ/WRITE through a mapping's home device 0/1, as for the C driver)" : "");
	MSG("THP %s", fz.thp ? "on (MADV_HUGEPAGE, MADV_COLLAPSE)" : "off (MADV_NOHUGEPAGE everywhere)");
	if (opt_evict_race)
		MSG("evict race on: closes that evict device memory race munmap() and exits");
	else
		MSG("evict race off: closes that may evict device memory, munmap() and a child's exit are serialised (kernel bug, docs/kernel-bugs.md; --evict-race turns it on)");
	if (fz.no_mm || opt_no_fork || opt_no_thp || opt_child_home)
		MSG("triage:%s%s%s%s", fz.no_mm ? " no mm thread" : "",
		    opt_no_fork ? " no forks" : "", opt_no_thp ? " no THP" : "",
		    opt_child_home ? " children migrate to the home device" : "");

	kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kmsg_fd >= 0) {
		char line[96];
		int len = snprintf(line, sizeof(line), "dmirror_fuzz: seed %llu, %s\n",
				   (unsigned long long)opt_seed, fz.thp ? "THP" : "no THP");

		if (write(kmsg_fd, line, len) < 0)
			MSG("/dev/kmsg: %s", strerror(errno));
	}
	if (opt_trace) {
		/* Not rate-limited, every line counts. */
		int fd = open("/proc/sys/kernel/printk_devkmsg", O_WRONLY | O_CLOEXEC);

		if (fd >= 0 && write(fd, "on", 2) < 0)
			MSG("printk_devkmsg: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &fz.t0);
	for (i = 0; i < opt_threads; i++) {
		setup_thread(&fz.thr[i], i);
		ASSERT_NE(MAP_FAILED, fz.thr[i].buf);
	}
	setup_thread(&fz.mm_thr, 100);
	setup_thread(&fz.fork_thr, 101);
	ASSERT_NE(MAP_FAILED, fz.fork_thr.buf);
	for (i = 0; i < opt_threads; i++)
		ASSERT_EQ(0, pthread_create(&fz.thr[i].tid, NULL, ioctl_thread, &fz.thr[i]));
	if (!fz.no_mm)
		ASSERT_EQ(0, pthread_create(&fz.mm_thr.tid, NULL, mm_thread, &fz.mm_thr));
	if (!opt_no_fork)
		ASSERT_EQ(0, pthread_create(&fz.fork_thr.tid, NULL, fork_thread, &fz.fork_thr));
	while (!all_done())
		progress();
	for (i = 0; i < opt_threads; i++)
		pthread_join(fz.thr[i].tid, NULL);
	__atomic_store_n(&fz.stop, 1, __ATOMIC_RELAXED);
	if (!fz.no_mm)
		pthread_join(fz.mm_thr.tid, NULL);
	if (!opt_no_fork)
		pthread_join(fz.fork_thr.tid, NULL);

	MSG("%lu ioctls in %.1f s, %lu mm operations, %lu forks, %lu CPU checks",
	    fz.ops, elapsed(), fz.mm_ops, fz.forks, fz.cpu_checks);
	print_counts();

	/* Every verified mapping back to read/write, no FAIL_ALLOC pending. */
	for (slot = 0; slot < NVERIFIED; slot++)
		ASSERT_EQ(0, mprotect(slot_addr(slot), SLOT_PAGES * DM_PAGE_SIZE,
				      PROT_READ | PROT_WRITE));
	for (d = 0; d < fz.ndev; d++)
		ASSERT_EQ(0, dm_cmd(fz.fds[d], HMM_DMIRROR_FLAGS, slot_addr(0), NULL, 2, NULL));

	/* MIGRATE_TO_SYS through every device empties the verified mappings. */
	for (slot = 0; slot < NVERIFIED; slot++) {
		for (d = 0; d < fz.ndev; d++) {
			n = device_pages(fz.fds[d], slot, snap);
			if (n > before[slot])
				before[slot] = n;
		}
		for (d = 0; d < fz.ndev; d++)
			EXPECT_EQ(0, dm_cmd(fz.fds[d], HMM_DMIRROR_MIGRATE_TO_SYS, slot_addr(slot),
					    NULL, SLOT_PAGES, &cpages));
		for (d = 0; d < fz.ndev; d++)
			EXPECT_EQ(0, device_pages(fz.fds[d], slot, snap));
		for (i = 0; i < SLOT_PAGES; i++) {
			unsigned long p = slot * STRIDE_PAGES + i;

			bad += !dm_page_is(slot_addr(slot) + i * DM_PAGE_SIZE, p, gen_of(p));
		}
	}
	MSG("device pages in the verified mappings at the end: %ld %ld %ld %ld; wrong pages: %lu",
	    before[0], before[1], before[2], before[3], bad);

	/*
	 * RELEASE with pages on devices 0 and 1 (all in system memory now, the
	 * CPU check undid EXCLUSIVE's entries): evicted, intact.
	 */
	for (slot = 0; slot < 2; slot++)
		EXPECT_EQ(0, dm_cmd(fz.fds[home(slot)], HMM_DMIRROR_MIGRATE_TO_DEV,
				    slot_addr(slot), fz.thr[0].buf, SLOT_PAGES, &cpages));
	for (d = 0; d < fz.ndev; d++)
		EXPECT_EQ(0, dm_cmd(fz.fds[d], HMM_DMIRROR_RELEASE, slot_addr(0), NULL, 1, NULL));
	for (slot = 0; slot < 2; slot++) {
		for (d = 0; d < fz.ndev; d++)
			EXPECT_EQ(0, device_pages(fz.fds[d], slot, snap));
		for (i = 0; i < SLOT_PAGES; i++) {
			unsigned long p = slot * STRIDE_PAGES + i;

			bad += !dm_page_is(slot_addr(slot) + i * DM_PAGE_SIZE, p, gen_of(p));
		}
	}

	/*
	 * Put pages on devices 0 and 1 again, then close everything: the last
	 * close evicts the device memory, nothing of ours stays on a device.
	 */
	for (slot = 0; slot < 2; slot++) {
		char *buf = (char *)fz.thr[0].buf;

		n = dm_cmd(fz.fds[home(slot)], HMM_DMIRROR_MIGRATE_TO_DEV, slot_addr(slot), buf,
			   SLOT_PAGES, &cpages);
		EXPECT_EQ(0, n);
		if (!n)
			EXPECT_EQ(0UL, check_verified((unsigned char *)buf,
						    (uintptr_t)slot_addr(slot), SLOT_PAGES));
	}
	for (slot = NVERIFIED; slot < NSLOTS; slot++)
		mmap(slot_addr(slot), SLOT_PAGES * DM_PAGE_SIZE, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	for (d = 0; d < NDEV; d++) {
		for (i = 0; i < opt_threads; i++)
			if (fz.thr[i].fds[d] >= 0)
				close(fz.thr[i].fds[d]);
		if (fz.mm_thr.fds[d] >= 0)
			close(fz.mm_thr.fds[d]);
		if (fz.fork_thr.fds[d] >= 0)
			close(fz.fork_thr.fds[d]);
		if (fz.fds[d] >= 0)
			close(fz.fds[d]);
	}
	refcnt = module_refcnt();
	MSG("module reference count after the last close: %ld", refcnt);
	if (refcnt >= 0)
		EXPECT_EQ(0, refcnt);
	/* A SNAPSHOT shows only its own device's private pages: ask each. */
	for (d = 0; d < fz.ndev; d++) {
		fz.fds[d] = dm_open(d);
		ASSERT_LE(0, fz.fds[d]);
		for (slot = 0; slot < NVERIFIED; slot++)
			EXPECT_EQ(0, device_pages(fz.fds[d], slot, snap));
		close(fz.fds[d]);
	}
	for (slot = 0; slot < NVERIFIED; slot++) {
		for (i = 0; i < SLOT_PAGES; i++) {
			unsigned long p = slot * STRIDE_PAGES + i;

			bad += !dm_page_is(slot_addr(slot) + i * DM_PAGE_SIZE, p, gen_of(p));
		}
	}

	MSG("unexpected errnos %lu, bad results %lu, data mismatches %lu (+%lu at the end), failed children %lu",
	    fz.bad_errno, fz.bad_result, fz.mismatches, bad, fz.child_failures);
	if (fz.problem_set)
		MSG("first problem: %s", fz.problem);
	EXPECT_EQ(0UL, fz.bad_errno);
	EXPECT_EQ(0UL, fz.bad_result);
	EXPECT_EQ(0UL, fz.mismatches);
	EXPECT_EQ(0UL, bad);
	EXPECT_EQ(0UL, fz.child_failures);
	EXPECT_LT(0UL, fz.ops);
	free(snap);
}

static void print_help(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--seed N] [--time S] [--count N] [--threads N] [--long] [--thp]\n"
		"       [--evict-race] [harness options]\n"
		"  --thp: also run the variant with THPs (--long does)\n"
		"  --evict-race: closes that evict device memory may overlap munmap() and a\n"
		"    child's exit (--long does; off by default: docs/kernel-bugs.md)\n"
		"  --devices 2|4: the device-private ones (default) or all four (--long does)\n"
		"  triage: [--no-mm] [--no-fork] [--no-thp] [--trace] [--steer (as for C)]\n"
		"  [--child-home (children migrate to the home device only, as with --steer)]\n"
		"  [--weights W0,W1,...] (per kind:\n"
		"  READ WRITE MIGRATE_TO_DEV MIGRATE_TO_SYS SNAPSHOT EXCLUSIVE CHECK_EXCLUSIVE\n"
		"  RELEASE FLAGS READ_UNLOCKED unknown bad_size bad_arg)\n"
		"  env: HMM_FUZZ_SEED, HMM_FUZZ_TIME, HMM_FUZZ_COUNT, HMM_FUZZ_LONG=1\n"
		"  defaults: time %u s, count %lu, 3 threads; --long: 600 s, 5000000\n",
		argv0, opt_time, opt_count);
}

/* One "--name value" option of ours: 1 if it was one. */
static int parse_opt(const char *name, const char *value, int *have_seed)
{
	if (!strcmp(name, "--seed")) {
		opt_seed = strtoull(value, NULL, 0);
		*have_seed = 1;
	} else if (!strcmp(name, "--time")) {
		opt_time = strtoul(value, NULL, 0);
	} else if (!strcmp(name, "--count")) {
		opt_count = strtoul(value, NULL, 0);
	} else if (!strcmp(name, "--threads")) {
		opt_threads = strtoul(value, NULL, 0);
	} else if (!strcmp(name, "--devices")) {
		opt_devices = strtoul(value, NULL, 0);
	} else if (!strcmp(name, "--weights")) {
		for (int k = 0; k < NKINDS && value; k++) {
			weight[k] = strtoul(value, NULL, 0);
			value = strchr(value, ',');
			value = value ? value + 1 : NULL;
		}
	} else {
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	char *hargv[argc + 1];
	int hargc = 0, have_seed = 0;
	struct timespec ts;

	if (getenv("HMM_FUZZ_LONG") && atoi(getenv("HMM_FUZZ_LONG")))
		opt_long = opt_thp = 1;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--long"))
			opt_long = opt_thp = 1;
	opt_evict_race = opt_long;
	if (opt_long) {
		opt_devices = NDEV;
		opt_time = 600;
		opt_count = 5000000;
	}
	if (getenv("HMM_FUZZ_SEED")) {
		opt_seed = strtoull(getenv("HMM_FUZZ_SEED"), NULL, 0);
		have_seed = 1;
	}
	if (getenv("HMM_FUZZ_TIME"))
		opt_time = strtoul(getenv("HMM_FUZZ_TIME"), NULL, 0);
	if (getenv("HMM_FUZZ_COUNT"))
		opt_count = strtoul(getenv("HMM_FUZZ_COUNT"), NULL, 0);

	memcpy(weight, kind_weight, sizeof(weight));
	hargv[hargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			print_help(argv[0]);
			return 0;
		}
		if (!strcmp(argv[i], "--long")) {
			opt_thp = 1;
			continue;
		}
		if (!strcmp(argv[i], "--thp")) {
			opt_thp = 1;
			continue;
		}
		if (!strcmp(argv[i], "--evict-race")) {
			opt_evict_race = 1;
			continue;
		}
		if (!strcmp(argv[i], "--steer")) {
			opt_steer = 1;
			continue;
		}
		if (!strcmp(argv[i], "--child-home")) {
			opt_child_home = 1;
			continue;
		}
		if (!strcmp(argv[i], "--trace")) {
			opt_trace = 1;
			continue;
		}
		if (!strcmp(argv[i], "--no-mm") || !strcmp(argv[i], "--no-fork") ||
		    !strcmp(argv[i], "--no-thp")) {
			opt_no_mm |= !strcmp(argv[i], "--no-mm");
			opt_no_fork |= !strcmp(argv[i], "--no-fork");
			opt_no_thp |= !strcmp(argv[i], "--no-thp");
			continue;
		}
		if (i + 1 < argc && parse_opt(argv[i], argv[i + 1], &have_seed)) {
			i++;
			continue;
		}
		hargv[hargc++] = argv[i];
	}
	if (opt_threads < 1 || opt_threads > MAX_THREADS ||
	    (opt_devices != 2 && opt_devices != NDEV)) {
		print_help(argv[0]);
		return KSFT_FAIL;
	}
	hargv[hargc] = NULL;
	if (!have_seed) {
		clock_gettime(CLOCK_REALTIME, &ts);
		opt_seed = (uint64_t)ts.tv_sec * 1000003ULL ^ ts.tv_nsec ^ getpid();
	}
	return test_harness_run(hargc, hargv);
}
