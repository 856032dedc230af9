// SPDX-License-Identifier: GPL-2.0
/*
 * Module unload/load cycling with live users of device memory:
 *   dmirror_modcycle [--cycles N] [--long]   (or HMM_MODCYCLE_CYCLES, HMM_FUZZ_LONG=1)
 * Default 50 cycles, 100 with --long (make stress); "--seed N", meant for
 * dmirror_fuzz in the same SUITE_ARGS, is ignored. Needs HMM_MODULE (the
 * .ko in the guest) and HMM_MODULE_PARAMS, which qemu/init sets; the module
 * name is the .ko's basename. rmmod and insmod are busybox's, run with
 * fork/exec.
 *
 * Each cycle, with the module loaded:
 *  1. three worker processes map and fill buffers (one a 2 MiB THP) and
 *     migrate them to /dev/hmm_dmirror0 and 1 (one worker to both);
 *  2. rmmod while they hold the devices open must fail, and harm nothing;
 *  3. the workers close the devices, keeping their memory: the last close
 *     evicts the device memory to system RAM (lib/test_hmm.c
 *     dmirror_fops_release(), kept by the Rust port), so no page of theirs
 *     should still be a device entry (/proc/self/pagemap, counted);
 *  4. rmmod succeeds while the workers are alive (the driver evicts what
 *     is left at unload) and every worker reads all its data back intact;
 *  5. insmod with the same parameters; each worker migrates its buffer to
 *     the other device of the new module instance and checks the read-back;
 *  6. then (all of them, so that no close evicts a device under another's
 *     migration) each migrates it back, checks the data, closes and exits.
 * At the end the module is loaded again (the pipeline's own rmmod follows).
 * Printed: cycles run, data mismatches, device entries left after close.
 *
 * A second test, exit_with_device_pages, reloads the module, then lets the
 * same three workers exit with their pages (one a THP) still on the
 * devices and the devices open: the last close, after the exit has torn
 * the address space down, evicts the device memory. The THP worker has
 * device 1 to itself: when its THP's device was evicted by another
 * worker's close while its exit unmapped the THP, both drivers Oopsed
 * ("BUG: unable to handle page fault", RIP copy_page <- folio_copy <- the
 * chunk eviction): the kernel bug of docs/kernel-bugs.md, "zap_huge_pmd()
 * puts a device-private folio behind a migration entry" (patches/0003;
 * selftests/dmirror_zap_race reproduces it). The two order-0 workers share
 * device 0 and exit one after the other: the close of the first (worker 1)
 * evicts the pages of the second (worker 2) while worker 2 lives, which
 * then checks them (intact, none left on the device), migrates them to
 * device 0 again and exits with them. Their exits do not overlap because
 * an eviction racing the exit of the process whose pages it evicts is
 * another kernel bug of docs/kernel-bugs.md, "migrate_device_range() does
 * not pin the anon_vma" (patches/0001, make repro): with overlapping exits
 * the C driver can Oops on the debug kernel (RIP rmap_walk_anon
 * <- remove_migration_ptes <- __migrate_device_finalize <-
 * dmirror_device_evict_chunk <- dmirror_fops_release). It runs last and
 * waits for the workers with a timeout (an Oopsed worker never exits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define NWORKERS	3
#define WORKER_PAGES	512UL		/* 2 MiB */

static unsigned int opt_cycles = 50;

enum { CMD_CLOSE = 1, CMD_VERIFY, CMD_AGAIN, CMD_BACK, CMD_EXIT };

/* What a worker reports for each step: 0 or an error code, and a count. */
struct report {
	int code;
	long count;
};

static const char *module_name(void)
{
	static char name[64];
	const char *ko = getenv("HMM_MODULE"), *b;

	b = strrchr(ko, '/');
	snprintf(name, sizeof(name), "%s", b ? b + 1 : ko);
	if (strlen(name) > 3 && !strcmp(name + strlen(name) - 3, ".ko"))
		name[strlen(name) - 3] = 0;
	return name;
}

/* Run argv (busybox applet) with output to /dev/null if quiet; exit status. */
static int run(char **argv, int quiet)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int do_rmmod(int quiet)
{
	char *argv[3];

	argv[0] = "rmmod";
	argv[1] = (char *)module_name();
	argv[2] = NULL;
	return run(argv, quiet);
}

static int do_insmod(void)
{
	char params[512], *argv[32];
	const char *p = getenv("HMM_MODULE_PARAMS");
	int argc = 0;

	argv[argc++] = "insmod";
	argv[argc++] = getenv("HMM_MODULE");
	snprintf(params, sizeof(params), "%s", p ? p : "");
	for (char *tok = strtok(params, " \t"); tok && argc < 31; tok = strtok(NULL, " \t"))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return run(argv, 0);
}

static int module_loaded(void)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/module/%s", module_name());
	return !stat(path, &st);
}

/* Device entries (non-present, swap-type pagemap entries) in [buf, +n). */
static long device_entries(const char *buf, unsigned long n)
{
	uint64_t e;
	long count = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return -1;
	for (unsigned long i = 0; i < n; i++) {
		off_t off = ((uintptr_t)buf / DM_PAGE_SIZE + i) * sizeof(e);

		if (pread(fd, &e, sizeof(e), off) != sizeof(e)) {
			count = -1;
			break;
		}
		count += (e >> 62 & 3) == 1;	/* swapped, not present */
	}
	close(fd);
	return count;
}

static int open_dev(int dev)
{
	int fd;

	for (int i = 0; i < 50; i++) {
		fd = dm_open(dev);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		usleep(20000);
	}
	return -1;
}

static void drain_lru(void)
{
	int fd = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, "1", 1) != 1)
		fprintf(stderr, "# compact_memory: %s\n", strerror(errno));
	close(fd);
}

static int read_u64(const char *path, uint64_t index, uint64_t *v)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ok;

	if (fd < 0)
		return -1;
	ok = pread(fd, v, sizeof(*v), index * sizeof(*v)) == sizeof(*v);
	close(fd);
	return ok ? 0 : -1;
}

/*
 * Print the pages of [buf, +n) that a migration to the device left in system
 * memory (present in /proc/self/pagemap), at most four, with their kernel
 * page flags (/proc/kpageflags bits: 0 locked, 5 lru, 12 anon, 22 thp) and
 * map count, so that a failure says why migrate_vma refused them.
 */
static void explain_left_behind(const char *buf, unsigned long n)
{
	unsigned long shown = 0, left = 0;

	for (unsigned long i = 0; i < n; i++) {
		uint64_t e, pfn, flags = 0, count = 0;

		if (read_u64("/proc/self/pagemap", (uintptr_t)buf / DM_PAGE_SIZE + i, &e) ||
		    !(e >> 63 & 1))
			continue;
		left++;
		if (shown++ >= 4)
			continue;
		pfn = e & ((1ULL << 55) - 1);
		read_u64("/proc/kpageflags", pfn, &flags);
		read_u64("/proc/kpagecount", pfn, &count);
		fprintf(stderr, "# page %lu left in system memory: pfn %#llx kpageflags %#llx (locked %d lru %d thp %d) mapcount %llu\n",
			i, (unsigned long long)pfn, (unsigned long long)flags,
			(int)(flags & 1), (int)(flags >> 5 & 1), (int)(flags >> 22 & 1),
			(unsigned long long)count);
	}
	fprintf(stderr, "# %lu of %lu pages left in system memory\n", left, n);
}

/*
 * The pages of [buf, +n) that the mirror behind fd has no entry for: a
 * one-page MIGRATE_TO_DEV of a page already on the device migrates nothing
 * and its read-back fails with -ENOENT exactly then. Printed with what
 * SNAPSHOT says of them (0x20 private here, 0x30 private elsewhere).
 */
static void explain_holes(int fd, char *buf, unsigned long n, char *out)
{
	unsigned char *snap = malloc(n);
	unsigned long holes = 0;
	uint64_t cpages;

	if (!snap || dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, buf, snap, n, NULL)) {
		fprintf(stderr, "# SNAPSHOT failed\n");
		free(snap);
		return;
	}
	for (unsigned long i = 0; i < n; i++) {
		if (dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf + i * DM_PAGE_SIZE, out, 1,
			   &cpages) != -ENOENT)
			continue;
		if (holes++ < 4)
			fprintf(stderr, "# page %lu not mirrored: snapshot %#x, migrated now %llu\n",
				i, snap[i], (unsigned long long)cpages);
	}
	fprintf(stderr, "# %lu of %lu pages not mirrored\n", holes, n);
	free(snap);
}

/* Pattern index of a buffer page: its virtual page number, mod 2^16. */
static unsigned long page_index(const char *buf, unsigned long i)
{
	return ((uintptr_t)buf / DM_PAGE_SIZE + i) % 65536;
}

/*
 * Migrate [buf, +n) to dev through a new fd (returned in *fdp) and check
 * the read-back; 0 or an error code.
 */
static int migrate(int dev, char *buf, unsigned long n, unsigned long gen, char *out, int *fdp)
{
	uint64_t cpages;
	int ret;

	*fdp = open_dev(dev);
	if (*fdp < 0)
		return 10 + dev;
	/*
	 * migrate_vma is best effort: a page with a transient extra reference
	 * (say, still in another CPU's LRU batch after the eviction that
	 * brought it back) stays behind, and the read-back finds a hole
	 * (-ENOENT, seen on the debug kernel). Retry, draining every CPU's LRU
	 * batches (compact_memory runs lru_add_drain_all()); pages already on
	 * the device stay mirrored.
	 */
	for (int i = 0; i < 10; i++) {
		ret = dm_cmd(*fdp, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, n, &cpages);
		if (ret != -ENOENT)
			break;
		drain_lru();
		usleep(10000);
	}
	if (ret == -ENOENT) {
		explain_left_behind(buf, n);
		explain_holes(*fdp, buf, n, out);
	}
	if (ret)
		return 20 + -ret;
	if (cpages != n) {
		explain_left_behind(buf, n);
		return 3;
	}
	for (unsigned long i = 0; i < n; i++)
		if (!dm_page_is(out + i * DM_PAGE_SIZE, page_index(buf, i), gen))
			return 4;
	return 0;
}

static void fill(char *buf, unsigned long n, unsigned long gen)
{
	for (unsigned long i = 0; i < n; i++)
		dm_fill_page(buf + i * DM_PAGE_SIZE, page_index(buf, i), gen);
}

static long mismatches(const char *buf, unsigned long n, unsigned long gen)
{
	long bad = 0;

	for (unsigned long i = 0; i < n; i++)
		bad += !dm_page_is(buf + i * DM_PAGE_SIZE, page_index(buf, i), gen);
	return bad;
}

static void reply(int fd, int code, long count)
{
	struct report r = { code, count };

	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(90);
}

static int wait_cmd(int fd)
{
	char c;

	return read(fd, &c, 1) == 1 ? c : -1;
}

/*
 * Worker w of a cycle: devices (w = 0: device 0, 1: device 1, 2: half on
 * each), then the other device after the reload.
 */
static void worker(int w, unsigned long gen, int cmd_fd, int rep_fd)
{
	char *buf = w ? dm_map(WORKER_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE)
		      : dm_map_aligned(DM_TWOMEG, MADV_HUGEPAGE);
	char *out = dm_map(WORKER_PAGES, PROT_READ | PROT_WRITE, 0);
	unsigned long half = WORKER_PAGES / 2;
	int fd0 = -1, fd1 = -1, ret;

	if (!buf || !out)
		_exit(91);
	fill(buf, WORKER_PAGES, gen);
	memset(out, 0, WORKER_PAGES * DM_PAGE_SIZE);
	if (w < 2) {
		ret = migrate(w, buf, WORKER_PAGES, gen, out, &fd0);
	} else {
		ret = migrate(0, buf, half, gen, out, &fd0);
		if (!ret)
			ret = migrate(1, buf + half * DM_PAGE_SIZE, half, gen, out, &fd1);
	}
	reply(rep_fd, ret, device_entries(buf, WORKER_PAGES));

	if (wait_cmd(cmd_fd) != CMD_CLOSE)
		_exit(92);
	close(fd0);
	if (fd1 >= 0)
		close(fd1);
	reply(rep_fd, 0, device_entries(buf, WORKER_PAGES));

	if (wait_cmd(cmd_fd) != CMD_VERIFY)
		_exit(93);
	reply(rep_fd, 0, mismatches(buf, WORKER_PAGES, gen));

	if (wait_cmd(cmd_fd) != CMD_AGAIN)
		_exit(94);
	ret = migrate(w == 1 ? 0 : 1, buf, WORKER_PAGES, gen, out, &fd0);
	reply(rep_fd, ret, 0);

	if (wait_cmd(cmd_fd) != CMD_BACK)
		_exit(95);
	if (!ret && dm_cmd(fd0, HMM_DMIRROR_MIGRATE_TO_SYS, buf, NULL, WORKER_PAGES, NULL))
		ret = 5;
	if (!ret && mismatches(buf, WORKER_PAGES, gen))
		ret = 6;
	close(fd0);
	reply(rep_fd, ret, device_entries(buf, WORKER_PAGES));
	_exit(0);
}

/*
 * The same worker, exiting with its pages on the device and the fds open
 * when told to (CMD_EXIT). Worker 2 is told after worker 1's close evicted
 * its pages: it reports their state, migrates them again and exits.
 */
static void exit_worker(int w, unsigned long gen, int cmd_fd, int rep_fd)
{
	char *buf = w ? dm_map(WORKER_PAGES, PROT_READ | PROT_WRITE, MADV_NOHUGEPAGE)
		      : dm_map_aligned(DM_TWOMEG, MADV_HUGEPAGE);
	char *out = dm_map(WORKER_PAGES, PROT_READ | PROT_WRITE, 0);
	int fd, again_fd, ret;

	if (!buf || !out)
		_exit(91);
	fill(buf, WORKER_PAGES, gen);
	/* The THP worker alone on device 1: see the top of the file. */
	ret = migrate(w == 0 ? 1 : 0, buf, WORKER_PAGES, gen, out, &fd);
	reply(rep_fd, ret, device_entries(buf, WORKER_PAGES));
	if (wait_cmd(cmd_fd) != CMD_EXIT)
		_exit(92);
	if (w == 2) {
		long left = device_entries(buf, WORKER_PAGES);

		reply(rep_fd, mismatches(buf, WORKER_PAGES, gen) ? 6 : 0, left);
		ret = migrate(0, buf, WORKER_PAGES, gen, out, &again_fd);
		reply(rep_fd, ret, device_entries(buf, WORKER_PAGES));
	}
	_exit(ret ? 1 : 0);
}

struct cycle_stats {
	unsigned long cycles, mismatches, left_after_close, busy_refused, errors;
	unsigned long on_device;
};

FIXTURE(mc)
{
	int dummy;
};

FIXTURE_SETUP(mc)
{
	if (!getenv("HMM_MODULE"))
		SKIP(return, "HMM_MODULE is not set (qemu/init sets it to the driver's .ko)");
	if (!module_loaded())
		SKIP(return, "module %s is not loaded", module_name());
}

FIXTURE_TEARDOWN(mc)
{
	/* Whatever happened, leave the module loaded for the pipeline. */
	if (getenv("HMM_MODULE") && !module_loaded())
		do_insmod();
}

static int send_all(int *cmd, char c)
{
	for (int w = 0; w < NWORKERS; w++)
		if (write(cmd[w], &c, 1) != 1)
			return -1;
	return 0;
}

TEST_F_TIMEOUT(mc, unload_with_live_users, 3000)
{
	struct cycle_stats st = { 0 };
	struct timespec t0, t1;
	unsigned int c;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	TH_LOG("module %s, params '%s', %u cycles", module_name(),
	       getenv("HMM_MODULE_PARAMS") ?: "", opt_cycles);
	for (c = 0; c < opt_cycles; c++) {
		int cmd[NWORKERS], rep[NWORKERS], p[2], status, w, rc;
		pid_t pid[NWORKERS];
		struct report r;

		for (w = 0; w < NWORKERS; w++) {
			int q[2];

			ASSERT_EQ(0, pipe(p));
			ASSERT_EQ(0, pipe(q));
			pid[w] = fork();
			ASSERT_LE(0, pid[w]);
			if (pid[w] == 0) {
				close(p[1]);
				close(q[0]);
				worker(w, c * 16 + w, p[0], q[1]);
			}
			close(p[0]);
			close(q[1]);
			cmd[w] = p[1];
			rep[w] = q[0];
		}
		/* 1. Everything migrated and read back. */
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(r), read(rep[w], &r, sizeof(r)));
			EXPECT_EQ(0, r.code) TH_LOG("cycle %u worker %d: migrate step %d", c, w,
						    r.code);
			st.errors += r.code != 0;
			st.on_device += r.count > 0 ? r.count : 0;
		}
		/* 2. In use: rmmod must refuse. */
		rc = do_rmmod(1);
		EXPECT_NE(0, rc) TH_LOG("cycle %u: rmmod succeeded with open files", c);
		EXPECT_TRUE(module_loaded());
		st.busy_refused += rc != 0;
		if (!module_loaded())
			ASSERT_EQ(0, do_insmod());
		/* 3. Close: the device memory is evicted. */
		ASSERT_EQ(0, send_all(cmd, CMD_CLOSE));
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(r), read(rep[w], &r, sizeof(r)));
			if (r.count)
				TH_LOG("cycle %u worker %d: %ld device entries after close", c, w,
				       r.count);
			st.left_after_close += r.count > 0 ? r.count : 0;
		}
		/* 4. Unload with the users alive; their data is intact. */
		rc = do_rmmod(0);
		ASSERT_EQ(0, rc) TH_LOG("cycle %u: rmmod failed", c);
		EXPECT_FALSE(module_loaded());
		ASSERT_EQ(0, send_all(cmd, CMD_VERIFY));
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(r), read(rep[w], &r, sizeof(r)));
			EXPECT_EQ(0, r.count) TH_LOG("cycle %u worker %d: %ld pages wrong", c, w,
						     r.count);
			st.mismatches += r.count;
		}
		/*
		 * 5. Reload; migrate to the new instance. Everyone has migrated
		 * before anyone migrates back and closes: a last close evicts
		 * the whole device, and an eviction racing another worker's
		 * migration can take one of its pages just after that
		 * migration's finalize unlocked it, erase its mirror entry (the
		 * eviction's MMU_NOTIFY_CLEAR) and put it back when the
		 * migration's reference is still there: the page stays on the
		 * device, unmirrored, and the read-back (which does not fault,
		 * as in lib/test_hmm.c) fails with -ENOENT. Seen on the debug
		 * kernel in 2-9 of 50 cycles, worker 2 sharing device 1 with
		 * worker 0.
		 */
		ASSERT_EQ(0, do_insmod()) TH_LOG("cycle %u: insmod failed", c);
		ASSERT_EQ(0, send_all(cmd, CMD_AGAIN));
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(r), read(rep[w], &r, sizeof(r)));
			EXPECT_EQ(0, r.code) TH_LOG("cycle %u worker %d: migrate after reload %d",
						    c, w, r.code);
			st.errors += r.code != 0;
		}
		/* 6. Back to system memory, checked, closed; exit. */
		ASSERT_EQ(0, send_all(cmd, CMD_BACK));
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(r), read(rep[w], &r, sizeof(r)));
			EXPECT_EQ(0, r.code) TH_LOG("cycle %u worker %d: migrate back %d", c, w,
						    r.code);
			st.errors += r.code != 0;
			ASSERT_EQ(pid[w], waitpid(pid[w], &status, 0));
			EXPECT_EQ(0, status);
			close(cmd[w]);
			close(rep[w]);
		}
		st.cycles++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%lu cycles in %.1f s: %lu data mismatches, %lu errors, %lu busy rmmods refused, %lu pages on devices at step 1, %lu device entries left after close",
	       st.cycles, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       st.mismatches, st.errors, st.busy_refused, st.on_device, st.left_after_close);
	EXPECT_TRUE(module_loaded());
	EXPECT_EQ(opt_cycles, st.cycles);
	EXPECT_EQ(0UL, st.mismatches);
	EXPECT_EQ(0UL, st.errors);
}

/* waitpid() with a deadline; 0 and the status, or -1 when it did not exit. */
static int wait_deadline(pid_t pid, int *status, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		usleep(100000);
	}
	return -1;
}

/* Tell worker w of exit_with_device_pages to go on. */
static int send_exit(int *cmd, int w)
{
	char c = CMD_EXIT;

	return write(cmd[w], &c, 1) == 1 ? 0 : -1;
}

TEST_F_TIMEOUT(mc, exit_with_device_pages, 600)
{
	unsigned int rounds = opt_cycles < 10 ? opt_cycles : 10, r;
	unsigned long exited = 0;

	for (r = 0; r < rounds; r++) {
		int cmd[NWORKERS], q[2], w, status[NWORKERS];
		pid_t pid[NWORKERS];
		struct report rep;

		/* A fresh module instance, as in the cycle where it Oopsed. */
		ASSERT_EQ(0, do_rmmod(0));
		ASSERT_EQ(0, do_insmod());
		/* All at once: their migrations overlap. */
		ASSERT_EQ(0, pipe(q));
		for (w = 0; w < NWORKERS; w++) {
			int c[2];

			ASSERT_EQ(0, pipe(c));
			pid[w] = fork();
			ASSERT_LE(0, pid[w]);
			if (pid[w] == 0) {
				close(q[0]);
				close(c[1]);
				exit_worker(w, 0x1000 + r * 16 + w, c[0], q[1]);
			}
			close(c[0]);
			cmd[w] = c[1];
		}
		close(q[1]);
		for (w = 0; w < NWORKERS; w++) {
			ASSERT_EQ((ssize_t)sizeof(rep), read(q[0], &rep, sizeof(rep)));
			EXPECT_EQ(0, rep.code) TH_LOG("round %u: migrate %d", r, rep.code);
		}
		/* Workers 0 and 1 exit; 1's close evicts worker 2's pages. */
		ASSERT_EQ(0, send_exit(cmd, 0));
		ASSERT_EQ(0, send_exit(cmd, 1));
		for (w = 0; w < 2; w++)
			ASSERT_EQ(0, wait_deadline(pid[w], &status[w], 60))
				TH_LOG("round %u worker %d did not exit within 60 s (kernel Oops in its release?)",
				       r, w);
		/* Worker 2: its evicted pages, then it exits with them migrated again. */
		ASSERT_EQ(0, send_exit(cmd, 2));
		ASSERT_EQ((ssize_t)sizeof(rep), read(q[0], &rep, sizeof(rep)));
		EXPECT_EQ(0, rep.code) TH_LOG("round %u: data after another close's eviction", r);
		EXPECT_EQ(0, rep.count) TH_LOG("round %u: device entries left after the eviction", r);
		ASSERT_EQ((ssize_t)sizeof(rep), read(q[0], &rep, sizeof(rep)));
		EXPECT_EQ(0, rep.code) TH_LOG("round %u: migrate again %d", r, rep.code);
		ASSERT_EQ(0, wait_deadline(pid[2], &status[2], 60))
			TH_LOG("round %u worker 2 did not exit within 60 s (kernel Oops in its release?)",
			       r);
		close(q[0]);
		for (w = 0; w < NWORKERS; w++) {
			close(cmd[w]);
			EXPECT_EQ(0, status[w]);
			exited++;
		}
	}
	TH_LOG("%u rounds, %lu workers exited with device pages", rounds, exited);
	EXPECT_TRUE(module_loaded());
}

int main(int argc, char **argv)
{
	char *hargv[argc + 1];
	int hargc = 0;
	const char *e = getenv("HMM_FUZZ_LONG");

	if (e && atoi(e))
		opt_cycles = 100;
	if (getenv("HMM_MODCYCLE_CYCLES"))
		opt_cycles = strtoul(getenv("HMM_MODCYCLE_CYCLES"), NULL, 0);
	hargv[hargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--long"))
			opt_cycles = 100;
		else if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
			opt_cycles = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			i++;
		else
			hargv[hargc++] = argv[i];
	}
	hargv[hargc] = NULL;
	return test_harness_run(hargc, hargv);
}
