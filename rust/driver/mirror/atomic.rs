// SPDX-License-Identifier: GPL-2.0

//! `HMM_DMIRROR_EXCLUSIVE` and `CHECK_EXCLUSIVE`: device-exclusive entries in
//! the mirror table.

#![allow(unsafe_code)]

use super::*;

impl Mirror {
    /// The owner of this mirror's `make_device_exclusive()` conversions: the
    /// mirror itself, so that only its own notifier recognises (and ignores)
    /// the `MMU_NOTIFY_EXCLUSIVE` invalidation of its own conversions. Other
    /// mirrors, of this device too, see an unknown owner and erase, as they do
    /// for the C driver's conversions (which have no owner).
    pub(super) fn exclusive_owner(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    /// `dmirror_check_atomic()`.
    pub(crate) fn check_atomic(&self, start: usize, end: usize) -> Result {
        let g = self.state.lock();
        for pfn in (start >> PAGE_SHIFT)..(end >> PAGE_SHIFT) {
            if g.table.tag(pfn) == Some(Tag::Atomic) {
                return Err(EPERM);
            }
        }
        Ok(())
    }
}

impl DmirrorFile {
    /// `HMM_DMIRROR_EXCLUSIVE`.
    pub(crate) fn exclusive(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mm = self.mmget().ok_or(EINVAL)?;
        {
            let guard = MmapRead::lock(&mm);
            let mut addr = start;
            while addr < end {
                self.exclusive_page(&guard, addr)?;
                addr += PAGE_SIZE;
            }
        }
        drop(mm);
        self.read_back(cmd, start, end)
    }

    /// Makes the page at `addr` device-exclusive and stores it in the table,
    /// as the other table writers do: the notifier sequence is read before
    /// `make_device_exclusive()` and checked under the mirror mutex before the
    /// store, and an invalidation in between (a zap of the new device-exclusive
    /// entry frees the folio once this function lets it go) retries with the
    /// folio released. The conversion's own `MMU_NOTIFY_EXCLUSIVE` does not
    /// count: its owner is this mirror, which the notifier ignores, as the
    /// kernel asks of callers. What else `make_device_exclusive()` does can
    /// bump the sequence: its write fault first restores a page that is
    /// already device-exclusive (an `MMU_NOTIFY_CLEAR`), or splits a PMD, or
    /// breaks COW. So a retry first faults the page in writable
    /// (`fixup_user_fault()`, before the sequence is read): the conversion then
    /// finds a writable PTE and changes nothing else. Retries stop at the
    /// `hmm_range_fault()` deadline ([`RANGE_TIMEOUT_MS`]) with nothing stored:
    /// the read-back then finds a hole (`ENOENT`), the result the C driver gives
    /// when an invalidation erases its entry after the store.
    fn exclusive_page(&self, guard: &MmapRead<'_>, addr: usize) -> Result {
        let m = self.mirror();
        let t0 = Instant::<Monotonic>::now();
        let mut first = true;
        loop {
            if !first {
                if Self::deadline_passed(&t0) {
                    return Ok(());
                }
                m.exclusive_retries.fetch_add(1, Ordering::Relaxed);
                // Its errors are those of the conversion's own fault, which reports them.
                let _ = exclusive::fault_in_writable(guard, addr);
            }
            first = false;
            let seq = self.notifier.read_begin().ok_or(EINVAL)?;
            let excl = ExclusivePage::make(guard, addr, m.exclusive_owner())?;
            let delay = m.test_exclusive_delay_ms.load(Ordering::Relaxed);
            if delay != 0 {
                // The folio lock is held, as in the window the hook widens; a zap of the
                // entry does not take it.
                fsleep(Delta::from_millis(delay as i64));
            }
            let g = m.state.lock();
            if self.notifier.read_retry(seq) {
                drop(g);
                drop(excl);
                continue;
            }
            // SAFETY: TODO[XATAG]. The sequence is unchanged under the mutex since before the
            // conversion: the device-exclusive entry maps the page until an invalidation,
            // which erases this entry under the mutex first.
            unsafe { g.table.store(addr >> PAGE_SHIFT, excl.page(), Tag::Atomic) }?;
            drop(g);
            drop(excl);
            return Ok(());
        }
    }
}
