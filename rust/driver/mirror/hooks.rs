// SPDX-License-Identifier: GPL-2.0

//! PROJECT-ONLY test hooks, outside the upstream ABI and off unless
//! `test_hooks=1`: `TEST_LOCK_PAGES`, `TEST_UNLOCK_PAGES`, `TEST_EXCLUSIVE_DELAY`.

use super::*;

/// Upper bound of the `TEST_EXCLUSIVE_DELAY` hook's sleep, in ms: two
/// conversions with it still fit in the retry deadline of EXCLUSIVE
/// ([`RANGE_TIMEOUT_MS`]).
const TEST_EXCLUSIVE_DELAY_MAX_MS: u64 = 400;

impl Mirror {
    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_LOCK_PAGES` (not in the
    /// upstream ABI): takes a reference to and locks the page of each present
    /// system page of the caller's range whose lock is free, until
    /// `TEST_UNLOCK_PAGES` or close. `cpages` = pages locked.
    pub(crate) fn test_lock_pages(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mut locked = self.test_locked.lock();
        let mut addr = start;
        while addr < end {
            if let Some(page) = LockedPage::trylock_user_page(addr) {
                locked.push(page, GFP_KERNEL)?;
                cmd.cpages += 1;
            }
            addr += PAGE_SIZE;
        }
        Ok(())
    }

    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_UNLOCK_PAGES`: releases every
    /// page lock taken by `TEST_LOCK_PAGES`; `cpages` = pages released.
    pub(crate) fn test_unlock_pages(&self, cmd: &mut HmmDmirrorCmd) {
        let pages = core::mem::take(&mut *self.test_locked.lock());
        cmd.cpages = pages.len() as u64;
        drop(pages);
    }

    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_EXCLUSIVE_DELAY` (not in the
    /// upstream ABI): from now on EXCLUSIVE through this file sleeps
    /// `npages - 1` ms (at most [`TEST_EXCLUSIVE_DELAY_MAX_MS`]) after each
    /// `make_device_exclusive()`, before it checks the notifier sequence and
    /// stores the entry, which widens that window for tests. `cpages` = the
    /// conversions this mirror retried so far because an invalidation came in
    /// between.
    pub(crate) fn test_exclusive_delay(&self, cmd: &mut HmmDmirrorCmd) {
        let ms = cmd
            .npages
            .saturating_sub(1)
            .min(TEST_EXCLUSIVE_DELAY_MAX_MS);
        self.test_exclusive_delay_ms.store(ms, Ordering::Relaxed);
        cmd.cpages = self.exclusive_retries.load(Ordering::Relaxed);
    }
}
