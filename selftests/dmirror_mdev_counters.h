/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The mdev_* events of /proc/vmstat that the instrumentation patch
 * patches/experiments/0001 adds (kernel flavor "contention"): why
 * migrate_vma_setup() did not collect or not unmap a requested page, in
 * base pages. Shared by selftests/dmirror_mdev_counters.c and
 * bench/dmirror_contention.c.
 */
#ifndef DMIRROR_MDEV_COUNTERS_H
#define DMIRROR_MDEV_COUNTERS_H

#include <stdio.h>
#include <string.h>

enum mdev_counter {
	MDEV_REQUESTED,
	MDEV_COLLECTED,
	MDEV_COLLECT_LOCK_BUSY,
	MDEV_COLLECT_PINNED,
	MDEV_COLLECT_MIGRATION_ENTRY,
	MDEV_COLLECT_SWAP_ENTRY,
	MDEV_COLLECT_OTHER_OWNER,
	MDEV_COLLECT_NOT_SELECTED,
	MDEV_COLLECT_HOLE,
	MDEV_COLLECT_NO_PAGE,
	MDEV_COLLECT_NO_MAPPING,
	MDEV_COLLECT_SPLIT_FAIL,
	MDEV_UNMAP_ISOLATE_FAIL,
	MDEV_UNMAP_STILL_MAPPED,
	MDEV_UNMAP_EXTRA_REFS,
	MDEV_UNMAPPED,
	MDEV_PAGES_FAIL,
	NR_MDEV,
};

static const char *const mdev_names[NR_MDEV] = {
	"mdev_requested", "mdev_collected", "mdev_collect_lock_busy",
	"mdev_collect_pinned", "mdev_collect_migration_entry",
	"mdev_collect_swap_entry", "mdev_collect_other_owner",
	"mdev_collect_not_selected", "mdev_collect_hole",
	"mdev_collect_no_page", "mdev_collect_no_mapping",
	"mdev_collect_split_fail", "mdev_unmap_isolate_fail",
	"mdev_unmap_still_mapped", "mdev_unmap_extra_refs", "mdev_unmapped",
	"mdev_pages_fail",
};

/* The first and last cause of each stage, for the sums. */
#define MDEV_FIRST_COLLECT_CAUSE	MDEV_COLLECT_LOCK_BUSY
#define MDEV_LAST_COLLECT_CAUSE		MDEV_COLLECT_SPLIT_FAIL
#define MDEV_FIRST_UNMAP_CAUSE		MDEV_UNMAP_ISOLATE_FAIL
#define MDEV_LAST_UNMAP_CAUSE		MDEV_UNMAP_EXTRA_REFS

/*
 * Reads the mdev_* events into v. Returns the number found: NR_MDEV on an
 * instrumented kernel, 0 on a stock one (or -1 without /proc/vmstat).
 */
static inline int mdev_read(unsigned long long v[NR_MDEV])
{
	char name[64];
	unsigned long long val;
	int i, found = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	memset(v, 0, sizeof(v[0]) * NR_MDEV);
	while (fscanf(f, "%63s %llu", name, &val) == 2) {
		for (i = 0; i < NR_MDEV; i++) {
			if (!strcmp(name, mdev_names[i])) {
				v[i] = val;
				found++;
			}
		}
	}
	fclose(f);
	return found;
}

/* d = b - a */
static inline void mdev_delta(const unsigned long long a[NR_MDEV],
			      const unsigned long long b[NR_MDEV],
			      unsigned long long d[NR_MDEV])
{
	for (int i = 0; i < NR_MDEV; i++)
		d[i] = b[i] - a[i];
}

#define MDEV_MISSING "kernel without the mdev_* vmstat events (the instrumentation " \
	"of patches/experiments/0001 on KFLAVOR=contention, make contention)"

#endif /* DMIRROR_MDEV_COUNTERS_H */
