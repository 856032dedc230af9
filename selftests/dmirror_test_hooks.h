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

#endif /* DMIRROR_TEST_HOOKS_H */
