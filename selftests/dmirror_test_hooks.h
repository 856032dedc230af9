/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PROJECT-ONLY test hooks of the Rust module hmm_dmirror_rs. They are NOT
 * part of the upstream ABI of lib/test_hmm.c: the C driver answers both with
 * -EINVAL (unknown command), and tests that need them skip there.
 *
 * HMM_DMIRROR_TEST_LOCK_PAGES: lock the page of each present system page in
 * [addr, addr + npages * PAGE_SIZE) of the caller's mm, holding a reference;
 * cpages = pages locked. The locks are held until
 * HMM_DMIRROR_TEST_UNLOCK_PAGES or the close of the fd.
 *
 * HMM_DMIRROR_TEST_UNLOCK_PAGES: release every page lock held through this
 * fd; cpages = pages released.
 *
 * HMM_DMIRROR_TEST_EXCLUSIVE_DELAY: from now on, HMM_DMIRROR_EXCLUSIVE through
 * this fd sleeps npages - 1 milliseconds (at most 400; npages 1: no sleep)
 * after each make_device_exclusive(), before it checks its notifier sequence
 * and stores the page; cpages = the conversions of this fd retried so far
 * because an invalidation came in between. addr is not used.
 */
#ifndef DMIRROR_TEST_HOOKS_H
#define DMIRROR_TEST_HOOKS_H

#include <linux/ioctl.h>
#include <lib/test_hmm_uapi.h>

#define HMM_DMIRROR_TEST_LOCK_PAGES	_IOWR('H', 0x40, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_TEST_UNLOCK_PAGES	_IOWR('H', 0x41, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_TEST_EXCLUSIVE_DELAY _IOWR('H', 0x43, struct hmm_dmirror_cmd)

#define DM_NO_HOOK "driver has no page-lock test hook (PROJECT-ONLY ioctls 0x40/0x41 " \
	"of dmirror_test_hooks.h: the Rust module with test_hooks=1 only)"

/*
 * Probe for the page-lock hook without side effects: UNLOCK releases
 * nothing here. 1 if present; 0 if not (-EINVAL, an unknown command: the
 * test skips); -1 if not although the module was loaded with test_hooks=1
 * (HMM_MODULE_PARAMS, set by the pipeline): the test fails rather than skip
 * on the driver it is meant for. Needs dmirror_util.h (dm_cmd()) first.
 */
static inline int dm_lock_hook(int lock_fd, void *buf)
{
	const char *params = getenv("HMM_MODULE_PARAMS");

	if (!dm_cmd(lock_fd, HMM_DMIRROR_TEST_UNLOCK_PAGES, buf, NULL, 1, NULL))
		return 1;
	return params && strstr(params, "test_hooks=1") ? -1 : 0;
}

#endif /* DMIRROR_TEST_HOOKS_H */
