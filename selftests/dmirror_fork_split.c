// SPDX-License-Identifier: GPL-2.0
/*
 * A device-private THP shared with a forked child, migrated back to system
 * memory as order-0 pages: the window of the mm bug of docs/kernel-bugs.md,
 * "migrate_vma_pages() splits a THP that a forked child still PMD-maps"
 * (patches/0004).
 *
 * After fork() the parent and the child map the same device-private THP
 * with a PMD each. A migration back to RAM unmaps both (try_to_migrate()
 * leaves a PMD migration entry in each mm). When the driver hands
 * migrate_vma_pages() order-0 destination pages for the PMD-order source
 * (here: HMM_DMIRROR_FLAG_FAIL_ALLOC fails the order-9 allocation and
 * both drivers fall back to 512 order-0 pages),
 * migrate_vma_split_unmapped_folio() splits the PMD migration entry of the
 * migrating VMA only and then the folio itself; the child's PMD migration
 * entry still points at what is now an order-0 folio. The finalize then
 * restores the child's PMD over that folio, and the PMD rmap of a folio that
 * is not large lands on the next page's struct (the garbage ->mapping, bit 1
 * set, of the fuzzer's Oopses).
 *
 * The test: a 2 MiB THP is migrated to device 0 (skipped when the device
 * does not hold it as a THP), a child is forked, the parent sets FAIL_ALLOC
 * and migrates the THP back to RAM; then the parent and the child each read
 * all 512 pages, and the child exits. Every page must hold its data, and the
 * kernel log must stay clean.
 *
 *   dmirror_fork_split [--rounds N]
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "dmirror_util.h"

#define THP_PAGES	(DM_TWOMEG / DM_PAGE_SIZE)

static unsigned int opt_rounds = 5;

FIXTURE(fs)
{
	int fd;
};

FIXTURE_SETUP(fs)
{
	self->fd = dm_open(0);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (module not loaded?)", strerror(errno));
}

FIXTURE_TEARDOWN(fs)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F_TIMEOUT(fs, device_thp_shared_with_child_back_as_base_pages, 600)
{
	unsigned char *snap = malloc(THP_PAGES);
	char *out = dm_map(THP_PAGES, PROT_READ | PROT_WRITE, 0);

	ASSERT_NE(NULL, snap);
	ASSERT_NE(NULL, out);
	for (unsigned int r = 0; r < opt_rounds; r++) {
		unsigned long gen = 0x7a000 + r;
		char *buf = dm_map_aligned(DM_TWOMEG, MADV_HUGEPAGE);
		uint64_t cpages = 0;
		int go[2], status;
		pid_t pid;
		char c;

		ASSERT_NE(NULL, buf);
		dm_fill(buf, THP_PAGES, gen);
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out,
				    THP_PAGES, &cpages));
		ASSERT_EQ(THP_PAGES, cpages);
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buf, snap, THP_PAGES,
				    NULL));
		if (!(snap[0] & HMM_DMIRROR_PROT_PMD))
			SKIP(return, "the THP is not a device THP on device 0 (snapshot 0x%x)",
			     snap[0]);
		ASSERT_EQ(0, pipe(go));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			close(go[1]);
			if (read(go[0], &c, 1) != 1)
				_exit(100);
			/* The child's copy: CPU faults bring its pages back. */
			_exit(dm_check(buf, THP_PAGES, gen) >= 0 ? 1 : 0);
		}
		close(go[0]);
		/* The order-9 destination fails: 512 order-0 pages instead. */
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_FLAGS, buf, NULL,
				    HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL));
		ASSERT_EQ(0, dm_cmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, NULL,
				    THP_PAGES, &cpages));
		EXPECT_EQ(-1, dm_check(buf, THP_PAGES, gen)) TH_LOG("round %u: parent", r);
		ASSERT_EQ(1, write(go[1], "g", 1));
		close(go[1]);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("round %u: child status 0x%x", r, status);
		munmap(buf, DM_TWOMEG);
	}
	munmap(out, THP_PAGES * DM_PAGE_SIZE);
	free(snap);
}

int main(int argc, char **argv)
{
	char *hargv[argc + 1];
	int hargc = 0;

	hargv[hargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			opt_rounds = strtoul(argv[++i], NULL, 0);
		else
			hargv[hargc++] = argv[i];
	}
	hargv[hargc] = NULL;
	return test_harness_run(hargc, hargv);
}
