// SPDX-License-Identifier: GPL-2.0

//! `HMM_DMIRROR_SNAPSHOT`: a temporary interval notifier per window and the
//! SNAPSHOT byte of each entry.

use super::*;

/// The data of the temporary notifier of one SNAPSHOT window.
#[pin_data]
struct SnapshotState<'a> {
    mirror: &'a Mirror,
}

impl IntervalOps for SnapshotState<'_> {
    type State = MirrorState;

    fn lock(data: &Self) -> &Mutex<MirrorState> {
        &data.mirror.state
    }

    // Any invalidation in the window invalidates the whole snapshot: the sequence bump
    // under the mutex is all it takes.
    fn invalidate(_data: &Self, _state: &MirrorState, _inv: &Invalidation<'_>) {}
}

impl DmirrorFile {
    /// `dmirror_mkentry()`; `zero` are the zero page's pfns, read once per window.
    fn mkentry(m: &Mirror, zero: ZeroPfns, p: HmmPfn<'_>) -> u8 {
        let kind = p.page().map(|page| {
            // Most entries are system pages: one check rules out both device kinds.
            if !page.is_zone_device() {
                if zero.contains(p.pfn()) {
                    PageKind::Zero
                } else {
                    PageKind::Other
                }
            } else if page.is_device_private() || page.is_device_coherent() {
                let local = m.device().owns_page(page);
                if page.is_device_private() {
                    PageKind::DevicePrivate(local)
                } else {
                    PageKind::DeviceCoherent(local)
                }
            } else {
                PageKind::Other
            }
        });
        uapi::snapshot_byte(
            p.is_error(),
            kind,
            p.is_write(),
            p.map_order(),
            PAGE_SHIFT as u32,
            bindings::PMD_SHIFT,
            bindings::PUD_SHIFT,
        )
    }

    /// `dmirror_range_snapshot()` for one window.
    fn range_snapshot(&self, mm: &MmWithUser, start: usize, end: usize, perm: &mut [u8]) -> Result {
        let m = self.mirror();
        // On the stack, as the C driver's: no allocation per window.
        pin_init::stack_try_pin_init!(
            let notifier: IntervalNotifier<SnapshotState<'_>> =? IntervalNotifier::insert(
                mm,
                start,
                end - start,
                try_pin_init!(SnapshotState { mirror: m }? Error),
            )
        );
        let mut range = HmmRange::new(&*notifier, 0, m.owner());
        range.set_window(start, end);
        let g = Self::fault_validated(m, &mut range, false, |r| r.fault(&MmapRead::lock(mm)))?;
        let zero = ZeroPfns::get();
        for (slot, p) in perm.iter_mut().zip(range.pfns(&g)?) {
            *slot = Self::mkentry(m, zero, p);
        }
        drop(g);
        Ok(())
    }

    /// `HMM_DMIRROR_SNAPSHOT`.
    pub(crate) fn snapshot(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mm = self.mmget().ok_or(EINVAL)?;
        let mut uptr = cmd.ptr as usize;
        let mut addr = start;
        while addr < end {
            let next = end.min(addr.saturating_add(hmm::MAX_PAGES << PAGE_SHIFT));
            let mut perm = [0u8; hmm::MAX_PAGES];
            self.range_snapshot(&mm, addr, next, &mut perm)?;
            let n = (next - addr) >> PAGE_SHIFT;
            UserSlice::new(UserPtr::from_addr(uptr), n)
                .writer()
                .write_slice(&perm[..n])
                .map_err(|_| EFAULT)?;
            cmd.cpages += n as u64;
            uptr += n;
            addr = next;
        }
        Ok(())
    }
}
